// BrickModule: the TorchScript module(s) of one brick, loaded from the package and checked
// against the brick's input and output names. It calls forward() the way torchbricks calls
// the brick's Python module: by position, or by keyword when the package names the
// parameters (input_arguments), or, for a brick traced once per stage (stage_modules), the
// module of the stage named by its "stage" input. Run() may be called from many threads at
// once (TorchScript modules are safe to run concurrently in eval mode).
#ifndef TORCHBRICKS_CORE_EXECUTION_BRICK_MODULE_H_
#define TORCHBRICKS_CORE_EXECUTION_BRICK_MODULE_H_

#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/graph/brick_graph.h"
#include "torch/script.h"

namespace torchbricks {

// What the executor calls for one brick: its input values in, one value per output name
// out. Implementations are immutable and safe to call from many threads at once.
class BrickCallable {
 public:
  virtual ~BrickCallable() = default;
  // Returns one value per output name, or Internal naming the brick when it fails
  // (InvalidArgument when the inputs cannot be what the brick takes).
  virtual absl::StatusOr<std::vector<c10::IValue>> Run(std::vector<c10::IValue> inputs) const = 0;
};

class BrickModule : public BrickCallable {
 public:
  // Loads the brick's module file (or one file per stage) under `version_dir` to `device`,
  // puts it in eval mode and checks its forward() signature against the brick: the inputs
  // must fit its parameters (every keyword named in input_arguments must be one, and every
  // parameter without a default must receive an input), and a tuple return must have
  // exactly as many elements as there are output names. Errors name the brick and the
  // file: NotFound for a missing file, InvalidArgument for a file that is not TorchScript
  // or a signature that does not fit.
  static absl::StatusOr<std::unique_ptr<BrickModule>> Load(const BrickSpec& brick,
                                                           const std::filesystem::path& version_dir,
                                                           const c10::Device& device);

  BrickModule(const BrickModule&) = delete;
  BrickModule& operator=(const BrickModule&) = delete;

  // Calls forward() with `inputs` (one per input name, the stage name as a string in the
  // "stage" position) and names the result: a tuple is unpacked by position over the output
  // names, any other value is the single output, None means no outputs. Returns one value
  // per output name, or Internal naming the brick when libtorch fails or the result does
  // not fit the output names (also for a stage-traced brick run in a stage it has no
  // module for, which LoadedCollection refuses earlier).
  absl::StatusOr<std::vector<c10::IValue>> Run(std::vector<c10::IValue> inputs) const override;

  // One loaded module and how the brick's inputs become its forward() arguments.
  struct Callee {
    // torch::jit::Module is a handle; forward() is not const-qualified but does not change
    // a module in eval mode.
    mutable torch::jit::Module module;
    // Empty: the inputs are the arguments, in order. Otherwise forward()'s parameter
    // index (self excluded) of each input, and `arguments` holds every parameter's default.
    std::vector<size_t> positions;
    std::vector<c10::IValue> arguments;
    // Per input: the declared type of a Dict (or Optional[Dict]) parameter, so that a
    // `__all__` dict of another type is retyped to it; else null.
    std::vector<c10::TypePtr> dict_types;
  };

 private:
  BrickModule(const BrickSpec& brick)
      : brick_name_(brick.name), num_outputs_(brick.output_names.size()) {}

  absl::StatusOr<const Callee*> CalleeFor(std::vector<c10::IValue>& inputs) const;

  std::string brick_name_;
  size_t num_outputs_;
  std::optional<Callee> callee_;  // the one module, unless traced per stage
  // For a brick traced per stage: the position of its "stage" input and each stage's module.
  int stage_position_ = -1;
  std::array<std::optional<Callee>, kNumStages> stage_callees_;
};

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_EXECUTION_BRICK_MODULE_H_
