// The host's vector instruction sets as AOTInductor names them (AOTI_CPU_ISA: "AVX2",
// "AVX512", "AVX512_VNNI", "AMX_TILE"). A CPU package's code is compiled for the instruction
// sets of the machine that exported it; on a CPU without them it dies of SIGILL on its first
// run, so a package is checked before it is loaded. Pure; thread-safe.
//
//   std::vector<std::string> missing = MissingCpuIsa(brick.compiled->cpu_isa);
#ifndef TORCHBRICKS_CORE_EXECUTION_CPU_ISA_H_
#define TORCHBRICKS_CORE_EXECUTION_CPU_ISA_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace torchbricks {

// True when this host (CPU and operating system) runs the instruction set `name` (any
// case), false when it does not, nullopt for a name this function does not know (ARM's
// "ASIMD", AOTInductor's "INVALID_VEC_ISA" for no vector code, anything newer) or any name
// on a CPU that is not x86.
std::optional<bool> HostHasCpuIsa(absl::string_view name);

// The names in the space-separated `isa` ("AVX512 AVX512_VNNI") that this host is known
// to lack, in order; names HostHasCpuIsa() does not know are taken as present.
std::vector<std::string> MissingCpuIsa(absl::string_view isa);

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_EXECUTION_CPU_ISA_H_
