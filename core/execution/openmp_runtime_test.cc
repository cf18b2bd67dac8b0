// One OpenMP runtime per process: libtorch (the torch wheel's libgomp.so.1) and Debian's
// OpenCV (through OpenBLAS, the system libgomp.so.1) share the copy that cmake/torch.cmake
// makes the binaries load first. Two runtimes in one process fight over threads and can
// crash; this test fails when a second one is mapped.
#include <atomic>
#include <fstream>
#include <regex>
#include <set>
#include <string>

#include "ATen/Parallel.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/core.hpp"
#include "opencv2/imgproc.hpp"

namespace torchbricks {
namespace {

// The files mapped into this process whose name is an OpenMP runtime's (GNU, Intel, LLVM).
std::set<std::string> MappedOpenMpRuntimes() {
  static const std::regex kRuntime(R"(^lib(gomp|iomp[0-9]*|omp)([-.].*)?\.so.*)");
  std::set<std::string> runtimes;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const size_t path = line.find('/');
    if (path == std::string::npos) continue;
    const std::string file = line.substr(path);
    const std::string name = file.substr(file.rfind('/') + 1);
    if (std::regex_match(name, kRuntime)) runtimes.insert(file);
  }
  return runtimes;
}

TEST(OpenMpRuntimeTest, LibtorchAndOpenCvShareOneRuntime) {
  // Both sides at work: libtorch's intra-op threads and OpenCV (with its BLAS) drawing.
  at::set_num_threads(4);
  std::atomic<int> chunks{0};
  at::parallel_for(0, 64, 1, [&](int64_t, int64_t) { chunks++; });
  cv::Mat image(32, 32, CV_8UC3, cv::Scalar(0, 0, 0));
  cv::circle(image, {16, 16}, 8, cv::Scalar(255, 0, 0), -1);
  cv::Mat gray;
  cv::cvtColor(image, gray, cv::COLOR_BGR2GRAY);
  ASSERT_GT(chunks.load(), 0);
  ASSERT_GT(cv::countNonZero(gray), 0);

  const std::set<std::string> runtimes = MappedOpenMpRuntimes();
  EXPECT_EQ(runtimes.size(), 1u) << ::testing::PrintToString(runtimes);
  // libtorch says which runtime parallelises it.
  EXPECT_THAT(at::get_parallel_info(), ::testing::HasSubstr("OpenMP"));
}

}  // namespace
}  // namespace torchbricks
