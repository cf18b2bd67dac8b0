#include "core/graph/mermaid.h"

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace torchbricks {
namespace {

constexpr absl::string_view kIndent = "    ";

std::string KindColor(package::BrickKind kind) {
  switch (kind) {
    case package::NOT_TRAINABLE:
      return "#B56576";
    case package::LOSS:
      return "#5C677D";
    case package::METRIC:
      return "#1450A3";
    case package::VISUALIZATION:
      return "#337357";
    default:
      return "#6D597A";
  }
}

// The deepest collection that holds both bricks' collection paths.
std::string CommonCollection(const std::string& a, const std::string& b) {
  size_t common = 0;
  for (size_t i = 0; i <= std::min(a.size(), b.size()); ++i) {
    const bool end_a = i == a.size() || a[i] == '/';
    const bool end_b = i == b.size() || b[i] == '/';
    if (end_a && end_b) common = i;
    if (i == a.size() || i == b.size() || a[i] != b[i]) break;
  }
  return a.substr(0, common);
}

class MermaidWriter {
 public:
  MermaidWriter(const BrickGraph& graph, const StagePlan& plan) : graph_(graph), plan_(plan) {}

  std::string Render() {
    absl::StrAppend(&out_, "flowchart LR\n", kIndent, "%% Brick definitions\n");
    for (const PlanStep& step : plan_.steps()) {
      const BrickSpec& brick = graph_.bricks()[step.brick];
      const std::string module = brick.module_type.empty() ? "?" : brick.module_type;
      // A brick fused into its stage's program is marked in its label and drawn dashed.
      const bool fused = graph_.FusedProgramOf(step.brick, plan_.stage()) != nullptr;
      absl::StrAppend(
          &out_, kIndent, brick.name, "(<strong>'", brick.name, "': ", module, "</strong><br><i>",
          brick.brick_type, "</i>",
          fused ? absl::StrCat("<br>fused: ", StageName(plan_.stage()), " program") : "",
          "):::", brick.brick_type, "\n");
      if (fused) fused_.push_back(brick.name);
      if (!class_colors_.count(brick.brick_type)) {
        class_colors_[brick.brick_type] = KindColor(brick.kind);
        class_order_.push_back(brick.brick_type);
      }
    }
    CollectEdges();
    absl::StrAppend(&out_, kIndent, "\n", kIndent, "%% Draw input and outputs\n");
    for (const std::string& line : input_edges_) absl::StrAppend(&out_, kIndent, line, "\n");
    absl::StrAppend(&out_, kIndent, "\n", kIndent, "%% Draw nodes and edges\n");
    WriteCollection("", 1);
    WriteStyling();
    return out_;
  }

 private:
  void CollectEdges() {
    // Consumers of each slot, in execution order.
    std::vector<std::vector<int>> consumers(plan_.num_slots());
    for (size_t s = 0; s < plan_.steps().size(); ++s) {
      for (int slot : plan_.steps()[s].input_slots) {
        if (slot >= 0) consumers[slot].push_back(static_cast<int>(s));
      }
    }
    for (int input : plan_.required_inputs()) {
      const int slot = plan_.FindSlot(graph_.inputs()[input].name);
      for (int c : consumers[slot]) {
        input_edges_.push_back(
            absl::StrCat(graph_.inputs()[input].name, ":::input --> ", BrickOf(c).name));
      }
    }
    for (size_t s = 0; s < plan_.steps().size(); ++s) {
      const BrickSpec& producer = BrickOf(static_cast<int>(s));
      for (int slot : plan_.steps()[s].output_slots) {
        const std::string& name = plan_.slot_name(slot);
        if (consumers[slot].empty()) {
          edges_[producer.collection_path].push_back(
              absl::StrCat(producer.name, " --> ", name, ":::output"));
          continue;
        }
        for (int c : consumers[slot]) {
          const BrickSpec& consumer = BrickOf(c);
          edges_[CommonCollection(producer.collection_path, consumer.collection_path)].push_back(
              absl::StrCat(producer.name, " --> |", name, "| ", consumer.name));
        }
      }
    }
  }

  void WriteCollection(const std::string& path, int depth) {
    std::string indent;
    for (int i = 0; i < depth; ++i) absl::StrAppend(&indent, kIndent);
    for (const std::string& line : edges_[path]) absl::StrAppend(&out_, indent, line, "\n");
    for (const std::string& child : graph_.collections()) {
      const bool direct = path.empty() ? child.find('/') == std::string::npos
                                       : child.rfind(path + "/", 0) == 0 &&
                                             child.find('/', path.size() + 1) == std::string::npos;
      if (!direct || !HasContent(child)) continue;
      absl::StrAppend(&out_, indent, "subgraph ", child, "\n");
      WriteCollection(child, depth + 1);
      absl::StrAppend(&out_, indent, "end\n");
    }
  }

  bool HasContent(const std::string& path) {
    for (const auto& [collection, lines] : edges_) {
      if (!lines.empty() && (collection == path || collection.rfind(path + "/", 0) == 0)) {
        return true;
      }
    }
    return false;
  }

  void WriteStyling() {
    absl::StrAppend(&out_, kIndent, "\n", kIndent, "%% Add styling\n");
    absl::StrAppend(&out_, kIndent, "classDef arrow stroke-width:0px,fill-opacity:0.0\n");
    absl::StrAppend(&out_, kIndent,
                    "classDef input stroke-width:0px,fill-opacity:0.3,fill:#22A699\n");
    absl::StrAppend(&out_, kIndent,
                    "classDef output stroke-width:0px,fill-opacity:0.3,fill:#F2BE22\n");
    for (const std::string& type : class_order_) {
      absl::StrAppend(&out_, kIndent, "classDef ", type,
                      " stroke-width:0px,fill:", class_colors_[type], "\n");
    }
    if (!fused_.empty()) {
      absl::StrAppend(&out_, kIndent, "classDef fused stroke-width:2px,stroke-dasharray:5 5\n",
                      kIndent, "class ", absl::StrJoin(fused_, ","), " fused\n");
    }
    absl::StrAppend(&out_, kIndent, "\n", kIndent, "%% Add legends\n", kIndent,
                    "subgraph Legends\n", kIndent, kIndent, "input(input):::input\n", kIndent,
                    kIndent, "output(output):::output\n", kIndent, "end\n");
  }

  const BrickSpec& BrickOf(int step) const { return graph_.bricks()[plan_.steps()[step].brick]; }

  const BrickGraph& graph_;
  const StagePlan& plan_;
  std::string out_;
  std::vector<std::string> input_edges_;
  std::map<std::string, std::vector<std::string>> edges_;  // collection path -> edges
  std::map<std::string, std::string> class_colors_;
  std::vector<std::string> class_order_;
  std::vector<std::string> fused_;  // bricks run by the stage's fused program
};

}  // namespace

std::string RenderMermaid(const BrickGraph& graph, const StagePlan& plan) {
  return MermaidWriter(graph, plan).Render();
}

}  // namespace torchbricks
