#include "bench/cpu_usage.h"

#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "gtest/gtest.h"

namespace torchbricks::bench {
namespace {

TEST(CpuUsageTest, ProcessSecondsAreUserPlusSystemTicks) {
  // A name with spaces and a parenthesis must not shift the fields.
  const char stat[] =
      "4517 (torch (x) srv) S 1 4517 1 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 12 0 42";
  auto seconds = ProcessCpuSeconds(stat, 100);
  ASSERT_TRUE(seconds.ok()) << seconds.status();
  EXPECT_DOUBLE_EQ(*seconds, 4.0);
  EXPECT_FALSE(ProcessCpuSeconds("4517 torchbricks S 1", 100).ok());
  EXPECT_FALSE(ProcessCpuSeconds("4517 (x) S 1 2 3", 100).ok());
}

TEST(CpuUsageTest, MachineIdleIsIdlePlusIowaitOfTheCpuLine) {
  const char proc_stat[] =
      "cpu  1000 20 300 5000 100 0 7 0 0 0\n"
      "cpu0 500 10 150 2500 50 0 3 0 0 0\n";
  auto idle = MachineIdleSeconds(proc_stat, 100);
  ASSERT_TRUE(idle.ok()) << idle.status();
  EXPECT_DOUBLE_EQ(*idle, 51.0);
  EXPECT_FALSE(MachineIdleSeconds("cpu0 1 2 3 4 5\n", 100).ok());
}

TEST(CpuUsageTest, ABusyLoopInThisProcessCountsAsAboutOneClientCore) {
  const CpuSample before = SampleCpu(getpid());
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  volatile unsigned spins = 0;
  while (std::chrono::steady_clock::now() < until) spins = spins + 1;
  const CpuSample after = SampleCpu(getpid());
  auto used = CoresBetween(before, after);
  ASSERT_TRUE(used.ok()) << used.status();
  // This process is both client and "server" here: both clocks saw the same loop. The
  // loop may be descheduled, never more than one core.
  EXPECT_GT(used->client, 0.0);
  EXPECT_LE(used->client, 1.2);
  EXPECT_GT(used->server, 0.0);
  EXPECT_GE(used->idle, 0.0);
  EXPECT_FALSE(CoresBetween(after, before).ok()) << "samples out of order";
  EXPECT_EQ(CoresBetween(before, SampleCpu(-1)).value().server, -1);
}

TEST(CpuUsageTest, CpuListsAreSpelledAsTasksetDoes) {
  EXPECT_EQ(ParseCpuList("0-3,8").value(), (std::vector<int>{0, 1, 2, 3, 8}));
  EXPECT_EQ(ParseCpuList("5").value(), (std::vector<int>{5}));
  EXPECT_FALSE(ParseCpuList("").ok());
  EXPECT_FALSE(ParseCpuList("3-1").ok());
  EXPECT_FALSE(ParseCpuList("a").ok());
  EXPECT_FALSE(ParseCpuList("-1").ok());
  EXPECT_FALSE(ParseCpuList("0-100000").ok());
}

TEST(CpuUsageTest, APinnedThreadRunsOnlyOnItsCpus) {
  cpu_set_t all;
  CPU_ZERO(&all);
  ASSERT_EQ(sched_getaffinity(0, sizeof(all), &all), 0);
  int first = 0;
  while (!CPU_ISSET(first, &all)) ++first;
  ASSERT_TRUE(PinCallingThread({first}).ok());
  cpu_set_t now;
  CPU_ZERO(&now);
  ASSERT_EQ(sched_getaffinity(0, sizeof(now), &now), 0);
  EXPECT_EQ(CPU_COUNT(&now), 1);
  EXPECT_TRUE(CPU_ISSET(first, &now));
  EXPECT_EQ(sched_setaffinity(0, sizeof(all), &all), 0);
}

}  // namespace
}  // namespace torchbricks::bench
