// Built-in renderers for VISUALIZATION bricks: each draws one image's predictions onto
// that image. A visualization brick (core/execution/visualization_brick.h) unpacks a batch per
// image, turns the image into an RGB canvas, asks its renderer to draw the image's other
// values on it, and encodes the canvas as PNG.
//
// Renderers are chosen by name and parameterised in bricks.pbtxt:
//
//   visualizer { renderer: "detection"
//                parameters { key: "class_names" value: "cat,dog" }
//                parameters { key: "score_threshold" value: "0.3" } }
//
// The names, the values each renderer takes and its parameters are listed in
// docs/RENDERERS.md. Renderers are immutable after creation, so one renderer may draw
// on many canvases from many threads at once.
#ifndef TORCHBRICKS_CORE_RENDER_RENDERERS_H_
#define TORCHBRICKS_CORE_RENDER_RENDERERS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "opencv2/core.hpp"
#include "torch/types.h"

namespace torchbricks::render {

// A renderer's parameters as written in the manifest: every value is a string.
using Parameters = std::map<std::string, std::string>;

// What a renderer draws on.
struct Canvas {
  // CV_8UC3, RGB channel order (not OpenCV's BGR), row-major.
  cv::Mat image;
  // Canvas pixels per pixel of the image the model saw. Above 1 when a small image was
  // enlarged so that text stays readable; coordinates in model pixels (boxes, keypoints)
  // are multiplied by it.
  double scale = 1.0;
};

class Renderer {
 public:
  virtual ~Renderer() = default;

  // Draws one image's `values` (the brick's inputs after the image, in manifest order;
  // for this image only: the image's row of a batched input, or the whole of an input
  // that has no batch dimension) on `canvas`. Tensors are on the CPU, contiguous, of any
  // numeric dtype. Returns InvalidArgument, saying which value and what was expected,
  // when a value has a shape or dtype the renderer cannot draw.
  virtual absl::Status Draw(absl::Span<const at::Tensor> values, Canvas* canvas) const = 0;
};

// Makes the built-in renderer `name` ("classification", "segmentation", "detection",
// "keypoints", "heatmap") for a brick whose inputs after the image number
// `num_values`. InvalidArgument for an unknown name, an unknown parameter, a parameter
// value that does not parse, or a number of values the renderer does not take; the
// message lists what is allowed.
absl::StatusOr<std::unique_ptr<Renderer>> MakeRenderer(absl::string_view name,
                                                       const Parameters& parameters,
                                                       int num_values);

// The names MakeRenderer() knows, sorted.
std::vector<std::string> RendererNames();

}  // namespace torchbricks::render

#endif  // TORCHBRICKS_CORE_RENDER_RENDERERS_H_
