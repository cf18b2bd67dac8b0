// Test-only: fixture packages loaded through core/, and the names of the bricks a run
// executed. For GoogleTest tests that link torchbricks_execution.
#ifndef TORCHBRICKS_CORE_TESTING_LOADED_FIXTURES_H_
#define TORCHBRICKS_CORE_TESTING_LOADED_FIXTURES_H_

#include <memory>
#include <string>
#include <vector>

#include "core/execution/loaded_collection.h"
#include "core/testing/package_fixtures.h"
#include "gtest/gtest.h"

namespace torchbricks::testing {

// Fixture package `name` loaded, or null after a failed expectation that says why.
inline std::unique_ptr<LoadedCollection> LoadFixture(const std::string& name) {
  auto loaded = LoadedCollection::Load({.version_dir = FixturePackage(name)});
  EXPECT_TRUE(loaded.ok()) << name << ": " << loaded.status();
  return loaded.ok() ? *std::move(loaded) : nullptr;
}

// The full names of the bricks in `trace`, in the order they ran.
inline std::vector<std::string> BrickNamesOf(const LoadedCollection& collection,
                                             const RunTrace& trace) {
  std::vector<std::string> names;
  for (int b : trace.bricks) names.push_back(collection.graph().bricks()[b].name);
  return names;
}

}  // namespace torchbricks::testing

#endif  // TORCHBRICKS_CORE_TESTING_LOADED_FIXTURES_H_
