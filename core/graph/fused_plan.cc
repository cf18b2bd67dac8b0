#include "core/graph/fused_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace torchbricks {
namespace {

void AddOnce(std::vector<int>* list, int value) {
  if (std::find(list->begin(), list->end(), value) == list->end()) list->push_back(value);
}

}  // namespace

absl::StatusOr<FusedPlan> FusedPlan::Create(const BrickGraph& graph, const StagePlan& plan,
                                            const FusedSpec& fused) {
  const std::vector<PlanStep>& steps = plan.steps();
  const int count = static_cast<int>(steps.size());
  std::vector<bool> in_set(count, false);
  FusedPlan result;
  for (int brick : fused.bricks) {
    auto it = std::find_if(steps.begin(), steps.end(),
                           [brick](const PlanStep& step) { return step.brick == brick; });
    if (it == steps.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("fused program '", fused.program.name, "': brick '",
                       graph.bricks()[brick].name, "' does not run in ", StageName(plan.stage())));
    }
    const int index = static_cast<int>(it - steps.begin());
    in_set[index] = true;
    result.fused_steps_.push_back(index);
  }
  // below: depends on a fused brick; above: a fused brick depends on it (plan order is
  // topological, so one pass each way settles both).
  std::vector<int> below(count, -1), above(count, -1);  // a fused step that makes it so
  for (int s = 0; s < count; ++s) {
    for (int dependency : steps[s].depends_on) {
      if (in_set[dependency])
        below[s] = dependency;
      else if (below[dependency] >= 0)
        below[s] = below[dependency];
    }
  }
  for (int s = count - 1; s >= 0; --s) {
    for (int dependency : steps[s].depends_on) {
      if (in_set[s])
        above[dependency] = s;
      else if (above[s] >= 0)
        above[dependency] = above[s];
    }
  }
  for (int s = 0; s < count; ++s) {
    if (in_set[s] || below[s] < 0 || above[s] < 0) continue;
    return absl::InvalidArgumentError(absl::StrCat(
        "fused program '", fused.program.name, "': its bricks are not convex in stage ",
        StageName(plan.stage()), ": brick '", graph.bricks()[steps[s].brick].name,
        "' is not fused, depends on fused brick '", graph.bricks()[steps[below[s]].brick].name,
        "' and feeds fused brick '", graph.bricks()[steps[above[s]].brick].name, "'"));
  }
  // Order: the steps not below the set, the fused step, the steps below it (each group in plan
  // order). Convexity makes it an execution order: nothing above the set is below it.
  std::vector<int> order;
  for (int s = 0; s < count; ++s) {
    if (!in_set[s] && below[s] < 0) order.push_back(s);
  }
  result.fused_step_ = static_cast<int>(order.size());
  order.push_back(-1);
  for (int s = 0; s < count; ++s) {
    if (!in_set[s] && below[s] >= 0) order.push_back(s);
  }
  result.step_of_.assign(count, result.fused_step_);
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i] >= 0) result.step_of_[order[i]] = static_cast<int>(i);
  }
  for (int original : order) {
    PlanStep step;
    if (original >= 0) {
      step = steps[original];
      step.depends_on.clear();
      for (int dependency : steps[original].depends_on) {
        AddOnce(&step.depends_on, result.step_of_[dependency]);
      }
    } else {
      step.brick = kFusedBrick;
      for (const std::string& name : fused.program.input_names) {
        const int slot = plan.FindSlot(name);
        step.input_slots.push_back(slot);
        if (plan.ProducerOf(slot) >= 0) {
          AddOnce(&step.depends_on, result.step_of_[plan.ProducerOf(slot)]);
        }
      }
      for (const std::string& name : fused.program.output_names) {
        step.output_slots.push_back(plan.FindSlot(name));
      }
    }
    result.steps_.push_back(std::move(step));
  }
  return result;
}

std::optional<std::vector<int>> FusedPlan::StepsFor(absl::Span<const int> needed) const {
  for (int step : fused_steps_) {
    if (std::find(needed.begin(), needed.end(), step) == needed.end()) return std::nullopt;
  }
  std::vector<int> steps;
  for (int step : needed) AddOnce(&steps, step_of_[step]);
  std::sort(steps.begin(), steps.end());
  return steps;
}

}  // namespace torchbricks
