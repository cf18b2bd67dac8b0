// ParameterReader: reads a renderer's string parameters (bricks.pbtxt) into typed options,
// with the parsers the renderers use. Each parser returns false on text it cannot read and
// then leaves its output unspecified. Not thread-safe; one reader per MakeRenderer() call.
#ifndef TORCHBRICKS_CORE_RENDER_PARAMETER_READER_H_
#define TORCHBRICKS_CORE_RENDER_PARAMETER_READER_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/render/renderers.h"
#include "opencv2/core.hpp"

namespace torchbricks::render {

// Reads a renderer's parameters into its options. A parameter that is absent leaves the
// option at its default. Finish() reports the first value that did not parse, or a key
// that no Read() asked for.
class ParameterReader {
 public:
  explicit ParameterReader(const Parameters& parameters) : parameters_(parameters) {}

  // Parses parameter `key` into `*option` with `parse` (a bool(absl::string_view, T*)
  // that fails on text it cannot read); `expected` says what the text should be.
  template <typename T, typename Parse>
  void Read(const std::string& key, absl::string_view expected, Parse parse, T* option) {
    known_.push_back(key);
    auto it = parameters_.find(key);
    if (it == parameters_.end() || !status_.ok()) return;
    if (!parse(it->second, option)) {
      status_ = absl::InvalidArgumentError(
          absl::StrCat("parameter '", key, "' must be ", expected, ", got '", it->second, "'"));
    }
  }

  // OK when every parameter given was asked for and parsed; otherwise InvalidArgument
  // naming the first bad value or unknown key (listing the known ones).
  absl::Status Finish();

 private:
  const Parameters& parameters_;
  std::vector<std::string> known_;
  absl::Status status_;
};

// Comma-separated names; empty text gives none.
bool ParseNames(absl::string_view text, std::vector<std::string>* names);
// A finite number.
bool ParseNumber(absl::string_view text, double* value);
// A number from 0 to 1.
bool ParseFraction(absl::string_view text, double* value);
// "true" or "false" (and abseil's other spellings).
bool ParseBool(absl::string_view text, bool* value);
// An integer >= `lo`.
inline auto ParseIntAtLeast(int lo) {
  return [lo](absl::string_view text, int* value) {
    return absl::SimpleAtoi(text, value) && *value >= lo;
  };
}

// "r,g,b;r,g,b;..." with components 0..255.
bool ParsePalette(absl::string_view text, std::vector<cv::Vec3b>* colors);
// "0-1,1-2,...": pairs of keypoint indices.
bool ParseSkeleton(absl::string_view text, std::vector<std::pair<int, int>>* pairs);
// "lo,hi" with lo < hi.
bool ParseRange(absl::string_view text, std::optional<std::pair<double, double>>* range);
// An OpenCV colour map by name (one of ColormapNames()).
bool ParseColormap(absl::string_view text, int* colormap);
std::vector<std::string> ColormapNames();

}  // namespace torchbricks::render

#endif  // TORCHBRICKS_CORE_RENDER_PARAMETER_READER_H_
