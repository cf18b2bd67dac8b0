// Parity: packages exported in Python, run in C++, compared with the reference outputs
// the exporter computed with the original eager modules.
#include "core/execution/reference_check.h"
#include "core/testing/package_fixtures.h"
#include "gtest/gtest.h"

namespace torchbricks {
namespace {

using ::torchbricks::testing::FixturePackage;

struct ParityCase {
  const char* package;
  std::vector<Stage> stages;  // stages that must have reference data
};

class ParityTest : public ::testing::TestWithParam<ParityCase> {};

TEST_P(ParityTest, CppOutputsEqualPythonReference) {
  const ParityCase& c = GetParam();
  const std::filesystem::path dir = FixturePackage(c.package);
  auto collection = LoadedCollection::Load({.version_dir = dir});
  ASSERT_TRUE(collection.ok()) << collection.status();
  auto comparisons = CompareWithReference(**collection, dir, Tolerance{});
  ASSERT_TRUE(comparisons.ok()) << comparisons.status();
  std::vector<Stage> compared;
  for (const StageComparison& stage : *comparisons) {
    compared.push_back(stage.stage);
    ASSERT_TRUE(stage.run_status.ok()) << StageName(stage.stage) << ": " << stage.run_status;
    EXPECT_FALSE(stage.outputs.empty()) << StageName(stage.stage);
    for (const OutputComparison& output : stage.outputs) {
      EXPECT_TRUE(output.matches) << StageName(stage.stage) << " " << output.name << ": "
                                  << output.problem << " (max diff " << output.max_abs_diff << ")";
    }
  }
  for (Stage stage : c.stages) {
    EXPECT_NE(std::find(compared.begin(), compared.end(), stage), compared.end())
        << "no reference data for " << StageName(stage);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, ParityTest,
    ::testing::Values(
        ParityCase{"readme_dummy", {Stage::kInference, Stage::kExport, Stage::kTrain}},
        ParityCase{"readme_loss", {Stage::kTrain, Stage::kInference, Stage::kExport}},
        ParityCase{"nested_heads", {Stage::kTrain, Stage::kInference}},
        ParityCase{"all_input", {Stage::kInference}},
        ParityCase{"stage_preprocessor", {Stage::kInference, Stage::kExport}},
        ParityCase{"resnet18_classifier", {Stage::kInference, Stage::kExport, Stage::kTrain}},
        ParityCase{"dict_output", {Stage::kInference}},
        ParityCase{"lookup_table", {Stage::kInference}},
        ParityCase{"keyword_inputs", {Stage::kInference, Stage::kExport}},
        ParityCase{"stage_traced", {Stage::kInference, Stage::kExport}},
        ParityCase{"aoti_mixed", {Stage::kInference, Stage::kExport}}),
    [](const ::testing::TestParamInfo<ParityCase>& info) {
      return std::string(info.param.package);
    });

}  // namespace
}  // namespace torchbricks
