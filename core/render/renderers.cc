#include "core/render/renderers.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/libtorch/torch_errors.h"
#include "core/render/parameter_reader.h"
#include "core/render/style.h"
#include "opencv2/imgproc.hpp"

namespace torchbricks::render {
namespace {

// ---- Values -----------------------------------------------------------------------------

bool IsRealNumber(const at::Tensor& t) {
  return t.defined() && (at::isFloatingType(t.scalar_type()) ||
                         at::isIntegralType(t.scalar_type(), /*includeBool=*/true));
}

std::string Describe(const at::Tensor& t) {
  if (!t.defined()) return "an undefined tensor";
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ","), "] ", c10::toString(t.scalar_type()));
}

absl::Status BadValue(size_t index, absl::string_view name, absl::string_view expected,
                      const at::Tensor& got) {
  return absl::InvalidArgumentError(
      absl::StrCat("value ", index, " (", name, ") must be ", expected, ", got ", Describe(got)));
}

at::Tensor AsFloat(const at::Tensor& t) { return t.to(at::kCPU, at::kFloat).contiguous(); }

// Integers as they are; floating-point values rounded.
at::Tensor AsLong(const at::Tensor& t) {
  return (t.is_floating_point() ? t.round() : t).to(at::kCPU, at::kLong).contiguous();
}

// ---- Renderers --------------------------------------------------------------------------
//
// Each renderer is a Draw function over its options, which hold the parameters' defaults.
// Draw functions may throw; BuiltinRenderer turns exceptions into statuses.

using DrawFunction = std::function<absl::Status(absl::Span<const at::Tensor>, Canvas*)>;

struct ClassificationOptions {
  std::vector<std::string> class_names;  // by class id; "class 3" beyond them
  int top_k = 1;                         // labels drawn from [K] scores
};

absl::Status DrawClassification(const ClassificationOptions& options,
                                absl::Span<const at::Tensor> values, Canvas* canvas) {
  const at::Tensor& head = values[0];
  const bool is_index =
      IsRealNumber(head) && !head.is_floating_point() && head.dim() <= 1 && head.numel() == 1;
  const bool is_scores =
      IsRealNumber(head) && head.is_floating_point() && head.dim() == 1 && head.numel() > 0;
  if (!is_index && !is_scores) {
    return BadValue(0, "scores or class",
                    "[K] floating-point class scores or an integer class index (0-dim or [1])",
                    head);
  }
  std::vector<Label> labels;
  if (is_scores) {
    if (values.size() > 1) {
      return absl::InvalidArgumentError(
          "value 1 (score) goes with a class index in value 0, but value 0 holds class scores");
    }
    const auto [scores, ids] = AsFloat(head).topk(std::min<int64_t>(options.top_k, head.numel()));
    for (int64_t i = 0; i < scores.numel(); ++i) {
      labels.push_back({absl::StrCat(ClassName(ids[i].item<int64_t>(), options.class_names), " ",
                                     ScoreText(scores[i].item<float>()))});
    }
  } else {
    std::string text = ClassName(AsLong(head).item<int64_t>(), options.class_names);
    if (values.size() > 1) {
      const at::Tensor& score = values[1];
      if (!IsRealNumber(score) || score.dim() > 1 || score.numel() != 1) {
        return BadValue(1, "score", "one number (0-dim or [1])", score);
      }
      absl::StrAppend(&text, " ", ScoreText(AsFloat(score).item<float>()));
    }
    labels.push_back({std::move(text)});
  }
  DrawLabelColumn(canvas->image, labels);
  return absl::OkStatus();
}

struct SegmentationOptions {
  double alpha = 0.5;                    // weight of the class colour
  int background = 0;                    // class left undrawn; -1 draws every class
  std::vector<cv::Vec3b> palette;        // colours by class id, before the default ones
  std::vector<std::string> class_names;  // when given, a legend of the classes drawn
};

absl::Status DrawSegmentation(const SegmentationOptions& options,
                              absl::Span<const at::Tensor> values, Canvas* canvas) {
  const at::Tensor& mask = values[0];
  if (!IsRealNumber(mask) || (mask.dim() != 2 && mask.dim() != 3) || mask.numel() == 0) {
    return BadValue(0, "mask", "[h,w] class ids or [K,h,w] class scores, not empty", mask);
  }
  // [1,h,w] holds ids: one class's scores would always pick class 0.
  at::Tensor ids = mask.dim() == 3 && mask.size(0) > 1
                       ? AsFloat(mask).argmax(0)
                       : AsLong(mask.reshape({mask.size(-2), mask.size(-1)}));
  ids = ids.clamp(-1, std::numeric_limits<int32_t>::max()).to(at::kInt).contiguous();
  const cv::Mat small(static_cast<int>(ids.size(0)), static_cast<int>(ids.size(1)), CV_32S,
                      ids.data_ptr<int32_t>());
  cv::Mat& image = canvas->image;
  cv::Mat resized;
  cv::resize(small, resized, image.size(), 0, 0, cv::INTER_NEAREST);

  cv::Mat colors = cv::Mat::zeros(image.size(), CV_8UC3);
  cv::Mat drawn = cv::Mat::zeros(image.size(), CV_8U);
  std::set<int> present;
  for (int r = 0; r < resized.rows; ++r) {
    const int32_t* row = resized.ptr<int32_t>(r);
    for (int c = 0; c < resized.cols; ++c) {
      if (row[c] < 0 || row[c] == options.background) continue;
      colors.at<cv::Vec3b>(r, c) = PaletteColor(row[c], options.palette);
      drawn.at<uint8_t>(r, c) = 255;
      present.insert(row[c]);
    }
  }
  cv::Mat blended;
  cv::addWeighted(image, 1 - options.alpha, colors, options.alpha, 0, blended);
  blended.copyTo(image, drawn);

  if (!options.class_names.empty()) {
    std::vector<Label> legend;
    for (int id : present) {
      legend.push_back(
          {ClassName(id, options.class_names), ToScalar(PaletteColor(id, options.palette))});
    }
    DrawLabelColumn(image, legend);
  }
  return absl::OkStatus();
}

struct DetectionOptions {
  std::vector<std::string> class_names;  // by label; "class 3" beyond them
  double score_threshold = 0.5;          // boxes scoring less are skipped
  bool normalized = false;               // coordinates in 0..1 of the image's width/height
};

absl::Status DrawDetection(const DetectionOptions& options, absl::Span<const at::Tensor> values,
                           Canvas* canvas) {
  if (!IsRealNumber(values[0]) || values[0].dim() != 2 || values[0].size(1) != 4) {
    return BadValue(0, "boxes", "[N,4] boxes x1,y1,x2,y2", values[0]);
  }
  const int64_t n = values[0].size(0);
  constexpr const char* kNames[] = {"boxes", "scores", "labels"};
  for (size_t i = 1; i < values.size(); ++i) {
    if (!IsRealNumber(values[i]) || values[i].dim() != 1 || values[i].size(0) != n) {
      return BadValue(i, kNames[i], absl::StrCat("[", n, "] numbers, one per box"), values[i]);
    }
  }
  const at::Tensor boxes = AsFloat(values[0]);
  const at::Tensor scores = values.size() > 1 ? AsFloat(values[1]) : at::Tensor();
  const at::Tensor labels = values.size() > 2 ? AsLong(values[2]) : at::Tensor();

  cv::Mat& image = canvas->image;
  const Style style = StyleFor(image);
  const double sx = options.normalized ? image.cols : canvas->scale;
  const double sy = options.normalized ? image.rows : canvas->scale;
  std::vector<std::pair<cv::Point, Label>> texts;  // drawn over all the boxes
  for (int64_t i = 0; i < n; ++i) {
    const float* box = boxes.data_ptr<float>() + 4 * i;
    const float score = scores.defined() ? scores.data_ptr<float>()[i] : 1.0f;
    const int64_t label = labels.defined() ? labels.data_ptr<int64_t>()[i] : 0;
    if ((scores.defined() && !(score >= options.score_threshold)) || label < 0 ||
        !std::all_of(box, box + 4, [](float v) { return std::isfinite(v); })) {
      continue;
    }
    const cv::Point p1(ToPixel(box[0] * sx), ToPixel(box[1] * sy));
    const cv::Point p2(ToPixel(box[2] * sx), ToPixel(box[3] * sy));
    const cv::Scalar color = ToScalar(PaletteColor(label));
    cv::rectangle(image, p1, p2, color, style.line_thickness, cv::LINE_AA);

    std::vector<std::string> parts;
    if (labels.defined()) parts.push_back(ClassName(label, options.class_names));
    if (scores.defined()) parts.push_back(ScoreText(score));
    if (parts.empty()) continue;
    Label text{absl::StrJoin(parts, " "), color};
    // Above the box; inside its top edge where the canvas ends above it.
    const int top = std::min(p1.y, p2.y);
    cv::Point corner(std::min(p1.x, p2.x), top - LabelSize(text, style).height);
    if (corner.y < 0) corner.y = top;
    texts.emplace_back(corner, std::move(text));
  }
  for (const auto& [corner, text] : texts) DrawLabel(image, text, corner, style);
  return absl::OkStatus();
}

struct KeypointsOptions {
  double score_threshold = 0.5;               // [..,3] keypoints scoring less are hidden
  std::vector<std::pair<int, int>> skeleton;  // keypoint index pairs joined by lines
  bool normalized = false;                    // coordinates in 0..1 of the image's width/height
};

absl::Status DrawKeypoints(const KeypointsOptions& options, absl::Span<const at::Tensor> values,
                           Canvas* canvas) {
  const at::Tensor& value = values[0];
  if (!IsRealNumber(value) || (value.dim() != 2 && value.dim() != 3) ||
      (value.size(-1) != 2 && value.size(-1) != 3)) {
    return BadValue(0, "keypoints", "[N,2] (x,y), [N,3] (x,y,score) or [P,N,2|3]", value);
  }
  const int64_t n = value.size(-2);
  const int64_t width = value.size(-1);
  for (const auto& [a, b] : options.skeleton) {
    if (std::max(a, b) >= n) {
      return absl::InvalidArgumentError(absl::StrCat("parameter 'skeleton' joins keypoints ", a,
                                                     "-", b, " but value 0 (keypoints) has ", n,
                                                     " keypoints per instance: ", Describe(value)));
    }
  }
  if (value.numel() == 0) return absl::OkStatus();
  const at::Tensor points = AsFloat(value).reshape({-1, n, width});
  cv::Mat& image = canvas->image;
  const Style style = StyleFor(image);
  const double sx = options.normalized ? image.cols : canvas->scale;
  const double sy = options.normalized ? image.rows : canvas->scale;
  const int outline = std::max(1, style.radius / 3);
  for (int64_t p = 0; p < points.size(0); ++p) {
    std::vector<std::optional<cv::Point>> visible(n);
    for (int64_t k = 0; k < n; ++k) {
      const float* point = points.data_ptr<float>() + (p * n + k) * width;
      if (width == 3 && !(point[2] >= options.score_threshold)) continue;
      if (!std::isfinite(point[0]) || !std::isfinite(point[1])) continue;
      visible[k] = cv::Point(ToPixel(point[0] * sx), ToPixel(point[1] * sy));
    }
    for (const auto& [a, b] : options.skeleton) {
      if (!visible[a] || !visible[b]) continue;
      cv::line(image, *visible[a], *visible[b], kDark, style.line_thickness + 2, cv::LINE_AA);
      cv::line(image, *visible[a], *visible[b], ToScalar(PaletteColor(a)), style.line_thickness,
               cv::LINE_AA);
    }
    for (int64_t k = 0; k < n; ++k) {
      if (!visible[k]) continue;
      cv::circle(image, *visible[k], style.radius + outline, kDark, cv::FILLED, cv::LINE_AA);
      cv::circle(image, *visible[k], style.radius, ToScalar(PaletteColor(k)), cv::FILLED,
                 cv::LINE_AA);
    }
  }
  return absl::OkStatus();
}

struct HeatmapOptions {
  double alpha = 0.5;                              // weight of the colour map
  int colormap = cv::COLORMAP_JET;                 // an OpenCV colour map (BGR)
  std::optional<std::pair<double, double>> range;  // values mapped to 0..1; per-image min..max
};

absl::Status DrawHeatmap(const HeatmapOptions& options, absl::Span<const at::Tensor> values,
                         Canvas* canvas) {
  const at::Tensor& value = values[0];
  if (!IsRealNumber(value) || !(value.dim() == 2 || (value.dim() == 3 && value.size(0) == 1)) ||
      value.numel() == 0) {
    return BadValue(0, "heatmap", "[h,w] or [1,h,w] numbers, not empty", value);
  }
  at::Tensor map = at::nan_to_num(AsFloat(value).reshape({value.size(-2), value.size(-1)}), 0);
  const double lo = options.range ? options.range->first : map.min().item<double>();
  const double hi = options.range ? options.range->second : map.max().item<double>();
  map = hi > lo ? ((map - lo) / (hi - lo)).clamp(0, 1).contiguous() : at::zeros_like(map);

  cv::Mat& image = canvas->image;
  const cv::Mat small(static_cast<int>(map.size(0)), static_cast<int>(map.size(1)), CV_32F,
                      map.data_ptr<float>());
  cv::Mat resized, levels, bgr, rgb;
  cv::resize(small, resized, image.size(), 0, 0, cv::INTER_LINEAR);
  resized.convertTo(levels, CV_8U, 255.0);
  cv::applyColorMap(levels, bgr, options.colormap);
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  cv::addWeighted(image, 1 - options.alpha, rgb, options.alpha, 0, image);
  return absl::OkStatus();
}

// A Draw function behind the checks every renderer shares; exceptions become Internal.
class BuiltinRenderer final : public Renderer {
 public:
  BuiltinRenderer(absl::string_view name, size_t num_values, DrawFunction draw)
      : name_(name), num_values_(num_values), draw_(std::move(draw)) {}

  absl::Status Draw(absl::Span<const at::Tensor> values, Canvas* canvas) const override {
    if (canvas == nullptr || canvas->image.empty() || canvas->image.type() != CV_8UC3) {
      return absl::InvalidArgumentError("the canvas must be a non-empty CV_8UC3 image");
    }
    if (!std::isfinite(canvas->scale) || canvas->scale <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("the canvas scale must be positive, got ", canvas->scale));
    }
    if (values.size() != num_values_) {
      return absl::InvalidArgumentError(absl::StrCat("the ", name_, " renderer was made for ",
                                                     num_values_, " values, got ", values.size()));
    }
    // libtorch and OpenCV exceptions (both std::exception) become Internal.
    absl::Status drawn;
    absl::Status thrown = CallTorch(absl::StrCat("the ", name_, " renderer failed"),
                                    [&] { drawn = draw_(values, canvas); });
    return thrown.ok() ? drawn : thrown;
  }

 private:
  const std::string name_;
  const size_t num_values_;
  const DrawFunction draw_;
};

// ---- Registry ---------------------------------------------------------------------------

template <typename Options>
DrawFunction Bind(absl::Status (*draw)(const Options&, absl::Span<const at::Tensor>, Canvas*),
                  Options options) {
  return [draw, options = std::move(options)](absl::Span<const at::Tensor> values, Canvas* canvas) {
    return draw(options, values, canvas);
  };
}

DrawFunction MakeClassification(ParameterReader& read) {
  ClassificationOptions options;
  read.Read("class_names", "names", ParseNames, &options.class_names);
  read.Read("top_k", "an integer >= 1", ParseIntAtLeast(1), &options.top_k);
  return Bind(&DrawClassification, std::move(options));
}

DrawFunction MakeSegmentation(ParameterReader& read) {
  SegmentationOptions options;
  read.Read("alpha", "a number from 0 to 1", ParseFraction, &options.alpha);
  read.Read("background", "an integer >= -1", ParseIntAtLeast(-1), &options.background);
  read.Read("palette", "colours \"r,g,b;r,g,b;...\" of 0..255", ParsePalette, &options.palette);
  read.Read("class_names", "names", ParseNames, &options.class_names);
  return Bind(&DrawSegmentation, std::move(options));
}

DrawFunction MakeDetection(ParameterReader& read) {
  DetectionOptions options;
  read.Read("class_names", "names", ParseNames, &options.class_names);
  read.Read("score_threshold", "a number", ParseNumber, &options.score_threshold);
  read.Read("normalized", "true or false", ParseBool, &options.normalized);
  return Bind(&DrawDetection, std::move(options));
}

DrawFunction MakeKeypoints(ParameterReader& read) {
  KeypointsOptions options;
  read.Read("score_threshold", "a number", ParseNumber, &options.score_threshold);
  read.Read("skeleton", "keypoint index pairs \"0-1,1-2,...\"", ParseSkeleton, &options.skeleton);
  read.Read("normalized", "true or false", ParseBool, &options.normalized);
  return Bind(&DrawKeypoints, std::move(options));
}

DrawFunction MakeHeatmap(ParameterReader& read) {
  HeatmapOptions options;
  const std::vector<std::string> colormaps = ColormapNames();
  read.Read("alpha", "a number from 0 to 1", ParseFraction, &options.alpha);
  read.Read("colormap", absl::StrCat("one of ", absl::StrJoin(colormaps, ", ")), ParseColormap,
            &options.colormap);
  read.Read("range", "\"lo,hi\" with lo < hi", ParseRange, &options.range);
  return Bind(&DrawHeatmap, std::move(options));
}

struct RendererSpec {
  const char* name;
  std::vector<std::string> values;  // by position; the first is required
  DrawFunction (*make)(ParameterReader&);
};

// Sorted by name.
const std::vector<RendererSpec>& Specs() {
  static const auto* const kSpecs = new std::vector<RendererSpec>{
      {"classification", {"scores or class", "score"}, &MakeClassification},
      {"detection", {"boxes", "scores", "labels"}, &MakeDetection},
      {"heatmap", {"heatmap"}, &MakeHeatmap},
      {"keypoints", {"keypoints"}, &MakeKeypoints},
      {"segmentation", {"mask"}, &MakeSegmentation},
  };
  return *kSpecs;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Renderer>> MakeRenderer(absl::string_view name,
                                                       const Parameters& parameters,
                                                       int num_values) {
  const auto& specs = Specs();
  auto spec = std::find_if(specs.begin(), specs.end(),
                           [&](const RendererSpec& s) { return s.name == name; });
  if (spec == specs.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown renderer '", name, "'; the renderers are ", absl::StrJoin(RendererNames(), ", ")));
  }
  const std::string context = absl::StrCat("renderer '", name, "'");
  ParameterReader reader(parameters);
  DrawFunction draw = spec->make(reader);
  if (absl::Status read = reader.Finish(); !read.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": ", read.message()));
  }
  const int max_values = static_cast<int>(spec->values.size());
  if (num_values < 1 || num_values > max_values) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, " takes ",
        max_values == 1 ? "1 value" : absl::StrCat("1 to ", max_values, " values"),
        " after the image (", absl::StrJoin(spec->values, ", "), "), got ", num_values));
  }
  return std::make_unique<BuiltinRenderer>(name, num_values, std::move(draw));
}

std::vector<std::string> RendererNames() {
  std::vector<std::string> names;
  for (const RendererSpec& spec : Specs()) names.push_back(spec.name);
  return names;
}

}  // namespace torchbricks::render
