// StagePlan: what one stage of a BrickGraph runs, made once at load. It lists the bricks
// alive in the stage in a topological order, gives every tensor name a slot number so the
// hot path indexes a vector instead of hashing strings, and knows the inputs the stage
// requires and the outputs nobody consumes (its terminal outputs). Immutable after
// Create(), so safe to share between threads; it borrows nothing from the graph.
//
//   ASSIGN_OR_RETURN(StagePlan plan, StagePlan::Create(graph, Stage::kInference));
//   ASSIGN_OR_RETURN(std::vector<int> steps, plan.StepsFor({"embedding"}));
#ifndef TORCHBRICKS_CORE_GRAPH_STAGE_PLAN_H_
#define TORCHBRICKS_CORE_GRAPH_STAGE_PLAN_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/graph/brick_graph.h"
#include "core/graph/stage.h"

namespace torchbricks {

// Slot numbers of the special inputs in PlanStep::input_slots.
inline constexpr int kStageSlot = -1;
inline constexpr int kAllSlot = -2;

struct PlanStep {
  int brick = 0;                  // index into BrickGraph::bricks()
  std::vector<int> input_slots;   // a slot, kStageSlot or kAllSlot, per input name
  std::vector<int> output_slots;  // a slot per output name
  std::vector<int> depends_on;    // indices of earlier steps this one needs
};

class StagePlan {
 public:
  // Plans `stage` of `graph`. On failure returns InvalidArgument naming the brick(s) and
  // the stage: two alive bricks producing one name, an input that neither an alive brick
  // nor a declared input provides, or a cycle among alive bricks.
  static absl::StatusOr<StagePlan> Create(const BrickGraph& graph, Stage stage);

  Stage stage() const { return stage_; }
  // Alive bricks in execution order.
  const std::vector<PlanStep>& steps() const { return steps_; }
  int num_slots() const { return static_cast<int>(slot_names_.size()); }
  const std::string& slot_name(int slot) const { return slot_names_[slot]; }
  // The slot of `name`, or -1 when the stage has none.
  int FindSlot(absl::string_view name) const;
  // For a slot that holds a declared input: its index into BrickGraph::inputs(); else -1.
  int InputIndexOfSlot(int slot) const { return slot_input_[slot]; }
  // Declared inputs (indices into BrickGraph::inputs()) that alive bricks consume.
  const std::vector<int>& required_inputs() const { return required_inputs_; }
  // True when this stage reads declared input `input_index` (an index into
  // BrickGraph::inputs()): an alive brick consumes it, or an alive brick takes `__all__`,
  // which hands it every value given. A request may only send inputs its stage reads.
  bool TakesInput(int input_index) const;
  // Outputs of alive bricks that no alive brick consumes, in production order.
  const std::vector<std::string>& terminal_outputs() const { return terminal_outputs_; }
  // Step index producing each slot, or -1 for inputs.
  int ProducerOf(int slot) const { return producer_[slot]; }

  // The steps (in execution order) needed to compute `outputs`; an empty list means the
  // terminal outputs. Returns InvalidArgument naming an output that this stage does not
  // produce (saying when a brick dead in this stage would produce it).
  absl::StatusOr<std::vector<int>> StepsFor(absl::Span<const std::string> outputs) const;

 private:
  Stage stage_ = Stage::kInference;
  std::vector<PlanStep> steps_;
  std::vector<std::string> slot_names_;
  std::vector<int> slot_input_;
  std::vector<int> producer_;
  absl::flat_hash_map<std::string, int> slot_of_;
  std::vector<int> required_inputs_;
  bool reads_all_ = false;  // an alive brick takes `__all__`
  std::vector<std::string> terminal_outputs_;
  // Outputs of bricks dead in this stage, for a helpful error: name -> brick name.
  absl::flat_hash_map<std::string, std::string> dead_producers_;
};

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_GRAPH_STAGE_PLAN_H_
