// floor_benchmark: torchbricks-server against this machine's limits, in one run.
//
// The limits, measured here and now rather than quoted: the in-process run of each model
// (LoadedCollection, no server) and the transport floor — bench/floor_server, a bare gRPC
// sync server that parses the same ModelInfer request and answers a response of the same
// size without any model work. Then the real server is driven with the same pre-serialized
// requests (closed loop, bench/closed_loop_client), W1 also with its input and outputs in
// system shared memory; and, with --python-server, a Python torchbricks + grpcio server
// (bench/python_server.py) doing the same work. Latency points alternate between the
// servers for --rounds rounds and report the median of the rounds' p50s, so that drift on a
// shared machine hits every server alike. Prints (and with --out writes) a markdown report
// whose first table is the targets of docs/PERFORMANCE.md as ratios of this run's figures.
//
//   build/bench/floor_benchmark --repository examples/repository [--python-server
//   bench/python_server.py] [--out docs/floor-latest.md]
//
// Exit status: 0 when every point ran without a failed request, 1 otherwise, 2 for bad
// flags.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ATen/Parallel.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/command_line.h"
#include "base/status_macros.h"
#include "bench/closed_loop_client.h"
#include "bench/inprocess_sweep.h"
#include "bench/model_counters.h"
#include "bench/workload.h"
#include "clients/cpp/inference_client.h"
#include "clients/cpp/shared_memory_region.h"
#include "core/execution/loaded_collection.h"
#include "grpcpp/create_channel.h"
#include "proto/grpc_service.grpc.pb.h"
#include "tests/server_process.h"

namespace torchbricks::bench {
namespace {

constexpr char kUsage[] =
    "usage: floor_benchmark --repository DIR [flags]\n"
    "  --repository DIR         example repository (examples/build_example_repository.py)\n"
    "  --server-binary PATH     torchbricks-server (default: this build's)\n"
    "  --floor-binary PATH      floor_server (default: this build's)\n"
    "  --server-flags \"...\"     extra flags for torchbricks-server\n"
    "  --python-server PATH     also run this Python torchbricks + grpcio server "
    "(bench/python_server.py)\n"
    "  --rounds N               alternating rounds of the latency points (default 3)\n"
    "  --seconds S              measuring window per point (default 3)\n"
    "  --warmup-seconds S       unmeasured load before each point (default 1)\n"
    "  --w2-threads N           intra-op threads of W2 in-process (default 2: the server's two\n"
    "                           W2 instances of one thread each)\n"
    "  --out FILE.md            also write the report here\n";

constexpr int kDistinctRequests = 8;
constexpr int kIdleGapUs = 300;

struct Flags {
  std::string repository;
  std::string server_binary = TORCHBRICKS_DEFAULT_SERVER;
  std::string floor_binary = TORCHBRICKS_DEFAULT_FLOOR;
  std::vector<std::string> server_flags;
  std::string python_server;
  int rounds = 3;
  double seconds = 3;
  double warmup_seconds = 1;
  int w2_threads = 2;
  std::string out;
};

absl::StatusOr<Flags> ParseFlags(const std::vector<std::string>& args) {
  Flags flags;
  ASSIGN_OR_RETURN(const auto pairs, SplitFlagValues(args));
  for (const auto& [flag, value] : pairs) {
    bool ok = true;
    if (flag == "--repository") {
      flags.repository = value;
    } else if (flag == "--server-binary") {
      flags.server_binary = value;
    } else if (flag == "--floor-binary") {
      flags.floor_binary = value;
    } else if (flag == "--server-flags") {
      flags.server_flags = absl::StrSplit(value, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    } else if (flag == "--python-server") {
      flags.python_server = value;
    } else if (flag == "--rounds") {
      ok = absl::SimpleAtoi(value, &flags.rounds) && flags.rounds >= 1 && flags.rounds <= 100;
    } else if (flag == "--seconds") {
      ok = absl::SimpleAtod(value, &flags.seconds) && flags.seconds > 0;
    } else if (flag == "--warmup-seconds") {
      ok = absl::SimpleAtod(value, &flags.warmup_seconds) && flags.warmup_seconds >= 0;
    } else if (flag == "--w2-threads") {
      ok = absl::SimpleAtoi(value, &flags.w2_threads) && flags.w2_threads >= 1 &&
           flags.w2_threads <= 256;
    } else if (flag == "--out") {
      flags.out = value;
    } else {
      return absl::InvalidArgumentError("unknown flag " + flag);
    }
    if (!ok) return absl::InvalidArgumentError(absl::StrCat("bad value '", value, "' for ", flag));
  }
  if (flags.repository.empty()) return absl::InvalidArgumentError("--repository is required");
  return flags;
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[(values.size() - 1) / 2];
}

// One model's in-process figures and what its batch-1 outputs look like.
struct InProcess {
  std::map<int64_t, BatchPoint> points;                       // by batch size
  std::vector<std::pair<std::string, int64_t>> output_bytes;  // terminal outputs at batch 1
  std::vector<std::pair<std::string, int64_t>> output_elements;
  // Batch 1 with the thread idle for kIdleGapUs between calls, as a server at c=1 is while
  // the response and the next request travel: the run starts on a core that went idle.
  double idle_gap_p50_us = 0;
};

absl::StatusOr<InProcess> MeasureInProcess(const Flags& flags, const Workload& workload,
                                           const std::vector<int64_t>& batches, int threads) {
  at::set_num_threads(threads);
  ASSIGN_OR_RETURN(const std::filesystem::path version_dir,
                   LatestVersionDir(flags.repository, workload.model));
  ASSIGN_OR_RETURN(std::unique_ptr<LoadedCollection> collection,
                   LoadedCollection::Load({.version_dir = version_dir}));
  InProcess result;
  ASSIGN_OR_RETURN(
      NamedTensors outputs,
      collection->Run(Stage::kInference, {{workload.input, RandomBatches(workload, 1, 1, 7)[0]}}));
  for (const auto& [name, tensor] : outputs) {
    result.output_bytes.emplace_back(name, tensor.numel() * tensor.element_size());
    result.output_elements.emplace_back(name, tensor.numel());
  }
  ASSIGN_OR_RETURN(std::vector<BatchPoint> points,
                   RunInProcessSweep(*collection, workload,
                                     {.batch_sizes = batches,
                                      .warmup_seconds = flags.warmup_seconds,
                                      .measure_seconds = flags.seconds}));
  if (std::find(batches.begin(), batches.end(), 1) != batches.end()) {
    const std::vector<at::Tensor> inputs = RandomBatches(workload, 1, kDistinctRequests, 3);
    std::vector<int64_t> latencies;
    const auto end =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(flags.seconds);
    for (size_t i = 0; std::chrono::steady_clock::now() < end; ++i) {
      std::this_thread::sleep_for(std::chrono::microseconds(kIdleGapUs));
      const auto before = std::chrono::steady_clock::now();
      absl::StatusOr<NamedTensors> run =
          collection->Run(Stage::kInference, {{workload.input, inputs[i % inputs.size()]}});
      latencies.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::steady_clock::now() - before)
                              .count());
      if (!run.ok()) return run.status();
    }
    result.idle_gap_p50_us = SummarizeLatencies(std::move(latencies)).p50_us;
    std::fprintf(stderr, "[in-process] %s batch 1, %d us idle between calls: p50 %.0f us\n",
                 workload.id.c_str(), kIdleGapUs, result.idle_gap_p50_us);
  }
  for (BatchPoint& point : points) {
    std::fprintf(stderr, "[in-process] %s batch %ld (%d threads): %.0f images/s, p50 %.0f us\n",
                 workload.id.c_str(), static_cast<long>(point.batch_size), threads,
                 point.images_per_second, point.call_latency.p50_us);
    result.points[point.batch_size] = point;
  }
  return result;
}

// The server's own layout in-process: `instances` threads of one intra-op thread each, every
// one running its own batches of `batch` rows on the same loaded collection at the same
// time, for `seconds`. Returns the images/s of all of them together.
absl::StatusOr<double> MeasureInstanceLayout(const Flags& flags, const Workload& workload,
                                             int instances, int64_t batch) {
  ASSIGN_OR_RETURN(const std::filesystem::path version_dir,
                   LatestVersionDir(flags.repository, workload.model));
  ASSIGN_OR_RETURN(std::unique_ptr<LoadedCollection> collection,
                   LoadedCollection::Load({.version_dir = version_dir}));
  const std::vector<at::Tensor> inputs = RandomBatches(workload, batch, 2, 5);
  std::vector<int64_t> calls(instances, 0);
  std::vector<absl::Status> errors(instances);
  const auto start = std::chrono::steady_clock::now();
  const auto warm = start + std::chrono::duration<double>(flags.warmup_seconds);
  const auto end = warm + std::chrono::duration<double>(flags.seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < instances; ++t) {
    threads.emplace_back([&, t] {
      at::set_num_threads(1);  // per thread, as each server instance does
      for (size_t i = 0; std::chrono::steady_clock::now() < end; ++i) {
        absl::StatusOr<NamedTensors> run =
            collection->Run(Stage::kInference, {{workload.input, inputs[i % inputs.size()]}});
        if (!run.ok()) {
          errors[t] = run.status();
          return;
        }
        if (std::chrono::steady_clock::now() > warm) ++calls[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  int64_t total = 0;
  for (int t = 0; t < instances; ++t) {
    RETURN_IF_ERROR(errors[t]);
    total += calls[t];
  }
  const double images_per_second = static_cast<double>(total * batch) / flags.seconds;
  std::fprintf(stderr, "[in-process] %s %d threads x batch %ld side by side: %.0f images/s\n",
               workload.id.c_str(), instances, static_cast<long>(batch), images_per_second);
  return images_per_second;
}

void SetShmParameters(google::protobuf::Map<std::string, inference::InferParameter>* parameters,
                      const std::string& region, int64_t offset, int64_t byte_size) {
  (*parameters)["shared_memory_region"].set_string_param(region);
  (*parameters)["shared_memory_offset"].set_int64_param(offset);
  (*parameters)["shared_memory_byte_size"].set_int64_param(byte_size);
}

grpc::ByteBuffer Serialize(const inference::ModelInferRequest& request) {
  grpc::ByteBuffer buffer;
  bool own_buffer = false;
  grpc::SerializationTraits<inference::ModelInferRequest>::Serialize(request, &buffer, &own_buffer);
  return buffer;
}

// W1 with its input read from, and its outputs written to, registered regions: the input
// region holds the kDistinctRequests inputs one after the other; the output region holds
// one set of outputs (the loop runs at concurrency 1, so requests never overlap).
struct ShmSetup {
  std::unique_ptr<client::SharedMemoryRegion> inputs;
  std::unique_ptr<client::SharedMemoryRegion> outputs;
  std::vector<grpc::ByteBuffer> requests;
};

absl::StatusOr<ShmSetup> SetUpShm(const Workload& workload, const InProcess& inprocess,
                                  const std::string& address) {
  ShmSetup setup;
  const std::vector<at::Tensor> tensors = RandomBatches(workload, 1, kDistinctRequests, 1);
  const int64_t input_bytes = tensors[0].numel() * 4;
  int64_t output_total = 0;
  for (const auto& [name, bytes] : inprocess.output_bytes) output_total += bytes;
  const std::string suffix = absl::StrCat(getpid());
  ASSIGN_OR_RETURN(setup.inputs, client::SharedMemoryRegion::Create(
                                     "/tb_floor_in_" + suffix, input_bytes * kDistinctRequests));
  ASSIGN_OR_RETURN(setup.outputs,
                   client::SharedMemoryRegion::Create("/tb_floor_out_" + suffix, output_total));
  ASSIGN_OR_RETURN(std::unique_ptr<client::InferenceClient> control,
                   client::InferenceClient::Create({.url = address}));
  for (const auto& [name, region] :
       {std::pair<const char*, client::SharedMemoryRegion*>{"floor_in", setup.inputs.get()},
        {"floor_out", setup.outputs.get()}}) {
    if (absl::Status status =
            control->RegisterSystemSharedMemory(name, region->key(), region->byte_size());
        !status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("registering ", name, ": ", status.message()));
    }
  }
  for (int i = 0; i < kDistinctRequests; ++i) {
    std::memcpy(setup.inputs->data().data() + i * input_bytes, tensors[i].data_ptr(), input_bytes);
    inference::ModelInferRequest request;
    request.set_model_name(workload.model);
    auto* input = request.add_inputs();
    input->set_name(workload.input);
    input->set_datatype("FP32");
    for (int64_t dim : tensors[i].sizes()) input->add_shape(dim);
    SetShmParameters(input->mutable_parameters(), "floor_in", i * input_bytes, input_bytes);
    int64_t offset = 0;
    for (const auto& [name, bytes] : inprocess.output_bytes) {
      auto* output = request.add_outputs();
      output->set_name(name);
      SetShmParameters(output->mutable_parameters(), "floor_out", offset, bytes);
      offset += bytes;
    }
    setup.requests.push_back(Serialize(request));
  }
  return setup;
}

// A tiny request for the floor: one FP32 element.
std::vector<grpc::ByteBuffer> TinyRequests() {
  inference::ModelInferRequest request;
  request.set_model_name("tiny");
  auto* input = request.add_inputs();
  input->set_name("x");
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(1);
  request.add_raw_input_contents(std::string(4, '\0'));
  return {Serialize(request)};
}

struct Point {
  std::string label;
  std::vector<double> p50s;
  std::vector<double> rates;
  uint64_t errors = 0;
  std::string first_error;
  ModelCounters counters;  // summed over rounds (torchbricks-server points only)
  double P50() const { return Median(p50s); }
  double Rate() const { return Median(rates); }
};

class Runner {
 public:
  explicit Runner(const Flags& flags) : flags_(flags) {}

  // One closed-loop run appended to `point`; `control` (may be null) reads the model's
  // counters around it.
  void Run(Point* point, const std::string& address, const std::vector<grpc::ByteBuffer>& requests,
           int concurrency, const std::shared_ptr<grpc::Channel>& control = nullptr,
           const std::string& model = "") {
    std::optional<ModelCounters> before;
    if (control != nullptr) {
      absl::StatusOr<ModelCounters> read = FetchModelCounters(control, model);
      if (read.ok()) before = *read;
    }
    absl::StatusOr<ClosedLoopResult> result =
        RunClosedLoop({.address = address,
                       .requests = requests,
                       .concurrency = concurrency,
                       .warmup_seconds = flags_.warmup_seconds,
                       .measure_seconds = flags_.seconds});
    if (!result.ok()) {
      point->errors += 1;
      if (point->first_error.empty()) point->first_error = result.status().ToString();
      return;
    }
    if (before.has_value()) {
      absl::StatusOr<ModelCounters> after = FetchModelCounters(control, model);
      if (after.ok()) {
        const ModelCounters delta = *after - *before;
        point->counters.inference_count += delta.inference_count;
        point->counters.execution_count += delta.execution_count;
        point->counters.success_count += delta.success_count;
        point->counters.queue_ns += delta.queue_ns;
        point->counters.compute_infer_ns += delta.compute_infer_ns;
      }
    }
    point->p50s.push_back(result->latency.p50_us);
    point->rates.push_back(result->requests_per_second);
    point->errors += result->errors;
    if (point->first_error.empty()) point->first_error = result->first_error;
    std::fprintf(stderr, "[%s] c=%d: %.0f req/s, p50 %.0f us, p99 %.0f us, errors %lu\n",
                 point->label.c_str(), concurrency, result->requests_per_second,
                 result->latency.p50_us, result->latency.p99_us,
                 static_cast<unsigned long>(result->errors));
  }

 private:
  const Flags& flags_;
};

std::string Fixed(double value, int digits) { return absl::StrFormat("%.*f", digits, value); }

int Main(const std::vector<std::string>& args) {
  absl::StatusOr<Flags> parsed = ParseFlags(args);
  if (!parsed.ok()) {
    std::cerr << "floor_benchmark: " << parsed.status().message() << "\n" << kUsage;
    return 2;
  }
  const Flags& flags = *parsed;
  const Workload w1 = *FindWorkload("W1");
  const Workload w2 = *FindWorkload("W2");

  // The limits in-process, before any server runs. W1 on one thread, as its one instance
  // runs; W2 on the threads its instances have together.
  absl::StatusOr<InProcess> w2_inprocess = MeasureInProcess(flags, w2, {16, 64}, flags.w2_threads);
  absl::StatusOr<InProcess> w1_inprocess = MeasureInProcess(flags, w1, {1}, 1);
  // The example's W2 layout (two instances of one thread) at the batches c=16 and c=64 give
  // each instance when split evenly: the limit of the layout itself, for the analysis.
  absl::StatusOr<double> layout_8 = MeasureInstanceLayout(flags, w2, 2, 8);
  absl::StatusOr<double> layout_32 = MeasureInstanceLayout(flags, w2, 2, 32);
  if (!w1_inprocess.ok() || !w2_inprocess.ok()) {
    std::cerr << "floor_benchmark: in-process run failed: "
              << (w1_inprocess.ok() ? w2_inprocess.status() : w1_inprocess.status()) << "\n";
    return 1;
  }
  int64_t w1_output_elements = 0;
  for (const auto& [name, elements] : w1_inprocess->output_elements) w1_output_elements += elements;

  // The servers: the floor answers W1-sized responses; torchbricks-server with client
  // shared memory allowed.
  testing::ServerProcess floor(testing::ServerProcess::Command{
      {flags.floor_binary, "--output-elements", absl::StrCat(w1_output_elements)}});
  setenv("TORCHBRICKS_SERVER", flags.server_binary.c_str(), /*overwrite=*/1);
  std::vector<std::string> server_flags = {"--allow-client-shm", "true"};
  server_flags.insert(server_flags.end(), flags.server_flags.begin(), flags.server_flags.end());
  testing::ServerProcess server(flags.repository, server_flags);
  std::unique_ptr<testing::ServerProcess> python;
  if (!flags.python_server.empty()) {
    python = std::make_unique<testing::ServerProcess>(testing::ServerProcess::Command{
        {TORCHBRICKS_DEFAULT_PYTHON, flags.python_server, "--grpc-port", "0"}});
  }
  if (floor.port() == 0 || server.port() == 0 || (python != nullptr && python->port() == 0)) {
    std::cerr << "floor_benchmark: a server did not start (floor port " << floor.port()
              << ", server port " << server.port() << ")\n";
    return 1;
  }
  const std::string floor_address = absl::StrCat("127.0.0.1:", floor.port());
  const std::string server_address = absl::StrCat("127.0.0.1:", server.port());
  const std::shared_ptr<grpc::Channel> control = server.channel();

  const std::vector<grpc::ByteBuffer> w1_requests =
      SerializedInferRequests(w1, RandomBatches(w1, 1, kDistinctRequests, 1));
  const std::vector<grpc::ByteBuffer> w2_requests =
      SerializedInferRequests(w2, RandomBatches(w2, 1, kDistinctRequests, 1));
  const std::vector<grpc::ByteBuffer> tiny_requests = TinyRequests();
  absl::StatusOr<ShmSetup> shm = SetUpShm(w1, *w1_inprocess, server_address);
  if (!shm.ok()) {
    std::cerr << "floor_benchmark: " << shm.status() << "\n";
    return 1;
  }

  Runner runner(flags);
  Point floor_w1{"floor W1"}, floor_tiny{"floor tiny"}, server_w1{"server W1"},
      server_w1_shm{"server W1 shm"}, server_w2_16{"server W2"}, server_w2_64{"server W2"};
  for (int round = 0; round < flags.rounds; ++round) {
    runner.Run(&floor_w1, floor_address, w1_requests, 1);
    runner.Run(&server_w1, server_address, w1_requests, 1, control, w1.model);
    runner.Run(&floor_tiny, floor_address, tiny_requests, 1);
    runner.Run(&server_w1_shm, server_address, shm->requests, 1, control, w1.model);
    runner.Run(&server_w2_16, server_address, w2_requests, 16, control, w2.model);
    runner.Run(&server_w2_64, server_address, w2_requests, 64, control, w2.model);
  }

  // Against the Python server: each point once per server, alternating.
  struct Versus {
    std::string workload;
    int concurrency;
    Point ours, theirs;
  };
  std::vector<Versus> versus;
  if (python != nullptr) {
    const std::string python_address = absl::StrCat("127.0.0.1:", python->port());
    for (const Workload* workload : {&w1, &w2}) {
      for (int concurrency : {1, 16, 64}) {
        Versus point{workload->id, concurrency, Point{"server " + workload->id},
                     Point{"python " + workload->id}};
        const auto& requests = workload == &w1 ? w1_requests : w2_requests;
        runner.Run(&point.ours, server_address, requests, concurrency);
        runner.Run(&point.theirs, python_address, requests, concurrency);
        versus.push_back(std::move(point));
      }
    }
  }

  // The report.
  const double inprocess_w1 = w1_inprocess->points.at(1).call_latency.p50_us;
  const double w2_16 = w2_inprocess->points.at(16).images_per_second;
  const double w2_64 = w2_inprocess->points.at(64).images_per_second;
  const double latency_ratio = server_w1.P50() / (floor_w1.P50() + inprocess_w1);
  const double shm_excess = server_w1_shm.P50() - inprocess_w1;
  const double shm_limit = floor_tiny.P50() + 40;
  const double ratio_16 = server_w2_16.Rate() / w2_16;
  const double ratio_64 = server_w2_64.Rate() / w2_64;
  // A figure whose points did not all run cleanly is not a result.
  const auto clean = [](std::initializer_list<const Point*> points) {
    for (const Point* point : points) {
      if (point->p50s.empty() || point->errors > 0) return false;
    }
    return true;
  };
  const bool latency_clean = clean({&server_w1, &floor_w1});
  const bool shm_clean = clean({&server_w1_shm, &floor_tiny});
  const bool w2_16_clean = clean({&server_w2_16});
  const bool w2_64_clean = clean({&server_w2_64});
  const auto value = [](bool ok, double figure, int digits) {
    return ok ? Fixed(figure, digits) : std::string("n/a");
  };
  const auto verdict = [](bool ok, bool met) {
    return !ok ? "n/a (a point failed)" : met ? "met" : "**not met**";
  };

  std::string report = "# torchbricks-server at the floor\n\n";
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  absl::StrAppend(&report, "- date: ", date, "\n- rounds: ", flags.rounds,
                  " (median of the rounds' figures), ", flags.seconds, " s per point after ",
                  flags.warmup_seconds, " s warm-up\n", "- server flags: --allow-client-shm true ",
                  absl::StrJoin(flags.server_flags, " "), "\n- W1: ", Describe(w1),
                  "; W2: ", Describe(w2), "\n\n");
  absl::StrAppend(&report, "| figure | value | target | |\n|---|--:|--:|---|\n");
  absl::StrAppend(&report, "| W1 c=1 p50 ÷ (floor p50 + in-process p50) | ",
                  value(latency_clean, latency_ratio, 2), " | ≤ 1.10 | ",
                  verdict(latency_clean, latency_ratio <= 1.10), " |\n");
  absl::StrAppend(&report, "| W1 c=1 p50 in shared memory − in-process p50 (µs) | ",
                  value(shm_clean, shm_excess, 0), " | ≤ ", Fixed(shm_limit, 0),
                  " (tiny floor + 40) | ", verdict(shm_clean, shm_excess <= shm_limit), " |\n");
  absl::StrAppend(&report, "| W2 c=16 req/s ÷ in-process batch 16 images/s | ",
                  value(w2_16_clean, ratio_16, 2), " | ≥ 0.90 | ",
                  verdict(w2_16_clean, ratio_16 >= 0.90), " |\n");
  absl::StrAppend(&report, "| W2 c=64 req/s ÷ in-process batch 64 images/s | ",
                  value(w2_64_clean, ratio_64, 2), " | ≥ 0.85 | ",
                  verdict(w2_64_clean, ratio_64 >= 0.85), " |\n\n");

  absl::StrAppend(&report,
                  "| point | p50 µs | req/s | server avg batch | server queue µs/req | server "
                  "infer µs/exec | errors |\n",
                  "|---|--:|--:|--:|--:|--:|--:|\n");
  absl::StrAppend(&report, "| in-process W1 batch 1 (1 thread) | ", Fixed(inprocess_w1, 0), " | ",
                  Fixed(w1_inprocess->points.at(1).images_per_second, 0), " | | | | |\n");
  absl::StrAppend(&report, "| in-process W1 batch 1, ", kIdleGapUs,
                  " µs idle between calls (1 thread) | ", Fixed(w1_inprocess->idle_gap_p50_us, 0),
                  " | | | | | |\n");
  absl::StrAppend(&report, "| in-process W2 batch 16 (", flags.w2_threads, " threads) | ",
                  Fixed(w2_inprocess->points.at(16).call_latency.p50_us, 0), " | ", Fixed(w2_16, 0),
                  " | | | | |\n");
  absl::StrAppend(&report, "| in-process W2 batch 64 (", flags.w2_threads, " threads) | ",
                  Fixed(w2_inprocess->points.at(64).call_latency.p50_us, 0), " | ", Fixed(w2_64, 0),
                  " | | | | |\n");
  for (const auto& [batch, layout] :
       {std::pair<int, const absl::StatusOr<double>*>{8, &layout_8}, {32, &layout_32}}) {
    absl::StrAppend(&report, "| in-process W2, 2 threads × 1 intra-op thread, each batch ", batch,
                    " (the server's layout) | | ",
                    layout->ok() ? Fixed(**layout, 0) : layout->status().ToString(),
                    " | | | | |\n");
  }
  bool failures = false;
  for (const auto& [point, concurrency, counted] :
       {std::tuple<const Point*, int, bool>{&floor_tiny, 1, false},
        {&floor_w1, 1, false},
        {&server_w1, 1, true},
        {&server_w1_shm, 1, true},
        {&server_w2_16, 16, true},
        {&server_w2_64, 64, true}}) {
    absl::StrAppend(&report, "| ", point->label, " c=", concurrency, " | ", Fixed(point->P50(), 0),
                    " | ", Fixed(point->Rate(), 0), " | ");
    if (counted) {
      absl::StrAppend(&report, Fixed(point->counters.AverageBatch(), 2), " | ",
                      Fixed(point->counters.QueueUsPerRequest(), 0), " | ",
                      Fixed(point->counters.InferUsPerExecution(), 0), " | ");
    } else {
      absl::StrAppend(&report, " | | | ");
    }
    absl::StrAppend(&report, point->errors, " |\n");
    if (point->errors > 0) {
      failures = true;
      absl::StrAppend(&report, "\n", point->label, ": ", point->first_error, "\n\n");
    }
  }
  if (!versus.empty()) {
    absl::StrAppend(&report,
                    "\nAgainst the Python torchbricks + grpcio server (bench/python_server.py), "
                    "one run each:\n\n| workload | c | ours req/s | Python req/s | throughput "
                    "ratio | ours p50 µs | Python p50 µs | p50 ratio (Python ÷ ours) |\n"
                    "|---|--:|--:|--:|--:|--:|--:|--:|\n");
    for (const Versus& point : versus) {
      absl::StrAppend(&report, "| ", point.workload, " | ", point.concurrency, " | ",
                      Fixed(point.ours.Rate(), 0), " | ", Fixed(point.theirs.Rate(), 0), " | ",
                      Fixed(point.ours.Rate() / std::max(point.theirs.Rate(), 1e-9), 2), " | ",
                      Fixed(point.ours.P50(), 0), " | ", Fixed(point.theirs.P50(), 0), " | ",
                      Fixed(point.theirs.P50() / std::max(point.ours.P50(), 1e-9), 2), " |\n");
      failures = failures || point.ours.errors > 0 || point.theirs.errors > 0;
      if (point.theirs.errors > 0) {
        absl::StrAppend(&report, "\nPython server: ", point.theirs.first_error, "\n\n");
      }
    }
  }
  absl::StrAppend(&report, "\n- torchbricks-server exit status after SIGTERM: ", server.Stop(),
                  "\n- floor_server exit status after SIGTERM: ", floor.Stop(), "\n");
  if (python != nullptr) {
    absl::StrAppend(&report, "- Python server exit status after SIGTERM: ", python->Stop(), "\n");
  }
  std::cout << report << std::flush;
  if (!flags.out.empty()) {
    std::ofstream out(flags.out);
    out << report;
    if (!out.good()) {
      std::cerr << "floor_benchmark: cannot write " << flags.out << "\n";
      return 1;
    }
  }
  return failures ? 1 : 0;
}

}  // namespace
}  // namespace torchbricks::bench

int main(int argc, char** argv) {
  return torchbricks::bench::Main(std::vector<std::string>(argv + 1, argv + argc));
}
