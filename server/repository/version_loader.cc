#include "server/repository/version_loader.h"

#include <algorithm>
#include <vector>

#include "base/status_macros.h"
#include "server/scheduling/scheduling_plan.h"

namespace torchbricks::server {

absl::StatusOr<std::shared_ptr<ModelVersion>> LoadModelVersion(
    const std::string& model, int64_t version, const std::filesystem::path& dir,
    const config::ModelConfig& config, const VersionLoaderOptions& options) {
  ASSIGN_OR_RETURN(SchedulingPlan plan, PlanScheduling(config, options.cuda, options.cores));
  auto loaded = std::make_shared<ModelVersion>();
  loaded->model_name = model;
  loaded->version = version;
  loaded->version_string = std::to_string(version);
  loaded->config = config;
  loaded->plan = plan;
  const std::vector<std::string> devices = plan.devices();
  for (const std::string& device : devices) {
    int intra_op_threads = 0;
    for (const SchedulingPlan::Instance& instance : plan.instances) {
      if (instance.device == device) {
        intra_op_threads = std::max(intra_op_threads, instance.intra_op_threads);
      }
    }
    ASSIGN_OR_RETURN(std::unique_ptr<ServableModel> servable,
                     options.loader(dir, device, intra_op_threads, config));
    if (loaded->servable == nullptr) {
      loaded->servable = std::move(servable);
    } else {
      loaded->other_devices[device] = std::move(servable);
    }
  }
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
