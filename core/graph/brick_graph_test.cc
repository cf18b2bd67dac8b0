// The manifest of AOT_INDUCTOR bricks: the compiled program is read, checked and refused with
// the brick's name; batch ranges per stage. Manifests written inline, no modules loaded.
#include "core/graph/brick_graph.h"

#include <functional>
#include <ostream>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace torchbricks {
namespace {

absl::StatusOr<BrickGraph> GraphOf(const std::string& text) {
  package::BrickCollection manifest;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &manifest)) << text;
  return BrickGraph::Create(manifest);
}

// A TorchScript preprocessor, then a compiled backbone (batch 1..8, alive everywhere) and a
// compiled head alive only in INFERENCE (batch 2..16).
constexpr char kMixed[] = R"pb(
  inputs {
    name: "raw"
    data_type: TYPE_FP32
    dims: [ -1, 3, 8, 8 ]
  }
  nodes {
    name: "preprocessor"
    brick { input_names: "raw" output_names: "processed" alive_all: true module_file: "p.pt" }
  }
  nodes {
    name: "backbone"
    brick {
      input_names: "processed"
      output_names: "embedding"
      alive_all: true
      module_file: "modules/backbone.pt2"
      module_format: AOT_INDUCTOR
      compiled {
        inputs {
          name: "processed"
          data_type: TYPE_FP32
          dims: [ -1, 3, 8, 8 ]
        }
        min_batch: 1
        max_batch: 8
        device: "cpu"
        cpu_isa: "AVX2"
      }
    }
  }
  nodes {
    name: "head"
    brick {
      input_names: "embedding"
      output_names: [ "logits", "probabilities" ]
      alive_stages: INFERENCE
      module_file: "modules/head.pt2"
      module_format: AOT_INDUCTOR
      compiled {
        inputs {
          data_type: TYPE_FP32
          dims: [ -1, 16 ]
        }
        min_batch: 2
        max_batch: 16
        device: "cpu"
      }
    }
  }
)pb";

TEST(CompiledBrickTest, TheProgramIsReadAndNamedAfterTheBricksInputs) {
  auto graph = GraphOf(kMixed);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const std::vector<BrickSpec>& bricks = graph->bricks();
  EXPECT_FALSE(bricks[0].compiled.has_value());
  ASSERT_TRUE(bricks[1].compiled.has_value());
  const CompiledSpec& backbone = *bricks[1].compiled;
  ASSERT_EQ(backbone.inputs.size(), 1u);
  EXPECT_EQ(backbone.inputs[0].name, "processed");
  EXPECT_EQ(backbone.inputs[0].data_type, package::TYPE_FP32);
  EXPECT_EQ(backbone.inputs[0].dims, (std::vector<int64_t>{-1, 3, 8, 8}));
  EXPECT_EQ(backbone.min_batch, 1);
  EXPECT_EQ(backbone.max_batch, 8);
  EXPECT_EQ(backbone.device, "cpu");
  EXPECT_EQ(backbone.cpu_isa, "AVX2");
  ASSERT_TRUE(bricks[2].compiled.has_value());
  EXPECT_EQ(bricks[2].compiled->inputs[0].name, "embedding");  // the spec gave no name
}

TEST(CompiledBrickTest, AStagesRangeIsTheIntersectionOfItsAliveCompiledBricks) {
  auto graph = GraphOf(kMixed);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const BatchRange inference = graph->CompiledBatchRange(Stage::kInference);
  EXPECT_TRUE(inference.bounded());
  EXPECT_EQ(inference.min, 2);
  EXPECT_EQ(inference.min_brick, "head");
  EXPECT_EQ(inference.max, 8);
  EXPECT_EQ(inference.max_brick, "backbone");
  const BatchRange train = graph->CompiledBatchRange(Stage::kTrain);  // no head
  EXPECT_EQ(train.min, 1);
  EXPECT_EQ(train.max, 8);
  auto plain = GraphOf(R"pb(nodes {
                              name: "only"
                              brick { input_names: "x" output_names: "y" module_file: "m.pt" }
                            })pb");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->CompiledBatchRange(Stage::kInference).bounded());
  EXPECT_EQ(plain->CompiledBatchRange(Stage::kInference).max, 0);
}

TEST(CompiledBrickTest, CheckCompiledBatchNamesTheBrickTheRangeAndTheInput) {
  auto graph = GraphOf(kMixed);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const BrickSpec& backbone = graph->bricks()[1];
  EXPECT_TRUE(CheckCompiledBatch(backbone, "raw", 1).ok());
  EXPECT_TRUE(CheckCompiledBatch(backbone, "raw", 8).ok());
  for (int64_t batch : {0, 9}) {
    const absl::Status status = CheckCompiledBatch(backbone, "raw", batch);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    for (const char* part : {"'backbone'", "1 to 8", "'raw'"}) {
      EXPECT_NE(status.message().find(part), std::string::npos) << status;
    }
  }
  EXPECT_TRUE(CheckCompiledBatch(graph->bricks()[0], "raw", 1000).ok());  // TorchScript
}

struct Defect {
  const char* name;
  std::function<void(package::Brick*)> make;  // applied to the backbone brick of kMixed
  const char* says;                           // the message must contain this, and 'backbone'
};

// GoogleTest prints a parameter with this (instead of its bytes) in test names and failures.
void PrintTo(const Defect& defect, std::ostream* os) { *os << defect.name; }

class CompiledBrickDefectTest : public ::testing::TestWithParam<Defect> {};

TEST_P(CompiledBrickDefectTest, IsRefusedNamingTheBrick) {
  const Defect& defect = GetParam();
  package::BrickCollection manifest;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(kMixed, &manifest));
  defect.make(manifest.mutable_nodes(1)->mutable_brick());
  auto graph = BrickGraph::Create(manifest);
  ASSERT_FALSE(graph.ok()) << defect.name << " was accepted";
  EXPECT_EQ(graph.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(graph.status().message().find("'backbone'"), std::string::npos) << graph.status();
  EXPECT_NE(graph.status().message().find(defect.says), std::string::npos) << graph.status();
}

package::TensorSpec* FirstInput(package::Brick* brick) {
  return brick->mutable_compiled()->mutable_inputs(0);
}

INSTANTIATE_TEST_SUITE_P(
    Manifests, CompiledBrickDefectTest,
    ::testing::Values(
        Defect{"NoCompiledProgram", [](package::Brick* b) { b->clear_compiled(); },
               "no compiled program"},
        Defect{"ProgramOnTorchScript",
               [](package::Brick* b) { b->set_module_format(package::TORCHSCRIPT); },
               "not AOT_INDUCTOR"},
        Defect{
            "UnknownFormat",
            [](package::Brick* b) { b->set_module_format(static_cast<package::ModuleFormat>(7)); },
            "module_format 7"},
        Defect{"MinBatchZero", [](package::Brick* b) { b->mutable_compiled()->set_min_batch(0); },
               "1 <= min_batch <= max_batch"},
        Defect{"MinAboveMax", [](package::Brick* b) { b->mutable_compiled()->set_min_batch(9); },
               "1 <= min_batch <= max_batch"},
        Defect{"BatchNotVariable", [](package::Brick* b) { FirstInput(b)->set_dims(0, 2); },
               "expected -1 (the batch)"},
        Defect{"OtherDimVariable", [](package::Brick* b) { FirstInput(b)->set_dims(2, -1); },
               "then fixed sizes"},
        Defect{"NoDims", [](package::Brick* b) { FirstInput(b)->clear_dims(); }, "dims []"},
        Defect{"TooFewInputSpecs", [](package::Brick* b) { b->add_input_names("raw"); },
               "1 input specs for 2 input names"},
        Defect{"TooManyInputSpecs",
               [](package::Brick* b) { *b->mutable_compiled()->add_inputs() = *FirstInput(b); },
               "2 input specs for 1 input names"},
        Defect{"StageInput", [](package::Brick* b) { b->set_input_names(0, "stage"); },
               "'stage' is not a tensor"},
        Defect{"AllInput", [](package::Brick* b) { b->set_input_names(0, "__all__"); },
               "'__all__' is not a tensor"},
        Defect{"StringInput",
               [](package::Brick* b) { FirstInput(b)->set_data_type(package::TYPE_STRING); },
               "BYTES"},
        Defect{"NotAPt2", [](package::Brick* b) { b->set_module_file("modules/backbone.pt"); },
               "(.pt2)"},
        Defect{"UnknownDevice", [](package::Brick* b) { b->mutable_compiled()->set_device("tpu"); },
               "'tpu'"},
        Defect{"StageModules",
               [](package::Brick* b) {
                 package::StageModule* module = b->add_stage_modules();
                 module->set_stage(package::INFERENCE);
                 module->set_module_file("b.pt");
               },
               "stage_modules"}),
    [](const ::testing::TestParamInfo<Defect>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace torchbricks
