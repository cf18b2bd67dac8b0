// Fuzz target: a model's config.pbtxt text through the repository's parsing
// (ParseModelConfig), the scheduling plan (PlanScheduling, as on a 2-core machine without
// CUDA, with CUDA and no GPU, and with two GPUs) and the version policy (SelectVersions).
// Invariants for an accepted config: instances are bounded by the machine, each with 1..cores
// intra-op threads (CPU), queue limits are positive and durations are not negative; selected
// versions are a subset of the available ones, in order.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "server/repository/repository_scan.h"
#include "server/scheduling/scheduling_plan.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr int kCores = 2;

void CheckPlan(const torchbricks::server::SchedulingPlan& plan,
               const torchbricks::server::CudaInventory& cuda) {
  FUZZ_CHECK(!plan.instances.empty());
  FUZZ_CHECK(plan.instances.size() <= static_cast<size_t>(4 * kCores));
  for (const auto& instance : plan.instances) {
    FUZZ_CHECK(instance.intra_op_threads >= 1 && instance.intra_op_threads <= kCores);
    FUZZ_CHECK(instance.device == "cpu" ||
               (cuda.usable() && (instance.device == "cuda:0" || instance.device == "cuda:1")));
  }
  const torchbricks::server::BatchPolicy& batching = plan.batching;
  FUZZ_CHECK(batching.max_batch_size >= 0);
  FUZZ_CHECK(batching.max_queue_size > 0);
  FUZZ_CHECK(batching.max_queue_delay >= absl::ZeroDuration());
  FUZZ_CHECK(batching.default_timeout >= absl::ZeroDuration());
  for (int size : batching.preferred_batch_sizes) {
    FUZZ_CHECK(size > 0 && (batching.max_batch_size == 0 || size <= batching.max_batch_size));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<torchbricks::config::ModelConfig> config =
      torchbricks::server::ParseModelConfig("fuzz_model", text);
  if (!config.ok()) {
    FUZZ_CHECK(config.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  for (const torchbricks::server::CudaInventory& cuda :
       {torchbricks::server::CudaInventory{}, torchbricks::server::CudaInventory{true, 0},
        torchbricks::server::CudaInventory{true, 2}}) {
    absl::StatusOr<torchbricks::server::SchedulingPlan> plan =
        torchbricks::server::PlanScheduling(*config, cuda, kCores);
    if (plan.ok()) {
      CheckPlan(*plan, cuda);
    } else {
      // Unavailable: KIND_GPU where no GPU is usable; everything else is the config's fault.
      FUZZ_CHECK(plan.status().code() == absl::StatusCode::kInvalidArgument ||
                 (plan.status().code() == absl::StatusCode::kUnavailable && !cuda.usable()));
    }
  }
  const std::vector<int64_t> available = {1, 2, 3, 7, 10};
  const std::vector<int64_t> selected =
      torchbricks::server::SelectVersions(config->version_policy(), available);
  FUZZ_CHECK(std::includes(available.begin(), available.end(), selected.begin(), selected.end()));
  FUZZ_CHECK(std::is_sorted(selected.begin(), selected.end()));
  return 0;
}
