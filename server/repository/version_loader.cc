#include "server/repository/version_loader.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/graph/brick_graph.h"
#include "server/scheduling/scheduling_plan.h"

namespace torchbricks::server {
namespace {

// Keeps `policy` within the batches the compiled bricks alive in INFERENCE or EXPORT take:
// a default max_batch_size is lowered to the smallest max_batch; an explicit one above it,
// or a preferred size above it, is FailedPrecondition. A model that does not batch
// (max_batch_size 0) runs each request as sent, which Validate() checks.
absl::Status FitBatchesToCompiledBricks(const BrickGraph& graph, const config::ModelConfig& config,
                                        BatchPolicy* policy) {
  BatchRange narrowest;
  for (Stage stage : {Stage::kInference, Stage::kExport}) {
    const BatchRange range = graph.CompiledBatchRange(stage);
    if (range.bounded() && (!narrowest.bounded() || range.max < narrowest.max)) narrowest = range;
  }
  if (!narrowest.bounded() || policy->max_batch_size <= narrowest.max) return absl::OkStatus();
  const std::string limit =
      absl::StrCat("brick '", narrowest.max_brick, "' is compiled for batches of at most ",
                   narrowest.max, " rows");
  if (config.has_max_batch_size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "config.pbtxt's max_batch_size ", policy->max_batch_size, " is too large: ", limit,
        "; set max_batch_size to at most ", narrowest.max, " (or export with a larger range)"));
  }
  for (int size : policy->preferred_batch_sizes) {
    if (size > narrowest.max) {
      return absl::FailedPreconditionError(
          absl::StrCat("config.pbtxt's preferred_batch_size ", size, " is too large: ", limit));
    }
  }
  policy->max_batch_size = static_cast<int>(narrowest.max);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<ModelVersion>> LoadModelVersion(
    const std::string& model, int64_t version, const std::filesystem::path& dir,
    const config::ModelConfig& config, const VersionLoaderOptions& options) {
  ASSIGN_OR_RETURN(SchedulingPlan plan, PlanScheduling(config, options.cuda, options.cores));
  auto loaded = std::make_shared<ModelVersion>();
  loaded->model_name = model;
  loaded->version = version;
  loaded->version_string = std::to_string(version);
  loaded->config = config;
  const std::vector<std::string> devices = plan.devices();
  for (const std::string& device : devices) {
    int intra_op_threads = 0;
    for (const SchedulingPlan::Instance& instance : plan.instances) {
      if (instance.device == device) {
        intra_op_threads = std::max(intra_op_threads, instance.intra_op_threads);
      }
    }
    ASSIGN_OR_RETURN(
        std::unique_ptr<ServableModel> servable,
        options.loader(dir, device, intra_op_threads, plan.InstancesOn(device), config));
    if (loaded->servable == nullptr) {
      loaded->servable = std::move(servable);
    } else {
      loaded->other_devices[device] = std::move(servable);
    }
  }
  RETURN_IF_ERROR(FitBatchesToCompiledBricks(loaded->servable->graph(), config, &plan.batching));
  loaded->plan = plan;
  loaded->statistics = std::make_unique<VersionStats>(
      static_cast<int>(loaded->servable->graph().bricks().size()), options.histograms);
  BatcherOptions batcher;
  batcher.batching = plan.batching;
  for (const SchedulingPlan::Instance& instance : plan.instances) {
    const ServableModel* servable = instance.device == devices.front()
                                        ? loaded->servable.get()
                                        : loaded->other_devices.at(instance.device).get();
    batcher.instances.push_back({servable, instance.device, instance.intra_op_threads});
  }
  ASSIGN_OR_RETURN(loaded->batcher,
                   DynamicBatcher::Create(std::move(batcher), loaded->statistics.get()));
  return loaded;
}

}  // namespace torchbricks::server
