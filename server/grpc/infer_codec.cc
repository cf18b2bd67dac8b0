#include "server/grpc/infer_codec.h"

#include <cstring>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/bytes_elements.h"
#include "core/data_types.h"

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

absl::StatusOr<std::vector<HostTensorView>> DecodeInputs(
    const inference::ModelInferRequest& request, std::deque<std::string>* scratch) {
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw_input_contents has ", request.raw_input_contents_size(), " entries for ",
                     request.inputs_size(), " inputs; give one per input or none"));
  }
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
    if (raw && typed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", input.name(),
          "' has typed contents while the request uses raw_input_contents; use one or the other"));
    }
    if (raw && *type == package::TYPE_STRING) {
      view.data = request.raw_input_contents(i);
      absl::StatusOr<std::vector<absl::string_view>> parts =
          SplitBytesElements(view.data, input.name());
      if (!parts.ok()) return parts.status();
      if (static_cast<int64_t>(parts->size()) != elements) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", input.name(), "' has ", parts->size(), " BYTES elements but shape [",
            absl::StrJoin(input.shape(), ","), "] needs ", elements));
      }
    } else if (raw) {
      view.data = request.raw_input_contents(i);
      const int64_t expected = elements * ElementSize(*type);
      if (static_cast<int64_t>(view.data.size()) != expected) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", input.name(), "' has ", view.data.size(),
                         " bytes of raw contents but shape [", absl::StrJoin(input.shape(), ","),
                         "] of ", input.datatype(), " needs ", expected));
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

void EncodeOutputs(std::vector<HostTensor> outputs, inference::ModelInferResponse* response) {
  for (HostTensor& output : outputs) {
    auto* tensor = response->add_outputs();
    tensor->set_name(output.name);
    tensor->set_datatype(ProtocolDataType(output.data_type));
    for (int64_t dim : output.shape) tensor->add_shape(dim);
    *response->add_raw_output_contents() = std::move(output.data);
  }
}

}  // namespace torchbricks::server
