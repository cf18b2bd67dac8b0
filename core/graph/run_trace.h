// RunTrace: what one run of a collection executed, for statistics and tests.
#ifndef TORCHBRICKS_CORE_GRAPH_RUN_TRACE_H_
#define TORCHBRICKS_CORE_GRAPH_RUN_TRACE_H_

#include <cstdint>
#include <vector>

#include "core/graph/stage.h"

namespace torchbricks {

// Indices are into BrickGraph::bricks(). A fused program (BrickGraph::fused()) that ran in place
// of its bricks is listed apart: its bricks have no time of their own.
struct RunTrace {
  std::vector<int> bricks;                 // in execution order
  std::vector<int64_t> brick_nanoseconds;  // wall time of each, same order
  std::vector<Stage> fused;                // the stages whose fused program ran
  std::vector<int64_t> fused_nanoseconds;  // wall time of each, same order
};

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_GRAPH_RUN_TRACE_H_
