#include "core/execution/image_io.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <tuple>
#include <utility>

#include "ATen/Parallel.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "core/execution/jpeg_decoder.h"
#include "core/execution/png_codec.h"
#include "core/graph/bytes_elements.h"
#include "core/libtorch/torch_errors.h"
#include "opencv2/imgproc.hpp"

namespace torchbricks {
namespace {

constexpr int64_t kPrefix = 4;

template <typename Element>
at::Tensor PackRows(absl::Span<const Element> elements) {
  size_t longest = 0;
  for (const auto& element : elements) longest = std::max(longest, element.size());
  at::Tensor rows = at::zeros(
      {static_cast<int64_t>(elements.size()), kPrefix + static_cast<int64_t>(longest)}, at::kByte);
  const int64_t stride = rows.size(1);
  auto* out = rows.data_ptr<uint8_t>();
  for (size_t i = 0; i < elements.size(); ++i) {
    uint8_t* row = out + i * stride;
    const uint32_t length = static_cast<uint32_t>(elements[i].size());
    PutBytesLength(length, row);
    if (length > 0) std::memcpy(row + kPrefix, elements[i].data(), length);
  }
  return rows;
}

std::string Shape(const at::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.sizes(), ","), "]");
}

}  // namespace

at::Tensor PackBytes(absl::Span<const absl::string_view> elements) { return PackRows(elements); }

at::Tensor PackBytes(absl::Span<const std::string> elements) { return PackRows(elements); }

absl::StatusOr<std::vector<std::string>> UnpackBytes(const at::Tensor& rows,
                                                     absl::string_view tensor_name) {
  if (rows.scalar_type() != at::kByte || rows.dim() != 2 || rows.size(1) < kPrefix) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", tensor_name, "' should hold BYTES rows (uint8 [B, 4 + L]), got ",
                     c10::toString(rows.scalar_type()), " ", Shape(rows)));
  }
  const at::Tensor host = rows.to(at::kCPU).contiguous();
  const int64_t stride = host.size(1);
  const auto* data = host.data_ptr<uint8_t>();
  std::vector<std::string> elements;
  elements.reserve(host.size(0));
  for (int64_t i = 0; i < host.size(0); ++i) {
    const uint8_t* row = data + i * stride;
    const uint32_t length = GetBytesLength(row);
    if (length > stride - kPrefix) {
      return absl::InvalidArgumentError(absl::StrCat("'", tensor_name, "' row ", i, " claims ",
                                                     length, " bytes in a row of ",
                                                     stride - kPrefix));
    }
    elements.emplace_back(reinterpret_cast<const char*>(row + kPrefix), length);
  }
  return elements;
}

namespace {

uint32_t BigEndian(const unsigned char* bytes, int count) {
  uint32_t value = 0;
  for (int i = 0; i < count; ++i) value = value << 8 | bytes[i];
  return value;
}

bool StartsWith(absl::string_view element, const unsigned char* magic, size_t size) {
  return element.size() >= size && std::memcmp(element.data(), magic, size) == 0;
}

// True when `element` starts like a JPEG file.
bool LooksLikeJpeg(absl::string_view element) {
  static constexpr unsigned char kJpeg[] = {0xff, 0xd8, 0xff};
  return StartsWith(element, kJpeg, sizeof(kJpeg));
}

// True when `element` starts like a PNG file.
bool LooksLikePng(absl::string_view element) {
  static constexpr unsigned char kPng[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return StartsWith(element, kPng, sizeof(kPng));
}

// Width and height from a PNG's IHDR chunk, without decoding; nullopt when the header
// cannot be read. (libpng decodes the size IHDR declares: core/execution/png_codec.)
std::optional<std::pair<int64_t, int64_t>> PngSize(absl::string_view element) {
  const auto* data = reinterpret_cast<const unsigned char*>(element.data());
  if (element.size() < 24 || std::memcmp(data + 12, "IHDR", 4) != 0) return std::nullopt;
  return std::make_pair<int64_t, int64_t>(BigEndian(data + 16, 4), BigEndian(data + 20, 4));
}

}  // namespace

int64_t ImagePixelBudget(const ValueSpec& spec, int64_t configured) {
  if (configured > 0) return configured;
  if (spec.image_height <= 0 || spec.image_width <= 0) return kMaxImagePixels;
  // Declared sides are bounded by the manifest's int64; saturate rather than overflow.
  const int64_t declared = spec.image_height > kMaxImagePixels / spec.image_width
                               ? kMaxImagePixels
                               : spec.image_height * spec.image_width;
  const int64_t scaled = declared > kMaxImagePixels / kImagePixelBudgetFactor
                             ? kMaxImagePixels
                             : kImagePixelBudgetFactor * declared;
  return std::clamp(scaled, kMinImagePixelBudget, kMaxImagePixels);
}

absl::StatusOr<int64_t> CheckImageFile(absl::string_view input, size_t index,
                                       absl::string_view element, int64_t max_pixels) {
  auto refuse = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", input, "' element ", index, " (", element.size(), " bytes) ", why));
  };
  int64_t width = 0;
  int64_t height = 0;
  if (LooksLikeJpeg(element)) {
    // libjpeg's own header parse: the size it reports is the size it decodes.
    const absl::StatusOr<JpegSize> size = ReadJpegSize(element);
    if (!size.ok()) return refuse(size.status().message());
    width = size->width;
    height = size->height;
  } else if (LooksLikePng(element)) {
    const std::optional<std::pair<int64_t, int64_t>> size = PngSize(element);
    if (!size.has_value()) return refuse("has no readable image size (truncated or corrupt)");
    std::tie(width, height) = *size;
  } else {
    return refuse("is not a JPEG or PNG file");
  }
  if (width <= 0 || height <= 0) return refuse("declares an empty image");
  if (width > kMaxImageSide || height > kMaxImageSide) {
    return refuse(absl::StrCat("is ", width, "x", height, ", larger than the limit of ",
                               kMaxImageSide, " pixels per side"));
  }
  if (width * height > std::min(max_pixels, kMaxImagePixels)) {
    return refuse(absl::StrCat("is ", width, "x", height, " (", width * height,
                               " pixels), more than this input's budget of ",
                               std::min(max_pixels, kMaxImagePixels), " pixels per image"));
  }
  return width * height;
}

absl::Status CheckImageFiles(absl::string_view input, absl::Span<const absl::string_view> elements,
                             int64_t max_pixels) {
  int64_t pixels = 0;
  for (size_t i = 0; i < elements.size(); ++i) {
    ASSIGN_OR_RETURN(const int64_t image_pixels, CheckImageFile(input, i, elements[i], max_pixels));
    pixels += image_pixels;
  }
  if (pixels > kMaxRequestPixels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", input, "': its ", elements.size(), " images hold ", pixels,
        " pixels, more than the limit of ", kMaxRequestPixels, " per run; send fewer at once"));
  }
  return absl::OkStatus();
}

absl::Status CheckBytesPadding(absl::Span<const absl::string_view> elements,
                               absl::string_view tensor_name) {
  size_t longest = 0;
  size_t total = 0;
  for (absl::string_view element : elements) {
    longest = std::max(longest, element.size());
    total += element.size();
  }
  const size_t padded = elements.size() * (kPrefix + longest);
  if (padded > std::max<size_t>(4 * total, kPaddingAllowance)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BYTES tensor '", tensor_name, "': ", elements.size(), " elements of up to ", longest,
        " bytes (", total, " in all) are too unequal in size; send the large ones separately"));
  }
  return absl::OkStatus();
}

namespace {

// Decodes element `index` of input `spec` to RGB, resized to the spec's size when it has
// one. JPEGs have at most `max_pixels` (DecodeImages checked every header already).
absl::StatusOr<cv::Mat> DecodeOne(const ValueSpec& spec, const std::string& element, size_t index,
                                  int64_t max_pixels, const RunLimits& limits) {
  auto undecodable = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "' element ", index, " (",
                                                   element.size(), " bytes) ", why));
  };
  const std::string what = absl::StrCat("input '", spec.name, "' element ", index);
  RETURN_IF_ERROR(limits.Check(absl::StrCat("decoding ", what)));
  try {
    absl::StatusOr<cv::Mat> decoded =
        LooksLikeJpeg(element)
            ? DecodeJpeg(element, {.max_pixels = max_pixels, .limits = &limits, .what = what})
            : DecodePngRgb(element, max_pixels);
    if (!decoded.ok()) {
      // The decoders' InvalidArgument describes the file: say which input and element it is.
      if (decoded.status().code() != absl::StatusCode::kInvalidArgument) return decoded.status();
      return undecodable(decoded.status().message());
    }
    cv::Mat rgb = *std::move(decoded);
    if (spec.image_height > 0 && (rgb.rows != spec.image_height || rgb.cols != spec.image_width)) {
      const bool shrinking = rgb.rows > spec.image_height || rgb.cols > spec.image_width;
      cv::Mat resized;
      cv::resize(rgb, resized,
                 cv::Size(static_cast<int>(spec.image_width), static_cast<int>(spec.image_height)),
                 0, 0, shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
      rgb = resized;
    }
    return rgb;
  } catch (const cv::Exception& error) {
    return undecodable(absl::StrCat("cannot be decoded: ", error.msg));
  }
}

}  // namespace

absl::StatusOr<at::Tensor> DecodeImages(const ValueSpec& spec, const at::Tensor& rows,
                                        int64_t max_image_pixels, const RunLimits& limits) {
  absl::StatusOr<std::vector<std::string>> elements = UnpackBytes(rows, spec.name);
  if (!elements.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", spec.name, "' is an encoded image input: send BYTES elements (JPEG or PNG)"));
  }
  // Refuse files whose headers announce huge images before decoding allocates for them.
  const int64_t budget = ImagePixelBudget(spec, max_image_pixels);
  RETURN_IF_ERROR(CheckImageFiles(
      spec.name, std::vector<absl::string_view>(elements->begin(), elements->end()), budget));
  // The files of a batch are decoded in parallel on the intra-op threads.
  std::vector<absl::StatusOr<cv::Mat>> decoded(elements->size(), cv::Mat());
  at::parallel_for(0, static_cast<int64_t>(elements->size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      decoded[i] = DecodeOne(spec, (*elements)[i], i, budget, limits);
    }
  });
  std::vector<cv::Mat> images;
  images.reserve(decoded.size());
  for (size_t i = 0; i < decoded.size(); ++i) {
    if (!decoded[i].ok()) return decoded[i].status();
    const cv::Mat& rgb = *decoded[i];
    if (!images.empty() && rgb.size() != images[0].size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", spec.name, "' element ", i, " is ", rgb.cols, "x", rgb.rows,
          " but element 0 is ", images[0].cols, "x", images[0].rows,
          "; send images of one size or declare a resize (encoded_image { height width })"));
    }
    images.push_back(rgb);
  }
  const int64_t height = images.empty() ? std::max<int64_t>(spec.image_height, 0) : images[0].rows;
  const int64_t width = images.empty() ? std::max<int64_t>(spec.image_width, 0) : images[0].cols;
  at::Tensor batch = at::empty({static_cast<int64_t>(images.size()), height, width, 3}, at::kByte);
  const int64_t image_bytes = height * width * 3;
  for (size_t i = 0; i < images.size(); ++i) {
    const cv::Mat& image = images[i];
    uint8_t* out = batch.data_ptr<uint8_t>() + i * image_bytes;
    for (int r = 0; r < image.rows; ++r) {
      std::memcpy(out + r * width * 3, image.ptr<uint8_t>(r), width * 3);
    }
  }
  return batch.permute({0, 3, 1, 2}).contiguous();
}

absl::StatusOr<cv::Mat> ToRgbImage(const at::Tensor& image, bool channels_last) {
  if (image.dim() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("an image must have 3 dimensions, got ", Shape(image)));
  }
  at::Tensor hwc = channels_last ? image : image.permute({1, 2, 0});
  if (hwc.size(0) == 0 || hwc.size(1) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("an image must not be empty, got ", Shape(image)));
  }
  const int64_t channels = hwc.size(2);
  if (channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("an image must have 1 or 3 channels, got ", channels, " in ", Shape(image)));
  }
  if (hwc.is_floating_point()) {
    hwc = (hwc.to(at::kFloat).nan_to_num(0.0) * 255.0f).round().clamp(0, 255);
  } else if (hwc.scalar_type() != at::kByte) {
    return absl::InvalidArgumentError(absl::StrCat("an image must be uint8 or floating point, got ",
                                                   c10::toString(hwc.scalar_type())));
  }
  hwc = hwc.to(at::kCPU, at::kByte).contiguous();
  const int rows = static_cast<int>(hwc.size(0));
  const int cols = static_cast<int>(hwc.size(1));
  cv::Mat wrapped(rows, cols, channels == 3 ? CV_8UC3 : CV_8UC1, hwc.data_ptr<uint8_t>());
  cv::Mat rgb;
  if (channels == 1) {
    cv::cvtColor(wrapped, rgb, cv::COLOR_GRAY2RGB);
  } else {
    rgb = wrapped.clone();
  }
  return rgb;
}

absl::StatusOr<std::string> EncodePng(const cv::Mat& rgb) {
  // Level 1: the fastest zlib level; drawings are encoded per request (docs/PERFORMANCE.md).
  return EncodePngRgb(rgb, /*compression_level=*/1);
}

}  // namespace torchbricks
