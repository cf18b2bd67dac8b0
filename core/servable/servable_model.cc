// ServableModel over LoadedCollection: batching by concatenation along dimension 0, and
// per-thread worker preparation (host tensor conversions: core/servable/host_tensor_conversion.h).
#include "core/servable/servable_model.h"

#include <array>
#include <cstring>
#include <map>

#include "ATen/Parallel.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "core/execution/image_io.h"
#include "core/execution/loaded_collection.h"
#include "core/execution/reference_check.h"
#include "core/execution/scalar_types.h"
#include "core/graph/bytes_elements.h"
#include "core/libtorch/torch_errors.h"
#include "core/libtorch/torch_log_sink.h"
#include "core/servable/host_tensor_conversion.h"
#ifdef TORCHBRICKS_WITH_CUDA
// Device-generic c10 APIs only: they need no CUDA toolkit headers (cmake/torch.cmake).
#include "ATen/detail/CUDAHooksInterface.h"
#include "c10/core/impl/VirtualGuardImpl.h"
#include "torch/cuda.h"
#endif

namespace torchbricks {
namespace {

// True when `name` is what `wanted` asks for: itself, or an entry of a flattened dict.
bool Answers(const std::string& name, const std::string& wanted) {
  return name == wanted ||
         (name.size() > wanted.size() && name.compare(0, wanted.size(), wanted) == 0 &&
          name[wanted.size()] == '/');
}

class TorchServableModel : public ServableModel {
 public:
  explicit TorchServableModel(std::unique_ptr<LoadedCollection> collection)
      : collection_(std::move(collection)) {}

  const LoadedCollection* collection() const { return collection_.get(); }

  // Records the dtype and shape of outputs seen while warming up `stage`.
  void Observe(Stage stage, const NamedTensors& outputs) {
    for (const auto& [name, tensor] : outputs) {
      ValueSpec& info = seen_[static_cast<int>(stage)][name];
      info.name = name;
      info.data_type = FromScalarType(tensor.scalar_type());
      info.dims.assign(tensor.sizes().begin(), tensor.sizes().end());
      if (collection_->graph().IsBytesOutput(name)) {
        info.data_type = package::TYPE_STRING;
        info.dims = {-1};
      }
      if (!info.dims.empty()) info.dims[0] = -1;
    }
  }

  absl::Status Validate(Stage stage, absl::Span<const HostTensorView> inputs,
                        absl::Span<const std::string> outputs) const override {
    std::vector<TensorSignature> signatures;
    signatures.reserve(inputs.size());
    // The elements of each BYTES input, split once.
    std::vector<std::pair<const HostTensorView*, std::vector<absl::string_view>>> bytes_inputs;
    for (const HostTensorView& view : inputs) {
      if (view.data_type == package::TYPE_STRING) {
        ASSIGN_OR_RETURN(std::vector<absl::string_view> elements, BytesElements(view));
        bytes_inputs.emplace_back(&view, std::move(elements));
      } else {
        RETURN_IF_ERROR(CheckByteSize(view));
      }
      signatures.push_back({view.name, view.data_type, view.shape});
    }
    RETURN_IF_ERROR(collection_->Check(stage, signatures, outputs));
    // Encoded images: catch bytes that are no image file here, before they are queued.
    for (const auto& [view, elements] : bytes_inputs) {
      RETURN_IF_ERROR(CheckBytesTarget(*view));
      const ValueSpec& spec = graph().inputs()[graph().FindInput(view->name)];
      RETURN_IF_ERROR(CheckImageFiles(view->name, elements, collection_->ImagePixelBudgetOf(spec)));
      RETURN_IF_ERROR(CheckBytesPadding(elements, view->name));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<HostTensor>> Run(Stage stage, absl::Span<const HostTensorView> inputs,
                                              absl::Span<const std::string> outputs,
                                              RunTrace* trace) const override {
    return RunOne(stage, {inputs, outputs, RunLimits()}, trace);
  }

  absl::StatusOr<std::vector<HostTensor>> RunOne(Stage stage, const BatchItem& item,
                                                 RunTrace* trace) const {
    const absl::Span<const HostTensorView> inputs = item.inputs;
    const absl::Span<const std::string> outputs = item.outputs;
    const ScopedTorchWarningRoute warnings;
    NamedTensors tensors;
    for (const HostTensorView& view : inputs) {
      RETURN_IF_ERROR(CheckBytesTarget(view));
      // Inputs are only read for the length of this call: borrow them.
      ASSIGN_OR_RETURN(at::Tensor tensor, ToTensor(view, /*borrow=*/true));
      if (!tensors.emplace(view.name, std::move(tensor)).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", view.name, "' is given more than once"));
      }
    }
    RETURN_IF_ERROR(collection_->ToDevice(&tensors));
    ASSIGN_OR_RETURN(NamedTensors produced,
                     collection_->Run(stage, tensors, outputs, trace, item.limits));
    std::vector<HostTensor> result;
    result.reserve(produced.size());
    for (const auto& [name, tensor] : produced) {
      ASSIGN_OR_RETURN(HostTensor host,
                       ToHost(name, tensor, collection_->graph().IsBytesOutput(name)));
      result.push_back(std::move(host));
    }
    return result;
  }

  std::vector<absl::StatusOr<std::vector<HostTensor>>> RunBatch(Stage stage,
                                                                absl::Span<const BatchItem> items,
                                                                RunTrace* trace) const override {
    const ScopedTorchWarningRoute warnings;
    std::vector<absl::StatusOr<std::vector<HostTensor>>> results;
    results.reserve(items.size());
    if (items.size() > 1) {
      absl::StatusOr<std::vector<std::vector<HostTensor>>> batched =
          RunConcatenated(stage, items, trace);
      if (batched.ok()) {
        for (std::vector<HostTensor>& member : *batched) results.emplace_back(std::move(member));
        return results;
      }
    }
    for (const BatchItem& item : items) results.push_back(RunOne(stage, item, trace));
    return results;
  }

  std::vector<ValueSpec> OutputSpecs(Stage stage) const override {
    std::vector<ValueSpec> result;
    const auto& seen = seen_[static_cast<int>(stage)];
    for (const std::string& name : collection_->plan(stage).terminal_outputs()) {
      auto it = seen.find(name);
      result.push_back(it != seen.end() ? it->second : ValueSpec{name, package::TYPE_INVALID, {}});
    }
    return result;
  }

  const BrickGraph& graph() const override { return collection_->graph(); }
  const StagePlan& plan(Stage stage) const override { return collection_->plan(stage); }
  std::string Mermaid(Stage stage) const override { return collection_->Mermaid(stage); }

 private:
  // BYTES data may only go to an encoded image input.
  absl::Status CheckBytesTarget(const HostTensorView& view) const {
    if (view.data_type != package::TYPE_STRING) return absl::OkStatus();
    const int index = graph().FindInput(view.name);
    if (index >= 0 && graph().inputs()[index].encoded_image) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", view.name, "' has data type BYTES, which only encoded image inputs take"));
  }

  // One run for all items; fails (and the caller runs them singly) when the items cannot
  // be concatenated, the run fails, or an output cannot be split by rows.
  absl::StatusOr<std::vector<std::vector<HostTensor>>> RunConcatenated(
      Stage stage, absl::Span<const BatchItem> items, RunTrace* trace) const {
    std::vector<int64_t> rows;
    std::map<std::string, std::vector<at::Tensor>> parts;
    // BYTES inputs: the elements of every item, packed into one rows tensor below.
    std::map<std::string, std::vector<absl::string_view>> bytes_parts;
    for (const BatchItem& item : items) {
      if (item.inputs.empty() || item.inputs[0].shape.empty()) {
        return absl::FailedPreconditionError("an item has no batch dimension");
      }
      // Each item's outputs are split at its own rows: every one of its inputs must have
      // them, or rows of one request would be answered to another.
      rows.push_back(item.inputs[0].shape[0]);
      for (const HostTensorView& view : item.inputs) {
        if (view.shape.empty() || view.shape[0] != rows.back()) {
          return absl::FailedPreconditionError("an item's inputs disagree on the batch size");
        }
      }
      for (const HostTensorView& view : item.inputs) {
        if (view.data_type == package::TYPE_STRING) {
          ASSIGN_OR_RETURN(std::vector<absl::string_view> elements, BytesElements(view));
          auto& all = bytes_parts[view.name];
          all.insert(all.end(), elements.begin(), elements.end());
          continue;
        }
        ASSIGN_OR_RETURN(at::Tensor tensor, ToTensor(view, /*borrow=*/true));  // cat copies
        parts[view.name].push_back(std::move(tensor));
      }
    }
    // More rows than a compiled brick takes: the items run one by one (each is checked).
    int64_t total = 0;
    for (int64_t r : rows) total += r;
    if (const BatchRange range = graph().CompiledBatchRange(stage);
        range.bounded() && total > range.max) {
      return absl::FailedPreconditionError(
          absl::StrCat("the batch of ", total, " rows exceeds the ", range.max, " that brick '",
                       range.max_brick, "' is compiled for"));
    }
    // Every output any item wants; an item with no outputs named wants the terminal ones.
    std::vector<std::string> wanted;
    absl::flat_hash_set<std::string> seen;
    std::vector<std::vector<std::string>> wants(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      const auto& names =
          items[i].outputs.empty()
              ? collection_->plan(stage).terminal_outputs()
              : std::vector<std::string>(items[i].outputs.begin(), items[i].outputs.end());
      wants[i] = names;
      for (const std::string& name : names) {
        if (seen.insert(name).second) wanted.push_back(name);
      }
    }
    NamedTensors batched;
    // The lambdas below capture the structured bindings by init-capture: C++17 cannot
    // capture a binding itself (clang refuses; gcc allows it as an extension).
    for (auto& [name, tensors] : parts) {
      if (tensors.size() != items.size()) {
        return absl::FailedPreconditionError("items have different inputs");
      }
      RETURN_IF_ERROR(CallTorch("concatenating inputs", [&, &name = name, &tensors = tensors] {
        batched[name] = at::cat(tensors, 0);
      }));
      if (batched[name].size(0) != total) {
        return absl::FailedPreconditionError("inputs disagree on the batch size");
      }
    }
    for (const auto& [name, elements] : bytes_parts) {
      if (static_cast<int64_t>(elements.size()) != total) {
        return absl::FailedPreconditionError("inputs disagree on the batch size");
      }
      RETURN_IF_ERROR(CheckBytesPadding(elements, name));
      RETURN_IF_ERROR(CallTorch("packing inputs", [&, &name = name, &elements = elements] {
        batched[name] = PackBytes(elements);
      }));
    }
    RETURN_IF_ERROR(collection_->ToDevice(&batched));
    RunTrace batch_trace;
    ASSIGN_OR_RETURN(NamedTensors produced,
                     collection_->Run(stage, batched, wanted, &batch_trace, BatchLimits(items)));
    if (!collection_->device().is_cpu()) {  // one copy back per output, not one per item
      RETURN_IF_ERROR(CallTorch("copying outputs to the host", [&] {
        for (auto& [name, tensor] : produced) tensor = tensor.to(at::kCPU);
      }));
    }
    std::map<std::string, std::vector<at::Tensor>> split;
    for (const auto& [name, tensor] : produced) {
      if (tensor.dim() == 0 || tensor.size(0) != total) {
        return absl::FailedPreconditionError(
            absl::StrCat("output '", name, "' has no batch dimension to split"));
      }
      RETURN_IF_ERROR(CallTorch("splitting outputs", [&, &name = name, &tensor = tensor] {
        split[name] = tensor.split_with_sizes(rows, 0);
      }));
    }
    std::vector<std::vector<HostTensor>> members(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      for (const auto& [name, pieces] : split) {
        bool answers = false;
        for (const std::string& want : wants[i]) answers = answers || Answers(name, want);
        if (!answers) continue;
        ASSIGN_OR_RETURN(HostTensor host,
                         ToHost(name, pieces[i], collection_->graph().IsBytesOutput(name)));
        members[i].push_back(std::move(host));
      }
    }
    if (trace != nullptr) {
      trace->bricks.insert(trace->bricks.end(), batch_trace.bricks.begin(),
                           batch_trace.bricks.end());
      trace->brick_nanoseconds.insert(trace->brick_nanoseconds.end(),
                                      batch_trace.brick_nanoseconds.begin(),
                                      batch_trace.brick_nanoseconds.end());
      trace->fused.insert(trace->fused.end(), batch_trace.fused.begin(), batch_trace.fused.end());
      trace->fused_nanoseconds.insert(trace->fused_nanoseconds.end(),
                                      batch_trace.fused_nanoseconds.begin(),
                                      batch_trace.fused_nanoseconds.end());
    }
    return members;
  }

  // The limits of a batched run: it goes on while any item's deadline is ahead and not
  // every item was cancelled.
  static RunLimits BatchLimits(absl::Span<const BatchItem> items) {
    RunLimits limits{.deadline = absl::InfinitePast()};
    std::vector<std::function<bool()>> probes;
    for (const BatchItem& item : items) {
      limits.deadline = std::max(limits.deadline, item.limits.deadline);
      probes.push_back(item.limits.cancelled);
    }
    for (const auto& probe : probes) {
      if (!probe) return limits;  // an item that cannot be cancelled: never all cancelled
    }
    limits.cancelled = [probes = std::move(probes)] {
      for (const auto& probe : probes) {
        if (!probe()) return false;
      }
      return true;
    };
    return limits;
  }

  std::unique_ptr<LoadedCollection> collection_;
  std::array<std::map<std::string, ValueSpec>, kNumStages> seen_;  // written before sharing
};

}  // namespace

bool CudaBuilt() {
#ifdef TORCHBRICKS_WITH_CUDA
  return at::detail::getCUDAHooks().isBuilt();  // libtorch_cuda registered its hooks
#else
  return false;
#endif
}

int CudaDeviceCount() {
#ifdef TORCHBRICKS_WITH_CUDA
  return CudaBuilt() ? static_cast<int>(torch::cuda::device_count()) : 0;
#else
  return 0;
#endif
}

absl::Status PrepareWorkerThread(int intra_op_threads, const std::string& device) {
  if (intra_op_threads > 0) at::set_num_threads(intra_op_threads);
  if (device.rfind("cuda", 0) != 0) return absl::OkStatus();
#ifdef TORCHBRICKS_WITH_CUDA
  return CallTorch(
      absl::StrCat("device '", device, "'"),
      [&] {
        const c10::Device cuda(device);
        // The thread's current device, and its current stream there: one of libtorch's pool of
        // CUDA streams (exchangeStream alone leaves the current device as it was).
        const c10::impl::VirtualGuardImpl guard(cuda.type());
        guard.setDevice(cuda);
        guard.exchangeStream(guard.getStreamFromGlobalPool(cuda, /*isHighPriority=*/false));
      },
      absl::StatusCode::kInvalidArgument);
#else
  return absl::InvalidArgumentError(
      absl::StrCat("device '", device, "': this build of libtorch has no CUDA"));
#endif
}

namespace {

// Sets the calling thread's intra-op threads for its lifetime (0: leaves them) and then
// restores what the thread had.
class ScopedIntraOpThreads {
 public:
  explicit ScopedIntraOpThreads(int threads) : previous_(at::get_num_threads()) {
    if (threads > 0 && threads != previous_) {
      at::set_num_threads(threads);
      changed_ = true;
    }
  }
  ~ScopedIntraOpThreads() {
    if (changed_) at::set_num_threads(previous_);
  }
  ScopedIntraOpThreads(const ScopedIntraOpThreads&) = delete;
  ScopedIntraOpThreads& operator=(const ScopedIntraOpThreads&) = delete;

 private:
  const int previous_;
  bool changed_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ServableModel>> LoadServableModel(
    const ServableModelOptions& options) {
  if (options.intra_op_threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("intra_op_threads ", options.intra_op_threads, " is negative"));
  }
  const ScopedTorchWarningRoute warnings;
  ASSIGN_OR_RETURN(std::unique_ptr<LoadedCollection> loaded,
                   LoadedCollection::Load({.version_dir = options.version_dir,
                                           .device = options.device,
                                           .parallel_branches = options.parallel_branches,
                                           .max_image_pixels = options.max_image_pixels,
                                           .runners = options.runners}));
  auto model = std::make_unique<TorchServableModel>(std::move(loaded));
  const LoadedCollection* collection = model->collection();
  // The warm-up runs as the instances will: with their intra-op threads.
  const ScopedIntraOpThreads threads(options.warmup_runs > 0 ? options.intra_op_threads : 0);
  for (Stage stage : {Stage::kInference, Stage::kExport}) {
    if (options.warmup_runs <= 0) break;
    ASSIGN_OR_RETURN(std::optional<ReferenceData> reference,
                     ReadReference(options.version_dir, stage));
    if (!reference.has_value()) continue;
    NamedTensors inputs = reference->inputs;
    RETURN_IF_ERROR(collection->ToDevice(&inputs));  // the warm-up runs on the device
    for (int i = 0; i < options.warmup_runs; ++i) {
      auto warm = collection->Run(stage, inputs);
      if (!warm.ok()) {
        return absl::InternalError(absl::StrCat("warm-up in stage ", StageName(stage),
                                                " failed: ", warm.status().message()));
      }
      model->Observe(stage, *warm);
    }
  }
  return std::unique_ptr<ServableModel>(std::move(model));
}

}  // namespace torchbricks
