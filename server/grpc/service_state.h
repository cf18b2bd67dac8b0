// ServiceState: the state the gRPC services (InferenceService, BrickService) share — the
// repository once start-up has loaded it, the request gate that drains on shutdown,
// readiness, the access policy, clients' shared-memory regions, the request byte budget
// and the refusal counters.
//
// It is the gRPC layer's state, not the whole server's: TorchBricksServer owns it beside
// what the services never see (the gRPC server, the repository itself, the metrics
// endpoint, the listener watch), and server_metrics reads it at scrape time. Services
// borrow it for their whole life. Thread-safe.
#ifndef TORCHBRICKS_SERVER_GRPC_SERVICE_STATE_H_
#define TORCHBRICKS_SERVER_GRPC_SERVICE_STATE_H_

#include <atomic>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"
#include "server/grpc/access_policy.h"
#include "server/grpc/grpc_status.h"
#include "server/grpc/shared_memory_regions.h"
#include "server/observability/version_stats.h"
#include "server/repository/model_repository.h"
#include "server/scheduling/byte_budget.h"
#include "server/scheduling/request_gate.h"

namespace torchbricks::server {

struct ServiceState {
  // Null until start-up has loaded the models; set once, then stable.
  std::atomic<ModelRepository*> repository{nullptr};
  RequestGate gate;
  // Which protocol groups need a header (--grpc-restricted-protocol); set before serving.
  AccessPolicy access;
  // The clients' shared-memory regions; null unless --allow-client-shm. Set before serving.
  std::unique_ptr<SharedMemoryRegions> shared_memory;
  // Bytes of inference requests held at once (--max-inflight-bytes); set before serving.
  ByteBudget request_bytes;
  // ModelStreamInfer calls open now, and how many may be (--grpc-max-streams): each holds
  // a thread of its own.
  std::atomic<int> open_streams{0};
  int max_streams = 0;
  // True once start-up is done, false again when shutdown begins or the listener is lost.
  std::atomic<bool> ready{false};
  // True once gRPC's listener stopped accepting connections (server/listener_watch.h).
  std::atomic<bool> listener_lost{false};
  // Inference requests refused before reaching a model version, by status code.
  std::atomic<uint64_t> refused[kStatusCodes] = {};
  // The repository, or Unavailable while the server is still starting.
  absl::StatusOr<ModelRepository*> Repository() const {
    ModelRepository* loaded = repository.load();
    if (loaded == nullptr) return absl::UnavailableError("the server is still starting");
    return loaded;
  }
  // The PERMISSION_DENIED status when the call may not use `group`, else nothing.
  std::optional<grpc::Status> Deny(const grpc::ServerContextBase* context,
                                   ProtocolGroup group) const {
    absl::Status allowed = access.Check(*context, group);
    if (allowed.ok()) return std::nullopt;
    return ToGrpcStatus(allowed);
  }
  void CountRefused(absl::StatusCode code) {
    const int c = static_cast<int>(code);
    if (c >= 0 && c < kStatusCodes) refused[c].fetch_add(1, std::memory_order_relaxed);
  }
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_SERVICE_STATE_H_
