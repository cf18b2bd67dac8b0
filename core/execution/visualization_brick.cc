#include "core/execution/visualization_brick.h"

#include <algorithm>

#include "ATen/Parallel.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "c10/core/InferenceMode.h"
#include "core/execution/image_io.h"
#include "core/libtorch/torch_errors.h"
#include "opencv2/imgproc.hpp"

namespace torchbricks {
namespace {

std::string Shape(const at::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.sizes(), ","), "]");
}

// The same status with `context` in front of its message.
absl::Status Prefixed(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<VisualizationBrick>> VisualizationBrick::Create(
    const BrickSpec& brick, const std::filesystem::path& version_dir) {
  render::Parameters parameters(brick.renderer_parameters.begin(), brick.renderer_parameters.end());
  int min_side = kDefaultMinSide;
  auto it = parameters.find("min_side");
  if (it != parameters.end() && brick.renderer != kTorchScriptRenderer) {
    if (!absl::SimpleAtoi(it->second, &min_side) || min_side < 0 || min_side > 8192) {
      return absl::InvalidArgumentError(
          absl::StrCat("visualization brick '", brick.name,
                       "': min_side must be an integer in 0..8192, got '", it->second, "'"));
    }
    parameters.erase(it);
  }
  std::unique_ptr<VisualizationBrick> result(new VisualizationBrick(brick, min_side));
  if (brick.renderer == kTorchScriptRenderer) {
    if (!parameters.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "visualization brick '", brick.name, "': the torchscript renderer takes no parameter '",
          parameters.begin()->first, "'"));
    }
    // The renderer gets its values on the CPU, so its module lives there too.
    ASSIGN_OR_RETURN(result->module_,
                     BrickModule::Load(brick, version_dir, c10::Device(c10::kCPU)));
    return result;
  }
  auto renderer = render::MakeRenderer(brick.renderer, parameters,
                                       static_cast<int>(brick.input_names.size()) - 1);
  if (!renderer.ok()) {
    return Prefixed(renderer.status(), absl::StrCat("visualization brick '", brick.name, "'"));
  }
  result->renderer_ = *std::move(renderer);
  return result;
}

absl::StatusOr<std::vector<c10::IValue>> VisualizationBrick::Run(
    std::vector<c10::IValue> inputs) const {
  const std::string context = absl::StrCat("visualization brick '", name_, "'");
  if (inputs.empty() || !inputs[0].isTensor() || inputs[0].toTensor().dim() != 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, ": input '", input_names_.empty() ? "" : input_names_[0],
        "' must be an image batch [B, C, H, W], got ",
        inputs.empty() || !inputs[0].isTensor() ? "no tensor" : Shape(inputs[0].toTensor())));
  }
  const int64_t batch = inputs[0].toTensor().size(0);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].isTensor()) continue;
    const at::Tensor& tensor = inputs[i].toTensor();
    if (tensor.dim() > 0 && tensor.size(0) != batch) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": input '", input_names_[i], "' has ", tensor.size(0),
                       " rows but the image batch '", input_names_[0], "' has ", batch));
    }
    RETURN_IF_ERROR(CallTorch(context, [&] { inputs[i] = tensor.to(at::kCPU); }));
  }
  std::vector<absl::StatusOr<std::string>> pngs(batch, absl::UnknownError("not rendered"));
  auto render_range = [&](int64_t begin, int64_t end) {
    c10::InferenceMode inference_mode;
    for (int64_t i = begin; i < end; ++i) pngs[i] = RenderOne(inputs, i);
  };
  if (module_ != nullptr) {
    render_range(0, batch);  // the module may use intra-op threads itself
  } else {
    at::parallel_for(0, batch, 1, render_range);
  }
  std::vector<std::string> elements;
  elements.reserve(batch);
  for (auto& png : pngs) {
    if (!png.ok()) return png.status();
    elements.push_back(*std::move(png));
  }
  std::vector<c10::IValue> outputs;
  RETURN_IF_ERROR(CallTorch(context, [&] { outputs.emplace_back(PackBytes(elements)); }));
  return outputs;
}

absl::StatusOr<std::string> VisualizationBrick::RenderOne(const std::vector<c10::IValue>& inputs,
                                                          int64_t index) const {
  const std::string context = absl::StrCat("visualization brick '", name_, "' image ", index);
  // This image's share of every value after the image.
  std::vector<c10::IValue> values;
  RETURN_IF_ERROR(CallTorch(context, [&] {
    for (size_t i = 1; i < inputs.size(); ++i) {
      const bool batched = inputs[i].isTensor() && inputs[i].toTensor().dim() > 0;
      values.push_back(batched ? c10::IValue(inputs[i].toTensor()[index].contiguous()) : inputs[i]);
    }
  }));
  const at::Tensor& images = inputs[0].toTensor();
  cv::Mat drawing;
  if (module_ != nullptr) {
    std::vector<c10::IValue> args;
    RETURN_IF_ERROR(CallTorch(context, [&] {
      args.emplace_back(images[index].permute({1, 2, 0}));
    }));
    args.insert(args.end(), values.begin(), values.end());
    ASSIGN_OR_RETURN(std::vector<c10::IValue> produced, module_->Run(std::move(args)));
    const bool fits = produced.size() == 1 && produced[0].isTensor() &&
                      produced[0].toTensor().scalar_type() == at::kByte &&
                      produced[0].toTensor().dim() == 3 && produced[0].toTensor().size(2) == 3;
    if (!fits) {
      return absl::InternalError(
          absl::StrCat(context, ": the renderer module returned ",
                       produced.size() == 1 && produced[0].isTensor()
                           ? absl::StrCat(c10::toString(produced[0].toTensor().scalar_type()), " ",
                                          Shape(produced[0].toTensor()))
                           : std::string(produced.empty() ? "nothing" : produced[0].tagKind()),
                       "; it must return uint8 [H, W, 3]"));
    }
    absl::StatusOr<cv::Mat> rgb(absl::UnknownError(""));
    RETURN_IF_ERROR(CallTorch(context, [&] { rgb = ToRgbImage(produced[0].toTensor(), true); }));
    if (!rgb.ok()) return Prefixed(rgb.status(), context);
    drawing = *std::move(rgb);
  } else {
    std::vector<at::Tensor> tensors;
    for (size_t i = 0; i < values.size(); ++i) {
      if (!values[i].isTensor()) {
        return absl::InvalidArgumentError(absl::StrCat(context, ": input '", input_names_[i + 1],
                                                       "' is a ", values[i].tagKind(),
                                                       "; built-in renderers take tensors"));
      }
      tensors.push_back(values[i].toTensor());
    }
    absl::StatusOr<cv::Mat> rgb(absl::UnknownError(""));
    RETURN_IF_ERROR(CallTorch(context, [&] { rgb = ToRgbImage(images[index], false); }));
    if (!rgb.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": input '", input_names_[0], "': ", rgb.status().message()));
    }
    render::Canvas canvas{*std::move(rgb), 1.0};
    const int shorter = std::min(canvas.image.rows, canvas.image.cols);
    const int longer = std::max(canvas.image.rows, canvas.image.cols);
    if (min_side_ > 0 && shorter > 0 && shorter < min_side_ && longer < kMaxCanvasSide) {
      // Enlarged so the shorter side reaches min_side, but never past kMaxCanvasSide.
      canvas.scale = std::min(static_cast<double>(min_side_) / shorter,
                              static_cast<double>(kMaxCanvasSide) / longer);
      cv::Mat enlarged;
      RETURN_IF_ERROR(CallTorch(context, [&] {
        cv::resize(canvas.image, enlarged,
                   cv::Size(static_cast<int>(std::lround(canvas.image.cols * canvas.scale)),
                            static_cast<int>(std::lround(canvas.image.rows * canvas.scale))),
                   0, 0, cv::INTER_CUBIC);
      }));
      canvas.image = enlarged;
    }
    absl::Status drawn = renderer_->Draw(tensors, &canvas);
    if (!drawn.ok()) return Prefixed(drawn, context);
    drawing = canvas.image;
  }
  absl::StatusOr<std::string> png = EncodePng(drawing);
  if (!png.ok()) return Prefixed(png.status(), context);
  return png;
}

}  // namespace torchbricks
