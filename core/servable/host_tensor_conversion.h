// Conversions between the host tensors that cross ServableModel (HostTensorView in,
// HostTensor out: plain bytes, BYTES in the protocol's length-prefixed layout) and
// at::Tensor, with the byte-size checks that come first. Stateless; safe from any thread.
// Internal to servable_model.cc: this header includes libtorch, unlike the rest of the seam.
#ifndef TORCHBRICKS_CORE_SERVABLE_HOST_TENSOR_CONVERSION_H_
#define TORCHBRICKS_CORE_SERVABLE_HOST_TENSOR_CONVERSION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/servable/host_tensor.h"
#include "torch/types.h"

namespace torchbricks {

// product(view.shape); 1 for a scalar; -1 for a negative dimension or a count above
// kMaxTensorElements (see ShapeElements).
int64_t NumElements(const HostTensorView& view);

// The elements of a BYTES view (viewing into it): CheckByteSize() for BYTES. InvalidArgument,
// naming the input, for a negative dimension, too many elements, a broken layout, or a count that
// differs from the shape's.
absl::StatusOr<std::vector<absl::string_view>> BytesElements(const HostTensorView& view);

// OK when the view's bytes fit its dtype and shape. InvalidArgument naming the input for a
// negative dimension, a dtype no brick can take, or a byte count that does not match.
absl::Status CheckByteSize(const HostTensorView& view);

// A tensor of the view (after CheckByteSize). BYTES become a rows tensor
// (core/execution/image_io.h). With `borrow`, and when the bytes are aligned for the element type,
// the tensor uses them in place and is valid only while the view is; otherwise it copies
// them once. A module that writes to a borrowed input writes to the caller's buffer.
absl::StatusOr<at::Tensor> ToTensor(const HostTensorView& view, bool borrow = false);

// `tensor` (any device) as a HostTensor named `name`. With `bytes`, `tensor` is a BYTES
// rows tensor and is returned in the protocol's layout with shape [B]. Internal for a
// dtype the protocol cannot carry.
absl::StatusOr<HostTensor> ToHost(const std::string& name, const at::Tensor& tensor, bool bytes);

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_SERVABLE_HOST_TENSOR_CONVERSION_H_
