// Splitting a command line into (flag, value) pairs, for the programs whose flags all
// take a value. Both spellings work: "--flag value" and "--flag=value". Pure; thread-safe.
#ifndef TORCHBRICKS_SERVER_COMMAND_LINE_H_
#define TORCHBRICKS_SERVER_COMMAND_LINE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace torchbricks::server {

// The pairs in order. InvalidArgument ("--flag needs a value") when the last argument is
// a flag without "=value".
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> SplitFlagValues(
    absl::Span<const std::string> args);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_COMMAND_LINE_H_
