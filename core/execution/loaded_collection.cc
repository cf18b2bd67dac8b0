#include "core/execution/loaded_collection.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "ATen/Parallel.h"
#include "absl/synchronization/blocking_counter.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "c10/core/InferenceMode.h"
#include "c10/core/StreamGuard.h"  // device-generic: no CUDA headers (cmake/torch.cmake)
#include "c10/core/impl/VirtualGuardImpl.h"
#include "core/execution/aoti_brick.h"
#include "core/execution/image_io.h"
#include "core/execution/scalar_types.h"
#include "core/execution/visualization_brick.h"
#include "core/graph/mermaid.h"
#include "core/libtorch/torch_errors.h"

namespace torchbricks {
namespace {

std::string DeclaredInputNames(const BrickGraph& graph) {
  std::vector<std::string> names;
  for (const ValueSpec& input : graph.inputs()) names.push_back(input.name);
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

// Adds `value` to `result` under `name`: a tensor as itself, a Dict[str, Tensor] flattened.
absl::Status AddOutput(const std::string& name, const c10::IValue& value, NamedTensors* result) {
  if (value.isTensor()) {
    (*result)[name] = value.toTensor();
    return absl::OkStatus();
  }
  if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) {
      if (!entry.key().isString() || !entry.value().isTensor()) {
        return absl::InternalError(
            absl::StrCat("output '", name, "' is a dict that does not map strings to tensors"));
      }
      (*result)[absl::StrCat(name, "/", entry.key().toStringRef())] = entry.value().toTensor();
    }
    return absl::OkStatus();
  }
  return absl::InternalError(
      absl::StrCat("output '", name, "' holds a ", value.tagKind(), ", not a tensor"));
}

struct StepOutcome {
  absl::Status status;
  int64_t nanoseconds = 0;
};

// `steps` (in execution order) grouped so that no step depends on another of its group;
// each group only on earlier ones. A step taking `__all__` gets a group of its own, since
// it reads every slot.
std::vector<std::vector<int>> Levels(const std::vector<PlanStep>& plan_steps,
                                     const std::vector<int>& steps) {
  std::vector<int> level_of(plan_steps.size(), 0);
  std::vector<std::vector<int>> levels;
  int floor = 0;  // no step may join a group before an `__all__` step
  for (int step : steps) {
    const PlanStep& spec = plan_steps[step];
    const bool reads_all = std::find(spec.input_slots.begin(), spec.input_slots.end(), kAllSlot) !=
                           spec.input_slots.end();
    int level = floor;
    for (int dependency : spec.depends_on) level = std::max(level, level_of[dependency] + 1);
    if (reads_all) level = std::max(level, static_cast<int>(levels.size()));
    level_of[step] = level;
    if (level >= static_cast<int>(levels.size())) levels.resize(level + 1);
    levels[level].push_back(step);
    if (reads_all) floor = level + 1;
  }
  return levels;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoadedCollection>> LoadedCollection::Load(
    const LoadOptions& options) {
  ASSIGN_OR_RETURN(package::BrickCollection manifest,
                   ReadManifestFile(options.version_dir / "bricks.pbtxt"));
  std::unique_ptr<LoadedCollection> collection(new LoadedCollection());
  collection->parallel_branches_ = options.parallel_branches;
  if (options.max_image_pixels < 0 || options.max_image_pixels > kMaxImagePixels) {
    return absl::InvalidArgumentError(absl::StrCat("max_image_pixels ", options.max_image_pixels,
                                                   " is not within 0..", kMaxImagePixels));
  }
  collection->max_image_pixels_ = options.max_image_pixels;
  if (options.runners < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("runners must be at least 1, got ", options.runners));
  }
  ASSIGN_OR_RETURN(collection->graph_, BrickGraph::Create(manifest));
  for (Stage stage : kAllStages) {
    ASSIGN_OR_RETURN(collection->plans_[static_cast<int>(stage)],
                     StagePlan::Create(collection->graph_, stage));
  }
  c10::Device& device = collection->device_;
  RETURN_IF_ERROR(CallTorch(
      absl::StrCat("device '", options.device, "'"), [&] { device = c10::Device(options.device); },
      absl::StatusCode::kInvalidArgument));
  for (const BrickSpec& brick : collection->graph_.bricks()) {
    if (brick.renders()) {
      ASSIGN_OR_RETURN(std::unique_ptr<VisualizationBrick> visualization,
                       VisualizationBrick::Create(brick, options.version_dir));
      collection->modules_.push_back(std::move(visualization));
    } else if (brick.compiled.has_value()) {
      ASSIGN_OR_RETURN(std::unique_ptr<AotiBrick> compiled,
                       AotiBrick::Load(brick, options.version_dir, device, options.runners));
      collection->modules_.push_back(std::move(compiled));
    } else {
      ASSIGN_OR_RETURN(std::unique_ptr<BrickModule> module,
                       BrickModule::Load(brick, options.version_dir, device));
      collection->modules_.push_back(std::move(module));
    }
  }
  for (const FusedSpec& fused : collection->graph_.fused()) {
    ASSIGN_OR_RETURN(FusedPlan plan,
                     FusedPlan::Create(collection->graph_, collection->plan(fused.stage), fused));
    ASSIGN_OR_RETURN(std::unique_ptr<AotiBrick> program,
                     AotiBrick::LoadFused(fused, options.version_dir, device, options.runners));
    collection->fused_[static_cast<int>(fused.stage)] =
        FusedStageProgram{std::move(plan), std::move(program)};
  }
  return collection;
}

const LoadedCollection::FusedStageProgram* LoadedCollection::FusedFor(
    Stage stage, std::vector<int>* steps) const {
  const std::optional<FusedStageProgram>& fused = fused_[static_cast<int>(stage)];
  if (!fused.has_value()) return nullptr;
  std::optional<std::vector<int>> fused_steps = fused->plan.StepsFor(*steps);
  if (!fused_steps.has_value()) return nullptr;
  *steps = *std::move(fused_steps);
  return &*fused;
}

absl::Status LoadedCollection::ToDevice(NamedTensors* inputs) const {
  if (device_.is_cpu()) return absl::OkStatus();
  for (auto& [name, tensor] : *inputs) {
    const int declared = graph_.FindInput(name);
    if (declared >= 0 && graph_.inputs()[declared].encoded_image) continue;  // decoded on the host
    // A named reference: C++17 lambdas cannot capture structured bindings (clang refuses).
    at::Tensor& input = tensor;
    RETURN_IF_ERROR(CallTorch(absl::StrCat("copying input '", name, "' to ", device_.str()), [&] {
      input = (input.is_pinned() ? input : input.pin_memory()).to(device_, /*non_blocking=*/true);
    }));
  }
  return absl::OkStatus();
}

absl::StatusOr<NamedTensors> LoadedCollection::Run(Stage stage, const NamedTensors& inputs,
                                                   absl::Span<const std::string> outputs,
                                                   RunTrace* trace, const RunLimits& limits) const {
  std::vector<TensorSignature> signatures;
  signatures.reserve(inputs.size());
  for (const auto& [name, tensor] : inputs) {
    TensorSignature signature{name, FromScalarType(tensor.scalar_type()),
                              std::vector<int64_t>(tensor.sizes().begin(), tensor.sizes().end())};
    const int declared = graph_.FindInput(name);
    if (declared >= 0 && graph_.inputs()[declared].encoded_image) {
      if (tensor.scalar_type() != at::kByte || tensor.dim() != 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", name, "' is an encoded image input: give BYTES rows (uint8 [B, 4 + L])"));
      }
      signature.data_type = package::TYPE_STRING;
      signature.shape = {tensor.size(0)};
    }
    if (signature.data_type == package::TYPE_INVALID) {
      return absl::InvalidArgumentError(absl::StrCat("input '", name, "' has data type ",
                                                     c10::toString(tensor.scalar_type()),
                                                     ", which the package format cannot name"));
    }
    signatures.push_back(std::move(signature));
  }
  RETURN_IF_ERROR(Check(stage, signatures, outputs));
  const StagePlan& plan = plans_[static_cast<int>(stage)];
  ASSIGN_OR_RETURN(std::vector<int> steps, plan.StepsFor(outputs));
  const FusedStageProgram* fused = FusedFor(stage, &steps);
  const std::vector<PlanStep>& plan_steps = fused != nullptr ? fused->plan.steps() : plan.steps();
  // A step's callable and its name in messages: a brick, or the fused program.
  auto callable_of = [&](const PlanStep& step) -> const BrickCallable& {
    return step.brick == kFusedBrick ? *fused->program : *modules_[step.brick];
  };
  auto name_of = [&](const PlanStep& step) -> const std::string& {
    return step.brick == kFusedBrick ? graph_.FusedIn(stage)->program.name
                                     : graph_.bricks()[step.brick].name;
  };
  std::vector<c10::IValue> slots(plan.num_slots());
  c10::InferenceMode inference_mode;
  for (const auto& [name, tensor] : inputs) {
    const ValueSpec& spec = graph_.inputs()[graph_.FindInput(name)];
    if (!spec.encoded_image) {
      slots[plan.FindSlot(name)] = tensor;
      continue;
    }
    absl::StatusOr<at::Tensor> decoded(absl::UnknownError(""));
    // A named reference: C++17 lambdas cannot capture structured bindings (clang refuses).
    const at::Tensor& rows = tensor;
    RETURN_IF_ERROR(CallTorch(absl::StrCat("input '", name, "'"), [&] {
      decoded = DecodeImages(spec, rows, max_image_pixels_, limits);
      if (decoded.ok() && !device_.is_cpu()) *decoded = decoded->to(device_, /*non_blocking=*/true);
    }));
    if (!decoded.ok()) return decoded.status();
    slots[plan.FindSlot(name)] = *std::move(decoded);
  }

  const c10::IValue stage_value(std::string(StageName(stage)));
  // On a GPU: the caller's current stream, which every brick (on whichever thread) runs on and
  // which is synchronised after each brick, so that its time is its work's.
  std::optional<c10::Stream> stream;
  if (!device_.is_cpu()) {
    RETURN_IF_ERROR(CallTorch("the device's current stream", [&] {
      stream = c10::impl::VirtualGuardImpl(device_.type()).getStream(device_);
    }));
  }
  // Runs one step; writes only its own output slots, so steps of one level may run at once.
  auto run_step = [&](int step_index, StepOutcome* outcome) {
    c10::InferenceMode step_inference_mode;
    // The run's device and stream are this thread's current ones while the brick runs (a
    // branch on an inter-op thread joins them; on the caller's thread a no-op), and the
    // thread's own are restored when the guard goes.
    std::optional<c10::StreamGuard> on_stream;
    if (stream.has_value()) {
      outcome->status =
          CallTorch("selecting the run's stream", [&] { on_stream.emplace(*stream); });
      if (!outcome->status.ok()) return;
    }
    const PlanStep& step = plan_steps[step_index];
    std::vector<c10::IValue> args;
    args.reserve(step.input_slots.size());
    for (int slot : step.input_slots) {
      if (slot == kStageSlot) {
        args.push_back(stage_value);
      } else if (slot == kAllSlot) {
        c10::Dict<std::string, at::Tensor> all;
        for (int s = 0; s < plan.num_slots(); ++s) {
          if (slots[s].isTensor()) all.insert(plan.slot_name(s), slots[s].toTensor());
        }
        args.emplace_back(std::move(all));
      } else {
        args.push_back(slots[slot]);
      }
    }
    const auto start = std::chrono::steady_clock::now();
    auto produced = callable_of(step).Run(std::move(args));
    if (produced.ok() && stream.has_value()) {
      const absl::Status synced =
          CallTorch(absl::StrCat("brick '", name_of(step), "' on ", device_.str()),
                    [&] { stream->synchronize(); });
      if (!synced.ok()) produced = synced;
    }
    outcome->nanoseconds = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now() - start)
                               .count();
    outcome->status = produced.status();
    if (!produced.ok()) return;
    for (size_t i = 0; i < step.output_slots.size(); ++i) {
      slots[step.output_slots[i]] = std::move((*produced)[i]);
    }
  };

  for (const std::vector<int>& level : Levels(plan_steps, steps)) {
    if (limits.Reached()) {
      RETURN_IF_ERROR(limits.Check(
          absl::StrCat("the run waited to start brick '", name_of(plan_steps[level[0]]), "'")));
    }
    std::vector<StepOutcome> outcomes(level.size());
    if (level.size() == 1 || !parallel_branches_) {
      for (size_t i = 0; i < level.size(); ++i) {
        run_step(level[i], &outcomes[i]);
        if (!outcomes[i].status.ok()) {
          outcomes.resize(i + 1);
          break;
        }
      }
    } else {
      absl::BlockingCounter pending(static_cast<int>(level.size()) - 1);
      for (size_t i = 1; i < level.size(); ++i) {
        at::launch([&, i] {
          run_step(level[i], &outcomes[i]);
          pending.DecrementCount();
        });
      }
      run_step(level[0], &outcomes[0]);
      pending.Wait();
    }
    for (size_t i = 0; i < outcomes.size(); ++i) {
      if (trace == nullptr) continue;
      if (const int brick = plan_steps[level[i]].brick; brick == kFusedBrick) {
        trace->fused.push_back(stage);
        trace->fused_nanoseconds.push_back(outcomes[i].nanoseconds);
      } else {
        trace->bricks.push_back(brick);
        trace->brick_nanoseconds.push_back(outcomes[i].nanoseconds);
      }
    }
    for (const StepOutcome& outcome : outcomes) {
      if (!outcome.status.ok()) return outcome.status;
    }
  }

  NamedTensors result;
  const std::vector<std::string>& names =
      outputs.empty() ? plan.terminal_outputs()
                      : std::vector<std::string>(outputs.begin(), outputs.end());
  for (const std::string& name : names) {
    RETURN_IF_ERROR(AddOutput(name, slots[plan.FindSlot(name)], &result));
  }
  return result;
}

absl::Status LoadedCollection::Check(Stage stage, absl::Span<const TensorSignature> inputs,
                                     absl::Span<const std::string> outputs) const {
  const StagePlan& plan = plans_[static_cast<int>(stage)];
  ASSIGN_OR_RETURN(std::vector<int> steps, plan.StepsFor(outputs));
  std::vector<bool> given(plan.num_slots(), false);
  for (const TensorSignature& input : inputs) {
    const int index = graph_.FindInput(input.name);
    if (index < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown input '", input.name,
                       "'; the model's inputs are: ", DeclaredInputNames(graph_)));
    }
    if (!plan.TakesInput(index)) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name, "' is not read in stage ", StageName(stage),
                       "; send only the inputs the stage takes (listed in ModelMetadata)"));
    }
    const int slot = plan.FindSlot(input.name);
    if (given[slot]) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name, "' is given more than once"));
    }
    given[slot] = true;
    RETURN_IF_ERROR(CheckAgainstSpec(graph_.inputs()[index], input.data_type, input.shape));
  }
  // After the inputs' own checks, so that an unknown or misshapen input is named as such.
  std::vector<int> fused_steps = steps;
  if (FusedFor(stage, &fused_steps) != nullptr) {
    // The fused program takes the batches it was exported for, as its bricks do.
    for (const TensorSignature& input : inputs) {
      if (input.shape.empty()) continue;
      RETURN_IF_ERROR(
          CheckCompiledBatch(graph_.FusedIn(stage)->program, input.name, input.shape[0]));
    }
  }
  for (int step : steps) {
    const BrickSpec& brick = graph_.bricks()[plan.steps()[step].brick];
    if (!brick.HasModuleFor(stage)) {
      return absl::FailedPreconditionError(
          absl::StrCat("brick '", brick.name,
                       "' was traced once per stage at export and has no module for stage ",
                       StageName(stage), "; export it with example inputs for that stage"));
    }
    // A compiled program takes only the batches it was exported for; every input has the
    // request's batch in dimension 0.
    for (const TensorSignature& input : inputs) {
      if (input.shape.empty()) continue;
      RETURN_IF_ERROR(CheckCompiledBatch(brick, input.name, input.shape[0]));
    }
    for (int slot : plan.steps()[step].input_slots) {
      if (slot >= 0 && plan.InputIndexOfSlot(slot) >= 0 && !given[slot]) {
        return absl::InvalidArgumentError(absl::StrCat("missing input '", plan.slot_name(slot),
                                                       "', required in stage ", StageName(stage)));
      }
    }
  }
  for (const std::string& name : outputs) {
    const int slot = plan.FindSlot(name);
    if (plan.InputIndexOfSlot(slot) >= 0 && !given[slot]) {
      return absl::InvalidArgumentError(
          absl::StrCat("output '", name, "' is an input that the request does not provide"));
    }
  }
  return absl::OkStatus();
}

int64_t LoadedCollection::ImagePixelBudgetOf(const ValueSpec& spec) const {
  return ImagePixelBudget(spec, max_image_pixels_);
}

std::string LoadedCollection::Mermaid(Stage stage) const {
  return RenderMermaid(graph_, plans_[static_cast<int>(stage)]);
}

}  // namespace torchbricks
