#include "core/graph/stage.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace torchbricks {

absl::string_view StageName(Stage stage) {
  switch (stage) {
    case Stage::kTrain:
      return "TRAIN";
    case Stage::kValidation:
      return "VALIDATION";
    case Stage::kTest:
      return "TEST";
    case Stage::kInference:
      return "INFERENCE";
    case Stage::kExport:
      return "EXPORT";
  }
  return "UNKNOWN";
}

absl::StatusOr<Stage> ParseStage(absl::string_view name) {
  const std::string upper = absl::AsciiStrToUpper(name);
  for (Stage stage : kAllStages) {
    if (StageName(stage) == upper) return stage;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown stage '", name, "'; expected one of TRAIN, VALIDATION, TEST, INFERENCE, EXPORT"));
}

}  // namespace torchbricks
