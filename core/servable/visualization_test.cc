// Visualization bricks and encoded image inputs, through exported packages: every renderer's
// PNG is decoded and inspected, stages and pruning, unpacking errors, JPEG/PNG decoding, and
// the host-bytes face (ServableModel) with batching.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/execution/image_io.h"
#include "core/execution/loaded_collection.h"
#include "core/graph/bytes_elements.h"
#include "core/servable/servable_model.h"
#include "core/testing/loaded_fixtures.h"
#include "core/testing/package_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace torchbricks {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::torchbricks::testing::BrickNamesOf;
using ::torchbricks::testing::FixturePackage;
using ::torchbricks::testing::LoadFixture;

// The inputs of renderer_gallery (see tests/python/readme_models.py): a grey image, with
// predictions placed in the top-left corner; image b has grey level 0.3 + 0.2 b.
NamedTensors GalleryInputs(int64_t batch, int64_t height = 120, int64_t width = 160) {
  at::Tensor image = at::empty({batch, 3, height, width});
  for (int64_t b = 0; b < batch; ++b) image[b].fill_(0.3 + 0.2 * b);
  at::Tensor mask = at::zeros({batch, height / 2, width / 2}, at::kLong);
  mask.narrow(1, 0, height / 4).narrow(2, 0, width / 4).fill_(1);
  at::Tensor heat = at::zeros({batch, height / 4, width / 4});
  heat.narrow(1, 0, 4).narrow(2, 0, 4).fill_(1.0);
  at::Tensor scores = at::tensor({0.1f, 0.7f, 0.2f}).repeat({batch, 1});
  at::Tensor boxes = at::tensor({4.0f, 4.0f, 40.0f, 30.0f, 0.0f, 0.0f, 0.0f, 0.0f})
                         .view({1, 2, 4})
                         .repeat({batch, 1, 1});
  at::Tensor keypoints =
      at::tensor({10.0f, 10.0f, 1.0f, 20.0f, 12.0f, 1.0f, 30.0f, 16.0f, 1.0f, 36.0f, 24.0f, 1.0f})
          .view({1, 4, 3})
          .repeat({batch, 1, 1});
  return {{"image", image},
          {"class_scores", scores},
          {"mask", mask},
          {"boxes", boxes},
          {"box_scores", at::tensor({0.9f, 0.0f}).repeat({batch, 1})},
          {"box_labels", at::tensor({int64_t{1}, int64_t{-1}}).repeat({batch, 1})},
          {"keypoints", keypoints},
          {"heat", heat}};
}

// The PNGs of a BYTES rows tensor, decoded to RGB.
std::vector<cv::Mat> DecodePngs(const at::Tensor& rows) {
  std::vector<cv::Mat> images;
  auto elements = UnpackBytes(rows, "output");
  EXPECT_TRUE(elements.ok()) << elements.status();
  if (!elements.ok()) return images;
  for (const std::string& png : *elements) {
    EXPECT_TRUE(png.rfind("\x89PNG", 0) == 0) << "not a PNG file";
    cv::Mat bgr = cv::imdecode(std::vector<uchar>(png.begin(), png.end()), cv::IMREAD_COLOR);
    EXPECT_FALSE(bgr.empty());
    cv::Mat rgb;
    if (!bgr.empty()) cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    images.push_back(rgb);
  }
  return images;
}

cv::Vec3b Pixel(const cv::Mat& image, double x_fraction, double y_fraction) {
  return image.at<cv::Vec3b>(static_cast<int>(y_fraction * (image.rows - 1)),
                             static_cast<int>(x_fraction * (image.cols - 1)));
}

// True when some pixel of the square of `radius` around (x, y) differs from `grey`.
bool ChangedNear(const cv::Mat& image, int x, int y, int radius, int grey) {
  for (int r = std::max(0, y - radius); r <= std::min(image.rows - 1, y + radius); ++r) {
    for (int c = std::max(0, x - radius); c <= std::min(image.cols - 1, x + radius); ++c) {
      const cv::Vec3b p = image.at<cv::Vec3b>(r, c);
      if (std::abs(p[0] - grey) > 8 || std::abs(p[1] - grey) > 8 || std::abs(p[2] - grey) > 8) {
        return true;
      }
    }
  }
  return false;
}

bool IsGrey(const cv::Vec3b& pixel, int grey) {
  return std::abs(pixel[0] - grey) <= 2 && std::abs(pixel[1] - grey) <= 2 &&
         std::abs(pixel[2] - grey) <= 2;
}

class GalleryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    collection_ = LoadFixture("renderer_gallery");
    ASSERT_NE(collection_, nullptr);
  }

  // Runs INFERENCE on a one-image batch (grey level 0.3 -> 77) and decodes `output`.
  cv::Mat Draw(const std::string& output) {
    auto out = collection_->Run(Stage::kInference, GalleryInputs(1), {output});
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return cv::Mat();
    std::vector<cv::Mat> images = DecodePngs(out->at(output));
    EXPECT_EQ(images.size(), 1u);
    return images.empty() ? cv::Mat() : images[0];
  }

  static constexpr int kGrey = 77;  // round(0.3 * 255)
  // A 120x160 image is enlarged to a shorter side of 256 before drawing.
  static constexpr double kScale = 256.0 / 120.0;
  std::unique_ptr<LoadedCollection> collection_;
};

TEST_F(GalleryTest, SmallImagesAreEnlargedSoLabelsStayReadable) {
  cv::Mat image = Draw("draw/classification");
  EXPECT_EQ(image.rows, 256);
  EXPECT_EQ(image.cols, 341);  // 160 * 256 / 120, rounded
}

TEST_F(GalleryTest, LargeImagesKeepTheirSize) {
  auto out = collection_->Run(Stage::kInference, GalleryInputs(1, 300, 400), {"draw/detection"});
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<cv::Mat> images = DecodePngs(out->at("draw/detection"));
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].rows, 300);
  EXPECT_EQ(images[0].cols, 400);
}

TEST_F(GalleryTest, ClassificationDrawsTheLabelTopLeftOnly) {
  cv::Mat image = Draw("draw/classification");
  ASSERT_FALSE(image.empty());
  EXPECT_TRUE(ChangedNear(image, 20, 12, 12, kGrey));
  EXPECT_TRUE(IsGrey(Pixel(image, 0.95, 0.95), kGrey));
  EXPECT_TRUE(IsGrey(Pixel(image, 0.5, 0.8), kGrey));
}

TEST_F(GalleryTest, DetectionDrawsTheBoxAndSkipsPaddingRows) {
  cv::Mat image = Draw("draw/detection");
  ASSERT_FALSE(image.empty());
  // The right edge of the box (x = 40 model pixels), halfway down it.
  EXPECT_TRUE(
      ChangedNear(image, static_cast<int>(40 * kScale), static_cast<int>(17 * kScale), 3, kGrey));
  // Inside the box, away from edges and label, and far away: untouched.
  EXPECT_TRUE(IsGrey(
      image.at<cv::Vec3b>(static_cast<int>(24 * kScale), static_cast<int>(22 * kScale)), kGrey));
  EXPECT_TRUE(IsGrey(Pixel(image, 0.9, 0.9), kGrey));
  // The padding row (label -1, box at the origin) draws nothing there.
  EXPECT_TRUE(IsGrey(image.at<cv::Vec3b>(image.rows - 1, 0), kGrey));
}

TEST_F(GalleryTest, SegmentationTintsTheMaskedQuarterOnly) {
  cv::Mat image = Draw("draw/segmentation");
  ASSERT_FALSE(image.empty());
  // Class 1 covers the top-left quarter; the legend sits in the corner, so look lower.
  EXPECT_FALSE(IsGrey(Pixel(image, 0.4, 0.4), kGrey));
  EXPECT_TRUE(IsGrey(Pixel(image, 0.75, 0.75), kGrey));
  EXPECT_TRUE(IsGrey(Pixel(image, 0.75, 0.25), kGrey));
}

TEST_F(GalleryTest, KeypointsAreDrawnWhereTheyAre) {
  cv::Mat image = Draw("draw/keypoints");
  ASSERT_FALSE(image.empty());
  EXPECT_TRUE(
      ChangedNear(image, static_cast<int>(10 * kScale), static_cast<int>(10 * kScale), 1, kGrey));
  EXPECT_TRUE(
      ChangedNear(image, static_cast<int>(36 * kScale), static_cast<int>(24 * kScale), 1, kGrey));
  EXPECT_TRUE(IsGrey(Pixel(image, 0.9, 0.9), kGrey));
}

TEST_F(GalleryTest, HeatmapIsHotWhereTheHeatIs) {
  cv::Mat image = Draw("draw/heatmap");
  ASSERT_FALSE(image.empty());
  const cv::Vec3b hot = image.at<cv::Vec3b>(4, 4);
  const cv::Vec3b cold = Pixel(image, 0.9, 0.9);
  EXPECT_GT(hot[0], hot[2]);    // red over blue
  EXPECT_GT(cold[2], cold[0]);  // blue over red
}

TEST_F(GalleryTest, TorchScriptRendererDrawsTheTopScoreBar) {
  cv::Mat image = Draw("draw/custom");
  ASSERT_FALSE(image.empty());
  // The module draws at the image's own size: a white bar 0.7 of the width, 4 rows high.
  EXPECT_EQ(image.rows, 120);
  EXPECT_EQ(image.cols, 160);
  EXPECT_EQ(image.at<cv::Vec3b>(1, 100), cv::Vec3b(255, 255, 255));
  EXPECT_TRUE(IsGrey(image.at<cv::Vec3b>(1, 120), kGrey));
  EXPECT_TRUE(IsGrey(image.at<cv::Vec3b>(10, 100), kGrey));
}

TEST_F(GalleryTest, BatchOfThreeGivesThreeDistinctImagesPerRenderer) {
  const std::vector<std::string> outputs = {"draw/classification", "draw/segmentation",
                                            "draw/detection",      "draw/keypoints",
                                            "draw/heatmap",        "draw/custom"};
  auto out = collection_->Run(Stage::kInference, GalleryInputs(3), outputs);
  ASSERT_TRUE(out.ok()) << out.status();
  for (const std::string& name : outputs) {
    auto pngs = UnpackBytes(out->at(name), name);
    ASSERT_TRUE(pngs.ok());
    ASSERT_EQ(pngs->size(), 3u) << name;
    EXPECT_EQ(std::set<std::string>(pngs->begin(), pngs->end()).size(), 3u) << name;
    // Image b keeps its own grey level far from the drawing.
    std::vector<cv::Mat> images = DecodePngs(out->at(name));
    if (name == "draw/heatmap") continue;  // blended everywhere
    for (int b = 0; b < 3; ++b) {
      EXPECT_TRUE(
          IsGrey(Pixel(images[b], 0.9, 0.9), static_cast<int>(std::lround((0.3 + 0.2 * b) * 255))))
          << name << " image " << b;
    }
  }
}

TEST_F(GalleryTest, EnlargingStopsAtTheMaximumCanvasSide) {
  NamedTensors inputs = GalleryInputs(1);
  inputs["image"] = at::full({1, 3, 4, 2000}, 0.3);
  auto out = collection_->Run(Stage::kInference, inputs, {"draw/classification"});
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<cv::Mat> images = DecodePngs(out->at("draw/classification"));
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].cols, 4096);  // 2000 * min(256 / 4, 4096 / 2000)
  EXPECT_EQ(images[0].rows, 8);
}

TEST_F(GalleryTest, EmptyImagesAreRefused) {
  NamedTensors inputs = GalleryInputs(1);
  inputs["image"] = at::zeros({1, 3, 0, 10});
  auto out = collection_->Run(Stage::kInference, inputs, {"draw/classification"});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("must not be empty"));
}

TEST_F(GalleryTest, VisualizationsAreDeadInExport) {
  auto out = collection_->Run(Stage::kExport, {{"image", GalleryInputs(2).at("image")}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->size(), 1u);
  EXPECT_TRUE(out->count("brightness"));
  auto refused = collection_->Run(Stage::kExport, GalleryInputs(2), {"draw/classification"});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("draw/classification"));
}

TEST_F(GalleryTest, AliveInInferenceAndOnlyTheNeededBrickRuns) {
  RunTrace trace;
  auto out = collection_->Run(Stage::kInference, GalleryInputs(2), {"draw/detection"}, &trace);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(BrickNamesOf(*collection_, trace), ElementsAre("draw/detection"));
  EXPECT_TRUE(collection_->graph().IsBytesOutput("draw/detection"));
  EXPECT_FALSE(collection_->graph().IsBytesOutput("brightness"));
}

TEST_F(GalleryTest, BatchSizesThatDisagreeAreRefusedNamingTheInput) {
  NamedTensors inputs = GalleryInputs(3);
  inputs["box_scores"] = inputs["box_scores"].narrow(0, 0, 2);
  auto out = collection_->Run(Stage::kInference, inputs, {"draw/detection"});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("'box_scores' has 2 rows"));
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("draw/detection"));
}

// --- Manifests a visualization brick cannot load from ---------------------------------------

// Loads a package made of `manifest` alone (built-in renderers need no module files).
absl::Status LoadManifest(const std::string& manifest) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      ("visualization_test_" + std::to_string(::getpid()) + "_" +
       ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::create_directories(dir);
  { std::ofstream(dir / "bricks.pbtxt") << manifest; }
  absl::Status status = LoadedCollection::Load({.version_dir = dir}).status();
  std::filesystem::remove_all(dir);
  return status;
}

std::string VisualizationManifest(
    const std::string& brick_body,
    const std::string& input = R"(inputs { name: "image" data_type: TYPE_FP32 })") {
  return input + R"(
inputs { name: "scores" data_type: TYPE_FP32 }
nodes { name: "painter" brick { )" +
         brick_body + " } }\n";
}

TEST(VisualizationManifestTest, ABuiltInRendererLoadsWithoutModuleFile) {
  EXPECT_TRUE(LoadManifest(VisualizationManifest(
                               R"(kind: VISUALIZATION input_names: "image" input_names: "scores"
                     output_names: "drawing" visualizer { renderer: "classification" })"))
                  .ok());
}

TEST(VisualizationManifestTest, BadRendererSettingsAreRefusedNamingTheBrick) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"(kind: VISUALIZATION input_names: "image" output_names: "d" visualizer { renderer: "sketch" })",
       "sketch"},
      {R"(kind: VISUALIZATION input_names: "image" input_names: "scores" output_names: "d"
          visualizer { renderer: "classification" parameters { key: "colour" value: "red" } })",
       "colour"},
      {R"(kind: VISUALIZATION input_names: "image" input_names: "scores" output_names: "d"
          visualizer { renderer: "classification" parameters { key: "min_side" value: "big" } })",
       "min_side"},
      {R"(kind: TRAINABLE input_names: "image" output_names: "d" visualizer { renderer: "heatmap" })",
       "not a VISUALIZATION brick"},
      {R"(kind: VISUALIZATION input_names: "image" input_names: "scores" output_names: "d"
          module_file: "modules/painter.pt" visualizer { renderer: "classification" })",
       "both"},
      {R"(kind: VISUALIZATION input_names: "image" input_names: "scores" output_names: "d"
          output_names: "e" visualizer { renderer: "classification" })",
       "exactly one output"},
      {R"(kind: VISUALIZATION input_names: "stage" output_names: "d" visualizer { renderer: "heatmap" })",
       "first input must be the image"},
      {R"(kind: VISUALIZATION input_names: "image" output_names: "d" visualizer { renderer: "torchscript" })",
       "no module_file"},
  };
  for (const auto& [body, needle] : cases) {
    absl::Status status = LoadManifest(VisualizationManifest(body));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_THAT(std::string(status.message()), HasSubstr("painter")) << body;
    EXPECT_THAT(std::string(status.message()), HasSubstr(needle)) << body;
  }
}

TEST(VisualizationManifestTest, EncodedImageInputsMustBeBytes) {
  const std::string brick =
      R"(kind: VISUALIZATION input_names: "image" output_names: "d" visualizer { renderer: "heatmap" })";
  absl::Status status = LoadManifest(VisualizationManifest(
      brick, R"(inputs { name: "image" data_type: TYPE_FP32 encoded_image { } })"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("TYPE_STRING"));
  status = LoadManifest(VisualizationManifest(
      brick, R"(inputs { name: "image" data_type: TYPE_STRING encoded_image { height: 10 } })"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("only one of height and width"));
}

// --- Encoded image inputs (vision_classifier: 64x64 resize) --------------------------------

std::string Encode(const cv::Mat& rgb, const std::string& extension) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> bytes;
  EXPECT_TRUE(cv::imencode(extension, bgr, bytes));
  return std::string(bytes.begin(), bytes.end());
}

cv::Mat Gradient(int rows, int cols) {
  cv::Mat image(rows, cols, CV_8UC3);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      image.at<cv::Vec3b>(r, c) =
          cv::Vec3b(static_cast<uchar>(c * 255 / cols), static_cast<uchar>(r * 255 / rows), 200);
    }
  }
  return image;
}

TEST(EncodedImageTest, PngDecodesExactlyToRgbChannelsFirst) {
  auto c = LoadFixture("vision_classifier");
  ASSERT_NE(c, nullptr);
  const cv::Mat rgb = Gradient(64, 64);
  const std::vector<std::string> files = {Encode(rgb, ".png")};
  auto out = c->Run(Stage::kInference, {{"image", PackBytes(files)}}, {"processed"});
  ASSERT_TRUE(out.ok()) << out.status();
  const at::Tensor processed = out->at("processed");
  ASSERT_EQ(processed.sizes(), (std::vector<int64_t>{1, 3, 64, 64}));
  // Channel 0 is red: the column gradient.
  EXPECT_NEAR(processed[0][0][5][40].item<float>(), (40 * 255 / 64) / 255.0, 1e-6);
  EXPECT_NEAR(processed[0][1][40][5].item<float>(), (40 * 255 / 64) / 255.0, 1e-6);
  EXPECT_NEAR(processed[0][2][0][0].item<float>(), 200 / 255.0, 1e-6);
}

TEST(EncodedImageTest, JpegsOfOtherSizesAreResizedToTheDeclaredSize) {
  auto c = LoadFixture("vision_classifier");
  ASSERT_NE(c, nullptr);
  const std::vector<std::string> files = {Encode(Gradient(30, 50), ".jpg"),
                                          Encode(Gradient(128, 100), ".jpg")};
  RunTrace trace;
  auto out = c->Run(Stage::kInference, {{"image", PackBytes(files)}}, {"visualization"}, &trace);
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<cv::Mat> images = DecodePngs(out->at("visualization"));
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0].rows, 256);  // 64 x 64, enlarged for the label
  EXPECT_EQ(images[0].cols, 256);
  // Only what the visualization needs ran: not the unrelated brightness brick.
  EXPECT_THAT(BrickNamesOf(*c, trace),
              ElementsAre("preprocessor", "backbone", "head/classify", "visualizer"));
}

TEST(EncodedImageTest, UndecodableElementIsRefusedNamingInputAndIndex) {
  auto c = LoadFixture("vision_classifier");
  ASSERT_NE(c, nullptr);
  std::string truncated = Encode(Gradient(64, 64), ".jpg");
  truncated.resize(40);
  for (const std::string& bad : {std::string("GIF89a not an image"), truncated}) {
    const std::vector<std::string> files = {Encode(Gradient(64, 64), ".png"), bad};
    auto out = c->Run(Stage::kInference, {{"image", PackBytes(files)}}, {"processed"});
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(out.status().message()), HasSubstr("input 'image' element 1"));
  }
}

TEST(EncodedImageTest, ImagesOfDifferentSizesNeedADeclaredResize) {
  ValueSpec spec{
      .name = "photo", .data_type = package::TYPE_STRING, .dims = {-1}, .encoded_image = true};
  const std::vector<std::string> files = {Encode(Gradient(10, 20), ".png"),
                                          Encode(Gradient(20, 10), ".png")};
  auto decoded = DecodeImages(spec, PackBytes(files));
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("element 1 is 10x20"));
  spec.image_height = 16;
  spec.image_width = 8;
  decoded = DecodeImages(spec, PackBytes(files));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->sizes(), (std::vector<int64_t>{2, 3, 16, 8}));
}

// A PNG signature and IHDR chunk announcing `width` x `height`, without image data.
std::string PngHeader(uint32_t width, uint32_t height) {
  std::string png("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
  for (uint32_t value : {width, height}) {
    for (int shift = 24; shift >= 0; shift -= 8) png.push_back(static_cast<char>(value >> shift));
  }
  png.append("\x08\x02\0\0\0", 5);
  return png;
}

TEST(EncodedImageTest, SizesAreReadFromHeadersAndHugeImagesRefusedBeforeDecoding) {
  auto jpeg = CheckImageFile("image", 0, Encode(Gradient(30, 50), ".jpg"));
  ASSERT_TRUE(jpeg.ok()) << jpeg.status();
  EXPECT_EQ(*jpeg, 30 * 50);
  auto png = CheckImageFile("image", 0, Encode(Gradient(7, 9), ".png"));
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_EQ(*png, 7 * 9);
  // A 130 KB PNG can announce 32768 x 32768: refused from its header.
  auto bomb = CheckImageFile("image", 3, PngHeader(32768, 32768));
  EXPECT_EQ(bomb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bomb.status().message()), HasSubstr("input 'image' element 3"));
  EXPECT_THAT(std::string(bomb.status().message()), HasSubstr("32768x32768"));
  EXPECT_FALSE(CheckImageFile("image", 0, PngHeader(10000, 10000)).ok());  // 100 Mpx
  EXPECT_FALSE(CheckImageFile("image", 0, std::string("\xff\xd8\xff\xe0", 4)).ok());
  // Many images together are limited too.
  const std::string big = PngHeader(7000, 7000);  // 49 Mpx: allowed alone
  EXPECT_TRUE(CheckImageFile("image", 0, big).ok());
  const std::vector<absl::string_view> nine(9, big);
  EXPECT_THAT(std::string(CheckImageFiles("image", nine).message()), HasSubstr("per run"));
  // Through the decoder, nothing is allocated for the bomb.
  ValueSpec spec{
      .name = "image", .data_type = package::TYPE_STRING, .dims = {-1}, .encoded_image = true};
  auto decoded = DecodeImages(spec, PackBytes(std::vector<std::string>{PngHeader(40000, 40000)}));
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EncodedImageTest, PixelBudgetFollowsTheDeclaredSize) {
  ValueSpec spec{
      .name = "image", .data_type = package::TYPE_STRING, .dims = {-1}, .encoded_image = true};
  EXPECT_EQ(ImagePixelBudget(spec), kMaxImagePixels);  // no declared size
  spec.image_height = spec.image_width = 224;
  EXPECT_EQ(ImagePixelBudget(spec), kMinImagePixelBudget);  // 16 x 224^2 is below the floor
  spec.image_height = spec.image_width = 1024;
  EXPECT_EQ(ImagePixelBudget(spec), 16 * 1024 * 1024);
  spec.image_height = spec.image_width = 4096;
  EXPECT_EQ(ImagePixelBudget(spec), kMaxImagePixels);  // capped
  spec.image_height = spec.image_width = int64_t{1} << 40;
  EXPECT_EQ(ImagePixelBudget(spec), kMaxImagePixels);  // no overflow
  spec.image_height = spec.image_width = 224;
  EXPECT_EQ(ImagePixelBudget(spec, 1'000'000), 1'000'000);  // configured

  // 7000 x 7000 (49 Mpx) is under the absolute limit but over a 224 x 224 input's budget:
  // refused from the header, naming input, element and budget.
  const std::string huge = PngHeader(7000, 7000);
  EXPECT_TRUE(CheckImageFile("image", 0, huge).ok());
  auto refused = CheckImageFile("image", 2, huge, ImagePixelBudget(spec));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("input 'image' element 2"));
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("budget of 16777216 pixels per image"));
  EXPECT_TRUE(CheckImageFile("image", 0, PngHeader(4096, 4096), ImagePixelBudget(spec)).ok());
  const std::vector<std::string> files = {Encode(Gradient(32, 32), ".png"), huge};
  auto decoded = DecodeImages(spec, PackBytes(files));
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("element 1"));
  EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("budget of 16777216"));
  // A configured budget replaces the rule, both ways.
  decoded = DecodeImages(spec, PackBytes(std::vector<std::string>{files[0]}), 1000);
  EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("budget of 1000 pixels"));
  decoded = DecodeImages(spec, PackBytes(std::vector<std::string>{files[0]}), 1024);
  EXPECT_TRUE(decoded.ok()) << decoded.status();
}

TEST(BytesRowsTest, PaddingMayNotBlowUpMemory) {
  const std::string large(80 << 20, 'x');
  const std::vector<absl::string_view> unequal = {large, "a", "b", "c"};
  absl::Status status = CheckBytesPadding(unequal, "image");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("too unequal"));
  const std::vector<absl::string_view> alone = {large};
  EXPECT_TRUE(CheckBytesPadding(alone, "image").ok());
  const std::vector<absl::string_view> small = {"abc", "", "defgh"};
  EXPECT_TRUE(CheckBytesPadding(small, "image").ok());
}

TEST(BytesRowsTest, PackAndUnpackRoundTrip) {
  const std::vector<std::string> elements = {"", std::string("a\0b", 3), "longer element"};
  at::Tensor rows = PackBytes(elements);
  EXPECT_EQ(rows.sizes(), (std::vector<int64_t>{3, 4 + 14}));
  auto back = UnpackBytes(rows, "x");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, elements);
  // Rows split like any batch.
  auto tail = UnpackBytes(rows.narrow(0, 1, 2), "x");
  ASSERT_TRUE(tail.ok());
  EXPECT_THAT(*tail, ElementsAre(elements[1], elements[2]));
  EXPECT_FALSE(UnpackBytes(at::zeros({2, 3}, at::kByte), "x").ok());
}

// --- The host-bytes face: protocol BYTES in and out, batching ------------------------------

std::string RawBytes(const std::vector<std::string>& elements) {
  std::string raw;
  for (const std::string& element : elements) AppendBytesElement(element, &raw);
  return raw;
}

TEST(ServableVisualizationTest, JpegsInPngsOutAndBatchesSplitPerRequest) {
  auto model = LoadServableModel({.version_dir = FixturePackage("vision_classifier")});
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string one = RawBytes({Encode(Gradient(64, 64), ".jpg")});
  const std::string two =
      RawBytes({Encode(Gradient(40, 80), ".jpg"), Encode(Gradient(64, 32), ".png")});
  const std::vector<std::string> wanted = {"visualization"};
  const std::vector<HostTensorView> first = {{"image", package::TYPE_STRING, {1}, one}};
  const std::vector<HostTensorView> second = {{"image", package::TYPE_STRING, {2}, two}};
  ASSERT_TRUE((*model)->Validate(Stage::kInference, first, wanted).ok());

  auto single = (*model)->Run(Stage::kInference, second, wanted, nullptr);
  ASSERT_TRUE(single.ok()) << single.status();
  ASSERT_EQ(single->size(), 1u);
  EXPECT_EQ((*single)[0].data_type, package::TYPE_STRING);
  EXPECT_EQ((*single)[0].shape, (std::vector<int64_t>{2}));

  const std::vector<BatchItem> items = {{first, wanted}, {second, wanted}};
  auto results = (*model)->RunBatch(Stage::kInference, items, nullptr);
  ASSERT_EQ(results.size(), 2u);
  ASSERT_TRUE(results[0].ok() && results[1].ok());
  EXPECT_EQ((*results[0])[0].shape, (std::vector<int64_t>{1}));
  EXPECT_EQ((*results[1])[0].shape, (std::vector<int64_t>{2}));
  // Each request gets exactly the PNGs it would get alone.
  EXPECT_EQ((*results[1])[0].data, (*single)[0].data);
  auto pngs = SplitBytesElements((*results[0])[0].data, "visualization");
  ASSERT_TRUE(pngs.ok());
  ASSERT_EQ(pngs->size(), 1u);
  EXPECT_TRUE(pngs->at(0).substr(0, 4) == "\x89PNG");
  // Metadata reports the visualization as BYTES [-1].
  bool found = false;
  for (const ValueSpec& info : (*model)->OutputSpecs(Stage::kInference)) {
    if (info.name != "visualization") continue;
    found = true;
    EXPECT_EQ(info.data_type, package::TYPE_STRING);
    EXPECT_EQ(info.dims, (std::vector<int64_t>{-1}));
  }
  EXPECT_TRUE(found);
}

TEST(ServableVisualizationTest, ImagesOverTheInputsPixelBudgetAreRefusedBeforeQueueing) {
  // vision_classifier resizes to 64 x 64: its budget is the floor, 4096 x 4096.
  auto model = LoadServableModel({.version_dir = FixturePackage("vision_classifier")});
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string raw = RawBytes({Encode(Gradient(8, 8), ".png"), PngHeader(5000, 5000)});
  const std::vector<HostTensorView> inputs = {{"image", package::TYPE_STRING, {2}, raw}};
  absl::Status status = (*model)->Validate(Stage::kInference, inputs, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("input 'image' element 1"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("budget of 16777216"));
  // config.pbtxt's max_image_pixels raises it (up to kMaxImagePixels) or lowers it.
  auto generous = LoadServableModel({.version_dir = FixturePackage("vision_classifier"),
                                     .warmup_runs = 0,
                                     .max_image_pixels = 30'000'000});
  ASSERT_TRUE(generous.ok()) << generous.status();
  EXPECT_TRUE((*generous)->Validate(Stage::kInference, inputs, {}).ok());
  auto strict = LoadServableModel({.version_dir = FixturePackage("vision_classifier"),
                                   .warmup_runs = 0,
                                   .max_image_pixels = 32});
  ASSERT_TRUE(strict.ok()) << strict.status();
  EXPECT_THAT(std::string((*strict)->Validate(Stage::kInference, inputs, {}).message()),
              HasSubstr("element 0"));
  auto over = LoadServableModel({.version_dir = FixturePackage("vision_classifier"),
                                 .warmup_runs = 0,
                                 .max_image_pixels = kMaxImagePixels + 1});
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ServableVisualizationTest, ValidateRefusesBytesThatAreNoImageBeforeRunning) {
  auto model = LoadServableModel({.version_dir = FixturePackage("vision_classifier")});
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string raw = RawBytes({Encode(Gradient(8, 8), ".png"), "plain text"});
  const std::vector<HostTensorView> inputs = {{"image", package::TYPE_STRING, {2}, raw}};
  absl::Status status = (*model)->Validate(Stage::kInference, inputs, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("input 'image' element 1"));
  // A cut-off length prefix, and a count that contradicts the shape.
  const std::vector<HostTensorView> cut = {{"image", package::TYPE_STRING, {1}, raw.substr(0, 2)}};
  EXPECT_EQ((*model)->Validate(Stage::kInference, cut, {}).code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<HostTensorView> miscounted = {{"image", package::TYPE_STRING, {3}, raw}};
  EXPECT_THAT(std::string((*model)->Validate(Stage::kInference, miscounted, {}).message()),
              HasSubstr("2 BYTES elements"));
}

}  // namespace
}  // namespace torchbricks
