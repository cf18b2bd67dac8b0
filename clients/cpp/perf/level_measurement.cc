#include "clients/cpp/perf/level_measurement.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"

namespace torchbricks::perf {
namespace {

struct Window {
  LoadSample sample;
  std::optional<ServerCounters> server_at_end;  // unset when the statistics call failed
};

double Seconds(absl::Duration duration) { return absl::ToDoubleSeconds(duration); }

WindowFigures FiguresOf(const LoadSample& sample) {
  const double seconds = Seconds(sample.duration);
  return {.throughput = seconds > 0 ? static_cast<double>(sample.successes()) / seconds : 0,
          .p50_us = Summarize(sample.latencies_ns).p50_us};
}

}  // namespace

double LevelResult::NetworkAndServerOverheadUs() const {
  const double accounted = client_send_us + client_recv_us + server.queue.AverageUs() +
                           server.compute_input.AverageUs() + server.compute_infer.AverageUs() +
                           server.compute_output.AverageUs();
  return std::max(0.0, latency.avg_us - accounted);
}

absl::StatusOr<LevelResult> MeasureLevel(LoadGenerator& generator, client::InferenceClient& client,
                                         const LevelSettings& settings, std::ostream* verbose) {
  LevelResult result{.level = settings.load.value};
  const auto fetch = [&]() -> std::optional<ServerCounters> {
    absl::StatusOr<ServerCounters> counters =
        FetchServerCounters(client, settings.model, settings.model_version);
    if (counters.ok()) return *counters;
    if (result.statistics_error.empty()) result.statistics_error = counters.status().ToString();
    return std::nullopt;
  };
  const auto fetch_bricks = [&]() -> std::optional<BrickCounters> {
    absl::StatusOr<BrickCounters> bricks =
        FetchBrickCounters(client, settings.model, settings.model_version);
    if (bricks.ok()) return *std::move(bricks);
    if (result.brick_statistics_error.empty()) {
      result.brick_statistics_error = bricks.status().ToString();
    }
    return std::nullopt;
  };

  const std::optional<ServerCounters> before = fetch();
  const std::optional<BrickCounters> bricks_before = fetch_bricks();
  RETURN_IF_ERROR(generator.Start(settings.load));
  const absl::Time start = absl::Now();
  std::vector<Window> windows;
  std::vector<WindowFigures> figures;
  LoadSample level_sample;
  while (static_cast<int>(windows.size()) < settings.max_trials) {
    // Window k ends k intervals after the start: statistics calls do not push it later.
    absl::SleepFor(start + settings.measurement_interval * (windows.size() + 1) - absl::Now());
    Window window{.sample = generator.Collect()};
    window.server_at_end = fetch();
    figures.push_back(FiguresOf(window.sample));
    if (verbose != nullptr) {
      *verbose << absl::StrFormat(
          "  window %d: %d requests in %.3f s, %.1f req/s, p50 %.0f us, %d failed\n",
          static_cast<int>(windows.size()) + 1, window.sample.successes(),
          Seconds(window.sample.duration), figures.back().throughput, figures.back().p50_us,
          window.sample.failures);
    }
    const bool failed = window.sample.failures > 0;
    windows.push_back(std::move(window));
    if (failed) break;
    if (IsStable(figures, settings.stability_percentage)) {
      result.stable = true;
      break;
    }
  }
  level_sample.Merge(generator.Stop());
  const std::optional<ServerCounters> after = fetch();
  const std::optional<BrickCounters> bricks_after = fetch_bricks();

  result.windows = static_cast<int>(windows.size());
  result.reported_windows = std::min(result.windows, 3);
  const size_t first = windows.size() - static_cast<size_t>(result.reported_windows);
  LoadSample reported;
  for (size_t i = 0; i < windows.size(); ++i) {
    if (i >= first) {
      LoadSample copy = windows[i].sample;
      reported.Merge(std::move(copy));
    }
    level_sample.Merge(std::move(windows[i].sample));
  }
  result.requests = reported.successes();
  result.seconds = Seconds(reported.duration);
  result.requests_per_second =
      result.seconds > 0 ? static_cast<double>(result.requests) / result.seconds : 0;
  result.inferences_per_second =
      result.requests_per_second * static_cast<double>(settings.batch_size);
  if (result.requests > 0) {
    result.client_send_us = static_cast<double>(reported.send_ns) / result.requests / 1000;
    result.client_recv_us = static_cast<double>(reported.recv_ns) / result.requests / 1000;
  }
  result.latency = Summarize(std::move(reported.latencies_ns));
  const std::optional<ServerCounters>& window_start =
      first == 0 ? before : windows[first - 1].server_at_end;
  if (window_start.has_value() && windows.back().server_at_end.has_value()) {
    result.server = *windows.back().server_at_end - *window_start;
  }

  result.level_requests = level_sample.successes();
  result.level_failures = level_sample.failures;
  result.first_error = level_sample.first_error;
  result.late_sends = level_sample.late_sends;
  if (before.has_value() && after.has_value()) result.level_server = *after - *before;
  if (bricks_before.has_value() && bricks_after.has_value()) {
    result.level_bricks = Subtract(*bricks_after, *bricks_before);
  }
  return result;
}

}  // namespace torchbricks::perf
