// Fused stages on manifests written inline: what BrickGraph refuses in a FusedStage, convexity,
// and the contracted plan. No modules are loaded.
#include "core/graph/fused_plan.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace torchbricks {
namespace {

// A compiled brick `name`: `input` -> `output`, FP32 [B, 4], batch 1..8.
std::string CompiledBrick(const std::string& name, const std::string& input,
                          const std::string& output) {
  return absl::StrCat("nodes { name: \"", name, "\" brick { input_names: \"", input,
                      "\" output_names: \"", output, "\" module_file: \"modules/", name,
                      ".pt2\" module_format: AOT_INDUCTOR compiled { inputs { name: \"", input,
                      "\" data_type: TYPE_FP32 dims: [-1, 4] } min_batch: 1 max_batch: 8 ",
                      "device: \"cpu\" } } }");
}

std::string TorchScriptBrick(const std::string& name, const std::string& input,
                             const std::string& output) {
  return absl::StrCat("nodes { name: \"", name, "\" brick { input_names: \"", input,
                      "\" output_names: \"", output, "\" module_file: \"modules/", name,
                      ".pt\" } }");
}

std::string Fused(const std::vector<std::string>& bricks, const std::vector<std::string>& inputs,
                  const std::vector<std::string>& outputs, int max_batch = 8) {
  std::string text = R"pb(fused_stages { stage: INFERENCE module_file: "modules/f.pt2")pb";
  for (const auto& b : bricks) absl::StrAppend(&text, "bricks: \"", b, "\" ");
  for (const auto& i : inputs) absl::StrAppend(&text, "input_names: \"", i, "\" ");
  for (const auto& o : outputs) absl::StrAppend(&text, "output_names: \"", o, "\" ");
  absl::StrAppend(&text, "compiled { ");
  for (const auto& i : inputs) {
    absl::StrAppend(&text, "inputs { name: \"", i, "\" data_type: TYPE_FP32 dims: [ -1, 4 ] } ");
  }
  absl::StrAppend(&text, "min_batch: 1 max_batch: ", max_batch, " device: \"cpu\" } }");
  return text;
}

constexpr char kInput[] = R"pb(inputs {
                                 name: "x"
                                 data_type: TYPE_FP32
                                 dims: [ -1, 4 ]
                               })pb";

absl::StatusOr<BrickGraph> GraphOf(const std::string& text) {
  package::BrickCollection manifest;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &manifest)) << text;
  return BrickGraph::Create(manifest);
}

absl::StatusOr<FusedPlan> FusedPlanOf(const BrickGraph& graph) {
  auto plan = StagePlan::Create(graph, Stage::kInference);
  if (!plan.ok()) return plan.status();
  return FusedPlan::Create(graph, *plan, *graph.FusedIn(Stage::kInference));
}

void ExpectRefused(const absl::Status& status, std::initializer_list<const char*> parts) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  for (const char* part : parts) {
    EXPECT_NE(status.message().find(part), std::string::npos) << part << " not in " << status;
  }
}

// x -> first -> a -> mid -> b -> last -> c, and a side brick x -> side -> s.
std::string Chain(const std::string& mid_brick, const std::string& fused) {
  return absl::StrCat(kInput, CompiledBrick("first", "x", "a"), mid_brick,
                      CompiledBrick("last", "b", "c"), TorchScriptBrick("side", "x", "s"), fused);
}

TEST(FusedPlanTest, AConvexSetIsContractedIntoOneStepAfterWhatFeedsIt) {
  auto graph = GraphOf(Chain(CompiledBrick("mid", "a", "b"),
                             Fused({"first", "mid", "last"}, {"x"}, {"a", "b", "c"})));
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_NE(graph->FusedIn(Stage::kInference), nullptr);
  EXPECT_EQ(graph->FusedIn(Stage::kInference)->program.name, "<fused INFERENCE>");
  EXPECT_NE(graph->FusedProgramOf(1, Stage::kInference), nullptr);  // mid
  EXPECT_EQ(graph->FusedProgramOf(3, Stage::kInference), nullptr);  // side
  EXPECT_EQ(graph->FusedProgramOf(1, Stage::kExport), nullptr);
  auto fused = FusedPlanOf(*graph);
  ASSERT_TRUE(fused.ok()) << fused.status();
  ASSERT_EQ(fused->steps().size(), 2u);  // side, then the program
  EXPECT_EQ(fused->steps()[fused->fused_step()].brick, kFusedBrick);
  EXPECT_EQ(fused->steps()[fused->fused_step()].output_slots.size(), 3u);
  // Plan steps: first 0, mid 1, last 2, side 3.
  EXPECT_EQ(fused->StepsFor({0, 1, 2, 3}), (std::vector<int>{0, 1}));
  EXPECT_EQ(fused->StepsFor({0, 1, 2}), std::vector<int>{fused->fused_step()});
  EXPECT_FALSE(fused->StepsFor({0, 1}).has_value());  // only some fused bricks: per brick
}

TEST(FusedPlanTest, ABrickBetweenFusedBricksMakesTheSetNotConvex) {
  auto graph = GraphOf(
      Chain(TorchScriptBrick("mid", "a", "b"), Fused({"first", "last"}, {"x", "b"}, {"a", "c"})));
  ASSERT_TRUE(graph.ok()) << graph.status();
  ExpectRefused(FusedPlanOf(*graph).status(),
                {"<fused INFERENCE>", "not convex", "'mid'", "'first'", "'last'"});
}

TEST(FusedPlanTest, TheGraphRefusesFusedStagesThatDoNotFitTheBricks) {
  const std::string mid = CompiledBrick("mid", "a", "b");
  ExpectRefused(GraphOf(Chain(mid, Fused({"first", "nope"}, {"x"}, {"a"}))).status(),
                {"<fused INFERENCE>", "'nope'", "no brick"});
  ExpectRefused(GraphOf(Chain(mid, Fused({"first", "side"}, {"x"}, {"a", "s"}))).status(),
                {"'side'", "not an AOT_INDUCTOR brick"});
  ExpectRefused(GraphOf(Chain(mid, Fused({"first", "mid"}, {"x"}, {"a"}))).status(),
                {"output names", "missing b"});
  ExpectRefused(GraphOf(Chain(mid, Fused({"first", "mid"}, {"x", "s"}, {"a", "b"}))).status(),
                {"input names", "unexpected s"});
  ExpectRefused(GraphOf(Chain(mid, Fused({"first", "first"}, {"x"}, {"a"}))).status(),
                {"'first' twice"});
  ExpectRefused(GraphOf(Chain(mid, Fused({}, {"x"}, {"a"}))).status(), {"fuses no bricks"});
  ExpectRefused(GraphOf(Chain(mid, Fused({"first"}, {"x"}, {"a"}, /*max_batch=*/0))).status(),
                {"<fused INFERENCE>", "batch range"});
  const std::string one = Fused({"first"}, {"x"}, {"a"});
  ExpectRefused(GraphOf(Chain(mid, one + one)).status(), {"more than one fused program"});
}

}  // namespace
}  // namespace torchbricks
