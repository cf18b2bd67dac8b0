// BrickGraph: a brick collection manifest flattened into its bricks, with nested names
// joined by '/' and relative tensor names resolved. It holds no modules and no tensors;
// it is what planning, validation and graph rendering read. Immutable after creation,
// so safe to share between threads.
//
//   ASSIGN_OR_RETURN(package::BrickCollection manifest, ReadManifestFile(dir / "bricks.pbtxt"));
//   ASSIGN_OR_RETURN(BrickGraph graph, BrickGraph::Create(manifest));
#ifndef TORCHBRICKS_CORE_GRAPH_BRICK_GRAPH_H_
#define TORCHBRICKS_CORE_GRAPH_BRICK_GRAPH_H_

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/graph/data_types.h"
#include "core/graph/stage.h"
#include "proto/bricks.pb.h"

namespace torchbricks {

// A named tensor's element type and dims: a collection input the caller provides, or an
// output a stage produces (ServableModel::OutputSpecs).
struct ValueSpec {
  std::string name;
  package::DataType data_type = package::TYPE_INVALID;  // TYPE_INVALID: any
  std::vector<int64_t> dims;                            // empty: unchecked; -1: variable
  // An input sent as encoded images (BYTES [B], JPEG or PNG per element), decoded to
  // uint8 [B, 3, H, W] RGB before any brick sees it; resized to image_height x
  // image_width when both are positive.
  bool encoded_image = false;
  int64_t image_height = 0;
  int64_t image_width = 0;
};

// The program of an AOT_INDUCTOR brick (package::CompiledProgram), checked at load: what the
// compiled code takes, which it never checks itself.
struct CompiledSpec {
  // One per input name, in order, named after it: element type and full dims, dims[0] == -1
  // (the batch), every other dimension fixed.
  std::vector<ValueSpec> inputs;
  // The batch sizes the program takes, both ends included: 1 <= min_batch <= max_batch.
  int64_t min_batch = 1;
  int64_t max_batch = 1;
  std::string device;  // "cpu" or "cuda": where it was compiled to run
  std::string
      cpu_isa;  // for "cpu": AOTInductor's AOTI_CPU_ISA ("AVX512 AVX512_VNNI"), may be empty
};

// One brick of the flattened collection.
struct BrickSpec {
  std::string name;             // full name, e.g. "head0/classify"
  std::string collection_path;  // enclosing collection, e.g. "head0" ("" at the root)
  package::BrickKind kind = package::TRAINABLE;
  std::vector<std::string> input_names;   // resolved; may hold "stage" and "__all__"
  std::vector<std::string> output_names;  // resolved
  std::array<bool, kNumStages> alive{};
  std::string module_file;  // relative to the version directory
  // Set exactly for a brick whose module_file is an AOTInductor package (.pt2); TorchScript
  // otherwise.
  std::optional<CompiledSpec> compiled;
  // forward()'s parameter for each input when torchbricks calls the module by keyword
  // (input_names given as a dict); empty for a positional call.
  std::vector<std::string> input_arguments;
  // For a brick traced once per stage with its "stage" input bound: each stage's module
  // file (empty where there is none); module_file is then empty.
  std::array<std::string, kNumStages> stage_module_files;
  std::string module_type;  // Python class of the module ("TinyModel"), may be empty
  std::string brick_type;   // Python class of the brick ("BrickTrainable"), never empty
  // For a VISUALIZATION brick that draws per image: a built-in renderer's name or
  // "torchscript" (module_file then renders one image). Empty for every other brick.
  std::string renderer;
  std::map<std::string, std::string> renderer_parameters;

  bool AliveIn(Stage stage) const { return alive[static_cast<int>(stage)]; }
  // True for a brick traced once per stage (see stage_module_files).
  bool stage_bound() const {
    for (const std::string& file : stage_module_files) {
      if (!file.empty()) return true;
    }
    return false;
  }
  // False for a brick traced per stage that has no module for `stage` (it cannot run there).
  bool HasModuleFor(Stage stage) const {
    return !stage_bound() || !stage_module_files[static_cast<int>(stage)].empty();
  }
  // True for a brick that renders images: its single output is BYTES [B] of PNG files.
  bool renders() const { return !renderer.empty(); }
};

// A stage's compiled bricks compiled together into one AOTInductor program (package::FusedStage),
// checked against the graph at Create(); core/graph/fused_plan.h checks it against the stage's
// plan and runs it in place of its bricks.
struct FusedSpec {
  Stage stage = Stage::kInference;
  // The program as a brick alive only in `stage`: named FusedProgramName(stage), its
  // input_names and output_names the program's, module_file its .pt2, compiled its spec.
  BrickSpec program;
  std::vector<int> bricks;  // the fused bricks: indices into BrickGraph::bricks(), run order
};

// "<fused INFERENCE>": the name a stage's fused program has in traces, statistics, metrics
// labels and errors. No brick can have it ('<' and spaces never occur in Python names).
std::string FusedProgramName(Stage stage);

// The batch sizes every compiled brick of a set takes (the intersection of their ranges).
struct BatchRange {
  int64_t min = 0;        // the largest min_batch; 0 when no compiled brick is in the set
  int64_t max = 0;        // the smallest max_batch; 0 (unbounded) when none is
  std::string min_brick;  // the brick that sets `min`, empty when none
  std::string max_brick;  // the brick that sets `max`, empty when none
  bool bounded() const { return !max_brick.empty(); }
};

// The renderer name of a visualization brick whose module_file renders one image.
inline constexpr char kTorchScriptRenderer[] = "torchscript";

class BrickGraph {
 public:
  // Flattens and checks `manifest`. On failure returns InvalidArgument naming the brick
  // (or collection) at fault: empty or duplicated node names, a '/' in a node name, a
  // relative name that climbs above the root, a brick without a module file, an output
  // named "stage" or "__all__", a declared input that a brick also produces; for an
  // AOT_INDUCTOR brick, a compiled program that is absent (or present on a TorchScript
  // brick), an input spec missing for an input name (or one too many), a batch range not
  // within 1 <= min_batch <= max_batch, an input whose dimension 0 is not -1 or whose
  // other dimensions are not fixed, a "stage" or "__all__" input, stage_modules, a
  // visualizer, or a module file not ending in ".pt2". For a fused stage (FusedSpec), the same
  // checks of its program, and: a stage named twice or not at all, no bricks, a brick named
  // twice, a name that is no brick, a brick not alive in the stage or not AOT_INDUCTOR, input
  // names other than what the bricks read from outside the set, output names other than
  // every value they produce.
  // Stage-dependent checks (cycles, missing inputs, two producers) belong to StagePlan.
  static absl::StatusOr<BrickGraph> Create(const package::BrickCollection& manifest);

  const std::string& name() const { return name_; }
  const std::vector<BrickSpec>& bricks() const { return bricks_; }
  const std::vector<ValueSpec>& inputs() const { return inputs_; }
  // Nested collection paths in manifest order ("head0", "head0/inner", ...).
  const std::vector<std::string>& collections() const { return collections_; }

  // Index into inputs() of the declared input `name`, or -1.
  int FindInput(absl::string_view name) const;
  // True when `name` is the output of a rendering brick: BYTES [B], one PNG per image.
  bool IsBytesOutput(absl::string_view name) const;
  // The batch sizes every compiled brick (and fused program) alive in `stage` takes
  // (unbounded when none is).
  BatchRange CompiledBatchRange(Stage stage) const;
  // The fused programs of the package, at most one per stage.
  const std::vector<FusedSpec>& fused() const { return fused_; }
  // The fused program of `stage`, or null when the stage has none. Valid as long as the graph.
  const FusedSpec* FusedIn(Stage stage) const;
  // The fused program of `stage` that brick `brick` (an index into bricks()) belongs to, or null.
  const FusedSpec* FusedProgramOf(int brick, Stage stage) const;

 private:
  std::string name_;
  std::vector<BrickSpec> bricks_;
  std::vector<ValueSpec> inputs_;
  std::vector<std::string> collections_;
  std::vector<std::string> bytes_outputs_;
  std::vector<FusedSpec> fused_;
};

// OK when a tensor of `data_type` and `shape` fits `spec`: the spec's dtype unless it is
// TYPE_INVALID, its dims unless empty (-1 matches any size). Otherwise InvalidArgument
// naming the input, what was expected and what came.
absl::Status CheckAgainstSpec(const ValueSpec& spec, package::DataType data_type,
                              absl::Span<const int64_t> shape);

// OK when `batch` rows fit the compiled program of `brick` (or the brick is not compiled);
// otherwise InvalidArgument naming the brick, its range and `input`, whose dimension 0 is
// `batch`.
absl::Status CheckCompiledBatch(const BrickSpec& brick, absl::string_view input, int64_t batch);

// Parses the text of a bricks.pbtxt file; `source` names it in errors. InvalidArgument
// (with the parser's line and column) when it is not a valid manifest.
absl::StatusOr<package::BrickCollection> ParseManifest(absl::string_view text,
                                                       absl::string_view source);

// Reads a bricks.pbtxt file. Returns NotFound when the file is missing and
// InvalidArgument (with the parser's line and column) when it is not a valid manifest.
absl::StatusOr<package::BrickCollection> ReadManifestFile(const std::filesystem::path& path);

// The alive stages a brick of `kind` has when its manifest lists none.
std::array<bool, kNumStages> DefaultAliveStages(package::BrickKind kind);

// "BrickTrainable", "BrickLoss", ... for a kind; used when the manifest names no brick type.
std::string DefaultBrickType(package::BrickKind kind);

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_GRAPH_BRICK_GRAPH_H_
