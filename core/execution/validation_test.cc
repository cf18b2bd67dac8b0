// Every load-time refusal names its culprit. The packages come from make_fixtures.py.
#include <fstream>
#include "core/execution/loaded_collection.h"
#include "core/testing/package_fixtures.h"
#include "gtest/gtest.h"

namespace torchbricks {
namespace {

using ::torchbricks::testing::FixturePackage;

struct InvalidCase {
  const char* package;
  absl::StatusCode code;
  std::vector<std::string> culprits;  // each must appear in the message
};

class InvalidPackageTest : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidPackageTest, IsRefusedWithAMessageNamingTheCulprit) {
  const InvalidCase& c = GetParam();
  auto loaded = LoadedCollection::Load({.version_dir = FixturePackage(c.package)});
  ASSERT_FALSE(loaded.ok()) << c.package << " loaded although it is invalid";
  EXPECT_EQ(loaded.status().code(), c.code) << loaded.status();
  for (const std::string& culprit : c.culprits) {
    EXPECT_NE(loaded.status().message().find(culprit), std::string::npos)
        << "message does not name " << culprit << ": " << loaded.status();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, InvalidPackageTest,
    ::testing::Values(InvalidCase{"invalid_cycle",
                                  absl::StatusCode::kInvalidArgument,
                                  {"cycle", "'ping'", "'pong'"}},
                      InvalidCase{"invalid_duplicate_producer",
                                  absl::StatusCode::kInvalidArgument,
                                  {"'first_writer'", "'second_writer'", "'features'"}},
                      InvalidCase{"invalid_climb_above_root",
                                  absl::StatusCode::kInvalidArgument,
                                  {"'outer/climber'", "../../escape", "climbs above the root"}},
                      InvalidCase{"invalid_missing_input",
                                  absl::StatusCode::kInvalidArgument,
                                  {"'orphan_consumer'", "'never_produced'"}},
                      InvalidCase{"invalid_missing_module",
                                  absl::StatusCode::kNotFound,
                                  {"'ghost'", ".pt", "not found"}},
                      InvalidCase{"invalid_corrupt_module",
                                  absl::StatusCode::kInvalidArgument,
                                  {"'garbled'", ".pt", "cannot load module file"}},
                      InvalidCase{"invalid_tuple_arity",
                                  absl::StatusCode::kInvalidArgument,
                                  {"'two_headed'", "tuple of 2", "3 output names"}},
                      InvalidCase{"invalid_unknown_keyword",
                                  absl::StatusCode::kInvalidArgument,
                                  {"'mislabeled'", "no parameter 'nope'", "(x, y)"}},
                      InvalidCase{"invalid_keyword_without_default",
                                  absl::StatusCode::kInvalidArgument,
                                  {"'half_named'", "parameter 'x'", "no default"}},
                      InvalidCase{"invalid_stage_modules_without_stage",
                                  absl::StatusCode::kInvalidArgument,
                                  {"'unstaged'", "stage_modules", "\"stage\""}}),
    [](const ::testing::TestParamInfo<InvalidCase>& info) {
      return std::string(info.param.package);
    });

TEST(ManifestTest, MissingManifestIsNotFound) {
  auto loaded = LoadedCollection::Load({.version_dir = "/nonexistent/model/1"});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(loaded.status().message().find("bricks.pbtxt"), std::string::npos);
}

TEST(ManifestTest, MalformedManifestSaysWhere) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / "torchbricks_malformed_manifest";
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir / "bricks.pbtxt");
    out << "nodes { name: \"a\" brick { kind: NOT_A_KIND } }\n";
  }
  auto loaded = LoadedCollection::Load({.version_dir = dir});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(loaded.status().message().find("line 1"), std::string::npos) << loaded.status();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace torchbricks
