// PNG decoding and encoding with libpng: the pixels OpenCV's imgcodecs gave for every PNG
// colour type and depth, refusals for what is not a decodable PNG, and round trips.
#include "core/execution/png_codec.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace torchbricks {
namespace {

cv::Mat Pattern(int rows, int cols, int type) {
  cv::Mat image(rows, cols, type);
  cv::randu(image, cv::Scalar::all(0), cv::Scalar::all(CV_MAT_DEPTH(type) == CV_16U ? 65535 : 255));
  return image;
}

std::string Encode(const cv::Mat& image, std::vector<int> parameters = {}) {
  std::vector<unsigned char> bytes;
  EXPECT_TRUE(cv::imencode(".png", image, bytes, parameters));
  return std::string(bytes.begin(), bytes.end());
}

// What the server gave before it decoded PNGs itself.
cv::Mat OpenCvRgb(const std::string& file) {
  const cv::Mat bgr =
      cv::imdecode(std::vector<unsigned char>(file.begin(), file.end()), cv::IMREAD_COLOR);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

bool SamePixels(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

TEST(PngCodecTest, DecodesEveryKindOfPngToWhatOpenCvGave) {
  // Grey, grey + alpha is not written by OpenCV; RGB, RGBA, 16-bit grey and colour, 1-bit grey.
  const std::vector<std::string> files = {
      Encode(Pattern(17, 23, CV_8UC1)),
      Encode(Pattern(17, 23, CV_8UC3)),
      Encode(Pattern(17, 23, CV_8UC4)),
      Encode(Pattern(9, 31, CV_16UC1)),
      Encode(Pattern(9, 31, CV_16UC3)),
      Encode(Pattern(9, 31, CV_16UC4)),
      Encode(Pattern(40, 40, CV_8UC1) > 128, {cv::IMWRITE_PNG_BILEVEL, 1}),
  };
  for (size_t i = 0; i < files.size(); ++i) {
    absl::StatusOr<cv::Mat> decoded = DecodePngRgb(files[i], 1 << 20);
    ASSERT_TRUE(decoded.ok()) << i << ": " << decoded.status();
    EXPECT_EQ(decoded->type(), CV_8UC3);
    EXPECT_TRUE(SamePixels(*decoded, OpenCvRgb(files[i]))) << "file " << i;
  }
}

TEST(PngCodecTest, RefusesWhatIsNotADecodablePngAndImagesOverTheBudget) {
  const std::string file = Encode(Pattern(64, 64, CV_8UC3));
  for (const std::string& bad :
       {std::string("not a png"), file.substr(0, 40), file.substr(0, file.size() / 2)}) {
    EXPECT_EQ(DecodePngRgb(bad, 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
  }
  std::string flipped = file;
  flipped[file.size() / 2] ^= 0x5a;  // CRC or zlib data broken
  EXPECT_EQ(DecodePngRgb(flipped, 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
  const absl::Status over = DecodePngRgb(file, 64 * 64 - 1).status();
  EXPECT_EQ(over.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(over.message().find("64x64"), std::string::npos) << over;
}

TEST(PngCodecTest, EncodedFilesDecodeToTheSamePixelsEverywhere) {
  const cv::Mat rgb = Pattern(31, 45, CV_8UC3);
  for (int level : {0, 1, 9}) {
    absl::StatusOr<std::string> png = EncodePngRgb(rgb, level);
    ASSERT_TRUE(png.ok()) << png.status();
    absl::StatusOr<cv::Mat> back = DecodePngRgb(*png, 1 << 20);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(SamePixels(*back, rgb));
    EXPECT_TRUE(SamePixels(OpenCvRgb(*png), rgb));  // and for any other reader
  }
  EXPECT_EQ(EncodePngRgb(cv::Mat(4, 4, CV_8UC1), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace torchbricks
