// PerfOptions: what one torchbricks-perf run measures and where it writes, parsed from the
// command line with perf_analyzer's flag names where perf_analyzer has one. Plain values;
// parsing is pure and thread-safe.
//
//   absl::StatusOr<PerfOptions> options = ParsePerfOptions(
//       {"-m", "readme_dummy", "--concurrency-range", "1:4:1", "-f", "perf.csv"});
//   if (!options.ok()) ...  // InvalidArgument: print kPerfUsage, exit 2
#ifndef TORCHBRICKS_CLIENTS_CPP_PERF_PERF_OPTIONS_H_
#define TORCHBRICKS_CLIENTS_CPP_PERF_PERF_OPTIONS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "clients/cpp/inference_client.h"

namespace torchbricks::perf {

// The usage text printed for --help and after a usage error.
extern const char kPerfUsage[];

// How load is generated at each level.
enum class LoadMode {
  kConcurrency,  // closed loop: exactly N requests outstanding
  kRequestRate,  // open loop: N requests per second, whatever the answers do
};

// When requests are issued in request-rate mode.
enum class RequestDistribution {
  kConstant,  // evenly spaced
  kPoisson,   // exponential gaps with the same mean
};

// Where input tensors travel.
enum class SharedMemoryKind {
  kNone,    // in the request message
  kSystem,  // in POSIX shared memory registered with the server (same machine only)
};

struct PerfOptions {
  // True for -h/--help: print kPerfUsage and exit 0; nothing else is checked.
  bool help = false;

  // -m/--model, required; -x/--model-version ("" = the newest ready version).
  std::string model;
  std::string model_version;
  // --stage: "INFERENCE" or "EXPORT", sent as the request parameter `stage`; "" = the
  // server's default (INFERENCE).
  std::string stage;
  // --output (repeatable): the outputs to ask for; empty = the stage's terminal outputs.
  // Asking for an intermediate runs only the bricks it needs.
  std::vector<std::string> outputs;

  // -u/--url, -H, the --ssl-grpc-* files and --request-timeout-ms (each request's deadline).
  client::ClientOptions client;

  // --concurrency-range start[:end[:step]] (default 1) or --request-rate-range (never both).
  LoadMode mode = LoadMode::kConcurrency;
  // The levels in sweep order: concurrency values (whole numbers) or requests per second.
  std::vector<double> levels = {1};
  RequestDistribution distribution = RequestDistribution::kConstant;
  // --max-threads: client threads, each with its own connection and completion queue; a
  // closed loop uses at most one per outstanding request.
  int max_threads = 4;

  // -b/--batch-size: the batch dimension of every input of a model with max_batch_size > 0.
  int64_t batch_size = 1;
  // --input-data: "random" (default), "zero", or a JSON file in perf_analyzer's format.
  std::string input_data = "random";
  // --shape NAME:D1,D2,... (repeatable): the shape of an input whose metadata leaves a
  // dimension variable, without the batch dimension when the model batches.
  std::map<std::string, std::vector<int64_t>> shapes;
  // --shared-memory none|system and --output-shared-memory-size (bytes per output).
  SharedMemoryKind shared_memory = SharedMemoryKind::kNone;
  int64_t output_shared_memory_size = 100 * 1024;

  // --measurement-interval (ms), --stability-percentage, --max-trials (windows per level).
  absl::Duration measurement_interval = absl::Milliseconds(5000);
  double stability_percentage = 10;
  int max_trials = 10;

  // -f/--latency-report-file (perf_analyzer's CSV), --brick-csv, --json ("-" = stdout).
  std::string latency_report_file;
  std::string brick_csv_file;
  std::string json_file;
  // -v: print every measurement window.
  bool verbose = false;
};

// The options `args` (argv without the program name) describe. InvalidArgument, naming the
// flag, for an unknown flag, a missing or malformed value, a level range that is empty or
// not positive, both range flags, a header that is not NAME:VALUE, a protocol other than
// grpc, or a missing -m.
absl::StatusOr<PerfOptions> ParsePerfOptions(absl::Span<const std::string> args);

// "start[:end[:step]]" as the values start, start+step, ... <= end. InvalidArgument when a
// part is not a number, start <= 0, end < start or step <= 0; `whole` demands integers.
absl::StatusOr<std::vector<double>> ParseLevelRange(const std::string& range, bool whole);

}  // namespace torchbricks::perf

#endif  // TORCHBRICKS_CLIENTS_CPP_PERF_PERF_OPTIONS_H_
