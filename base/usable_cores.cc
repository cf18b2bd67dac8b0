#include "base/usable_cores.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace torchbricks {
namespace {

// A cgroup file is a few bytes; anything longer is not one.
constexpr std::streamsize kMaxCgroupFileBytes = 4096;

std::optional<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string text(kMaxCgroupFileBytes, '\0');
  in.read(text.data(), kMaxCgroupFileBytes);
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

int AffinityCpus() {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) > 0) {
    return CPU_COUNT(&cpus);
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// The smaller of two optional quotas.
std::optional<double> Tighter(std::optional<double> a, std::optional<double> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

// cgroup v2: "0::/path" in /proc/self/cgroup; cpu.max of that cgroup and its ancestors
// (a limit set on any of them applies).
std::optional<double> CgroupV2Quota(absl::string_view self_cgroup, const std::string& root) {
  for (absl::string_view line : absl::StrSplit(self_cgroup, '\n')) {
    if (!absl::ConsumePrefix(&line, "0::")) continue;
    std::string path(absl::StripAsciiWhitespace(line));
    std::optional<double> quota;
    while (true) {
      if (auto text = ReadSmallFile(absl::StrCat(root, path, "/cpu.max"))) {
        quota = Tighter(quota, QuotaFromCpuMax(*text));
      }
      if (path.empty() || path == "/") break;
      path = path.substr(0, path.rfind('/'));
    }
    return quota;
  }
  return std::nullopt;
}

// cgroup v1: the cpu controller's quota, under its mount (in a container, the mount's root
// is the container's cgroup).
std::optional<double> CgroupV1Quota(const std::string& root) {
  for (const char* mount : {"/cpu,cpuacct", "/cpu"}) {
    auto quota = ReadSmallFile(absl::StrCat(root, mount, "/cpu.cfs_quota_us"));
    auto period = ReadSmallFile(absl::StrCat(root, mount, "/cpu.cfs_period_us"));
    if (quota && period) return QuotaFromCfs(*quota, *period);
  }
  return std::nullopt;
}

}  // namespace

std::optional<double> QuotaFromCpuMax(absl::string_view cpu_max) {
  const std::vector<absl::string_view> fields =
      absl::StrSplit(absl::StripAsciiWhitespace(cpu_max), ' ', absl::SkipEmpty());
  double quota = 0;
  double period = 0;
  if (fields.size() != 2 || !absl::SimpleAtod(fields[0], &quota) ||
      !absl::SimpleAtod(fields[1], &period) || quota <= 0 || period <= 0) {
    return std::nullopt;  // "max" (no limit) or not a cpu.max
  }
  return quota / period;
}

std::optional<double> QuotaFromCfs(absl::string_view quota_us, absl::string_view period_us) {
  double quota = 0;
  double period = 0;
  if (!absl::SimpleAtod(absl::StripAsciiWhitespace(quota_us), &quota) ||
      !absl::SimpleAtod(absl::StripAsciiWhitespace(period_us), &period) || quota <= 0 ||
      period <= 0) {
    return std::nullopt;
  }
  return quota / period;
}

int CoresWithin(int affinity, std::optional<double> quota) {
  int cores = std::max(affinity, 1);
  if (quota) cores = std::min(cores, static_cast<int>(std::ceil(*quota)));
  return std::max(cores, 1);
}

UsableCores DetectUsableCores(const std::string& proc, const std::string& cgroup_root) {
  UsableCores usable;
  usable.affinity = AffinityCpus();
  if (auto self = ReadSmallFile(proc + "/self/cgroup"); self && self->find("0::") != 0) {
    // Not a pure cgroup v2 process (v1 lines come first, or none): the v1 controller.
    usable.quota = CgroupV1Quota(cgroup_root);
  } else if (self) {
    usable.quota = CgroupV2Quota(*self, cgroup_root);
  }
  usable.cores = CoresWithin(usable.affinity, usable.quota);
  return usable;
}

std::string UsableCores::Describe() const {
  return absl::StrCat(cores, " (affinity ", affinity, " CPUs, ",
                      quota ? absl::StrCat("cgroup quota ", *quota, " CPUs") : "no cgroup quota",
                      ")");
}

}  // namespace torchbricks
