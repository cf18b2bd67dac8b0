#include "server/grpc/guarded_memory_copy.h"

#include <setjmp.h>
#include <signal.h>

#include <atomic>
#include <cstring>

namespace torchbricks::server {
namespace {

// This thread's guard. Trivially constructed and destroyed, so the signal handler reads it
// without a TLS initialisation call; `armed` is set only while a copy runs on this thread.
struct CopyGuard {
  sigjmp_buf resume;
  volatile sig_atomic_t armed;
};
thread_local CopyGuard guard = {};

// The SIGBUS disposition found when ours was installed; written once, before installation.
struct sigaction previous_action = {};

void OnSigbus(int signal, siginfo_t* info, void*) {
  CopyGuard& own = guard;
  if (own.armed != 0) {
    own.armed = 0;
    siglongjmp(own.resume, 1);
  }
  // Not a guarded copy: hand the signal to whoever had it. A fault recurs as soon as this
  // returns and then meets that disposition (SIG_DFL: the process dies with SIGBUS); a
  // signal sent by a process (si_code <= 0) would not, so it is raised again.
  sigaction(SIGBUS, &previous_action, nullptr);
  if (info == nullptr || info->si_code <= 0) raise(signal);
}

void InstallHandlerOnce() {
  static const bool installed = [] {
    sigaction(SIGBUS, nullptr, &previous_action);
    struct sigaction action = {};
    action.sa_sigaction = &OnSigbus;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    return sigaction(SIGBUS, &action, nullptr) == 0;
  }();
  (void)installed;
}

// The copy proper. Nothing with a destructor lives in this frame: siglongjmp skips
// destructors. The signal mask is saved (sigsetjmp's 1), since the handler runs with
// SIGBUS blocked and the jump must unblock it. False when the copy faulted.
__attribute__((noinline)) bool CopyUnlessFault(void* destination, const void* source,
                                               size_t bytes) {
  CopyGuard& own = guard;
  if (sigsetjmp(own.resume, 1) != 0) return false;
  own.armed = 1;
  std::atomic_signal_fence(std::memory_order_seq_cst);  // no access moves out of the guard
  std::memcpy(destination, source, bytes);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  own.armed = 0;
  return true;
}

}  // namespace

absl::Status GuardedMemoryCopy(void* destination, const void* source, size_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  InstallHandlerOnce();
  if (!CopyUnlessFault(destination, source, bytes)) {
    return absl::DataLossError(
        "a page of the memory copied had no memory behind it (SIGBUS): its shared-memory "
        "object was made smaller, or its file system had no room for the page");
  }
  return absl::OkStatus();
}

}  // namespace torchbricks::server
