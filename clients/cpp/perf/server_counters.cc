#include "clients/cpp/perf/server_counters.h"

#include <map>
#include <utility>

#include "base/status_macros.h"

namespace torchbricks::perf {
namespace {

// A counter that went down was reset (its version reloaded): it counts from zero.
uint64_t Since(uint64_t later, uint64_t earlier) {
  return later >= earlier ? later - earlier : later;
}

CountedNs Minus(const CountedNs& later, const CountedNs& earlier) {
  return {.count = Since(later.count, earlier.count), .ns = Since(later.ns, earlier.ns)};
}

void Add(const inference::StatisticDuration& from, CountedNs& to) {
  to.count += from.count();
  to.ns += from.ns();
}

void Add(const CountedNs& from, CountedNs& to) {
  to.count += from.count;
  to.ns += from.ns;
}

}  // namespace

ServerCounters ServerCounters::operator-(const ServerCounters& earlier) const {
  return {.success = Minus(success, earlier.success),
          .fail = Minus(fail, earlier.fail),
          .queue = Minus(queue, earlier.queue),
          .compute_input = Minus(compute_input, earlier.compute_input),
          .compute_infer = Minus(compute_infer, earlier.compute_infer),
          .compute_output = Minus(compute_output, earlier.compute_output),
          .inference_count = Since(inference_count, earlier.inference_count),
          .execution_count = Since(execution_count, earlier.execution_count)};
}

ServerCounters& ServerCounters::operator+=(const ServerCounters& other) {
  Add(other.success, success);
  Add(other.fail, fail);
  Add(other.queue, queue);
  Add(other.compute_input, compute_input);
  Add(other.compute_infer, compute_infer);
  Add(other.compute_output, compute_output);
  inference_count += other.inference_count;
  execution_count += other.execution_count;
  return *this;
}

double ServerCounters::AverageBatch() const {
  return execution_count == 0 ? 0 : static_cast<double>(inference_count) / execution_count;
}

double ServerCounters::QueueUsPerRequest() const {
  return success.count == 0 ? 0 : queue.ns / 1e3 / success.count;
}

double ServerCounters::InferUsPerExecution() const {
  return success.count == 0 ? 0 : compute_infer.ns / 1e3 / success.count;
}

absl::StatusOr<ServerCounters> FetchServerCounters(client::InferenceClient& client,
                                                   absl::string_view model,
                                                   absl::string_view version) {
  ASSIGN_OR_RETURN(const inference::ModelStatisticsResponse response,
                   client.ModelStatistics(model, version));
  ServerCounters counters;
  for (const inference::ModelStatistics& stats : response.model_stats()) {
    if (stats.name() != model || (!version.empty() && stats.version() != version)) continue;
    const inference::InferStatistics& infer = stats.inference_stats();
    Add(infer.success(), counters.success);
    Add(infer.fail(), counters.fail);
    Add(infer.queue(), counters.queue);
    Add(infer.compute_input(), counters.compute_input);
    Add(infer.compute_infer(), counters.compute_infer);
    Add(infer.compute_output(), counters.compute_output);
    counters.inference_count += stats.inference_count();
    counters.execution_count += stats.execution_count();
  }
  return counters;
}

absl::StatusOr<BrickCounters> FetchBrickCounters(client::InferenceClient& client,
                                                 absl::string_view model,
                                                 absl::string_view version) {
  ASSIGN_OR_RETURN(const torchbricks::BrickStatisticsResponse response,
                   client.BrickStatistics(model, version));
  BrickCounters counters;
  for (const torchbricks::VersionBrickStatistics& served : response.versions()) {
    if (!version.empty() && served.model_version() != version) continue;
    for (const torchbricks::BrickStatistic& brick : served.bricks()) {
      counters.push_back({.version = served.model_version(),
                          .brick = brick.name(),
                          .runs = brick.executions(),
                          .compute_ns = brick.compute_ns()});
    }
  }
  return counters;
}

BrickCounters Subtract(const BrickCounters& later, const BrickCounters& earlier) {
  std::map<std::pair<std::string, std::string>, const BrickCounter*> before;
  for (const BrickCounter& brick : earlier) before[{brick.version, brick.brick}] = &brick;
  BrickCounters difference;
  for (const BrickCounter& brick : later) {
    BrickCounter delta = brick;
    if (const auto found = before.find({brick.version, brick.brick}); found != before.end()) {
      delta.runs = Since(brick.runs, found->second->runs);
      delta.compute_ns = Since(brick.compute_ns, found->second->compute_ns);
    }
    difference.push_back(std::move(delta));
  }
  return difference;
}

}  // namespace torchbricks::perf
