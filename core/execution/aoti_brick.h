// AotiBrick: one brick compiled ahead of time by AOTInductor (torch.export, then
// aoti_compile_and_package), its .pt2 package loaded with torch::inductor's
// AOTIModelPackageLoader. The compiled code checks nothing about its inputs: a wrong dtype,
// rank or size, or a batch outside the exported range, can crash the process or silently give
// wrong numbers. So Run() checks every input against the brick's compiled program (CompiledSpec,
// core/graph/brick_graph.h) before calling it. Thread-safe: Run() may be called from any number of
// threads; at most `runners` of them run the program at once, the others wait for a free runner.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<AotiBrick> brick,
//                    AotiBrick::Load(spec, version_dir, c10::Device("cpu"), /*runners=*/2));
//   ASSIGN_OR_RETURN(std::vector<c10::IValue> outputs, brick->Run({images}));
//
// The loader extracts the package into a fresh folder under /tmp (hard-coded by libtorch, which
// must be writable and allow executing) and removes it when the brick is destroyed.
#ifndef TORCHBRICKS_CORE_EXECUTION_AOTI_BRICK_H_
#define TORCHBRICKS_CORE_EXECUTION_AOTI_BRICK_H_

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/execution/brick_module.h"
#include "core/graph/brick_graph.h"

namespace torch::inductor {
class AOTIModelPackageLoader;
}  // namespace torch::inductor

namespace torchbricks {

class AotiBrick : public BrickCallable {
 public:
  // Loads the package `brick.module_file` under `version_dir` for `device`, with `runners`
  // (>= 1) instances of the program: as many as will call Run() at the same time.
  // Errors name the brick: InvalidArgument for a brick without a compiled program or runners
  // below 1; NotFound (and the file) for a missing file; FailedPrecondition (and the file) when
  // the package was compiled for another device type, for instruction sets this CPU lacks, or
  // cannot be opened (not a zip, truncated, not an AOTInductor package, its code not loadable).
  static absl::StatusOr<std::unique_ptr<AotiBrick>> Load(const BrickSpec& brick,
                                                         const std::filesystem::path& version_dir,
                                                         const c10::Device& device, int runners);

  // Loads a stage's fused program (BrickGraph::fused()) as Load() loads a brick: the same checks,
  // errors and runners, its messages naming "fused program '<fused INFERENCE>'".
  static absl::StatusOr<std::unique_ptr<AotiBrick>> LoadFused(
      const FusedSpec& fused, const std::filesystem::path& version_dir, const c10::Device& device,
      int runners);

  AotiBrick(const AotiBrick&) = delete;
  AotiBrick& operator=(const AotiBrick&) = delete;
  ~AotiBrick() override;  // removes the extracted package

  // Runs the program on `inputs` (one per input name) and returns one tensor per output name.
  // Before running: InvalidArgument naming the brick and the input when an input is not a
  // defined tensor, is on another device, has another dtype, rank or non-batch size than its
  // compiled spec, when the inputs disagree on the batch (dimension 0), or when the batch is
  // outside [min_batch, max_batch]. Non-contiguous inputs are made contiguous. Internal naming
  // the brick when the program fails or returns another number of outputs than output names.
  absl::StatusOr<std::vector<c10::IValue>> Run(std::vector<c10::IValue> inputs) const override;

 private:
  AotiBrick(const BrickSpec& brick, const c10::Device& device, std::string label);

  static absl::StatusOr<std::unique_ptr<AotiBrick>> LoadLabelled(
      const BrickSpec& brick, const std::string& label, const std::filesystem::path& version_dir,
      const c10::Device& device, int runners);

  // The tensors Run() hands the program, or why `inputs` cannot be them.
  absl::StatusOr<std::vector<at::Tensor>> CheckedInputs(std::vector<c10::IValue> inputs) const;

  BrickSpec brick_;  // its compiled program is set
  c10::Device device_;
  std::string label_;  // "brick 'name'" or "fused program '<fused STAGE>'", for messages
  // run() is thread-safe (it waits for one of its runners) but not const-qualified.
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
};

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_EXECUTION_AOTI_BRICK_H_
