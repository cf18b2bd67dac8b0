// floor_benchmark's served points: bench/closed_loop_client runs and the requests they send.
#include "bench/floor_served.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "bench/closed_loop_client.h"
#include "proto/grpc_service.grpc.pb.h"

namespace torchbricks::bench {
namespace {

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[(values.size() - 1) / 2];
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

}  // namespace

double FloorPoint::P50() const { return Median(p50s); }

double FloorPoint::Rate() const { return Median(rates); }

void PointRunner::Run(FloorPoint* point, const std::string& address,
                      const std::vector<grpc::ByteBuffer>& requests, int concurrency,
                      client::InferenceClient* control, const std::string& model) {
  std::optional<perf::ServerCounters> before;
  if (control != nullptr) {
    absl::StatusOr<perf::ServerCounters> read = perf::FetchServerCounters(*control, model, "");
    if (read.ok()) before = *read;
  }
  absl::StatusOr<ClosedLoopResult> result =
      RunClosedLoop({.address = address,
                     .requests = requests,
                     .concurrency = concurrency,
                     .warmup_seconds = options_.warmup_seconds,
                     .measure_seconds = options_.seconds});
  if (!result.ok()) {
    point->errors += 1;
    if (point->first_error.empty()) point->first_error = result.status().ToString();
    return;
  }
  if (before.has_value()) {
    absl::StatusOr<perf::ServerCounters> after = perf::FetchServerCounters(*control, model, "");
    if (after.ok()) point->counters += *after - *before;
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

absl::StatusOr<ShmSetup> SetUpShm(const Workload& workload, const InProcessLimits& inprocess,
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

}  // namespace torchbricks::bench
