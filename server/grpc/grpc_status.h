// The one place that turns absl::Status into grpc::Status. The canonical codes have the
// same numbers in both, so the code and message carry over unchanged.
#ifndef TORCHBRICKS_SERVER_GRPC_GRPC_STATUS_H_
#define TORCHBRICKS_SERVER_GRPC_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace torchbricks::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_GRPC_STATUS_H_
