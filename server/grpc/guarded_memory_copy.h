// GuardedMemoryCopy: memcpy for memory another process owns (a client's shared-memory
// region), where touching a page can raise SIGBUS — the object was shrunk or had a hole
// punched after it was mapped, or its tmpfs (/dev/shm) has no room for a page being
// written. Such a fault ends the copy with an error instead of the process. Thread-safe.
//
//   absl::Status copied = GuardedMemoryCopy(scratch.data(), region->data() + offset, n);
//   if (!copied.ok()) ...  // kDataLoss: some page of either range had no memory
//
// How: a process-wide SIGBUS handler (installed by the first call, sigaction with
// SA_SIGINFO) and a per-thread jump buffer armed only around the memcpy. A SIGBUS while
// this thread's guard is armed jumps back and fails the copy; any other SIGBUS restores the
// disposition found at installation (SIG_DFL, or a sanitizer's handler) and lets the signal
// take it, so a real crash still crashes (a fault re-raises itself when the handler returns;
// a SIGBUS sent by kill is raised again).
//
// Sanitizers: AddressSanitizer installs its own SIGBUS handler (handle_sigbus=1 by default)
// and lets user handlers replace it (allow_user_segv_handler=1 by default); ours chains to it
// for SIGBUS outside a guarded copy, so ASan still reports those. A handler installed later
// by someone else replaces ours: GuardedMemoryCopy then gives no protection.
#ifndef TORCHBRICKS_SERVER_GRPC_GUARDED_MEMORY_COPY_H_
#define TORCHBRICKS_SERVER_GRPC_GUARDED_MEMORY_COPY_H_

#include <cstddef>

#include "absl/status/status.h"

namespace torchbricks::server {

// Copies `bytes` bytes from `source` to `destination` (non-overlapping, as memcpy). OK when
// every byte was copied; DataLoss when touching either range raised SIGBUS, and then
// `destination` holds an unspecified prefix of the copy. Callers say which memory failed and
// choose the code their callers see. Other faults (SIGSEGV: a range not mapped at all) are
// not caught: both ranges must be mapped for `bytes` bytes.
absl::Status GuardedMemoryCopy(void* destination, const void* source, size_t bytes);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_GUARDED_MEMORY_COPY_H_
