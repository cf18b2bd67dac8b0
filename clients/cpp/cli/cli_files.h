// The files of `torchbricks-client infer`: input files (.npy arrays, JPEG/PNG images) into
// an InferRequest, and a result's outputs into files (.npy per tensor, .png per drawing).
// Pure apart from the file system; thread-compatible.
#ifndef TORCHBRICKS_CLIENTS_CPP_CLI_CLI_FILES_H_
#define TORCHBRICKS_CLIENTS_CPP_CLI_CLI_FILES_H_

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "clients/cpp/infer_tensors.h"

namespace torchbricks::client {

// The inputs named by `specs`, each "NAME=FILE": a .npy file is a tensor of its dtype and
// shape; a .jpg, .jpeg or .png file is one element of a BYTES input (an encoded image), and
// several image files for one name make a batch, in order. InvalidArgument for a malformed
// spec, an unknown file type, a name given twice with a .npy file or a .npy file that
// cannot be sent; NotFound for a file that cannot be read.
absl::StatusOr<std::vector<InferInput>> ReadInputFiles(const std::vector<std::string>& specs);

// What was written for one output.
struct WrittenOutput {
  const InferOutput* output;       // borrowed from the result
  std::vector<std::string> files;  // paths, in element order for BYTES outputs
};

// Writes each output of `result` into `directory` (created if missing), its name with '/'
// turned into '.': a tensor as NAME.npy; a BYTES output as one file per element, NAME-I.png
// for a PNG (a drawing) and NAME-I.bin otherwise. Internal when a file cannot be written;
// InvalidArgument for an output whose contents do not match its shape.
absl::StatusOr<std::vector<WrittenOutput>> WriteOutputFiles(const InferResult& result,
                                                            const std::filesystem::path& directory);

}  // namespace torchbricks::client

#endif  // TORCHBRICKS_CLIENTS_CPP_CLI_CLI_FILES_H_
