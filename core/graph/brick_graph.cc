#include "core/graph/brick_graph.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "core/graph/fused_stages.h"
#include "core/graph/naming.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace torchbricks {
namespace {

// Collects the parser's complaints so the error can say where the file is wrong.
class CollectingErrorPrinter : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (!errors_.empty()) errors_ += "; ";
    absl::StrAppend(&errors_, "line ", line + 1, " column ", column + 1, ": ", message);
  }
  const std::string& errors() const { return errors_; }

 private:
  std::string errors_;
};

// OK for a file path inside the version folder: relative, no ".." component, no NUL.
absl::Status CheckPackageFile(const std::string& brick, const std::string& file) {
  const std::filesystem::path path(file);
  bool escapes = path.is_absolute() || file.find('\0') != std::string::npos;
  for (const auto& part : path) escapes = escapes || part == "..";
  if (!escapes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("brick '", brick, "': module file '", file.substr(0, 200),
                   "' is not inside the package (it must be a relative path without '..')"));
}

// True for TRAIN..EXPORT; false for STAGE_UNSPECIFIED and numbers the enum does not name
// (text format accepts any integer for an open enum).
bool IsNamedStage(int stage) {
  return package::Stage_IsValid(stage) && stage != package::STAGE_UNSPECIFIED;
}

Stage ToStage(package::Stage stage) {
  switch (stage) {
    case package::TRAIN:
      return Stage::kTrain;
    case package::VALIDATION:
      return Stage::kValidation;
    case package::TEST:
      return Stage::kTest;
    case package::INFERENCE:
      return Stage::kInference;
    default:
      return Stage::kExport;
  }
}

class Flattener {
 public:
  // Borrows both vectors for the flattener's lifetime.
  Flattener(std::vector<BrickSpec>* bricks, std::vector<std::string>* collections)
      : bricks_(bricks), collections_(collections) {}

  // Adds a brick named `name` at the root, as if a node held it (a fused program).
  absl::Status AddRootBrick(const std::string& name, const package::Brick& brick) {
    return AddBrick("", name, brick);
  }

  absl::Status AddCollection(const std::string& path,
                             const google::protobuf::RepeatedPtrField<package::Node>& nodes) {
    absl::flat_hash_set<std::string> seen;
    for (const package::Node& node : nodes) {
      const std::string where = path.empty() ? "the root collection" : "collection '" + path + "'";
      if (node.name().empty()) {
        return absl::InvalidArgumentError(absl::StrCat("a node of ", where, " has no name"));
      }
      if (node.name().find('/') != std::string::npos || node.name().front() == '.') {
        return absl::InvalidArgumentError(
            absl::StrCat("node name '", node.name(), "' in ", where,
                         " may not contain '/' or start with '.'; nest a collection instead"));
      }
      if (!seen.insert(node.name()).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("node name '", node.name(), "' appears twice in ", where));
      }
      const std::string full = JoinPath(path, node.name());
      switch (node.content_case()) {
        case package::Node::kBrick:
          RETURN_IF_ERROR(AddBrick(path, full, node.brick()));
          break;
        case package::Node::kCollection:
          collections_->push_back(full);
          RETURN_IF_ERROR(AddCollection(full, node.collection().nodes()));
          break;
        default:
          return absl::InvalidArgumentError(
              absl::StrCat("node '", full, "' is neither a brick nor a collection"));
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status AddBrick(const std::string& path, const std::string& full,
                        const package::Brick& brick) {
    BrickSpec spec;
    spec.name = full;
    spec.collection_path = path;
    spec.kind = brick.kind() == package::BRICK_KIND_UNSPECIFIED ? package::TRAINABLE : brick.kind();
    for (const std::string& name : brick.input_names()) {
      if (name == kStageInputName || name == kAllInputName) {
        spec.input_names.push_back(name);
        continue;
      }
      auto resolved = ResolveName(path, name);
      if (!resolved.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("brick '", full, "': input ", resolved.status().message()));
      }
      spec.input_names.push_back(*std::move(resolved));
    }
    absl::flat_hash_set<std::string> own_outputs;
    for (const std::string& name : brick.output_names()) {
      if (name == kStageInputName || name == kAllInputName) {
        return absl::InvalidArgumentError(absl::StrCat(
            "brick '", full, "': '", name, "' is reserved and cannot be an output name"));
      }
      auto resolved = ResolveName(path, name);
      if (!resolved.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("brick '", full, "': output ", resolved.status().message()));
      }
      if (!own_outputs.insert(*resolved).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("brick '", full, "' lists output '", *resolved, "' twice"));
      }
      spec.output_names.push_back(*std::move(resolved));
    }
    if (brick.alive_all()) {
      spec.alive.fill(true);
    } else if (brick.alive_stages().empty()) {
      spec.alive = DefaultAliveStages(spec.kind);
    } else {
      for (int stage : brick.alive_stages()) {
        if (!IsNamedStage(stage)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "brick '", full, "' lists ", stage, " as an alive stage; expected TRAIN..EXPORT"));
        }
        spec.alive[static_cast<int>(ToStage(static_cast<package::Stage>(stage)))] = true;
      }
    }
    RETURN_IF_ERROR(AddCompiledProgram(full, brick, &spec));
    RETURN_IF_ERROR(AddCallingConvention(full, brick, &spec));
    RETURN_IF_ERROR(CheckVisualizer(full, brick, spec));
    spec.renderer = brick.visualizer().renderer();
    spec.renderer_parameters.insert(brick.visualizer().parameters().begin(),
                                    brick.visualizer().parameters().end());
    RETURN_IF_ERROR(CheckPackageFile(full, brick.module_file()));
    spec.module_file = brick.module_file();
    spec.module_type = brick.module_type();
    spec.brick_type = brick.brick_type().empty() ? DefaultBrickType(spec.kind) : brick.brick_type();
    bricks_->push_back(std::move(spec));
    return absl::OkStatus();
  }

  // The compiled program of an AOT_INDUCTOR brick: present exactly for such a brick, with one
  // input spec per input name (none special), each [-1, fixed...], a batch range of at least
  // 1, and a .pt2 module file (no stage_modules, no visualizer).
  static absl::Status AddCompiledProgram(const std::string& full, const package::Brick& brick,
                                         BrickSpec* spec) {
    if (!package::ModuleFormat_IsValid(brick.module_format())) {
      return absl::InvalidArgumentError(absl::StrCat("brick '", full, "' has module_format ",
                                                     brick.module_format(),
                                                     "; expected TORCHSCRIPT or AOT_INDUCTOR"));
    }
    if (brick.module_format() != package::AOT_INDUCTOR) {
      if (brick.has_compiled()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "brick '", full, "' has a compiled program but its module_format is not AOT_INDUCTOR"));
      }
      return absl::OkStatus();
    }
    auto refuse = [&full](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("AOT_INDUCTOR brick '", full, "': ", why));
    };
    if (!brick.has_compiled()) return refuse("it has no compiled program");
    if (!brick.stage_modules().empty()) return refuse("it cannot have stage_modules");
    if (!brick.visualizer().renderer().empty()) return refuse("it cannot have a visualizer");
    const std::string& file = brick.module_file();
    if (file.size() < 5 || file.compare(file.size() - 4, 4, ".pt2") != 0) {
      return refuse(absl::StrCat("its module_file '", file.substr(0, 200),
                                 "' is not an AOTInductor package (.pt2)"));
    }
    const package::CompiledProgram& program = brick.compiled();
    if (program.inputs_size() != static_cast<int>(spec->input_names.size())) {
      return refuse(absl::StrCat("it has ", program.inputs_size(), " input specs for ",
                                 spec->input_names.size(), " input names"));
    }
    if (program.min_batch() < 1 || program.max_batch() < program.min_batch()) {
      return refuse(absl::StrCat("its batch range ", program.min_batch(), "..", program.max_batch(),
                                 " is not within 1 <= min_batch <= max_batch"));
    }
    if (program.device() != "cpu" && program.device() != "cuda") {
      return refuse(absl::StrCat("its device '", program.device().substr(0, 64),
                                 "' is neither \"cpu\" nor \"cuda\""));
    }
    CompiledSpec compiled;
    compiled.min_batch = program.min_batch();
    compiled.max_batch = program.max_batch();
    compiled.device = program.device();
    compiled.cpu_isa = program.cpu_isa();
    for (int i = 0; i < program.inputs_size(); ++i) {
      const std::string& name = spec->input_names[i];
      if (name == kStageInputName || name == kAllInputName) {
        return refuse(absl::StrCat("its input '", name, "' is not a tensor with a batch"));
      }
      const package::TensorSpec& input = program.inputs(i);
      if (!package::DataType_IsValid(input.data_type()) || ElementSize(input.data_type()) == 0) {
        return refuse(absl::StrCat("input '", name, "' has data type ",
                                   DataTypeName(input.data_type()), ", not a tensor element type"));
      }
      bool fixed = input.dims_size() >= 1 && input.dims(0) == -1;
      for (int d = 1; fixed && d < input.dims_size(); ++d) fixed = input.dims(d) >= 0;
      if (!fixed) {
        return refuse(absl::StrCat("input '", name, "' has dims [",
                                   absl::StrJoin(input.dims(), ","),
                                   "]; expected -1 (the batch) and then fixed sizes"));
      }
      ValueSpec value;
      value.name = name;
      value.data_type = input.data_type();
      value.dims.assign(input.dims().begin(), input.dims().end());
      compiled.inputs.push_back(std::move(value));
    }
    spec->compiled = std::move(compiled);
    return absl::OkStatus();
  }

  // Keyword parameters (one per input, distinct) and per-stage module files (only for a
  // brick that takes "stage", one per stage, never beside module_file or a visualizer).
  static absl::Status AddCallingConvention(const std::string& full, const package::Brick& brick,
                                           BrickSpec* spec) {
    if (!brick.input_arguments().empty()) {
      if (brick.input_arguments_size() != brick.input_names_size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("brick '", full, "' has ", brick.input_arguments_size(),
                         " input_arguments for ", brick.input_names_size(), " input_names"));
      }
      absl::flat_hash_set<std::string> seen;
      for (const std::string& argument : brick.input_arguments()) {
        if (argument.empty() || !seen.insert(argument).second) {
          return absl::InvalidArgumentError(absl::StrCat(
              "brick '", full, "': input_arguments must be distinct, non-empty parameter names"));
        }
        spec->input_arguments.push_back(argument);
      }
    }
    if (brick.stage_modules().empty()) return absl::OkStatus();
    if (!brick.module_file().empty() || !brick.visualizer().renderer().empty() ||
        !brick.input_arguments().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "brick '", full,
          "' has stage_modules and also a module_file, a visualizer or input_arguments"));
    }
    if (std::find(spec->input_names.begin(), spec->input_names.end(), kStageInputName) ==
        spec->input_names.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "brick '", full, "' has stage_modules but does not take the input \"stage\""));
    }
    for (const package::StageModule& module : brick.stage_modules()) {
      if (!IsNamedStage(module.stage()) || module.module_file().empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "brick '", full, "': each of its stage_modules needs a stage and a module_file"));
      }
      std::string& file = spec->stage_module_files[static_cast<int>(ToStage(module.stage()))];
      if (!file.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("brick '", full, "' lists stage ",
                                                       StageName(ToStage(module.stage())),
                                                       " twice in its stage_modules"));
      }
      RETURN_IF_ERROR(CheckPackageFile(full, module.module_file()));
      file = module.module_file();
    }
    return absl::OkStatus();
  }

  // A renderer only on VISUALIZATION bricks, with one output and an image input; a module
  // file exactly when the brick has no renderer or the TorchScript one.
  static absl::Status CheckVisualizer(const std::string& full, const package::Brick& brick,
                                      const BrickSpec& spec) {
    const std::string& renderer = brick.visualizer().renderer();
    if (renderer.empty()) {
      if (brick.module_file().empty() && brick.stage_modules().empty()) {
        return absl::InvalidArgumentError(absl::StrCat("brick '", full, "' has no module_file"));
      }
      return absl::OkStatus();
    }
    if (spec.kind != package::VISUALIZATION) {
      return absl::InvalidArgumentError(
          absl::StrCat("brick '", full, "' has a visualizer but is not a VISUALIZATION brick"));
    }
    if (spec.output_names.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "visualization brick '", full, "' must have exactly one output name (its PNGs), has ",
          spec.output_names.size()));
    }
    if (spec.input_names.empty() || spec.input_names[0] == kStageInputName ||
        spec.input_names[0] == kAllInputName) {
      return absl::InvalidArgumentError(absl::StrCat(
          "visualization brick '", full, "': its first input must be the image tensor"));
    }
    if (renderer == kTorchScriptRenderer && brick.module_file().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "visualization brick '", full, "' uses the torchscript renderer but has no module_file"));
    }
    if (renderer != kTorchScriptRenderer && !brick.module_file().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("visualization brick '", full, "' names both the built-in renderer '",
                       renderer, "' and a module_file; use renderer \"", kTorchScriptRenderer,
                       "\" to render with the module"));
    }
    return absl::OkStatus();
  }

  std::vector<BrickSpec>* bricks_;
  std::vector<std::string>* collections_;
};

}  // namespace

namespace internal {

absl::StatusOr<BrickSpec> ProgramBrick(const std::string& name, const package::Brick& brick) {
  std::vector<BrickSpec> bricks;
  std::vector<std::string> collections;
  Flattener flattener(&bricks, &collections);
  RETURN_IF_ERROR(flattener.AddRootBrick(name, brick));
  return std::move(bricks.front());
}

}  // namespace internal

std::array<bool, kNumStages> DefaultAliveStages(package::BrickKind kind) {
  std::array<bool, kNumStages> alive{};
  switch (kind) {
    case package::LOSS:
    case package::METRIC:
      alive[static_cast<int>(Stage::kTrain)] = true;
      alive[static_cast<int>(Stage::kValidation)] = true;
      alive[static_cast<int>(Stage::kTest)] = true;
      break;
    case package::VISUALIZATION:
      alive[static_cast<int>(Stage::kInference)] = true;
      break;
    default:
      alive.fill(true);
  }
  return alive;
}

std::string DefaultBrickType(package::BrickKind kind) {
  switch (kind) {
    case package::NOT_TRAINABLE:
      return "BrickNotTrainable";
    case package::LOSS:
      return "BrickLoss";
    case package::METRIC:
      return "BrickMetricSingle";
    case package::VISUALIZATION:
      return "BrickPerImageVisualization";
    default:
      return "BrickTrainable";
  }
}

absl::StatusOr<BrickGraph> BrickGraph::Create(const package::BrickCollection& manifest) {
  BrickGraph graph;
  graph.name_ = manifest.name();
  Flattener flattener(&graph.bricks_, &graph.collections_);
  RETURN_IF_ERROR(flattener.AddCollection("", manifest.nodes()));
  if (graph.bricks_.empty()) {
    return absl::InvalidArgumentError("the collection holds no bricks (bricks.pbtxt has no nodes)");
  }

  absl::flat_hash_map<std::string, const BrickSpec*> any_producer;
  for (const BrickSpec& brick : graph.bricks_) {
    for (const std::string& out : brick.output_names) any_producer.emplace(out, &brick);
  }
  absl::flat_hash_set<std::string> declared;
  for (const package::TensorSpec& input : manifest.inputs()) {
    if (input.name().empty()) {
      return absl::InvalidArgumentError("a declared input has no name");
    }
    if (!declared.insert(input.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name(), "' is declared twice"));
    }
    if (auto it = any_producer.find(input.name()); it != any_producer.end()) {
      return absl::InvalidArgumentError(absl::StrCat("declared input '", input.name(),
                                                     "' is also an output of brick '",
                                                     it->second->name, "'"));
    }
    ValueSpec spec;
    spec.name = input.name();
    spec.data_type = input.data_type();
    spec.dims.assign(input.dims().begin(), input.dims().end());
    if (input.has_encoded_image()) {
      if (spec.data_type != package::TYPE_STRING && spec.data_type != package::TYPE_INVALID) {
        return absl::InvalidArgumentError(absl::StrCat(
            "encoded image input '", spec.name, "' must have data_type TYPE_STRING (BYTES)"));
      }
      if (spec.dims.size() > 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "encoded image input '", spec.name, "' must have shape [B] (one file per image)"));
      }
      const auto& image = input.encoded_image();
      if ((image.height() > 0) != (image.width() > 0)) {
        return absl::InvalidArgumentError(absl::StrCat("encoded image input '", spec.name,
                                                       "' gives only one of height and width"));
      }
      spec.data_type = package::TYPE_STRING;
      spec.encoded_image = true;
      spec.image_height = std::max<int64_t>(image.height(), 0);
      spec.image_width = std::max<int64_t>(image.width(), 0);
    }
    graph.inputs_.push_back(std::move(spec));
  }
  for (const BrickSpec& brick : graph.bricks_) {
    if (brick.renders()) graph.bytes_outputs_.push_back(brick.output_names[0]);
  }
  ASSIGN_OR_RETURN(graph.fused_, internal::ReadFusedStages(manifest, graph.bricks_));
  return graph;
}

int BrickGraph::FindInput(absl::string_view name) const {
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (inputs_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

bool BrickGraph::IsBytesOutput(absl::string_view name) const {
  return std::find(bytes_outputs_.begin(), bytes_outputs_.end(), name) != bytes_outputs_.end();
}

BatchRange BrickGraph::CompiledBatchRange(Stage stage) const {
  BatchRange range;
  for (const BrickSpec& brick : bricks_) {
    if (!brick.compiled.has_value() || !brick.AliveIn(stage)) continue;
    if (brick.compiled->min_batch > range.min) {
      range.min = brick.compiled->min_batch;
      range.min_brick = brick.name;
    }
    if (range.max_brick.empty() || brick.compiled->max_batch < range.max) {
      range.max = brick.compiled->max_batch;
      range.max_brick = brick.name;
    }
  }
  if (const FusedSpec* fused = FusedIn(stage); fused != nullptr) {
    const CompiledSpec& compiled = *fused->program.compiled;
    if (compiled.min_batch > range.min) {
      range.min = compiled.min_batch;
      range.min_brick = fused->program.name;
    }
    if (range.max_brick.empty() || compiled.max_batch < range.max) {
      range.max = compiled.max_batch;
      range.max_brick = fused->program.name;
    }
  }
  return range;
}

const FusedSpec* BrickGraph::FusedIn(Stage stage) const {
  for (const FusedSpec& fused : fused_) {
    if (fused.stage == stage) return &fused;
  }
  return nullptr;
}

const FusedSpec* BrickGraph::FusedProgramOf(int brick, Stage stage) const {
  const FusedSpec* fused = FusedIn(stage);
  if (fused == nullptr) return nullptr;
  return std::find(fused->bricks.begin(), fused->bricks.end(), brick) != fused->bricks.end()
             ? fused
             : nullptr;
}

absl::Status CheckCompiledBatch(const BrickSpec& brick, absl::string_view input, int64_t batch) {
  if (!brick.compiled.has_value()) return absl::OkStatus();
  if (batch >= brick.compiled->min_batch && batch <= brick.compiled->max_batch) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "brick '", brick.name, "' is compiled for batches of ", brick.compiled->min_batch, " to ",
      brick.compiled->max_batch, " rows, but input '", input, "' has ", batch));
}

absl::Status CheckAgainstSpec(const ValueSpec& spec, package::DataType data_type,
                              absl::Span<const int64_t> shape) {
  if (spec.data_type != package::TYPE_INVALID && data_type != spec.data_type) {
    return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "' must have data type ",
                                                   DataTypeName(spec.data_type), ", got ",
                                                   DataTypeName(data_type)));
  }
  if (spec.dims.empty()) return absl::OkStatus();
  bool matches = spec.dims.size() == shape.size();
  for (size_t i = 0; matches && i < spec.dims.size(); ++i) {
    matches = spec.dims[i] < 0 || spec.dims[i] == shape[i];
  }
  if (!matches) {
    return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "' must have shape [",
                                                   absl::StrJoin(spec.dims, ","), "], got [",
                                                   absl::StrJoin(shape, ","), "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<package::BrickCollection> ParseManifest(absl::string_view text,
                                                       absl::string_view source) {
  package::BrickCollection manifest;
  google::protobuf::TextFormat::Parser parser;
  CollectingErrorPrinter errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &manifest)) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest '", source, "' is malformed: ", errors.errors()));
  }
  return manifest;
}

absl::StatusOr<package::BrickCollection> ReadManifestFile(const std::filesystem::path& path) {
  std::ifstream file(path);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("manifest '", path.string(), "' not found"));
  }
  std::stringstream text;
  text << file.rdbuf();
  return ParseManifest(text.str(), path.string());
}

}  // namespace torchbricks
