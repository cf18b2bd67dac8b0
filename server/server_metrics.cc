#include "server/server_metrics.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "server/observability/metrics_exposition.h"
#include "server/repository/model_version.h"

namespace torchbricks::server {
namespace {

const char* CodeName(int code) {
  static const std::string* names = [] {
    auto* table = new std::string[kStatusCodes];
    for (int c = 0; c < kStatusCodes; ++c) {
      table[c] = absl::StatusCodeToString(static_cast<absl::StatusCode>(c));
    }
    return table;
  }();
  return names[code].c_str();
}

void AddVersionMetrics(const ModelVersion& version, MetricsExposition* out) {
  const VersionStats& stats = *version.statistics;
  const MetricLabels model = {{"model", version.model_name}, {"version", version.version_string}};
  for (int stage = 0; stage < kStageSlots; ++stage) {
    MetricLabels labels = model;
    labels.emplace_back("stage", ServedStageLabel(stage));
    for (int code = 0; code < kStatusCodes; ++code) {
      const uint64_t count = stats.outcomes[stage][code].load(std::memory_order_relaxed);
      if (count == 0) continue;
      MetricLabels with_code = labels;
      with_code.emplace_back("code", CodeName(code));
      out->AddSample("torchbricks_requests_total",
                     "Inference requests that reached a model version, by final status code.",
                     "counter", with_code, static_cast<double>(count));
    }
    const Histogram::Snapshot request = stats.request_seconds[stage].Read();
    if (request.count == 0 && stage == kStageSlots - 1) continue;
    out->AddHistogram("torchbricks_request_duration_seconds",
                      "Whole-request latency in the server, from receipt to response.", labels,
                      request);
    out->AddHistogram("torchbricks_queue_duration_seconds",
                      "Time requests waited in the batcher's queue.", labels,
                      stats.queue_seconds[stage].Read());
    out->AddHistogram("torchbricks_compute_duration_seconds",
                      "Run time of the batch a request was part of.", labels,
                      stats.compute_seconds[stage].Read());
  }
  out->AddHistogram("torchbricks_batch_size", "Rows per batch run (count: runs; sum: rows).", model,
                    stats.batch_rows.Read());
  if (version.batcher != nullptr) {
    out->AddSample("torchbricks_queued_requests", "Requests waiting in the batcher's queue.",
                   "gauge", model, static_cast<double>(version.batcher->queued()));
  }
  for (const std::string& device : version.plan.devices()) {
    MetricLabels labels = model;
    labels.emplace_back("device", device);
    out->AddSample("torchbricks_model_instances",
                   "Instances (worker threads) of the model version, by device: cpu or cuda:N.",
                   "gauge", labels, static_cast<double>(version.plan.InstancesOn(device)));
  }
  out->AddSample("torchbricks_model_load_duration_seconds",
                 "Time to load and warm up the model version.", "gauge", model,
                 version.load_seconds);
  const auto& bricks = version.servable->graph().bricks();
  for (int b = 0; b < stats.num_bricks(); ++b) {
    MetricLabels labels = model;
    labels.emplace_back("brick", bricks[b].name);
    out->AddSample("torchbricks_brick_executions_total", "Times each brick ran.", "counter", labels,
                   static_cast<double>(stats.brick_executions(b)));
    out->AddSample("torchbricks_brick_compute_seconds_total", "Time spent inside each brick.",
                   "counter", labels, static_cast<double>(stats.brick_ns(b)) / 1e9);
  }
  // A fused program runs its bricks as one: it is one "brick" label of its own, "<fused STAGE>".
  for (const FusedSpec& fused : version.servable->graph().fused()) {
    MetricLabels labels = model;
    labels.emplace_back("brick", fused.program.name);
    out->AddSample("torchbricks_brick_executions_total", "Times each brick ran.", "counter", labels,
                   static_cast<double>(stats.fused_executions(fused.stage)));
    out->AddSample("torchbricks_brick_compute_seconds_total", "Time spent inside each brick.",
                   "counter", labels, static_cast<double>(stats.fused_ns(fused.stage)) / 1e9);
  }
}

void AddProcessMetrics(MetricsExposition* out) {
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may hold spaces.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
  // fields[0] is field 3 of proc(5): utime is 14, stime 15, starttime 22, vsize 23, rss 24.
  auto field = [&](int number) {
    double value = 0;
    if (number - 3 < static_cast<int>(fields.size())) {
      (void)absl::SimpleAtod(fields[number - 3], &value);
    }
    return value;
  };
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  out->AddSample("process_cpu_seconds_total", "User and system CPU time of the process.", "counter",
                 {}, (field(14) + field(15)) / ticks);
  out->AddSample("process_virtual_memory_bytes", "Virtual memory size of the process.", "gauge", {},
                 field(23));
  out->AddSample("process_resident_memory_bytes", "Resident memory size of the process.", "gauge",
                 {}, field(24) * static_cast<double>(sysconf(_SC_PAGESIZE)));
  std::ifstream proc_stat("/proc/stat");
  std::string line;
  while (std::getline(proc_stat, line)) {
    if (line.rfind("btime ", 0) == 0) {
      double boot = 0;
      (void)absl::SimpleAtod(line.substr(6), &boot);
      out->AddSample("process_start_time_seconds", "Start time of the process since the epoch.",
                     "gauge", {}, boot + field(22) / ticks);
    }
  }
}

}  // namespace

std::string ScrapeMetrics(ServiceState& state) {
  MetricsExposition out;
  out.Declare("torchbricks_requests_total",
              "Inference requests that reached a model version, by final status code.", "counter");
  for (int code = 0; code < kStatusCodes; ++code) {
    const uint64_t count = state.refused[code].load(std::memory_order_relaxed);
    if (count == 0) continue;
    out.AddSample("torchbricks_requests_refused_total",
                  "Inference requests refused before reaching a model version (unknown or "
                  "unready model, server draining), by status code.",
                  "counter", {{"code", CodeName(code)}}, static_cast<double>(count));
  }
  out.Declare("torchbricks_requests_refused_total",
              "Inference requests refused before reaching a model version (unknown or unready "
              "model, server draining), by status code.",
              "counter");
  out.AddSample("torchbricks_requests_in_flight", "Inference requests being served now.", "gauge",
                {}, static_cast<double>(state.gate.in_flight()));
  out.AddSample("torchbricks_grpc_listener_up",
                "1 while gRPC accepts new connections; 0 once its listener was lost (the "
                "process must be restarted).",
                "gauge", {}, state.listener_lost.load() ? 0.0 : 1.0);
  if (ModelRepository* repository = state.repository.load()) {
    for (const IndexEntry& entry : repository->Index(/*ready_only=*/false)) {
      if (entry.version.empty()) continue;
      out.AddSample("torchbricks_model_ready", "1 when the model version is ready, else 0.",
                    "gauge", {{"model", entry.model_name}, {"version", entry.version}},
                    entry.state == "READY" ? 1 : 0);
    }
    for (const auto& [model, failures] : repository->LoadFailures()) {
      out.AddSample("torchbricks_model_load_failures_total", "Failed model version loads.",
                    "counter", {{"model", model}}, static_cast<double>(failures));
    }
    std::vector<std::string> models;
    for (const IndexEntry& entry : repository->Index(/*ready_only=*/true)) {
      if (models.empty() || models.back() != entry.model_name) models.push_back(entry.model_name);
    }
    for (const std::string& model : models) {
      for (const auto& version : repository->ReadyVersions(model)) {
        AddVersionMetrics(*version, &out);
      }
    }
  }
  AddProcessMetrics(&out);
  return out.Render();
}

}  // namespace torchbricks::server
