// Planning and validation on manifests written inline: no modules are loaded.
#include "core/graph/stage_plan.h"

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace torchbricks {
namespace {

BrickGraph GraphOf(const std::string& text) {
  package::BrickCollection manifest;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &manifest)) << text;
  auto graph = BrickGraph::Create(manifest);
  EXPECT_TRUE(graph.ok()) << graph.status();
  return *std::move(graph);
}

absl::Status PlanError(const std::string& text, Stage stage) {
  package::BrickCollection manifest;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &manifest)) << text;
  auto graph = BrickGraph::Create(manifest);
  if (!graph.ok()) return graph.status();
  return StagePlan::Create(*graph, stage).status();
}

std::vector<std::string> BrickNames(const BrickGraph& graph, const StagePlan& plan,
                                    const std::vector<int>& steps) {
  std::vector<std::string> names;
  for (int s : steps) names.push_back(graph.bricks()[plan.steps()[s].brick].name);
  return names;
}

// The README's classifier with a loss brick alive in TRAIN/VALIDATION/TEST.
constexpr char kWithLoss[] = R"pb(
  inputs {
    name: "raw_images"
    data_type: TYPE_FP32
    dims: [ -1, 3, -1, -1 ]
  }
  inputs { name: "targets" data_type: TYPE_INT64 }
  nodes {
    name: "preprocessor"
    brick {
      kind: NOT_TRAINABLE
      input_names: "raw_images"
      output_names: "processed"
      module_file: "p.pt"
    }
  }
  nodes {
    name: "backbone"
    brick { input_names: "processed" output_names: "embedding" module_file: "b.pt" }
  }
  nodes {
    name: "head"
    brick {
      input_names: "embedding"
      output_names: [ "logits", "softmaxed" ]
      module_file: "h.pt"
    }
  }
  nodes {
    name: "loss"
    brick {
      kind: LOSS
      input_names: [ "logits", "targets" ]
      output_names: "loss_ce"
      module_file: "l.pt"
    }
  }
)pb";

TEST(StagePlanTest, LossIsDeadInInferenceAndTargetsNotRequired) {
  BrickGraph graph = GraphOf(kWithLoss);
  auto plan = StagePlan::Create(graph, Stage::kInference);
  ASSERT_TRUE(plan.ok()) << plan.status();
  auto all = plan->StepsFor({});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(BrickNames(graph, *plan, *all),
            (std::vector<std::string>{"preprocessor", "backbone", "head"}));
  ASSERT_EQ(plan->required_inputs().size(), 1u);
  EXPECT_EQ(graph.inputs()[plan->required_inputs()[0]].name, "raw_images");
  EXPECT_EQ(plan->terminal_outputs(), (std::vector<std::string>{"logits", "softmaxed"}));
}

TEST(StagePlanTest, LossIsAliveInTrainAndTargetsAreRequired) {
  BrickGraph graph = GraphOf(kWithLoss);
  auto plan = StagePlan::Create(graph, Stage::kTrain);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->steps().size(), 4u);
  EXPECT_EQ(plan->required_inputs().size(), 2u);
  EXPECT_EQ(plan->terminal_outputs(), (std::vector<std::string>{"softmaxed", "loss_ce"}));
}

TEST(StagePlanTest, PruningToAnIntermediateSkipsTheHead) {
  BrickGraph graph = GraphOf(kWithLoss);
  auto plan = StagePlan::Create(graph, Stage::kInference);
  ASSERT_TRUE(plan.ok());
  auto steps = plan->StepsFor({"embedding"});
  ASSERT_TRUE(steps.ok());
  EXPECT_EQ(BrickNames(graph, *plan, *steps),
            (std::vector<std::string>{"preprocessor", "backbone"}));
}

TEST(StagePlanTest, AskingForAnOutputOfADeadBrickNamesIt) {
  BrickGraph graph = GraphOf(kWithLoss);
  auto plan = StagePlan::Create(graph, Stage::kExport);
  ASSERT_TRUE(plan.ok());
  auto steps = plan->StepsFor({"loss_ce"});
  ASSERT_FALSE(steps.ok());
  EXPECT_EQ(steps.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(steps.status().message().find("'loss'"), std::string::npos);
  EXPECT_NE(steps.status().message().find("EXPORT"), std::string::npos);
  EXPECT_FALSE(plan->StepsFor({"no_such_tensor"}).ok());
}

TEST(StagePlanTest, OutOfOrderCollectionIsSortedTopologically) {
  BrickGraph graph = GraphOf(R"pb(
    inputs { name: "x" }
    nodes {
      name: "second"
      brick { input_names: "y" output_names: "z" module_file: "a.pt" }
    }
    nodes {
      name: "first"
      brick { input_names: "x" output_names: "y" module_file: "b.pt" }
    }
  )pb");
  auto plan = StagePlan::Create(graph, Stage::kInference);
  ASSERT_TRUE(plan.ok()) << plan.status();
  auto steps = plan->StepsFor({});
  ASSERT_TRUE(steps.ok());
  EXPECT_EQ(BrickNames(graph, *plan, *steps), (std::vector<std::string>{"first", "second"}));
}

TEST(StagePlanTest, AllInputDependsOnEveryEarlierBrick) {
  BrickGraph graph = GraphOf(R"pb(
    inputs { name: "raw" }
    nodes {
      name: "backbone"
      brick { input_names: "raw" output_names: "embedding" module_file: "a.pt" }
    }
    nodes {
      name: "side"
      brick { input_names: "raw" output_names: "side_out" module_file: "s.pt" }
    }
    nodes {
      name: "post"
      brick { input_names: "__all__" output_names: "postprocessed" module_file: "b.pt" }
    }
  )pb");
  auto plan = StagePlan::Create(graph, Stage::kInference);
  ASSERT_TRUE(plan.ok()) << plan.status();
  auto steps = plan->StepsFor({"postprocessed"});
  ASSERT_TRUE(steps.ok());
  EXPECT_EQ(BrickNames(graph, *plan, *steps),
            (std::vector<std::string>{"backbone", "side", "post"}));
  EXPECT_EQ(plan->steps()[2].input_slots, (std::vector<int>{kAllSlot}));
}

TEST(StagePlanTest, RelativeNamesInNestedHeadsResolve) {
  BrickGraph graph = GraphOf(R"pb(
    inputs { name: "features" }
    nodes {
      name: "head0"
      collection {
        nodes {
          name: "classify"
          brick {
            input_names: "features"
            output_names: [ "./logits", "./probabilities" ]
            module_file: "c0.pt"
          }
        }
        nodes {
          name: "nested"
          collection {
            nodes {
              name: "post"
              brick { input_names: "../logits" output_names: "./scaled" module_file: "n.pt" }
            }
          }
        }
      }
    }
  )pb");
  ASSERT_EQ(graph.bricks().size(), 2u);
  EXPECT_EQ(graph.bricks()[0].name, "head0/classify");
  EXPECT_EQ(graph.bricks()[0].output_names[0], "head0/logits");
  EXPECT_EQ(graph.bricks()[1].name, "head0/nested/post");
  EXPECT_EQ(graph.bricks()[1].input_names[0], "head0/logits");
  EXPECT_EQ(graph.bricks()[1].output_names[0], "head0/nested/scaled");
  EXPECT_EQ(graph.collections(), (std::vector<std::string>{"head0", "head0/nested"}));
}

TEST(StagePlanTest, KindDefaultsDecideAliveStages) {
  BrickGraph graph = GraphOf(R"pb(
    inputs { name: "x" }
    nodes {
      name: "model"
      brick { input_names: "x" output_names: "y" module_file: "m.pt" }
    }
    nodes {
      name: "metric"
      brick { kind: METRIC input_names: "y" module_file: "k.pt" }
    }
    nodes {
      name: "vis"
      brick { kind: VISUALIZATION input_names: "y" output_names: "png" module_file: "v.pt" }
    }
    nodes {
      name: "only_export"
      brick {
        input_names: "x"
        output_names: "e"
        module_file: "e.pt"
        alive_stages: [ EXPORT ]
      }
    }
  )pb");
  const auto& b = graph.bricks();
  EXPECT_TRUE(b[0].AliveIn(Stage::kTrain) && b[0].AliveIn(Stage::kExport));
  EXPECT_TRUE(b[1].AliveIn(Stage::kValidation) && !b[1].AliveIn(Stage::kInference));
  EXPECT_TRUE(b[2].AliveIn(Stage::kInference) && !b[2].AliveIn(Stage::kExport));
  EXPECT_TRUE(b[3].AliveIn(Stage::kExport) && !b[3].AliveIn(Stage::kInference));
}

TEST(StagePlanValidationTest, CycleNamesTheBricks) {
  absl::Status status =
      PlanError(R"pb(
                  inputs { name: "x" }
                  nodes {
                    name: "ping"
                    brick {
                      input_names: [ "x", "b" ]
                      output_names: "a"
                      module_file: "1.pt"
                    }
                  }
                  nodes {
                    name: "pong"
                    brick { input_names: "a" output_names: "b" module_file: "2.pt" }
                  }
                )pb",
                Stage::kInference);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("cycle"), std::string::npos) << status;
  EXPECT_NE(status.message().find("'ping'"), std::string::npos) << status;
  EXPECT_NE(status.message().find("'pong'"), std::string::npos) << status;
}

TEST(StagePlanValidationTest, DuplicateProducerNamesBothBricks) {
  absl::Status status =
      PlanError(R"pb(
                  inputs { name: "x" }
                  nodes {
                    name: "first_writer"
                    brick { input_names: "x" output_names: "f" module_file: "1.pt" }
                  }
                  nodes {
                    name: "second_writer"
                    brick { input_names: "x" output_names: "f" module_file: "2.pt" }
                  }
                )pb",
                Stage::kInference);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("'first_writer'"), std::string::npos) << status;
  EXPECT_NE(status.message().find("'second_writer'"), std::string::npos) << status;
}

TEST(StagePlanValidationTest, ProducersInDisjointStagesAreAllowed) {
  EXPECT_TRUE(PlanError(R"pb(
                          inputs { name: "x" }
                          nodes {
                            name: "a"
                            brick {
                              input_names: "x"
                              output_names: "f"
                              module_file: "1.pt"
                              alive_stages: [ TRAIN ]
                            }
                          }
                          nodes {
                            name: "b"
                            brick {
                              input_names: "x"
                              output_names: "f"
                              module_file: "2.pt"
                              alive_stages: [ INFERENCE ]
                            }
                          }
                        )pb",
                        Stage::kInference)
                  .ok());
}

TEST(StagePlanValidationTest, MissingInputNamesTheConsumer) {
  absl::Status status =
      PlanError(R"pb(
                  inputs { name: "x" }
                  nodes {
                    name: "orphan_consumer"
                    brick { input_names: "never_produced" output_names: "y" module_file: "1.pt" }
                  }
                )pb",
                Stage::kInference);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("'orphan_consumer'"), std::string::npos) << status;
  EXPECT_NE(status.message().find("'never_produced'"), std::string::npos) << status;
}

TEST(StagePlanValidationTest, InputFromADeadBrickNamesTheProducer) {
  absl::Status status =
      PlanError(R"pb(
                  inputs { name: "x" }
                  nodes {
                    name: "train_only"
                    brick {
                      input_names: "x"
                      output_names: "t"
                      module_file: "1.pt"
                      alive_stages: [ TRAIN ]
                    }
                  }
                  nodes {
                    name: "user"
                    brick { input_names: "t" output_names: "u" module_file: "2.pt" }
                  }
                )pb",
                Stage::kInference);
  EXPECT_NE(status.message().find("'user'"), std::string::npos) << status;
  EXPECT_NE(status.message().find("'train_only' is not alive in stage INFERENCE"),
            std::string::npos)
      << status;
}

TEST(BrickGraphValidationTest, ClimbAboveRootNamesTheBrick) {
  absl::Status status =
      PlanError(R"pb(
                  nodes {
                    name: "outer"
                    collection {
                      nodes {
                        name: "climber"
                        brick { input_names: "../../escape" output_names: "y" module_file: "1.pt" }
                      }
                    }
                  }
                )pb",
                Stage::kInference);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("'outer/climber'"), std::string::npos) << status;
}

TEST(BrickGraphValidationTest, MalformedNodesAreRefused) {
  EXPECT_FALSE(PlanError(R"pb(nodes {
                                name: "a/b"
                                brick { module_file: "1.pt" }
                              })pb",
                         Stage::kInference)
                   .ok());
  EXPECT_FALSE(PlanError(R"pb(nodes {
                                name: "a"
                                brick { module_file: "1.pt" }
                              }
                              nodes {
                                name: "a"
                                brick { module_file: "2.pt" }
                              })pb",
                         Stage::kInference)
                   .ok());
  absl::Status no_module = PlanError(R"pb(nodes {
                                            name: "bare"
                                            brick {}
                                          })pb",
                                     Stage::kInference);
  EXPECT_NE(no_module.message().find("'bare' has no module_file"), std::string::npos);
  absl::Status reserved = PlanError(R"pb(nodes {
                                           name: "r"
                                           brick { output_names: "stage" module_file: "1.pt" }
                                         })pb",
                                    Stage::kInference);
  EXPECT_NE(reserved.message().find("reserved"), std::string::npos);
}

}  // namespace
}  // namespace torchbricks
