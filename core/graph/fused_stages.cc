#include "core/graph/fused_stages.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace torchbricks {

std::string FusedProgramName(Stage stage) { return absl::StrCat("<fused ", StageName(stage), ">"); }

namespace internal {
namespace {

// The names in `want` that `got` lacks, and those it has too many, as "missing a; unexpected b".
std::string SetDifference(const std::vector<std::string>& want,
                          const std::vector<std::string>& got) {
  std::vector<std::string> missing, extra;
  for (const std::string& name : want) {
    if (std::find(got.begin(), got.end(), name) == got.end()) missing.push_back(name);
  }
  for (const std::string& name : got) {
    if (std::find(want.begin(), want.end(), name) == want.end()) extra.push_back(name);
  }
  std::vector<std::string> parts;
  if (!missing.empty()) parts.push_back(absl::StrCat("missing ", absl::StrJoin(missing, ", ")));
  if (!extra.empty()) parts.push_back(absl::StrCat("unexpected ", absl::StrJoin(extra, ", ")));
  if (parts.empty() && want.size() != got.size()) parts.push_back("a name listed twice");
  return absl::StrJoin(parts, "; ");
}

absl::StatusOr<FusedSpec> ReadFusedStage(const package::FusedStage& message,
                                         const std::vector<BrickSpec>& bricks) {
  const int proto_stage = message.stage();
  if (!package::Stage_IsValid(proto_stage) || proto_stage == package::STAGE_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        absl::StrCat("a fused stage names the stage ", proto_stage, "; expected TRAIN..EXPORT"));
  }
  ASSIGN_OR_RETURN(Stage stage,
                   ParseStage(package::Stage_Name(static_cast<package::Stage>(proto_stage))));
  FusedSpec fused;
  fused.stage = stage;
  const std::string name = FusedProgramName(stage);
  auto refuse = [&name](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("fused program '", name, "': ", why));
  };
  if (message.bricks().empty()) return refuse("it fuses no bricks");
  absl::flat_hash_map<std::string, int> index_of;
  for (size_t i = 0; i < bricks.size(); ++i) index_of.emplace(bricks[i].name, static_cast<int>(i));
  std::vector<std::string> produced;
  for (const std::string& brick_name : message.bricks()) {
    auto it = index_of.find(brick_name);
    if (it == index_of.end()) {
      return refuse(absl::StrCat("it names '", brick_name.substr(0, 200), "', which is no brick"));
    }
    if (std::find(fused.bricks.begin(), fused.bricks.end(), it->second) != fused.bricks.end()) {
      return refuse(absl::StrCat("it names brick '", brick_name, "' twice"));
    }
    const BrickSpec& brick = bricks[it->second];
    if (!brick.AliveIn(stage)) {
      return refuse(absl::StrCat("brick '", brick_name, "' is not alive in ", StageName(stage)));
    }
    if (!brick.compiled.has_value()) {
      return refuse(absl::StrCat("brick '", brick_name, "' is not an AOT_INDUCTOR brick"));
    }
    fused.bricks.push_back(it->second);
    produced.insert(produced.end(), brick.output_names.begin(), brick.output_names.end());
  }
  std::vector<std::string> read_outside;
  for (int b : fused.bricks) {
    for (const std::string& input : bricks[b].input_names) {
      const bool inside = std::find(produced.begin(), produced.end(), input) != produced.end();
      if (!inside &&
          std::find(read_outside.begin(), read_outside.end(), input) == read_outside.end()) {
        read_outside.push_back(input);
      }
    }
  }
  const std::vector<std::string> inputs(message.input_names().begin(), message.input_names().end());
  if (std::string difference = SetDifference(read_outside, inputs); !difference.empty()) {
    return refuse(absl::StrCat("its input names are not what its bricks read from outside them (",
                               difference, ")"));
  }
  const std::vector<std::string> outputs(message.output_names().begin(),
                                         message.output_names().end());
  if (std::string difference = SetDifference(produced, outputs); !difference.empty()) {
    return refuse(
        absl::StrCat("its output names are not what its bricks produce (", difference, ")"));
  }
  // The program is checked like an AOT_INDUCTOR brick: its compiled spec, its file.
  package::Brick program;
  program.set_kind(package::NOT_TRAINABLE);
  *program.mutable_input_names() = message.input_names();
  *program.mutable_output_names() = message.output_names();
  program.add_alive_stages(static_cast<package::Stage>(proto_stage));
  program.set_module_file(message.module_file());
  program.set_module_type("FusedStage");
  program.set_brick_type("FusedStage");
  program.set_module_format(package::AOT_INDUCTOR);
  if (message.has_compiled()) *program.mutable_compiled() = message.compiled();
  ASSIGN_OR_RETURN(fused.program, ProgramBrick(name, program));
  return fused;
}

}  // namespace

absl::StatusOr<std::vector<FusedSpec>> ReadFusedStages(const package::BrickCollection& manifest,
                                                       const std::vector<BrickSpec>& bricks) {
  std::vector<FusedSpec> fused;
  for (const package::FusedStage& message : manifest.fused_stages()) {
    ASSIGN_OR_RETURN(FusedSpec spec, ReadFusedStage(message, bricks));
    for (const FusedSpec& earlier : fused) {
      if (earlier.stage == spec.stage) {
        return absl::InvalidArgumentError(
            absl::StrCat("the stage ", StageName(spec.stage), " has more than one fused program"));
      }
    }
    fused.push_back(std::move(spec));
  }
  return fused;
}

}  // namespace internal
}  // namespace torchbricks
