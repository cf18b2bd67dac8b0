// AccessPolicy: which protocol groups need a request header, and the check of one call
// against it, as Triton's --grpc-restricted-protocol=<groups>:<key>=<value> does. A call
// to a restricted group must carry the metadata "triton-grpc-protocol-<key>: <value>".
// Built once from the command line, then read-only: thread-safe.
//
//   ASSIGN_OR_RETURN(ProtocolRestriction r,
//                    ParseProtocolRestriction("model-repository:admin-key=s3cret"));
//   ASSIGN_OR_RETURN(AccessPolicy policy, AccessPolicy::Create({r}));
//   RETURN_IF_ERROR(policy.Check(*context, ProtocolGroup::kModelRepository));
#ifndef TORCHBRICKS_SERVER_GRPC_ACCESS_POLICY_H_
#define TORCHBRICKS_SERVER_GRPC_ACCESS_POLICY_H_

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"

namespace torchbricks::server {

// Triton's protocol groups. grpc.health.v1 is never restricted: Kubernetes' gRPC probes
// cannot send headers. "health" restricts ServerLive, ServerReady and ModelReady.
enum class ProtocolGroup {
  kHealth,           // ServerLive, ServerReady, ModelReady
  kMetadata,         // ServerMetadata, ModelMetadata, torchbricks.BrickService
  kInference,        // ModelInfer, ModelStreamInfer
  kSharedMemory,     // SystemSharedMemoryStatus, SystemSharedMemoryRegister,
                     // SystemSharedMemoryUnregister
  kModelConfig,      // ModelConfig
  kModelRepository,  // RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload
  kStatistics,       // ModelStatistics
  kTrace,            // (none served)
  kLogging,          // (none served)
};
inline constexpr int kProtocolGroups = 9;

// The group's name on the command line ("model-repository").
absl::string_view ProtocolGroupName(ProtocolGroup group);

// One --grpc-restricted-protocol value.
struct ProtocolRestriction {
  std::vector<ProtocolGroup> groups;
  std::string header;  // "triton-grpc-protocol-<key>", lower case
  std::string value;
};

// Parses "<group>[,<group>...]:<key>=<value>". InvalidArgument naming the problem: an
// unknown group, a group named twice, an empty or malformed key (letters, digits, '-',
// '_', '.'), an empty value or one a header cannot carry (printable ASCII only).
absl::StatusOr<ProtocolRestriction> ParseProtocolRestriction(absl::string_view flag_value);

class AccessPolicy {
 public:
  // No restrictions: every call is allowed.
  AccessPolicy() = default;
  // The policy of `restrictions`; InvalidArgument when a group is in two of them.
  static absl::StatusOr<AccessPolicy> Create(const std::vector<ProtocolRestriction>& restrictions);

  // OK when the call may use `group`: the group is unrestricted, or the call's metadata
  // has the group's header with its value. PermissionDenied naming the header otherwise
  // (never the expected value).
  absl::Status Check(const grpc::ServerContextBase& context, ProtocolGroup group) const;

 private:
  struct Requirement {
    std::string header;
    std::string value;
  };
  std::array<std::optional<Requirement>, kProtocolGroups> required_;
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_ACCESS_POLICY_H_
