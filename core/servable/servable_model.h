// ServableModel: the libtorch-free face of a loaded brick collection, for server/ and
// anything else that must not include libtorch. Tensors cross it as plain bytes
// (HostTensor, core/servable/host_tensor.h), so a gRPC layer can hand request buffers in and move
// results out. Implementations are immutable after loading: every method is safe to call from many
// threads at once.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<ServableModel> model, LoadServableModel(options));
//   ASSIGN_OR_RETURN(std::vector<HostTensor> out, model->Run(Stage::kInference, inputs, {}));
#ifndef TORCHBRICKS_CORE_SERVABLE_SERVABLE_MODEL_H_
#define TORCHBRICKS_CORE_SERVABLE_SERVABLE_MODEL_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/graph/brick_graph.h"
#include "core/graph/run_limits.h"
#include "core/graph/run_trace.h"
#include "core/graph/stage.h"
#include "core/graph/stage_plan.h"
#include "core/servable/host_tensor.h"
#include "proto/bricks.pb.h"

namespace torchbricks {

// One request of a batch: its inputs (borrowed), the outputs it wants, and until when it
// wants them. Every input of an item has the same size in dimension 0 (its rows).
struct BatchItem {
  absl::Span<const HostTensorView> inputs;
  absl::Span<const std::string> outputs;
  RunLimits limits;
};

class ServableModel {
 public:
  virtual ~ServableModel() = default;

  // The checks Run() makes before executing anything (names, dtypes, shapes against the
  // declaration, byte sizes, requested outputs, and the batch, dimension 0 of the inputs,
  // against the range of every compiled brick the outputs need: see
  // graph().CompiledBatchRange() for a stage's). OK when Run() would start executing;
  // otherwise InvalidArgument naming the input (or the compiled brick and its range).
  virtual absl::Status Validate(Stage stage, absl::Span<const HostTensorView> inputs,
                                absl::Span<const std::string> outputs) const = 0;

  // Runs several requests as one: their inputs, which must have the same names, dtypes
  // and sizes past dimension 0, are concatenated along dimension 0, the union of their
  // outputs is computed once and split back, so each gets exactly its own rows and the
  // outputs it asked for. When the batched run fails, an output has no batch dimension to
  // split, or an item's inputs disagree on their rows, every item is run on its own, so a
  // failure reaches only the items that fail alone. The batched run stops early
  // (DeadlineExceeded or Cancelled) once no item's limits let it go on; a single run, once
  // its own item's do not. Returns one result per item, in order. `trace` gets the bricks
  // of the batched run (or of every single run).
  virtual std::vector<absl::StatusOr<std::vector<HostTensor>>> RunBatch(
      Stage stage, absl::Span<const BatchItem> items, RunTrace* trace) const = 0;

  // Runs `stage` on `inputs` and returns the tensors named in `outputs`, or the stage's
  // terminal outputs when it is empty (see LoadedCollection::Run for the rules). On
  // failure: InvalidArgument naming the tensor for bad inputs or outputs, Internal naming
  // the brick for a failure inside libtorch. `trace`, when not null, gets the bricks run.
  virtual absl::StatusOr<std::vector<HostTensor>> Run(Stage stage,
                                                      absl::Span<const HostTensorView> inputs,
                                                      absl::Span<const std::string> outputs,
                                                      RunTrace* trace) const = 0;

  // The terminal outputs of `stage` with the data type and shape seen when the model was
  // warmed up (dimension 0 reported as -1, the batch); TYPE_INVALID and empty dims for an
  // output not seen.
  virtual std::vector<ValueSpec> OutputSpecs(Stage stage) const = 0;

  virtual const BrickGraph& graph() const = 0;
  virtual const StagePlan& plan(Stage stage) const = 0;
  virtual std::string Mermaid(Stage stage) const = 0;
};

// Prepares the calling thread to run models: intra-op parallelism of `intra_op_threads`
// threads (0 leaves libtorch's default) for work started from this thread, and, for a
// CUDA device, a stream of its own from the pool made current. Call once at the start
// of a worker thread. InvalidArgument for a CUDA device in a build without CUDA.
absl::Status PrepareWorkerThread(int intra_op_threads, const std::string& device);

// True when this build of libtorch has CUDA (libtorch_cuda is loaded).
bool CudaBuilt();
// The CUDA devices libtorch sees; 0 without CUDA.
int CudaDeviceCount();

struct ServableModelOptions {
  // The package version directory that holds bricks.pbtxt. Required.
  std::filesystem::path version_dir;
  // Runs each of INFERENCE and EXPORT this many times on the exporter's reference inputs
  // (when the package has them) before returning, so the TorchScript profiling executor
  // has optimised the graphs before the first request. 0 disables.
  int warmup_runs = 3;
  // "cpu" or "cuda:N": where the modules live and run. Inputs are copied to the device
  // once per (batched) run and outputs back once.
  std::string device = "cpu";
  // See LoadOptions::parallel_branches.
  bool parallel_branches = false;
  // The intra-op threads of the instances that will run the model (instance_group's
  // intra_op_threads): the warm-up runs with them, so a setting that hurts shows at load;
  // the calling thread's own setting is restored afterwards. 0 keeps the calling thread's.
  int intra_op_threads = 0;
  // The per-image pixel budget of encoded image inputs (config.pbtxt's max_image_pixels);
  // 0 applies the rule of ImagePixelBudget() in core/execution/image_io.h. See
  // LoadOptions::max_image_pixels.
  int64_t max_image_pixels = 0;
  // How many instances will run the model at the same time on this device: the runners
  // each AOTInductor brick gets (LoadOptions::runners). At least 1.
  int runners = 1;
};

// Loads, validates, plans and warms a package. Errors as LoadedCollection::Load, plus
// InvalidArgument for a negative intra_op_threads, and Internal when a warm-up run fails
// (the message names the brick). libtorch's warnings while loading and running go to the
// sink of SetTorchLogSink() when one is set (core/libtorch/torch_log_sink.h).
absl::StatusOr<std::unique_ptr<ServableModel>> LoadServableModel(
    const ServableModelOptions& options);

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_SERVABLE_SERVABLE_MODEL_H_
