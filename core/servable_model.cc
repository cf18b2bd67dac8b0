// ServableModel over LoadedCollection: converts HostTensor bytes to and from at::Tensor.
#include "core/servable_model.h"

#include <array>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/dtypes.h"
#include "core/loaded_collection.h"
#include "core/reference_check.h"
#include "core/status_macros.h"
#include "core/torch_errors.h"

namespace torchbricks {
namespace {

absl::StatusOr<at::Tensor> ToTensor(const HostTensorView& view) {
  const std::optional<at::ScalarType> type = ToScalarType(view.data_type);
  if (!type.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("input '", view.name, "' has data type ",
                                                   DataTypeName(view.data_type),
                                                   ", which no brick can take"));
  }
  int64_t elements = 1;
  for (int64_t dim : view.shape) {
    if (dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", view.name, "' has a negative dimension"));
    }
    elements *= dim;
  }
  const int64_t expected = elements * ElementSize(view.data_type);
  if (static_cast<int64_t>(view.data.size()) != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", view.name, "' has ", view.data.size(), " bytes but shape [",
        absl::StrJoin(view.shape, ","), "] of ", DataTypeName(view.data_type), " needs ",
        expected));
  }
  // Copy once: the request buffer may be unaligned and modules may write to inputs.
  at::Tensor tensor = at::empty(view.shape, at::TensorOptions().dtype(*type));
  if (expected > 0) std::memcpy(tensor.data_ptr(), view.data.data(), expected);
  return tensor;
}

absl::StatusOr<HostTensor> ToHost(const std::string& name, const at::Tensor& tensor) {
  HostTensor host;
  host.name = name;
  host.data_type = FromScalarType(tensor.scalar_type());
  if (host.data_type == package::TYPE_INVALID) {
    return absl::InternalError(absl::StrCat("output '", name, "' has data type ",
                                            c10::toString(tensor.scalar_type()),
                                            ", which the protocol cannot carry"));
  }
  const at::Tensor contiguous = tensor.to(at::kCPU).contiguous();
  host.shape.assign(contiguous.sizes().begin(), contiguous.sizes().end());
  host.data.assign(static_cast<const char*>(contiguous.data_ptr()),
                   contiguous.numel() * contiguous.element_size());
  return host;
}

class TorchServableModel : public ServableModel {
 public:
  explicit TorchServableModel(std::unique_ptr<LoadedCollection> collection)
      : collection_(std::move(collection)) {}

  // Records the dtype and shape of outputs seen while warming up `stage`.
  void Observe(Stage stage, const NamedTensors& outputs) {
    for (const auto& [name, tensor] : outputs) {
      InputSpec& info = seen_[static_cast<int>(stage)][name];
      info.name = name;
      info.data_type = FromScalarType(tensor.scalar_type());
      info.dims.assign(tensor.sizes().begin(), tensor.sizes().end());
      if (!info.dims.empty()) info.dims[0] = -1;
    }
  }

  std::vector<InputSpec> OutputInfo(Stage stage) const override {
    std::vector<InputSpec> result;
    const auto& seen = seen_[static_cast<int>(stage)];
    for (const std::string& name : collection_->plan(stage).terminal_outputs()) {
      auto it = seen.find(name);
      if (it != seen.end()) {
        result.push_back(it->second);
      } else {
        result.push_back(InputSpec{name, package::TYPE_INVALID, {}});
      }
    }
    return result;
  }

  absl::StatusOr<std::vector<HostTensor>> Run(Stage stage,
                                              absl::Span<const HostTensorView> inputs,
                                              absl::Span<const std::string> outputs,
                                              RunTrace* trace) const override {
    NamedTensors tensors;
    for (const HostTensorView& view : inputs) {
      ASSIGN_OR_RETURN(at::Tensor tensor, ToTensor(view));
      if (!tensors.emplace(view.name, std::move(tensor)).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", view.name, "' is given more than once"));
      }
    }
    ASSIGN_OR_RETURN(NamedTensors produced, collection_->Run(stage, tensors, outputs, trace));
    std::vector<HostTensor> result;
    result.reserve(produced.size());
    absl::Status status;
    status = CallTorch("copying outputs", [&] {
      for (const auto& [name, tensor] : produced) {
        auto host = ToHost(name, tensor);
        if (!host.ok()) {
          status = host.status();
          return;
        }
        result.push_back(*std::move(host));
      }
    });
    RETURN_IF_ERROR(status);
    return result;
  }

  const LoadedCollection* collection() const { return collection_.get(); }
  const BrickGraph& graph() const override { return collection_->graph(); }
  const StagePlan& plan(Stage stage) const override { return collection_->plan(stage); }
  std::string Mermaid(Stage stage) const override { return collection_->Mermaid(stage); }

 private:
  std::unique_ptr<LoadedCollection> collection_;
  std::array<std::map<std::string, InputSpec>, kNumStages> seen_;  // written before sharing
};

}  // namespace

int64_t ElementSize(package::DataType type) {
  const std::optional<at::ScalarType> scalar = ToScalarType(type);
  return scalar.has_value() ? static_cast<int64_t>(c10::elementSize(*scalar)) : 0;
}

absl::StatusOr<std::unique_ptr<ServableModel>> LoadServableModel(
    const ServableModelOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<LoadedCollection> loaded,
                   LoadedCollection::Load({.version_dir = options.version_dir}));
  auto model = std::make_unique<TorchServableModel>(std::move(loaded));
  const LoadedCollection* collection = model->collection();
  for (Stage stage : {Stage::kInference, Stage::kExport}) {
    if (options.warmup_runs <= 0) break;
    ASSIGN_OR_RETURN(std::optional<ReferenceData> reference,
                     ReadReference(options.version_dir, stage));
    if (!reference.has_value()) continue;
    for (int i = 0; i < options.warmup_runs; ++i) {
      auto warm = collection->Run(stage, reference->inputs);
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
