// Markdown rendering of load_driver results.
#include "bench/benchmark_report.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace torchbricks::bench {
namespace {

// Display width of UTF-8 text: code points, not bytes ("µs" is two columns wide).
size_t Width(const std::string& text) {
  size_t width = 0;
  for (unsigned char c : text) width += (c & 0xC0) != 0x80;
  return width;
}

// A markdown table whose columns are padded to a common width.
class MarkdownTable {
 public:
  explicit MarkdownTable(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  std::string Render() const {
    std::vector<size_t> widths(rows_[0].size(), 3);
    for (const auto& row : rows_) {
      for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
        widths[i] = std::max(widths[i], Width(row[i]));
      }
    }
    std::string out;
    for (size_t r = 0; r < rows_.size(); ++r) {
      out += "|";
      for (size_t i = 0; i < widths.size(); ++i) {
        const std::string cell = i < rows_[r].size() ? rows_[r][i] : "";
        out += " " + std::string(widths[i] - Width(cell), ' ') + cell + " |";
      }
      out += "\n";
      if (r == 0) {
        out += "|";
        for (size_t width : widths) out += std::string(width + 1, '-') + ":|";
        out += "\n";
      }
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string Fixed(double value, int digits = 0) { return absl::StrFormat("%.*f", digits, value); }

std::string InProcessSection(const WorkloadResult& result) {
  std::string out = "In-process (`LoadedCollection::Run`, one caller thread):\n\n";
  if (!result.inprocess_error.empty()) {
    return out + "**not measured**: " + result.inprocess_error + "\n\n";
  }
  MarkdownTable table({"batch", "images/s", "calls", "p50 µs/call", "p99 µs/call", "p50 µs/image"});
  for (const BatchPoint& point : result.inprocess) {
    table.AddRow({absl::StrCat(point.batch_size), Fixed(point.images_per_second),
                  absl::StrCat(point.calls), Fixed(point.call_latency.p50_us),
                  Fixed(point.call_latency.p99_us),
                  Fixed(point.call_latency.p50_us / point.batch_size, 1)});
  }
  out += table.Render() + "\n";
  if (const BatchPoint* best = BestBatch(result.inprocess)) {
    out += absl::StrCat("Best batch: ", best->batch_size, " → ", Fixed(best->images_per_second),
                        " images/s.");
  }
  if (const BatchPoint* one = BatchOfOne(result.inprocess)) {
    out += absl::StrCat(" Batch-1 p50: ", Fixed(one->call_latency.p50_us), " µs.");
  }
  return out + "\n\n";
}

std::string ServerSection(const WorkloadResult& result) {
  std::string out = "Server (gRPC `ModelInfer`, closed loop, C requests outstanding):\n\n";
  const BatchPoint* best = BestBatch(result.inprocess);
  MarkdownTable table({"C", "req/s", "p50 µs", "p90 µs", "p99 µs", "vs best batch",
                       "server avg batch", "queue µs/req", "batch run µs", "errors", "server cores",
                       "client cores", "idle cores"});
  std::string notes;
  for (const ServerPoint& point : result.server) {
    const ClosedLoopResult& load = point.load;
    const bool counted = point.counters_error.empty();
    table.AddRow(
        {absl::StrCat(point.concurrency), Fixed(load.requests_per_second),
         Fixed(load.latency.p50_us), Fixed(load.latency.p90_us), Fixed(load.latency.p99_us),
         best != nullptr ? Fixed(load.requests_per_second / best->images_per_second, 2) : "-",
         counted ? Fixed(point.counters.AverageBatch(), 2) : "?",
         counted ? Fixed(point.counters.QueueUsPerRequest()) : "?",
         counted ? Fixed(point.counters.InferUsPerExecution()) : "?", absl::StrCat(load.errors),
         point.cores.ok() && point.cores->server >= 0 ? Fixed(point.cores->server, 2) : "?",
         point.cores.ok() ? Fixed(point.cores->client, 2) : "?",
         point.cores.ok() ? Fixed(point.cores->idle, 2) : "?"});
    if (load.errors > 0) {
      notes += absl::StrCat("- **C=", point.concurrency, ": ", load.errors,
                            " failed request(s)**, first: ", load.first_error, "\n");
    }
    if (!counted) {
      notes += absl::StrCat("- C=", point.concurrency,
                            ": no ModelStatistics: ", point.counters_error, "\n");
    }
  }
  if (!result.server.empty()) out += table.Render() + "\n";
  if (!result.server_error.empty()) {
    notes += "- **server points stopped**: " + result.server_error + "\n";
  }
  const BatchPoint* one = BatchOfOne(result.inprocess);
  for (const ServerPoint& point : result.server) {
    if (point.concurrency != 1 || one == nullptr || point.load.completed == 0) continue;
    notes += absl::StrFormat(
        "- %s C=1: p50(server) − p50(in-process batch 1) = %+.0f µs (%.0f vs %.0f µs)\n",
        result.workload.id, point.load.latency.p50_us - one->call_latency.p50_us,
        point.load.latency.p50_us, one->call_latency.p50_us);
  }
  return out + notes + "\n";
}

}  // namespace

std::string RenderReport(const std::vector<std::pair<std::string, std::string>>& facts,
                         const std::vector<WorkloadResult>& results) {
  std::string out = "# Dynamic batching, measured against the in-process limit\n\n";
  for (const auto& [label, value] : facts) out += "- " + label + ": " + value + "\n";
  out += "\n";
  for (const WorkloadResult& result : results) {
    out += absl::StrCat("## ", result.workload.id, " — ", Describe(result.workload), "\n\n");
    out += InProcessSection(result);
    out += ServerSection(result);
  }
  return out;
}

bool HasFailures(const std::vector<WorkloadResult>& results) {
  for (const WorkloadResult& result : results) {
    if (!result.inprocess_error.empty() || !result.server_error.empty()) return true;
    for (const ServerPoint& point : result.server) {
      if (point.load.errors > 0) return true;
    }
  }
  return false;
}

}  // namespace torchbricks::bench
