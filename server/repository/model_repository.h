// ModelRepository: the model repository manager. It decides which versions of which
// models are loaded (version policy × control mode), loads and warms new versions before
// retiring old ones, and hands out loaded versions to requests.
//
// Thread-safety: every public method may be called from any thread. Lookups take a
// short shared lock and never touch the filesystem; loading happens outside that lock,
// one model change at a time. A request holds a std::shared_ptr<const ModelVersion>, so a
// version retired while requests run on it stays alive until the last of them finishes;
// when the repository holds the last reference, the version is destroyed (batcher threads
// joined, modules freed) after the lookup lock is released, never under it.
#ifndef TORCHBRICKS_SERVER_REPOSITORY_MODEL_REPOSITORY_H_
#define TORCHBRICKS_SERVER_REPOSITORY_MODEL_REPOSITORY_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "core/servable/servable_model.h"
#include "proto/model_config.pb.h"
#include "server/observability/version_stats.h"
#include "server/repository/model_control_mode.h"
#include "server/repository/model_version.h"
#include "server/repository/repository_scan.h"
#include "server/repository/version_loader.h"

namespace torchbricks::server {

enum class VersionState { kLoading, kReady, kUnavailable };

// A row of RepositoryIndex.
struct IndexEntry {
  std::string model_name;
  std::string version;  // empty for a model with no version known
  std::string state;    // "READY", "LOADING", "UNAVAILABLE"
  std::string reason;   // why it is not ready
};

class ModelRepository {
 public:
  using Loader = ServableLoader;  // replaceable in tests

  struct Options {
    std::filesystem::path root;  // required
    ModelControlMode control_mode = ModelControlMode::kNone;
    absl::Duration poll_interval = absl::Seconds(15);  // poll mode only
    std::vector<std::string> startup_models;           // explicit mode only
    Loader loader;                                     // required
    int cores = 2;                                     // CPU cores to share between CPU instances
    CudaInventory cuda;                                // the GPUs instances may go to
    bool histograms = true;  // record latency and batch histograms (metrics on)
    // See VersionLoaderOptions: self-configuration's budget (zero: off) and where chosen
    // settings are written (empty: nowhere).
    absl::Duration self_configuration_budget = absl::ZeroDuration();
    std::filesystem::path chosen_config_dir;
    absl::Duration spin_before_block = absl::ZeroDuration();  // BatcherOptions'
  };

  // Scans `options.root` and loads the start-up models (all in none/poll mode, the named
  // ones in explicit mode), then starts polling in poll mode. A model that fails to load
  // is recorded UNAVAILABLE with its reason and does not fail Create(); a missing root or
  // an unknown start-up model does (NotFound).
  static absl::StatusOr<std::unique_ptr<ModelRepository>> Create(Options options);

  ~ModelRepository();  // stops polling; loaded versions live on while requests hold them
  ModelRepository(const ModelRepository&) = delete;
  ModelRepository& operator=(const ModelRepository&) = delete;

  // The ready version `version` ("" means the newest ready one) of
  // `model`. NotFound for a model not in the repository or an unknown version;
  // Unavailable for a known model or version that is not ready (message says why).
  absl::StatusOr<std::shared_ptr<const ModelVersion>> Find(const std::string& model,
                                                           const std::string& version) const;

  // Failed version loads per model since start.
  std::map<std::string, uint64_t> LoadFailures() const;

  // Every ready version of `model`, ascending; empty when none.
  std::vector<std::shared_ptr<const ModelVersion>> ReadyVersions(const std::string& model) const;

  // Every model folder in the repository with the state of each known version; with
  // `ready_only`, only ready versions.
  std::vector<IndexEntry> Index(bool ready_only) const;

  // Explicit mode: (re)loads `model` per its version policy; the versions that served
  // before keep serving until the new ones are ready, and stay when none loads.
  // NotFound for a model not in the repository; FailedPrecondition outside explicit mode;
  // the load error when no selected version could be loaded.
  absl::Status LoadModel(const std::string& model);

  // Explicit mode: unloads every version of `model` (requests in flight finish).
  // NotFound for an unknown model; FailedPrecondition outside explicit mode.
  absl::Status UnloadModel(const std::string& model);

  // Re-scans the repository once, as the poll thread does: new versions are loaded,
  // versions the policy no longer selects are retired once a selected one is ready,
  // removed models are unloaded. Public so tests can drive it.
  absl::Status PollOnce();

 private:
  struct VersionRecord {
    VersionState state = VersionState::kLoading;
    std::string reason;
    int64_t failed_stamp = 0;  // VersionStamp() when loading failed
    std::shared_ptr<const ModelVersion> loaded;
  };
  struct ModelRecord {
    std::map<int64_t, VersionRecord> versions;
    std::string reason;  // a model-level problem (bad config), else empty
  };

  explicit ModelRepository(Options options) : options_(std::move(options)) {}

  // Brings `model` in line with `disk`, its scan (ScanModel). Must hold sync_mu_.
  absl::Status SyncModel(const std::string& model, absl::StatusOr<ModelOnDisk> disk)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sync_mu_);
  void RemoveModel(const std::string& model) ABSL_EXCLUSIVE_LOCKS_REQUIRED(sync_mu_);
  // Records the model folders found by a scan of the root, keeping known version lists.
  void RememberModelsOnDisk(const std::vector<std::string>& names) ABSL_LOCKS_EXCLUDED(mu_);
  void PollLoop();

  const Options options_;
  // Serialises changes (poll, load, unload); held while loading, never by lookups.
  absl::Mutex sync_mu_;
  // Guards the records; held only briefly.
  mutable absl::Mutex mu_ ABSL_ACQUIRED_AFTER(sync_mu_);
  std::map<std::string, ModelRecord> models_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> load_failures_ ABSL_GUARDED_BY(mu_);
  // What the last scans saw on disk: model folder -> its version folders (empty until the
  // model itself was scanned). Lets lookups tell "unknown" from "not loaded" without I/O.
  std::map<std::string, std::vector<int64_t>> on_disk_ ABSL_GUARDED_BY(mu_);

  absl::Notification stop_polling_;
  std::thread poll_thread_;
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_REPOSITORY_MODEL_REPOSITORY_H_
