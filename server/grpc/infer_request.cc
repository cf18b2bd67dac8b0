#include "server/grpc/infer_request.h"

#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/status_macros.h"
#include "server/grpc/infer_codec.h"
#include "server/grpc/triton_model_config.h"

namespace torchbricks::server {
namespace {

// An input with one value per batch item may come as [B, 1], the shape its ModelConfig and
// metadata show (OneValuePerItem); the model takes [B]. Only the view's shape changes.
void DropItemDimension(const ModelVersion& version, std::vector<HostTensorView>* inputs) {
  const bool batches = version.plan.batching.max_batch_size > 0;
  const BrickGraph& graph = version.servable->graph();
  for (HostTensorView& input : *inputs) {
    const int index = graph.FindInput(input.name);
    if (index >= 0 && OneValuePerItem(graph.inputs()[index], batches) && input.shape.size() == 2 &&
        input.shape[1] == 1) {
      input.shape.pop_back();
    }
  }
}

}  // namespace

absl::Status NormalizeRequest(grpc::ServerContextBase* context,
                              const inference::ModelInferRequest& request, Stage stage,
                              const ModelVersion& version, std::deque<std::string>* scratch,
                              PendingRequest* pending, SharedMemoryLease* lease) {
  pending->stage = stage;
  ASSIGN_OR_RETURN(pending->inputs, DecodeInputs(request, scratch, lease));
  DropItemDimension(version, &pending->inputs);
  pending->outputs = RequestedOutputs(request);
  if (context != nullptr && context->IsCancelled()) {
    return absl::CancelledError(
        "the request was cancelled (the client went away, or the server's shutdown timeout "
        "passed)");
  }
  if (absl::Status valid = version.servable->Validate(stage, pending->inputs, pending->outputs);
      !valid.ok()) {
    return absl::Status(valid.code(),
                        absl::StrCat("model '", version.model_name, "': ", valid.message()));
  }
  if (context != nullptr) {
    // gRPC reports "no deadline" as a time far in the future.
    const auto deadline = context->deadline();
    if (deadline < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
      pending->deadline = absl::FromChrono(deadline);
    }
    pending->cancelled = [context] { return context->IsCancelled(); };
  }
  return absl::OkStatus();
}

}  // namespace torchbricks::server
