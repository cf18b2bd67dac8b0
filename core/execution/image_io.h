// Images in and out of brick collections: BYTES tensors inside the executor, decoding of
// encoded image inputs, and PNG encoding of rendered images.
//
// Inside core a BYTES tensor of B elements is held as a uint8 [B, 4 + L] tensor: row i is
// element i's length (4 bytes, little-endian) followed by its bytes and zero padding to L,
// the longest element. Rows keep batching simple: such tensors concatenate and split
// along dimension 0 like any other. LoadedCollection::Run takes encoded image inputs and
// returns visualization outputs in this form; ServableModel converts it to and from the
// protocol's layout.
#ifndef TORCHBRICKS_CORE_EXECUTION_IMAGE_IO_H_
#define TORCHBRICKS_CORE_EXECUTION_IMAGE_IO_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/graph/brick_graph.h"
#include "core/graph/run_limits.h"
#include "opencv2/core.hpp"
#include "torch/types.h"

namespace torchbricks {

// The rows tensor of `elements`.
at::Tensor PackBytes(absl::Span<const absl::string_view> elements);
at::Tensor PackBytes(absl::Span<const std::string> elements);

// The elements of a rows tensor (on any device). InvalidArgument, naming `tensor_name`,
// when `rows` is not a uint8 [B, 4 + L] tensor of valid rows.
absl::StatusOr<std::vector<std::string>> UnpackBytes(const at::Tensor& rows,
                                                     absl::string_view tensor_name);

// Limits on one encoded image, read from its header before it is decoded (decompression
// bombs: a small PNG can announce gigapixels).
inline constexpr int64_t kMaxImagePixels = 50'000'000;
inline constexpr int64_t kMaxImageSide = 16'384;
// A BYTES rows tensor may take up to four times its elements' bytes, or this much.
inline constexpr size_t kPaddingAllowance = 64 << 20;

// ... and on all the images of one run together (about 1.2 GB decoded).
inline constexpr int64_t kMaxRequestPixels = 400'000'000;

// The per-image budget of an input that declares its size (encoded_image { height width })
// is this many times the declared pixels (4x per side: an image shrunk further wastes over
// 15/16 of what was decoded), but never below kMinImagePixelBudget (4096 x 4096: any
// common camera photo or 4K frame) nor above kMaxImagePixels (docs/VISUALIZATION.md).
inline constexpr int64_t kImagePixelBudgetFactor = 16;
inline constexpr int64_t kMinImagePixelBudget = 4096 * 4096;

// The most pixels one image of encoded image input `spec` may declare: `configured` when
// positive (config.pbtxt's max_image_pixels; callers keep it at most kMaxImagePixels),
// else kImagePixelBudgetFactor x the spec's declared size clamped to
// [kMinImagePixelBudget, kMaxImagePixels], else (no declared size) kMaxImagePixels.
int64_t ImagePixelBudget(const ValueSpec& spec, int64_t configured = 0);

// The pixel count of element `index` of encoded image input `input`, read from its header:
// a PNG's IHDR chunk, a JPEG's frame header as libjpeg reads it (core/execution/jpeg_decoder.h), so
// that the size checked is the size DecodeImages() decodes, whatever the marker stream.
// InvalidArgument naming input and element when it is not a JPEG or PNG file, its size
// cannot be read, it exceeds kMaxImageSide per side, or it has more than `max_pixels`
// (the message names the budget). Does not decode.
absl::StatusOr<int64_t> CheckImageFile(absl::string_view input, size_t index,
                                       absl::string_view element,
                                       int64_t max_pixels = kMaxImagePixels);

// CheckImageFile() for every element, and their pixels together at most kMaxRequestPixels.
absl::Status CheckImageFiles(absl::string_view input, absl::Span<const absl::string_view> elements,
                             int64_t max_pixels = kMaxImagePixels);

// OK when `elements` fit a rows tensor without padding blowing up (at most four times
// their bytes, or kPaddingAllowance); InvalidArgument naming the tensor otherwise.
absl::Status CheckBytesPadding(absl::Span<const absl::string_view> elements,
                               absl::string_view tensor_name);

// Decodes the encoded images of input `spec` (rows tensor of B elements) to one uint8
// [B, 3, H, W] RGB tensor, resized to the spec's size when it declares one. JPEGs are
// decoded by core/execution/jpeg_decoder.h (EXIF orientation is not applied), PNGs by
// core/execution/png_codec.h; the images of a batch in parallel on the intra-op threads. Errors:
// InvalidArgument naming the input and the element index for bytes that are not a decodable JPEG or
// PNG, that fail CheckImageFile() with ImagePixelBudget(spec, `max_image_pixels`) or that are a
// JPEG of more than kMaxJpegScans scans, and for images of different sizes without a declared
// resize; DeadlineExceeded or Cancelled (from `limits`, checked before each image and while a JPEG
// decodes) once nobody waits for the run.
absl::StatusOr<at::Tensor> DecodeImages(const ValueSpec& spec, const at::Tensor& rows,
                                        int64_t max_image_pixels = 0, const RunLimits& limits = {});

// An RGB CV_8UC3 image (a copy) of one image tensor: [C, H, W] (channels first) or, with
// `channels_last`, [H, W, C]; C is 1 (grey) or 3; uint8 as is, floating point scaled from
// 0..1 to 0..255 (NaN as 0). InvalidArgument otherwise, and for an empty image.
absl::StatusOr<cv::Mat> ToRgbImage(const at::Tensor& image, bool channels_last);

// The PNG file of an RGB CV_8UC3 image.
absl::StatusOr<std::string> EncodePng(const cv::Mat& rgb);

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_EXECUTION_IMAGE_IO_H_
