// BYTES tensors in the Open Inference Protocol's raw layout: the elements one after
// another, each preceded by its length as a 4-byte little-endian unsigned integer. This
// is how HostTensorView / HostTensor carry TYPE_STRING data. Free of libtorch, so the
// server's codec can use it.
#ifndef TORCHBRICKS_CORE_GRAPH_BYTES_ELEMENTS_H_
#define TORCHBRICKS_CORE_GRAPH_BYTES_ELEMENTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace torchbricks {

// The elements of `data`, viewing into it. InvalidArgument, naming `tensor_name`, when a
// length prefix is cut off or an element runs past the end.
absl::StatusOr<std::vector<absl::string_view>> SplitBytesElements(absl::string_view data,
                                                                  absl::string_view tensor_name);

// Appends `element` with its length prefix to `data`.
void AppendBytesElement(absl::string_view element, std::string* data);

// The 4-byte little-endian length prefix, written to and read from `bytes[0..3]`.
void PutBytesLength(uint32_t length, unsigned char* bytes);
uint32_t GetBytesLength(const unsigned char* bytes);

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_GRAPH_BYTES_ELEMENTS_H_
