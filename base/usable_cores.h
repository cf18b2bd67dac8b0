// The cores this process may use: the CPUs of its affinity mask (taskset, a cpuset, a
// Kubernetes static CPU policy), capped by its cgroup's CPU quota (`docker run --cpus`, a
// Kubernetes CPU limit), rounded up, at least 1. std::thread::hardware_concurrency() counts
// the host's CPUs, so a server sized by it oversubscribes a container it shares with nothing.
//
//   const UsableCores cores = DetectUsableCores();
//   Log(..., cores.Describe());  // "2 (affinity 16 CPUs, cgroup quota 1.5 CPUs)"
#ifndef TORCHBRICKS_BASE_USABLE_CORES_H_
#define TORCHBRICKS_BASE_USABLE_CORES_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace torchbricks {

struct UsableCores {
  int cores = 1;                 // what to size thread pools by
  int affinity = 1;              // CPUs in the affinity mask (or the host's, if unreadable)
  std::optional<double> quota;   // the tightest cgroup CPU quota, in CPUs; none when unlimited
  std::string Describe() const;  // "2 (affinity 16 CPUs, cgroup quota 1.5 CPUs)"
};

// Reads the affinity mask and the cgroup files under `proc` (/proc) and `cgroup_root`
// (/sys/fs/cgroup): where /proc/self/cgroup puts the cpu controller on a v1 hierarchy, its
// cpu.cfs_quota_us / cpu.cfs_period_us; else cgroup v2's cpu.max; in both, of this process's
// cgroup and each ancestor (the tightest wins). Files that are missing or unreadable mean no
// quota.
UsableCores DetectUsableCores(const std::string& proc = "/proc",
                              const std::string& cgroup_root = "/sys/fs/cgroup");

// The parsers, for tests. cgroup v2 cpu.max ("max 100000", "150000 100000"): the quota in
// CPUs, none for "max" or text that does not parse. cgroup v1: quota and period in µs
// (-1 = none).
std::optional<double> QuotaFromCpuMax(absl::string_view cpu_max);
std::optional<double> QuotaFromCfs(absl::string_view quota_us, absl::string_view period_us);

// The cores to use: the quota rounded up, within 1..affinity.
int CoresWithin(int affinity, std::optional<double> quota);

}  // namespace torchbricks

#endif  // TORCHBRICKS_BASE_USABLE_CORES_H_
