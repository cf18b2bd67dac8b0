#include "clients/cpp/perf/request_set.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "proto/grpc_service.grpc.pb.h"

namespace torchbricks::perf {
namespace {

// Inputs in the shared region start on this boundary.
constexpr int64_t kAlignment = 64;

int64_t Aligned(int64_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

absl::StatusOr<std::unique_ptr<RequestSet>> RequestSet::Create(client::InferenceClient& client,
                                                               const RequestSetOptions& options,
                                                               std::vector<InputSet> input_sets) {
  if (input_sets.empty()) return absl::InvalidArgumentError("no input sets to send");
  std::unique_ptr<RequestSet> set(new RequestSet(client));
  std::vector<client::RequestedOutput> outputs;
  for (const std::string& name : options.outputs) outputs.push_back({.name = name});

  if (options.shared_memory == SharedMemoryKind::kSystem) {
    const std::string input_name = options.region_prefix + "_input";
    const std::string output_name = options.region_prefix + "_output";
    int64_t input_bytes = 0;
    for (const InputSet& inputs : input_sets) {
      for (const client::InferInput& input : inputs) {
        input_bytes += Aligned(static_cast<int64_t>(input.data.size()));
      }
    }
    ASSIGN_OR_RETURN(set->input_region_, client::SharedMemoryRegion::Create(
                                             "/" + input_name, std::max<int64_t>(input_bytes, 1)));
    int64_t offset = 0;
    for (InputSet& inputs : input_sets) {
      for (client::InferInput& input : inputs) {
        const int64_t size = static_cast<int64_t>(input.data.size());
        RETURN_IF_ERROR(set->input_region_->Write(offset, input.data));
        input = client::InferInput::InSharedMemory(
            std::move(input.name), std::move(input.datatype), std::move(input.shape),
            {.region = input_name, .byte_size = size, .offset = offset});
        offset += Aligned(size);
      }
    }
    const std::vector<std::string>& names =
        options.outputs.empty() ? options.default_outputs : options.outputs;
    outputs.clear();
    for (size_t i = 0; i < names.size(); ++i) {
      outputs.push_back(
          {.name = names[i],
           .shared_memory = client::SharedMemoryPlacement{
               .region = output_name,
               .byte_size = options.output_shared_memory_size,
               .offset = static_cast<int64_t>(i) * options.output_shared_memory_size}});
    }
    RETURN_IF_ERROR(client.RegisterSystemSharedMemory(input_name, set->input_region_->key(),
                                                      set->input_region_->byte_size()));
    set->registered_.push_back(input_name);
    if (!names.empty()) {
      ASSIGN_OR_RETURN(set->output_region_,
                       client::SharedMemoryRegion::Create(
                           "/" + output_name,
                           static_cast<int64_t>(names.size()) * options.output_shared_memory_size));
      RETURN_IF_ERROR(client.RegisterSystemSharedMemory(output_name, set->output_region_->key(),
                                                        set->output_region_->byte_size()));
      set->registered_.push_back(output_name);
    }
  }

  for (InputSet& inputs : input_sets) {
    const inference::ModelInferRequest message =
        client::BuildModelInferRequest({.model = options.model,
                                        .inputs = std::move(inputs),
                                        .outputs = outputs,
                                        .stage = options.stage,
                                        .version = options.version});
    grpc::ByteBuffer buffer;
    bool own_buffer = false;
    const grpc::Status serialized =
        grpc::SerializationTraits<inference::ModelInferRequest>::Serialize(message, &buffer,
                                                                           &own_buffer);
    if (!serialized.ok()) {
      return absl::InternalError(
          absl::StrCat("cannot serialize a request: ", serialized.error_message()));
    }
    set->max_request_bytes_ =
        std::max(set->max_request_bytes_, static_cast<int64_t>(buffer.Length()));
    set->requests_.push_back(std::move(buffer));
  }
  return set;
}

RequestSet::~RequestSet() {
  for (const std::string& name : registered_) (void)client_.UnregisterSystemSharedMemory(name);
}

}  // namespace torchbricks::perf
