// Where libtorch's own messages go: its warnings (TORCH_WARN, and warnings.warn in
// TorchScript code) and c10's log lines, which otherwise print plain text on stderr; the
// same sink takes the messages of the other libraries core/ calls (libjpeg's warnings,
// EmitLibraryLog). A process sets one sink at start-up (the server sends them through its
// logger, so that --log-format json keeps stderr JSON). Torch-free, so server/ may include
// it; thread-safe.
//
//   SetTorchLogSink([](const TorchLogLine& line) { MyLog(line.severity, line.message); });
#ifndef TORCHBRICKS_CORE_LIBTORCH_TORCH_LOG_SINK_H_
#define TORCHBRICKS_CORE_LIBTORCH_TORCH_LOG_SINK_H_

#include <functional>
#include <string>

namespace torchbricks {

// One message of libtorch (or of another library, see EmitLibraryLog).
struct TorchLogLine {
  enum class Severity { kVerbose, kInfo, kWarning, kError };
  Severity severity = Severity::kWarning;
  // "warning" for a c10 warning (TORCH_WARN, TorchScript's warnings.warn), "log" for a
  // line of c10's log library; the library's name for another library ("libjpeg").
  std::string kind;
  std::string message;   // without a trailing newline
  std::string location;  // "file:line" where libtorch (or the TorchScript code) raised it
};

// Called on the thread that raised the message; must be thread-safe and must not call
// into libtorch.
using TorchLogSink = std::function<void(const TorchLogLine&)>;

// From now on libtorch's warnings and log lines go to `sink` and not to stderr, from every
// thread: a warning raised while a ServableModel loads or runs reaches it through c10's
// warning handler of that thread (see ScopedTorchWarningRoute). Anything else (a warning
// on one of libtorch's pool threads, a log line) goes through c10's log library: where c10
// logs through glog (Debian's libtorch 1.13) it reaches the sink too and is kept off stderr;
// the torch wheel's c10 logs without glog and offers no hook, so those lines, rare, still
// print on stderr. A later call replaces the sink; an empty one drops the messages. Call it
// before models load.
void SetTorchLogSink(TorchLogSink sink);

// Sends `line`, a message of a library other than libtorch (`kind` names it: "libjpeg"),
// to the sink set by SetTorchLogSink() (an empty one drops it). With no sink set, prints
// it to stderr as plain text: "libjpeg: warning: <message>". Callers keep hostile input
// from raising many lines (core/execution/jpeg_decoder.cc sends one per file).
void EmitLibraryLog(const TorchLogLine& line);

// While alive, c10 warnings raised on the calling thread go to the sink set by
// SetTorchLogSink() (none set: no effect); restores the thread's previous handler.
// c10's warning handler is per thread (libtorch 1.13 and 2.x), so each thread that runs models
// takes one (ServableModel does around loading, warm-up and every run).
class ScopedTorchWarningRoute {
 public:
  ScopedTorchWarningRoute();
  ~ScopedTorchWarningRoute();
  ScopedTorchWarningRoute(const ScopedTorchWarningRoute&) = delete;
  ScopedTorchWarningRoute& operator=(const ScopedTorchWarningRoute&) = delete;

 private:
  void* previous_ = nullptr;  // the thread's c10::WarningHandler before
  bool installed_ = false;
};

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_LIBTORCH_TORCH_LOG_SINK_H_
