#include "server/repository/model_repository.h"

#include <algorithm>
#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "server/observability/logging.h"
#include "server/repository/repository_scan.h"

namespace torchbricks::server {

namespace fs = std::filesystem;

namespace {

const char* StateName(VersionState state) {
  switch (state) {
    case VersionState::kLoading:
      return "LOADING";
    case VersionState::kReady:
      return "READY";
    default:
      return "UNAVAILABLE";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Create(Options options) {
  ASSIGN_OR_RETURN(std::vector<std::string> on_disk, ListModels(options.root));
  std::unique_ptr<ModelRepository> repository(new ModelRepository(std::move(options)));
  repository->RememberModelsOnDisk(on_disk);
  const Options& opts = repository->options_;
  std::vector<std::string> to_load = on_disk;
  if (opts.control_mode == ModelControlMode::kExplicit) {
    to_load = opts.startup_models;
    for (const std::string& name : to_load) {
      if (std::find(on_disk.begin(), on_disk.end(), name) == on_disk.end()) {
        return absl::NotFoundError(
            absl::StrCat("--load-model '", name, "' is not in the model repository"));
      }
    }
  }
  {
    absl::MutexLock lock(&repository->sync_mu_);
    for (const std::string& name : to_load) {
      absl::Status status = repository->SyncModel(name, ScanModel(repository->options_.root, name));
      if (!status.ok()) Log(LogLevel::kError, status.message());
    }
  }
  if (opts.control_mode == ModelControlMode::kPoll) {
    repository->poll_thread_ = std::thread([r = repository.get()] { r->PollLoop(); });
  }
  return repository;
}

ModelRepository::~ModelRepository() {
  stop_polling_.Notify();
  if (poll_thread_.joinable()) poll_thread_.join();
}

void ModelRepository::PollLoop() {
  while (!stop_polling_.WaitForNotificationWithTimeout(options_.poll_interval)) {
    absl::Status status = PollOnce();
    if (!status.ok()) Log(LogLevel::kWarning, absl::StrCat("poll: ", status.message()));
  }
}

void ModelRepository::RememberModelsOnDisk(const std::vector<std::string>& names) {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::vector<int64_t>> seen;
  for (const std::string& name : names) {
    auto known = on_disk_.find(name);
    seen[name] = known == on_disk_.end() ? std::vector<int64_t>() : std::move(known->second);
  }
  on_disk_ = std::move(seen);
}

absl::Status ModelRepository::PollOnce() {
  absl::MutexLock lock(&sync_mu_);
  ASSIGN_OR_RETURN(std::vector<std::string> on_disk, ListModels(options_.root));
  RememberModelsOnDisk(on_disk);
  std::vector<std::string> known;
  {
    absl::MutexLock records(&mu_);
    for (const auto& [name, record] : models_) known.push_back(name);
  }
  for (const std::string& name : known) {
    if (std::find(on_disk.begin(), on_disk.end(), name) == on_disk.end()) RemoveModel(name);
  }
  for (const std::string& name : on_disk) {
    absl::Status status = SyncModel(name, ScanModel(options_.root, name));
    if (!status.ok()) Log(LogLevel::kError, status.message());
  }
  return absl::OkStatus();
}

void ModelRepository::RemoveModel(const std::string& model) {
  ModelRecord retired;  // destroyed after the lock is released (see the header)
  absl::MutexLock lock(&mu_);
  auto it = models_.find(model);
  if (it == models_.end()) return;
  retired = std::move(it->second);
  models_.erase(it);
  Log(LogLevel::kInfo, absl::StrCat("unloaded model '", model, "' (all versions)"));
}

absl::Status ModelRepository::SyncModel(const std::string& model,
                                        absl::StatusOr<ModelOnDisk> disk) {
  if (!disk.ok()) {
    absl::MutexLock lock(&mu_);
    models_[model].reason = std::string(disk.status().message());
    return disk.status();
  }
  const std::vector<int64_t> wanted = SelectVersions(disk->config.version_policy(), disk->versions);
  std::vector<int64_t> to_load;
  {
    absl::MutexLock lock(&mu_);
    on_disk_[model] = disk->versions;
    ModelRecord& record = models_[model];
    record.reason.clear();
    if (wanted.empty()) record.reason = "no version folder selected by the version policy";
    for (int64_t version : wanted) {
      auto it = record.versions.find(version);
      if (it != record.versions.end() && it->second.state == VersionState::kReady) continue;
      const int64_t stamp = VersionStamp(disk->dir / std::to_string(version));
      if (it != record.versions.end() && it->second.state == VersionState::kUnavailable &&
          it->second.failed_stamp == stamp) {
        continue;  // failed before and unchanged since: do not retry every poll
      }
      record.versions[version].state = VersionState::kLoading;
      to_load.push_back(version);
    }
  }

  absl::Status first_error;
  for (int64_t version : to_load) {
    const fs::path dir = disk->dir / std::to_string(version);
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::shared_ptr<ModelVersion>> loaded =
        LoadModelVersion(model, version, dir, disk->config,
                         {.loader = options_.loader,
                          .cores = options_.cores,
                          .cuda = options_.cuda,
                          .histograms = options_.histograms,
                          .self_configuration_budget = options_.self_configuration_budget,
                          .chosen_config_dir = options_.chosen_config_dir,
                          .spin_before_block = options_.spin_before_block});
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    absl::MutexLock lock(&mu_);
    VersionRecord& record = models_[model].versions[version];
    if (!loaded.ok()) {
      record.state = VersionState::kUnavailable;
      record.reason = std::string(loaded.status().message());
      record.failed_stamp = VersionStamp(dir);
      ++load_failures_[model];
      Log(LogLevel::kError, absl::StrCat("failed to load model '", model, "' version ", version,
                                         ": ", record.reason));
      if (first_error.ok()) {
        first_error = absl::Status(
            loaded.status().code(),
            absl::StrCat("model '", model, "' version ", version, ": ", loaded.status().message()));
      }
      continue;
    }
    record.state = VersionState::kReady;
    record.reason.clear();
    (*loaded)->load_seconds = seconds;
    record.loaded = *std::move(loaded);
    Log(LogLevel::kInfo,
        absl::StrCat("loaded model '", model, "' version ", version, " in ",
                     absl::StrFormat("%.3f", seconds), " s: ", record.loaded->plan.placement));
  }

  // Retire what the policy no longer selects, but only once a selected version serves.
  // Retired versions are destroyed after the lock is released (declared before it).
  std::vector<std::shared_ptr<const ModelVersion>> retired;
  absl::MutexLock lock(&mu_);
  ModelRecord& record = models_[model];
  const bool any_wanted_ready = std::any_of(wanted.begin(), wanted.end(), [&](int64_t v) {
    auto it = record.versions.find(v);
    return it != record.versions.end() && it->second.state == VersionState::kReady;
  });
  for (auto it = record.versions.begin(); it != record.versions.end();) {
    const bool is_wanted = std::find(wanted.begin(), wanted.end(), it->first) != wanted.end();
    const bool gone_from_disk =
        std::find(disk->versions.begin(), disk->versions.end(), it->first) == disk->versions.end();
    if (!is_wanted &&
        (any_wanted_ready || gone_from_disk || it->second.state != VersionState::kReady)) {
      if (it->second.state == VersionState::kReady) {
        Log(LogLevel::kInfo, absl::StrCat("unloaded model '", model, "' version ", it->first));
      }
      retired.push_back(std::move(it->second.loaded));
      it = record.versions.erase(it);
    } else {
      ++it;
    }
  }
  return first_error;
}

absl::StatusOr<std::shared_ptr<const ModelVersion>> ModelRepository::Find(
    const std::string& model, const std::string& version) const {
  RETURN_IF_ERROR(CheckModelName(model));
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = models_.find(model);
    if (it != models_.end()) {
      const ModelRecord& record = it->second;
      if (version.empty()) {
        for (auto v = record.versions.rbegin(); v != record.versions.rend(); ++v) {
          if (v->second.state == VersionState::kReady) return v->second.loaded;
        }
        std::vector<std::string> why;
        for (const auto& [number, state] : record.versions) {
          why.push_back(absl::StrCat("version ", number, " ", StateName(state.state),
                                     state.reason.empty() ? "" : ": ", state.reason));
        }
        if (!record.reason.empty()) why.push_back(record.reason);
        return absl::UnavailableError(
            absl::StrCat("model '", model, "' has no ready version",
                         why.empty() ? "" : absl::StrCat(" (", absl::StrJoin(why, "; "), ")")));
      }
      int64_t number = 0;
      if (!ParseVersionNumber(version, &number)) {
        return absl::NotFoundError(
            absl::StrCat("model '", model, "' has no version '", version, "'"));
      }
      auto v = record.versions.find(number);
      if (v != record.versions.end()) {
        if (v->second.state == VersionState::kReady) return v->second.loaded;
        return absl::UnavailableError(absl::StrCat(
            "model '", model, "' version ", number, " is not ready (", StateName(v->second.state),
            v->second.reason.empty() ? "" : ": ", v->second.reason, ")"));
      }
    }
  }
  // Not loaded: tell an unknown model or version from one that is on disk, from the
  // last scan (no filesystem access on this path).
  absl::ReaderMutexLock lock(&mu_);
  auto disk = on_disk_.find(model);
  if (disk == on_disk_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown model '", model, "'"));
  }
  int64_t number = 0;
  if (!version.empty() && !disk->second.empty() &&
      (!ParseVersionNumber(version, &number) ||
       std::find(disk->second.begin(), disk->second.end(), number) == disk->second.end())) {
    return absl::NotFoundError(absl::StrCat("model '", model, "' has no version '", version, "'"));
  }
  return absl::UnavailableError(absl::StrCat(
      "model '", model, "'", version.empty() ? "" : " version " + version, " is not loaded"));
}

std::vector<std::shared_ptr<const ModelVersion>> ModelRepository::ReadyVersions(
    const std::string& model) const {
  std::vector<std::shared_ptr<const ModelVersion>> result;
  absl::ReaderMutexLock lock(&mu_);
  auto it = models_.find(model);
  if (it == models_.end()) return result;
  for (const auto& [number, record] : it->second.versions) {
    if (record.state == VersionState::kReady) result.push_back(record.loaded);
  }
  return result;
}

std::map<std::string, uint64_t> ModelRepository::LoadFailures() const {
  absl::ReaderMutexLock lock(&mu_);
  return load_failures_;
}

std::vector<IndexEntry> ModelRepository::Index(bool ready_only) const {
  std::vector<IndexEntry> entries;
  absl::StatusOr<std::vector<std::string>> on_disk = ListModels(options_.root);
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::string> names = on_disk.ok() ? *on_disk : std::vector<std::string>();
  for (const auto& [name, record] : models_) {
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    auto it = models_.find(name);
    if (it == models_.end() || it->second.versions.empty()) {
      if (!ready_only) {
        entries.push_back(
            {name, "", "UNAVAILABLE", it == models_.end() ? "not loaded" : it->second.reason});
      }
      continue;
    }
    for (const auto& [number, record] : it->second.versions) {
      if (ready_only && record.state != VersionState::kReady) continue;
      entries.push_back({name, std::to_string(number), StateName(record.state), record.reason});
    }
  }
  return entries;
}

absl::Status ModelRepository::LoadModel(const std::string& model) {
  if (options_.control_mode != ModelControlMode::kExplicit) {
    return absl::FailedPreconditionError(
        "explicit model load and unload need --model-control-mode explicit");
  }
  absl::MutexLock lock(&sync_mu_);
  ASSIGN_OR_RETURN(ModelOnDisk disk, ScanModel(options_.root, model));
  if (SelectVersions(disk.config.version_policy(), disk.versions).empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", model, "' has no version folder that its version policy selects (",
                     disk.versions.size(), " numbered version folders found)"));
  }
  return SyncModel(model, std::move(disk));
}

absl::Status ModelRepository::UnloadModel(const std::string& model) {
  if (options_.control_mode != ModelControlMode::kExplicit) {
    return absl::FailedPreconditionError(
        "explicit model load and unload need --model-control-mode explicit");
  }
  RETURN_IF_ERROR(CheckModelName(model));
  absl::MutexLock lock(&sync_mu_);
  {
    absl::ReaderMutexLock records(&mu_);
    if (models_.find(model) == models_.end()) {
      std::error_code ec;  // a management call: the folder may be newer than the last scan
      if (on_disk_.find(model) == on_disk_.end() && !fs::is_directory(options_.root / model, ec)) {
        return absl::NotFoundError(absl::StrCat("unknown model '", model, "'"));
      }
      return absl::OkStatus();  // in the repository but not loaded: nothing to do
    }
  }
  RemoveModel(model);
  return absl::OkStatus();
}

}  // namespace torchbricks::server
