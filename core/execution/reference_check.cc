#include "core/execution/reference_check.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "core/libtorch/torch_errors.h"
#include "torch/script.h"

namespace torchbricks {
namespace {

absl::StatusOr<NamedTensors> ReadTensorDict(torch::jit::Module& module, const char* attr,
                                            const std::string& file) {
  NamedTensors result;
  RETURN_IF_ERROR(CallTorch(
      absl::StrCat("reference file '", file, "' attribute '", attr, "'"),
      [&] {
        for (const auto& entry : module.attr(attr).toGenericDict()) {
          result[entry.key().toStringRef()] = entry.value().toTensor();
        }
      },
      absl::StatusCode::kInvalidArgument));
  return result;
}

OutputComparison Compare(const std::string& name, const at::Tensor& reference,
                         const NamedTensors& produced, const Tolerance& tolerance) {
  OutputComparison comparison;
  comparison.name = name;
  comparison.shape.assign(reference.sizes().begin(), reference.sizes().end());
  auto it = produced.find(name);
  if (it == produced.end()) {
    comparison.problem = "not produced by C++";
    return comparison;
  }
  const at::Tensor& got = it->second;
  if (got.sizes() != reference.sizes()) {
    comparison.problem =
        absl::StrCat("shape [", absl::StrJoin(got.sizes(), ","), "] differs from reference [",
                     absl::StrJoin(reference.sizes(), ","), "]");
    return comparison;
  }
  if (got.scalar_type() != reference.scalar_type()) {
    comparison.problem =
        absl::StrCat("dtype ", c10::toString(got.scalar_type()), " differs from reference ",
                     c10::toString(reference.scalar_type()));
    return comparison;
  }
  const at::Tensor a = got.to(at::kDouble);
  const at::Tensor b = reference.to(at::kDouble);
  comparison.max_abs_diff = a.numel() == 0 ? 0.0 : (a - b).abs().max().item<double>();
  comparison.matches = at::allclose(a, b, tolerance.rtol, tolerance.atol, /*equal_nan=*/true);
  if (!comparison.matches) comparison.problem = "values differ beyond tolerance";
  return comparison;
}

}  // namespace

bool StageComparison::matches() const {
  if (!run_status.ok()) return false;
  for (const OutputComparison& output : outputs) {
    if (!output.matches) return false;
  }
  return true;
}

absl::StatusOr<std::optional<ReferenceData>> ReadReference(const std::filesystem::path& version_dir,
                                                           Stage stage) {
  const std::filesystem::path path =
      version_dir / "reference" / absl::StrCat(StageName(stage), ".pt");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  const std::string file = path.lexically_relative(version_dir).string();
  torch::jit::Module module;
  RETURN_IF_ERROR(CallTorch(
      absl::StrCat("cannot load reference file '", file, "'"),
      [&] { module = torch::jit::load(path.string()); }, absl::StatusCode::kInvalidArgument));
  ReferenceData data;
  ASSIGN_OR_RETURN(data.inputs, ReadTensorDict(module, "inputs", file));
  ASSIGN_OR_RETURN(data.outputs, ReadTensorDict(module, "outputs", file));
  return std::optional<ReferenceData>(std::move(data));
}

absl::StatusOr<std::vector<StageComparison>> CompareWithReference(
    const LoadedCollection& collection, const std::filesystem::path& version_dir,
    const Tolerance& tolerance) {
  std::vector<StageComparison> result;
  for (Stage stage : kAllStages) {
    ASSIGN_OR_RETURN(std::optional<ReferenceData> reference, ReadReference(version_dir, stage));
    if (!reference.has_value()) continue;
    StageComparison comparison;
    comparison.stage = stage;
    // Ask for every reference output; a flattened dict entry "<name>/<key>" comes from
    // asking for "<name>".
    const StagePlan& plan = collection.plan(stage);
    std::vector<std::string> requested;
    for (const auto& [name, tensor] : reference->outputs) {
      std::string wanted = name;
      if (plan.FindSlot(wanted) < 0 && wanted.find('/') != std::string::npos) {
        wanted = wanted.substr(0, wanted.rfind('/'));
      }
      if (requested.empty() || requested.back() != wanted) requested.push_back(wanted);
    }
    auto produced = collection.Run(stage, reference->inputs, requested);
    comparison.run_status = produced.status();
    if (produced.ok()) {
      for (const auto& [name, tensor] : reference->outputs) {
        comparison.outputs.push_back(Compare(name, tensor, *produced, tolerance));
      }
    }
    result.push_back(std::move(comparison));
  }
  return result;
}

}  // namespace torchbricks
