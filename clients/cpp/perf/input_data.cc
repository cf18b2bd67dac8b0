#include "clients/cpp/perf/input_data.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace torchbricks::perf {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// One input with its shape settled, the batch dimension left out.
struct ResolvedInput {
  std::string name;
  std::string datatype;
  std::vector<int64_t> fixed;  // the metadata's dimensions (-1 where variable), no batch
  std::vector<int64_t> shape;  // the dimensions to send, no batch
};

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// OK when `shape` has the rank of `fixed` and agrees with each of its fixed dimensions.
absl::Status CheckFits(const ResolvedInput& input, const std::vector<int64_t>& shape,
                       absl::string_view where) {
  bool fits = shape.size() == input.fixed.size();
  for (size_t i = 0; fits && i < shape.size(); ++i) {
    fits = shape[i] >= 0 && (input.fixed[i] < 0 || input.fixed[i] == shape[i]);
  }
  if (fits) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("input '", input.name, "': ", where, " shape ",
                                                 ShapeText(shape), " does not fit the model's ",
                                                 ShapeText(input.fixed)));
}

absl::StatusOr<std::vector<ResolvedInput>> ResolveInputs(
    const inference::ModelMetadataResponse& metadata, bool batching,
    const InputDataOptions& options) {
  std::vector<ResolvedInput> inputs;
  std::map<std::string, std::vector<int64_t>> unused = options.shapes;
  for (const auto& tensor : metadata.inputs()) {
    ResolvedInput input{.name = tensor.name(), .datatype = tensor.datatype()};
    input.fixed.assign(tensor.shape().begin() + (batching && tensor.shape_size() > 0 ? 1 : 0),
                       tensor.shape().end());
    if (const auto given = unused.find(input.name); given != unused.end()) {
      RETURN_IF_ERROR(CheckFits(input, given->second, "--shape"));
      input.shape = given->second;
      unused.erase(given);
    } else {
      input.shape = input.fixed;
      for (const int64_t dim : input.shape) {
        if (dim < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("input '", input.name, "' has the variable shape ",
                           ShapeText(input.fixed), batching ? " (batch dimension left out)" : "",
                           "; give --shape ", input.name, ":D1,D2,..."));
        }
      }
    }
    inputs.push_back(std::move(input));
  }
  if (!unused.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--shape names '", unused.begin()->first,
                                                   "', which is no input of ", metadata.name()));
  }
  return inputs;
}

uint16_t FloatToHalf(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof(bits));
  const uint32_t sign = (bits >> 16) & 0x8000u;
  uint32_t mantissa = bits & 0x7fffffu;
  const int exponent = static_cast<int>((bits >> 23) & 0xffu);
  if (exponent == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mantissa ? 0x200u : 0));
  const int e = exponent - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  uint32_t half = 0;
  int shift = 13;
  if (e <= 0) {  // a subnormal half (or zero)
    if (e < -10) return static_cast<uint16_t>(sign);
    mantissa |= 0x800000u;
    shift = 14 - e;
  } else {
    half = static_cast<uint32_t>(e) << 10;
  }
  half |= mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (half & 1u))) ++half;  // a carry may raise e
  return static_cast<uint16_t>(sign | half);
}

uint16_t FloatToBfloat16(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof(bits));
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

template <typename T>
std::string BytesOf(T value) {
  return std::string(reinterpret_cast<const char*>(&value), sizeof(T));
}

template <typename T>
absl::StatusOr<std::string> EncodeInteger(absl::string_view datatype, double value) {
  // The bounds as doubles: max() + 1 is a power of two, exact in a double.
  const double low = static_cast<double>(std::numeric_limits<T>::min());
  const double high = static_cast<double>(std::numeric_limits<T>::max() / 2 + 1) * 2;
  if (value != std::floor(value) || value < low || value >= high) {
    return absl::InvalidArgumentError(absl::StrCat(value, " is no ", datatype, " value"));
  }
  return BytesOf(static_cast<T>(value));
}

// A file's bytes. NotFound when it cannot be read.
absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot read '", path.string(), "'"));
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

// Appends the leaves of `value` (lists flattened) to `out`.
void Flatten(const Value& value, std::vector<const Value*>& out) {
  if (value.has_list_value()) {
    for (const Value& item : value.list_value().values()) Flatten(item, out);
  } else {
    out.push_back(&value);
  }
}

// The contents and shape of one input of one JSON entry.
struct JsonTensor {
  std::string raw;                    // non-BYTES: the little-endian contents
  std::vector<std::string> elements;  // BYTES
  std::vector<int64_t> shape;         // no batch dimension
};

// One BYTES element: a string, {"b64": ...} or {"file": ...}.
absl::StatusOr<std::string> BytesElement(const Value& value, const std::filesystem::path& folder) {
  if (value.has_string_value()) return value.string_value();
  if (value.has_struct_value()) {
    const auto& fields = value.struct_value().fields();
    if (const auto b64 = fields.find("b64"); b64 != fields.end()) {
      std::string decoded;
      if (!absl::Base64Unescape(b64->second.string_value(), &decoded)) {
        return absl::InvalidArgumentError("a \"b64\" value is not base64");
      }
      return decoded;
    }
    if (const auto file = fields.find("file"); file != fields.end()) {
      return ReadFile(folder / file->second.string_value());
    }
  }
  return absl::InvalidArgumentError(
      "a BYTES element must be a string, {\"b64\": ...} or {\"file\": ...}");
}

absl::StatusOr<JsonTensor> ParseJsonTensor(const ResolvedInput& input, const Value& value,
                                           const std::filesystem::path& folder) {
  JsonTensor tensor{.shape = input.shape};
  const Value* content = &value;
  if (value.has_struct_value()) {
    const auto& fields = value.struct_value().fields();
    if (const auto shape = fields.find("shape"); shape != fields.end()) {
      tensor.shape.clear();
      std::vector<const Value*> dims;
      Flatten(shape->second, dims);
      for (const Value* dim : dims)
        tensor.shape.push_back(static_cast<int64_t>(dim->number_value()));
      RETURN_IF_ERROR(CheckFits(input, tensor.shape, "the data's"));
    }
    if (const auto found = fields.find("content"); found != fields.end()) {
      content = &found->second;
    } else if (const auto b64 = fields.find("b64"); b64 != fields.end()) {
      std::string decoded;
      if (!absl::Base64Unescape(b64->second.string_value(), &decoded)) {
        return absl::InvalidArgumentError("a \"b64\" value is not base64");
      }
      const int64_t count = client::ElementCount(tensor.shape);
      if (input.datatype == "BYTES") {
        // As perf_analyzer reads it: the tensor's wire bytes, each element length-prefixed.
        ASSIGN_OR_RETURN(tensor.elements, client::SplitBytesElements(decoded));
        if (static_cast<int64_t>(tensor.elements.size()) != count) {
          return absl::InvalidArgumentError(absl::StrCat("\"b64\" holds ", tensor.elements.size(),
                                                         " BYTES elements, the shape needs ",
                                                         count));
        }
        return tensor;
      }
      tensor.raw = std::move(decoded);
      const int64_t want = count * client::DatatypeByteSize(input.datatype);
      if (static_cast<int64_t>(tensor.raw.size()) != want) {
        return absl::InvalidArgumentError(
            absl::StrCat("\"b64\" holds ", tensor.raw.size(), " bytes, the shape needs ", want));
      }
      return tensor;
    }
  }
  std::vector<const Value*> leaves;
  Flatten(*content, leaves);
  const int64_t count = client::ElementCount(tensor.shape);
  if (static_cast<int64_t>(leaves.size()) != count) {
    return absl::InvalidArgumentError(absl::StrCat("holds ", leaves.size(), " values, shape ",
                                                   ShapeText(tensor.shape), " needs ", count));
  }
  for (const Value* leaf : leaves) {
    if (input.datatype == "BYTES") {
      ASSIGN_OR_RETURN(std::string element, BytesElement(*leaf, folder));
      tensor.elements.push_back(std::move(element));
    } else if (leaf->has_number_value() || leaf->has_bool_value()) {
      const double number = leaf->has_bool_value() ? leaf->bool_value() : leaf->number_value();
      ASSIGN_OR_RETURN(const std::string bytes, EncodeNumber(input.datatype, number));
      tensor.raw += bytes;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("a value of a ", input.datatype, " input must be a number"));
    }
  }
  return tensor;
}

// `tensor` repeated `batch` times along a new batch dimension (when `batching`).
client::InferInput Batched(const ResolvedInput& input, const JsonTensor& tensor, bool batching,
                           int64_t batch) {
  std::vector<int64_t> shape = tensor.shape;
  if (batching) shape.insert(shape.begin(), batch);
  if (input.datatype == "BYTES") {
    std::vector<std::string> elements;
    for (int64_t b = 0; b < batch; ++b) {
      elements.insert(elements.end(), tensor.elements.begin(), tensor.elements.end());
    }
    return client::InferInput::OfElements(input.name, std::move(shape), elements);
  }
  std::string raw;
  raw.reserve(tensor.raw.size() * static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) raw += tensor.raw;
  return client::InferInput::FromRaw(input.name, input.datatype, std::move(shape), std::move(raw));
}

// Random or zero contents for one batch element of `input`.
absl::StatusOr<JsonTensor> Generated(const ResolvedInput& input, bool random, uint64_t seed) {
  JsonTensor tensor{.shape = input.shape};
  const int64_t count = client::ElementCount(tensor.shape);
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> unit(0, 1);
  std::uniform_int_distribution<int> integer(0, 99);
  std::uniform_int_distribution<int> letter('a', 'z');
  for (int64_t i = 0; i < count; ++i) {
    if (input.datatype == "BYTES") {
      std::string element;
      for (int c = 0; random && c < 16; ++c) element += static_cast<char>(letter(engine));
      tensor.elements.push_back(std::move(element));
      continue;
    }
    double value = 0;
    if (random) {
      const bool floating = input.datatype == "FP16" || input.datatype == "BF16" ||
                            input.datatype == "FP32" || input.datatype == "FP64";
      value = input.datatype == "BOOL" ? integer(engine) % 2
              : floating               ? unit(engine)
                                       : integer(engine);
    }
    ASSIGN_OR_RETURN(const std::string bytes, EncodeNumber(input.datatype, value));
    tensor.raw += bytes;
  }
  return tensor;
}

absl::StatusOr<std::vector<InputSet>> FromJsonFile(const std::vector<ResolvedInput>& inputs,
                                                   bool batching, const InputDataOptions& options) {
  const std::filesystem::path path(options.source);
  ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  Struct document;
  if (const auto parsed = google::protobuf::util::JsonStringToMessage(text, &document);
      !parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--input-data '", options.source, "' is not JSON: ", parsed.ToString()));
  }
  const auto data = document.fields().find("data");
  if (data == document.fields().end() || !data->second.has_list_value() ||
      data->second.list_value().values_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--input-data '", options.source, "' has no non-empty \"data\" list"));
  }
  std::vector<InputSet> sets;
  for (const Value& entry : data->second.list_value().values()) {
    const std::string where = absl::StrCat("--input-data entry ", sets.size());
    if (!entry.has_struct_value()) {
      return absl::InvalidArgumentError(absl::StrCat(where, " is not an object"));
    }
    const auto& fields = entry.struct_value().fields();
    for (const auto& [name, unused] : fields) {
      bool known = false;
      for (const ResolvedInput& input : inputs) known = known || input.name == name;
      if (!known) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " names '", name, "', which is no input of the model"));
      }
    }
    InputSet set;
    for (const ResolvedInput& input : inputs) {
      const auto value = fields.find(input.name);
      if (value == fields.end()) {
        return absl::InvalidArgumentError(absl::StrCat(where, " lacks input '", input.name, "'"));
      }
      absl::StatusOr<JsonTensor> tensor = ParseJsonTensor(input, value->second, path.parent_path());
      if (!tensor.ok()) {
        return absl::Status(tensor.status().code(), absl::StrCat(where, ", input '", input.name,
                                                                 "': ", tensor.status().message()));
      }
      set.push_back(Batched(input, *tensor, batching, options.batch_size));
    }
    sets.push_back(std::move(set));
  }
  return sets;
}

}  // namespace

absl::StatusOr<std::string> EncodeNumber(absl::string_view datatype, double value) {
  if (datatype == "BOOL") return std::string(1, value != 0 ? '\1' : '\0');
  if (datatype == "FP32") return BytesOf(static_cast<float>(value));
  if (datatype == "FP64") return BytesOf(value);
  if (datatype == "FP16") return BytesOf(FloatToHalf(static_cast<float>(value)));
  if (datatype == "BF16") return BytesOf(FloatToBfloat16(static_cast<float>(value)));
  if (datatype == "INT8") return EncodeInteger<int8_t>(datatype, value);
  if (datatype == "INT16") return EncodeInteger<int16_t>(datatype, value);
  if (datatype == "INT32") return EncodeInteger<int32_t>(datatype, value);
  if (datatype == "INT64") return EncodeInteger<int64_t>(datatype, value);
  if (datatype == "UINT8") return EncodeInteger<uint8_t>(datatype, value);
  if (datatype == "UINT16") return EncodeInteger<uint16_t>(datatype, value);
  if (datatype == "UINT32") return EncodeInteger<uint32_t>(datatype, value);
  if (datatype == "UINT64") return EncodeInteger<uint64_t>(datatype, value);
  return absl::InvalidArgumentError(absl::StrCat("unknown datatype '", datatype, "'"));
}

absl::StatusOr<std::vector<InputSet>> BuildInputSets(
    const inference::ModelMetadataResponse& metadata, const inference::ModelConfig& config,
    const InputDataOptions& options) {
  const bool batching = config.max_batch_size() > 0;
  if (!batching && options.batch_size != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(metadata.name(), " does not batch (max_batch_size 0): -b must be 1, not ",
                     options.batch_size));
  }
  if (batching && options.batch_size > config.max_batch_size()) {
    return absl::InvalidArgumentError(absl::StrCat("-b ", options.batch_size, " exceeds ",
                                                   metadata.name(), "'s max_batch_size ",
                                                   config.max_batch_size()));
  }
  ASSIGN_OR_RETURN(const std::vector<ResolvedInput> inputs,
                   ResolveInputs(metadata, batching, options));
  if (options.source != "random" && options.source != "zero") {
    return FromJsonFile(inputs, batching, options);
  }
  InputSet set;
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSIGN_OR_RETURN(const JsonTensor tensor,
                     Generated(inputs[i], options.source == "random", /*seed=*/i + 1));
    set.push_back(Batched(inputs[i], tensor, batching, options.batch_size));
  }
  return std::vector<InputSet>{std::move(set)};
}

}  // namespace torchbricks::perf
