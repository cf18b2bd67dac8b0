// torchbricks-server: serves a model repository of brick collections over gRPC.
// SIGTERM or SIGINT drains it: not ready, new requests refused, in-flight ones finished,
// exit 0.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/libtorch/torch_log_sink.h"
#include "grpc/support/log.h"
#include "server/listener_watch.h"
#include "server/observability/log_rate_limiter.h"
#include "server/observability/logging.h"
#include "server/server_options.h"
#include "server/torchbricks_server.h"

namespace {

// Below this many open descriptors the server warns at start: each connection takes one.
constexpr uint64_t kFewOpenFiles = 4096;

// How long after the shutdown timeout the process may still take to stop (see main()).
constexpr absl::Duration kShutdownUnwindTime = absl::Seconds(3);

// Lines that any client can cause (gRPC's about failed TLS handshakes from unauthenticated
// peers, libjpeg's about corrupt files) pass at most a burst of 20, then one a second per
// source line, with the count of lines dropped (server/observability/log_rate_limiter.h).
constexpr torchbricks::server::LogRateLimiter::Options kOutsiderLines = {.burst = 20,
                                                                         .per_second = 1};

// False when the operator silenced gRPC (GRPC_VERBOSITY=NONE): its lines are then only
// watched, not written. Set once in main() before gRPC starts.
bool grpc_lines_shown = true;

// gRPC's own log lines, written through LogEvent so that --log-format json stays one JSON
// object per line. Every line is first shown to the listener watch.
void ForwardGrpcLog(gpr_log_func_args* args) {
  using torchbricks::server::LogLevel;
  torchbricks::server::NoteGrpcLogLine(args->message);
  if (!grpc_lines_shown) return;
  static torchbricks::server::KeyedLogRateLimiter limiters(kOutsiderLines);
  const LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR  ? LogLevel::kError
                         : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                                   : LogLevel::kVerbose;
  const std::string where = absl::StrCat(args->file ? args->file : "", ":", args->line);
  torchbricks::server::LogEventLimited(limiters.For(where), level, args->message,
                                       {{"source", "grpc"}, {"file", where}});
}

// libtorch's warnings and log lines, likewise, and libjpeg's warnings (kind "libjpeg": one
// line per decoded file, core/execution/jpeg_decoder.h), rate-limited as above.
void ForwardTorchLog(const torchbricks::TorchLogLine& line) {
  using torchbricks::server::LogLevel;
  using Severity = torchbricks::TorchLogLine::Severity;
  const LogLevel level = line.severity == Severity::kError     ? LogLevel::kError
                         : line.severity == Severity::kWarning ? LogLevel::kWarning
                         : line.severity == Severity::kInfo    ? LogLevel::kInfo
                                                               : LogLevel::kVerbose;
  if (line.kind != "libjpeg") {
    torchbricks::server::LogEvent(
        level, line.message,
        {{"source", "libtorch"}, {"kind", line.kind}, {"file", line.location}});
    return;
  }
  static torchbricks::server::LogRateLimiter limiter(kOutsiderLines);
  torchbricks::server::LogEventLimited(limiter, level, line.message, {{"source", "libjpeg"}});
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
  // gRPC's lines always go through our logger: they are rate-limited, and one of them is
  // how a lost listener shows (server/listener_watch.h). So gRPC must write its errors even
  // when GRPC_VERBOSITY=NONE asks for silence; that wish is kept here instead (gRPC reads
  // the variable when it starts, which is after this).
  const char* verbosity = std::getenv("GRPC_VERBOSITY");
  grpc_lines_shown = verbosity == nullptr || !absl::EqualsIgnoreCase(verbosity, "NONE");
  if (!grpc_lines_shown) setenv("GRPC_VERBOSITY", "ERROR", 1);
  gpr_set_log_function(ForwardGrpcLog);
  // libtorch's and libjpeg's lines too, in both formats (libjpeg's are rate-limited).
  torchbricks::SetTorchLogSink(ForwardTorchLog);
  if (auto limits = RaiseOpenFileLimit(); limits.ok()) {
    const auto& [before, after] = *limits;
    LogEvent(after.soft < kFewOpenFiles ? LogLevel::kWarning : LogLevel::kInfo, "open file limit",
             {{"soft_before", absl::StrCat(before.soft)},
              {"soft", absl::StrCat(after.soft)},
              {"hard", absl::StrCat(after.hard)}});
  } else {
    Log(LogLevel::kWarning, limits.status().ToString());
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
  // The shutdown timeout is a promise: past it, the refusal window and a few seconds for
  // cancelled work to unwind, the process exits even if a brick is still computing.
  std::thread([timeout = options->shutdown_timeout] {
    absl::SleepFor(timeout + kShutdownUnwindTime);
    Log(LogLevel::kError,
        absl::StrCat("work still running ", absl::FormatDuration(timeout + kShutdownUnwindTime),
                     " after SIGTERM (--shutdown-timeout-secs); exiting now"));
    std::_Exit(1);
  }).detach();
  (*server)->Shutdown();
  return 0;
}
