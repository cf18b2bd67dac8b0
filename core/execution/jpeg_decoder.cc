#include "core/execution/jpeg_decoder.h"

#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/libtorch/torch_log_sink.h"
#include "jpeglib.h"

namespace torchbricks {
namespace {

// One libjpeg decompression and what its callbacks report. It lives in the frame of the
// C++ caller, never in a frame that libjpeg's error exit jumps over (see the *Guarded
// functions below), so its C++ members are destroyed normally.
struct DecodeContext {
  DecodeContext();
  ~DecodeContext() { jpeg_destroy_decompress(&cinfo); }  // safe before jpeg_create too
  DecodeContext(const DecodeContext&) = delete;
  DecodeContext& operator=(const DecodeContext&) = delete;

  jpeg_decompress_struct cinfo{};
  jpeg_error_mgr errors{};
  jpeg_progress_mgr progress{};
  std::jmp_buf jump{};
  // libjpeg's message when it gave up (OnError), or ours when a step did (ReadRows).
  char error[JMSG_LENGTH_MAX] = {};
  // Why the progress monitor stopped the decode (scan limit, run limits); OK otherwise.
  absl::Status stop;
  const RunLimits* limits = nullptr;  // borrowed; nullptr: no run limits
  std::string doing;                  // "decoding input 'image' element 3"
  int warnings = 0;
  char first_warning[JMSG_LENGTH_MAX] = {};
};

// libjpeg's error exit: keep its message and jump back to the active *Guarded function.
[[noreturn]] void OnError(j_common_ptr cinfo) {
  auto* context = static_cast<DecodeContext*>(cinfo->client_data);
  (*cinfo->err->format_message)(cinfo, context->error);
  std::longjmp(context->jump, 1);
}

// libjpeg's messages: warnings (level -1) are counted and the first is kept, to be logged
// once per file (a hostile file can raise thousands); trace messages are dropped.
void OnMessage(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  auto* context = static_cast<DecodeContext*>(cinfo->client_data);
  if (context->warnings++ == 0) (*cinfo->err->format_message)(cinfo, context->first_warning);
}

// True when the decode must stop; context->stop says why. Every C++ temporary of the check
// is gone when it returns, before OnProgress jumps.
// Nothing may throw through libjpeg's C frames: an exception here (no memory for a message,
// a throwing cancellation probe) stops the decode with a code-only status instead.
bool ShouldStop(DecodeContext* context) noexcept {
  try {
    if (context->cinfo.input_scan_number > kMaxJpegScans) {
      context->stop = absl::InvalidArgumentError(
          absl::StrCat("is a JPEG of more than ", kMaxJpegScans,
                       " scans, the most decoded (each scan is another pass over the image)"));
      return true;
    }
    const int64_t pixels =
        int64_t{context->cinfo.image_width} * int64_t{context->cinfo.image_height};
    if (pixels > 0 && context->cinfo.input_scan_number > kMaxJpegScanPixels / pixels) {
      context->stop = absl::InvalidArgumentError(
          absl::StrCat("is a JPEG of ", context->cinfo.input_scan_number, " or more scans of ",
                       pixels, " pixels, more decoding work than the ", kMaxJpegScanPixels,
                       " scan-pixels allowed per image (fewer scans, or a smaller image)"));
      return true;
    }
    if (context->limits == nullptr) return false;
    context->stop = context->limits->Check(context->doing);
    return !context->stop.ok();
  } catch (...) {
    context->stop = absl::Status(absl::StatusCode::kResourceExhausted, "");
    return true;
  }
}

// libjpeg's progress monitor: called before each row of input (while a multi-scan file is
// absorbed) and of output is processed.
void OnProgress(j_common_ptr cinfo) {
  auto* context = static_cast<DecodeContext*>(cinfo->client_data);
  if (ShouldStop(context)) std::longjmp(context->jump, 1);
}

DecodeContext::DecodeContext() {
  cinfo.err = jpeg_std_error(&errors);
  errors.error_exit = OnError;
  errors.emit_message = OnMessage;
  cinfo.client_data = this;
  progress.progress_monitor = OnProgress;
}

// RGB from libjpeg's CMYK output, which for Adobe files (nearly all CMYK JPEGs) holds
// inverted inks: the same arithmetic as OpenCV's decoder, so results do not change.
void CmykRowToRgb(const unsigned char* cmyk, unsigned char* rgb, size_t width) {
  for (size_t x = 0; x < width; ++x, cmyk += 4, rgb += 3) {
    const int k = cmyk[3];
    for (int channel = 0; channel < 3; ++channel) {
      rgb[channel] = static_cast<unsigned char>(k - (((255 - cmyk[channel]) * k) >> 8));
    }
  }
}

// The decoded rows into `out` (`stride` bytes apart), through `cmyk_row` (one row of four
// channels) when libjpeg's output is CMYK. False, with context->error set, when libjpeg
// returns no row (it cannot suspend on memory input, so this does not happen).
bool ReadRows(DecodeContext* context, unsigned char* out, size_t stride, unsigned char* cmyk_row) {
  jpeg_decompress_struct* cinfo = &context->cinfo;
  while (cinfo->output_scanline < cinfo->output_height) {
    unsigned char* target = out + static_cast<size_t>(cinfo->output_scanline) * stride;
    JSAMPROW row = cmyk_row != nullptr ? cmyk_row : target;
    if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
      std::snprintf(context->error, sizeof(context->error), "libjpeg returned no row");
      return false;
    }
    if (cmyk_row != nullptr) CmykRowToRgb(cmyk_row, target, cinfo->output_width);
  }
  return true;
}

// The *Guarded functions call into libjpeg, whose error exit (OnError) and progress
// monitor (OnProgress) may longjmp back to their setjmp. They hold no object with a
// non-trivial destructor and change nothing after setjmp that is read after the jump: the
// state is in DecodeContext, in the caller's frame. False after a jump.

// Creates the decompressor on `data` and reads the markers up to the first scan.
bool ReadHeaderGuarded(DecodeContext* context, const unsigned char* data, size_t size) {
  if (setjmp(context->jump) != 0) return false;
  jpeg_create_decompress(&context->cinfo);
  context->cinfo.client_data = context;  // set again: not every libjpeg keeps it on create
  jpeg_mem_src(&context->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&context->cinfo, TRUE);
  return true;
}

// Decodes the image whose header was read, checking that libjpeg's output has the size and
// channels `out` was allocated for.
bool DecodeGuarded(DecodeContext* context, unsigned char* out, size_t stride,
                   unsigned char* cmyk_row) {
  if (setjmp(context->jump) != 0) return false;
  context->cinfo.progress = &context->progress;
  jpeg_start_decompress(&context->cinfo);
  if (context->cinfo.output_width != context->cinfo.image_width ||
      context->cinfo.output_height != context->cinfo.image_height ||
      context->cinfo.output_components != (cmyk_row != nullptr ? 4 : 3)) {
    std::snprintf(context->error, sizeof(context->error), "libjpeg's output is not %ux%u",
                  context->cinfo.image_width, context->cinfo.image_height);
    return false;
  }
  return ReadRows(context, out, stride, cmyk_row);
}

absl::Status HeaderError(const DecodeContext& context) {
  return absl::InvalidArgumentError(
      absl::StrCat("has no readable JPEG header (truncated or corrupt): ", context.error));
}

// One log line for the warnings libjpeg raised on a file, however many there were.
void LogWarnings(const DecodeContext& context, absl::string_view what) {
  if (context.warnings == 0) return;
  std::string message = absl::StrCat(what, ": ", context.first_warning);
  if (context.warnings > 1) absl::StrAppend(&message, " (", context.warnings, " warnings in all)");
  EmitLibraryLog({.severity = TorchLogLine::Severity::kWarning,
                  .kind = "libjpeg",
                  .message = std::move(message),
                  .location = ""});
}

}  // namespace

absl::StatusOr<JpegSize> ReadJpegSize(absl::string_view file) {
  DecodeContext context;
  if (!ReadHeaderGuarded(&context, reinterpret_cast<const unsigned char*>(file.data()),
                         file.size())) {
    return HeaderError(context);
  }
  return JpegSize{.width = context.cinfo.image_width, .height = context.cinfo.image_height};
}

absl::StatusOr<cv::Mat> DecodeJpeg(absl::string_view file, const JpegDecodeOptions& options) {
  DecodeContext context;
  context.limits = options.limits;
  context.doing = absl::StrCat("decoding ", options.what);
  const bool read =
      ReadHeaderGuarded(&context, reinterpret_cast<const unsigned char*>(file.data()), file.size());
  if (!read) return HeaderError(context);  // refused: its warnings are not worth a line
  const int64_t width = context.cinfo.image_width;
  const int64_t height = context.cinfo.image_height;
  if (width * height > options.max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat("is ", width, "x", height,
                                                   ", more than the budget of ", options.max_pixels,
                                                   " pixels per image"));
  }
  // As OpenCV: four components (CMYK, or YCCK that libjpeg turns into CMYK) are read as
  // CMYK and converted here; anything else is asked of libjpeg as RGB (it refuses colour
  // spaces it cannot convert).
  const bool cmyk = context.cinfo.num_components == 4;
  context.cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  cv::Mat rgb;
  std::vector<unsigned char> cmyk_row;
  try {
    rgb.create(static_cast<int>(height), static_cast<int>(width), CV_8UC3);
    if (cmyk) cmyk_row.resize(static_cast<size_t>(width) * 4);
  } catch (const std::exception& error) {  // cv::Exception, std::bad_alloc
    return absl::ResourceExhaustedError(
        absl::StrCat("no memory for a ", width, "x", height, " image: ", error.what()));
  }
  const bool decoded =
      DecodeGuarded(&context, rgb.data, rgb.step[0], cmyk ? cmyk_row.data() : nullptr);
  LogWarnings(context, options.what);
  if (decoded) return rgb;
  if (!context.stop.ok()) return context.stop;
  return absl::InvalidArgumentError(absl::StrCat("cannot be decoded: ", context.error));
}

}  // namespace torchbricks
