#include "server/scheduling/self_configuration.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace torchbricks::server {
namespace {

// Layouts whose score is within this fraction of the best count as equally fast (the spread
// of one layout's score between loads on this machine is about 3 %).
constexpr double kThroughputTie = 0.05;

// A batch counts as the peak of its layout's curve when every larger measured batch gives
// this fraction fewer rows per second or worse.
constexpr double kFallAfterPeak = 0.05;

// A layout of several instances whose runs take longer than one instance's (with the same
// intra-op threads, at the same batch) by more than this factor, on geometric average, did
// not get a core per instance: something else on the machine holds them. Served, its
// instances would share those cores with the front end as well, so it is left out (measured
// at W2: quiet, two instances ran at 0.96 of one instance's speed and served 28 % more; with a
// busy core, at 0.55-0.74, and served 27 % less; docs/PERFORMANCE.md).
constexpr double kMinParallelEfficiency = 0.85;
// The batch sizes measured grow by this factor (1, 4, 16, 64, ...).
constexpr int64_t kBatchStep = 4;

// The longest latency objective accepted, in milliseconds (an hour).
constexpr double kMaxObjectiveMs = 3600000;

// The most characters of a bad parameter value an error message quotes.
constexpr size_t kQuotedValueChars = 64;

const std::string* Parameter(const config::ModelConfig& config, const std::string& key) {
  auto found = config.parameters().find(key);
  return found == config.parameters().end() ? nullptr : &found->second;
}

// The fastest batch-1 run measured for `layout`; InfiniteDuration when none was.
absl::Duration BatchOneRun(const std::vector<CalibrationPoint>& points, const Layout& layout) {
  absl::Duration best = absl::InfiniteDuration();
  for (const CalibrationPoint& point : points) {
    if (point.layout == layout && point.batch == 1) best = std::min(best, point.run_time);
  }
  return best;
}

// How fast `layout`'s runs are against those of the measured layout with the same intra-op
// threads and the fewest instances, below `layout`'s: the geometric mean over the batches both
// measured of (that layout's run time / this one's). 1 when there is nothing to compare with.
double ParallelEfficiency(const std::vector<CalibrationPoint>& points, const Layout& layout) {
  int fewest = layout.instances;
  for (const CalibrationPoint& point : points) {
    if (point.layout.intra_op_threads == layout.intra_op_threads) {
      fewest = std::min(fewest, point.layout.instances);
    }
  }
  if (fewest == layout.instances) return 1;
  const Layout reference{fewest, layout.intra_op_threads};
  double log_sum = 0;
  int batches = 0;
  for (const CalibrationPoint& mine : points) {
    if (!(mine.layout == layout) || mine.run_time <= absl::ZeroDuration()) continue;
    for (const CalibrationPoint& theirs : points) {
      if (theirs.layout == reference && theirs.batch == mine.batch &&
          theirs.run_time > absl::ZeroDuration()) {
        log_sum += std::log(absl::FDivDuration(theirs.run_time, mine.run_time));
        ++batches;
        break;
      }
    }
  }
  return batches == 0 ? 1 : std::exp(log_sum / batches);
}

// The measured layouts whose instances did not run in parallel (kMinParallelEfficiency).
std::vector<Layout> ContendedLayouts(const std::vector<CalibrationPoint>& points) {
  std::vector<Layout> contended;
  for (const CalibrationPoint& point : points) {
    if (std::find(contended.begin(), contended.end(), point.layout) == contended.end() &&
        ParallelEfficiency(points, point.layout) < kMinParallelEfficiency) {
      contended.push_back(point.layout);
    }
  }
  return contended;
}

// A measured layout's score under the objective.
struct LayoutScore {
  Layout layout;
  double log_rows_sum = 0;  // over the points that keep the objective
  int points = 0;
  CalibrationPoint best;  // the one with the most rows per second
  double geometric_mean() const { return std::exp(log_rows_sum / points); }
};

// Per layout, in first-measured order, its score over the points whose estimate keeps
// `objective`; layouts with no such point, and those in `left_out`, are left out.
std::vector<LayoutScore> ScoreLayouts(const std::vector<CalibrationPoint>& points,
                                      absl::Duration delay, absl::Duration objective,
                                      const std::vector<Layout>& left_out) {
  auto is_left_out = [&](const Layout& layout) {
    return std::find(left_out.begin(), left_out.end(), layout) != left_out.end();
  };
  // Only batches measured for every layout in the running: a budget that ran out part-way
  // through a batch would otherwise favour the layouts measured first at it.
  std::map<int64_t, int> layouts_at_batch;
  std::vector<Layout> running;
  for (const CalibrationPoint& point : points) {
    if (is_left_out(point.layout)) continue;
    ++layouts_at_batch[point.batch];
    if (std::find(running.begin(), running.end(), point.layout) == running.end()) {
      running.push_back(point.layout);
    }
  }
  bool common_batch_measured = false;
  for (const auto& [batch, layouts] : layouts_at_batch) {
    common_batch_measured |= layouts == static_cast<int>(running.size());
  }
  std::vector<LayoutScore> scores;
  for (const CalibrationPoint& point : points) {
    if (EstimatedP99(point, delay) > objective || point.rows_per_second <= 0 ||
        is_left_out(point.layout) ||
        (common_batch_measured &&
         layouts_at_batch[point.batch] < static_cast<int>(running.size()))) {
      continue;
    }
    auto same = std::find_if(scores.begin(), scores.end(),
                             [&](const LayoutScore& s) { return s.layout == point.layout; });
    if (same == scores.end()) {
      scores.push_back({.layout = point.layout, .best = point});
      same = scores.end() - 1;
    } else if (point.rows_per_second > same->best.rows_per_second) {
      same->best = point;
    }
    same->log_rows_sum += std::log(point.rows_per_second);
    ++same->points;
  }
  return scores;
}

// The chosen layout's peak batch when the curve falls after it; 0 otherwise.
int64_t PeakBeforeFall(const std::vector<CalibrationPoint>& points, const CalibrationPoint& basis,
                       absl::Duration delay, absl::Duration objective) {
  bool larger_measured = false;
  for (const CalibrationPoint& point : points) {
    if (!(point.layout == basis.layout) || point.batch <= basis.batch ||
        EstimatedP99(point, delay) > objective) {
      continue;
    }
    larger_measured = true;
    if (point.rows_per_second > basis.rows_per_second * (1 - kFallAfterPeak)) return 0;
  }
  return larger_measured ? basis.batch : 0;
}

std::string Milliseconds(absl::Duration duration) {
  return absl::StrCat(std::round(absl::ToDoubleMilliseconds(duration) * 100) / 100, " ms");
}

}  // namespace

std::string Layout::ToString() const {
  return absl::StrCat(instances, instances == 1 ? " instance" : " instances", " x ",
                      intra_op_threads,
                      intra_op_threads == 1 ? " intra-op thread" : " intra-op threads");
}

std::string OpenSettings::ToString() const {
  std::vector<std::string> names;
  if (layout) names.push_back("instance layout");
  if (preferred_batch_sizes) names.push_back("preferred batch sizes");
  if (queue_delay) names.push_back("queue delay");
  if (max_batch_size) names.push_back("max_batch_size");
  return names.empty() ? "nothing" : absl::StrJoin(names, ", ");
}

OpenSettings OpenSettingsOf(const config::ModelConfig& config) {
  OpenSettings open;
  open.layout = config.instance_group().empty();
  open.preferred_batch_sizes = config.dynamic_batching().preferred_batch_size().empty();
  open.queue_delay = !config.has_dynamic_batching();
  open.max_batch_size = !config.has_max_batch_size();
  return open;
}

absl::StatusOr<bool> SelfConfigurationWanted(const config::ModelConfig& config) {
  const std::string* value = Parameter(config, "self_configuration");
  if (value == nullptr || *value == "on") return true;
  if (*value == "off") return false;
  return absl::InvalidArgumentError(absl::StrCat("parameters[\"self_configuration\"] is '",
                                                 value->substr(0, kQuotedValueChars),
                                                 "'; it takes \"on\" (the default) or \"off\""));
}

absl::StatusOr<absl::Duration> LatencyObjectiveOf(const config::ModelConfig& config) {
  const std::string* value = Parameter(config, "latency_objective_p99_ms");
  if (value == nullptr) return absl::InfiniteDuration();
  double milliseconds = 0;
  if (!absl::SimpleAtod(*value, &milliseconds) || !(milliseconds > 0) ||
      milliseconds > kMaxObjectiveMs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "parameters[\"latency_objective_p99_ms\"] is '", value->substr(0, kQuotedValueChars),
        "'; it takes a number of milliseconds above 0 and at most ", kMaxObjectiveMs));
  }
  return absl::Milliseconds(milliseconds);
}

std::vector<Layout> CandidateLayouts(int cores) {
  cores = std::max(cores, 1);
  std::vector<Layout> layouts;
  auto add = [&](int instances, int threads) {
    const Layout layout{instances, threads};
    if (instances >= 1 && std::find(layouts.begin(), layouts.end(), layout) == layouts.end()) {
      layouts.push_back(layout);
    }
  };
  for (int threads = 1; threads <= cores; threads *= 2) {
    add(cores / threads, threads);
    add((cores - 1) / threads, threads);
  }
  if (layouts.empty()) add(1, 1);
  return layouts;
}

std::vector<int64_t> CalibrationBatches(int max_batch_size) {
  std::vector<int64_t> batches;
  for (int64_t batch = 1; batch < max_batch_size; batch *= kBatchStep) batches.push_back(batch);
  if (max_batch_size >= 1) batches.push_back(max_batch_size);
  if (batches.empty()) batches.push_back(1);
  return batches;
}

absl::Duration EstimatedP99(const CalibrationPoint& point, absl::Duration queue_delay) {
  return queue_delay + 2 * point.run_time;
}

SelfConfiguration ChooseConfiguration(const std::vector<CalibrationPoint>& points,
                                      const OpenSettings& open, const BatchPolicy& policy,
                                      absl::Duration objective) {
  SelfConfiguration chosen;
  chosen.preferred_batch_sizes = policy.preferred_batch_sizes;
  chosen.max_queue_delay = open.queue_delay ? absl::ZeroDuration() : policy.max_queue_delay;
  chosen.max_batch_size = policy.max_batch_size;
  const absl::Duration delay = chosen.max_queue_delay;

  const std::vector<Layout> contended =
      open.layout ? ContendedLayouts(points) : std::vector<Layout>();
  std::vector<LayoutScore> scores = ScoreLayouts(points, delay, objective, contended);
  if (scores.empty()) {
    // No point keeps the objective: the one that comes closest.
    chosen.objective_met = false;
    const CalibrationPoint closest = *std::min_element(
        points.begin(), points.end(), [&](const CalibrationPoint& a, const CalibrationPoint& b) {
          return EstimatedP99(a, delay) < EstimatedP99(b, delay);
        });
    scores.push_back({.layout = closest.layout, .points = 1, .best = closest});
  }
  double top = 0;
  for (const LayoutScore& score : scores) top = std::max(top, score.geometric_mean());
  const LayoutScore* basis = nullptr;
  for (const LayoutScore& score : scores) {
    if (score.geometric_mean() < top * (1 - kThroughputTie)) continue;
    if (basis == nullptr ||
        BatchOneRun(points, score.layout) < BatchOneRun(points, basis->layout)) {
      basis = &score;
    }
  }
  chosen.basis = basis->best;
  chosen.layout = basis->layout;

  if (open.preferred_batch_sizes) {
    const int64_t peak = PeakBeforeFall(points, chosen.basis, delay, objective);
    chosen.preferred_batch_sizes.clear();
    if (peak > 1) chosen.preferred_batch_sizes.push_back(static_cast<int>(peak));
  }
  if (open.max_batch_size && objective != absl::InfiniteDuration() && chosen.objective_met) {
    // Lowered only below a batch measured to miss the objective (a budget that ran out before
    // the large batches says nothing against them), and never below a preferred size.
    int64_t largest_kept = 0;
    int64_t smallest_missed = 0;
    for (const CalibrationPoint& point : points) {
      if (!(point.layout == chosen.layout)) continue;
      if (EstimatedP99(point, delay) <= objective) {
        largest_kept = std::max(largest_kept, point.batch);
      } else if (smallest_missed == 0 || point.batch < smallest_missed) {
        smallest_missed = point.batch;
      }
    }
    int64_t floor = largest_kept;
    for (int size : chosen.preferred_batch_sizes) floor = std::max<int64_t>(floor, size);
    if (smallest_missed > largest_kept && floor > 0 && floor < chosen.max_batch_size) {
      chosen.max_batch_size = static_cast<int>(floor);
    }
  }
  chosen.summary = absl::StrCat(
      chosen.layout.ToString(), ", preferred batch sizes [",
      absl::StrJoin(chosen.preferred_batch_sizes, ", "), "], queue delay ",
      absl::ToInt64Microseconds(chosen.max_queue_delay), " us, max_batch_size ",
      chosen.max_batch_size, " (chose: ", open.ToString(),
      "; basis: ", std::lround(chosen.basis.rows_per_second), " rows/s at batch ",
      chosen.basis.batch, ", run ", Milliseconds(chosen.basis.run_time), "; latency objective p99 ",
      objective == absl::InfiniteDuration() ? "none" : Milliseconds(objective),
      chosen.objective_met ? "" : ", not met by any measured point",
      contended.empty() ? "" : "; left out, its instances ran slower than one alone: ",
      absl::StrJoin(
          contended, ", ",
          [](std::string* out, const Layout& layout) { absl::StrAppend(out, layout.ToString()); }),
      ")");
  return chosen;
}

config::ModelConfig PinnedConfig(const config::ModelConfig& original, const OpenSettings& open,
                                 const SelfConfiguration& chosen) {
  config::ModelConfig pinned = original;
  if (open.layout) {
    config::InstanceGroup* group = pinned.add_instance_group();
    group->set_kind(config::InstanceGroup::KIND_CPU);
    group->set_count(chosen.layout.instances);
    group->set_intra_op_threads(chosen.layout.intra_op_threads);
  }
  if (open.preferred_batch_sizes) {
    for (int size : chosen.preferred_batch_sizes) {
      pinned.mutable_dynamic_batching()->add_preferred_batch_size(size);
    }
  }
  if (open.queue_delay) {
    pinned.mutable_dynamic_batching()->set_max_queue_delay_microseconds(
        static_cast<uint64_t>(absl::ToInt64Microseconds(chosen.max_queue_delay)));
  }
  if (open.max_batch_size) pinned.set_max_batch_size(chosen.max_batch_size);
  // The pinned file is explicit everywhere: measuring again would choose nothing.
  (*pinned.mutable_parameters())["self_configuration"] = "off";
  return pinned;
}

}  // namespace torchbricks::server
