// The one place where gRPC's status becomes absl::Status for the client library: the
// server's code and message pass through unchanged. Pure functions; thread-safe.
#ifndef TORCHBRICKS_CLIENTS_CPP_GRPC_STATUS_H_
#define TORCHBRICKS_CLIENTS_CPP_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace torchbricks::client {

// `status` with the same code (gRPC's and absl's codes share their numbers) and message.
absl::Status FromGrpcStatus(const grpc::Status& status);

// The status of one failed request on a ModelStreamInfer stream, whose answer carries only
// an error message. This server writes it as absl::Status::ToString does ("NOT_FOUND: ..."):
// the code is read back from that prefix; a message without one gives UNKNOWN.
absl::Status FromStreamErrorMessage(absl::string_view message);

}  // namespace torchbricks::client

#endif  // TORCHBRICKS_CLIENTS_CPP_GRPC_STATUS_H_
