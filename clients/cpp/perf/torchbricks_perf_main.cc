// torchbricks-perf: a load tool for TorchBricks Serve in the spirit of Triton's
// perf_analyzer. Usage, flags, CSV columns and exit codes: clients/cpp/perf/README.md.
#include <iostream>
#include <string>
#include <vector>

#include "clients/cpp/perf/perf_tool.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  return torchbricks::perf::RunPerfTool(args, std::cout, std::cerr);
}
