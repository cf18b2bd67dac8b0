// RunTrace: what one run of a collection executed, for statistics and tests.
#ifndef TORCHBRICKS_CORE_GRAPH_RUN_TRACE_H_
#define TORCHBRICKS_CORE_GRAPH_RUN_TRACE_H_

#include <cstdint>
#include <vector>

namespace torchbricks {

// Indices are into BrickGraph::bricks().
struct RunTrace {
  std::vector<int> bricks;                 // in execution order
  std::vector<int64_t> brick_nanoseconds;  // wall time of each, same order
};

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_GRAPH_RUN_TRACE_H_
