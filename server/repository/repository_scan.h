// What a model repository folder holds right now: its model folders, each model's
// config.pbtxt and version folders, and which versions a version policy selects.
// Reads the file system only; keeps no state. Thread-safe.
#ifndef TORCHBRICKS_SERVER_REPOSITORY_REPOSITORY_SCAN_H_
#define TORCHBRICKS_SERVER_REPOSITORY_REPOSITORY_SCAN_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/model_config.pb.h"

namespace torchbricks::server {

struct ModelOnDisk {
  std::string name;
  std::filesystem::path dir;
  config::ModelConfig config;     // defaults when config.pbtxt is absent
  std::vector<int64_t> versions;  // positive integer subfolders, ascending
};

// The longest model name accepted (a path component on every common file system).
inline constexpr size_t kMaxModelNameBytes = 255;

// OK when `name` can name a model folder: one path component of the repository — not
// empty, not "." or "..", not hidden (leading '.'), no '/', '\\' or NUL, at most
// kMaxModelNameBytes bytes. NotFound otherwise (no such model can exist), with the name
// shortened in the message. Every place where a client's model name becomes a path calls it.
absl::Status CheckModelName(const std::string& name);

// The config.pbtxt text of model `name`. InvalidArgument when it is malformed or names
// another model.
absl::StatusOr<config::ModelConfig> ParseModelConfig(const std::string& name,
                                                     absl::string_view text);

// Names of the model folders under `root`, sorted. Hidden folders are skipped.
// NotFound when `root` is not a folder.
absl::StatusOr<std::vector<std::string>> ListModels(const std::filesystem::path& root);

// A version number in its one spelling: decimal digits without a sign, spaces or a leading
// zero ("1", not " 1", "+1" or "01", which would otherwise name version 1 too), at most 18
// digits, so below 2^63. True and `number` set when `text` is one. Used for version folders
// and for the versions requests name.
bool ParseVersionNumber(absl::string_view text, int64_t* number);

// Reads model `name` under `root`. NotFound when `name` fails CheckModelName or its folder
// is missing; InvalidArgument when config.pbtxt is malformed or names another model.
absl::StatusOr<ModelOnDisk> ScanModel(const std::filesystem::path& root, const std::string& name);

// The versions `policy` selects from `available` (ascending): by default the latest one.
std::vector<int64_t> SelectVersions(const config::ModelVersionPolicy& policy,
                                    const std::vector<int64_t>& available);

// The newest modification time of the files under a version folder, used to notice that a
// version that failed to load was rewritten. 0 when the folder is empty or unreadable.
int64_t VersionStamp(const std::filesystem::path& version_dir);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_REPOSITORY_REPOSITORY_SCAN_H_
