#include "server/command_line.h"

#include "absl/strings/str_cat.h"

namespace torchbricks::server {

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

}  // namespace torchbricks::server
