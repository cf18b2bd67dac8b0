// numpy's .npy file format (format versions 1.0, 2.0 and 3.0) for the torchbricks-client
// command line: a C-ordered array with a little-endian (or byte-order-free) element type
// becomes a tensor in the protocol's raw layout, and back. Object, structured, string and
// Fortran-ordered arrays are refused. Pure functions; thread-safe.
//
//   absl::StatusOr<NpyArray> array = ParseNpy(file_contents);   // "<f4", shape (2, 3)
//   array->datatype == "FP32"; array->shape == {2, 3}; array->data.size() == 24
//   absl::StatusOr<std::string> file = SerializeNpy(*array);
#ifndef TORCHBRICKS_CLIENTS_CPP_CLI_NPY_FILE_H_
#define TORCHBRICKS_CLIENTS_CPP_CLI_NPY_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace torchbricks::client {

// A tensor as the protocol sends it: raw little-endian, row-major bytes.
struct NpyArray {
  std::string datatype;  // protocol datatype: "FP32", "INT64", "BOOL", ...
  std::vector<int64_t> shape;
  std::string data;
};

// The array held by the contents of a .npy file. Big-endian arrays are byte-swapped to
// little-endian. InvalidArgument (naming what is wrong) for anything that is not a .npy
// file of a supported, C-ordered array, or whose data is not exactly the shape's size.
absl::StatusOr<NpyArray> ParseNpy(absl::string_view contents);

// The contents of a version 1.0 .npy file holding `array`. BF16 is written as float32
// (numpy has no bfloat16). InvalidArgument for BYTES or an unknown datatype, or data whose
// size does not match the shape.
absl::StatusOr<std::string> SerializeNpy(const NpyArray& array);

}  // namespace torchbricks::client

#endif  // TORCHBRICKS_CLIENTS_CPP_CLI_NPY_FILE_H_
