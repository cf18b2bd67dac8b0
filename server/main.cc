// torchbricks-server: serves a model repository of brick collections over gRPC.
// SIGTERM or SIGINT drains it: not ready, new requests refused, in-flight ones finished,
// exit 0.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/torch_log_sink.h"
#include "grpc/support/log.h"
#include "server/observability/logging.h"
#include "server/server_options.h"
#include "server/torchbricks_server.h"

namespace {

// gRPC's own log lines, written through LogEvent so that --log-format json stays one JSON
// object per line.
void ForwardGrpcLog(gpr_log_func_args* args) {
  using torchbricks::server::LogLevel;
  const LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR  ? LogLevel::kError
                         : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                                   : LogLevel::kVerbose;
  torchbricks::server::LogEvent(
      level, args->message,
      {{"source", "grpc"}, {"file", absl::StrCat(args->file ? args->file : "", ":", args->line)}});
}

// libtorch's warnings and log lines, likewise.
void ForwardTorchLog(const torchbricks::TorchLogLine& line) {
  using torchbricks::server::LogLevel;
  using Severity = torchbricks::TorchLogLine::Severity;
  const LogLevel level = line.severity == Severity::kError     ? LogLevel::kError
                         : line.severity == Severity::kWarning ? LogLevel::kWarning
                         : line.severity == Severity::kInfo    ? LogLevel::kInfo
                                                               : LogLevel::kVerbose;
  torchbricks::server::LogEvent(
      level, line.message, {{"source", "libtorch"}, {"kind", line.kind}, {"file", line.location}});
}

}  // namespace

int main(int argc, char** argv) {
  using namespace torchbricks::server;
  // Debian's abseil is built with absl::Mutex's deadlock detector on: every lock records
  // stack traces into a lock graph, which showed in profiles of the request path
  // (docs/PERFORMANCE.md). The tests keep it on; the served process does not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string& arg : args) {
    if (arg == "--help" || arg == "-h") {
      std::cout << ServerUsage();
      return 0;
    }
  }
  absl::StatusOr<ServerOptions> options = ParseServerFlags(args);
  if (!options.ok()) {
    std::cerr << "torchbricks-server: " << options.status().message() << "\n" << ServerUsage();
    return 2;
  }
  SetLogLevel(options->log_level);
  SetLogFormat(options->log_format);
  if (options->log_format == LogFormat::kJson) {
    gpr_set_log_function(ForwardGrpcLog);
    torchbricks::SetTorchLogSink(ForwardTorchLog);
  }

  // A reader of our stdout that goes away (a test harness that read the port) must not
  // kill the server.
  signal(SIGPIPE, SIG_IGN);

  // Block the signals in every thread; this thread takes them with sigwait().
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<TorchBricksServer>> server = TorchBricksServer::Create(*options);
  if (!server.ok()) {
    Log(LogLevel::kError, server.status().ToString());
    return 1;
  }
  std::cout << "torchbricks-server: serving gRPC on " << options->grpc_address << ":"
            << (*server)->port() << std::endl;
  if ((*server)->metrics_port() != 0) {
    std::cout << "torchbricks-server: serving metrics on " << options->grpc_address << ":"
              << (*server)->metrics_port() << std::endl;
  }

  int received = 0;
  sigwait(&signals, &received);
  Log(LogLevel::kInfo,
      absl::StrCat("received ", received == SIGTERM ? "SIGTERM" : "SIGINT", ", shutting down"));
  (*server)->Shutdown();
  return 0;
}
