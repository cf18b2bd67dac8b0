// ModelVersion: one loaded version of a model — its config and scheduling plan, the
// servable on every device its instances use, its counters and its running batcher.
// Built by LoadModelVersion (version_loader.h), held by ModelRepository and by the requests
// running on it. Immutable once loaded but for its statistics (thread-safe counters) and
// its batcher (thread-safe), so any thread may read it.
#ifndef TORCHBRICKS_SERVER_REPOSITORY_MODEL_VERSION_H_
#define TORCHBRICKS_SERVER_REPOSITORY_MODEL_VERSION_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/servable/servable_model.h"
#include "proto/model_config.pb.h"
#include "server/observability/version_stats.h"
#include "server/scheduling/dynamic_batcher.h"
#include "server/scheduling/scheduling_plan.h"

namespace torchbricks::server {

// One loaded model version. Immutable but for its statistics; shared by the repository
// and the requests running on it (hence std::shared_ptr).
struct ModelVersion {
  std::string model_name;
  int64_t version = 0;
  std::string version_string;  // "3"
  config::ModelConfig config;
  // The config with its defaults applied: batching, queue, instances.
  SchedulingPlan plan;
  // The model on its first device; graphs and metadata come from it.
  std::unique_ptr<ServableModel> servable;
  // Copies on further devices (GPU instances on other GPUs), by device name.
  std::map<std::string, std::unique_ptr<ServableModel>> other_devices;
  std::unique_ptr<VersionStats> statistics;  // never null
  double load_seconds = 0;                   // loading and warming up
  // What self-configuration chose and why (SelfConfiguration::summary); empty when it did
  // not run.
  std::string self_configuration;
  // Declared last, so it stops before the models it runs are destroyed.
  std::unique_ptr<DynamicBatcher> batcher;  // never null
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_REPOSITORY_MODEL_VERSION_H_
