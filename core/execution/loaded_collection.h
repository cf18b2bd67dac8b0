// LoadedCollection: a serialized brick collection loaded from a package version directory
// (bricks.pbtxt + one TorchScript file or AOTInductor package per module brick), validated and
// planned for every stage, ready to run. It owns the modules and plans; nothing changes after
// Load(), so Run() is safe to call from any number of threads at once.
//
//   ASSIGN_OR_RETURN(auto collection, LoadedCollection::Load({.version_dir = "repo/m/1"}));
//   ASSIGN_OR_RETURN(NamedTensors out,
//                    collection->Run(Stage::kInference, {{"raw_images", images}}, {"logits"}));
#ifndef TORCHBRICKS_CORE_EXECUTION_LOADED_COLLECTION_H_
#define TORCHBRICKS_CORE_EXECUTION_LOADED_COLLECTION_H_

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/execution/brick_module.h"
#include "core/graph/brick_graph.h"
#include "core/graph/fused_plan.h"
#include "core/graph/run_limits.h"
#include "core/graph/run_trace.h"
#include "core/graph/stage.h"
#include "core/graph/stage_plan.h"
#include "torch/types.h"

namespace torchbricks {

// Tensors by name. Ordered, so that printing and comparing are deterministic.
using NamedTensors = std::map<std::string, at::Tensor>;

// What a tensor is, without its data: enough to check a request before running it.
struct TensorSignature {
  std::string name;
  package::DataType data_type = package::TYPE_INVALID;
  std::vector<int64_t> shape;
};

struct LoadOptions {
  // The package version directory that holds bricks.pbtxt. Required.
  std::filesystem::path version_dir;
  // Where the modules are loaded: "cpu" or "cuda:N". Run() expects inputs on that device.
  std::string device = "cpu";
  // Run bricks that do not depend on each other (two heads on one backbone) at the same
  // time on libtorch's inter-op thread pool. Off by default: see docs/PERFORMANCE.md.
  bool parallel_branches = false;
  // The per-image pixel budget of encoded image inputs (config.pbtxt's max_image_pixels):
  // 0 applies ImagePixelBudget()'s rule (core/execution/image_io.h); otherwise 1..kMaxImagePixels.
  int64_t max_image_pixels = 0;
  // How many callers will run the collection at the same time (the instances on this
  // device): each AOTInductor brick gets that many runners of its compiled program, so that
  // they never wait for one another. At least 1; TorchScript bricks ignore it.
  int runners = 1;
};

class LoadedCollection {
 public:
  // Reads, validates, plans and loads the package in `options.version_dir`. Returns
  // NotFound when bricks.pbtxt or a module file is missing, InvalidArgument for any
  // invalid content (or a max_image_pixels out of range, runners below 1; a fused stage
  // whose bricks are not convex, FusedPlan), and FailedPrecondition for an AOTInductor
  // package this machine cannot run or open (AotiBrick::Load, AotiBrick::LoadFused); the
  // message names the brick or fused program (and file) at fault.
  static absl::StatusOr<std::unique_ptr<LoadedCollection>> Load(const LoadOptions& options);

  LoadedCollection(const LoadedCollection&) = delete;
  LoadedCollection& operator=(const LoadedCollection&) = delete;

  // Runs `stage` on `inputs` under InferenceMode and returns the tensors named in
  // `outputs` (any name the stage produces, intermediates included, or a declared input),
  // or the stage's terminal outputs when `outputs` is empty. Only the bricks those
  // outputs need are run; when they need every brick of the stage's fused program
  // (BrickGraph::FusedIn), that program runs in place of those bricks (and its outputs
  // nobody asked for are dropped). An output holding a Dict[str, Tensor] is returned flattened as
  // "<name>/<key>" tensors. An encoded image input is given, and a visualization output
  // (graph().IsBytesOutput()) returned, as a BYTES rows tensor (core/execution/image_io.h).
  // Inputs other than encoded images must be on device() (ToDevice()); on a CUDA device the
  // bricks run on the calling thread's current stream (branches run in parallel too), and each
  // brick's time in `trace` includes waiting for that stream to finish its work: the run
  // synchronises the stream after every brick, so the time is the brick's, not its launch's.
  // Errors: InvalidArgument naming the tensor for an unknown input, a missing required
  // input, a dtype or shape that contradicts the declaration, or an unknown output, and
  // naming the brick and its range for a batch (dimension 0) that a compiled brick the run
  // needs does not take;
  // Internal naming the brick when libtorch fails inside it. `inputs` is never changed.
  // If `trace` is not null it receives the bricks (and fused programs) that ran (even on
  // failure). Between
  // bricks, and while decoding images, the run stops with `limits`' error
  // (DeadlineExceeded or Cancelled) once they say nobody waits for its answer.
  absl::StatusOr<NamedTensors> Run(Stage stage, const NamedTensors& inputs,
                                   absl::Span<const std::string> outputs = {},
                                   RunTrace* trace = nullptr,
                                   const RunLimits& limits = RunLimits()) const;

  // The checks Run() makes before running anything: unknown, missing or ill-typed
  // inputs, unknown outputs, and batches outside the range of a compiled brick that the
  // requested outputs need. OK when Run() would start executing bricks.
  absl::Status Check(Stage stage, absl::Span<const TensorSignature> inputs,
                     absl::Span<const std::string> outputs) const;

  // Copies the inputs Run() takes on its device there, each through pinned (page-locked) host
  // memory and asynchronously on the calling thread's current stream; encoded image inputs stay
  // on the host, where Run() decodes them before the decoded pixels go to the device. A no-op
  // on the CPU. Internal naming the input when libtorch fails.
  absl::Status ToDevice(NamedTensors* inputs) const;

  // Where the modules live and run (LoadOptions::device).
  const c10::Device& device() const { return device_; }
  const BrickGraph& graph() const { return graph_; }
  // The most pixels one image of declared input `spec` may have (ImagePixelBudget() with
  // LoadOptions::max_image_pixels).
  int64_t ImagePixelBudgetOf(const ValueSpec& spec) const;
  const StagePlan& plan(Stage stage) const { return plans_[static_cast<int>(stage)]; }
  // The mermaid flowchart of `stage`.
  std::string Mermaid(Stage stage) const;

 private:
  LoadedCollection() = default;

  BrickGraph graph_;
  c10::Device device_ = c10::Device(c10::kCPU);
  bool parallel_branches_ = false;
  int64_t max_image_pixels_ = 0;
  std::array<StagePlan, kNumStages> plans_;
  // One per brick of graph_, same order.
  std::vector<std::unique_ptr<BrickCallable>> modules_;
  // A stage's fused program and its plan (FusedPlan), for the stages that have one.
  struct FusedStageProgram {
    FusedPlan plan;
    std::unique_ptr<BrickCallable> program;
  };
  std::array<std::optional<FusedStageProgram>, kNumStages> fused_;
  // The fused program that runs for `steps` (plan step indices of `stage`) and its steps, or
  // null (and `steps` unchanged) when the per-brick plan runs.
  const FusedStageProgram* FusedFor(Stage stage, std::vector<int>* steps) const;
};

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_EXECUTION_LOADED_COLLECTION_H_
