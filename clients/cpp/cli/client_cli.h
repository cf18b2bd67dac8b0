// The `torchbricks-client` command line on the C++ client library: one invocation of one
// subcommand (health, models, metadata, config, graph, infer, load, unload, stats) against
// one server, its answer on `out` as text or, with --json, as one JSON document, and an
// exit code that says how it went. Stateless; safe to run from several threads at once
// (each call makes its own client).
//
//   torchbricks-client --url 127.0.0.1:8001 infer classifier --input raw_images=x.npy --out out/
//
// The reference, with every flag and the exit codes, is clients/cpp/README.md.
#ifndef TORCHBRICKS_CLIENTS_CPP_CLI_CLIENT_CLI_H_
#define TORCHBRICKS_CLIENTS_CPP_CLI_CLIENT_CLI_H_

#include <ostream>
#include <string>
#include <vector>

namespace torchbricks::client {

// Exit codes of torchbricks-client.
enum ExitCode : int {
  kExitOk = 0,
  // The server answered, and the answer is "no": `health` found the server or the model
  // not ready.
  kExitNotReady = 1,
  // Bad command line, or an input file that cannot be read or sent (before any call).
  kExitUsage = 2,
  // The server answered the call with an error status (printed with its code).
  kExitServerError = 3,
  // No connection within --timeout: nothing listening, TLS handshake refused, ...
  kExitUnreachable = 4,
  // The answer came, but writing an output file failed.
  kExitOutputError = 5,
};

// The usage text (printed for --help and, on stderr, after a usage error).
extern const char kClientCliUsage[];

// Runs the invocation `args` (without the program name); results go to `out`, diagnostics
// (one line each, prefixed "torchbricks-client: ") to `err`. Returns an ExitCode.
int RunClientCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace torchbricks::client

#endif  // TORCHBRICKS_CLIENTS_CPP_CLI_CLIENT_CLI_H_
