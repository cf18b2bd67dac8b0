#include "core/execution/cpu_isa.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define TORCHBRICKS_X86 1
#endif

namespace torchbricks {
namespace {

#ifdef TORCHBRICKS_X86
// What CPUID and XCR0 say, read once.
struct X86Features {
  bool fma = false, f16c = false, avx2 = false;
  bool avx512f = false, avx512dq = false, avx512bw = false, avx512vl = false;
  bool avx512vnni = false;
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;
  bool os_avx = false, os_avx512 = false, os_amx = false;  // the OS saves those registers
};

X86Features ReadX86Features() {
  X86Features f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  f.fma = (ecx >> 12) & 1;
  f.f16c = (ecx >> 29) & 1;
  const bool osxsave = (ecx >> 27) & 1;
  if (osxsave) {
    uint32_t xcr0_low = 0, xcr0_high = 0;
    __asm__ volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    const uint64_t xcr0 = (static_cast<uint64_t>(xcr0_high) << 32) | xcr0_low;
    f.os_avx = (xcr0 & 0x6) == 0x6;          // SSE and AVX state
    f.os_avx512 = (xcr0 & 0xE6) == 0xE6;     // and opmask, ZMM_Hi256, Hi16_ZMM
    f.os_amx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG and XTILEDATA
  }
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
  f.avx2 = (ebx >> 5) & 1;
  f.avx512f = (ebx >> 16) & 1;
  f.avx512dq = (ebx >> 17) & 1;
  f.avx512bw = (ebx >> 30) & 1;
  f.avx512vl = (ebx >> 31) & 1;
  f.avx512vnni = (ecx >> 11) & 1;
  f.amx_bf16 = (edx >> 22) & 1;
  f.amx_tile = (edx >> 24) & 1;
  f.amx_int8 = (edx >> 25) & 1;
  return f;
}

const X86Features& Host() {
  static const X86Features features = ReadX86Features();
  return features;
}
#endif

}  // namespace

std::optional<bool> HostHasCpuIsa(absl::string_view name) {
#ifdef TORCHBRICKS_X86
  const X86Features& f = Host();
  const std::string upper = absl::AsciiStrToUpper(name);
  // The compiler flags torch/_inductor/cpu_vec_isa.py builds each ISA with.
  const bool avx2 = f.os_avx && f.avx2 && f.fma && f.f16c;
  const bool avx512 = f.os_avx512 && f.avx512f && f.avx512dq && f.avx512bw && f.avx512vl && f.fma;
  if (upper == "AVX2") return avx2;
  if (upper == "AVX512") return avx512;
  if (upper == "AVX512_VNNI") return avx512 && f.avx512vnni;
  if (upper == "AMX_TILE") {
    return avx512 && f.avx512vnni && f.os_amx && f.amx_tile && f.amx_bf16 && f.amx_int8;
  }
#else
  (void)name;
#endif
  return std::nullopt;
}

std::vector<std::string> MissingCpuIsa(absl::string_view isa) {
  std::vector<std::string> missing;
  for (absl::string_view name : absl::StrSplit(isa, ' ', absl::SkipWhitespace())) {
    const std::optional<bool> has = HostHasCpuIsa(name);
    if (has.has_value() && !*has) missing.emplace_back(name);
  }
  return missing;
}

}  // namespace torchbricks
