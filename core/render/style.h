// The look shared by the built-in renderers (core/render/renderers.cc): a palette by class
// id, sizes that follow the canvas, and text labels, white on a dark box, kept inside the
// canvas. Free functions without state, safe from any thread.
#ifndef TORCHBRICKS_CORE_RENDER_STYLE_H_
#define TORCHBRICKS_CORE_RENDER_STYLE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "opencv2/core.hpp"
#include "opencv2/imgproc.hpp"

namespace torchbricks::render {

// Twenty distinct colours (Sasha Trubetskoy's list, its grey swapped for white), RGB.
inline constexpr std::array<std::array<uint8_t, 3>, 20> kDefaultColors = {{
    {230, 25, 75},   {60, 180, 75},   {255, 225, 25},  {0, 130, 200},   {245, 130, 48},
    {145, 30, 180},  {70, 240, 240},  {240, 50, 230},  {210, 245, 60},  {250, 190, 212},
    {0, 128, 128},   {220, 190, 255}, {170, 110, 40},  {255, 250, 200}, {128, 0, 0},
    {170, 255, 195}, {128, 128, 0},   {255, 215, 180}, {0, 0, 128},     {255, 255, 255},
}};
inline const cv::Scalar kDark(24, 24, 24);  // label boxes and outlines
inline const cv::Scalar kWhite(255, 255, 255);
inline constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

// The colour of class (or keypoint) `id`: overrides[id] where given, else a default colour.
cv::Vec3b PaletteColor(int64_t id, const std::vector<cv::Vec3b>& overrides = {});

cv::Scalar ToScalar(cv::Vec3b c);

// Sizes in proportion to the canvas, never below what stays legible.
struct Style {
  double font_scale;
  int text_thickness;
  int padding;         // around label text
  int line_thickness;  // box edges, skeleton lines
  int radius;          // keypoints
};

Style StyleFor(const cv::Mat& image);

// One line of white text on a dark box, after a colour swatch where one is given.
struct Label {
  std::string text;
  std::optional<cv::Scalar> swatch;
};

// The label's box; `text` (optional) receives the size of its text.
cv::Size LabelSize(const Label& label, const Style& style, cv::Size* text = nullptr);

// Draws `label` with its box's top-left corner at `corner`, moved into the canvas where it
// would stick out. Returns the box.
cv::Rect DrawLabel(cv::Mat& image, const Label& label, cv::Point corner, const Style& style);

// Draws `labels` one under another from the top-left corner, a little in from the edges
// and apart from each other, while they fit.
void DrawLabelColumn(cv::Mat& image, const std::vector<Label>& labels);

// "0.93": a score as drawn.
std::string ScoreText(double score);

// names[id], or "class <id>" when the names do not reach it.
std::string ClassName(int64_t id, const std::vector<std::string>& names);

// A canvas coordinate; far-off values are clamped to stay representable (drawings are
// clipped to the canvas anyway).
int ToPixel(double v);

}  // namespace torchbricks::render

#endif  // TORCHBRICKS_CORE_RENDER_STYLE_H_
