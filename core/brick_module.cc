#include "core/brick_module.h"

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/torch_errors.h"

namespace torchbricks {
namespace {

absl::Status CheckSignature(const BrickSpec& brick, const std::string& file,
                            const c10::FunctionSchema& schema) {
  // arguments()[0] is `self`.
  const auto& args = schema.arguments();
  size_t required = 0;
  for (size_t i = 1; i < args.size(); ++i) {
    if (!args[i].default_value().has_value()) ++required;
  }
  const size_t declared = args.size() - 1;
  const size_t given = brick.input_names.size();
  if (given < required || given > declared) {
    return absl::InvalidArgumentError(absl::StrCat(
        "brick '", brick.name, "' (", file, "): forward() takes ", required,
        required == declared ? "" : absl::StrCat(" to ", declared), " inputs but the brick has ",
        given, " input names"));
  }
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
      return absl::InvalidArgumentError(
          absl::StrCat("brick '", brick.name, "' (", file, "): forward() returns None but the brick has ",
                       brick.output_names.size(), " output names"));
    }
  } else if (brick.output_names.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "brick '", brick.name, "' (", file, "): forward() returns one ", type->str(),
        " but the brick has ", brick.output_names.size(), " output names"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<BrickModule>> BrickModule::Load(
    const BrickSpec& brick, const std::filesystem::path& version_dir,
    const c10::Device& device) {
  const std::filesystem::path path = version_dir / brick.module_file;
  const std::string file = brick.module_file;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("brick '", brick.name, "': module file '", file, "' not found"));
  }
  torch::jit::Module module;
  RETURN_IF_ERROR(CallTorch(
      absl::StrCat("brick '", brick.name, "': cannot load module file '", file, "'"),
      [&] {
        module = torch::jit::load(path.string(), device);
        module.eval();
      },
      absl::StatusCode::kInvalidArgument));
  const c10::FunctionSchema* schema = nullptr;
  RETURN_IF_ERROR(CallTorch(
      absl::StrCat("brick '", brick.name, "' (", file, ")"),
      [&] { schema = &module.get_method("forward").function().getSchema(); },
      absl::StatusCode::kInvalidArgument));
  RETURN_IF_ERROR(CheckSignature(brick, file, *schema));
  return std::unique_ptr<BrickModule>(new BrickModule(brick, std::move(module)));
}

absl::StatusOr<std::vector<c10::IValue>> BrickModule::Run(
    std::vector<c10::IValue> inputs) const {
  c10::IValue result;
  RETURN_IF_ERROR(CallTorch(absl::StrCat("brick '", brick_name_, "'"),
                            [&] { result = module_.forward(std::move(inputs)); }));
  std::vector<c10::IValue> outputs;
  if (num_outputs_ == 0) return outputs;
  if (num_outputs_ == 1 && !result.isTuple()) {
    outputs.push_back(std::move(result));
    return outputs;
  }
  if (!result.isTuple() || result.toTupleRef().elements().size() != num_outputs_) {
    return absl::InternalError(absl::StrCat("brick '", brick_name_, "' returned ",
                                            result.tagKind(), " but has ", num_outputs_,
                                            " output names"));
  }
  for (const c10::IValue& element : result.toTupleRef().elements()) {
    outputs.push_back(element);
  }
  return outputs;
}

}  // namespace torchbricks
