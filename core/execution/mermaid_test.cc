// The mermaid graph of the README's two-head example, checked line by line for structure,
// and checked to be identical across loads.
#include "core/graph/mermaid.h"

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/execution/loaded_collection.h"
#include "core/testing/package_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace torchbricks {
namespace {

using ::testing::Contains;
using ::testing::Not;
using ::torchbricks::testing::FixturePackage;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    lines.emplace_back(absl::StripAsciiWhitespace(line));
  }
  return lines;
}

// The lines between "subgraph <name>" and its "end".
std::vector<std::string> Subgraph(const std::vector<std::string>& lines, const std::string& name) {
  std::vector<std::string> inside;
  auto it = std::find(lines.begin(), lines.end(), "subgraph " + name);
  if (it == lines.end()) return inside;
  for (++it; it != lines.end() && *it != "end"; ++it) inside.push_back(*it);
  return inside;
}

class NestedHeadsMermaidTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = LoadedCollection::Load({.version_dir = FixturePackage("nested_heads")});
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    collection_ = *std::move(loaded);
  }
  std::unique_ptr<LoadedCollection> collection_;
};

TEST_F(NestedHeadsMermaidTest, TrainGraphHasBricksSubgraphsEdgesAndStyles) {
  const std::string text = collection_->Mermaid(Stage::kTrain);
  const std::vector<std::string> lines = Lines(text);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "flowchart LR");
  // A node per brick, labelled with name, module and brick class, styled by class.
  EXPECT_THAT(lines, Contains("head0/classify(<strong>'head0/classify': ImageClassifier"
                              "</strong><br><i>BrickTrainable</i>):::BrickTrainable"));
  EXPECT_THAT(lines, Contains("head1/loss(<strong>'head1/loss': CrossEntropyLoss</strong>"
                              "<br><i>BrickLoss</i>):::BrickLoss"));
  // Inputs: raw feeds the preprocessor; each head's targets feed its loss.
  EXPECT_THAT(lines, Contains("raw:::input --> preprocessor"));
  EXPECT_THAT(lines, Contains("targets0:::input --> head0/loss"));
  EXPECT_THAT(lines, Contains("targets1:::input --> head1/loss"));
  // Edges between root bricks and into the heads live outside the subgraphs.
  EXPECT_THAT(lines, Contains("preprocessor --> |normalized| backbone"));
  EXPECT_THAT(lines, Contains("backbone --> |features| head0/classify"));
  EXPECT_THAT(Subgraph(lines, "head0"), Not(Contains("backbone --> |features| head0/classify")));
  // Edges inside a head live in its subgraph; relative names appear resolved.
  const std::vector<std::string> head0 = Subgraph(lines, "head0");
  EXPECT_THAT(head0, Contains("head0/classify --> |head0/logits| head0/loss"));
  EXPECT_THAT(head0, Contains("head0/loss --> head0/loss_ce:::output"));
  EXPECT_THAT(head0, Not(Contains("head1/classify --> |head1/logits| head1/loss")));
  EXPECT_THAT(Subgraph(lines, "head1"), Contains("head1/classify --> |head1/logits| head1/loss"));
  // One classDef per brick class plus input and output.
  EXPECT_THAT(lines, Contains("classDef BrickLoss stroke-width:0px,fill:#5C677D"));
  EXPECT_THAT(lines, Contains("classDef BrickTrainable stroke-width:0px,fill:#6D597A"));
  EXPECT_THAT(lines, Contains("classDef input stroke-width:0px,fill-opacity:0.3,fill:#22A699"));
  EXPECT_THAT(lines, Contains("subgraph Legends"));
}

TEST_F(NestedHeadsMermaidTest, InferenceGraphDropsLossesAndTargets) {
  const std::vector<std::string> lines = Lines(collection_->Mermaid(Stage::kInference));
  for (const std::string& line : lines) {
    EXPECT_EQ(line.find("loss"), std::string::npos) << line;
    EXPECT_EQ(line.find("targets"), std::string::npos) << line;
  }
  EXPECT_THAT(Subgraph(lines, "head0"), Contains("head0/classify --> head0/logits:::output"));
  EXPECT_THAT(lines, Not(Contains("classDef BrickLoss stroke-width:0px,fill:#5C677D")));
}

TEST_F(NestedHeadsMermaidTest, TextIsIdenticalAcrossRunsAndLoads) {
  auto again = LoadedCollection::Load({.version_dir = FixturePackage("nested_heads")});
  ASSERT_TRUE(again.ok()) << again.status();
  for (Stage stage : kAllStages) {
    const std::string first = collection_->Mermaid(stage);
    EXPECT_EQ(first, collection_->Mermaid(stage));
    EXPECT_EQ(first, (*again)->Mermaid(stage));
  }
}

}  // namespace
}  // namespace torchbricks
