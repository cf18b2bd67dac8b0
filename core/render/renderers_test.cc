#include "core/render/renderers.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/core.hpp"
#include "opencv2/imgproc.hpp"

namespace torchbricks::render {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const cv::Vec3b kGrey(128, 128, 128);

Canvas GreyCanvas(int rows = 240, int cols = 320, double scale = 1.0) {
  return Canvas{cv::Mat(rows, cols, CV_8UC3, cv::Scalar(128, 128, 128)), scale};
}

std::unique_ptr<Renderer> Make(const std::string& name, const Parameters& parameters,
                               int num_values) {
  auto renderer = MakeRenderer(name, parameters, num_values);
  EXPECT_TRUE(renderer.ok()) << renderer.status();
  return renderer.ok() ? *std::move(renderer) : nullptr;
}

bool Changed(const Canvas& canvas, int x, int y) {
  return canvas.image.at<cv::Vec3b>(y, x) != kGrey;
}

// Changed pixels in `region` of the canvas.
int CountChanged(const Canvas& canvas, cv::Rect region) {
  int count = 0;
  for (int y = region.y; y < region.br().y; ++y) {
    for (int x = region.x; x < region.br().x; ++x) count += Changed(canvas, x, y);
  }
  return count;
}

// The smallest rectangle holding every changed pixel.
cv::Rect ChangedBounds(const Canvas& canvas) {
  cv::Mat changed;
  cv::inRange(canvas.image, cv::Scalar(128, 128, 128), cv::Scalar(128, 128, 128), changed);
  return cv::boundingRect(255 - changed);
}

at::Tensor Floats(std::vector<float> values, at::IntArrayRef shape) {
  return torch::tensor(values).reshape(shape);
}

// ---- MakeRenderer -----------------------------------------------------------------------

TEST(MakeRendererTest, NamesAreSorted) {
  EXPECT_THAT(RendererNames(),
              ElementsAre("classification", "detection", "heatmap", "keypoints", "segmentation"));
}

TEST(MakeRendererTest, UnknownNameListsTheRenderers) {
  auto renderer = MakeRenderer("boxes", {}, 1);
  ASSERT_EQ(renderer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(renderer.status().message(), HasSubstr("'boxes'"));
  for (const std::string& name : RendererNames()) {
    EXPECT_THAT(renderer.status().message(), HasSubstr(name));
  }
}

TEST(MakeRendererTest, UnknownParameterListsTheParameters) {
  auto renderer = MakeRenderer("detection", {{"threshold", "0.3"}}, 1);
  ASSERT_EQ(renderer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(renderer.status().message(), HasSubstr("'threshold'"));
  EXPECT_THAT(renderer.status().message(), HasSubstr("class_names, normalized, score_threshold"));
}

TEST(MakeRendererTest, UnparsableParameterValuesAreRefused) {
  const std::vector<std::pair<std::string, Parameters>> cases = {
      {"detection", {{"score_threshold", "high"}}},
      {"detection", {{"normalized", "maybe"}}},
      {"classification", {{"top_k", "0"}}},
      {"classification", {{"top_k", "2.5"}}},
      {"segmentation", {{"alpha", "1.5"}}},
      {"segmentation", {{"background", "-2"}}},
      {"segmentation", {{"palette", "255,0"}}},
      {"segmentation", {{"palette", "1,2,300"}}},
      {"keypoints", {{"skeleton", "0-x"}}},
      {"keypoints", {{"skeleton", "0-1-2"}}},
      {"heatmap", {{"colormap", "rainbow"}}},
      {"heatmap", {{"range", "1,0"}}},
      {"heatmap", {{"alpha", "nan"}}},
  };
  for (const auto& [name, parameters] : cases) {
    auto renderer = MakeRenderer(name, parameters, 1);
    const std::string key = parameters.begin()->first;
    ASSERT_EQ(renderer.status().code(), absl::StatusCode::kInvalidArgument) << name << " " << key;
    EXPECT_THAT(renderer.status().message(), HasSubstr("renderer '" + name + "'"));
    EXPECT_THAT(renderer.status().message(), HasSubstr("parameter '" + key + "'"));
    EXPECT_THAT(renderer.status().message(), HasSubstr(parameters.begin()->second));
  }
  auto colormap = MakeRenderer("heatmap", {{"colormap", "rainbow"}}, 1);
  EXPECT_THAT(colormap.status().message(), HasSubstr("jet, magma, plasma, turbo, viridis"));
}

TEST(MakeRendererTest, WellFormedParametersAreAccepted) {
  EXPECT_TRUE(MakeRenderer(
                  "detection",
                  {{"class_names", "cat, dog"}, {"score_threshold", "0.3"}, {"normalized", "true"}},
                  3)
                  .ok());
  EXPECT_TRUE(MakeRenderer("segmentation",
                           {{"palette", "0,0,0;255,0,0"},
                            {"background", "-1"},
                            {"alpha", "1"},
                            {"class_names", "bg,fg"}},
                           1)
                  .ok());
  EXPECT_TRUE(MakeRenderer("keypoints", {{"skeleton", "0-1,1-2"}}, 1).ok());
  EXPECT_TRUE(MakeRenderer("heatmap", {{"colormap", "turbo"}, {"range", "-1,1"}}, 1).ok());
  EXPECT_TRUE(MakeRenderer("classification", {{"top_k", "5"}}, 2).ok());
}

TEST(MakeRendererTest, WrongNumberOfValuesIsRefused) {
  for (int count : {0, 4}) {
    auto renderer = MakeRenderer("detection", {}, count);
    ASSERT_EQ(renderer.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(renderer.status().message(),
                HasSubstr("takes 1 to 3 values after the image (boxes, scores, labels)"));
  }
  auto segmentation = MakeRenderer("segmentation", {}, 2);
  EXPECT_THAT(segmentation.status().message(), HasSubstr("takes 1 value after the image (mask)"));
  EXPECT_FALSE(MakeRenderer("classification", {}, 3).ok());
}

TEST(DrawTest, BadCanvasAndValueCountAreRefused) {
  auto renderer = Make("heatmap", {}, 1);
  Canvas gray{cv::Mat(10, 10, CV_8UC1, cv::Scalar(0)), 1.0};
  EXPECT_EQ(renderer->Draw({torch::ones({4, 4})}, &gray).code(),
            absl::StatusCode::kInvalidArgument);
  Canvas canvas = GreyCanvas();
  EXPECT_EQ(renderer->Draw({}, &canvas).code(), absl::StatusCode::kInvalidArgument);
  canvas.scale = 0;
  EXPECT_EQ(renderer->Draw({torch::ones({4, 4})}, &canvas).code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- classification ---------------------------------------------------------------------

TEST(ClassificationTest, LabelIsTopLeftAndTheRestIsUntouched) {
  auto renderer = Make("classification", {{"class_names", "cat,dog,bird"}}, 1);
  Canvas canvas = GreyCanvas();
  ASSERT_TRUE(renderer->Draw({Floats({0.1f, 0.7f, 0.2f}, {3})}, &canvas).ok());
  const cv::Rect bounds = ChangedBounds(canvas);
  EXPECT_GT(bounds.area(), 0);
  EXPECT_LT(bounds.x, 10);
  EXPECT_LT(bounds.y, 10);
  EXPECT_EQ(CountChanged(canvas, cv::Rect(160, 120, 160, 120)), 0);
}

TEST(ClassificationTest, TopKDrawsOneLinePerClass) {
  Canvas one = GreyCanvas();
  Canvas three = GreyCanvas();
  const at::Tensor scores = Floats({0.1f, 0.5f, 0.3f, 0.1f}, {4});
  ASSERT_TRUE(Make("classification", {}, 1)->Draw({scores}, &one).ok());
  ASSERT_TRUE(Make("classification", {{"top_k", "3"}}, 1)->Draw({scores}, &three).ok());
  EXPECT_NEAR(ChangedBounds(three).height, 3 * ChangedBounds(one).height, 3);
  // top_k beyond the number of classes draws every class.
  Canvas many = GreyCanvas();
  ASSERT_TRUE(Make("classification", {{"top_k", "10"}}, 1)->Draw({scores}, &many).ok());
  EXPECT_NEAR(ChangedBounds(many).height, 4 * ChangedBounds(one).height, 4);
}

TEST(ClassificationTest, ClassIndexWithAndWithoutScore) {
  auto with_score = Make("classification", {}, 2);
  Canvas canvas = GreyCanvas();
  ASSERT_TRUE(with_score->Draw({torch::tensor({2}), torch::tensor(0.9)}, &canvas).ok());
  const int labelled = ChangedBounds(canvas).width;
  EXPECT_GT(labelled, 0);

  Canvas bare = GreyCanvas();
  ASSERT_TRUE(Make("classification", {}, 1)
                  ->Draw({torch::tensor(2, torch::dtype(torch::kInt32))}, &bare)
                  .ok());
  EXPECT_GT(ChangedBounds(bare).width, 0);
  EXPECT_LT(ChangedBounds(bare).width, labelled);  // "class 2" is shorter than "class 2 0.90"
}

TEST(ClassificationTest, LabelGrowsWithTheCanvas) {
  auto renderer = Make("classification", {}, 1);
  Canvas small = GreyCanvas(100, 100);
  Canvas large = GreyCanvas(1000, 1000);
  const at::Tensor scores = Floats({0.2f, 0.8f}, {2});
  ASSERT_TRUE(renderer->Draw({scores}, &small).ok());
  ASSERT_TRUE(renderer->Draw({scores}, &large).ok());
  EXPECT_GE(ChangedBounds(small).height, 12);  // legible on a small canvas
  EXPECT_GT(ChangedBounds(large).height, 2 * ChangedBounds(small).height);
  EXPECT_LE(ChangedBounds(small).br().x, 100);
}

TEST(ClassificationTest, WrongShapesNameTheValue) {
  Canvas canvas = GreyCanvas();
  absl::Status status = Make("classification", {}, 1)->Draw({torch::zeros({3, 2})}, &canvas);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("value 0 (scores or class)"));
  EXPECT_THAT(status.message(), HasSubstr("got [3,2] Float"));

  status = Make("classification", {}, 2)->Draw({torch::tensor({1}), torch::zeros({3})}, &canvas);
  EXPECT_THAT(status.message(), HasSubstr("value 1 (score)"));
  EXPECT_EQ(CountChanged(canvas, cv::Rect(0, 0, 320, 240)), 0);
}

// ---- segmentation -----------------------------------------------------------------------

TEST(SegmentationTest, BlendsClassPixelsAndLeavesBackground) {
  // Class 1 on the left half, background on the right; class 1 drawn pure red.
  at::Tensor mask = torch::zeros({240, 320}, torch::kLong);
  mask.slice(1, 0, 160).fill_(1);
  auto renderer = Make("segmentation", {{"palette", "0,0,0;255,0,0"}}, 1);
  Canvas canvas = GreyCanvas();
  ASSERT_TRUE(renderer->Draw({mask}, &canvas).ok());
  EXPECT_EQ(CountChanged(canvas, cv::Rect(160, 0, 160, 240)), 0);
  const cv::Vec3b blended = canvas.image.at<cv::Vec3b>(120, 80);
  EXPECT_NEAR(blended[0], 192, 1);
  EXPECT_NEAR(blended[1], 64, 1);
  EXPECT_NEAR(blended[2], 64, 1);
}

TEST(SegmentationTest, ScoresAreArgmaxedAndResizedNearest) {
  // A 12x16 map (a twentieth of the canvas) whose bottom-right quarter is class 2.
  at::Tensor scores = torch::zeros({3, 12, 16});
  scores[0].fill_(1);
  scores[2].slice(0, 6).slice(1, 8).fill_(5);
  Canvas canvas = GreyCanvas();
  ASSERT_TRUE(Make("segmentation", {}, 1)->Draw({scores}, &canvas).ok());
  EXPECT_EQ(CountChanged(canvas, cv::Rect(160, 120, 160, 120)), 160 * 120);
  EXPECT_EQ(CountChanged(canvas, cv::Rect(0, 0, 320, 120)), 0);
  EXPECT_EQ(CountChanged(canvas, cv::Rect(0, 120, 160, 120)), 0);
}

TEST(SegmentationTest, BackgroundMinusOneDrawsEveryClass) {
  Canvas canvas = GreyCanvas();
  ASSERT_TRUE(Make("segmentation", {{"background", "-1"}}, 1)
                  ->Draw({torch::zeros({4, 4}, torch::kUInt8)}, &canvas)
                  .ok());
  EXPECT_EQ(CountChanged(canvas, cv::Rect(0, 0, 320, 240)), 320 * 240);
}

TEST(SegmentationTest, LegendAppearsWithClassNames) {
  at::Tensor mask = torch::zeros({24, 32}, torch::kInt32);
  mask.slice(0, 18).slice(1, 24).fill_(2);  // bottom-right corner only
  Canvas plain = GreyCanvas();
  Canvas legend = GreyCanvas();
  ASSERT_TRUE(Make("segmentation", {}, 1)->Draw({mask}, &plain).ok());
  ASSERT_TRUE(
      Make("segmentation", {{"class_names", "bg,road,car"}}, 1)->Draw({mask}, &legend).ok());
  EXPECT_EQ(CountChanged(plain, cv::Rect(0, 0, 100, 40)), 0);
  EXPECT_GT(CountChanged(legend, cv::Rect(0, 0, 100, 40)), 100);
}

TEST(SegmentationTest, WrongShapeNamesTheValue) {
  Canvas canvas = GreyCanvas();
  absl::Status status = Make("segmentation", {}, 1)->Draw({torch::zeros({2, 3, 4, 5})}, &canvas);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("value 0 (mask)"));
  EXPECT_THAT(status.message(), HasSubstr("[2,3,4,5]"));
}

// ---- detection --------------------------------------------------------------------------

TEST(DetectionTest, DrawsTheBoxAndItsLabelOnly) {
  auto renderer = Make("detection", {{"class_names", "cat,dog"}}, 3);
  Canvas canvas = GreyCanvas();
  ASSERT_TRUE(
      renderer
          ->Draw({Floats({40, 60, 120, 140}, {1, 4}), Floats({0.9f}, {1}), torch::tensor({1})},
                 &canvas)
          .ok());
  EXPECT_TRUE(Changed(canvas, 80, 140));                          // bottom edge
  EXPECT_TRUE(Changed(canvas, 120, 100));                         // right edge
  EXPECT_GT(CountChanged(canvas, cv::Rect(40, 35, 40, 24)), 50);  // label above the box
  EXPECT_FALSE(Changed(canvas, 80, 100));                         // inside
  EXPECT_EQ(CountChanged(canvas, cv::Rect(160, 160, 160, 80)), 0);
}

TEST(DetectionTest, ScaleMovesTheBox) {
  auto renderer = Make("detection", {}, 1);
  Canvas canvas = GreyCanvas(480, 640, 2.0);
  ASSERT_TRUE(renderer->Draw({Floats({40, 60, 120, 140}, {1, 4})}, &canvas).ok());
  EXPECT_TRUE(Changed(canvas, 160, 280));   // bottom edge at 2 x 140
  EXPECT_TRUE(Changed(canvas, 240, 200));   // right edge at 2 x 120
  EXPECT_FALSE(Changed(canvas, 120, 100));  // where the unscaled right edge would be
  EXPECT_FALSE(Changed(canvas, 160, 200));  // inside
}

TEST(DetectionTest, NormalizedBoxesSpanTheCanvas) {
  auto renderer = Make("detection", {{"normalized", "true"}}, 1);
  Canvas canvas = GreyCanvas();
  ASSERT_TRUE(renderer->Draw({Floats({0.5f, 0.5f, 0.75f, 0.75f}, {1, 4})}, &canvas).ok());
  EXPECT_TRUE(Changed(canvas, 160, 150));  // left edge at 0.5 x 320
  EXPECT_TRUE(Changed(canvas, 200, 180));  // bottom edge at 0.75 x 240
  EXPECT_EQ(CountChanged(canvas, cv::Rect(0, 0, 100, 100)), 0);
}

TEST(DetectionTest, LowScoresAndNegativeLabelsAreSkipped) {
  const at::Tensor boxes = Floats({40, 60, 120, 140, 200, 60, 280, 140}, {2, 4});
  Canvas canvas = GreyCanvas();
  ASSERT_TRUE(Make("detection", {}, 3)
                  ->Draw({boxes, Floats({0.3f, 0.9f}, {2}), torch::tensor({0, -1})}, &canvas)
                  .ok());
  EXPECT_EQ(CountChanged(canvas, cv::Rect(0, 0, 320, 240)), 0);

  ASSERT_TRUE(Make("detection", {{"score_threshold", "0.2"}}, 3)
                  ->Draw({boxes, Floats({0.3f, 0.9f}, {2}), torch::tensor({0, -1})}, &canvas)
                  .ok());
  EXPECT_TRUE(Changed(canvas, 80, 140));
  EXPECT_FALSE(Changed(canvas, 240, 140));

  // Without scores the threshold does not apply.
  Canvas unscored = GreyCanvas();
  ASSERT_TRUE(Make("detection", {{"score_threshold", "2"}}, 1)->Draw({boxes}, &unscored).ok());
  EXPECT_TRUE(Changed(unscored, 80, 140));
  EXPECT_TRUE(Changed(unscored, 240, 140));
}

TEST(DetectionTest, IntegerBoxesAndNoBoxesAreAccepted) {
  Canvas canvas = GreyCanvas();
  auto renderer = Make("detection", {}, 1);
  ASSERT_TRUE(
      renderer->Draw({torch::tensor({40, 60, 120, 140}, torch::kInt32).reshape({1, 4})}, &canvas)
          .ok());
  EXPECT_TRUE(Changed(canvas, 80, 140));
  Canvas empty = GreyCanvas();
  ASSERT_TRUE(renderer->Draw({torch::zeros({0, 4})}, &empty).ok());
  EXPECT_EQ(CountChanged(empty, cv::Rect(0, 0, 320, 240)), 0);
}

TEST(DetectionTest, WrongShapesNameTheValue) {
  auto renderer = Make("detection", {}, 3);
  Canvas canvas = GreyCanvas();
  const at::Tensor boxes = torch::zeros({3, 4});
  const at::Tensor scores = torch::zeros({3});
  const at::Tensor labels = torch::zeros({3}, torch::kLong);
  absl::Status status = renderer->Draw({torch::zeros({3, 5}), scores, labels}, &canvas);
  EXPECT_THAT(status.message(), HasSubstr("value 0 (boxes)"));
  status = renderer->Draw({boxes, torch::zeros({3, 2}), labels}, &canvas);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("value 1 (scores) must be [3]"));
  EXPECT_THAT(status.message(), HasSubstr("got [3,2] Float"));
  status = renderer->Draw({boxes, scores, torch::zeros({2}, torch::kLong)}, &canvas);
  EXPECT_THAT(status.message(), HasSubstr("value 2 (labels)"));
  status = renderer->Draw({boxes, scores, at::Tensor()}, &canvas);
  EXPECT_THAT(status.message(), HasSubstr("undefined"));
}

// ---- keypoints --------------------------------------------------------------------------

TEST(KeypointsTest, DrawsVisibleKeypointsOnly) {
  auto renderer = Make("keypoints", {}, 1);
  Canvas canvas = GreyCanvas();
  ASSERT_TRUE(renderer->Draw({Floats({50, 40, 0.9f, 250, 200, 0.1f}, {2, 3})}, &canvas).ok());
  EXPECT_TRUE(Changed(canvas, 50, 40));
  EXPECT_FALSE(Changed(canvas, 250, 200));  // below score_threshold
  EXPECT_EQ(CountChanged(canvas, cv::Rect(100, 100, 220, 140)), 0);
}

TEST(KeypointsTest, ScaleAndNormalizedMoveTheKeypoints) {
  Canvas scaled = GreyCanvas(480, 640, 2.0);
  ASSERT_TRUE(Make("keypoints", {}, 1)->Draw({Floats({50, 40}, {1, 2})}, &scaled).ok());
  EXPECT_TRUE(Changed(scaled, 100, 80));
  EXPECT_FALSE(Changed(scaled, 50, 40));

  Canvas normalized = GreyCanvas();
  ASSERT_TRUE(Make("keypoints", {{"normalized", "true"}}, 1)
                  ->Draw({Floats({0.5f, 0.25f}, {1, 2})}, &normalized)
                  .ok());
  EXPECT_TRUE(Changed(normalized, 160, 60));
  EXPECT_FALSE(Changed(normalized, 0, 0));
}

TEST(KeypointsTest, InstancesAndSkeleton) {
  // Two instances of two keypoints each: a horizontal and a vertical segment.
  const at::Tensor points = Floats({40, 40, 140, 40, 250, 60, 250, 200}, {2, 2, 2});
  Canvas bare = GreyCanvas();
  Canvas joined = GreyCanvas();
  ASSERT_TRUE(Make("keypoints", {}, 1)->Draw({points}, &bare).ok());
  ASSERT_TRUE(Make("keypoints", {{"skeleton", "0-1"}}, 1)->Draw({points}, &joined).ok());
  EXPECT_TRUE(Changed(bare, 250, 200));
  EXPECT_FALSE(Changed(bare, 90, 40));
  EXPECT_TRUE(Changed(joined, 90, 40));
  EXPECT_TRUE(Changed(joined, 250, 130));
  EXPECT_FALSE(Changed(joined, 160, 160));
  Canvas empty = GreyCanvas();
  ASSERT_TRUE(
      Make("keypoints", {{"skeleton", "0-1"}}, 1)->Draw({torch::zeros({0, 2, 3})}, &empty).ok());
  EXPECT_EQ(CountChanged(empty, cv::Rect(0, 0, 320, 240)), 0);
}

TEST(KeypointsTest, ErrorsNameTheValue) {
  Canvas canvas = GreyCanvas();
  absl::Status status = Make("keypoints", {}, 1)->Draw({torch::zeros({4})}, &canvas);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("value 0 (keypoints)"));
  status = Make("keypoints", {{"skeleton", "0-5"}}, 1)->Draw({torch::zeros({3, 2})}, &canvas);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("skeleton"));
  EXPECT_THAT(status.message(), HasSubstr("has 3 keypoints"));
}

// ---- heatmap ----------------------------------------------------------------------------

TEST(HeatmapTest, HotAndColdRegionsGetTheColormapInRgb) {
  at::Tensor heat = torch::zeros({24, 32});
  heat.slice(1, 0, 16).fill_(3);  // hot left half
  Canvas canvas = GreyCanvas();
  ASSERT_TRUE(Make("heatmap", {}, 1)->Draw({heat}, &canvas).ok());
  // jet: hot is red (128,0,0), cold is blue (0,0,128), each half-blended over grey.
  const cv::Vec3b hot = canvas.image.at<cv::Vec3b>(120, 40);
  const cv::Vec3b cold = canvas.image.at<cv::Vec3b>(120, 280);
  EXPECT_NEAR(hot[0], 128, 2);
  EXPECT_NEAR(hot[2], 64, 2);
  EXPECT_NEAR(cold[0], 64, 2);
  EXPECT_NEAR(cold[2], 128, 2);
}

TEST(HeatmapTest, RangeFixesTheNormalisation) {
  const at::Tensor flat = torch::full({1, 8, 8}, 0.5);
  Canvas per_image = GreyCanvas();
  Canvas fixed = GreyCanvas();
  ASSERT_TRUE(Make("heatmap", {{"alpha", "1"}}, 1)->Draw({flat}, &per_image).ok());
  ASSERT_TRUE(Make("heatmap", {{"alpha", "1"}, {"range", "0,1"}}, 1)->Draw({flat}, &fixed).ok());
  EXPECT_EQ(per_image.image.at<cv::Vec3b>(10, 10), cv::Vec3b(0, 0, 128));  // flat: all cold
  EXPECT_NE(fixed.image.at<cv::Vec3b>(10, 10), cv::Vec3b(0, 0, 128));
  EXPECT_GT(fixed.image.at<cv::Vec3b>(10, 10)[1], 200);  // jet's middle is green
}

TEST(HeatmapTest, IntegersAreAcceptedAndWrongShapesNamed) {
  Canvas canvas = GreyCanvas();
  auto renderer = Make("heatmap", {{"colormap", "viridis"}}, 1);
  ASSERT_TRUE(renderer->Draw({torch::arange(16, torch::kUInt8).reshape({1, 4, 4})}, &canvas).ok());
  EXPECT_NE(canvas.image.at<cv::Vec3b>(0, 0), canvas.image.at<cv::Vec3b>(239, 319));
  absl::Status status = renderer->Draw({torch::zeros({2, 4, 4})}, &canvas);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("value 0 (heatmap)"));
}

}  // namespace
}  // namespace torchbricks::render
