// Translation between Open Inference Protocol messages and the core's host tensors:
// request tensors (raw or typed contents) to HostTensorView, results to response tensors,
// the `stage` parameter and the requested outputs. Pure functions; thread-safe.
#ifndef TORCHBRICKS_SERVER_GRPC_INFER_CODEC_H_
#define TORCHBRICKS_SERVER_GRPC_INFER_CODEC_H_

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/graph/stage.h"
#include "core/servable/host_tensor.h"
#include "proto/bricks.pb.h"
#include "proto/grpc_service.pb.h"
#include "server/grpc/shared_memory_regions.h"

namespace torchbricks::server {

// "FP32" -> TYPE_FP32 and so on for every protocol datatype (BYTES -> TYPE_STRING);
// InvalidArgument for anything else.
absl::StatusOr<package::DataType> ParseProtocolDataType(absl::string_view name);

// TYPE_FP32 -> "FP32"; TYPE_STRING -> "BYTES"; TYPE_INVALID -> "".
std::string ProtocolDataType(package::DataType type);

// A tensor's shared-memory placement from its parameters (shared_memory_region,
// shared_memory_byte_size, optional shared_memory_offset); nullopt when it names no
// region. InvalidArgument naming the tensor when only one of region and byte size is
// given, or a parameter has the wrong type.
absl::StatusOr<std::optional<ShmPlacement>> ShmPlacementOf(
    absl::string_view tensor,
    const google::protobuf::Map<std::string, inference::InferParameter>& parameters);

// The bytes DecodeInputs() will copy out of shared memory for `request`: the sum of the
// shared_memory_byte_size of its inputs placed there (parameters that do not parse count 0;
// DecodeInputs refuses them). Callers count these against their byte budget before decoding,
// since the request's own size does not show them.
uint64_t SharedMemoryInputBytes(const inference::ModelInferRequest& request);

// Views of the request's input tensors. Raw contents are viewed in place; typed contents
// are converted into `scratch`; inputs placed in shared memory are copied once, out of
// their region, into `scratch` (through `lease`; null: shared memory is off, as with a
// lease without regions: FailedPrecondition). The copy keeps client memory away from the
// model: a brick working in place on its input must not write the client's region (nor
// give a result that depends on whether the request was batched), and a client writing its
// region during a run must not change the run's input.
// raw_input_contents then hold, in order, the inputs that are not in shared memory.
// Views stay valid while `request` and `scratch` live.
// InvalidArgument naming the tensor for: a missing name, a duplicated input, an unknown
// or unsupported datatype, a negative dimension, a shape of more than kMaxTensorElements
// elements, raw and typed contents mixed, a
// raw_input_contents count that differs from the inputs, typed contents whose count does
// not match the shape or that sit in the wrong field, and an input with no contents.
// Shared-memory inputs fail as SharedMemoryLease::Slice, and a region that faults while
// being read as SharedMemoryRegion::Read (the message naming the input).
absl::StatusOr<std::vector<HostTensorView>> DecodeInputs(
    const inference::ModelInferRequest& request, std::deque<std::string>* scratch,
    SharedMemoryLease* lease = nullptr);

// Where requested outputs go in shared memory, by output name: the placement and the
// place it names (held by `lease`; null as in DecodeInputs). InvalidArgument naming the
// output when the request names one output more than once; otherwise errors as
// SharedMemoryLease::Slice and ShmPlacementOf.
struct PlacedOutput {
  ShmPlacement placement;
  SharedMemorySlice slice;
};
absl::StatusOr<std::map<std::string, PlacedOutput>> PlaceOutputs(
    const inference::ModelInferRequest& request, SharedMemoryLease* lease);

// The request parameter `stage`: INFERENCE when absent. InvalidArgument when it is not a
// string naming INFERENCE or EXPORT.
absl::StatusOr<Stage> StageOfRequest(const inference::ModelInferRequest& request);

// The requested output names, in order, without repeats (PlaceOutputs refuses repeats).
std::vector<std::string> RequestedOutputs(const inference::ModelInferRequest& request);

// Appends `outputs` to `response` as raw contents, moving their bytes; an output in
// `placed` is written to its shared memory instead (its raw contents entry left empty, its
// parameters naming region, offset and the bytes written). InvalidArgument naming the
// output when it does not fit its placement; then nothing was written to any region and
// `response` is unspecified. A region that faults while being written fails as
// SharedMemoryRegion::Write (the message naming the output); outputs before it stay
// written. Either way `response` is unspecified.
absl::Status EncodeOutputs(std::vector<HostTensor> outputs,
                           const std::map<std::string, PlacedOutput>& placed,
                           inference::ModelInferResponse* response);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_INFER_CODEC_H_
