// Mermaid flowchart text for one stage of a brick collection, shaped like the torchbricks
// plotter: a node per alive brick labelled with its name, module and brick class, a
// classDef per brick class, a subgraph per nested collection, labelled edges, and input
// and output nodes. Bricks that the stage's fused program runs (BrickGraph::FusedIn) say
// "fused: <STAGE> program" in their label and are drawn dashed (class "fused"). The text is a pure
// function of the graph and plan (deterministic).
#ifndef TORCHBRICKS_CORE_GRAPH_MERMAID_H_
#define TORCHBRICKS_CORE_GRAPH_MERMAID_H_

#include <string>

#include "core/graph/brick_graph.h"
#include "core/graph/stage_plan.h"

namespace torchbricks {

// Renders `plan` (a plan of `graph`) as a mermaid "flowchart LR" document.
std::string RenderMermaid(const BrickGraph& graph, const StagePlan& plan);

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_GRAPH_MERMAID_H_
