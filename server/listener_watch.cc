#include "server/listener_watch.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace torchbricks::server {
namespace {

std::atomic<bool> listener_lost{false};

}  // namespace

absl::StatusOr<std::pair<OpenFileLimit, OpenFileLimit>> RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::InternalError(absl::StrCat("getrlimit(RLIMIT_NOFILE): ", std::strerror(errno)));
  }
  const OpenFileLimit before{limit.rlim_cur, limit.rlim_max};
  const rlim_t wanted = std::min<rlim_t>(limit.rlim_max, kMostOpenFiles);
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = wanted;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      return absl::InternalError(
          absl::StrCat("setrlimit(RLIMIT_NOFILE, ", wanted, "): ", std::strerror(errno)));
    }
  }
  return std::make_pair(before, OpenFileLimit{limit.rlim_cur, limit.rlim_max});
}

OpenFileLimit CurrentOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return {};
  return {limit.rlim_cur, limit.rlim_max};
}

void NoteGrpcLogLine(absl::string_view message) {
  // tcp_server_posix.cc in gRPC 1.51: the one line written before the listener is dropped.
  if (absl::StartsWith(message, "Failed accept4")) {
    listener_lost.store(true, std::memory_order_relaxed);
  }
}

bool GrpcListenerLost() { return listener_lost.load(std::memory_order_relaxed); }

}  // namespace torchbricks::server
