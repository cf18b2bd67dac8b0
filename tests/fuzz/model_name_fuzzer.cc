// Fuzz target: model-name resolution (CheckModelName). Any byte string is a name a client
// can send. Invariants: an accepted name is exactly one plain path component of the
// repository (so root / name stays inside root), and a refusal is NotFound with a message
// bounded in size whatever the name's length.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "server/repository/repository_scan.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name(reinterpret_cast<const char*>(data), size);
  const absl::Status status = torchbricks::server::CheckModelName(name);
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kNotFound);
    FUZZ_CHECK(status.message().size() < 512);
    return 0;
  }
  FUZZ_CHECK(!name.empty() && name.size() <= torchbricks::server::kMaxModelNameBytes);
  FUZZ_CHECK(name.find('\0') == std::string::npos);
  const std::filesystem::path root("/repository");
  const std::filesystem::path joined = (root / name).lexically_normal();
  // One component below root: its parent is root and its file name is the name itself.
  FUZZ_CHECK(joined.parent_path() == root);
  FUZZ_CHECK(joined.filename().string() == name);
  FUZZ_CHECK(
      std::distance(std::filesystem::path(name).begin(), std::filesystem::path(name).end()) == 1);
  return 0;
}
