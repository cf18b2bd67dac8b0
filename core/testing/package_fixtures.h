// Test-only: where the packages exported by tests/fixtures/make_fixtures.py live.
// The fixture step writes <name>/1 under the build's fixtures folder; the environment
// variable TORCHBRICKS_FIXTURES overrides the folder.
#ifndef TORCHBRICKS_CORE_TESTING_PACKAGE_FIXTURES_H_
#define TORCHBRICKS_CORE_TESTING_PACKAGE_FIXTURES_H_

#include <cstdlib>
#include <filesystem>
#include <string>

namespace torchbricks::testing {

// The version directory of fixture package `name`.
inline std::filesystem::path FixturePackage(const std::string& name) {
  const char* root = std::getenv("TORCHBRICKS_FIXTURES");
#ifdef TORCHBRICKS_DEFAULT_FIXTURES
  const char* fallback = TORCHBRICKS_DEFAULT_FIXTURES;
#else
  const char* fallback = "build/fixtures";
#endif
  return std::filesystem::path(root != nullptr ? root : fallback) / name / "1";
}

}  // namespace torchbricks::testing

#endif  // TORCHBRICKS_CORE_TESTING_PACKAGE_FIXTURES_H_
