#include "core/graph/data_types.h"

namespace torchbricks {

std::string DataTypeName(package::DataType type) {
  if (type == package::TYPE_STRING) return "BYTES";
  std::string name = package::DataType_Name(type);
  if (name.rfind("TYPE_", 0) == 0) name = name.substr(5);
  return name;
}

std::optional<package::DataType> DataTypeFromName(absl::string_view name) {
  for (int value = package::DataType_MIN; value <= package::DataType_MAX; ++value) {
    if (!package::DataType_IsValid(value) || value == package::TYPE_INVALID) continue;
    const auto type = static_cast<package::DataType>(value);
    if (DataTypeName(type) == name) return type;
  }
  return std::nullopt;
}

int64_t ElementSize(package::DataType type) {
  switch (type) {
    case package::TYPE_BOOL:
    case package::TYPE_UINT8:
    case package::TYPE_INT8:
      return 1;
    case package::TYPE_INT16:
    case package::TYPE_FP16:
    case package::TYPE_BF16:
      return 2;
    case package::TYPE_INT32:
    case package::TYPE_FP32:
      return 4;
    case package::TYPE_INT64:
    case package::TYPE_FP64:
      return 8;
    default:
      return 0;
  }
}

std::optional<int64_t> ShapeElements(absl::Span<const int64_t> shape) {
  bool empty = false;
  for (int64_t dim : shape) {
    if (dim < 0) return std::nullopt;
    empty = empty || dim == 0;
  }
  if (empty) return 0;
  int64_t elements = 1;
  for (int64_t dim : shape) {
    if (elements > kMaxTensorElements / dim) return std::nullopt;
    elements *= dim;
  }
  return elements;
}

}  // namespace torchbricks
