// HostTensor and HostTensorView: tensors as plain bytes, the form in which they cross the
// ServableModel seam (servable_model.h), so a gRPC layer can lend request buffers in and move
// results out without libtorch. Plain values; no synchronisation of their own.
//
//   HostTensorView input{"image", package::TYPE_FP32, {1, 3, 32, 32}, request_bytes};
//   // ... model->Run(...) returns std::vector<HostTensor>, each owning its bytes.
#ifndef TORCHBRICKS_CORE_SERVABLE_HOST_TENSOR_H_
#define TORCHBRICKS_CORE_SERVABLE_HOST_TENSOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "proto/bricks.pb.h"

namespace torchbricks {

// A tensor the caller lends for the duration of one Run(): row-major, little-endian
// elements of `data_type`, exactly product(shape) * element size bytes. BYTES elements
// are in the protocol's layout (each a 4-byte little-endian length, then its bytes).
struct HostTensorView {
  std::string name;
  package::DataType data_type = package::TYPE_INVALID;
  std::vector<int64_t> shape;
  absl::string_view data;  // borrowed
};

// A tensor Run() returns; it owns its bytes (same layout as HostTensorView).
struct HostTensor {
  std::string name;
  package::DataType data_type = package::TYPE_INVALID;
  std::vector<int64_t> shape;
  std::string data;
};

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_SERVABLE_HOST_TENSOR_H_
