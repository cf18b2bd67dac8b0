// CPU accounting of a benchmark window: how many cores the load generator (this process),
// the server process and nobody (the machine's idle time) took while a point ran. On a
// machine where client and server share the cores, this says what the served figure had to
// share with, next to the in-process limit that had the cores to itself.
//
//   CpuSample before = SampleCpu(server_pid);
//   ... run the point ...
//   absl::StatusOr<CoresUsed> used = CoresBetween(before, SampleCpu(server_pid));
#ifndef TORCHBRICKS_BENCH_CPU_USAGE_H_
#define TORCHBRICKS_BENCH_CPU_USAGE_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace torchbricks::bench {

// Cumulative CPU seconds at one moment; a negative value is one that could not be read.
struct CpuSample {
  absl::Time at;
  double self_seconds = -1;          // this process, every thread (getrusage)
  double server_seconds = -1;        // the server process (/proc/PID/stat), -1 without one
  double machine_idle_seconds = -1;  // idle + iowait of every core (/proc/stat)
};

// Cores each party used on average between two samples.
struct CoresUsed {
  double client = 0;
  double server = -1;  // -1 when the server's CPU time was not read
  double idle = 0;
};

// Reads the three clocks now; `server_pid` <= 0 leaves the server's unread.
CpuSample SampleCpu(pid_t server_pid);

// The averages between `before` and `after`. FailedPrecondition when a clock this process
// or the machine keeps could not be read, or the samples are not in time order.
absl::StatusOr<CoresUsed> CoresBetween(const CpuSample& before, const CpuSample& after);

// Parsers of the two /proc files, exposed for tests. Seconds of user + system time of the
// process whose /proc/PID/stat text is `stat`; seconds idle (idle + iowait, over every core)
// from /proc/stat's text. `ticks_per_second` is sysconf(_SC_CLK_TCK).
absl::StatusOr<double> ProcessCpuSeconds(absl::string_view stat, double ticks_per_second);
absl::StatusOr<double> MachineIdleSeconds(absl::string_view proc_stat, double ticks_per_second);

// CPU lists, to keep the load generator and the server on separate cores (floor_benchmark
// --server-cpus/--client-cpus): "0-3,8" as taskset -c spells it. InvalidArgument for an
// empty list, a bad number or range, or a CPU at or above CPU_SETSIZE.
absl::StatusOr<std::vector<int>> ParseCpuList(absl::string_view list);

// Restricts the calling thread to `cpus`; threads and processes it starts afterwards inherit
// the mask. FailedPrecondition (with errno's text) when the kernel refuses it.
absl::Status PinCallingThread(const std::vector<int>& cpus);

}  // namespace torchbricks::bench

#endif  // TORCHBRICKS_BENCH_CPU_USAGE_H_
