// VisualizationBrick: a VISUALIZATION brick that draws per image, as torchbricks'
// BrickPerImageVisualization does. It unpacks its batched inputs image by image, draws
// each image with a built-in renderer (core/render/renderers.h) or with the brick's
// TorchScript module, encodes the drawings as PNG and returns them as one BYTES output
// of B elements (a rows tensor, see core/execution/image_io.h).
//
// Unpacking, for image i of a batch of B (B is the size of the first input, the image):
// - the first input, [B, C, H, W] (C 1 or 3, uint8 or float in 0..1), becomes image i;
// - any other tensor with a dimension gives its row i (all must have B rows);
// - a 0-dim tensor or a non-tensor value (the stage name) is passed whole.
// A TorchScript renderer receives image i channels last ([H, W, C], dtype kept) followed
// by the other values, and returns uint8 [H, W, 3].
#ifndef TORCHBRICKS_CORE_EXECUTION_VISUALIZATION_BRICK_H_
#define TORCHBRICKS_CORE_EXECUTION_VISUALIZATION_BRICK_H_

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/execution/brick_module.h"
#include "core/graph/brick_graph.h"
#include "core/render/renderers.h"

namespace torchbricks {

// Images whose shorter side is below this are enlarged before drawing, unless the
// brick's "min_side" parameter says otherwise.
inline constexpr int kDefaultMinSide = 256;
// ... but never so far that the longer side passes this.
inline constexpr int kMaxCanvasSide = 4096;

class VisualizationBrick : public BrickCallable {
 public:
  // Makes the brick `brick` (brick.renders() must be true). Errors name the brick:
  // InvalidArgument for an unknown renderer or bad parameters ("min_side" is a built-in
  // renderer's only), and the errors of BrickModule::Load for a TorchScript renderer.
  static absl::StatusOr<std::unique_ptr<VisualizationBrick>> Create(
      const BrickSpec& brick, const std::filesystem::path& version_dir);

  // Returns the PNGs as one rows tensor [B, 4 + L] on the CPU. InvalidArgument naming the
  // brick for inputs it cannot draw: batch sizes that disagree, an image that is not a
  // non-empty [B, C, H, W], a value a renderer cannot draw (which value, and what it
  // expected). Internal for a failure inside drawing or encoding, or a TorchScript renderer
  // that fails or returns something other than uint8 [H, W, 3]. The values reach the
  // renderer on the CPU; a TorchScript renderer's module is loaded there.
  absl::StatusOr<std::vector<c10::IValue>> Run(std::vector<c10::IValue> inputs) const override;

 private:
  VisualizationBrick(const BrickSpec& brick, int min_side)
      : name_(brick.name), input_names_(brick.input_names), min_side_(min_side) {}

  // Draws image `index` of `inputs` (already on the CPU) and returns its PNG.
  absl::StatusOr<std::string> RenderOne(const std::vector<c10::IValue>& inputs,
                                        int64_t index) const;

  std::string name_;
  std::vector<std::string> input_names_;
  int min_side_;
  std::unique_ptr<render::Renderer> renderer_;  // a built-in renderer, or
  std::unique_ptr<BrickModule> module_;         // a TorchScript one
};

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_EXECUTION_VISUALIZATION_BRICK_H_
