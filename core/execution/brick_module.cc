#include "core/execution/brick_module.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "core/graph/naming.h"
#include "core/libtorch/torch_errors.h"

namespace torchbricks {
namespace {

// Checks that `given` inputs fit forward()'s parameters (by position) and fills the
// callee's keyword layout when the brick names its arguments.
absl::Status LayOutArguments(const BrickSpec& brick, const std::string& file,
                             const c10::FunctionSchema& schema, size_t given,
                             const std::vector<std::string>& keywords,
                             BrickModule::Callee* callee) {
  // arguments()[0] is `self`.
  const auto& args = schema.arguments();
  const size_t declared = args.size() - 1;
  if (keywords.empty()) {
    size_t required = 0;
    for (size_t i = 1; i < args.size(); ++i) {
      if (!args[i].default_value().has_value()) ++required;
    }
    if (given < required || given > declared) {
      return absl::InvalidArgumentError(
          absl::StrCat("brick '", brick.name, "' (", file, "): forward() takes ", required,
                       required == declared ? "" : absl::StrCat(" to ", declared),
                       " inputs but the brick has ", given, " input names"));
    }
  } else {
    callee->arguments.resize(declared);
    std::vector<bool> covered(declared, false);
    for (const std::string& keyword : keywords) {
      auto found = std::find_if(args.begin() + 1, args.end(),
                                [&](const c10::Argument& arg) { return arg.name() == keyword; });
      if (found == args.end()) {
        std::vector<std::string> names;
        for (size_t i = 1; i < args.size(); ++i) names.push_back(args[i].name());
        return absl::InvalidArgumentError(
            absl::StrCat("brick '", brick.name, "' (", file, "): forward() has no parameter '",
                         keyword, "'; it takes (", absl::StrJoin(names, ", "), ")"));
      }
      const size_t position = found - args.begin() - 1;
      covered[position] = true;
      callee->positions.push_back(position);
    }
    for (size_t i = 0; i < declared; ++i) {
      if (covered[i]) continue;
      if (!args[i + 1].default_value().has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("brick '", brick.name, "' (", file, "): forward() parameter '",
                         args[i + 1].name(), "' has no default and no input is passed to it"));
      }
      callee->arguments[i] = *args[i + 1].default_value();
    }
  }
  for (size_t i = 0; i < given; ++i) {
    const size_t position = callee->positions.empty() ? i : callee->positions[i];
    c10::TypePtr type = args[position + 1].type();
    if (type->kind() == c10::TypeKind::OptionalType) {
      type = type->expectRef<c10::OptionalType>().getElementType();
    }
    callee->dict_types.push_back(type->kind() == c10::TypeKind::DictType ? type : nullptr);
  }
  return absl::OkStatus();
}

absl::Status CheckReturn(const BrickSpec& brick, const std::string& file,
                         const c10::FunctionSchema& schema) {
  if (schema.returns().size() != 1) return absl::OkStatus();
  const c10::TypePtr& type = schema.returns()[0].type();
  if (type->kind() == c10::TypeKind::TupleType) {
    const size_t arity = type->expectRef<c10::TupleType>().elements().size();
    if (arity != brick.output_names.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "brick '", brick.name, "' (", file, "): forward() returns a tuple of ", arity,
          " values but the brick has ", brick.output_names.size(), " output names"));
    }
  } else if (brick.output_names.empty() && brick.kind == package::METRIC) {
    // A metric brick without output names keeps its result to itself, as in torchbricks.
  } else if (type->kind() == c10::TypeKind::NoneType) {
    if (!brick.output_names.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("brick '", brick.name, "' (", file,
                                                     "): forward() returns None but the brick has ",
                                                     brick.output_names.size(), " output names"));
    }
  } else if (brick.output_names.size() != 1 && type->kind() != c10::TypeKind::AnyType) {
    return absl::InvalidArgumentError(
        absl::StrCat("brick '", brick.name, "' (", file, "): forward() returns one ", type->str(),
                     " but the brick has ", brick.output_names.size(), " output names"));
  }
  return absl::OkStatus();
}

// Loads `file` and lays out how `given` inputs reach its forward().
absl::StatusOr<BrickModule::Callee> LoadCallee(const BrickSpec& brick,
                                               const std::filesystem::path& version_dir,
                                               const std::string& file, size_t given,
                                               const std::vector<std::string>& keywords,
                                               const c10::Device& device) {
  const std::filesystem::path path = version_dir / file;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("brick '", brick.name, "': module file '", file, "' not found"));
  }
  BrickModule::Callee callee;
  RETURN_IF_ERROR(CallTorch(
      absl::StrCat("brick '", brick.name, "': cannot load module file '", file, "'"),
      [&] {
        callee.module = torch::jit::load(path.string(), device);
        callee.module.eval();
      },
      absl::StatusCode::kInvalidArgument));
  const c10::FunctionSchema* schema = nullptr;
  RETURN_IF_ERROR(CallTorch(
      absl::StrCat("brick '", brick.name, "' (", file, ")"),
      [&] { schema = &callee.module.get_method("forward").function().getSchema(); },
      absl::StatusCode::kInvalidArgument));
  RETURN_IF_ERROR(LayOutArguments(brick, file, *schema, given, keywords, &callee));
  RETURN_IF_ERROR(CheckReturn(brick, file, *schema));
  return callee;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BrickModule>> BrickModule::Load(
    const BrickSpec& brick, const std::filesystem::path& version_dir, const c10::Device& device) {
  std::unique_ptr<BrickModule> loaded(new BrickModule(brick));
  if (!brick.stage_bound()) {
    ASSIGN_OR_RETURN(loaded->callee_,
                     LoadCallee(brick, version_dir, brick.module_file, brick.input_names.size(),
                                brick.input_arguments, device));
    return loaded;
  }
  loaded->stage_position_ = static_cast<int>(
      std::find(brick.input_names.begin(), brick.input_names.end(), kStageInputName) -
      brick.input_names.begin());
  for (Stage stage : kAllStages) {
    const std::string& file = brick.stage_module_files[static_cast<int>(stage)];
    if (file.empty()) continue;
    ASSIGN_OR_RETURN(
        loaded->stage_callees_[static_cast<int>(stage)],
        LoadCallee(brick, version_dir, file, brick.input_names.size() - 1, {}, device));
  }
  return loaded;
}

absl::StatusOr<const BrickModule::Callee*> BrickModule::CalleeFor(
    std::vector<c10::IValue>& inputs) const {
  if (stage_position_ < 0) return &*callee_;
  const c10::IValue stage_name = std::move(inputs[stage_position_]);
  inputs.erase(inputs.begin() + stage_position_);
  absl::StatusOr<Stage> stage = ParseStage(stage_name.isString() ? stage_name.toStringRef() : "");
  // LoadedCollection::Check refuses a stage without a module before any brick runs.
  if (!stage.ok() || !stage_callees_[static_cast<int>(*stage)].has_value()) {
    return absl::InternalError(
        absl::StrCat("brick '", brick_name_, "' has no module for the stage it was run in"));
  }
  return &*stage_callees_[static_cast<int>(*stage)];
}

absl::StatusOr<std::vector<c10::IValue>> BrickModule::Run(std::vector<c10::IValue> inputs) const {
  ASSIGN_OR_RETURN(const Callee* callee, CalleeFor(inputs));
  c10::IValue result;
  RETURN_IF_ERROR(CallTorch(absl::StrCat("brick '", brick_name_, "'"), [&] {
    // A dict (`__all__`) whose type is not the declared parameter's, e.g. Dict(str, Tensor)
    // for Dict(str, Any): the same entries, in a dict of the declared type.
    for (size_t i = 0; i < inputs.size() && i < callee->dict_types.size(); ++i) {
      const c10::TypePtr& declared = callee->dict_types[i];
      if (declared == nullptr || !inputs[i].isGenericDict() ||
          inputs[i].type()->isSubtypeOf(*declared)) {
        continue;
      }
      const auto& dict_type = declared->expectRef<c10::DictType>();
      c10::impl::GenericDict retyped(dict_type.getKeyType(), dict_type.getValueType());
      for (const auto& entry : inputs[i].toGenericDict()) {
        retyped.insert(entry.key(), entry.value());
      }
      inputs[i] = std::move(retyped);
    }
    if (callee->positions.empty()) {
      result = callee->module.forward(std::move(inputs));
      return;
    }
    std::vector<c10::IValue> arguments = callee->arguments;
    for (size_t i = 0; i < inputs.size(); ++i) {
      arguments[callee->positions[i]] = std::move(inputs[i]);
    }
    result = callee->module.forward(std::move(arguments));
  }));
  std::vector<c10::IValue> outputs;
  if (num_outputs_ == 0) return outputs;
  if (num_outputs_ == 1 && !result.isTuple()) {
    outputs.push_back(std::move(result));
    return outputs;
  }
  if (!result.isTuple() || result.toTupleRef().elements().size() != num_outputs_) {
    return absl::InternalError(absl::StrCat("brick '", brick_name_, "' returned ", result.tagKind(),
                                            " but has ", num_outputs_, " output names"));
  }
  for (const c10::IValue& element : result.toTupleRef().elements()) {
    outputs.push_back(element);
  }
  return outputs;
}

}  // namespace torchbricks
