// Google Benchmark: what images cost in the server. Decoding encoded image inputs (JPEG and
// PNG, 224x224 and 640x480) and drawing a batch with a visualization brick (each built-in
// renderer, drawing + PNG encoding), all through core/.
//
//   build/bench/visualization_benchmark [--benchmark_min_time=1]
#include <string>
#include <vector>

#include "ATen/Parallel.h"
#include "benchmark/benchmark.h"
#include "core/execution/image_io.h"
#include "core/execution/visualization_brick.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace torchbricks {
namespace {

// A smooth colourful test picture (gradients and a disc), like a photo compresses.
cv::Mat Picture(int rows, int cols) {
  cv::Mat image(rows, cols, CV_8UC3);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const bool disc =
          (r - rows / 2) * (r - rows / 2) + (c - cols / 3) * (c - cols / 3) < rows * rows / 16;
      image.at<cv::Vec3b>(r, c) = disc ? cv::Vec3b(240, 200, 40)
                                       : cv::Vec3b(static_cast<uchar>(c * 255 / cols),
                                                   static_cast<uchar>(r * 255 / rows), 120);
    }
  }
  return image;
}

void BM_DecodeImages(benchmark::State& state, const std::string& extension) {
  const int rows = static_cast<int>(state.range(0));
  const int cols = rows == 224 ? 224 : 640;
  const int batch = static_cast<int>(state.range(1));
  at::set_num_threads(static_cast<int>(state.range(2)));  // files of a batch decode in parallel
  std::vector<uchar> file;
  cv::imencode(extension, Picture(rows, cols), file);
  const std::vector<std::string> files(batch, std::string(file.begin(), file.end()));
  const at::Tensor rows_tensor = PackBytes(files);
  const ValueSpec spec{
      .name = "image", .data_type = package::TYPE_STRING, .dims = {-1}, .encoded_image = true};
  for (auto _ : state) {
    auto decoded = DecodeImages(spec, rows_tensor);
    if (!decoded.ok()) {
      state.SkipWithError(std::string(decoded.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(decoded->data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["file_bytes"] = static_cast<double>(file.size());
}

// One renderer with its values for a batch of `batch` images of 224x224.
struct Case {
  std::string renderer;
  std::vector<at::Tensor> values;
};

Case MakeCase(const std::string& renderer, int64_t batch) {
  if (renderer == "classification") return {renderer, {at::softmax(at::rand({batch, 5}), 1)}};
  // Masks and heat maps with regions, as models produce, not per-pixel noise.
  if (renderer == "segmentation") {
    return {renderer,
            {at::randint(0, 5, {batch, 7, 7}).repeat_interleave(8, 1).repeat_interleave(8, 2)}};
  }
  if (renderer == "detection") {
    at::Tensor boxes = at::rand({batch, 10, 4}) * 100;
    boxes.narrow(2, 2, 2).add_(100);
    return {renderer, {boxes, at::rand({batch, 10}), at::randint(0, 5, {batch, 10})}};
  }
  if (renderer == "keypoints")
    return {renderer, {at::cat({at::rand({batch, 17, 2}) * 224, at::ones({batch, 17, 1})}, 2)}};
  return {renderer,
          {at::upsample_bilinear2d(at::rand({batch, 1, 7, 7}), {56, 56}, false).squeeze(1)}};
}

// Arguments: batch size, intra-op threads (images of a batch are drawn in parallel).
void BM_Visualize(benchmark::State& state, const std::string& renderer) {
  const int64_t batch = state.range(0);
  at::set_num_threads(static_cast<int>(state.range(1)));
  BrickSpec brick;
  brick.name = "draw";
  brick.kind = package::VISUALIZATION;
  brick.renderer = renderer;
  brick.renderer_parameters = {{"min_side", "0"}};
  const Case values = MakeCase(renderer, batch);
  brick.input_names = {"image"};
  for (size_t i = 0; i < values.values.size(); ++i)
    brick.input_names.push_back("v" + std::to_string(i));
  brick.output_names = {"drawing"};
  auto visualization = VisualizationBrick::Create(brick, ".");
  if (!visualization.ok()) {
    state.SkipWithError(std::string(visualization.status().message()).c_str());
    return;
  }
  // Smooth pictures: random pixels would make PNG encoding (most of the cost) look far worse.
  const cv::Mat picture = Picture(224, 224);
  const at::Tensor one = at::from_blob(picture.data, {224, 224, 3}, at::kByte).permute({2, 0, 1});
  const at::Tensor images = one.unsqueeze(0).repeat({batch, 1, 1, 1}).contiguous();
  state.counters["intra_op_threads"] = at::get_num_threads();
  for (auto _ : state) {
    std::vector<c10::IValue> inputs = {images};
    for (const at::Tensor& value : values.values) inputs.emplace_back(value);
    auto drawn = (*visualization)->Run(std::move(inputs));
    if (!drawn.ok()) {
      state.SkipWithError(std::string(drawn.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(drawn->size());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_EncodePng(benchmark::State& state) {
  const cv::Mat picture = Picture(224, 224);
  for (auto _ : state) {
    auto png = EncodePng(picture);
    benchmark::DoNotOptimize(png->size());
  }
}

BENCHMARK(BM_EncodePng)->Unit(benchmark::kMicrosecond);
// Arguments: rows (224: 224x224, 480: 640x480), batch size, intra-op threads.
BENCHMARK_CAPTURE(BM_DecodeImages, jpeg, std::string(".jpg"))
    ->Args({224, 1, 1})
    ->Args({224, 8, 1})
    ->Args({224, 8, 2})
    ->Args({480, 1, 1})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_DecodeImages, png, std::string(".png"))
    ->Args({224, 1, 1})
    ->Args({224, 8, 1})
    ->Args({224, 8, 2})
    ->Args({480, 1, 1})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Visualize, classification, std::string("classification"))
    ->Args({1, 1})
    ->Args({8, 1})
    ->Args({8, 2})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Visualize, segmentation, std::string("segmentation"))
    ->Args({1, 1})
    ->Args({8, 1})
    ->Args({8, 2})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Visualize, detection, std::string("detection"))
    ->Args({1, 1})
    ->Args({8, 1})
    ->Args({8, 2})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Visualize, keypoints, std::string("keypoints"))
    ->Args({1, 1})
    ->Args({8, 1})
    ->Args({8, 2})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Visualize, heatmap, std::string("heatmap"))
    ->Args({1, 1})
    ->Args({8, 1})
    ->Args({8, 2})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace torchbricks

BENCHMARK_MAIN();
