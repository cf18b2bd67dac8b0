#include "core/execution/scalar_types.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace torchbricks {

std::optional<at::ScalarType> ToScalarType(package::DataType type) {
  switch (type) {
    case package::TYPE_BOOL:
      return at::kBool;
    case package::TYPE_UINT8:
      return at::kByte;
    case package::TYPE_INT8:
      return at::kChar;
    case package::TYPE_INT16:
      return at::kShort;
    case package::TYPE_INT32:
      return at::kInt;
    case package::TYPE_INT64:
      return at::kLong;
    case package::TYPE_FP16:
      return at::kHalf;
    case package::TYPE_FP32:
      return at::kFloat;
    case package::TYPE_FP64:
      return at::kDouble;
    case package::TYPE_BF16:
      return at::kBFloat16;
    default:
      return std::nullopt;
  }
}

package::DataType FromScalarType(at::ScalarType type) {
  switch (type) {
    case at::kBool:
      return package::TYPE_BOOL;
    case at::kByte:
      return package::TYPE_UINT8;
    case at::kChar:
      return package::TYPE_INT8;
    case at::kShort:
      return package::TYPE_INT16;
    case at::kInt:
      return package::TYPE_INT32;
    case at::kLong:
      return package::TYPE_INT64;
    case at::kHalf:
      return package::TYPE_FP16;
    case at::kFloat:
      return package::TYPE_FP32;
    case at::kDouble:
      return package::TYPE_FP64;
    case at::kBFloat16:
      return package::TYPE_BF16;
    default:
      return package::TYPE_INVALID;
  }
}

absl::Status CheckTensorAgainstSpec(const ValueSpec& spec, const at::Tensor& tensor) {
  const package::DataType type = FromScalarType(tensor.scalar_type());
  if (type == package::TYPE_INVALID && spec.data_type != package::TYPE_INVALID) {
    return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "' must have data type ",
                                                   DataTypeName(spec.data_type), ", got ",
                                                   c10::toString(tensor.scalar_type())));
  }
  return CheckAgainstSpec(spec, type,
                          absl::MakeConstSpan(tensor.sizes().data(), tensor.sizes().size()));
}

}  // namespace torchbricks
