// Fuzz target: a package manifest (bricks.pbtxt text) through the core's parsing and graph
// validation: ParseManifest, BrickGraph::Create, a StagePlan for every stage, the steps
// of its terminal outputs and its Mermaid rendering, as LoadedCollection::Load does before
// it touches a module. Invariants for an accepted manifest: every module file stays inside
// the package, and every plan is topologically ordered with slots in range.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/graph/brick_graph.h"
#include "core/graph/mermaid.h"
#include "core/graph/stage_plan.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using torchbricks::BrickGraph;
using torchbricks::BrickSpec;
using torchbricks::StagePlan;

bool InsidePackage(const std::string& file) {
  const std::filesystem::path path(file);
  if (path.is_absolute() || file.find('\0') != std::string::npos) return false;
  for (const auto& part : path) {
    if (part == "..") return false;
  }
  return true;
}

void CheckPlan(const BrickGraph& graph, const StagePlan& plan) {
  const int slots = plan.num_slots();
  for (size_t i = 0; i < plan.steps().size(); ++i) {
    const torchbricks::PlanStep& step = plan.steps()[i];
    FUZZ_CHECK(step.brick >= 0 && step.brick < static_cast<int>(graph.bricks().size()));
    FUZZ_CHECK(graph.bricks()[step.brick].AliveIn(plan.stage()));
    for (int slot : step.input_slots) {
      FUZZ_CHECK(slot == torchbricks::kStageSlot || slot == torchbricks::kAllSlot ||
                 (slot >= 0 && slot < slots));
    }
    for (int slot : step.output_slots) {
      FUZZ_CHECK(slot >= 0 && slot < slots);
      FUZZ_CHECK(plan.ProducerOf(slot) == static_cast<int>(i));
    }
    for (int earlier : step.depends_on) FUZZ_CHECK(earlier >= 0 && earlier < static_cast<int>(i));
  }
  for (int input : plan.required_inputs()) {
    FUZZ_CHECK(input >= 0 && input < static_cast<int>(graph.inputs().size()));
  }
  absl::StatusOr<std::vector<int>> all = plan.StepsFor({});
  FUZZ_CHECK(all.ok());
  absl::StatusOr<std::vector<int>> terminal = plan.StepsFor(plan.terminal_outputs());
  FUZZ_CHECK(terminal.ok());
  for (int step : *terminal) {
    FUZZ_CHECK(step >= 0 && step < static_cast<int>(plan.steps().size()));
  }
  (void)torchbricks::RenderMermaid(graph, plan);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<torchbricks::package::BrickCollection> manifest =
      torchbricks::ParseManifest(text, "fuzz/bricks.pbtxt");
  if (!manifest.ok()) return 0;
  absl::StatusOr<BrickGraph> graph = BrickGraph::Create(*manifest);
  if (!graph.ok()) {
    FUZZ_CHECK(graph.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(!graph->bricks().empty());
  for (const BrickSpec& brick : graph->bricks()) {
    FUZZ_CHECK(!brick.name.empty());
    FUZZ_CHECK(InsidePackage(brick.module_file));
    for (const std::string& file : brick.stage_module_files) FUZZ_CHECK(InsidePackage(file));
  }
  for (torchbricks::Stage stage : torchbricks::kAllStages) {
    absl::StatusOr<StagePlan> plan = StagePlan::Create(*graph, stage);
    if (!plan.ok()) {
      FUZZ_CHECK(plan.status().code() == absl::StatusCode::kInvalidArgument);
      continue;
    }
    CheckPlan(*graph, *plan);
  }
  return 0;
}
