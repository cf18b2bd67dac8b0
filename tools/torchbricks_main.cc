// `torchbricks`: the project's command-line tool. Subcommands dispatch to their own units.
#include <iostream>
#include <string>
#include <vector>

#include "tools/verify_command.h"

namespace {

constexpr char kUsage[] =
    "usage: torchbricks COMMAND [ARGS]\n"
    "commands:\n"
    "  verify VERSION_DIR [--rtol R] [--atol A]  load, validate, compare with the\n"
    "                                            exporter's reference outputs\n"
    "  graph VERSION_DIR [--stage STAGE]         print the mermaid graph of a stage\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return torchbricks::cli::kExitError;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "verify") return torchbricks::cli::RunVerify(args);
  if (command == "graph") return torchbricks::cli::RunGraph(args);
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << kUsage;
    return torchbricks::cli::kExitOk;
  }
  std::cerr << "torchbricks: unknown command '" << command << "'\n" << kUsage;
  return torchbricks::cli::kExitError;
}
