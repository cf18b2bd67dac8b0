#include "server/grpc/infer_codec.h"

#include <cstring>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/graph/bytes_elements.h"
#include "core/graph/data_types.h"

namespace torchbricks::server {
namespace {

// Appends `values` converted element by element to `Target` as bytes.
template <typename Target, typename Values>
std::string PackAs(const Values& values) {
  std::string bytes(values.size() * sizeof(Target), '\0');
  char* out = bytes.data();
  for (const auto& value : values) {
    const Target element = static_cast<Target>(value);
    std::memcpy(out, &element, sizeof(Target));
    out += sizeof(Target);
  }
  return bytes;
}

// The typed-contents field a datatype uses, its element count, and the bytes it packs to.
absl::StatusOr<std::string> PackTypedContents(
    const inference::ModelInferRequest::InferInputTensor& input, package::DataType type,
    int64_t elements) {
  const inference::InferTensorContents& c = input.contents();
  const int64_t counts[] = {c.bool_contents_size(),   c.int_contents_size(),
                            c.int64_contents_size(),  c.uint_contents_size(),
                            c.uint64_contents_size(), c.fp32_contents_size(),
                            c.fp64_contents_size(),   c.bytes_contents_size()};
  int field = -1;
  std::string bytes;
  switch (type) {
    case package::TYPE_BOOL:
      field = 0;
      bytes = PackAs<bool>(c.bool_contents());
      break;
    case package::TYPE_INT8:
      field = 1;
      bytes = PackAs<int8_t>(c.int_contents());
      break;
    case package::TYPE_INT16:
      field = 1;
      bytes = PackAs<int16_t>(c.int_contents());
      break;
    case package::TYPE_INT32:
      field = 1;
      bytes = PackAs<int32_t>(c.int_contents());
      break;
    case package::TYPE_INT64:
      field = 2;
      bytes = PackAs<int64_t>(c.int64_contents());
      break;
    case package::TYPE_UINT8:
      field = 3;
      bytes = PackAs<uint8_t>(c.uint_contents());
      break;
    case package::TYPE_FP32:
      field = 5;
      bytes = PackAs<float>(c.fp32_contents());
      break;
    case package::TYPE_FP64:
      field = 6;
      bytes = PackAs<double>(c.fp64_contents());
      break;
    case package::TYPE_STRING:
      field = 7;
      for (const std::string& element : c.bytes_contents()) AppendBytesElement(element, &bytes);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name(), "': datatype ", input.datatype(),
                       " has no typed contents field; send it in raw_input_contents"));
  }
  for (int i = 0; i < 8; ++i) {
    if (i != field && counts[i] > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", input.name(), "': its contents are in a field that does not match datatype ",
          input.datatype()));
    }
  }
  if (counts[field] != elements) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", input.name(), "' has ", counts[field], " elements but shape [",
                     absl::StrJoin(input.shape(), ","), "] needs ", elements));
  }
  return bytes;
}

}  // namespace

absl::StatusOr<package::DataType> ParseProtocolDataType(absl::string_view name) {
  std::optional<package::DataType> type = DataTypeFromName(name);
  if (!type.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown datatype '", name, "'"));
  }
  return *type;
}

std::string ProtocolDataType(package::DataType type) {
  return type == package::TYPE_INVALID ? "" : DataTypeName(type);
}

absl::StatusOr<std::optional<ShmPlacement>> ShmPlacementOf(
    absl::string_view tensor,
    const google::protobuf::Map<std::string, inference::InferParameter>& parameters) {
  auto region = parameters.find("shared_memory_region");
  auto size = parameters.find("shared_memory_byte_size");
  auto offset = parameters.find("shared_memory_offset");
  if (region == parameters.end() && size == parameters.end()) {
    if (offset != parameters.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", tensor, "' has shared_memory_offset without shared_memory_region"));
    }
    return std::nullopt;
  }
  if (region == parameters.end() || size == parameters.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", tensor, "' needs both shared_memory_region and shared_memory_byte_size"));
  }
  auto as_int = [](const inference::InferParameter& p) -> std::optional<int64_t> {
    if (p.parameter_choice_case() == inference::InferParameter::kInt64Param) {
      return p.int64_param();
    }
    if (p.parameter_choice_case() == inference::InferParameter::kUint64Param &&
        p.uint64_param() <= static_cast<uint64_t>(INT64_MAX)) {
      return static_cast<int64_t>(p.uint64_param());
    }
    return std::nullopt;
  };
  ShmPlacement placement;
  std::optional<int64_t> bytes = as_int(size->second);
  std::optional<int64_t> start =
      offset == parameters.end() ? std::optional<int64_t>(0) : as_int(offset->second);
  if (region->second.parameter_choice_case() != inference::InferParameter::kStringParam ||
      !bytes.has_value() || !start.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", tensor,
                     "': shared_memory_region must be a string, shared_memory_byte_size and "
                     "shared_memory_offset integers"));
  }
  placement.region = region->second.string_param();
  placement.byte_size = *bytes;
  placement.offset = *start;
  return placement;
}

absl::StatusOr<std::map<std::string, PlacedOutput>> PlaceOutputs(
    const inference::ModelInferRequest& request, SharedMemoryLease* lease) {
  SharedMemoryLease shared_memory_off(nullptr);  // refuses every placement
  if (lease == nullptr) lease = &shared_memory_off;
  std::map<std::string, PlacedOutput> placed;
  absl::flat_hash_set<std::string> seen;
  for (const auto& output : request.outputs()) {
    // One output has one place: a second request of it (into another region, say) would
    // be answered once and leave the other place unwritten.
    if (!seen.insert(output.name()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "output '", output.name(), "' is requested more than once; request each output once"));
    }
    absl::StatusOr<std::optional<ShmPlacement>> placement =
        ShmPlacementOf(output.name(), output.parameters());
    if (!placement.ok()) return placement.status();
    if (!placement->has_value()) continue;
    absl::StatusOr<SharedMemorySlice> slice = lease->Slice(output.name(), **placement);
    if (!slice.ok()) return slice.status();
    placed.emplace(output.name(), PlacedOutput{**placement, *slice});
  }
  return placed;
}

absl::StatusOr<std::vector<HostTensorView>> DecodeInputs(
    const inference::ModelInferRequest& request, std::deque<std::string>* scratch,
    SharedMemoryLease* lease) {
  SharedMemoryLease shared_memory_off(nullptr);  // refuses every placement
  if (lease == nullptr) lease = &shared_memory_off;
  // Inputs in shared memory have no raw contents entry: the entries are the other inputs'.
  std::vector<std::optional<ShmPlacement>> placements;
  placements.reserve(request.inputs_size());
  int in_memory = 0;
  for (const auto& input : request.inputs()) {
    absl::StatusOr<std::optional<ShmPlacement>> placement =
        ShmPlacementOf(input.name(), input.parameters());
    if (!placement.ok()) return placement.status();
    if (!placement->has_value()) ++in_memory;
    placements.push_back(*std::move(placement));
  }
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != in_memory) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw_input_contents has ", request.raw_input_contents_size(), " entries for ",
                     in_memory, " inputs not in shared memory; give one per such input or none"));
  }
  int next_raw = 0;
  std::vector<HostTensorView> views;
  views.reserve(request.inputs_size());
  absl::flat_hash_set<std::string> seen;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const auto& input = request.inputs(i);
    if (input.name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("input #", i, " has no name"));
    }
    if (!seen.insert(input.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name(), "' appears more than once"));
    }
    absl::StatusOr<package::DataType> type = ParseProtocolDataType(input.datatype());
    if (!type.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name(), "': ", type.status().message()));
    }
    if (ElementSize(*type) == 0 && *type != package::TYPE_STRING) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name(), "': datatype ", input.datatype(),
                       " is not supported by brick collections (libtorch cannot hold it)"));
    }
    HostTensorView view;
    view.name = input.name();
    view.data_type = *type;
    for (int64_t dim : input.shape()) {
      if (dim < 0) {
        return absl::InvalidArgumentError(absl::StrCat("input '", input.name(),
                                                       "' has a negative dimension in shape [",
                                                       absl::StrJoin(input.shape(), ","), "]"));
      }
      view.shape.push_back(dim);
    }
    const std::optional<int64_t> count = ShapeElements(view.shape);
    if (!count.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name(), "' has shape [", absl::StrJoin(input.shape(), ","),
                       "] of more than ", kMaxTensorElements, " elements"));
    }
    const int64_t elements = *count;
    const bool typed = input.has_contents() && input.contents().ByteSizeLong() > 0;
    const std::optional<ShmPlacement>& placement = placements[i];
    if (placement.has_value() && typed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", input.name(), "' is in shared memory and also has typed contents"));
    }
    bool in_region = false;
    if (placement.has_value()) {
      absl::StatusOr<SharedMemorySlice> slice = lease->Slice(input.name(), *placement);
      if (!slice.ok()) return slice.status();
      // A wrong size is refused before anything is allocated for the copy (BYTES elements
      // can only be counted once copied; their bytes are in the caller's byte budget).
      if (*type != package::TYPE_STRING &&
          static_cast<int64_t>(slice->size()) != elements * ElementSize(*type)) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", input.name(), "' has ", slice->size(),
                         " bytes in shared memory but shape [", absl::StrJoin(input.shape(), ","),
                         "] of ", input.datatype(), " needs ", elements * ElementSize(*type)));
      }
      // Copied once, here: the model may work in place on its inputs, and the client may
      // write its region at any time; neither may reach the other.
      scratch->emplace_back(slice->size(), '\0');
      if (absl::Status copied = slice->CopyTo(scratch->back().data()); !copied.ok()) {
        return absl::Status(copied.code(),
                            absl::StrCat("input '", input.name(), "': ", copied.message()));
      }
      view.data = scratch->back();
      in_region = true;
    } else if (raw) {
      view.data = request.raw_input_contents(next_raw++);
    }
    if (raw && typed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", input.name(),
          "' has typed contents while the request uses raw_input_contents; use one or the other"));
    }
    if ((raw || in_region) && *type == package::TYPE_STRING) {
      absl::StatusOr<std::vector<absl::string_view>> parts =
          SplitBytesElements(view.data, input.name());
      if (!parts.ok()) return parts.status();
      if (static_cast<int64_t>(parts->size()) != elements) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", input.name(), "' has ", parts->size(), " BYTES elements but shape [",
            absl::StrJoin(input.shape(), ","), "] needs ", elements));
      }
    } else if (raw || in_region) {
      const int64_t expected = elements * ElementSize(*type);
      if (static_cast<int64_t>(view.data.size()) != expected) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", input.name(), "' has ", view.data.size(),
            in_region ? " bytes in shared memory" : " bytes of raw contents", " but shape [",
            absl::StrJoin(input.shape(), ","), "] of ", input.datatype(), " needs ", expected));
      }
    } else if (typed || elements == 0) {
      absl::StatusOr<std::string> bytes = PackTypedContents(input, *type, elements);
      if (!bytes.ok()) return bytes.status();
      scratch->push_back(*std::move(bytes));
      view.data = scratch->back();
    } else {
      return absl::InvalidArgumentError(absl::StrCat("input '", input.name(), "' has no contents"));
    }
    views.push_back(std::move(view));
  }
  return views;
}

uint64_t SharedMemoryInputBytes(const inference::ModelInferRequest& request) {
  uint64_t bytes = 0;
  for (const auto& input : request.inputs()) {
    absl::StatusOr<std::optional<ShmPlacement>> placement =
        ShmPlacementOf(input.name(), input.parameters());
    if (placement.ok() && placement->has_value() && (*placement)->byte_size > 0) {
      bytes += static_cast<uint64_t>((*placement)->byte_size);
    }
  }
  return bytes;
}

absl::StatusOr<Stage> StageOfRequest(const inference::ModelInferRequest& request) {
  auto it = request.parameters().find("stage");
  if (it == request.parameters().end()) return Stage::kInference;
  if (it->second.parameter_choice_case() != inference::InferParameter::kStringParam) {
    return absl::InvalidArgumentError("parameter 'stage' must be a string");
  }
  absl::StatusOr<Stage> stage = ParseStage(it->second.string_param());
  if (!stage.ok() || (*stage != Stage::kInference && *stage != Stage::kExport)) {
    return absl::InvalidArgumentError(absl::StrCat("parameter 'stage' is '",
                                                   it->second.string_param(),
                                                   "'; the server runs INFERENCE or EXPORT"));
  }
  return *stage;
}

std::vector<std::string> RequestedOutputs(const inference::ModelInferRequest& request) {
  std::vector<std::string> names;
  absl::flat_hash_set<std::string> seen;
  for (const auto& output : request.outputs()) {
    if (seen.insert(output.name()).second) names.push_back(output.name());
  }
  return names;
}

absl::Status EncodeOutputs(std::vector<HostTensor> outputs,
                           const std::map<std::string, PlacedOutput>& placed,
                           inference::ModelInferResponse* response) {
  // Every placement is checked before any is written: a failed request leaves the
  // client's regions as they were.
  for (const HostTensor& output : outputs) {
    auto in_region = placed.find(output.name);
    if (in_region != placed.end() && output.data.size() > in_region->second.slice.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("output '", output.name, "' takes ", output.data.size(),
                       " bytes but its place in region '", in_region->second.placement.region,
                       "' has ", in_region->second.slice.size()));
    }
  }
  for (HostTensor& output : outputs) {
    auto* tensor = response->add_outputs();
    tensor->set_name(output.name);
    tensor->set_datatype(ProtocolDataType(output.data_type));
    for (int64_t dim : output.shape) tensor->add_shape(dim);
    auto in_region = placed.find(output.name);
    if (in_region == placed.end()) {
      *response->add_raw_output_contents() = std::move(output.data);
      continue;
    }
    const PlacedOutput& place = in_region->second;
    if (absl::Status written = place.slice.CopyFrom(output.data); !written.ok()) {
      return absl::Status(written.code(),
                          absl::StrCat("output '", output.name, "': ", written.message()));
    }
    auto& parameters = *tensor->mutable_parameters();
    parameters["shared_memory_region"].set_string_param(place.placement.region);
    parameters["shared_memory_offset"].set_int64_param(place.placement.offset);
    parameters["shared_memory_byte_size"].set_int64_param(static_cast<int64_t>(output.data.size()));
    response->add_raw_output_contents();  // keeps entries aligned with outputs
  }
  return absl::OkStatus();
}

}  // namespace torchbricks::server
