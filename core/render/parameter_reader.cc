#include "core/render/parameter_reader.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "opencv2/imgproc.hpp"

namespace torchbricks::render {
namespace {

// Splits `text` at `separator` into exactly `count` integers in [lo, hi].
bool ParseInts(absl::string_view text, char separator, size_t count, int lo, int hi,
               std::vector<int>* values) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, separator);
  if (parts.size() != count) return false;
  values->clear();
  for (absl::string_view part : parts) {
    int value = 0;
    if (!absl::SimpleAtoi(part, &value) || value < lo || value > hi) return false;
    values->push_back(value);
  }
  return true;
}

constexpr std::pair<const char*, int> kColormaps[] = {
    {"hot", cv::COLORMAP_HOT},         {"inferno", cv::COLORMAP_INFERNO},
    {"jet", cv::COLORMAP_JET},         {"magma", cv::COLORMAP_MAGMA},
    {"plasma", cv::COLORMAP_PLASMA},   {"turbo", cv::COLORMAP_TURBO},
    {"viridis", cv::COLORMAP_VIRIDIS},
};

}  // namespace

absl::Status ParameterReader::Finish() {
  std::sort(known_.begin(), known_.end());
  for (const auto& [key, value] : parameters_) {
    if (!std::binary_search(known_.begin(), known_.end(), key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "no parameter '", key, "'; the parameters are ", absl::StrJoin(known_, ", ")));
    }
  }
  return status_;
}

bool ParseNames(absl::string_view text, std::vector<std::string>* names) {
  names->clear();
  if (absl::StripAsciiWhitespace(text).empty()) return true;
  for (absl::string_view name : absl::StrSplit(text, ',')) {
    names->emplace_back(absl::StripAsciiWhitespace(name));
  }
  return true;
}

bool ParseNumber(absl::string_view text, double* value) {
  return absl::SimpleAtod(text, value) && std::isfinite(*value);
}

bool ParseFraction(absl::string_view text, double* value) {
  return ParseNumber(text, value) && *value >= 0 && *value <= 1;
}

bool ParseBool(absl::string_view text, bool* value) { return absl::SimpleAtob(text, value); }

bool ParsePalette(absl::string_view text, std::vector<cv::Vec3b>* colors) {
  for (absl::string_view color : absl::StrSplit(text, ';')) {
    std::vector<int> rgb;
    if (!ParseInts(color, ',', 3, 0, 255, &rgb)) return false;
    colors->emplace_back(rgb[0], rgb[1], rgb[2]);
  }
  return true;
}

bool ParseSkeleton(absl::string_view text, std::vector<std::pair<int, int>>* pairs) {
  if (absl::StripAsciiWhitespace(text).empty()) return true;
  for (absl::string_view pair : absl::StrSplit(text, ',')) {
    std::vector<int> ends;
    if (!ParseInts(pair, '-', 2, 0, std::numeric_limits<int>::max(), &ends)) return false;
    pairs->emplace_back(ends[0], ends[1]);
  }
  return true;
}

bool ParseRange(absl::string_view text, std::optional<std::pair<double, double>>* range) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  double lo = 0;
  double hi = 0;
  if (parts.size() != 2 || !ParseNumber(parts[0], &lo) || !ParseNumber(parts[1], &hi) ||
      !(lo < hi)) {
    return false;
  }
  *range = std::make_pair(lo, hi);
  return true;
}

bool ParseColormap(absl::string_view text, int* colormap) {
  for (const auto& [name, id] : kColormaps) {
    if (text == name) {
      *colormap = id;
      return true;
    }
  }
  return false;
}

std::vector<std::string> ColormapNames() {
  std::vector<std::string> names;
  for (const auto& [name, id] : kColormaps) names.push_back(name);
  return names;
}

}  // namespace torchbricks::render
