// Parity between a package's C++ execution and the reference outputs its Python exporter
// saved: reference/<STAGE>.pt holds the example inputs and every tensor the eager Python
// collection produced in that stage. Used by `torchbricks verify` and the parity tests.
#ifndef TORCHBRICKS_CORE_EXECUTION_REFERENCE_CHECK_H_
#define TORCHBRICKS_CORE_EXECUTION_REFERENCE_CHECK_H_

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/execution/loaded_collection.h"

namespace torchbricks {

// Element-wise |cpp - python| <= atol + rtol * |python| (torch.allclose's rule).
struct Tolerance {
  double rtol = 1e-4;
  double atol = 1e-5;
};

struct ReferenceData {
  NamedTensors inputs;
  NamedTensors outputs;
};

struct OutputComparison {
  std::string name;
  std::vector<int64_t> shape;  // of the reference
  double max_abs_diff = 0;     // meaningless unless the shapes and dtypes agree
  bool matches = false;
  std::string problem;  // why it does not match, empty when it does
};

struct StageComparison {
  Stage stage = Stage::kInference;
  absl::Status run_status;  // the C++ run; outputs is empty when it failed
  std::vector<OutputComparison> outputs;
  bool matches() const;
};

// Reads reference/<STAGE>.pt under `version_dir`. Returns nullopt when the exporter saved
// none for `stage`, InvalidArgument when the file is not a reference file.
absl::StatusOr<std::optional<ReferenceData>> ReadReference(const std::filesystem::path& version_dir,
                                                           Stage stage);

// Runs every stage that has reference data on its inputs, asking for every reference
// output, and compares. Returns one entry per stage with reference data, in stage order;
// an error only when a reference file cannot be read.
absl::StatusOr<std::vector<StageComparison>> CompareWithReference(
    const LoadedCollection& collection, const std::filesystem::path& version_dir,
    const Tolerance& tolerance);

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_EXECUTION_REFERENCE_CHECK_H_
