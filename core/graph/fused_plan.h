// FusedPlan: one stage's plan with the bricks of its fused program (FusedSpec) contracted into
// one step, made once at load. It refuses a fused set that is not convex in the stage (a value
// leaves the set to another brick and comes back), and says, for the bricks a request needs,
// whether the fused program runs in their place: only when the request needs every fused brick
// (docs/PERFORMANCE.md, "Fused stages": otherwise the per-brick plan runs only what is needed).
// Immutable after Create(), so safe to share between threads; borrows nothing.
//
//   ASSIGN_OR_RETURN(FusedPlan fused, FusedPlan::Create(graph, plan, *graph.FusedIn(stage)));
//   ASSIGN_OR_RETURN(std::vector<int> needed, plan.StepsFor(outputs));
//   if (auto steps = fused.StepsFor(needed)) { /* run fused.steps()[i] for i in *steps */ }
#ifndef TORCHBRICKS_CORE_GRAPH_FUSED_PLAN_H_
#define TORCHBRICKS_CORE_GRAPH_FUSED_PLAN_H_

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/graph/brick_graph.h"
#include "core/graph/stage_plan.h"

namespace torchbricks {

// PlanStep::brick of the step that runs the fused program.
inline constexpr int kFusedBrick = -1;

class FusedPlan {
 public:
  // Contracts `fused`'s bricks in `plan` (the plan of fused.stage over `graph`). Returns
  // InvalidArgument naming the fused program and the bricks at fault when a fused brick has no
  // step in the plan, or when a brick outside the set depends on a fused brick and also feeds
  // one (the set is not convex).
  static absl::StatusOr<FusedPlan> Create(const BrickGraph& graph, const StagePlan& plan,
                                          const FusedSpec& fused);

  // The stage's steps over the plan's slots, in an execution order: the plan's steps outside
  // the set (their depends_on renumbered) and one step with brick kFusedBrick whose input and
  // output slots are the program's inputs and outputs, in their order.
  const std::vector<PlanStep>& steps() const { return steps_; }
  int fused_step() const { return fused_step_; }

  // For `needed` (plan step indices, StagePlan::StepsFor): the steps of this plan to run, in
  // execution order, when `needed` holds every fused brick; std::nullopt otherwise (the
  // per-brick plan runs).
  std::optional<std::vector<int>> StepsFor(absl::Span<const int> needed) const;

 private:
  std::vector<PlanStep> steps_;
  int fused_step_ = 0;
  std::vector<int> step_of_;      // plan step -> step here (fused bricks -> fused_step_)
  std::vector<int> fused_steps_;  // the plan steps of the fused bricks
};

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_GRAPH_FUSED_PLAN_H_
