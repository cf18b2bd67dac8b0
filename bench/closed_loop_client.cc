// Closed-loop load for the benchmarks: a thin wrapper over torchbricks-perf's LoadGenerator
// (clients/cpp/perf/load_generator.h), which owns the hot loop — GenericStub unary calls
// over pre-serialized requests, one CompletionQueue and connection per client thread.
#include "bench/closed_loop_client.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "clients/cpp/perf/load_generator.h"

namespace torchbricks::bench {

absl::StatusOr<ClosedLoopResult> RunClosedLoop(const ClosedLoopOptions& options) {
  if (options.address.empty() || options.requests.empty() || options.concurrency < 1 ||
      options.client_threads < 1 || options.warmup_seconds < 0 || options.measure_seconds <= 0 ||
      !(options.request_deadline_seconds > 0)) {
    return absl::InvalidArgumentError(
        "closed loop needs an address, requests, concurrency >= 1, client threads >= 1, "
        "warm-up >= 0 s, a window > 0 s and a request deadline > 0 s");
  }
  absl::StatusOr<std::unique_ptr<perf::LoadGenerator>> generator = perf::LoadGenerator::Create(
      {.client = {.url = options.address,
                  .timeout = absl::Seconds(options.request_deadline_seconds)},
       .requests = &options.requests,
       .max_threads = std::min(options.client_threads, options.concurrency)});
  if (!generator.ok()) return generator.status();
  if (absl::Status started = (*generator)
                                 ->Start({.mode = perf::LoadMode::kConcurrency,
                                          .value = static_cast<double>(options.concurrency)});
      !started.ok()) {
    return started;
  }
  absl::SleepFor(absl::Seconds(options.warmup_seconds));
  perf::LoadSample warmup = (*generator)->Collect();
  absl::SleepFor(absl::Seconds(options.measure_seconds));
  perf::LoadSample window = (*generator)->Collect();
  perf::LoadSample drained = (*generator)->Stop();

  ClosedLoopResult result;
  result.completed = window.successes();
  result.window_seconds = absl::ToDoubleSeconds(window.duration);
  result.requests_per_second =
      result.window_seconds > 0 ? static_cast<double>(result.completed) / result.window_seconds : 0;
  result.errors = warmup.failures + window.failures + drained.failures;
  for (const perf::LoadSample* sample : {&warmup, &window, &drained}) {
    if (result.first_error.empty()) result.first_error = sample->first_error;
  }
  result.latency = perf::Summarize(std::move(window.latencies_ns));
  return result;
}

}  // namespace torchbricks::bench
