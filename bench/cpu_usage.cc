#include "bench/cpu_usage.h"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace torchbricks::bench {
namespace {

// /proc/PID/stat fields after the command name's closing parenthesis, counted from 0 at
// the state field (proc(5) numbers it 3): utime (proc(5)'s 14) and stime (15).
constexpr size_t kUtimeAfterName = 11;
constexpr size_t kStimeAfterName = 12;

// /proc/stat's "cpu" line: user nice system idle iowait ...; idle and iowait are 4th and 5th.
constexpr size_t kIdleField = 4;
constexpr size_t kIowaitField = 5;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

double TicksPerSecond() { return static_cast<double>(sysconf(_SC_CLK_TCK)); }

double Seconds(const timeval& time) {
  return static_cast<double>(time.tv_sec) + static_cast<double>(time.tv_usec) / 1e6;
}

}  // namespace

absl::StatusOr<double> ProcessCpuSeconds(absl::string_view stat, double ticks_per_second) {
  // The name may hold spaces and parentheses; the fields start after the last ')'.
  const size_t close = stat.rfind(')');
  if (close == absl::string_view::npos) {
    return absl::InvalidArgumentError("no command name in /proc/PID/stat");
  }
  const std::vector<absl::string_view> fields =
      absl::StrSplit(stat.substr(close + 1), ' ', absl::SkipEmpty());
  double utime = 0;
  double stime = 0;
  if (fields.size() <= kStimeAfterName || !absl::SimpleAtod(fields[kUtimeAfterName], &utime) ||
      !absl::SimpleAtod(fields[kStimeAfterName], &stime)) {
    return absl::InvalidArgumentError("/proc/PID/stat has no utime and stime");
  }
  return (utime + stime) / ticks_per_second;
}

absl::StatusOr<double> MachineIdleSeconds(absl::string_view proc_stat, double ticks_per_second) {
  for (absl::string_view line : absl::StrSplit(proc_stat, '\n')) {
    const std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.empty() || fields[0] != "cpu") continue;
    double idle = 0;
    double iowait = 0;
    if (fields.size() <= kIowaitField || !absl::SimpleAtod(fields[kIdleField], &idle) ||
        !absl::SimpleAtod(fields[kIowaitField], &iowait)) {
      break;
    }
    return (idle + iowait) / ticks_per_second;
  }
  return absl::InvalidArgumentError("/proc/stat has no complete \"cpu\" line");
}

CpuSample SampleCpu(pid_t server_pid) {
  CpuSample sample;
  sample.at = absl::Now();
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    sample.self_seconds = Seconds(usage.ru_utime) + Seconds(usage.ru_stime);
  }
  if (server_pid > 0) {
    auto server =
        ProcessCpuSeconds(ReadFile(absl::StrCat("/proc/", server_pid, "/stat")), TicksPerSecond());
    if (server.ok()) sample.server_seconds = *server;
  }
  auto idle = MachineIdleSeconds(ReadFile("/proc/stat"), TicksPerSecond());
  if (idle.ok()) sample.machine_idle_seconds = *idle;
  return sample;
}

absl::StatusOr<CoresUsed> CoresBetween(const CpuSample& before, const CpuSample& after) {
  const double wall = absl::ToDoubleSeconds(after.at - before.at);
  if (wall <= 0) return absl::FailedPreconditionError("the CPU samples are not in time order");
  if (before.self_seconds < 0 || after.self_seconds < 0 || before.machine_idle_seconds < 0 ||
      after.machine_idle_seconds < 0) {
    return absl::FailedPreconditionError("this process's or the machine's CPU time is unreadable");
  }
  CoresUsed used;
  used.client = (after.self_seconds - before.self_seconds) / wall;
  used.idle = (after.machine_idle_seconds - before.machine_idle_seconds) / wall;
  if (before.server_seconds >= 0 && after.server_seconds >= 0) {
    used.server = (after.server_seconds - before.server_seconds) / wall;
  }
  return used;
}

absl::StatusOr<std::vector<int>> ParseCpuList(absl::string_view list) {
  std::vector<int> cpus;
  for (absl::string_view item : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    const std::vector<absl::string_view> ends = absl::StrSplit(item, absl::MaxSplits('-', 1));
    int first = 0;
    int last = 0;
    if (!absl::SimpleAtoi(ends[0], &first) ||
        !absl::SimpleAtoi(ends.size() == 2 ? ends[1] : ends[0], &last) || first < 0 ||
        last < first || last >= CPU_SETSIZE) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad CPU list '", list, "' (say it as taskset -c does: 0-3,8)"));
    }
    for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
  }
  if (cpus.empty()) return absl::InvalidArgumentError("empty CPU list");
  return cpus;
}

absl::Status PinCallingThread(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu : cpus) CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("sched_setaffinity refused the CPUs: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace torchbricks::bench
