#include "core/libtorch/torch_log_sink.h"

#include <atomic>
#include <cstdio>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "c10/util/Exception.h"
#include "c10/util/Logging.h"

namespace torchbricks {
namespace {

absl::Mutex sink_mu;
std::shared_ptr<const TorchLogSink> installed_sink ABSL_GUARDED_BY(sink_mu);
std::atomic<bool> sink_set{false};

void Deliver(const TorchLogLine& line) {
  std::shared_ptr<const TorchLogSink> sink;
  {
    absl::MutexLock lock(&sink_mu);
    sink = installed_sink;
  }
  if (sink != nullptr && *sink) (*sink)(line);
}

// c10's warnings of a thread that took a ScopedTorchWarningRoute.
class ForwardingWarningHandler : public c10::WarningHandler {
 public:
  void process(const c10::Warning& warning) override {
    const c10::SourceLocation& where = warning.source_location();
    Deliver({.severity = TorchLogLine::Severity::kWarning,
             .kind = "warning",
             .message = warning.msg(),
             .location = absl::StrCat(where.file != nullptr ? where.file : "", ":", where.line)});
  }
};

c10::WarningHandler* Forwarder() {
  static auto* handler =
      new ForwardingWarningHandler();  // never destroyed: threads may outlive exit
  return handler;
}

#ifdef C10_USE_GLOG
// c10's log lines (LOG, and the default warning handler of every other thread) when c10
// logs through glog, as Debian's libtorch 1.13 did. The torch wheel's c10 has its own small
// logger without a hook: its lines (rare: libtorch warns through c10 warnings) go to stderr.
class GlogForwarder : public google::LogSink {
 public:
  using google::LogSink::send;
  void send(google::LogSeverity severity, const char* full_filename, const char* /*base*/, int line,
            const google::LogMessageTime& /*time*/, const char* message,
            size_t message_len) override {
    const TorchLogLine::Severity mapped =
        severity >= google::GLOG_ERROR     ? TorchLogLine::Severity::kError
        : severity == google::GLOG_WARNING ? TorchLogLine::Severity::kWarning
                                           : TorchLogLine::Severity::kInfo;
    Deliver({.severity = mapped,
             .kind = "log",
             .message = std::string(message, message_len),
             .location = absl::StrCat(full_filename != nullptr ? full_filename : "", ":", line)});
  }
};

// Sends every glog line to the sink and none to stderr or to log files.
void RouteGlog() {
  static GlogForwarder* forwarder = [] {
    // Until glog is initialised it writes every line to stderr whatever its flags say.
    if (!google::IsGoogleLoggingInitialized()) google::InitGoogleLogging("torchbricks");
    for (google::LogSeverity severity = 0; severity < google::NUM_SEVERITIES; ++severity) {
      google::SetLogDestination(severity, "");  // no log files
    }
    FLAGS_logtostderr = false;
    FLAGS_logtostdout = false;
    FLAGS_alsologtostderr = false;
    FLAGS_stderrthreshold = google::NUM_SEVERITIES;  // nothing to stderr
    auto* sink = new GlogForwarder();                // registered for the process's life
    google::AddLogSink(sink);
    return sink;
  }();
  (void)forwarder;
}
#endif

}  // namespace

void SetTorchLogSink(TorchLogSink sink) {
  {
    absl::MutexLock lock(&sink_mu);
    installed_sink = std::make_shared<const TorchLogSink>(std::move(sink));
  }
  sink_set.store(true, std::memory_order_release);
#ifdef C10_USE_GLOG
  RouteGlog();
#endif
}

void EmitLibraryLog(const TorchLogLine& line) {
  if (sink_set.load(std::memory_order_acquire)) {
    Deliver(line);
    return;
  }
  const char* severity = line.severity == TorchLogLine::Severity::kError     ? "error"
                         : line.severity == TorchLogLine::Severity::kWarning ? "warning"
                         : line.severity == TorchLogLine::Severity::kInfo    ? "info"
                                                                             : "verbose";
  std::fprintf(stderr, "%s: %s: %s\n", line.kind.c_str(), severity, line.message.c_str());
}

ScopedTorchWarningRoute::ScopedTorchWarningRoute() {
  if (!sink_set.load(std::memory_order_acquire)) return;
  previous_ = c10::WarningUtils::get_warning_handler();
  c10::WarningUtils::set_warning_handler(Forwarder());
  installed_ = true;
}

ScopedTorchWarningRoute::~ScopedTorchWarningRoute() {
  if (installed_) {
    c10::WarningUtils::set_warning_handler(static_cast<c10::WarningHandler*>(previous_));
  }
}

}  // namespace torchbricks
