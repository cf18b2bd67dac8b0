// The input tensors torchbricks-perf sends: their shapes resolved from the model's metadata
// and configuration (variable dimensions from --shape, the batch dimension from -b), and
// their values random, zero, or read from a JSON file in perf_analyzer's --input-data
// format. Pure functions (the JSON file is read once); thread-safe.
//
//   absl::StatusOr<std::vector<InputSet>> sets = BuildInputSets(metadata, config, {.source =
//   "random"});
//   // one InputSet per request variant; requests cycle through them
#ifndef TORCHBRICKS_CLIENTS_CPP_PERF_INPUT_DATA_H_
#define TORCHBRICKS_CLIENTS_CPP_PERF_INPUT_DATA_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "clients/cpp/infer_tensors.h"
#include "proto/grpc_service.pb.h"

namespace torchbricks::perf {

// Every input of one request, in metadata order.
using InputSet = std::vector<client::InferInput>;

struct InputDataOptions {
  // "random" (uniform values: floats in [0, 1), integers in [0, 100), booleans, 16-letter
  // BYTES elements), "zero" (zeros, empty BYTES elements), or the path of a JSON file.
  std::string source = "random";
  // Shapes of inputs with variable dimensions, without the batch dimension when the model
  // batches (max_batch_size > 0).
  std::map<std::string, std::vector<int64_t>> shapes;
  // The batch dimension of each input of a batching model; must be 1 otherwise.
  int64_t batch_size = 1;
};

// The request variants for `metadata`'s inputs: one for "random" and "zero", one per entry of
// a JSON file's "data" list. InvalidArgument (with the input's name) when a shape stays
// variable, a --shape has the wrong rank or contradicts a fixed dimension, a --shape names
// no input, -b > 1 for a model that does not batch, or the file does not parse, lacks an
// input, names an unknown one, or holds values that do not fit the shape or the datatype;
// NotFound when the file (or a file it names) cannot be read.
//
// The JSON format (perf_analyzer's, with one extension):
//   {"data": [{"NAME": [v, ...]}, {"NAME": {"content": [v, ...], "shape": [d, ...]}}, ...]}
// Values are numbers (nested lists are flattened), true/false for BOOL, strings for BYTES.
// {"NAME": {"b64": "..."}} stands for the tensor's raw contents: little-endian numbers, or for
// BYTES the elements each after its 4-byte little-endian length (as perf_analyzer reads it).
// The extensions: {"b64": "..."} as an element of a list stands for one BYTES element (the
// file itself), and {"file": "path"} (relative to the JSON file's folder) for one BYTES
// element holding that file's bytes, e.g. a JPEG. An entry holds one batch element (the
// shape without the batch dimension), repeated -b times; INT64 values beyond 2^53 lose
// precision (JSON numbers are doubles).
absl::StatusOr<std::vector<InputSet>> BuildInputSets(
    const inference::ModelMetadataResponse& metadata, const inference::ModelConfig& config,
    const InputDataOptions& options);

// The bytes of one element of `datatype` for `value` (little-endian). InvalidArgument for a
// value the type cannot hold (a fraction for an integer type, out of range) or an unknown
// datatype. FP16 and BF16 round to nearest.
absl::StatusOr<std::string> EncodeNumber(absl::string_view datatype, double value);

}  // namespace torchbricks::perf

#endif  // TORCHBRICKS_CLIENTS_CPP_PERF_INPUT_DATA_H_
