// Google Benchmark: does running independent branches at the same time help? Runs a
// package (default: the nested_heads fixture, a backbone with two heads) sequentially and
// with LoadOptions::parallel_branches, on its saved INFERENCE reference inputs.
//
//   build/bench/branch_benchmark [--benchmark_min_time=2]   # env PACKAGE=<version dir>
#include <cstdlib>
#include <string>

#include "benchmark/benchmark.h"
#include "core/execution/loaded_collection.h"
#include "core/execution/reference_check.h"

namespace torchbricks {
namespace {

std::string PackageDir() {
  const char* package = std::getenv("PACKAGE");
  return package != nullptr ? package : TORCHBRICKS_DEFAULT_FIXTURES "/nested_heads/1";
}

void RunCollection(benchmark::State& state, bool parallel) {
  auto collection =
      LoadedCollection::Load({.version_dir = PackageDir(), .parallel_branches = parallel});
  auto reference = ReadReference(PackageDir(), Stage::kInference);
  if (!collection.ok() || !reference.ok() || !reference->has_value()) {
    state.SkipWithError("cannot load the package or its INFERENCE reference inputs");
    return;
  }
  for (auto _ : state) {
    auto outputs = (*collection)->Run(Stage::kInference, (*reference)->inputs);
    if (!outputs.ok()) {
      state.SkipWithError(std::string(outputs.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(outputs->size());
  }
}

void BM_Sequential(benchmark::State& state) { RunCollection(state, false); }
void BM_ParallelBranches(benchmark::State& state) { RunCollection(state, true); }

BENCHMARK(BM_Sequential)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_ParallelBranches)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace torchbricks

BENCHMARK_MAIN();
