#include "clients/cpp/perf/perf_report.h"

#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace torchbricks::perf {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

const char* LevelColumn(LoadMode mode) {
  return mode == LoadMode::kConcurrency ? "Concurrency" : "Request Rate";
}

std::string LevelText(double level) { return absl::StrFormat("%g", level); }

int64_t WholeUs(double us) { return static_cast<int64_t>(std::llround(us)); }

// A CSV field: quoted when it holds a comma, a quote or a line break.
std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

Value Number(double number) {
  Value value;
  value.set_number_value(number);
  return value;
}
Value Text(const std::string& text) {
  Value value;
  value.set_string_value(text);
  return value;
}
Value Bool(bool flag) {
  Value value;
  value.set_bool_value(flag);
  return value;
}
Value Object(Struct fields) {
  Value value;
  *value.mutable_struct_value() = std::move(fields);
  return value;
}

void Put(Struct& object, const std::string& key, Value value) {
  (*object.mutable_fields())[key] = std::move(value);
}

Struct ServerJson(const ServerCounters& server) {
  Struct json;
  Put(json, "success_count", Number(static_cast<double>(server.success.count)));
  Put(json, "fail_count", Number(static_cast<double>(server.fail.count)));
  Put(json, "inference_count", Number(static_cast<double>(server.inference_count)));
  Put(json, "execution_count", Number(static_cast<double>(server.execution_count)));
  Put(json, "avg_request_us", Number(server.success.AverageUs()));
  Put(json, "queue_us", Number(server.queue.AverageUs()));
  Put(json, "compute_input_us", Number(server.compute_input.AverageUs()));
  Put(json, "compute_infer_us", Number(server.compute_infer.AverageUs()));
  Put(json, "compute_output_us", Number(server.compute_output.AverageUs()));
  return json;
}

Value LevelJson(LoadMode mode, const LevelResult& level) {
  Struct json;
  Put(json, mode == LoadMode::kConcurrency ? "concurrency" : "request_rate", Number(level.level));
  Put(json, "stable", Bool(level.stable));
  Put(json, "windows", Number(level.windows));
  Put(json, "reported_windows", Number(level.reported_windows));
  Struct client;
  Put(client, "requests", Number(static_cast<double>(level.requests)));
  Put(client, "seconds", Number(level.seconds));
  Put(client, "requests_per_second", Number(level.requests_per_second));
  Put(client, "inferences_per_second", Number(level.inferences_per_second));
  Put(client, "avg_us", Number(level.latency.avg_us));
  Put(client, "p50_us", Number(level.latency.p50_us));
  Put(client, "p90_us", Number(level.latency.p90_us));
  Put(client, "p95_us", Number(level.latency.p95_us));
  Put(client, "p99_us", Number(level.latency.p99_us));
  Put(client, "send_us", Number(level.client_send_us));
  Put(client, "recv_us", Number(level.client_recv_us));
  Put(client, "network_and_server_overhead_us", Number(level.NetworkAndServerOverheadUs()));
  Put(json, "client", Object(std::move(client)));
  Put(json, "server", Object(ServerJson(level.server)));
  Struct whole;
  Put(whole, "requests", Number(static_cast<double>(level.level_requests)));
  Put(whole, "failures", Number(static_cast<double>(level.level_failures)));
  Put(whole, "first_error", Text(level.first_error));
  Put(whole, "late_sends", Number(static_cast<double>(level.late_sends)));
  Put(whole, "server", Object(ServerJson(level.level_server)));
  Put(whole, "statistics_error", Text(level.statistics_error));
  Put(whole, "brick_statistics_error", Text(level.brick_statistics_error));
  Put(json, "level", Object(std::move(whole)));
  Value bricks;
  bricks.mutable_list_value();
  for (const BrickCounter& brick : level.level_bricks) {
    Struct row;
    Put(row, "version", Text(brick.version));
    Put(row, "brick", Text(brick.brick));
    Put(row, "runs", Number(static_cast<double>(brick.runs)));
    Put(row, "avg_us", Number(brick.AverageUs()));
    *bricks.mutable_list_value()->add_values() = Object(std::move(row));
  }
  Put(json, "bricks", std::move(bricks));
  return Object(std::move(json));
}

}  // namespace

std::string LatencyCsv(LoadMode mode, const std::vector<LevelResult>& levels) {
  std::string csv =
      absl::StrCat(LevelColumn(mode),
                   ",Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
                   "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,"
                   "p50 latency,p90 latency,p95 latency,p99 latency\n");
  for (const LevelResult& level : levels) {
    absl::StrAppend(
        &csv, LevelText(level.level), ",", absl::StrFormat("%.2f", level.inferences_per_second),
        ",", WholeUs(level.client_send_us), ",", WholeUs(level.NetworkAndServerOverheadUs()), ",",
        WholeUs(level.server.queue.AverageUs()), ",",
        WholeUs(level.server.compute_input.AverageUs()), ",",
        WholeUs(level.server.compute_infer.AverageUs()), ",",
        WholeUs(level.server.compute_output.AverageUs()), ",", WholeUs(level.client_recv_us), ",",
        WholeUs(level.latency.p50_us), ",", WholeUs(level.latency.p90_us), ",",
        WholeUs(level.latency.p95_us), ",", WholeUs(level.latency.p99_us), "\n");
  }
  return csv;
}

std::string BrickCsv(LoadMode mode, const std::vector<LevelResult>& levels) {
  std::string csv = absl::StrCat(LevelColumn(mode), ",Version,Brick,Runs,Avg Compute (us)\n");
  for (const LevelResult& level : levels) {
    for (const BrickCounter& brick : level.level_bricks) {
      if (brick.runs == 0) continue;
      absl::StrAppend(&csv, LevelText(level.level), ",", CsvField(brick.version), ",",
                      CsvField(brick.brick), ",", brick.runs, ",",
                      absl::StrFormat("%.1f", brick.AverageUs()), "\n");
    }
  }
  return csv;
}

std::string JsonSummary(const PerfOptions& options, const std::vector<LevelResult>& levels) {
  Struct json;
  Put(json, "model", Text(options.model));
  Put(json, "model_version", Text(options.model_version));
  Put(json, "stage", Text(options.stage.empty() ? "INFERENCE" : options.stage));
  Put(json, "mode", Text(options.mode == LoadMode::kConcurrency ? "concurrency" : "request_rate"));
  Put(json, "batch_size", Number(static_cast<double>(options.batch_size)));
  Put(json, "shared_memory",
      Text(options.shared_memory == SharedMemoryKind::kSystem ? "system" : "none"));
  Put(json, "measurement_interval_ms",
      Number(absl::ToDoubleMilliseconds(options.measurement_interval)));
  Put(json, "stability_percentage", Number(options.stability_percentage));
  Put(json, "max_trials", Number(options.max_trials));
  Value list;
  list.mutable_list_value();
  for (const LevelResult& level : levels) {
    *list.mutable_list_value()->add_values() = LevelJson(options.mode, level);
  }
  Put(json, "levels", std::move(list));
  std::string text;
  google::protobuf::util::JsonPrintOptions print;
  print.add_whitespace = true;
  print.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(json, &text, print);
  return text;
}

void PrintSettings(std::ostream& out, const PerfOptions& options) {
  out << "*** Measurement Settings ***\n"
      << "  Model: " << options.model << " (version "
      << (options.model_version.empty() ? "newest" : options.model_version) << ", stage "
      << (options.stage.empty() ? "INFERENCE" : options.stage) << ")\n"
      << "  Outputs: "
      << (options.outputs.empty() ? "the stage's terminal outputs"
                                  : absl::StrJoin(options.outputs, ", "))
      << "\n  Batch size: " << options.batch_size << "\n"
      << "  Measurement window: " << absl::ToInt64Milliseconds(options.measurement_interval)
      << " msec, stable within " << options.stability_percentage << "% over 3 windows, at most "
      << options.max_trials << " windows per level\n"
      << "  Load: "
      << (options.mode == LoadMode::kConcurrency ? "closed loop (concurrency)"
                                                 : "open loop (request rate)")
      << ", at most " << options.max_threads << " client threads\n"
      << "  Input data: " << options.input_data << ", shared memory: "
      << (options.shared_memory == SharedMemoryKind::kSystem ? "system" : "none") << "\n\n";
}

void PrintLevel(std::ostream& out, const PerfOptions& options, const LevelResult& level) {
  const ServerCounters& server = level.server;
  out << (options.mode == LoadMode::kConcurrency ? "Request concurrency: " : "Request rate: ")
      << LevelText(level.level) << "\n"
      << "  Client:\n"
      << absl::StrFormat("    Request count: %d (%d %s windows of %d)\n", level.requests,
                         level.reported_windows, level.stable ? "stable" : "UNSTABLE",
                         level.windows)
      << absl::StrFormat("    Throughput: %.2f infer/sec\n", level.inferences_per_second)
      << absl::StrFormat(
             "    Avg latency: %.0f usec (p50 %.0f, p90 %.0f, p95 %.0f, p99 %.0f usec)\n",
             level.latency.avg_us, level.latency.p50_us, level.latency.p90_us, level.latency.p95_us,
             level.latency.p99_us)
      << absl::StrFormat(
             "    Avg gRPC time: send %.0f + network and server %.0f + recv %.0f usec\n",
             level.client_send_us, level.NetworkAndServerOverheadUs(), level.client_recv_us)
      << "  Server:\n"
      << absl::StrFormat("    Inference count: %d, execution count: %d, successful requests: %d\n",
                         server.inference_count, server.execution_count, server.success.count)
      << absl::StrFormat(
             "    Avg request latency: %.0f usec (queue %.0f + compute input %.0f + compute "
             "infer %.0f + compute output %.0f usec)\n",
             server.success.AverageUs(), server.queue.AverageUs(), server.compute_input.AverageUs(),
             server.compute_infer.AverageUs(), server.compute_output.AverageUs())
      << absl::StrFormat(
             "  Whole level: %d successful requests seen by the client, %d by the server; %d "
             "failed\n",
             level.level_requests, level.level_server.success.count, level.level_failures);
  if (level.late_sends > 0) {
    out << "  " << level.late_sends
        << " requests left more than 1 ms after their time (the client fell behind)\n";
  }
  if (!level.first_error.empty()) out << "  First error: " << level.first_error << "\n";
  if (!level.statistics_error.empty()) {
    out << "  ModelStatistics failed: " << level.statistics_error << "\n";
  }
  if (!level.level_bricks.empty()) {
    out << "  Bricks (whole level; runs are batches):\n"
        << absl::StrFormat("    %-32s %8s %7s %12s\n", "brick", "version", "runs", "avg usec");
    for (const BrickCounter& brick : level.level_bricks) {
      out << absl::StrFormat("    %-32s %8s %7d %12.1f\n", brick.brick, brick.version, brick.runs,
                             brick.AverageUs());
    }
  } else if (!level.brick_statistics_error.empty()) {
    out << "  BrickStatistics failed: " << level.brick_statistics_error << "\n";
  }
  out << "\n";
}

}  // namespace torchbricks::perf
