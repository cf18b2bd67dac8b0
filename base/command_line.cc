#include "base/command_line.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace torchbricks {

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> SplitFlagValues(
    absl::Span<const std::string> args) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      pairs.emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
    } else if (i + 1 < args.size()) {
      pairs.emplace_back(arg, args[++i]);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(arg, " needs a value"));
    }
  }
  return pairs;
}

absl::StatusOr<CommandLine> ParseCommandLine(absl::Span<const std::string> args) {
  CommandLine parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      parsed.positional.push_back(arg);
      continue;
    }
    const size_t end = arg.find('=') != std::string::npos ? i + 1 : std::min(i + 2, args.size());
    ASSIGN_OR_RETURN(auto pairs, SplitFlagValues(args.subspan(i, end - i)));
    parsed.flags.push_back(std::move(pairs.front()));
    i = end - 1;
  }
  return parsed;
}

}  // namespace torchbricks
