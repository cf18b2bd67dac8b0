// The host's instruction sets as AOTInductor names them.
#include "core/execution/cpu_isa.h"

#include "gtest/gtest.h"

namespace torchbricks {
namespace {

TEST(CpuIsaTest, UnknownNamesAreNeverMissing) {
  for (const char* name : {"INVALID_VEC_ISA", "ASIMD", "NEON", "SOMETHING_NEWER", ""}) {
    EXPECT_FALSE(HostHasCpuIsa(name).has_value()) << name;
  }
  EXPECT_TRUE(MissingCpuIsa("").empty());
  EXPECT_TRUE(MissingCpuIsa("  INVALID_VEC_ISA   SOMETHING_NEWER ").empty());
}

#if defined(__x86_64__) || defined(__i386__)
TEST(CpuIsaTest, NamesAreCaseInsensitiveAndImplyTheirBase) {
  for (const char* name : {"AVX2", "AVX512", "AVX512_VNNI", "AMX_TILE"}) {
    ASSERT_TRUE(HostHasCpuIsa(name).has_value()) << name;
  }
  EXPECT_EQ(HostHasCpuIsa("avx512"), HostHasCpuIsa("AVX512"));
  EXPECT_TRUE(!*HostHasCpuIsa("AVX512_VNNI") || *HostHasCpuIsa("AVX512"));
  EXPECT_TRUE(!*HostHasCpuIsa("AMX_TILE") || *HostHasCpuIsa("AVX512_VNNI"));
}

TEST(CpuIsaTest, MissingListsExactlyTheSetsTheHostLacks) {
  std::vector<std::string> lacking;
  for (const char* name : {"AVX2", "AVX512", "AVX512_VNNI", "AMX_TILE"}) {
    if (!*HostHasCpuIsa(name)) lacking.push_back(name);
  }
  EXPECT_EQ(MissingCpuIsa("AVX2 AVX512 AVX512_VNNI AMX_TILE UNKNOWN"), lacking);
}
#endif

}  // namespace
}  // namespace torchbricks
