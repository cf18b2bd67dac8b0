// Translation between Open Inference Protocol messages and the core's host tensors:
// request tensors (raw or typed contents) to HostTensorView, results to response tensors,
// the `stage` parameter and the requested outputs. Pure functions; thread-safe.
#ifndef TORCHBRICKS_SERVER_GRPC_INFER_CODEC_H_
#define TORCHBRICKS_SERVER_GRPC_INFER_CODEC_H_

#include <deque>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/servable_model.h"
#include "core/stage.h"
#include "proto/bricks.pb.h"
#include "proto/grpc_service.pb.h"

namespace torchbricks::server {

// "FP32" -> TYPE_FP32 and so on for every protocol datatype (BYTES -> TYPE_STRING);
// InvalidArgument for anything else.
absl::StatusOr<package::DataType> ParseProtocolDataType(absl::string_view name);

// TYPE_FP32 -> "FP32"; TYPE_STRING -> "BYTES"; TYPE_INVALID -> "".
std::string ProtocolDataType(package::DataType type);

// Views of the request's input tensors. Raw contents are viewed in place; typed contents
// are converted into `scratch`. Views stay valid while `request` and `scratch` live.
// InvalidArgument naming the tensor for: a missing name, a duplicated input, an unknown
// or unsupported datatype, a negative dimension, a shape of more than kMaxTensorElements
// elements, raw and typed contents mixed, a
// raw_input_contents count that differs from the inputs, typed contents whose count does
// not match the shape or that sit in the wrong field, and an input with no contents.
absl::StatusOr<std::vector<HostTensorView>> DecodeInputs(
    const inference::ModelInferRequest& request, std::deque<std::string>* scratch);

// The request parameter `stage`: INFERENCE when absent. InvalidArgument when it is not a
// string naming INFERENCE or EXPORT.
absl::StatusOr<Stage> StageOfRequest(const inference::ModelInferRequest& request);

// The requested output names, in order, without repeats.
std::vector<std::string> RequestedOutputs(const inference::ModelInferRequest& request);

// Appends `outputs` to `response` as raw contents, moving their bytes.
void EncodeOutputs(std::vector<HostTensor> outputs, inference::ModelInferResponse* response);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_INFER_CODEC_H_
