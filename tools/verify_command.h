// The `torchbricks verify` and `torchbricks graph` subcommands: load a package version,
// print what a person needs to see, return the process exit code. Not thread-safe
// (writes to stdout/stderr).
#ifndef TORCHBRICKS_TOOLS_VERIFY_COMMAND_H_
#define TORCHBRICKS_TOOLS_VERIFY_COMMAND_H_

#include <string>
#include <vector>

namespace torchbricks::cli {

// Exit codes shared by the subcommands.
inline constexpr int kExitOk = 0;
inline constexpr int kExitMismatch = 1;
inline constexpr int kExitError = 2;

// `verify VERSION_DIR [--rtol R] [--atol A]`: loads and validates the package, runs each
// stage that has reference data and prints a stage/output table. kExitOk only when every
// output matches; kExitMismatch when one does not; kExitError when loading fails.
int RunVerify(const std::vector<std::string>& args);

// `graph VERSION_DIR [--stage STAGE]`: prints the mermaid flowchart (default INFERENCE).
int RunGraph(const std::vector<std::string>& args);

}  // namespace torchbricks::cli

#endif  // TORCHBRICKS_TOOLS_VERIFY_COMMAND_H_
