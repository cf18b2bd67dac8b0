// The five torchbricks stages and their names. A brick's `stage` input receives
// StageName(stage), e.g. "INFERENCE". Pure functions; thread-safe.
#ifndef TORCHBRICKS_CORE_GRAPH_STAGE_H_
#define TORCHBRICKS_CORE_GRAPH_STAGE_H_

#include <array>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace torchbricks {

enum class Stage { kTrain = 0, kValidation, kTest, kInference, kExport };

inline constexpr int kNumStages = 5;
inline constexpr std::array<Stage, kNumStages> kAllStages = {
    Stage::kTrain, Stage::kValidation, Stage::kTest, Stage::kInference, Stage::kExport};

// "TRAIN", "VALIDATION", "TEST", "INFERENCE" or "EXPORT".
absl::string_view StageName(Stage stage);

// Parses a stage name, case-insensitively ("export" and "EXPORT" both work).
// Returns InvalidArgument naming the accepted values for anything else.
absl::StatusOr<Stage> ParseStage(absl::string_view name);

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_GRAPH_STAGE_H_
