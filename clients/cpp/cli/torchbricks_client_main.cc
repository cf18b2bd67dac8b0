// `torchbricks-client`: the command line of the C++ client library (see client_cli.h and
// clients/cpp/README.md for the commands, flags and exit codes).
#include <iostream>
#include <string>
#include <vector>

#include "clients/cpp/cli/client_cli.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  return torchbricks::client::RunClientCli(args, std::cout, std::cerr);
}
