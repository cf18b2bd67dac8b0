#include "clients/cpp/perf/perf_tool.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "clients/cpp/inference_client.h"
#include "clients/cpp/perf/input_data.h"
#include "clients/cpp/perf/level_measurement.h"
#include "clients/cpp/perf/load_generator.h"
#include "clients/cpp/perf/perf_options.h"
#include "clients/cpp/perf/perf_report.h"
#include "clients/cpp/perf/request_set.h"

namespace torchbricks::perf {
namespace {

// How long the tool waits for the first connection.
constexpr absl::Duration kConnectTimeout = absl::Seconds(10);

// A report file, opened (and truncated) before measuring so that a bad path fails early.
struct ReportFile {
  std::string path;
  std::ofstream stream;
};

// Opens `path` unless it is "" (no report) or "-" (stdout). False when it cannot be opened.
bool Open(const std::string& path, std::optional<ReportFile>& file) {
  if (path.empty() || path == "-") return true;
  file.emplace();
  file->path = path;
  file->stream.open(path, std::ios::trunc);
  return static_cast<bool>(file->stream);
}

bool Write(std::optional<ReportFile>& file, const std::string& text, std::ostream& err) {
  if (!file.has_value()) return true;
  file->stream << text;
  file->stream.flush();
  if (file->stream) return true;
  err << "torchbricks-perf: cannot write '" << file->path << "'\n";
  return false;
}

}  // namespace

int RunPerfTool(absl::Span<const std::string> args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<PerfOptions> parsed = ParsePerfOptions(args);
  if (!parsed.ok()) {
    err << "torchbricks-perf: " << parsed.status().message() << "\n\n" << kPerfUsage;
    return kExitUsage;
  }
  const PerfOptions& options = *parsed;
  if (options.help) {
    out << kPerfUsage;
    return kExitOk;
  }
  std::optional<ReportFile> csv_file, brick_file, json_file;
  for (auto [path, file] : {std::pair{&options.latency_report_file, &csv_file},
                            std::pair{&options.brick_csv_file, &brick_file},
                            std::pair{&options.json_file, &json_file}}) {
    if (!Open(*path, *file)) {
      err << "torchbricks-perf: cannot write '" << *path << "'\n";
      return kExitUsage;
    }
  }

  absl::StatusOr<std::unique_ptr<client::InferenceClient>> client =
      client::InferenceClient::Create(options.client);
  if (!client.ok()) {
    err << "torchbricks-perf: " << client.status() << "\n";
    return kExitUsage;
  }
  if (absl::Status connected =
          (*client)->WaitForConnection(std::min(kConnectTimeout, options.client.timeout));
      !connected.ok()) {
    err << "torchbricks-perf: " << connected << "\n";
    return kExitUnreachable;
  }
  absl::StatusOr<inference::ModelMetadataResponse> metadata =
      (*client)->ModelMetadata(options.model, options.model_version, options.stage);
  absl::StatusOr<bool> ready = (*client)->ModelReady(options.model, options.model_version);
  absl::StatusOr<inference::ModelConfig> config =
      (*client)->ModelConfig(options.model, options.model_version);
  for (const absl::Status& status : {metadata.status(), ready.status(), config.status()}) {
    if (!status.ok()) {
      err << "torchbricks-perf: model '" << options.model << "': " << status << "\n";
      return kExitUnreachable;
    }
  }
  if (!*ready) {
    err << "torchbricks-perf: model '" << options.model << "' is not ready\n";
    return kExitUnreachable;
  }

  absl::StatusOr<std::vector<InputSet>> inputs = BuildInputSets(
      *metadata, *config,
      {.source = options.input_data, .shapes = options.shapes, .batch_size = options.batch_size});
  if (!inputs.ok()) {
    err << "torchbricks-perf: " << inputs.status().message() << "\n";
    return kExitUsage;
  }
  RequestSetOptions request_options{.model = options.model,
                                    .version = options.model_version,
                                    .stage = options.stage,
                                    .outputs = options.outputs,
                                    .shared_memory = options.shared_memory,
                                    .output_shared_memory_size = options.output_shared_memory_size,
                                    .region_prefix = absl::StrCat("torchbricks_perf_", getpid())};
  for (const auto& output : metadata->outputs()) {
    request_options.default_outputs.push_back(output.name());
  }
  absl::StatusOr<std::unique_ptr<RequestSet>> requests =
      RequestSet::Create(**client, request_options, *std::move(inputs));
  if (!requests.ok()) {
    err << "torchbricks-perf: cannot prepare the requests: " << requests.status() << "\n";
    return kExitFailed;
  }
  absl::StatusOr<std::unique_ptr<LoadGenerator>> generator =
      LoadGenerator::Create({.client = options.client,
                             .requests = &(*requests)->requests(),
                             .max_threads = options.max_threads});
  if (!generator.ok()) {
    err << "torchbricks-perf: " << generator.status() << "\n";
    return kExitUsage;
  }

  PrintSettings(out, options);
  std::vector<LevelResult> results;
  bool failed = false;
  for (const double level : options.levels) {
    absl::StatusOr<LevelResult> result = MeasureLevel(
        **generator, **client,
        {.load = {.mode = options.mode, .value = level, .distribution = options.distribution},
         .batch_size = options.batch_size,
         .measurement_interval = options.measurement_interval,
         .stability_percentage = options.stability_percentage,
         .max_trials = options.max_trials,
         .model = options.model,
         .model_version = options.model_version},
        options.verbose ? &out : nullptr);
    if (!result.ok()) {
      err << "torchbricks-perf: " << result.status() << "\n";
      failed = true;
      break;
    }
    PrintLevel(out, options, *result);
    out.flush();
    failed = failed || !result->statistics_error.empty();
    const bool requests_failed = result->level_failures > 0;
    results.push_back(*std::move(result));
    if (requests_failed) {
      err << "torchbricks-perf: requests failed at this level (" << results.back().first_error
          << "); the sweep stops here\n";
      failed = true;
      break;
    }
  }

  bool written = Write(csv_file, LatencyCsv(options.mode, results), err);
  written = Write(brick_file, BrickCsv(options.mode, results), err) && written;
  const std::string json = JsonSummary(options, results);
  written = Write(json_file, json, err) && written;
  if (options.json_file == "-") out << json << "\n";
  return failed || !written ? kExitFailed : kExitOk;
}

}  // namespace torchbricks::perf
