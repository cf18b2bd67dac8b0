// The one place that turns absl::Status into grpc::Status. The canonical codes have the
// same numbers in both, so the code and message carry over unchanged.
#ifndef TORCHBRICKS_SERVER_GRPC_GRPC_STATUS_H_
#define TORCHBRICKS_SERVER_GRPC_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace torchbricks::server {

// Error messages echo what clients sent (names, shapes). gRPC carries the message in a
// header, and a header over its limit (8 KiB by default) turns the real error into
// RESOURCE_EXHAUSTED: messages are cut to this many bytes, saying how much was cut.
inline constexpr size_t kMaxStatusMessageBytes = 2048;

// `text` when it fits in `max_bytes`, else its start and "... (N more bytes)".
std::string ShortenForClient(absl::string_view text, size_t max_bytes);

// The grpc::Status of `status`: same code, message shortened to kMaxStatusMessageBytes.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_GRPC_STATUS_H_
