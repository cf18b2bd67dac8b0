// BrickModule: the TorchScript module of one brick, loaded from its file and checked
// against the brick's input and output names. Run() may be called from many threads at
// once (TorchScript modules are safe to run concurrently in eval mode).
#ifndef TORCHBRICKS_CORE_BRICK_MODULE_H_
#define TORCHBRICKS_CORE_BRICK_MODULE_H_

#include <filesystem>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/brick_graph.h"
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
  // Loads `brick.module_file` under `version_dir` to `device`, puts it in eval mode and
  // checks its forward() signature: the number of input names must fit its parameters,
  // and a tuple return must have exactly as many elements as there are output names.
  // Errors name the brick and the file: NotFound for a missing file, InvalidArgument for
  // a file that is not TorchScript or a signature that does not fit.
  static absl::StatusOr<std::unique_ptr<BrickModule>> Load(
      const BrickSpec& brick, const std::filesystem::path& version_dir,
      const c10::Device& device);

  BrickModule(const BrickModule&) = delete;
  BrickModule& operator=(const BrickModule&) = delete;

  // Calls forward(inputs...) and names the result: a tuple is unpacked by position over
  // the output names, any other value is the single output, None means no outputs.
  // Returns one value per output name, or Internal naming the brick when libtorch fails
  // or the result does not fit the output names.
  absl::StatusOr<std::vector<c10::IValue>> Run(std::vector<c10::IValue> inputs) const override;

 private:
  BrickModule(const BrickSpec& brick, torch::jit::Module module)
      : brick_name_(brick.name), num_outputs_(brick.output_names.size()),
        module_(std::move(module)) {}

  std::string brick_name_;
  size_t num_outputs_;
  // torch::jit::Module is a handle; forward() is not const-qualified but does not change
  // a module in eval mode.
  mutable torch::jit::Module module_;
};

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_BRICK_MODULE_H_
