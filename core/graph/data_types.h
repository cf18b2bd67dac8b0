// The package's element types (package::DataType) as the rest of the project names and
// sizes them: the one table of protocol names ("FP32", "BYTES") and element sizes.
// libtorch-free; the ScalarType mapping lives in core/execution/scalar_types.h. Pure; thread-safe.
#ifndef TORCHBRICKS_CORE_GRAPH_DATA_TYPES_H_
#define TORCHBRICKS_CORE_GRAPH_DATA_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "proto/bricks.pb.h"

namespace torchbricks {

// "FP32", "INT64", ... (the Open Inference Protocol spelling); "BYTES" for TYPE_STRING;
// "INVALID" for TYPE_INVALID.
std::string DataTypeName(package::DataType type);

// The type whose DataTypeName is `name` (TYPE_INVALID excluded), or nullopt.
std::optional<package::DataType> DataTypeFromName(absl::string_view name);

// Bytes per element of a type a tensor can hold; 0 for TYPE_INVALID, TYPE_STRING (BYTES,
// variable length) and UINT16/32/64, which libtorch 1.13 cannot hold.
int64_t ElementSize(package::DataType type);

// The most elements a tensor may declare: 2^48, so that its bytes (16 per element at most)
// and sums of a few such counts stay far inside int64_t.
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 48;

// The element count of a tensor of `shape` (1 for a scalar, 0 when a dimension is 0), or
// nullopt when a dimension is negative or the count exceeds kMaxTensorElements. Never
// overflows, whatever the client sent.
std::optional<int64_t> ShapeElements(absl::Span<const int64_t> shape);

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_GRAPH_DATA_TYPES_H_
