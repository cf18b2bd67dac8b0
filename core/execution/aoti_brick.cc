#include "core/execution/aoti_brick.h"

#include <system_error>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "core/execution/cpu_isa.h"
#include "core/execution/scalar_types.h"
#include "core/libtorch/torch_errors.h"
#include "torch/csrc/inductor/aoti_package/model_package_loader.h"

namespace torchbricks {
namespace {

// The model's name inside a package: what aoti_compile_and_package writes by default.
constexpr char kModelName[] = "model";
// The package metadata entry that names the device type its code runs on ("cpu", "cuda").
constexpr char kDeviceKey[] = "AOTI_DEVICE_KEY";

}  // namespace

AotiBrick::AotiBrick(const BrickSpec& brick, const c10::Device& device, std::string label)
    : brick_(brick), device_(device), label_(std::move(label)) {}

AotiBrick::~AotiBrick() = default;

absl::StatusOr<std::unique_ptr<AotiBrick>> AotiBrick::Load(const BrickSpec& brick,
                                                           const std::filesystem::path& version_dir,
                                                           const c10::Device& device, int runners) {
  return LoadLabelled(brick, absl::StrCat("brick '", brick.name, "'"), version_dir, device,
                      runners);
}

absl::StatusOr<std::unique_ptr<AotiBrick>> AotiBrick::LoadFused(
    const FusedSpec& fused, const std::filesystem::path& version_dir, const c10::Device& device,
    int runners) {
  return LoadLabelled(fused.program, absl::StrCat("fused program '", fused.program.name, "'"),
                      version_dir, device, runners);
}

absl::StatusOr<std::unique_ptr<AotiBrick>> AotiBrick::LoadLabelled(
    const BrickSpec& brick, const std::string& label, const std::filesystem::path& version_dir,
    const c10::Device& device, int runners) {
  if (!brick.compiled.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(label, " is not an AOT_INDUCTOR brick"));
  }
  if (runners < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": runners must be at least 1, got ", runners));
  }
  const CompiledSpec& compiled = *brick.compiled;
  const std::string& file = brick.module_file;
  const std::filesystem::path path = version_dir / file;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(label, ": AOTInductor package '", file, "' not found"));
  }
  const std::string where = absl::StrCat(label, " (AOTInductor package '", file, "')");
  const std::string device_type = c10::DeviceTypeName(device.type(), /*lower_case=*/true);
  if (compiled.device != device_type) {
    return absl::FailedPreconditionError(absl::StrCat(where, " was compiled for ", compiled.device,
                                                      " and cannot run on ", device.str()));
  }
  if (device.is_cpu()) {
    const std::vector<std::string> missing = MissingCpuIsa(compiled.cpu_isa);
    if (!missing.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          where, " was compiled for CPUs with ", compiled.cpu_isa, " and this CPU lacks ",
          absl::StrJoin(missing, ", "), "; compile it on a machine with this CPU's instructions"));
    }
  }
  // The package's own word on its device, read before a runner for it is made.
  std::unordered_map<std::string, std::string> metadata;
  RETURN_IF_ERROR(CallTorch(
      absl::StrCat(where, " cannot be opened"),
      [&] {
        metadata = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(
            path.string(), kModelName);
      },
      absl::StatusCode::kFailedPrecondition));
  if (auto it = metadata.find(kDeviceKey); it != metadata.end() && it->second != device_type) {
    return absl::FailedPreconditionError(absl::StrCat(where, " holds code for ", it->second,
                                                      " (its manifest says ", compiled.device,
                                                      ") and cannot run on ", device.str()));
  }
  std::unique_ptr<AotiBrick> loaded(new AotiBrick(brick, device, label));
  RETURN_IF_ERROR(CallTorch(
      absl::StrCat(where, " cannot be loaded"),
      [&] {
        loaded->loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
            path.string(), kModelName, /*run_single_threaded=*/false, static_cast<size_t>(runners),
            device.is_cpu() ? c10::DeviceIndex{-1} : device.index());
      },
      absl::StatusCode::kFailedPrecondition));
  return loaded;
}

absl::StatusOr<std::vector<at::Tensor>> AotiBrick::CheckedInputs(
    std::vector<c10::IValue> inputs) const {
  const CompiledSpec& compiled = *brick_.compiled;
  if (inputs.size() != compiled.inputs.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(label_, " takes ", compiled.inputs.size(), " inputs, got ", inputs.size()));
  }
  std::vector<at::Tensor> tensors;
  tensors.reserve(inputs.size());
  int64_t batch = -1;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ValueSpec& spec = compiled.inputs[i];
    const std::string culprit = absl::StrCat(label_, ": input '", spec.name, "'");
    if (!inputs[i].isTensor() || !inputs[i].toTensor().defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat(culprit, " is ", inputs[i].tagKind(), ", not a tensor with data"));
    }
    at::Tensor tensor = std::move(inputs[i]).toTensor();
    if (tensor.device() != device_) {
      return absl::InvalidArgumentError(absl::StrCat(culprit, " is on ", tensor.device().str(),
                                                     "; the compiled program runs on ",
                                                     device_.str()));
    }
    // The program's input specs are [-1, fixed...] with a real data type (BrickGraph checks
    // it), so this is the exact dtype and every size but the batch's.
    if (absl::Status fits = CheckTensorAgainstSpec(spec, tensor); !fits.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(label_, " (compiled program): ", fits.message()));
    }
    const int64_t rows = tensor.size(0);
    if (batch < 0) {
      RETURN_IF_ERROR(CheckCompiledBatch(brick_, spec.name, rows));
      batch = rows;
    } else if (rows != batch) {
      return absl::InvalidArgumentError(absl::StrCat(culprit, " has ", rows, " rows but input '",
                                                     compiled.inputs[0].name, "' has ", batch));
    }
    RETURN_IF_ERROR(CallTorch(absl::StrCat(culprit, " made contiguous"),
                              [&] { tensors.push_back(tensor.contiguous()); }));
  }
  return tensors;
}

absl::StatusOr<std::vector<c10::IValue>> AotiBrick::Run(std::vector<c10::IValue> inputs) const {
  ASSIGN_OR_RETURN(std::vector<at::Tensor> tensors, CheckedInputs(std::move(inputs)));
  std::vector<at::Tensor> produced;
  RETURN_IF_ERROR(CallTorch(absl::StrCat(label_, " (compiled program)"),
                            [&] { produced = loader_->run(tensors); }));
  if (produced.size() != brick_.output_names.size()) {
    return absl::InternalError(absl::StrCat(label_, ": the compiled program returned ",
                                            produced.size(), " tensors for ",
                                            brick_.output_names.size(), " output names"));
  }
  return std::vector<c10::IValue>(std::make_move_iterator(produced.begin()),
                                  std::make_move_iterator(produced.end()));
}

}  // namespace torchbricks
