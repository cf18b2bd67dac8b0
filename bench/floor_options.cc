// floor_benchmark's flags, parsed with the project's command-line splitter.
#include "bench/floor_options.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/command_line.h"
#include "base/status_macros.h"
#include "bench/cpu_usage.h"

namespace torchbricks::bench {

const char kFloorUsage[] =
    "usage: floor_benchmark --repository DIR [flags]\n"
    "  --repository DIR         example repository (examples/build_example_repository.py)\n"
    "  --server-binary PATH     torchbricks-server (default: this build's)\n"
    "  --floor-binary PATH      floor_server (default: this build's)\n"
    "  --server-flags \"...\"     extra flags for torchbricks-server\n"
    "  --python-server PATH     also run this Python torchbricks + grpcio server "
    "(bench/python_server.py)\n"
    "  --rounds N               alternating rounds of the latency points (default 3)\n"
    "  --seconds S              measuring window per point (default 3)\n"
    "  --warmup-seconds S       unmeasured load before each point (default 1)\n"
    "  --w2-threads N           intra-op threads of W2 in-process (default 2: the server's two\n"
    "                           W2 instances of one thread each)\n"
    "  --out FILE.md            also write the report here\n"
    "  --server-cpus LIST       in-process runs and servers on these CPUs (taskset -c list)\n"
    "  --client-cpus LIST       the load generator's threads on these CPUs\n";

absl::StatusOr<FloorOptions> ParseFloorOptions(const std::vector<std::string>& args) {
  FloorOptions flags;
  flags.server_binary = TORCHBRICKS_DEFAULT_SERVER;
  flags.floor_binary = TORCHBRICKS_DEFAULT_FLOOR;
  ASSIGN_OR_RETURN(const auto pairs, SplitFlagValues(args));
  for (const auto& [flag, value] : pairs) {
    bool ok = true;
    if (flag == "--repository") {
      flags.repository = value;
    } else if (flag == "--server-binary") {
      flags.server_binary = value;
    } else if (flag == "--floor-binary") {
      flags.floor_binary = value;
    } else if (flag == "--server-flags") {
      flags.server_flags = absl::StrSplit(value, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    } else if (flag == "--python-server") {
      flags.python_server = value;
    } else if (flag == "--rounds") {
      ok = absl::SimpleAtoi(value, &flags.rounds) && flags.rounds >= 1 && flags.rounds <= 100;
    } else if (flag == "--seconds") {
      ok = absl::SimpleAtod(value, &flags.seconds) && flags.seconds > 0;
    } else if (flag == "--warmup-seconds") {
      ok = absl::SimpleAtod(value, &flags.warmup_seconds) && flags.warmup_seconds >= 0;
    } else if (flag == "--w2-threads") {
      ok = absl::SimpleAtoi(value, &flags.w2_threads) && flags.w2_threads >= 1 &&
           flags.w2_threads <= 256;
    } else if (flag == "--out") {
      flags.out = value;
    } else if (flag == "--server-cpus" || flag == "--client-cpus") {
      absl::StatusOr<std::vector<int>> cpus = ParseCpuList(value);
      ok = cpus.ok();
      if (ok) (flag == "--server-cpus" ? flags.server_cpus : flags.client_cpus) = *std::move(cpus);
    } else {
      return absl::InvalidArgumentError("unknown flag " + flag);
    }
    if (!ok) return absl::InvalidArgumentError(absl::StrCat("bad value '", value, "' for ", flag));
  }
  if (flags.repository.empty()) return absl::InvalidArgumentError("--repository is required");
  return flags;
}

}  // namespace torchbricks::bench
