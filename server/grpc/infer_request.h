// NormalizeRequest: one ModelInfer request turned, once, at the gRPC boundary, into the
// PendingRequest the batcher and the core consume: inputs decoded into views over the
// request's own buffers, the stage, the requested outputs, the deadline and the
// cancellation probe, all validated against the model version. Later layers trust it.
// Pure apart from reading `context`; thread-safe.
#ifndef TORCHBRICKS_SERVER_GRPC_INFER_REQUEST_H_
#define TORCHBRICKS_SERVER_GRPC_INFER_REQUEST_H_

#include <deque>
#include <string>

#include "absl/status/status.h"
#include "core/graph/stage.h"
#include "grpcpp/server_context.h"
#include "proto/grpc_service.pb.h"
#include "server/grpc/shared_memory_regions.h"
#include "server/repository/model_version.h"
#include "server/scheduling/pending_request.h"

namespace torchbricks::server {

// Fills `pending` for running `request` in `stage` on `version`. The views borrow
// `request` and `scratch` (decoded typed contents), which must outlive `pending`;
// `context` may be null (no deadline, no cancellation). Inputs in shared memory are read
// through `lease`, which must outlive `pending` too (null: shared memory is off). On error — a
// malformed tensor (InvalidArgument naming it), a cancelled client (Cancelled), inputs or outputs
// the model refuses (its code, the message prefixed with the model) — `pending` is unspecified.
absl::Status NormalizeRequest(grpc::ServerContextBase* context,
                              const inference::ModelInferRequest& request, Stage stage,
                              const ModelVersion& version, std::deque<std::string>* scratch,
                              PendingRequest* pending, SharedMemoryLease* lease = nullptr);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_INFER_REQUEST_H_
