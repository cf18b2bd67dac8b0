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

// The tightest quota that `read_quota` finds for `path` (a cgroup path, "/..." as
// /proc/self/cgroup gives it) and each of its ancestors up to the hierarchy's root: a limit
// set on any of them applies.
template <typename ReadQuota>
std::optional<double> TightestUpTheTree(std::string path, ReadQuota read_quota) {
  std::optional<double> quota;
  while (true) {
    quota = Tighter(quota, read_quota(path));
    const size_t slash = path.rfind('/');
    if (path.empty() || slash == std::string::npos) break;
    path.resize(slash);
  }
  return quota;
}

// One line of /proc/self/cgroup: "ID:CONTROLLERS:PATH".
struct CgroupLine {
  absl::string_view id;
  std::vector<absl::string_view> controllers;
  std::string path;
};

std::vector<CgroupLine> ParseSelfCgroup(absl::string_view text) {
  std::vector<CgroupLine> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    const std::vector<absl::string_view> fields = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (fields.size() != 3) continue;
    std::string path(absl::StripAsciiWhitespace(fields[2]));
    // The kernel's paths start at the hierarchy's root; anything else is not followed.
    if (path.empty() || path[0] != '/' || path.find("..") != std::string::npos) path = "/";
    lines.push_back({fields[0], absl::StrSplit(fields[1], ',', absl::SkipEmpty()), path});
  }
  return lines;
}

// cgroup v1: the cpu controller's cfs quota of `path` and its ancestors under the controller's
// mount (inside a container the mount's root is the container's cgroup, and `path` names a
// host folder that is not there: then the root's files are what is read).
std::optional<double> CgroupV1Quota(const std::string& path, const std::string& root) {
  for (const char* mount : {"/cpu,cpuacct", "/cpu"}) {
    const std::string base = root + mount;
    if (!ReadSmallFile(base + "/cpu.cfs_period_us")) continue;
    return TightestUpTheTree(path, [&base](const std::string& at) -> std::optional<double> {
      auto quota = ReadSmallFile(absl::StrCat(base, at, "/cpu.cfs_quota_us"));
      auto period = ReadSmallFile(absl::StrCat(base, at, "/cpu.cfs_period_us"));
      if (!quota || !period) return std::nullopt;
      return QuotaFromCfs(*quota, *period);
    });
  }
  return std::nullopt;
}

// cgroup v2: cpu.max of `path` and its ancestors.
std::optional<double> CgroupV2Quota(const std::string& path, const std::string& root) {
  return TightestUpTheTree(path, [&root](const std::string& at) -> std::optional<double> {
    auto text = ReadSmallFile(absl::StrCat(root, at, "/cpu.max"));
    return text ? QuotaFromCpuMax(*text) : std::nullopt;
  });
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
  const int cores = std::max(affinity, 1);
  if (!quota || *quota >= cores) return cores;
  return std::max(static_cast<int>(std::ceil(*quota)), 1);
}

UsableCores DetectUsableCores(const std::string& proc, const std::string& cgroup_root) {
  UsableCores usable;
  usable.affinity = AffinityCpus();
  if (auto self = ReadSmallFile(proc + "/self/cgroup")) {
    const std::vector<CgroupLine> lines = ParseSelfCgroup(*self);
    // The cpu controller is on a v1 hierarchy when a numbered line lists it; else, on a v2
    // (or hybrid) host, the "0::" line's cgroup has cpu.max.
    const CgroupLine* v1 = nullptr;
    const CgroupLine* v2 = nullptr;
    for (const CgroupLine& line : lines) {
      if (line.id == "0" && line.controllers.empty()) v2 = &line;
      for (absl::string_view controller : line.controllers) {
        if (controller == "cpu") v1 = &line;
      }
    }
    if (v1 != nullptr) {
      usable.quota = CgroupV1Quota(v1->path, cgroup_root);
    } else if (v2 != nullptr) {
      usable.quota = CgroupV2Quota(v2->path, cgroup_root);
    }
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
