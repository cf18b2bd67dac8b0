// Reading a manifest's fused stages (package::FusedStage) into FusedSpecs checked against the
// flattened bricks: what BrickGraph::Create does with them. Pure functions; thread-safe.
// Internal to core/graph: the rest of the code reads BrickGraph::fused().
#ifndef TORCHBRICKS_CORE_GRAPH_FUSED_STAGES_H_
#define TORCHBRICKS_CORE_GRAPH_FUSED_STAGES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/graph/brick_graph.h"
#include "proto/bricks.pb.h"

namespace torchbricks::internal {

// The fused stages of `manifest`, each checked against `bricks` (the flattened bricks, in
// manifest order). InvalidArgument naming the fused program for every refusal that
// BrickGraph::Create lists for fused stages.
absl::StatusOr<std::vector<FusedSpec>> ReadFusedStages(const package::BrickCollection& manifest,
                                                       const std::vector<BrickSpec>& bricks);

// `brick` checked and flattened as a root brick named `name`, with every check BrickGraph makes
// of a brick (brick_graph.cc). InvalidArgument naming it when a check fails.
absl::StatusOr<BrickSpec> ProgramBrick(const std::string& name, const package::Brick& brick);

}  // namespace torchbricks::internal

#endif  // TORCHBRICKS_CORE_GRAPH_FUSED_STAGES_H_
