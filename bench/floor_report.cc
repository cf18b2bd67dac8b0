// The markdown report of floor_benchmark.
#include "bench/floor_report.h"

#include <algorithm>
#include <ctime>
#include <initializer_list>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace torchbricks::bench {
namespace {

// The targets of docs/PERFORMANCE.md.
constexpr double kLatencyRatioTarget = 1.10;  // W1 c=1 p50 ÷ (floor p50 + in-process p50)
constexpr double kShmExcessOverTinyUs = 40;   // shm p50 − in-process p50 ≤ tiny floor + this
constexpr double kW2At16Target = 0.90;        // W2 c=16 req/s ÷ in-process batch 16 images/s
constexpr double kW2At64Target = 0.85;        // W2 c=64 req/s ÷ in-process batch 64 images/s

std::string Fixed(double value, int digits) { return absl::StrFormat("%.*f", digits, value); }

// A figure whose points did not all run cleanly is not a result.
bool Clean(std::initializer_list<const FloorPoint*> points) {
  for (const FloorPoint* point : points) {
    if (point->p50s.empty() || point->errors > 0) return false;
  }
  return true;
}

std::string Value(bool clean, double figure, int digits) {
  return clean ? Fixed(figure, digits) : std::string("n/a");
}

const char* Verdict(bool clean, bool met) {
  return !clean ? "n/a (a point failed)" : met ? "met" : "**not met**";
}

std::string Header(const FloorOptions& options, const FloorResults& results) {
  std::string out = "# torchbricks-server at the floor\n\n";
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  absl::StrAppend(&out, "- date: ", date, "\n- rounds: ", options.rounds,
                  " (median of the rounds' figures), ", options.seconds, " s per point after ",
                  options.warmup_seconds, " s warm-up\n", "- CPUs: in-process runs and servers ",
                  options.server_cpus.empty() ? "any" : absl::StrJoin(options.server_cpus, ","),
                  ", load generator ",
                  options.client_cpus.empty() ? "any" : absl::StrJoin(options.client_cpus, ","),
                  "\n", "- server flags: --allow-client-shm true ",
                  absl::StrJoin(options.server_flags, " "), "\n- W1: ", Describe(results.w1),
                  "; W2: ", Describe(results.w2), "\n\n");
  return out;
}

std::string TargetsTable(const FloorResults& r) {
  const double inprocess_w1 = r.w1_inprocess.points.at(1).call_latency.p50_us;
  const double w2_16 = r.w2_inprocess.points.at(16).images_per_second;
  const double w2_64 = r.w2_inprocess.points.at(64).images_per_second;
  const double latency_ratio = r.server_w1.P50() / (r.floor_w1.P50() + inprocess_w1);
  const double shm_excess = r.server_w1_shm.P50() - inprocess_w1;
  const double shm_limit = r.floor_tiny.P50() + kShmExcessOverTinyUs;
  const double ratio_16 = r.server_w2_16.Rate() / w2_16;
  const double ratio_64 = r.server_w2_64.Rate() / w2_64;
  const bool latency_clean = Clean({&r.server_w1, &r.floor_w1});
  const bool shm_clean = Clean({&r.server_w1_shm, &r.floor_tiny});
  const bool w2_16_clean = Clean({&r.server_w2_16});
  const bool w2_64_clean = Clean({&r.server_w2_64});

  std::string out = "| figure | value | target | |\n|---|--:|--:|---|\n";
  absl::StrAppend(&out, "| W1 c=1 p50 ÷ (floor p50 + in-process p50) | ",
                  Value(latency_clean, latency_ratio, 2), " | ≤ 1.10 | ",
                  Verdict(latency_clean, latency_ratio <= kLatencyRatioTarget), " |\n");
  absl::StrAppend(&out, "| W1 c=1 p50 in shared memory − in-process p50 (µs) | ",
                  Value(shm_clean, shm_excess, 0), " | ≤ ", Fixed(shm_limit, 0),
                  " (tiny floor + 40) | ", Verdict(shm_clean, shm_excess <= shm_limit), " |\n");
  absl::StrAppend(&out, "| W2 c=16 req/s ÷ in-process batch 16 images/s | ",
                  Value(w2_16_clean, ratio_16, 2), " | ≥ 0.90 | ",
                  Verdict(w2_16_clean, ratio_16 >= kW2At16Target), " |\n");
  absl::StrAppend(&out, "| W2 c=64 req/s ÷ in-process batch 64 images/s | ",
                  Value(w2_64_clean, ratio_64, 2), " | ≥ 0.85 | ",
                  Verdict(w2_64_clean, ratio_64 >= kW2At64Target), " |\n\n");
  return out;
}

// The in-process rows of the table of points.
std::string InProcessRows(const FloorOptions& options, const FloorResults& r) {
  const BatchPoint& w1 = r.w1_inprocess.points.at(1);
  const BatchPoint& w2_16 = r.w2_inprocess.points.at(16);
  const BatchPoint& w2_64 = r.w2_inprocess.points.at(64);
  std::string out;
  absl::StrAppend(&out, "| in-process W1 batch 1 (1 thread) | ", Fixed(w1.call_latency.p50_us, 0),
                  " | ", Fixed(w1.images_per_second, 0), " | | | | |\n");
  absl::StrAppend(&out, "| in-process W1 batch 1, ", kIdleGapUs,
                  " µs idle between calls (1 thread) | ", Fixed(r.w1_inprocess.idle_gap_p50_us, 0),
                  " | | | | | |\n");
  absl::StrAppend(&out, "| in-process W2 batch 16 (", options.w2_threads, " threads) | ",
                  Fixed(w2_16.call_latency.p50_us, 0), " | ", Fixed(w2_16.images_per_second, 0),
                  " | | | | |\n");
  absl::StrAppend(&out, "| in-process W2 batch 64 (", options.w2_threads, " threads) | ",
                  Fixed(w2_64.call_latency.p50_us, 0), " | ", Fixed(w2_64.images_per_second, 0),
                  " | | | | |\n");
  for (const auto& [batch, layout] :
       {std::pair<int, const absl::StatusOr<double>*>{8, &r.layout_8}, {32, &r.layout_32}}) {
    absl::StrAppend(&out, "| in-process W2, 2 threads × 1 intra-op thread, each batch ", batch,
                    " (the server's layout) | | ",
                    layout->ok() ? Fixed(**layout, 0) : layout->status().ToString(),
                    " | | | | |\n");
  }
  return out;
}

// The served rows of the table of points, each failed one followed by its first error.
std::string ServedRows(const FloorResults& r) {
  std::string out;
  for (const auto& [point, concurrency, counted] :
       {std::tuple<const FloorPoint*, int, bool>{&r.floor_tiny, 1, false},
        {&r.floor_w1, 1, false},
        {&r.server_w1, 1, true},
        {&r.server_w1_shm, 1, true},
        {&r.server_w2_16, 16, true},
        {&r.server_w2_64, 64, true}}) {
    absl::StrAppend(&out, "| ", point->label, " c=", concurrency, " | ", Fixed(point->P50(), 0),
                    " | ", Fixed(point->Rate(), 0), " | ");
    if (counted) {
      absl::StrAppend(&out, Fixed(point->counters.AverageBatch(), 2), " | ",
                      Fixed(point->counters.QueueUsPerRequest(), 0), " | ",
                      Fixed(point->counters.InferUsPerExecution(), 0), " | ");
    } else {
      absl::StrAppend(&out, " | | | ");
    }
    absl::StrAppend(&out, point->errors, " |\n");
    if (point->errors > 0) {
      absl::StrAppend(&out, "\n", point->label, ": ", point->first_error, "\n\n");
    }
  }
  return out;
}

std::string VersusSection(const std::vector<Versus>& versus) {
  std::string out =
      "\nAgainst the Python torchbricks + grpcio server (bench/python_server.py), one run "
      "each:\n\n| workload | c | ours req/s | Python req/s | throughput ratio | ours p50 µs | "
      "Python p50 µs | p50 ratio (Python ÷ ours) |\n|---|--:|--:|--:|--:|--:|--:|--:|\n";
  for (const Versus& point : versus) {
    absl::StrAppend(&out, "| ", point.workload, " | ", point.concurrency, " | ",
                    Fixed(point.ours.Rate(), 0), " | ", Fixed(point.theirs.Rate(), 0), " | ",
                    Fixed(point.ours.Rate() / std::max(point.theirs.Rate(), 1e-9), 2), " | ",
                    Fixed(point.ours.P50(), 0), " | ", Fixed(point.theirs.P50(), 0), " | ",
                    Fixed(point.theirs.P50() / std::max(point.ours.P50(), 1e-9), 2), " |\n");
    if (point.theirs.errors > 0) {
      absl::StrAppend(&out, "\nPython server: ", point.theirs.first_error, "\n\n");
    }
  }
  return out;
}

}  // namespace

std::string RenderFloorReport(const FloorOptions& options, const FloorResults& results) {
  std::string report = Header(options, results) + TargetsTable(results);
  absl::StrAppend(&report,
                  "| point | p50 µs | req/s | server avg batch | server queue µs/req | server "
                  "infer µs/exec | errors |\n",
                  "|---|--:|--:|--:|--:|--:|--:|\n");
  absl::StrAppend(&report, InProcessRows(options, results), ServedRows(results));
  if (!results.versus.empty()) absl::StrAppend(&report, VersusSection(results.versus));
  absl::StrAppend(&report,
                  "\n- torchbricks-server exit status after SIGTERM: ", results.server_exit,
                  "\n- floor_server exit status after SIGTERM: ", results.floor_exit, "\n");
  if (results.python_exit.has_value()) {
    absl::StrAppend(&report, "- Python server exit status after SIGTERM: ", *results.python_exit,
                    "\n");
  }
  return report;
}

bool HasFailures(const FloorResults& results) {
  for (const FloorPoint* point :
       {&results.floor_tiny, &results.floor_w1, &results.server_w1, &results.server_w1_shm,
        &results.server_w2_16, &results.server_w2_64}) {
    if (point->errors > 0) return true;
  }
  for (const Versus& point : results.versus) {
    if (point.ours.errors > 0 || point.theirs.errors > 0) return true;
  }
  return false;
}

}  // namespace torchbricks::bench
