#include "core/graph/stage_plan.h"

#include <algorithm>
#include <queue>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/graph/naming.h"

namespace torchbricks {

absl::StatusOr<StagePlan> StagePlan::Create(const BrickGraph& graph, Stage stage) {
  StagePlan plan;
  plan.stage_ = stage;
  const std::string stage_name(StageName(stage));
  const std::vector<BrickSpec>& bricks = graph.bricks();

  auto add_slot = [&plan](const std::string& name, int input_index) {
    auto [it, inserted] = plan.slot_of_.emplace(name, plan.num_slots());
    if (inserted) {
      plan.slot_names_.push_back(name);
      plan.slot_input_.push_back(input_index);
      plan.producer_.push_back(-1);
    }
    return it->second;
  };
  for (size_t i = 0; i < graph.inputs().size(); ++i) {
    add_slot(graph.inputs()[i].name, static_cast<int>(i));
  }

  // Alive bricks in manifest order, and who produces what.
  std::vector<int> alive;
  absl::flat_hash_map<std::string, int> producer_brick;
  for (size_t b = 0; b < bricks.size(); ++b) {
    const BrickSpec& brick = bricks[b];
    if (!brick.AliveIn(stage)) {
      for (const std::string& out : brick.output_names) plan.dead_producers_[out] = brick.name;
      continue;
    }
    for (const std::string& out : brick.output_names) {
      auto [it, inserted] = producer_brick.emplace(out, static_cast<int>(b));
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat("bricks '", bricks[it->second].name,
                                                       "' and '", brick.name, "' both produce '",
                                                       out, "' in stage ", stage_name));
      }
    }
    alive.push_back(static_cast<int>(b));
  }

  // Dependencies between alive bricks (indices into `alive`).
  const int n = static_cast<int>(alive.size());
  absl::flat_hash_map<int, int> position;  // brick index -> index into alive
  for (int i = 0; i < n; ++i) position[alive[i]] = i;
  std::vector<std::vector<int>> deps(n);
  std::vector<bool> input_used(graph.inputs().size(), false);
  for (int i = 0; i < n; ++i) {
    const BrickSpec& brick = bricks[alive[i]];
    for (const std::string& in : brick.input_names) {
      if (in == kStageInputName) continue;
      if (in == kAllInputName) {
        // torchbricks hands `__all__` everything computed so far: the earlier bricks.
        plan.reads_all_ = true;
        for (int j = 0; j < i; ++j) deps[i].push_back(j);
        continue;
      }
      if (auto it = producer_brick.find(in); it != producer_brick.end()) {
        if (it->second == alive[i]) {
          return absl::InvalidArgumentError(absl::StrCat(
              "brick '", brick.name, "' consumes its own output '", in, "' (a cycle)"));
        }
        deps[i].push_back(position[it->second]);
        continue;
      }
      if (int input = graph.FindInput(in); input >= 0) {
        input_used[input] = true;
        continue;
      }
      std::string why = "no brick alive in stage " + stage_name + " produces it and it is " +
                        "not a declared input";
      if (auto dead = plan.dead_producers_.find(in); dead != plan.dead_producers_.end()) {
        why = absl::StrCat("its producer '", dead->second, "' is not alive in stage ", stage_name);
      }
      return absl::InvalidArgumentError(
          absl::StrCat("brick '", brick.name, "' needs input '", in, "', but ", why));
    }
    std::sort(deps[i].begin(), deps[i].end());
    deps[i].erase(std::unique(deps[i].begin(), deps[i].end()), deps[i].end());
  }

  // Kahn's algorithm, always taking the earliest ready brick in manifest order, so a
  // collection written in order runs in that order.
  std::vector<int> indegree(n, 0);
  std::vector<std::vector<int>> users(n);
  for (int i = 0; i < n; ++i) {
    indegree[i] = static_cast<int>(deps[i].size());
    for (int d : deps[i]) users[d].push_back(i);
  }
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (int i = 0; i < n; ++i) {
    if (indegree[i] == 0) ready.push(i);
  }
  std::vector<int> order;
  std::vector<int> step_of(n, -1);
  while (!ready.empty()) {
    const int i = ready.top();
    ready.pop();
    step_of[i] = static_cast<int>(order.size());
    order.push_back(i);
    for (int u : users[i]) {
      if (--indegree[u] == 0) ready.push(u);
    }
  }
  if (static_cast<int>(order.size()) != n) {
    std::vector<std::string> stuck;
    for (int i = 0; i < n; ++i) {
      if (step_of[i] < 0) stuck.push_back("'" + bricks[alive[i]].name + "'");
    }
    return absl::InvalidArgumentError(
        absl::StrCat("cycle among bricks ", absl::StrJoin(stuck, ", "), " in stage ", stage_name));
  }

  // Slots for produced names, then the steps themselves.
  for (int i : order) {
    for (const std::string& out : bricks[alive[i]].output_names) add_slot(out, -1);
  }
  std::vector<bool> consumed(plan.slot_names_.size(), false);
  for (int i : order) {
    const BrickSpec& brick = bricks[alive[i]];
    PlanStep step;
    step.brick = alive[i];
    for (const std::string& in : brick.input_names) {
      if (in == kStageInputName) {
        step.input_slots.push_back(kStageSlot);
      } else if (in == kAllInputName) {
        step.input_slots.push_back(kAllSlot);
      } else {
        const int slot = plan.slot_of_.at(in);
        consumed[slot] = true;
        step.input_slots.push_back(slot);
      }
    }
    for (const std::string& out : brick.output_names) {
      const int slot = plan.slot_of_.at(out);
      plan.producer_[slot] = static_cast<int>(plan.steps_.size());
      step.output_slots.push_back(slot);
    }
    for (int d : deps[i]) step.depends_on.push_back(step_of[d]);
    std::sort(step.depends_on.begin(), step.depends_on.end());
    plan.steps_.push_back(std::move(step));
  }
  for (const PlanStep& step : plan.steps_) {
    for (int slot : step.output_slots) {
      if (!consumed[slot]) plan.terminal_outputs_.push_back(plan.slot_names_[slot]);
    }
  }
  for (size_t i = 0; i < input_used.size(); ++i) {
    if (input_used[i]) plan.required_inputs_.push_back(static_cast<int>(i));
  }
  return plan;
}

bool StagePlan::TakesInput(int input_index) const {
  return reads_all_ || std::find(required_inputs_.begin(), required_inputs_.end(), input_index) !=
                           required_inputs_.end();
}

int StagePlan::FindSlot(absl::string_view name) const {
  auto it = slot_of_.find(name);
  return it == slot_of_.end() ? -1 : it->second;
}

absl::StatusOr<std::vector<int>> StagePlan::StepsFor(absl::Span<const std::string> outputs) const {
  std::vector<bool> needed(steps_.size(), false);
  std::vector<int> stack;
  auto want = [&](const std::string& name) -> absl::Status {
    const int slot = FindSlot(name);
    if (slot < 0) {
      if (auto dead = dead_producers_.find(name); dead != dead_producers_.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("output '", name, "' is produced by brick '", dead->second,
                         "', which is not alive in stage ", StageName(stage_)));
      }
      return absl::InvalidArgumentError(
          absl::StrCat("unknown output '", name, "' in stage ", StageName(stage_)));
    }
    if (producer_[slot] >= 0) stack.push_back(producer_[slot]);
    return absl::OkStatus();
  };
  if (outputs.empty()) {
    for (const std::string& name : terminal_outputs_) {
      if (auto s = want(name); !s.ok()) return s;
    }
  } else {
    for (const std::string& name : outputs) {
      if (auto s = want(name); !s.ok()) return s;
    }
  }
  while (!stack.empty()) {
    const int step = stack.back();
    stack.pop_back();
    if (needed[step]) continue;
    needed[step] = true;
    for (int d : steps_[step].depends_on) stack.push_back(d);
  }
  std::vector<int> result;
  for (size_t i = 0; i < needed.size(); ++i) {
    if (needed[i]) result.push_back(static_cast<int>(i));
  }
  return result;
}

}  // namespace torchbricks
