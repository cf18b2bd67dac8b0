#include "core/render/style.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace torchbricks::render {

cv::Vec3b PaletteColor(int64_t id, const std::vector<cv::Vec3b>& overrides) {
  if (id >= 0 && id < static_cast<int64_t>(overrides.size())) return overrides[id];
  const auto& c = kDefaultColors[std::max<int64_t>(id, 0) % kDefaultColors.size()];
  return {c[0], c[1], c[2]};
}

cv::Scalar ToScalar(cv::Vec3b c) { return cv::Scalar(c[0], c[1], c[2]); }

Style StyleFor(const cv::Mat& image) {
  const double side = std::min(image.rows, image.cols);
  const double font_scale = std::max(0.4, side / 700.0);
  auto at_least = [](int floor, double size) {
    return std::max(floor, static_cast<int>(std::lround(size)));
  };
  return {font_scale, at_least(1, font_scale * 1.5), at_least(2, font_scale * 4),
          at_least(1, side / 300), at_least(2, side / 120)};
}

cv::Size LabelSize(const Label& label, const Style& style, cv::Size* text) {
  int baseline = 0;
  const cv::Size size =
      cv::getTextSize(label.text, kFont, style.font_scale, style.text_thickness, &baseline);
  if (text != nullptr) *text = size;
  const int swatch = label.swatch ? size.height + style.padding : 0;
  return {size.width + swatch + 2 * style.padding, size.height + baseline + 2 * style.padding};
}

cv::Rect DrawLabel(cv::Mat& image, const Label& label, cv::Point corner, const Style& style) {
  cv::Size text;
  const cv::Size size = LabelSize(label, style, &text);
  corner.x = std::clamp(corner.x, 0, std::max(0, image.cols - size.width));
  corner.y = std::clamp(corner.y, 0, std::max(0, image.rows - size.height));
  cv::rectangle(image, cv::Rect(corner, size), kDark, cv::FILLED);
  int x = corner.x + style.padding;
  if (label.swatch) {
    cv::rectangle(image, cv::Rect(x, corner.y + style.padding, text.height, text.height),
                  *label.swatch, cv::FILLED);
    x += text.height + style.padding;
  }
  cv::putText(image, label.text, {x, corner.y + style.padding + text.height}, kFont,
              style.font_scale, kWhite, style.text_thickness, cv::LINE_AA);
  return cv::Rect(corner, size);
}

void DrawLabelColumn(cv::Mat& image, const std::vector<Label>& labels) {
  const Style style = StyleFor(image);
  const int margin =
      std::max(4, static_cast<int>(std::lround(std::min(image.rows, image.cols) / 60.0)));
  const int gap = std::max(1, style.padding / 2);
  int y = margin;
  for (const Label& label : labels) {
    if (y > margin && y + LabelSize(label, style).height > image.rows) break;
    y = DrawLabel(image, label, {margin, y}, style).br().y + gap;
  }
}

std::string ScoreText(double score) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", score);
  return text;
}

std::string ClassName(int64_t id, const std::vector<std::string>& names) {
  if (id >= 0 && id < static_cast<int64_t>(names.size())) return names[id];
  return absl::StrCat("class ", id);
}

int ToPixel(double v) { return static_cast<int>(std::clamp(std::round(v), -1e6, 1e6)); }

}  // namespace torchbricks::render
