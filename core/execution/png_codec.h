// PNG files in and out of core with libpng directly, so that the server's process needs
// only OpenCV's core and imgproc (OpenCV's imgcodecs pulls in GDAL, OpenEXR, TIFF, WebP...
// some 400 MB of libraries a relocatable bundle or an image would carry, and a larger
// surface for hostile files). Decoding gives what cv::imdecode(IMREAD_COLOR) followed by
// BGR -> RGB gave: 16-bit samples cut to 8, alpha and transparency dropped (not
// composited), palettes and grey expanded to RGB, no gamma correction. Thread-safe (no
// shared state); libpng's warnings are dropped (a hostile file may raise many).
//
//   ASSIGN_OR_RETURN(cv::Mat rgb, DecodePngRgb(file));        // CV_8UC3
//   ASSIGN_OR_RETURN(std::string png, EncodePngRgb(rgb, 1));  // zlib level 1
#ifndef TORCHBRICKS_CORE_EXECUTION_PNG_CODEC_H_
#define TORCHBRICKS_CORE_EXECUTION_PNG_CODEC_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "opencv2/core.hpp"

namespace torchbricks {

// Decodes the PNG `file` to a continuous RGB CV_8UC3 image.
// Errors: InvalidArgument with libpng's reason when the file is not a PNG, is truncated or
// corrupt, or declares more than `max_pixels` pixels (checked before anything is
// allocated for the image).
absl::StatusOr<cv::Mat> DecodePngRgb(absl::string_view file, int64_t max_pixels);

// The PNG file of an RGB CV_8UC3 image at zlib `compression_level` (0-9).
// Errors: InvalidArgument for another image type or an empty image; Internal when libpng
// fails.
absl::StatusOr<std::string> EncodePngRgb(const cv::Mat& rgb, int compression_level);

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_EXECUTION_PNG_CODEC_H_
