// Fuzz target: encoded image inputs. The input is one element (a would-be JPEG or PNG
// file); it goes through CheckImageFile, CheckImageFiles (alone and twice) and
// DecodeImages, with a declared resize chosen by the input's size (none, 16x16 or 7x5).
// Invariants: a decoded batch is uint8 [n, 3, H, W]; nothing decodes that the header
// check refuses; without a resize, the decoded size is the size the header declared (the
// check guards the decoder only if it reads what the decoder will allocate).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ATen/Parallel.h"
#include "core/execution/image_io.h"
#include "core/libtorch/torch_log_sink.h"
#include "opencv2/core/utility.hpp"
#include "tests/fuzz/fuzz_check.h"

namespace {

// Decoding is skipped above this many declared pixels: a valid header of a large image
// costs the decoder its allocation before the (fuzzed, truncated) data runs out, which
// slows every run without reaching new code. The header checks still see every input.
constexpr int64_t kMaxFuzzDecodePixels = 1 << 20;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torchbricks::SetTorchLogSink(nullptr);  // libjpeg's warnings: not a line per run
  at::set_num_threads(1);
  cv::setNumThreads(0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view element(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<int64_t> pixels = torchbricks::CheckImageFile("image", 0, element);
  const std::vector<absl::string_view> one = {element};
  const std::vector<absl::string_view> two = {element, element};
  FUZZ_CHECK(torchbricks::CheckImageFiles("image", one).ok() == pixels.ok());
  if (pixels.ok()) {
    FUZZ_CHECK(*pixels > 0 && *pixels <= torchbricks::kMaxImagePixels);
    FUZZ_CHECK(torchbricks::CheckImageFiles("image", two).ok() ==
               (2 * *pixels <= torchbricks::kMaxRequestPixels));
  }
  if (pixels.ok() && *pixels > kMaxFuzzDecodePixels) return 0;

  torchbricks::ValueSpec spec;
  spec.name = "image";
  spec.encoded_image = true;
  if (size % 3 == 1) spec.image_height = spec.image_width = 16;
  if (size % 3 == 2) {
    spec.image_height = 7;
    spec.image_width = 5;
  }
  const absl::StatusOr<at::Tensor> decoded =
      torchbricks::DecodeImages(spec, torchbricks::PackBytes(absl::MakeConstSpan(one)));
  if (!decoded.ok()) {
    FUZZ_CHECK(decoded.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(pixels.ok());
  const at::Tensor& batch = *decoded;
  FUZZ_CHECK(batch.scalar_type() == at::kByte && batch.dim() == 4);
  FUZZ_CHECK(batch.size(0) == 1 && batch.size(1) == 3);
  if (spec.image_height > 0) {
    FUZZ_CHECK(batch.size(2) == spec.image_height && batch.size(3) == spec.image_width);
  } else {
    FUZZ_CHECK(batch.size(2) * batch.size(3) == *pixels);
  }
  return 0;
}
