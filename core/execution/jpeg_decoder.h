// JPEG decoding with libjpeg, bounded for files that clients send: the size check reads
// the header with libjpeg's own marker parser (so it sees exactly the frame the decoder
// will decode), and decoding stops after kMaxJpegScans scans or once the run's limits
// (deadline, cancellation) say nobody waits for it. libjpeg's errors never end the process
// and its warnings go to the log sink of core/libtorch/torch_log_sink.h, not to stderr.
// Owns nothing between calls; thread-safe (each call has its own libjpeg object).
//
//   ASSIGN_OR_RETURN(JpegSize size, ReadJpegSize(file));  // before decoding: check a budget
//   absl::StatusOr<cv::Mat> rgb = DecodeJpeg(file, {.max_pixels = budget,
//                                                   .limits = &limits,
//                                                   .what = "input 'image' element 3"});
//
// Output: what cv::imdecode(IMREAD_COLOR) followed by BGR -> RGB gave for the same file,
// except that EXIF orientation is not applied (as torchvision's decode_jpeg and PIL's
// Image.open): libjpeg's default integer DCT and fancy upsampling; greyscale replicated to
// RGB; CMYK and YCCK (Adobe) converted as OpenCV converts them.
#ifndef TORCHBRICKS_CORE_EXECUTION_JPEG_DECODER_H_
#define TORCHBRICKS_CORE_EXECUTION_JPEG_DECODER_H_

#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/graph/run_limits.h"
#include "opencv2/core.hpp"

namespace torchbricks {

// The most scans (SOS markers) a JPEG file may hold. Every scan of a progressive file is a
// pass over all blocks of its components, so decoding time grows with scans x pixels: a
// hostile file of thousands of tiny scans decodes for many seconds (1,500 copies of one
// scan of a 4096 x 4096 image: 115 KB, 18.7 s). Encoders write 6 to 10 (libjpeg's
// jpeg_simple_progression) and rarely more than about 20 (mozjpeg's optimized scans); 100
// is also the most that libjpeg's own `jpegtran -scans` writes. A scan costs 2.5 to 13 ms
// of one core at 16 Mpx, so 100 bound a file to ~1.2 s there and ~4 s at kMaxImagePixels;
// the run's deadline bounds the rest. (TurboJPEG's TJFLAG_LIMITSCANS allows 500.)
inline constexpr int kMaxJpegScans = 100;

// The most decoding work a JPEG file may ask for, counted as scans x pixels: 20 scans at
// kMaxImagePixels, 60 at 16 Mpx, the 100 of kMaxJpegScans below 10 Mpx. A baseline file
// (one scan) or a progressive photo from any common encoder (6-20 scans) stays well
// inside; a hostile progressive file at the pixel limit (100 scans of 50 Mpx decoded for
// 13.4 s on this 2-core machine) is refused after about 2.7 s of work, whatever deadline
// its client set (or none).
inline constexpr int64_t kMaxJpegScanPixels = int64_t{20} * 50'000'000;

// The size of the image a JPEG file holds, as libjpeg reads it from the frame header.
struct JpegSize {
  int64_t width = 0;
  int64_t height = 0;
};

// The width and height libjpeg will decode from `file`, read by libjpeg's own marker
// parser up to the first scan (jpeg_read_header): no pixel is decoded, nothing of the
// image's size is allocated. InvalidArgument, its message saying why (to follow the file's
// name, e.g. "has no readable JPEG header: Bogus marker length"), when libjpeg cannot read
// a frame header. Warnings are not reported (decoding reports them).
absl::StatusOr<JpegSize> ReadJpegSize(absl::string_view file);

struct JpegDecodeOptions {
  // Files whose frame declares more pixels are refused before anything is allocated.
  int64_t max_pixels = std::numeric_limits<int64_t>::max();
  // Checked between rows of decoding work; nullptr: never stop early. Borrowed for the call.
  const RunLimits* limits = nullptr;
  // The file, in messages and warnings: "input 'image' element 3".
  std::string what = "JPEG file";
};

// An RGB CV_8UC3 image of `file`, whose size is what ReadJpegSize() reports.
// Errors, leaving nothing allocated:
//   InvalidArgument, its message saying why (to follow the file's name), when libjpeg
//     cannot decode it, its colour space has no RGB form, it has more than
//     options.max_pixels pixels, or it has more than kMaxJpegScans scans;
//   DeadlineExceeded or Cancelled from options.limits->Check("decoding " + options.what)
//     once the limits say stop;
//   ResourceExhausted when the image's memory cannot be allocated.
// libjpeg's warnings (corrupt but decodable data) are counted and sent as one line per
// file with the first of them, through EmitLibraryLog() (kind "libjpeg"): a hostile file
// can raise thousands.
absl::StatusOr<cv::Mat> DecodeJpeg(absl::string_view file, const JpegDecodeOptions& options = {});

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_EXECUTION_JPEG_DECODER_H_
