#include "core/execution/png_codec.h"

#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace torchbricks {
namespace {

// What libpng's callbacks share with the caller. Trivially destructible pieces only are
// touched after a longjmp.
struct PngState {
  const unsigned char* data = nullptr;  // decoding: the file
  size_t size = 0;
  size_t at = 0;
  std::string* out = nullptr;  // encoding: the file being written
  char error[256] = {};
};

[[noreturn]] void OnError(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(state->error, sizeof(state->error), "%s", message);
  png_longjmp(png, 1);
}

void OnWarning(png_structp, png_const_charp) {}  // dropped: see the header

void OnRead(png_structp png, png_bytep into, png_size_t bytes) {
  auto* state = static_cast<PngState*>(png_get_io_ptr(png));
  if (bytes > state->size - state->at) png_error(png, "the file ends early");
  std::memcpy(into, state->data + state->at, bytes);
  state->at += bytes;
}

void OnWrite(png_structp png, png_bytep from, png_size_t bytes) {
  auto* state = static_cast<PngState*>(png_get_io_ptr(png));
  state->out->append(reinterpret_cast<const char*>(from), bytes);
}

void OnFlush(png_structp) {}

// The *Guarded functions call libpng, whose error handler (OnError) longjmps back to their
// setjmp: they hold no object with a non-trivial destructor. False (state->error set) after
// a jump.

// Reads the header and sets the transformations to 8-bit RGB; `width` and `height` get the
// image's size.
bool ReadHeaderGuarded(png_structp png, png_infop info, PngState* state, png_uint_32* width,
                       png_uint_32* height) {
  if (setjmp(png_jmpbuf(png)) != 0) return false;
  png_set_read_fn(png, state, OnRead);
  png_read_info(png, info);
  *width = png_get_image_width(png, info);
  *height = png_get_image_height(png, info);
  const int depth = png_get_bit_depth(png, info);
  const int color = png_get_color_type(png, info);
  if (depth == 16) png_set_strip_16(png);
  png_set_strip_alpha(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if ((color & PNG_COLOR_MASK_COLOR) == 0) {
    if (depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    png_set_gray_to_rgb(png);
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8) {
    std::snprintf(state->error, sizeof(state->error), "is not 8-bit RGB after conversion");
    return false;
  }
  return true;
}

// Reads the image into `rows` (one pointer per row, each to 3 x width bytes).
bool ReadRowsGuarded(png_structp png, png_bytep* rows) {
  if (setjmp(png_jmpbuf(png)) != 0) return false;
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  return true;
}

bool WriteGuarded(png_structp png, png_infop info, PngState* state, const cv::Mat& rgb,
                  int compression_level, const std::vector<png_bytep>& rows) {
  if (setjmp(png_jmpbuf(png)) != 0) return false;
  png_set_write_fn(png, state, OnWrite, OnFlush);
  png_set_compression_level(png, compression_level);
  png_set_IHDR(png, info, static_cast<png_uint_32>(rgb.cols), static_cast<png_uint_32>(rgb.rows), 8,
               PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, const_cast<png_bytepp>(rows.data()));
  png_write_end(png, nullptr);
  return true;
}

}  // namespace

absl::StatusOr<cv::Mat> DecodePngRgb(absl::string_view file, int64_t max_pixels) {
  PngState state;
  state.data = reinterpret_cast<const unsigned char*>(file.data());
  state.size = file.size();
  if (file.size() < 8 || png_sig_cmp(state.data, 0, 8) != 0) {
    return absl::InvalidArgumentError("is not a PNG file");
  }
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, OnError, OnWarning);
  if (png == nullptr) return absl::ResourceExhaustedError("libpng could not start");
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return absl::ResourceExhaustedError("libpng could not start");
  }
  png_uint_32 width = 0;
  png_uint_32 height = 0;
  if (!ReadHeaderGuarded(png, info, &state, &width, &height)) {
    png_destroy_read_struct(&png, &info, nullptr);
    return absl::InvalidArgumentError(absl::StrCat("cannot be decoded: ", state.error));
  }
  if (int64_t{width} * int64_t{height} > max_pixels || width > (1u << 30) || height > (1u << 30)) {
    png_destroy_read_struct(&png, &info, nullptr);
    return absl::InvalidArgumentError(absl::StrCat(
        "declares ", width, "x", height, " pixels, more than the ", max_pixels, " allowed"));
  }
  cv::Mat image(static_cast<int>(height), static_cast<int>(width), CV_8UC3);
  std::vector<png_bytep> rows(height);
  for (png_uint_32 r = 0; r < height; ++r) rows[r] = image.ptr<png_byte>(static_cast<int>(r));
  const bool read = ReadRowsGuarded(png, rows.data());
  png_destroy_read_struct(&png, &info, nullptr);
  if (!read) return absl::InvalidArgumentError(absl::StrCat("cannot be decoded: ", state.error));
  return image;
}

absl::StatusOr<std::string> EncodePngRgb(const cv::Mat& rgb, int compression_level) {
  if (rgb.type() != CV_8UC3 || rgb.empty()) {
    return absl::InvalidArgumentError("a PNG is written from a non-empty RGB CV_8UC3 image");
  }
  std::string out;
  PngState state;
  state.out = &out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &state, OnError, OnWarning);
  if (png == nullptr) return absl::InternalError("libpng could not start");
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    return absl::InternalError("libpng could not start");
  }
  std::vector<png_bytep> rows(static_cast<size_t>(rgb.rows));
  for (int r = 0; r < rgb.rows; ++r) rows[r] = const_cast<png_bytep>(rgb.ptr<png_byte>(r));
  const bool written = WriteGuarded(png, info, &state, rgb, compression_level, rows);
  png_destroy_write_struct(&png, &info);
  if (!written) return absl::InternalError(absl::StrCat("PNG encoding failed: ", state.error));
  return out;
}

}  // namespace torchbricks
