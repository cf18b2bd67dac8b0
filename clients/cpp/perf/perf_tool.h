// RunPerfTool: the whole torchbricks-perf command — parse the flags, look the model up,
// build and (for shared memory) register the requests, sweep the load levels, print each
// level and write the reports. Blocking; one run per call.
#ifndef TORCHBRICKS_CLIENTS_CPP_PERF_PERF_TOOL_H_
#define TORCHBRICKS_CLIENTS_CPP_PERF_PERF_TOOL_H_

#include <ostream>
#include <string>

#include "absl/types/span.h"

namespace torchbricks::perf {

// The exit codes of torchbricks-perf.
enum ExitCode : int {
  kExitOk = 0,           // every level measured, no request failed
  kExitFailed = 1,       // a request or a statistics call failed, or shared memory setup did
  kExitUsage = 2,        // bad flags, unreadable files, input data that does not fit the model
  kExitUnreachable = 3,  // the server cannot be reached, or the model is unknown or not ready
};

// Runs torchbricks-perf with `args` (argv without the program name), printing results to
// `out` and diagnostics to `err`; returns one of the exit codes above.
int RunPerfTool(absl::Span<const std::string> args, std::ostream& out, std::ostream& err);

}  // namespace torchbricks::perf

#endif  // TORCHBRICKS_CLIENTS_CPP_PERF_PERF_TOOL_H_
