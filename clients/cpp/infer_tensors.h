// Tensors and inference requests of the Open Inference Protocol as plain C++ values, for
// InferenceClient (clients/cpp/inference_client.h). An InferInput owns the bytes it sends;
// an InferResult owns the bytes of every output it holds. The conversion to and from the
// wire messages lives here too. Plain values: no shared state, no locking needed.
//
//   std::vector<float> pixels(1 * 3 * 100 * 200);
//   InferRequest request{.model = "readme_dummy",
//                        .inputs = {InferInput::Of<float>("raw_images", {1, 3, 100, 200}, pixels)},
//                        .outputs = {{"softmaxed"}}};
//   ...  // absl::StatusOr<InferResult> result = client->Infer(request);
//   absl::StatusOr<std::vector<float>> scores = result->Find("softmaxed")->Values<float>();
//
// Bytes are little-endian and row-major, as the protocol sends them; this library supports
// little-endian hosts only (x86-64, AArch64), where they are the host's own layout.
#ifndef TORCHBRICKS_CLIENTS_CPP_INFER_TENSORS_H_
#define TORCHBRICKS_CLIENTS_CPP_INFER_TENSORS_H_

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "proto/grpc_service.pb.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "torchbricks_client assumes a little-endian host (the protocol's byte order)"
#endif

namespace torchbricks::client {

// The protocol datatype of a C++ element type: DatatypeOf<float>() == "FP32". Defined for
// bool, the fixed-width integers, float and double; FP16, BF16 and BYTES have no C++ type
// here (send FP16/BF16 with InferInput::FromRaw, BYTES with InferInput::OfElements).
template <typename T>
constexpr absl::string_view DatatypeOf() {
  if constexpr (std::is_same_v<T, bool>) return "BOOL";
  if constexpr (std::is_same_v<T, uint8_t>) return "UINT8";
  if constexpr (std::is_same_v<T, uint16_t>) return "UINT16";
  if constexpr (std::is_same_v<T, uint32_t>) return "UINT32";
  if constexpr (std::is_same_v<T, uint64_t>) return "UINT64";
  if constexpr (std::is_same_v<T, int8_t>) return "INT8";
  if constexpr (std::is_same_v<T, int16_t>) return "INT16";
  if constexpr (std::is_same_v<T, int32_t>) return "INT32";
  if constexpr (std::is_same_v<T, int64_t>) return "INT64";
  if constexpr (std::is_same_v<T, float>) return "FP32";
  if constexpr (std::is_same_v<T, double>) return "FP64";
  return "";
}

// Bytes per element of protocol datatype `datatype` ("FP32" -> 4); 0 for BYTES, whose
// elements vary in size, and for names the protocol does not define.
int64_t DatatypeByteSize(absl::string_view datatype);

// The number of elements of a tensor of `shape` (1 for a scalar, shape {}); -1 when a
// dimension is negative or the product overflows int64.
int64_t ElementCount(absl::Span<const int64_t> shape);

// BYTES elements in the protocol's raw layout: each one prefixed by its length as 4 bytes,
// little-endian.
std::string JoinBytesElements(absl::Span<const std::string> elements);

// The elements of a raw BYTES buffer. InvalidArgument when a length prefix runs past the end.
absl::StatusOr<std::vector<std::string>> SplitBytesElements(absl::string_view raw);

// Where a tensor lies in a registered system shared-memory region
// (InferenceClient::RegisterSystemSharedMemory).
struct SharedMemoryPlacement {
  std::string region;     // the name the region was registered under
  int64_t byte_size = 0;  // bytes of the tensor (inputs) or room for it (outputs)
  int64_t offset = 0;     // from the start of the region
};

// One input tensor of a request.
struct InferInput {
  std::string name;
  std::string datatype;  // protocol datatype: "FP32", "INT64", "BYTES", ...
  std::vector<int64_t> shape;
  // The raw contents: little-endian, row-major; for BYTES, JoinBytesElements' layout.
  // Unused (and not sent) when `shared_memory` is set.
  std::string data;
  // Set: the server reads the tensor from this place instead (the caller wrote it there).
  std::optional<SharedMemoryPlacement> shared_memory;

  // A tensor of `shape` holding `values` (row-major), its datatype that of T. The server
  // refuses a count that does not match the shape (INVALID_ARGUMENT).
  template <typename T>
  static InferInput Of(std::string name, std::vector<int64_t> shape, absl::Span<const T> values) {
    static_assert(!DatatypeOf<T>().empty(), "T has no protocol datatype");
    std::string data(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
    return {std::move(name), std::string(DatatypeOf<T>()), std::move(shape), std::move(data)};
  }

  // A BYTES tensor of `shape` whose elements are `elements` (an encoded JPEG or PNG file
  // per image for this server's image inputs).
  static InferInput OfElements(std::string name, std::vector<int64_t> shape,
                               absl::Span<const std::string> elements);

  // A tensor of any datatype from contents already in the raw layout (FP16, BF16, ...).
  static InferInput FromRaw(std::string name, std::string datatype, std::vector<int64_t> shape,
                            std::string data);

  // A tensor the server reads from `placement`; `datatype` and `shape` describe it.
  static InferInput InSharedMemory(std::string name, std::string datatype,
                                   std::vector<int64_t> shape, SharedMemoryPlacement placement);
};

// An output to ask for, by tensor name; with `shared_memory`, the server writes it there
// instead of into the response.
struct RequestedOutput {
  std::string name;
  std::optional<SharedMemoryPlacement> shared_memory;
};

// One inference call.
struct InferRequest {
  std::string model;
  std::vector<InferInput> inputs;
  // The tensors to return (any the stage computes, intermediates included): only the bricks
  // they need run. Empty: the stage's terminal outputs.
  std::vector<RequestedOutput> outputs;
  std::string stage;    // "INFERENCE" or "EXPORT"; empty: the server's default, INFERENCE
  std::string version;  // a version folder name; empty: the newest ready version
  std::string id;       // echoed back in InferResult::id
};

// One output tensor of a result.
struct InferOutput {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;
  // The raw contents (little-endian, row-major; BYTES as JoinBytesElements lays them out).
  // Empty when the server wrote the tensor into shared memory.
  std::string data;
  // Set when the server wrote the tensor into this place (byte_size: the bytes written).
  std::optional<SharedMemoryPlacement> shared_memory;

  // The elements as T. InvalidArgument when T is not the tensor's datatype or the contents
  // do not hold ElementCount(shape) of them; FailedPrecondition when the tensor lies in
  // shared memory (read it from the region).
  template <typename T>
  absl::StatusOr<std::vector<T>> Values() const {
    static_assert(!DatatypeOf<T>().empty(), "T has no protocol datatype");
    if (shared_memory.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "output '", name, "' lies in shared memory region '", shared_memory->region, "'"));
    }
    if (datatype != DatatypeOf<T>()) {
      return absl::InvalidArgumentError(
          absl::StrCat("output '", name, "' is ", datatype, ", not ", DatatypeOf<T>()));
    }
    const int64_t count = ElementCount(shape);
    // Compared by division: count * sizeof(T) could wrap around for a hostile shape.
    if (count < 0 || data.size() % sizeof(T) != 0 ||
        static_cast<uint64_t>(count) != data.size() / sizeof(T)) {
      return absl::InvalidArgumentError(absl::StrCat("output '", name, "' holds ", data.size(),
                                                     " bytes, not ", count, " ", datatype));
    }
    std::vector<T> values(static_cast<size_t>(count));
    if constexpr (std::is_same_v<T, bool>) {
      // std::vector<bool> has no data(): one byte per element, each 0 or 1.
      for (int64_t i = 0; i < count; ++i) values[i] = data[static_cast<size_t>(i)] != 0;
    } else if (count > 0) {
      std::memcpy(values.data(), data.data(), data.size());
    }
    return values;
  }

  // The elements of a BYTES tensor (one PNG file per image for visualization outputs).
  // InvalidArgument for another datatype or malformed contents; FailedPrecondition when the
  // tensor lies in shared memory.
  absl::StatusOr<std::vector<std::string>> Elements() const;
};

// The answer to one inference call.
struct InferResult {
  std::string model_name;
  std::string model_version;  // the version that ran
  std::string id;             // the request's id
  std::vector<InferOutput> outputs;

  // The output named `name`; nullptr when the result has none. Valid while this lives.
  const InferOutput* Find(absl::string_view name) const;
};

// The wire message for `request` (the stage as the request parameter "stage", each
// placement as the tensor parameters shared_memory_region/_byte_size/_offset).
inference::ModelInferRequest BuildModelInferRequest(const InferRequest& request);

// `response` as an InferResult, moving its bytes out. InvalidArgument when raw contents do
// not pair up with the outputs.
absl::StatusOr<InferResult> InferResultFromResponse(inference::ModelInferResponse response);

}  // namespace torchbricks::client

#endif  // TORCHBRICKS_CLIENTS_CPP_INFER_TENSORS_H_
