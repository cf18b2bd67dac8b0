// ModelStatistics over gRPC, summed per model.
#include "bench/model_counters.h"

#include <chrono>

#include "proto/grpc_service.grpc.pb.h"

namespace torchbricks::bench {

double ModelCounters::AverageBatch() const {
  return execution_count == 0 ? 0 : static_cast<double>(inference_count) / execution_count;
}

double ModelCounters::QueueUsPerRequest() const {
  return success_count == 0 ? 0 : queue_ns / 1e3 / success_count;
}

// compute_infer adds a batch's run time once per request in it (as Triton counts), so
// per request it is the time of the run the request was part of.
double ModelCounters::InferUsPerExecution() const {
  return success_count == 0 ? 0 : compute_infer_ns / 1e3 / success_count;
}

ModelCounters operator-(const ModelCounters& later, const ModelCounters& earlier) {
  ModelCounters delta;
  delta.inference_count = later.inference_count - earlier.inference_count;
  delta.execution_count = later.execution_count - earlier.execution_count;
  delta.success_count = later.success_count - earlier.success_count;
  delta.queue_ns = later.queue_ns - earlier.queue_ns;
  delta.compute_infer_ns = later.compute_infer_ns - earlier.compute_infer_ns;
  return delta;
}

absl::StatusOr<ModelCounters> FetchModelCounters(const std::shared_ptr<grpc::Channel>& channel,
                                                 const std::string& model) {
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  inference::ModelStatisticsRequest request;
  request.set_name(model);
  inference::ModelStatisticsResponse response;
  const grpc::Status status = stub->ModelStatistics(&context, request, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        "ModelStatistics(" + model + "): " + status.error_message());
  }
  ModelCounters counters;
  for (const inference::ModelStatistics& stats : response.model_stats()) {
    if (stats.name() != model) continue;
    counters.inference_count += stats.inference_count();
    counters.execution_count += stats.execution_count();
    counters.success_count += stats.inference_stats().success().count();
    counters.queue_ns += stats.inference_stats().queue().ns();
    counters.compute_infer_ns += stats.inference_stats().compute_infer().ns();
  }
  return counters;
}

}  // namespace torchbricks::bench
