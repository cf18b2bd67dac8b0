// Test-only: where the packages exported by tests/fixtures/make_fixtures.py live.
// ctest sets TORCHBRICKS_FIXTURES; the fixture step writes <name>/1 under it.
#ifndef TORCHBRICKS_CORE_TESTING_PACKAGE_FIXTURES_H_
#define TORCHBRICKS_CORE_TESTING_PACKAGE_FIXTURES_H_

#include <cstdlib>
#include <filesystem>
#include <string>

namespace torchbricks::testing {

// The version directory of fixture package `name`.
inline std::filesystem::path FixturePackage(const std::string& name) {
  const char* root = std::getenv("TORCHBRICKS_FIXTURES");
  return std::filesystem::path(root != nullptr ? root : "build/fixtures") / name / "1";
}

}  // namespace torchbricks::testing

#endif  // TORCHBRICKS_CORE_TESTING_PACKAGE_FIXTURES_H_
