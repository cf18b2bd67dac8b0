#include "clients/cpp/infer_tensors.h"

#include <limits>
#include <utility>

namespace torchbricks::client {
namespace {

constexpr char kShmRegion[] = "shared_memory_region";
constexpr char kShmByteSize[] = "shared_memory_byte_size";
constexpr char kShmOffset[] = "shared_memory_offset";

void SetPlacement(const SharedMemoryPlacement& placement,
                  google::protobuf::Map<std::string, inference::InferParameter>& parameters) {
  parameters[kShmRegion].set_string_param(placement.region);
  parameters[kShmByteSize].set_int64_param(placement.byte_size);
  if (placement.offset != 0) parameters[kShmOffset].set_int64_param(placement.offset);
}

std::optional<SharedMemoryPlacement> PlacementOf(
    const google::protobuf::Map<std::string, inference::InferParameter>& parameters) {
  const auto region = parameters.find(kShmRegion);
  if (region == parameters.end()) return std::nullopt;
  SharedMemoryPlacement placement{.region = region->second.string_param()};
  if (const auto size = parameters.find(kShmByteSize); size != parameters.end()) {
    placement.byte_size = size->second.int64_param();
  }
  if (const auto offset = parameters.find(kShmOffset); offset != parameters.end()) {
    placement.offset = offset->second.int64_param();
  }
  return placement;
}

}  // namespace

int64_t DatatypeByteSize(absl::string_view datatype) {
  if (datatype == "BOOL" || datatype == "UINT8" || datatype == "INT8") return 1;
  if (datatype == "UINT16" || datatype == "INT16" || datatype == "FP16" || datatype == "BF16") {
    return 2;
  }
  if (datatype == "UINT32" || datatype == "INT32" || datatype == "FP32") return 4;
  if (datatype == "UINT64" || datatype == "INT64" || datatype == "FP64") return 8;
  return 0;
}

int64_t ElementCount(absl::Span<const int64_t> shape) {
  int64_t count = 1;
  for (const int64_t dim : shape) {
    if (dim < 0) return -1;
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / dim) return -1;
    count *= dim;
  }
  return count;
}

std::string JoinBytesElements(absl::Span<const std::string> elements) {
  std::string raw;
  for (const std::string& element : elements) {
    const uint32_t length = static_cast<uint32_t>(element.size());
    raw.append(reinterpret_cast<const char*>(&length), sizeof(length));
    raw.append(element);
  }
  return raw;
}

absl::StatusOr<std::vector<std::string>> SplitBytesElements(absl::string_view raw) {
  std::vector<std::string> elements;
  size_t position = 0;
  while (position < raw.size()) {
    uint32_t length = 0;
    if (raw.size() - position < sizeof(length)) {
      return absl::InvalidArgumentError(
          absl::StrCat("BYTES contents end inside the length prefix of element ", elements.size()));
    }
    std::memcpy(&length, raw.data() + position, sizeof(length));
    position += sizeof(length);
    if (raw.size() - position < length) {
      return absl::InvalidArgumentError(absl::StrCat("BYTES element ", elements.size(), " claims ",
                                                     length, " bytes; ", raw.size() - position,
                                                     " are left"));
    }
    elements.emplace_back(raw.substr(position, length));
    position += length;
  }
  return elements;
}

InferInput InferInput::OfElements(std::string name, std::vector<int64_t> shape,
                                  absl::Span<const std::string> elements) {
  return {std::move(name), "BYTES", std::move(shape), JoinBytesElements(elements)};
}

InferInput InferInput::FromRaw(std::string name, std::string datatype, std::vector<int64_t> shape,
                               std::string data) {
  return {std::move(name), std::move(datatype), std::move(shape), std::move(data)};
}

InferInput InferInput::InSharedMemory(std::string name, std::string datatype,
                                      std::vector<int64_t> shape, SharedMemoryPlacement placement) {
  return {std::move(name), std::move(datatype), std::move(shape), "", std::move(placement)};
}

absl::StatusOr<std::vector<std::string>> InferOutput::Elements() const {
  if (shared_memory.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "output '", name, "' lies in shared memory region '", shared_memory->region, "'"));
  }
  if (datatype != "BYTES") {
    return absl::InvalidArgumentError(
        absl::StrCat("output '", name, "' is ", datatype, ", not BYTES"));
  }
  absl::StatusOr<std::vector<std::string>> elements = SplitBytesElements(data);
  if (!elements.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("output '", name, "': ", elements.status().message()));
  }
  return elements;
}

const InferOutput* InferResult::Find(absl::string_view name) const {
  for (const InferOutput& output : outputs) {
    if (output.name == name) return &output;
  }
  return nullptr;
}

inference::ModelInferRequest BuildModelInferRequest(const InferRequest& request) {
  inference::ModelInferRequest message;
  message.set_model_name(request.model);
  message.set_model_version(request.version);
  message.set_id(request.id);
  if (!request.stage.empty()) {
    (*message.mutable_parameters())["stage"].set_string_param(request.stage);
  }
  for (const InferInput& input : request.inputs) {
    auto* tensor = message.add_inputs();
    tensor->set_name(input.name);
    tensor->set_datatype(input.datatype);
    for (const int64_t dim : input.shape) tensor->add_shape(dim);
    if (input.shared_memory.has_value()) {
      SetPlacement(*input.shared_memory, *tensor->mutable_parameters());
    } else {
      // Only inputs outside shared memory have raw contents, in input order.
      message.add_raw_input_contents(input.data);
    }
  }
  for (const RequestedOutput& output : request.outputs) {
    auto* tensor = message.add_outputs();
    tensor->set_name(output.name);
    if (output.shared_memory.has_value()) {
      SetPlacement(*output.shared_memory, *tensor->mutable_parameters());
    }
  }
  return message;
}

absl::StatusOr<InferResult> InferResultFromResponse(inference::ModelInferResponse response) {
  const int raw_count = response.raw_output_contents_size();
  if (raw_count != 0 && raw_count != response.outputs_size()) {
    return absl::InvalidArgumentError(absl::StrCat("the response has ", response.outputs_size(),
                                                   " outputs but ", raw_count, " raw contents"));
  }
  InferResult result{.model_name = response.model_name(),
                     .model_version = response.model_version(),
                     .id = response.id()};
  result.outputs.reserve(response.outputs_size());
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& tensor = response.outputs(i);
    InferOutput output{.name = tensor.name(),
                       .datatype = tensor.datatype(),
                       .shape = {tensor.shape().begin(), tensor.shape().end()},
                       .shared_memory = PlacementOf(tensor.parameters())};
    if (raw_count != 0) output.data = std::move(*response.mutable_raw_output_contents(i));
    result.outputs.push_back(std::move(output));
  }
  return result;
}

}  // namespace torchbricks::client
