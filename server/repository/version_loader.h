// The loader of the model repository: turns one version folder and its model's config into
// a loaded ModelVersion (the servable on every device its instances need, its counters and
// its running batcher). It decides nothing about which versions to load; ModelRepository
// does. Thread-safe (no shared state).
#ifndef TORCHBRICKS_SERVER_REPOSITORY_VERSION_LOADER_H_
#define TORCHBRICKS_SERVER_REPOSITORY_VERSION_LOADER_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/servable/servable_model.h"
#include "proto/model_config.pb.h"
#include "server/repository/model_version.h"
#include "server/scheduling/scheduling_plan.h"

namespace torchbricks::server {

// Loads a version folder onto a device ("cpu", "cuda:0") with the model's config;
// `intra_op_threads` is the most any instance on that device will use (its warm-up runs
// with them) and `runners` how many instances on that device will run it at once
// (ServableModelOptions::runners).
using ServableLoader = std::function<absl::StatusOr<std::unique_ptr<ServableModel>>(
    const std::filesystem::path& version_dir, const std::string& device, int intra_op_threads,
    int runners, const config::ModelConfig& config)>;

struct VersionLoaderOptions {
  ServableLoader loader;   // required
  int cores = 2;           // CPU cores to share between CPU instances
  CudaInventory cuda;      // the GPUs instances may go to
  bool histograms = true;  // record latency and batch histograms (metrics on)
  // Self-configuration's measuring time per version (--self-configuration-seconds); zero
  // turns it off. See LoadModelVersion.
  absl::Duration self_configuration_budget = absl::ZeroDuration();
  // When not empty, a self-configured version's settings are written to
  // <dir>/<model>/config.pbtxt (--write-chosen-config); the directory must exist.
  std::filesystem::path chosen_config_dir;
  // Every version's BatcherOptions::spin_before_block (--spin-before-block-us).
  absl::Duration spin_before_block = absl::ZeroDuration();
};

// Plans the version's scheduling from `config`, loads a servable per device with
// `options.loader` and starts its batcher. The batcher never forms a batch larger than a
// compiled (AOTInductor) brick alive in INFERENCE or EXPORT takes: without max_batch_size
// in `config` the default is lowered to that brick's max_batch; an explicit max_batch_size
// (or a preferred batch size) above it is FailedPrecondition naming the brick and both
// sizes. On error (a bad config, a load failure) returns it, and nothing of the version is
// left running.
absl::StatusOr<std::shared_ptr<ModelVersion>> LoadModelVersion(const std::string& model,
                                                               int64_t version,
                                                               const std::filesystem::path& dir,
                                                               const config::ModelConfig& config,
                                                               const VersionLoaderOptions& options);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_REPOSITORY_VERSION_LOADER_H_
