// The one command-line splitter of the project (torchbricks-server, the torchbricks CLI,
// bench/load_driver): every flag takes a value, spelled "--flag value" or "--flag=value";
// other arguments are positional. Each program turns the pairs into its typed options.
// Pure; thread-safe.
#ifndef TORCHBRICKS_BASE_COMMAND_LINE_H_
#define TORCHBRICKS_BASE_COMMAND_LINE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace torchbricks {

// The pairs in order. InvalidArgument ("--flag needs a value") when the last argument is
// a flag without "=value".
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> SplitFlagValues(
    absl::Span<const std::string> args);

struct CommandLine {
  std::vector<std::string> positional;                     // in order
  std::vector<std::pair<std::string, std::string>> flags;  // (flag, value), in order
};

// Splits `args`: an argument starting with "--" is a flag with a value, anything else is
// positional. InvalidArgument ("--flag needs a value") for a trailing flag without one.
absl::StatusOr<CommandLine> ParseCommandLine(absl::Span<const std::string> args);

}  // namespace torchbricks

#endif  // TORCHBRICKS_BASE_COMMAND_LINE_H_
