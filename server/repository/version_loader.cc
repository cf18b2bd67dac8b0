#include "server/repository/version_loader.h"

#include <algorithm>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "core/graph/brick_graph.h"
#include "google/protobuf/text_format.h"
#include "server/observability/logging.h"
#include "server/scheduling/calibration.h"
#include "server/scheduling/scheduling_plan.h"
#include "server/scheduling/self_configuration.h"

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

// Whether self-configuration measures a version, and what.
struct CalibrationRequest {
  bool measure = false;
  OpenSettings open;
  absl::Duration objective = absl::InfiniteDuration();
  std::vector<Layout> layouts;  // what to measure when `measure`
};

// Reads the self-configuration parameters (InvalidArgument when bad, measured or not) and
// decides whether to measure: see LoadModelVersion's contract.
absl::StatusOr<CalibrationRequest> PlanCalibration(const config::ModelConfig& config,
                                                   const SchedulingPlan& plan,
                                                   const VersionLoaderOptions& options) {
  CalibrationRequest request;
  ASSIGN_OR_RETURN(const bool wanted, SelfConfigurationWanted(config));
  ASSIGN_OR_RETURN(request.objective, LatencyObjectiveOf(config));
  request.open = OpenSettingsOf(config);
  if (!wanted || options.self_configuration_budget <= absl::ZeroDuration() || !request.open.any() ||
      plan.batching.max_batch_size <= 0 || plan.devices() != std::vector<std::string>{"cpu"}) {
    return request;
  }
  if (request.open.layout) {
    request.layouts = CandidateLayouts(options.cores);
  } else {
    // The config's own layout, when its groups make one (equal threads everywhere).
    const int threads = plan.instances.front().intra_op_threads;
    for (const SchedulingPlan::Instance& instance : plan.instances) {
      if (instance.intra_op_threads != threads) return request;
    }
    request.layouts = {Layout{static_cast<int>(plan.instances.size()), threads}};
  }
  request.measure = true;
  return request;
}

// "1x1 b1 812 rows/s 1.23 ms, ..." for the log.
std::string PointsText(const std::vector<CalibrationPoint>& points) {
  return absl::StrJoin(points, ", ", [](std::string* out, const CalibrationPoint& point) {
    absl::StrAppend(out, point.layout.instances, "x", point.layout.intra_op_threads, " b",
                    point.batch, " ", absl::StrFormat("%.0f", point.rows_per_second), " rows/s ",
                    absl::StrFormat("%.2f", absl::ToDoubleMilliseconds(point.run_time)), " ms");
  });
}

// Writes `pinned` to <dir>/<model>/config.pbtxt; a failure is logged, not returned (the
// version serves either way).
void WritePinnedConfig(const std::filesystem::path& dir, const std::string& model,
                       const config::ModelConfig& pinned) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(pinned, &text);
  const std::filesystem::path folder = dir / model;  // `model` is one checked folder name
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  std::ofstream out(folder / "config.pbtxt", std::ios::trunc);
  out << "# Chosen by torchbricks-server's self-configuration; pin it as the model's "
         "config.pbtxt.\n"
      << text;
  out.close();
  if (error || !out) {
    Log(LogLevel::kWarning, absl::StrCat("could not write the chosen config of model '", model,
                                         "' to ", (folder / "config.pbtxt").string()));
  }
}

// Measures `version` and writes the choice into `plan` and `version->self_configuration`.
void SelfConfigure(const CalibrationRequest& request, const VersionLoaderOptions& options,
                   SchedulingPlan* plan, ModelVersion* version) {
  const std::string what = absl::StrCat("self-configuration of model '", version->model_name,
                                        "' version ", version->version);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<CalibrationPoint>> points =
      Calibrate(*version->servable, {.layouts = request.layouts,
                                     .batches = CalibrationBatches(plan->batching.max_batch_size),
                                     .budget = options.self_configuration_budget});
  if (!points.ok()) {
    Log(LogLevel::kWarning,
        absl::StrCat(what, " skipped, the defaults stay: ", points.status().message()));
    return;
  }
  Log(LogLevel::kInfo,
      absl::StrCat(what, " measured ", points->size(), " points in ",
                   absl::StrFormat("%.2f", absl::ToDoubleSeconds(absl::Now() - start)),
                   " s: ", PointsText(*points)));
  const SelfConfiguration chosen =
      ChooseConfiguration(*points, request.open, plan->batching, request.objective);
  if (request.open.layout) {
    plan->instances.assign(chosen.layout.instances,
                           {.device = "cpu", .intra_op_threads = chosen.layout.intra_op_threads});
    plan->placement = absl::StrCat(chosen.layout.ToString(), " on cpu (self-configured)");
  }
  plan->batching.preferred_batch_sizes = chosen.preferred_batch_sizes;
  plan->batching.max_queue_delay = chosen.max_queue_delay;
  plan->batching.max_batch_size = chosen.max_batch_size;
  version->self_configuration = chosen.summary;
  Log(LogLevel::kInfo, absl::StrCat(what, " chose ", chosen.summary));
  if (!options.chosen_config_dir.empty()) {
    WritePinnedConfig(options.chosen_config_dir, version->model_name,
                      PinnedConfig(version->config, request.open, chosen));
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<ModelVersion>> LoadModelVersion(
    const std::string& model, int64_t version, const std::filesystem::path& dir,
    const config::ModelConfig& config, const VersionLoaderOptions& options) {
  ASSIGN_OR_RETURN(SchedulingPlan plan, PlanScheduling(config, options.cuda, options.cores));
  ASSIGN_OR_RETURN(const CalibrationRequest calibration, PlanCalibration(config, plan, options));
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
    int runners = plan.InstancesOn(device);
    for (const Layout& layout : calibration.layouts) {  // any layout may be chosen
      intra_op_threads = std::max(intra_op_threads, layout.intra_op_threads);
      runners = std::max(runners, layout.instances);
    }
    ASSIGN_OR_RETURN(std::unique_ptr<ServableModel> servable,
                     options.loader(dir, device, intra_op_threads, runners, config));
    if (loaded->servable == nullptr) {
      loaded->servable = std::move(servable);
    } else {
      loaded->other_devices[device] = std::move(servable);
    }
  }
  RETURN_IF_ERROR(FitBatchesToCompiledBricks(loaded->servable->graph(), config, &plan.batching));
  if (calibration.measure) SelfConfigure(calibration, options, &plan, loaded.get());
  loaded->plan = plan;
  loaded->statistics = std::make_unique<VersionStats>(
      static_cast<int>(loaded->servable->graph().bricks().size()), options.histograms);
  BatcherOptions batcher;
  batcher.batching = plan.batching;
  batcher.spin_before_block = options.spin_before_block;
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
