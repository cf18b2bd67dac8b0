// Conversions between the package's DataType and libtorch's ScalarType, and the check of
// a tensor against a declared ValueSpec. Pure functions; thread-safe.
#ifndef TORCHBRICKS_CORE_EXECUTION_SCALAR_TYPES_H_
#define TORCHBRICKS_CORE_EXECUTION_SCALAR_TYPES_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "core/graph/brick_graph.h"
#include "proto/bricks.pb.h"
#include "torch/types.h"

namespace torchbricks {

// The ScalarType holding `type`, or nullopt for TYPE_INVALID, TYPE_STRING and the unsigned
// types wider than 8 bits, which libtorch 1.13 cannot hold.
std::optional<at::ScalarType> ToScalarType(package::DataType type);

// The DataType of `type`, or TYPE_INVALID when the package format has none for it.
package::DataType FromScalarType(at::ScalarType type);

// OK when `tensor` has the spec's dtype (unless TYPE_INVALID) and shape (unless dims is
// empty; -1 matches any size). Otherwise InvalidArgument naming the input, what was
// expected and what came.
absl::Status CheckTensorAgainstSpec(const ValueSpec& spec, const at::Tensor& tensor);

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_EXECUTION_SCALAR_TYPES_H_
