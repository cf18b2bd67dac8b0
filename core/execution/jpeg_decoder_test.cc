// Tests of core/execution/jpeg_decoder.h and of the JPEG paths of core/execution/image_io.h:
// libjpeg's size is the size checked (crafted marker streams cannot show another), scans and run
// limits bound decoding, warnings reach the log sink, and ordinary files decode to what OpenCV
// gave. JPEGs are made here with libjpeg's compressor and byte surgery.
#include "core/execution/jpeg_decoder.h"

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/execution/image_io.h"
#include "core/libtorch/torch_log_sink.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jpeglib.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace torchbricks {
namespace {

using ::testing::HasSubstr;

// --- Making JPEG files ---------------------------------------------------------------------

struct EncodeOptions {
  std::optional<J_COLOR_SPACE> jpeg_space;  // default: libjpeg's choice for the input
  bool progressive = false;                 // jpeg_simple_progression
  std::vector<jpeg_scan_info> scans;        // a scan script instead
  bool full_chroma = false;                 // 4:4:4 instead of libjpeg's 4:2:0
};

// `image` (1 channel: grey, 3: RGB, 4: CMYK, 2: unknown) as a JPEG file, quality 90.
std::string EncodeJpeg(const cv::Mat& image, const EncodeOptions& options = {}) {
  static const J_COLOR_SPACE kSpaces[] = {JCS_UNKNOWN, JCS_GRAYSCALE, JCS_UNKNOWN, JCS_RGB,
                                          JCS_CMYK};
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr errors{};
  cinfo.err = jpeg_std_error(&errors);  // exits the test on an error
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = image.cols;
  cinfo.image_height = image.rows;
  cinfo.input_components = image.channels();
  cinfo.in_color_space = kSpaces[image.channels()];
  jpeg_set_defaults(&cinfo);
  if (options.jpeg_space.has_value()) jpeg_set_colorspace(&cinfo, *options.jpeg_space);
  jpeg_set_quality(&cinfo, 90, TRUE);
  if (options.full_chroma) {
    for (int c = 0; c < cinfo.num_components; ++c) {
      cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
    }
  }
  if (options.progressive) jpeg_simple_progression(&cinfo);
  if (!options.scans.empty()) {
    cinfo.scan_info = options.scans.data();
    cinfo.num_scans = static_cast<int>(options.scans.size());
  }
  jpeg_start_compress(&cinfo, TRUE);
  for (int r = 0; r < image.rows; ++r) {
    JSAMPROW row = const_cast<unsigned char*>(image.ptr<unsigned char>(r));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::string file(reinterpret_cast<const char*>(buffer), size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return file;
}

cv::Mat Pattern(int rows, int cols, int channels) {
  cv::Mat image(rows, cols, CV_8UC(channels));
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      for (int k = 0; k < channels; ++k) {
        image.ptr<unsigned char>(r)[c * channels + k] =
            static_cast<unsigned char>((c * 255 / cols + r * 7 * (k + 1) + (r * c) % 13) & 0xff);
      }
    }
  }
  return image;
}

// A greyscale scan script of 2 + 63 + `refined` scans: DC in two steps, then each AC
// coefficient in one scan, or in two (successive approximation) for the first `refined`.
std::vector<jpeg_scan_info> GreyScanScript(int refined) {
  std::vector<jpeg_scan_info> scans = {{1, {0}, 0, 0, 0, 1}, {1, {0}, 0, 0, 1, 0}};
  for (int k = 1; k < 64; ++k) {
    if (k <= refined) {
      scans.push_back({1, {0}, k, k, 0, 1});
      scans.push_back({1, {0}, k, k, 1, 0});
    } else {
      scans.push_back({1, {0}, k, k, 0, 0});
    }
  }
  return scans;
}

// What the server gave before it decoded JPEGs itself.
cv::Mat OpenCvRgb(const std::string& file) {
  const cv::Mat bgr =
      cv::imdecode(std::vector<unsigned char>(file.begin(), file.end()), cv::IMREAD_COLOR);
  cv::Mat rgb;
  if (!bgr.empty()) cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

bool SamePixels(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

// --- Byte surgery ----------------------------------------------------------------------------

int Byte(const std::string& file, size_t offset) {
  return static_cast<unsigned char>(file[offset]);
}

int Length16(const std::string& file, size_t offset) {
  return Byte(file, offset) << 8 | Byte(file, offset + 1);
}

std::string Bytes(std::initializer_list<int> values) {
  std::string bytes;
  for (int value : values) bytes.push_back(static_cast<char>(value));
  return bytes;
}

// A greyscale baseline frame header (SOF0) declaring width x height.
std::string FrameHeader(int width, int height) {
  return Bytes({0xff, 0xc0, 0x00, 0x0b, 0x08, height >> 8, height & 0xff, width >> 8, width & 0xff,
                0x01, 0x01, 0x11, 0x00});
}

// A comment segment (COM) holding `payload`.
std::string Comment(const std::string& payload) {
  const int length = static_cast<int>(payload.size()) + 2;
  return Bytes({0xff, 0xfe, length >> 8, length & 0xff}) + payload;
}

// The frame size found by a reader that takes a two-byte length after every marker, as
// core/execution/image_io.cc's own reader did: what the decoys below are made to fool.
std::optional<std::pair<int, int>> NaiveFrameSize(const std::string& file) {
  size_t offset = 2;
  while (offset + 9 <= file.size() && Byte(file, offset) == 0xff) {
    const int marker = Byte(file, offset + 1);
    if (marker >= 0xc0 && marker <= 0xc2) {
      return std::make_pair(Length16(file, offset + 7), Length16(file, offset + 5));
    }
    offset += 2 + Length16(file, offset + 2);
  }
  return std::nullopt;
}

// `jpeg` (libjpeg's output: SOI, then the JFIF APP0 segment) with a TEM marker after SOI.
// libjpeg knows TEM has no length and reads on silently; a naive reader takes the APP0
// marker's bytes (FF E0) as TEM's length and jumps about 64 KB, where a comment segment
// that libjpeg skips holds a decoy frame header of decoy_width x decoy_height.
std::string SilentDecoy(const std::string& jpeg, int decoy_width, int decoy_height) {
  const size_t app0_end = 4 + Length16(jpeg, 4);
  std::string out = jpeg.substr(0, 2) + Bytes({0xff, 0x01}) + jpeg.substr(2, app0_end - 2);
  const size_t landing = 2 + 2 + Length16(out, 4);  // where the naive reader goes next
  const size_t payload_start = out.size() + 4;
  out +=
      Comment(std::string(landing - payload_start, '\0') + FrameHeader(decoy_width, decoy_height));
  return out + jpeg.substr(app0_end);
}

// A small decoy: RST0 (no length for libjpeg) followed by two bytes that a naive reader
// takes as its length, landing on a decoy frame header inside a comment. libjpeg skips the
// two bytes with a warning ("extraneous bytes before marker").
std::string SmallDecoy(const std::string& jpeg, int decoy_width, int decoy_height) {
  // SOI, RST0, 00 0E: the naive reader jumps to offset 2 + 2 + 14 = 18, the comment's
  // payload starts at offset 6 + 4 = 10.
  return jpeg.substr(0, 2) + Bytes({0xff, 0xd0, 0x00, 0x0e}) +
         Comment(std::string(8, '\0') + FrameHeader(decoy_width, decoy_height)) + jpeg.substr(2);
}

// The segments of a JPEG file after SOI, each with its marker; a scan (SOS) with its
// entropy-coded data.
std::vector<std::string> Segments(const std::string& jpeg) {
  std::vector<std::string> segments;
  size_t offset = 2;
  while (offset + 2 <= jpeg.size()) {
    const int marker = Byte(jpeg, offset + 1);
    if (marker == 0xd9) {
      segments.push_back(jpeg.substr(offset, 2));
      break;
    }
    size_t end = offset + 2 + Length16(jpeg, offset + 2);
    if (marker == 0xda) {  // data up to the next marker that is not a stuffed byte or RSTn
      while (end + 1 < jpeg.size() &&
             !(Byte(jpeg, end) == 0xff && Byte(jpeg, end + 1) != 0 &&
               (Byte(jpeg, end + 1) < 0xd0 || Byte(jpeg, end + 1) > 0xd7))) {
        ++end;
      }
    }
    segments.push_back(jpeg.substr(offset, end - offset));
    offset = end;
  }
  return segments;
}

// `jpeg` with its last scan repeated `copies` more times.
std::string RepeatLastScan(const std::string& jpeg, int copies) {
  const std::vector<std::string> segments = Segments(jpeg);
  std::string out = jpeg.substr(0, 2);
  for (size_t i = 0; i + 1 < segments.size(); ++i) out += segments[i];
  for (int i = 0; i < copies; ++i) out += segments[segments.size() - 2];
  return out + segments.back();
}

// --- Tests -----------------------------------------------------------------------------------

TEST(JpegDecoderTest, OrdinaryFilesDecodeToWhatOpenCvGave) {
  const cv::Mat rgb = Pattern(37, 53, 3);
  const cv::Mat grey = Pattern(29, 41, 1);
  const std::vector<std::pair<std::string, std::string>> files = {
      {"baseline 4:2:0", EncodeJpeg(rgb)},
      {"baseline 4:4:4", EncodeJpeg(rgb, {.full_chroma = true})},
      {"progressive", EncodeJpeg(rgb, {.progressive = true})},
      {"greyscale", EncodeJpeg(grey)},
      {"greyscale progressive", EncodeJpeg(grey, {.progressive = true})},
      {"RGB (no YCbCr)", EncodeJpeg(rgb, {.jpeg_space = JCS_RGB})},
      {"CMYK (Adobe)", EncodeJpeg(Pattern(19, 23, 4))},
      {"YCCK (Adobe)", EncodeJpeg(Pattern(19, 23, 4), {.jpeg_space = JCS_YCCK})},
  };
  for (const auto& [name, file] : files) {
    SCOPED_TRACE(name);
    const cv::Mat expected = OpenCvRgb(file);
    ASSERT_FALSE(expected.empty());
    absl::StatusOr<cv::Mat> decoded = DecodeJpeg(file);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(SamePixels(*decoded, expected));
    absl::StatusOr<JpegSize> size = ReadJpegSize(file);
    ASSERT_TRUE(size.ok()) << size.status();
    EXPECT_EQ(size->width, expected.cols);
    EXPECT_EQ(size->height, expected.rows);
  }
}

TEST(JpegDecoderTest, DecodeImagesGivesOpenCvsPixelsForJpegAndPng) {
  const ValueSpec spec{
      .name = "image", .data_type = package::TYPE_STRING, .dims = {-1}, .encoded_image = true};
  const cv::Mat rgb = Pattern(24, 32, 3);
  std::vector<unsigned char> png;
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  ASSERT_TRUE(cv::imencode(".png", bgr, png));
  const std::vector<std::string> files = {EncodeJpeg(rgb), EncodeJpeg(rgb, {.progressive = true}),
                                          std::string(png.begin(), png.end()),
                                          EncodeJpeg(Pattern(24, 32, 1))};
  absl::StatusOr<at::Tensor> batch = DecodeImages(spec, PackBytes(files));
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->sizes(), (std::vector<int64_t>{4, 3, 24, 32}));
  for (size_t i = 0; i < files.size(); ++i) {
    SCOPED_TRACE(i);
    const at::Tensor hwc = (*batch)[i].permute({1, 2, 0}).contiguous();
    const cv::Mat decoded(24, 32, CV_8UC3, hwc.data_ptr<uint8_t>());
    EXPECT_TRUE(SamePixels(decoded, OpenCvRgb(files[i])));
  }
}

TEST(JpegDecoderTest, DecoyFrameHeadersCannotHideTheSizeLibjpegDecodes) {
  const std::string real = EncodeJpeg(cv::Mat(2000, 3000, CV_8UC1, cv::Scalar(90)));
  const std::vector<std::pair<std::string, std::string>> decoys = {
      {"TEM, silent", SilentDecoy(real, 8, 8)}, {"RST0, small", SmallDecoy(real, 8, 8)}};
  for (const auto& [name, decoy] : decoys) {
    SCOPED_TRACE(name);
    // The crafted stream shows a naive reader the 8 x 8 decoy ...
    ASSERT_EQ(NaiveFrameSize(decoy), std::make_pair(8, 8));
    // ... but the size checked is the size libjpeg decodes.
    absl::StatusOr<JpegSize> size = ReadJpegSize(decoy);
    ASSERT_TRUE(size.ok()) << size.status();
    EXPECT_EQ(size->width, 3000);
    EXPECT_EQ(size->height, 2000);
    absl::StatusOr<cv::Mat> decoded = DecodeJpeg(decoy);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->cols, 3000);
    EXPECT_EQ(decoded->rows, 2000);
    EXPECT_EQ(CheckImageFile("image", 0, decoy).value_or(0), 3000 * 2000);
    absl::StatusOr<int64_t> refused = CheckImageFile("image", 1, decoy, 1'000'000);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr("input 'image' element 1"));
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr("3000x2000"));
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr("budget of 1000000 pixels"));
    // The decoder refuses it too when asked with the budget.
    EXPECT_EQ(DecodeJpeg(decoy, {.max_pixels = 1'000'000}).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  // The case: a 20000 x 10000 image behind an 8 x 8 decoy is refused by its side.
  std::string huge = SilentDecoy(EncodeJpeg(cv::Mat(16, 16, CV_8UC1)), 8, 8);
  // Patch the real frame header (SOF0, after the comment) to 20000 x 10000.
  const size_t comment = huge.find(Bytes({0xff, 0xfe}));
  const size_t sof = huge.find(Bytes({0xff, 0xc0}), comment + 2 + Length16(huge, comment + 2));
  ASSERT_NE(sof, std::string::npos);
  huge[sof + 5] = static_cast<char>(10000 >> 8);
  huge[sof + 6] = static_cast<char>(10000 & 0xff);
  huge[sof + 7] = static_cast<char>(20000 >> 8);
  huge[sof + 8] = static_cast<char>(20000 & 0xff);
  EXPECT_EQ(NaiveFrameSize(huge), std::make_pair(8, 8));
  absl::StatusOr<int64_t> refused = CheckImageFile("image", 0, huge);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("20000x10000"));
}

TEST(JpegDecoderTest, FilesOfMoreThanTheScanLimitAreRefused) {
  const cv::Mat grey = Pattern(64, 64, 1);
  // 100 scans: a valid progression at the limit decodes, as OpenCV decodes it.
  const std::string at_limit = EncodeJpeg(grey, {.scans = GreyScanScript(35)});
  absl::StatusOr<cv::Mat> decoded = DecodeJpeg(at_limit);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(SamePixels(*decoded, OpenCvRgb(at_limit)));
  // 101 scans of a valid progression, and 2 + 300 scans repeating one full AC scan (which
  // libjpeg decodes without a warning, each a pass over the image): refused.
  const std::string over = EncodeJpeg(grey, {.scans = GreyScanScript(36)});
  const std::string repeated = RepeatLastScan(
      EncodeJpeg(grey, {.scans = {{1, {0}, 0, 0, 0, 0}, {1, {0}, 1, 63, 0, 0}}}), 300);
  for (const std::string& file : {over, repeated}) {
    absl::StatusOr<cv::Mat> refused = DecodeJpeg(file, {.what = "input 'image' element 2"});
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr("more than 100 scans"));
  }
  const ValueSpec spec{
      .name = "image", .data_type = package::TYPE_STRING, .dims = {-1}, .encoded_image = true};
  absl::StatusOr<at::Tensor> batch =
      DecodeImages(spec, PackBytes(std::vector<std::string>{at_limit, repeated}));
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(batch.status().message()), HasSubstr("input 'image' element 1"));
  EXPECT_THAT(std::string(batch.status().message()), HasSubstr("more than 100 scans"));
}

TEST(JpegDecoderTest, LargeImagesGetFewerScans) {
  // 65 scans are fine at 64 x 64 but too much work at 4096 x 4096 (65 x 16.8 Mpx is past
  // kMaxJpegScanPixels), whatever deadline the client set.
  const std::string small = EncodeJpeg(Pattern(64, 64, 1), {.scans = GreyScanScript(0)});
  EXPECT_TRUE(DecodeJpeg(small).ok());
  const std::string large = EncodeJpeg(Pattern(4096, 4096, 1), {.scans = GreyScanScript(0)});
  absl::StatusOr<cv::Mat> refused = DecodeJpeg(large);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("scan-pixels"));
}

TEST(JpegDecoderTest, RunLimitsStopDecoding) {
  const std::string file = EncodeJpeg(Pattern(512, 512, 3), {.progressive = true});
  // A deadline already passed: DeadlineExceeded, naming what was being decoded.
  const RunLimits late{.deadline = absl::Now() - absl::Seconds(1)};
  absl::StatusOr<cv::Mat> decoded =
      DecodeJpeg(file, {.limits = &late, .what = "input 'image' element 0"});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(decoded.status().message()),
              HasSubstr("while decoding input 'image' element 0"));
  // Cancelled during the decode: it stops at the next check, not at the end.
  int checks = 0;
  const RunLimits cancelled{.cancelled = [&checks] { return ++checks >= 3; }};
  decoded = DecodeJpeg(file, {.limits = &cancelled});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(checks, 3);
  // Limits that never stop it: checked on every row of work, and the image decodes.
  checks = 0;
  const RunLimits patient{.cancelled = [&checks] { return ++checks < 0; }};
  decoded = DecodeJpeg(file, {.limits = &patient});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_GE(checks, 512 / 16);
  // Through DecodeImages.
  const ValueSpec spec{
      .name = "image", .data_type = package::TYPE_STRING, .dims = {-1}, .encoded_image = true};
  absl::StatusOr<at::Tensor> batch =
      DecodeImages(spec, PackBytes(std::vector<std::string>{file, file}), 0, late);
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(JpegDecoderTest, CorruptAndUnsupportedFilesAreInvalidArgument) {
  const std::string good = EncodeJpeg(Pattern(16, 16, 3));
  // A scan naming a component the frame does not have: refused with the header.
  std::string wrong_component = good;
  wrong_component[wrong_component.find(Bytes({0xff, 0xda})) + 5] = 9;
  for (const std::string& file :
       {good.substr(0, 40), std::string("\xff\xd8\xff\xe0", 4), wrong_component}) {
    EXPECT_EQ(ReadJpegSize(file).status().code(), absl::StatusCode::kInvalidArgument);
    absl::StatusOr<cv::Mat> decoded = DecodeJpeg(file);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("has no readable JPEG header"));
  }
  EXPECT_THAT(std::string(DecodeJpeg(wrong_component).status().message()),
              HasSubstr("Invalid component ID 9 in SOS"));
  // A later scan of a progressive file with impossible parameters (Se = 64): the header
  // reads, decoding fails; libjpeg's error exit returns here instead of ending the process.
  std::string bad_scan = EncodeJpeg(Pattern(16, 16, 1), {.progressive = true});
  const size_t second_scan =
      bad_scan.find(Bytes({0xff, 0xda}), bad_scan.find(Bytes({0xff, 0xda})) + 2);
  bad_scan[second_scan + 2 + 2 + 1 + 2 * 1 + 1] = 64;  // length, Ns, one component, Ss, Se
  ASSERT_TRUE(ReadJpegSize(bad_scan).ok());
  absl::StatusOr<cv::Mat> failed = DecodeJpeg(bad_scan);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(failed.status().message()),
              HasSubstr("cannot be decoded: Invalid progressive parameters"));
  // Two components of no known colour space: libjpeg has no RGB for them.
  absl::StatusOr<cv::Mat> two = DecodeJpeg(EncodeJpeg(Pattern(8, 8, 2)));
  EXPECT_EQ(two.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(two.status().message()), HasSubstr("color conversion"));
}

// Collects what reaches the log sink.
class LogCapture {
 public:
  LogCapture() {
    SetTorchLogSink([this](const TorchLogLine& line) {
      absl::MutexLock lock(&mu_);
      lines_.push_back(line);
    });
  }
  ~LogCapture() { SetTorchLogSink(nullptr); }
  std::vector<TorchLogLine> Lines() {
    absl::MutexLock lock(&mu_);
    return lines_;
  }

 private:
  absl::Mutex mu_;
  std::vector<TorchLogLine> lines_ ABSL_GUARDED_BY(mu_);
};

TEST(JpegDecoderTest, WarningsGoToTheLogSinkOneLinePerFile) {
  LogCapture capture;
  const std::string good = EncodeJpeg(Pattern(64, 64, 1));
  // Entropy-coded data cut short: decodable, with a warning.
  const std::string cut = good.substr(0, good.size() - 200) + Bytes({0xff, 0xd9});
  ASSERT_TRUE(DecodeJpeg(cut, {.what = "input 'image' element 4"}).ok());
  // A hostile progression: one scan repeated, refining coefficients already final, warns
  // 63 times per copy.
  const std::string noisy =
      RepeatLastScan(EncodeJpeg(Pattern(64, 64, 1), {.progressive = true}), 50);
  ASSERT_TRUE(DecodeJpeg(noisy, {.what = "input 'image' element 5"}).ok());
  ASSERT_TRUE(DecodeJpeg(good).ok());  // no warning, no line
  const std::vector<TorchLogLine> lines = capture.Lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].kind, "libjpeg");
  EXPECT_EQ(lines[0].severity, TorchLogLine::Severity::kWarning);
  EXPECT_THAT(lines[0].message, HasSubstr("input 'image' element 4: Corrupt JPEG data"));
  EXPECT_EQ(lines[1].kind, "libjpeg");
  EXPECT_THAT(lines[1].message, HasSubstr("input 'image' element 5"));
  EXPECT_THAT(lines[1].message, HasSubstr("Inconsistent progression sequence"));
  EXPECT_THAT(lines[1].message, HasSubstr("warnings in all"));
}

}  // namespace
}  // namespace torchbricks
