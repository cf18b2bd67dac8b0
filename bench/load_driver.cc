// load_driver: the dynamic-batching benchmark. For each workload it first measures the
// in-process limit (LoadedCollection at batch sizes 1..64, before any server runs), then
// starts torchbricks-server (or uses --address) and drives it with a closed loop of C
// outstanding async ModelInfer requests per concurrency level, and prints (and with --out
// writes) a markdown report comparing the two. Exit status: 0 when every point ran without
// a failed request, 1 otherwise, 2 for bad flags. See bench/run_benchmark.sh.
#include <stdlib.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ATen/Parallel.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "base/command_line.h"
#include "base/status_macros.h"
#include "base/usable_cores.h"
#include "bench/benchmark_report.h"
#include "bench/closed_loop_client.h"
#include "bench/inprocess_sweep.h"
#include "bench/workload.h"
#include "clients/cpp/inference_client.h"
#include "clients/cpp/perf/server_counters.h"
#include "core/execution/loaded_collection.h"
#include "tests/server_process.h"

namespace torchbricks::bench {
namespace {

constexpr char kUsage[] =
    "usage: load_driver --repository DIR [flags]\n"
    "  --repository DIR              example repository (examples/build_example_repository.py)\n"
    "  --server-binary PATH          server to start (default: this build's torchbricks-server)\n"
    "  --address HOST:PORT           use an already running server instead of starting one\n"
    "  --server-flags \"...\"          extra flags for the started server\n"
    "  --workloads W1,W2             W1 = classifier [1,3,100,200], W2 = resnet18_classifier "
    "[1,3,32,32]\n"
    "  --concurrency 1,4,16,64       outstanding requests per server point\n"
    "  --seconds S                   measuring window per point (default 5)\n"
    "  --warmup-seconds S            unmeasured load before each point (default 1)\n"
    "  --inprocess-batches 1,2,...   in-process batch sizes (default 1,2,4,8,16,32,64)\n"
    "  --client-threads N            threads polling completion queues (default 1)\n"
    "  --inprocess-threads N         libtorch intra-op threads in-process (default: libtorch's)\n"
    "  --server-pid PID              with --address: count this process's CPU time as the "
    "server's\n"
    "  --out FILE.md                 also write the report here\n";

// Requests (distinct random inputs) per workload, sent round robin.
constexpr int kDistinctRequests = 8;
// Deadline of each ModelStatistics call.
constexpr absl::Duration kStatisticsTimeout = absl::Seconds(30);

struct DriverFlags {
  std::string repository;
  std::string server_binary;
  std::string address;
  std::vector<std::string> server_flags;
  std::vector<std::string> workloads = {"W1", "W2"};
  std::vector<int64_t> concurrency = {1, 4, 16, 64};
  double seconds = 5;
  double warmup_seconds = 1;
  std::vector<int64_t> inprocess_batches = {1, 2, 4, 8, 16, 32, 64};
  int client_threads = 1;
  int inprocess_threads = 0;  // 0: leave libtorch's default
  std::string out;
  // The server's process id, to count its CPU time (--address); a started server's own
  // otherwise.
  pid_t server_pid = -1;
};

absl::StatusOr<std::vector<int64_t>> ParsePositiveList(const std::string& flag,
                                                       const std::string& value) {
  std::vector<int64_t> numbers;
  for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    int64_t number = 0;
    if (!absl::SimpleAtoi(item, &number) || number < 1) {
      return absl::InvalidArgumentError(absl::StrCat("bad value '", value, "' for ", flag));
    }
    numbers.push_back(number);
  }
  if (numbers.empty()) return absl::InvalidArgumentError(flag + " needs at least one value");
  return numbers;
}

absl::StatusOr<DriverFlags> ParseFlags(const std::vector<std::string>& args) {
  DriverFlags flags;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> pairs = SplitFlagValues(args);
  if (!pairs.ok()) return pairs.status();
  for (const auto& [flag, value] : *pairs) {
    // Init-captures: C++17 cannot capture a structured binding itself (clang refuses).
    const auto bad = [&value = value, &flag = flag] {
      return absl::InvalidArgumentError(absl::StrCat("bad value '", value, "' for ", flag));
    };
    if (flag == "--repository") {
      flags.repository = value;
    } else if (flag == "--server-binary") {
      flags.server_binary = value;
    } else if (flag == "--address") {
      flags.address = value;
    } else if (flag == "--server-flags") {
      flags.server_flags = absl::StrSplit(value, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    } else if (flag == "--workloads") {
      flags.workloads = absl::StrSplit(value, ',', absl::SkipEmpty());
    } else if (flag == "--concurrency") {
      ASSIGN_OR_RETURN(flags.concurrency, ParsePositiveList(flag, value));
    } else if (flag == "--inprocess-batches") {
      ASSIGN_OR_RETURN(flags.inprocess_batches, ParsePositiveList(flag, value));
    } else if (flag == "--seconds") {
      if (!absl::SimpleAtod(value, &flags.seconds) || flags.seconds <= 0) return bad();
    } else if (flag == "--warmup-seconds") {
      if (!absl::SimpleAtod(value, &flags.warmup_seconds) || flags.warmup_seconds < 0) {
        return bad();
      }
    } else if (flag == "--client-threads") {
      if (!absl::SimpleAtoi(value, &flags.client_threads) || flags.client_threads < 1) {
        return bad();
      }
    } else if (flag == "--inprocess-threads") {
      if (!absl::SimpleAtoi(value, &flags.inprocess_threads) || flags.inprocess_threads < 1) {
        return bad();
      }
    } else if (flag == "--server-pid") {
      if (!absl::SimpleAtoi(value, &flags.server_pid) || flags.server_pid < 1) return bad();
    } else if (flag == "--out") {
      flags.out = value;
    } else {
      return absl::InvalidArgumentError("unknown flag " + flag);
    }
  }
  if (flags.repository.empty()) return absl::InvalidArgumentError("--repository is required");
  if (!flags.address.empty() && !flags.server_binary.empty()) {
    return absl::InvalidArgumentError("give --server-binary or --address, not both");
  }
  if (flags.server_binary.empty()) flags.server_binary = TORCHBRICKS_DEFAULT_SERVER;
  return flags;
}

// The first "key : value" line of a /proc file whose key starts with `key`; "?" if none.
std::string ProcField(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "" : line.substr(start);
  }
  return "?";
}

std::string MachineDescription() {
  return absl::StrCat("nproc ", DetectUsableCores().affinity, ", CPU \"",
                      ProcField("/proc/cpuinfo", "model name"), "\", memory ",
                      ProcField("/proc/meminfo", "MemTotal"));
}

std::string UtcNow() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  return text;
}

// Fills result->inprocess (or inprocess_error) for one workload; the collection is freed
// before returning so that it holds no memory while the server runs.
void MeasureInProcess(const DriverFlags& flags, WorkloadResult* result) {
  auto measure = [&]() -> absl::StatusOr<std::vector<BatchPoint>> {
    ASSIGN_OR_RETURN(const std::filesystem::path version_dir,
                     LatestVersionDir(flags.repository, result->workload.model));
    ASSIGN_OR_RETURN(std::unique_ptr<LoadedCollection> collection,
                     LoadedCollection::Load({.version_dir = version_dir}));
    return RunInProcessSweep(*collection, result->workload,
                             {.batch_sizes = flags.inprocess_batches,
                              .warmup_seconds = flags.warmup_seconds,
                              .measure_seconds = flags.seconds});
  };
  absl::StatusOr<std::vector<BatchPoint>> points = measure();
  if (points.ok()) {
    result->inprocess = *std::move(points);
  } else {
    result->inprocess_error = points.status().ToString();
  }
  for (const BatchPoint& point : result->inprocess) {
    std::fprintf(stderr, "[in-process] %s batch %ld: %.0f images/s, p50 %.0f us/call\n",
                 result->workload.id.c_str(), static_cast<long>(point.batch_size),
                 point.images_per_second, point.call_latency.p50_us);
  }
}

// Appends one ServerPoint per concurrency level to result->server.
void MeasureServer(const DriverFlags& flags, const std::string& address, pid_t server_pid,
                   client::InferenceClient& control, WorkloadResult* result) {
  const std::vector<grpc::ByteBuffer> requests = SerializedInferRequests(
      result->workload, RandomBatches(result->workload, 1, kDistinctRequests, 1));
  for (int64_t concurrency : flags.concurrency) {
    ServerPoint point;
    point.concurrency = static_cast<int>(concurrency);
    absl::StatusOr<perf::ServerCounters> before =
        perf::FetchServerCounters(control, result->workload.model, "");
    const CpuSample cpu_before = SampleCpu(server_pid);
    absl::StatusOr<ClosedLoopResult> load = RunClosedLoop({.address = address,
                                                           .requests = requests,
                                                           .concurrency = point.concurrency,
                                                           .client_threads = flags.client_threads,
                                                           .warmup_seconds = flags.warmup_seconds,
                                                           .measure_seconds = flags.seconds});
    if (!load.ok()) {
      result->server_error = load.status().ToString();
      return;
    }
    point.cores = CoresBetween(cpu_before, SampleCpu(server_pid));
    point.load = *std::move(load);
    absl::StatusOr<perf::ServerCounters> after =
        perf::FetchServerCounters(control, result->workload.model, "");
    if (before.ok() && after.ok()) {
      point.counters = *after - *before;
    } else {
      point.counters_error = (before.ok() ? after.status() : before.status()).ToString();
    }
    std::fprintf(stderr, "[server] %s C=%ld: %.0f req/s, p50 %.0f us, p99 %.0f us, errors %lu\n",
                 result->workload.id.c_str(), static_cast<long>(concurrency),
                 point.load.requests_per_second, point.load.latency.p50_us,
                 point.load.latency.p99_us, static_cast<unsigned long>(point.load.errors));
    result->server.push_back(std::move(point));
  }
}

int Main(const std::vector<std::string>& args) {
  absl::StatusOr<DriverFlags> parsed = ParseFlags(args);
  if (!parsed.ok()) {
    std::cerr << "load_driver: " << parsed.status().message() << "\n" << kUsage;
    return 2;
  }
  const DriverFlags& flags = *parsed;
  std::vector<WorkloadResult> results;
  for (const std::string& id : flags.workloads) {
    absl::StatusOr<Workload> workload = FindWorkload(id);
    if (!workload.ok()) {
      std::cerr << "load_driver: " << workload.status().message() << "\n";
      return 2;
    }
    WorkloadResult result;
    result.workload = *std::move(workload);
    results.push_back(std::move(result));
  }
  if (flags.inprocess_threads > 0) at::set_num_threads(flags.inprocess_threads);
  std::vector<std::pair<std::string, std::string>> facts = {
      {"date", UtcNow()},
      {"machine", MachineDescription()},
      {"libtorch intra-op threads (in-process)", absl::StrCat(at::get_num_threads())},
      {"repository", flags.repository},
      {"in-process",
       absl::StrCat("batches ", absl::StrJoin(flags.inprocess_batches, ","), "; ", flags.seconds,
                    " s per batch after ", flags.warmup_seconds, " s warm-up; measured ",
                    flags.address.empty() ? "before the server starts" : "while the server idles")},
      {"load", absl::StrCat("closed loop, async gRPC (GenericStub), ", flags.client_threads,
                            " client thread(s), ", kDistinctRequests,
                            " pre-serialized requests round robin; ", flags.seconds,
                            " s per point after ", flags.warmup_seconds, " s warm-up")},
      {"note", "client, server and in-process runs share this machine's cores"}};

  for (WorkloadResult& result : results) MeasureInProcess(flags, &result);

  std::unique_ptr<testing::ServerProcess> server;
  std::string address = flags.address;
  if (address.empty()) {
    setenv("TORCHBRICKS_SERVER", flags.server_binary.c_str(), /*overwrite=*/1);
    std::vector<std::string> command = {flags.server_binary,        "--model-repository",
                                        flags.repository,           "--grpc-port 0",
                                        "--grpc-address 127.0.0.1", "--log-level warning"};
    command.insert(command.end(), flags.server_flags.begin(), flags.server_flags.end());
    facts.emplace_back("server", absl::StrJoin(command, " "));
    std::fprintf(stderr, "[server] starting %s\n", flags.server_binary.c_str());
    server = std::make_unique<testing::ServerProcess>(flags.repository, flags.server_flags);
    if (server->port() != 0) address = absl::StrCat("127.0.0.1:", server->port());
  } else {
    facts.emplace_back("server", "already running at " + address + " (flags unknown)");
  }
  if (address.empty()) {
    for (WorkloadResult& result : results) {
      result.server_error = "the server did not start or did not become ready in 60 s";
    }
  } else {
    absl::StatusOr<std::unique_ptr<client::InferenceClient>> control =
        client::InferenceClient::Create({.url = address, .timeout = kStatisticsTimeout});
    for (WorkloadResult& result : results) {
      if (control.ok()) {
        MeasureServer(flags, address, server != nullptr ? server->pid() : flags.server_pid,
                      **control, &result);
      } else {
        result.server_error = control.status().ToString();
      }
    }
  }
  if (server != nullptr) {
    facts.emplace_back("server exit status after SIGTERM", absl::StrCat(server->Stop()));
  }

  const std::string report = RenderReport(facts, results);
  std::cout << report << std::flush;
  if (!flags.out.empty()) {
    std::ofstream out(flags.out);
    out << report;
    if (!out.good()) {
      std::cerr << "load_driver: cannot write " << flags.out << "\n";
      return 1;
    }
  }
  return HasFailures(results) ? 1 : 0;
}

}  // namespace
}  // namespace torchbricks::bench

int main(int argc, char** argv) {
  return torchbricks::bench::Main(std::vector<std::string>(argv + 1, argv + argc));
}
