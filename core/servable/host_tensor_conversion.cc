#include "core/servable/host_tensor_conversion.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "core/execution/image_io.h"
#include "core/execution/scalar_types.h"
#include "core/graph/brick_graph.h"
#include "core/graph/bytes_elements.h"
#include "core/graph/data_types.h"
#include "core/libtorch/torch_errors.h"

namespace torchbricks {

int64_t NumElements(const HostTensorView& view) { return ShapeElements(view.shape).value_or(-1); }

namespace {

absl::Status CheckShape(const HostTensorView& view) {
  for (int64_t dim : view.shape) {
    if (dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", view.name, "' has a negative dimension"));
    }
  }
  if (NumElements(view) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", view.name, "' has shape [", absl::StrJoin(view.shape, ","),
                     "] of more than ", kMaxTensorElements, " elements"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<absl::string_view>> BytesElements(const HostTensorView& view) {
  RETURN_IF_ERROR(CheckShape(view));
  ASSIGN_OR_RETURN(std::vector<absl::string_view> elements,
                   SplitBytesElements(view.data, view.name));
  if (static_cast<int64_t>(elements.size()) != NumElements(view)) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", view.name, "' has ", elements.size(), " BYTES elements but shape [",
                     absl::StrJoin(view.shape, ","), "] needs ", NumElements(view)));
  }
  return elements;
}

absl::Status CheckByteSize(const HostTensorView& view) {
  if (view.data_type == package::TYPE_STRING) return BytesElements(view).status();
  RETURN_IF_ERROR(CheckShape(view));
  if (ElementSize(view.data_type) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("input '", view.name, "' has data type ",
                                                   DataTypeName(view.data_type),
                                                   ", which no brick can take"));
  }
  const int64_t expected = NumElements(view) * ElementSize(view.data_type);
  if (static_cast<int64_t>(view.data.size()) != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", view.name, "' has ", view.data.size(), " bytes but shape [",
                     absl::StrJoin(view.shape, ","), "] of ", DataTypeName(view.data_type),
                     " needs ", expected));
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> ToTensor(const HostTensorView& view, bool borrow) {
  at::Tensor tensor;
  if (view.data_type == package::TYPE_STRING) {
    ASSIGN_OR_RETURN(std::vector<absl::string_view> elements, BytesElements(view));
    RETURN_IF_ERROR(CheckBytesPadding(elements, view.name));
    RETURN_IF_ERROR(
        CallTorch(absl::StrCat("input '", view.name, "'"), [&] { tensor = PackBytes(elements); }));
    return tensor;
  }
  RETURN_IF_ERROR(CheckByteSize(view));
  const at::TensorOptions options = at::TensorOptions().dtype(*ToScalarType(view.data_type));
  const bool aligned =
      reinterpret_cast<uintptr_t>(view.data.data()) % ElementSize(view.data_type) == 0;
  RETURN_IF_ERROR(CallTorch(absl::StrCat("input '", view.name, "'"), [&] {
    if (borrow && aligned && !view.data.empty()) {
      tensor = at::from_blob(const_cast<char*>(view.data.data()), view.shape, options);
      return;
    }
    tensor = at::empty(view.shape, options);
    if (!view.data.empty()) std::memcpy(tensor.data_ptr(), view.data.data(), view.data.size());
  }));
  return tensor;
}

absl::StatusOr<HostTensor> ToHost(const std::string& name, const at::Tensor& tensor, bool bytes) {
  HostTensor host;
  host.name = name;
  if (bytes) {
    absl::StatusOr<std::vector<std::string>> elements(absl::UnknownError(""));
    RETURN_IF_ERROR(CallTorch(absl::StrCat("output '", name, "'"),
                              [&] { elements = UnpackBytes(tensor, name); }));
    if (!elements.ok()) return absl::InternalError(elements.status().message());
    host.data_type = package::TYPE_STRING;
    host.shape = {static_cast<int64_t>(elements->size())};
    for (const std::string& element : *elements) AppendBytesElement(element, &host.data);
    return host;
  }
  host.data_type = FromScalarType(tensor.scalar_type());
  if (host.data_type == package::TYPE_INVALID) {
    return absl::InternalError(absl::StrCat("output '", name, "' has data type ",
                                            c10::toString(tensor.scalar_type()),
                                            ", which the protocol cannot carry"));
  }
  RETURN_IF_ERROR(CallTorch(absl::StrCat("output '", name, "'"), [&] {
    const at::Tensor contiguous = tensor.to(at::kCPU).contiguous();
    host.shape.assign(contiguous.sizes().begin(), contiguous.sizes().end());
    host.data.assign(static_cast<const char*>(contiguous.data_ptr()),
                     contiguous.numel() * contiguous.element_size());
  }));
  return host;
}

}  // namespace torchbricks
