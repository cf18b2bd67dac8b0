#include "server/repository/repository_scan.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"

namespace torchbricks::server {

namespace fs = std::filesystem;

absl::Status CheckModelName(const std::string& name) {
  const bool bad = name.empty() || name == "." || name == ".." || name[0] == '.' ||
                   name.size() > kMaxModelNameBytes ||
                   name.find_first_of(std::string("/\\\0", 3)) != std::string::npos;
  if (!bad) return absl::OkStatus();
  std::string shown = name.substr(0, 64);
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  return absl::NotFoundError(absl::StrCat(
      "unknown model '", shown, name.size() > shown.size() ? "...'" : "'",
      ": a model name is one folder name of the repository (no '/', '\\', NUL, leading '.', "
      "at most ",
      kMaxModelNameBytes, " bytes)"));
}

absl::StatusOr<config::ModelConfig> ParseModelConfig(const std::string& name,
                                                     absl::string_view text) {
  config::ModelConfig config;
  if (!google::protobuf::TextFormat::ParseFromString(std::string(text), &config)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", name, "': config.pbtxt is malformed"));
  }
  if (!config.name().empty() && config.name() != name) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", name, "': config.pbtxt names '", config.name(), "'"));
  }
  return config;
}

absl::StatusOr<std::vector<std::string>> ListModels(const fs::path& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return absl::NotFoundError(
        absl::StrCat("model repository '", root.string(), "' is not a folder"));
  }
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && name[0] != '.' && entry.is_directory(ec)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<ModelOnDisk> ScanModel(const fs::path& root, const std::string& name) {
  if (absl::Status valid = CheckModelName(name); !valid.ok()) return valid;
  ModelOnDisk model;
  model.name = name;
  model.dir = root / name;
  std::error_code ec;
  if (!fs::is_directory(model.dir, ec)) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' is not in the repository"));
  }
  const fs::path config_path = model.dir / "config.pbtxt";
  if (fs::exists(config_path, ec)) {
    std::ifstream file(config_path);
    std::stringstream text;
    text << file.rdbuf();
    absl::StatusOr<config::ModelConfig> config = ParseModelConfig(name, text.str());
    if (!config.ok()) return config.status();
    model.config = *std::move(config);
  }
  for (const fs::directory_entry& entry : fs::directory_iterator(model.dir, ec)) {
    int64_t version = 0;
    if (entry.is_directory(ec) && ParseVersionNumber(entry.path().filename().string(), &version)) {
      model.versions.push_back(version);
    }
  }
  std::sort(model.versions.begin(), model.versions.end());
  return model;
}

std::vector<int64_t> SelectVersions(const config::ModelVersionPolicy& policy,
                                    const std::vector<int64_t>& available) {
  switch (policy.policy_choice_case()) {
    case config::ModelVersionPolicy::kAll:
      return available;
    case config::ModelVersionPolicy::kSpecific: {
      std::vector<int64_t> selected;
      for (int64_t version : available) {
        const auto& wanted = policy.specific().versions();
        if (std::find(wanted.begin(), wanted.end(), version) != wanted.end()) {
          selected.push_back(version);
        }
      }
      return selected;
    }
    default: {
      const size_t n =
          policy.has_latest() ? std::max<uint32_t>(policy.latest().num_versions(), 1) : 1;
      const size_t keep = std::min(n, available.size());
      return std::vector<int64_t>(available.end() - keep, available.end());
    }
  }
}

int64_t VersionStamp(const fs::path& version_dir) {
  std::error_code ec;
  // file_time_type's epoch is not 1970 (libstdc++ uses 2174), so counts can be negative.
  int64_t newest = std::numeric_limits<int64_t>::min();
  for (auto it = fs::recursive_directory_iterator(version_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto time = fs::last_write_time(it->path(), ec);
    if (!ec) newest = std::max<int64_t>(newest, time.time_since_epoch().count());
  }
  return newest == std::numeric_limits<int64_t>::min() ? 0 : newest;
}

bool ParseVersionNumber(absl::string_view text, int64_t* number) {
  constexpr size_t kMaxDigits = 18;
  if (text.empty() || text.size() > kMaxDigits || text[0] == '0') return false;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  *number = value;
  return true;
}

}  // namespace torchbricks::server
