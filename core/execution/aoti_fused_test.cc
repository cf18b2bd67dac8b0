// A fused stage on the compiled fixture of tests/fixtures/aoti_fused_fixtures.py: aoti_mixed
// with its INFERENCE bricks backbone and head also compiled as one program. The program runs in
// place of them when a request needs both, matching the eager modules; a request for a subset
// runs the per-brick plan; EXPORT has no fused program; batches outside its range and a corrupt
// program are refused naming it.
#include "core/execution/aoti_brick.h"

#include "core/execution/loaded_collection.h"
#include "core/execution/reference_check.h"
#include "core/testing/loaded_fixtures.h"
#include "gtest/gtest.h"

namespace torchbricks {
namespace {

using ::torchbricks::testing::BrickNamesOf;
using ::torchbricks::testing::FixturePackage;
using ::torchbricks::testing::LoadFixture;

const std::vector<std::string> kOutputs = {"embedding", "logits", "probabilities"};

ReferenceData Eager(int batch) {
  const std::filesystem::path dir =
      FixturePackage("aoti_fused").parent_path() / ("eager_batch_" + std::to_string(batch));
  auto reference = ReadReference(dir, Stage::kInference);
  EXPECT_TRUE(reference.ok() && reference->has_value()) << dir;
  return reference.ok() && reference->has_value() ? **reference : ReferenceData{};
}

void ExpectEqualToEager(const NamedTensors& out, const ReferenceData& eager,
                        const std::vector<std::string>& names) {
  ASSERT_EQ(out.size(), names.size());
  for (const std::string& name : names) {
    ASSERT_TRUE(out.count(name)) << name;
    const at::Tensor& want = eager.outputs.at(name);
    ASSERT_EQ(out.at(name).sizes(), want.sizes()) << name;
    EXPECT_TRUE(at::allclose(out.at(name), want, 1e-4, 1e-5)) << name;
  }
}

TEST(AotiFusedTest, TheManifestsFusedProgramIsRead) {
  auto collection = LoadFixture("aoti_fused");
  ASSERT_NE(collection, nullptr);
  const BrickGraph& graph = collection->graph();
  ASSERT_EQ(graph.fused().size(), 1u);
  const FusedSpec& fused = graph.fused()[0];
  EXPECT_EQ(fused.stage, Stage::kInference);
  EXPECT_EQ(fused.program.name, "<fused INFERENCE>");
  EXPECT_EQ(fused.program.input_names, std::vector<std::string>{"processed"});
  EXPECT_EQ(fused.program.output_names, kOutputs);
  EXPECT_EQ(graph.FusedIn(Stage::kExport), nullptr);
  // The head alone takes 16 rows; the stage takes what the fused program takes.
  EXPECT_EQ(graph.CompiledBatchRange(Stage::kInference).max, 8);
}

TEST(AotiFusedTest, TheFusedProgramRunsInPlaceOfItsBricksAndEqualsTheEagerModules) {
  auto collection = LoadFixture("aoti_fused");
  ASSERT_NE(collection, nullptr);
  for (int batch : {1, 3, 8}) {
    const ReferenceData eager = Eager(batch);
    RunTrace trace;
    auto out = collection->Run(Stage::kInference, eager.inputs, kOutputs, &trace);
    ASSERT_TRUE(out.ok()) << "batch " << batch << ": " << out.status();
    ExpectEqualToEager(*out, eager, kOutputs);
    EXPECT_EQ(BrickNamesOf(*collection, trace), std::vector<std::string>{"preprocessor"});
    EXPECT_EQ(trace.fused, std::vector<Stage>{Stage::kInference});
    ASSERT_EQ(trace.fused_nanoseconds.size(), 1u);
    EXPECT_GT(trace.fused_nanoseconds[0], 0);
  }
}

TEST(AotiFusedTest, ASubsetNeedingEveryFusedBrickRunsTheProgramAndDropsTheRest) {
  auto collection = LoadFixture("aoti_fused");
  ASSERT_NE(collection, nullptr);
  const ReferenceData eager = Eager(3);
  RunTrace trace;
  auto out = collection->Run(Stage::kInference, eager.inputs, {"logits"}, &trace);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectEqualToEager(*out, eager, {"logits"});
  EXPECT_EQ(trace.fused.size(), 1u);
}

TEST(AotiFusedTest, ASubsetNeedingSomeFusedBricksRunsOnlyThoseBricks) {
  auto collection = LoadFixture("aoti_fused");
  ASSERT_NE(collection, nullptr);
  const ReferenceData eager = Eager(3);
  RunTrace trace;
  auto out = collection->Run(Stage::kInference, eager.inputs, {"embedding"}, &trace);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectEqualToEager(*out, eager, {"embedding"});
  EXPECT_TRUE(trace.fused.empty());
  EXPECT_EQ(BrickNamesOf(*collection, trace),
            (std::vector<std::string>{"preprocessor", "backbone"}));
}

TEST(AotiFusedTest, AStageWithoutAFusedProgramRunsItsBricks) {
  auto collection = LoadFixture("aoti_fused");
  ASSERT_NE(collection, nullptr);
  const ReferenceData eager = Eager(3);
  RunTrace trace;
  auto out = collection->Run(Stage::kExport, eager.inputs, kOutputs, &trace);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectEqualToEager(*out, eager, kOutputs);
  EXPECT_TRUE(trace.fused.empty());
  EXPECT_EQ(BrickNamesOf(*collection, trace),
            (std::vector<std::string>{"preprocessor", "backbone", "head"}));
}

TEST(AotiFusedTest, TheReferenceCheckPassesInBothStages) {
  auto collection = LoadFixture("aoti_fused");
  ASSERT_NE(collection, nullptr);
  auto comparisons = CompareWithReference(*collection, FixturePackage("aoti_fused"), Tolerance{});
  ASSERT_TRUE(comparisons.ok()) << comparisons.status();
  for (const StageComparison& stage : *comparisons) {
    EXPECT_TRUE(stage.matches()) << StageName(stage.stage) << ": " << stage.run_status;
  }
}

TEST(AotiFusedTest, ABatchOutsideTheFusedRangeIsRefusedNamingTheProgram) {
  auto collection = LoadFixture("aoti_fused");
  ASSERT_NE(collection, nullptr);
  const TensorSignature signature{"raw", package::TYPE_FP32, {9, 3, 8, 8}};
  const absl::Status status = collection->Check(Stage::kInference, {signature}, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("<fused INFERENCE>"), std::string::npos) << status;
  EXPECT_NE(status.message().find("1 to 8"), std::string::npos) << status;
}

TEST(AotiFusedTest, AnInputsOwnDefectIsNamedBeforeTheFusedRange) {
  auto collection = LoadFixture("aoti_fused");
  ASSERT_NE(collection, nullptr);
  const TensorSignature unknown{"nope", package::TYPE_FP32, {9, 3, 8, 8}};
  absl::Status status = collection->Check(Stage::kInference, {unknown}, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("unknown input 'nope'"), std::string::npos) << status;
  const TensorSignature wrong_type{"raw", package::TYPE_INT64, {9, 3, 8, 8}};
  status = collection->Check(Stage::kInference, {wrong_type}, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(status.message().find("<fused INFERENCE>"), std::string::npos) << status;
}

TEST(AotiFusedTest, ACorruptFusedProgramFailsTheLoadNamingIt) {
  auto loaded = LoadedCollection::Load({.version_dir = FixturePackage("aoti_fused_corrupt")});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition) << loaded.status();
  EXPECT_NE(loaded.status().message().find("fused program '<fused INFERENCE>'"), std::string::npos)
      << loaded.status();
  EXPECT_NE(loaded.status().message().find("__fused__.INFERENCE.pt2"), std::string::npos)
      << loaded.status();
}

TEST(AotiFusedTest, TheMermaidGraphMarksTheFusedBricks) {
  auto collection = LoadFixture("aoti_fused");
  ASSERT_NE(collection, nullptr);
  const std::string inference = collection->Mermaid(Stage::kInference);
  EXPECT_NE(inference.find("class backbone,head fused"), std::string::npos) << inference;
  EXPECT_NE(inference.find("fused: INFERENCE program"), std::string::npos) << inference;
  EXPECT_EQ(collection->Mermaid(Stage::kExport).find("fused"), std::string::npos);
}

}  // namespace
}  // namespace torchbricks
