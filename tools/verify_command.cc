#include "tools/verify_command.h"

#include <cstdio>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/command_line.h"
#include "core/execution/loaded_collection.h"
#include "core/execution/reference_check.h"

namespace torchbricks::cli {
namespace {

struct ParsedArgs {
  std::string version_dir;
  std::string stage = "INFERENCE";
  Tolerance tolerance;
  std::string error;
};

// VERSION_DIR [--stage S] [--rtol R] [--atol A], through the project's one splitter.
ParsedArgs Parse(const std::vector<std::string>& args) {
  ParsedArgs parsed;
  absl::StatusOr<CommandLine> line = ParseCommandLine(args);
  if (!line.ok()) {
    parsed.error = std::string(line.status().message());
    return parsed;
  }
  for (const auto& [flag, value] : line->flags) {
    if (flag == "--stage") {
      parsed.stage = value;
    } else if (flag == "--rtol") {
      if (!absl::SimpleAtod(value, &parsed.tolerance.rtol)) parsed.error = "bad --rtol";
    } else if (flag == "--atol") {
      if (!absl::SimpleAtod(value, &parsed.tolerance.atol)) parsed.error = "bad --atol";
    } else {
      parsed.error = "unknown flag " + flag;
    }
  }
  if (line->positional.size() > 1) parsed.error = "unexpected argument " + line->positional[1];
  if (!line->positional.empty()) parsed.version_dir = line->positional.front();
  if (parsed.error.empty() && parsed.version_dir.empty()) parsed.error = "missing VERSION_DIR";
  return parsed;
}

std::unique_ptr<LoadedCollection> LoadOrReport(const std::string& version_dir) {
  auto collection = LoadedCollection::Load({.version_dir = version_dir});
  if (!collection.ok()) {
    std::cerr << "torchbricks: cannot load '" << version_dir << "': " << collection.status()
              << "\n";
    return nullptr;
  }
  return *std::move(collection);
}

}  // namespace

int RunVerify(const std::vector<std::string>& args) {
  const ParsedArgs parsed = Parse(args);
  if (!parsed.error.empty()) {
    std::cerr << "torchbricks verify: " << parsed.error
              << "\nusage: torchbricks verify VERSION_DIR [--rtol R] [--atol A]\n";
    return kExitError;
  }
  std::unique_ptr<LoadedCollection> collection = LoadOrReport(parsed.version_dir);
  if (collection == nullptr) return kExitError;
  std::vector<std::string> unrunnable;  // stages a brick traced per stage has no module for
  for (Stage stage : kAllStages) {
    for (const BrickSpec& brick : collection->graph().bricks()) {
      if (brick.AliveIn(stage) && !brick.HasModuleFor(stage)) {
        unrunnable.push_back(absl::StrCat(StageName(stage), " (brick '", brick.name, "')"));
        break;
      }
    }
  }
  std::cout << "package " << parsed.version_dir << ": " << collection->graph().bricks().size()
            << " bricks, "
            << (unrunnable.empty()
                    ? "valid in every stage"
                    : absl::StrCat("valid; cannot run in ", absl::StrJoin(unrunnable, ", "),
                                   ": traced per stage without examples there"))
            << "\n";
  auto comparisons = CompareWithReference(*collection, parsed.version_dir, parsed.tolerance);
  if (!comparisons.ok()) {
    std::cerr << "torchbricks verify: " << comparisons.status() << "\n";
    return kExitError;
  }
  if (comparisons->empty()) {
    std::cout << "no reference data saved: nothing to compare\n";
    return kExitOk;
  }
  std::cout << absl::StrFormat("tolerance: |cpp - python| <= %g + %g * |python|\n\n",
                               parsed.tolerance.atol, parsed.tolerance.rtol);
  std::cout << absl::StrFormat("%-11s %-32s %-18s %-13s %s\n", "STAGE", "OUTPUT", "SHAPE",
                               "MAX_ABS_DIFF", "RESULT");
  bool all_match = true;
  for (const StageComparison& stage : *comparisons) {
    const std::string stage_name(StageName(stage.stage));
    if (!stage.run_status.ok()) {
      std::cout << absl::StrFormat("%-11s %-32s %-18s %-13s FAIL (%s)\n", stage_name, "-", "-", "-",
                                   stage.run_status.ToString());
      all_match = false;
      continue;
    }
    for (const OutputComparison& output : stage.outputs) {
      std::cout << absl::StrFormat(
          "%-11s %-32s %-18s %-13.3g %s\n", stage_name, output.name,
          absl::StrCat("[", absl::StrJoin(output.shape, ","), "]"), output.max_abs_diff,
          output.matches ? "ok" : absl::StrCat("MISMATCH (", output.problem, ")"));
      all_match = all_match && output.matches;
    }
  }
  std::cout << "\n" << (all_match ? "all outputs match" : "outputs differ") << "\n";
  return all_match ? kExitOk : kExitMismatch;
}

int RunGraph(const std::vector<std::string>& args) {
  const ParsedArgs parsed = Parse(args);
  if (!parsed.error.empty()) {
    std::cerr << "torchbricks graph: " << parsed.error
              << "\nusage: torchbricks graph VERSION_DIR [--stage STAGE]\n";
    return kExitError;
  }
  auto stage = ParseStage(parsed.stage);
  if (!stage.ok()) {
    std::cerr << "torchbricks graph: " << stage.status().message() << "\n";
    return kExitError;
  }
  std::unique_ptr<LoadedCollection> collection = LoadOrReport(parsed.version_dir);
  if (collection == nullptr) return kExitError;
  std::cout << collection->Mermaid(*stage);
  return kExitOk;
}

}  // namespace torchbricks::cli
