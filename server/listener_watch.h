// Watching the process's gRPC listener and its descriptors.
//
// gRPC 1.51 stops accepting connections for good after one accept4() that fails with
// anything but EAGAIN or EINTR — EMFILE, when the process runs out of file descriptors —
// and says so only in one log line ("Failed accept4: ..."); it has no API to ask, and no
// cap on open connections (later gRPC releases added one). The server therefore (1) raises
// its descriptor limit at start, so that running out takes far more connections, and (2)
// passes every gRPC log line through NoteGrpcLogLine(), so that a lost listener turns
// readiness and liveness off instead of leaving a process that looks healthy on /metrics
// but answers no new client. Process-wide (gRPC's log function is too); thread-safe.
//
//   RaiseOpenFileLimit();                   // once, at start
//   NoteGrpcLogLine(args->message);         // in the gpr_log function
//   if (GrpcListenerLost()) ...             // readiness
#ifndef TORCHBRICKS_SERVER_LISTENER_WATCH_H_
#define TORCHBRICKS_SERVER_LISTENER_WATCH_H_

#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace torchbricks::server {

// The process's soft and hard limits on open descriptors (RLIMIT_NOFILE).
struct OpenFileLimit {
  uint64_t soft = 0;
  uint64_t hard = 0;
};

// The most descriptors RaiseOpenFileLimit() asks for: hard limits of "infinity" exist, and
// code that walks every possible descriptor slows down with the limit.
inline constexpr uint64_t kMostOpenFiles = uint64_t{1} << 20;

// Raises the soft limit on open descriptors to the hard limit, at most kMostOpenFiles (the
// hard limit is the most an unprivileged process may take; Docker and Kubernetes give
// 1,048,576, a Debian login 1,024 soft of 524,288 hard); a soft limit already higher stays. Returns
// the limits before and after as {before, after}; Internal when the limits cannot be read or set
// (the limits are then unchanged).
absl::StatusOr<std::pair<OpenFileLimit, OpenFileLimit>> RaiseOpenFileLimit();

// The limits now; {0, 0} when they cannot be read.
OpenFileLimit CurrentOpenFileLimit();

// Called with every log line gRPC writes; notes a lost listener. Cheap; async-safe enough
// for gRPC's log callback (one atomic store, no locks, no allocation).
void NoteGrpcLogLine(absl::string_view message);

// True once gRPC has said that its listener stopped accepting connections.
bool GrpcListenerLost();

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_LISTENER_WATCH_H_
