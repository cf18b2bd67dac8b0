// Fuzz target: the JPEG size check against the JPEG decoder (issue 20: a crafted marker
// stream showed the old header reader a small decoy frame while libjpeg decoded a large
// one). The input is one would-be JPEG file; it goes through ReadJpegSize, CheckImageFile
// and DecodeJpeg (refusing more than kMaxFuzzDecodePixels, as a budget would).
// Invariants: on every input the decoder accepts, ReadJpegSize reported exactly the
// decoded width and height, and CheckImageFile accepted it (when it starts like a JPEG and
// fits the side limit) with exactly the decoded pixel count; whatever CheckImageFile
// accepts as a JPEG, ReadJpegSize reads with the same size; decoding errors are
// InvalidArgument (no run limits are given). And against a decoder of its own: OpenCV's
// imdecode (its own libjpeg source manager and header read, EXIF orientation ignored) —
// whatever size it decodes, ReadJpegSize read too, and an image OpenCV refuses for its
// size was not read as a small one.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/execution/image_io.h"
#include "core/execution/jpeg_decoder.h"
#include "core/libtorch/torch_log_sink.h"
#include "opencv2/imgcodecs.hpp"
#include "tests/fuzz/fuzz_check.h"

namespace {

// Larger images are refused by the decoder's own budget before anything is allocated: a
// valid header of a large image would cost an allocation on every run without reaching
// new code.
constexpr int64_t kMaxFuzzDecodePixels = 1 << 20;

bool StartsLikeJpeg(absl::string_view file) {
  return file.size() >= 3 && std::memcmp(file.data(), "\xff\xd8\xff", 3) == 0;
}

}  // namespace

// OpenCV's own pixel limit for the second decoder (read once, at its first use).
constexpr char kOpenCvMaxPixels[] = "4194304";  // 4 x kMaxFuzzDecodePixels

// Checks the size check against OpenCV's decoder (see the file comment).
void CompareWithOpenCv(absl::string_view file,
                       const absl::StatusOr<torchbricks::JpegSize>& header) {
  if (!StartsLikeJpeg(file)) return;
  cv::Mat bgr;
  bool too_large = false;
  try {
    bgr = cv::imdecode(
        cv::Mat(1, static_cast<int>(file.size()), CV_8UC1, const_cast<char*>(file.data())),
        cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& error) {
    too_large = error.msg.find("CV_IO_MAX_IMAGE") != std::string::npos;
  }
  if (!bgr.empty()) {
    FUZZ_CHECK(header.ok());
    FUZZ_CHECK(bgr.cols == header->width && bgr.rows == header->height);
  }
  if (too_large && header.ok()) {
    FUZZ_CHECK(header->width * header->height > std::atoll(kOpenCvMaxPixels) ||
               header->width > (1 << 20) || header->height > (1 << 20));
  }
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // libjpeg's warnings (one line per file) would flood the fuzzer's output.
  torchbricks::SetTorchLogSink(nullptr);
  setenv("OPENCV_IO_MAX_IMAGE_PIXELS", kOpenCvMaxPixels, 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view file(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<torchbricks::JpegSize> header = torchbricks::ReadJpegSize(file);
  const absl::StatusOr<int64_t> checked = torchbricks::CheckImageFile("image", 0, file);
  if (checked.ok() && StartsLikeJpeg(file)) {
    FUZZ_CHECK(header.ok());
    FUZZ_CHECK(*checked == header->width * header->height);
  }
  if (!header.ok()) FUZZ_CHECK(header.status().code() == absl::StatusCode::kInvalidArgument);
  CompareWithOpenCv(file, header);

  const absl::StatusOr<cv::Mat> decoded =
      torchbricks::DecodeJpeg(file, {.max_pixels = kMaxFuzzDecodePixels});
  if (!decoded.ok()) {
    FUZZ_CHECK(decoded.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(decoded->type() == CV_8UC3 && decoded->isContinuous());
  FUZZ_CHECK(header.ok());
  FUZZ_CHECK(decoded->cols == header->width && decoded->rows == header->height);
  const int64_t pixels = int64_t{decoded->cols} * decoded->rows;
  FUZZ_CHECK(pixels > 0 && pixels <= kMaxFuzzDecodePixels);
  if (StartsLikeJpeg(file) && decoded->cols <= torchbricks::kMaxImageSide &&
      decoded->rows <= torchbricks::kMaxImageSide) {
    FUZZ_CHECK(checked.ok() && *checked == pixels);
  }
  return 0;
}
