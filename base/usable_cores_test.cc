#include "base/usable_cores.h"

#include <sched.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace torchbricks {
namespace {

namespace fs = std::filesystem;

TEST(UsableCoresTest, CpuMaxIsAQuotaUnlessMax) {
  EXPECT_EQ(QuotaFromCpuMax("max 100000\n"), std::nullopt);
  EXPECT_DOUBLE_EQ(QuotaFromCpuMax("150000 100000\n").value(), 1.5);
  EXPECT_EQ(QuotaFromCpuMax("150000"), std::nullopt);
  EXPECT_EQ(QuotaFromCpuMax("-1 100000"), std::nullopt);
  EXPECT_EQ(QuotaFromCpuMax(""), std::nullopt);
}

TEST(UsableCoresTest, CfsQuotaIsAQuotaUnlessMinusOne) {
  EXPECT_EQ(QuotaFromCfs("-1\n", "100000\n"), std::nullopt);
  EXPECT_DOUBLE_EQ(QuotaFromCfs("200000\n", "100000\n").value(), 2.0);
  EXPECT_EQ(QuotaFromCfs("x", "100000"), std::nullopt);
}

TEST(UsableCoresTest, TheQuotaRoundsUpWithinTheAffinity) {
  EXPECT_EQ(CoresWithin(16, std::nullopt), 16);
  EXPECT_EQ(CoresWithin(16, 1.5), 2);
  EXPECT_EQ(CoresWithin(16, 0.2), 1);
  EXPECT_EQ(CoresWithin(4, 12.0), 4);
  EXPECT_EQ(CoresWithin(0, std::nullopt), 1);
  EXPECT_EQ(CoresWithin(8, 1e300), 8);
}

class UsableCoresTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("usable_cores_" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "proc/self");
    fs::create_directories(root_ / "cgroup");
  }
  void Write(const fs::path& relative, const std::string& text) {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text;
  }
  UsableCores Detect() {
    return DetectUsableCores((root_ / "proc").string(), (root_ / "cgroup").string());
  }
  static int Affinity() {
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    EXPECT_EQ(sched_getaffinity(0, sizeof(cpus), &cpus), 0);
    return CPU_COUNT(&cpus);
  }
  fs::path root_;
};

TEST_F(UsableCoresTreeTest, CgroupV2TakesTheTightestQuotaOfTheCgroupAndItsAncestors) {
  Write("proc/self/cgroup", "0::/kubepods/pod1/container\n");
  Write("cgroup/kubepods/cpu.max", "max 100000\n");
  Write("cgroup/kubepods/pod1/cpu.max", "50000 100000\n");
  Write("cgroup/kubepods/pod1/container/cpu.max", "300000 100000\n");
  const UsableCores usable = Detect();
  ASSERT_TRUE(usable.quota.has_value());
  EXPECT_DOUBLE_EQ(*usable.quota, 0.5);
  EXPECT_EQ(usable.cores, 1);
  EXPECT_EQ(usable.affinity, Affinity());
  EXPECT_NE(usable.Describe().find("cgroup quota 0.5 CPUs"), std::string::npos)
      << usable.Describe();
}

TEST_F(UsableCoresTreeTest, CgroupV1QuotaUnderTheCpuMount) {
  // Inside a container: the host path is not under the mount, whose root is the container's.
  Write("proc/self/cgroup", "12:cpu,cpuacct:/docker/abc\n0::/\n");
  Write("cgroup/cpu,cpuacct/cpu.cfs_quota_us", "100000\n");
  Write("cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  const UsableCores usable = Detect();
  ASSERT_TRUE(usable.quota.has_value());
  EXPECT_DOUBLE_EQ(*usable.quota, 1.0);
  EXPECT_EQ(usable.cores, 1);
}

TEST_F(UsableCoresTreeTest, CgroupV1QuotaOfTheProcessCgroupOnAHost) {
  Write("proc/self/cgroup", "4:cpu,cpuacct:/system.slice/serve.service\n1:name=systemd:/\n");
  Write("cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  Write("cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  Write("cgroup/cpu,cpuacct/system.slice/serve.service/cpu.cfs_quota_us", "150000\n");
  Write("cgroup/cpu,cpuacct/system.slice/serve.service/cpu.cfs_period_us", "100000\n");
  const UsableCores usable = Detect();
  ASSERT_TRUE(usable.quota.has_value());
  EXPECT_DOUBLE_EQ(*usable.quota, 1.5);
  EXPECT_EQ(usable.cores, std::min(2, Affinity()));
}

TEST_F(UsableCoresTreeTest, AV1HierarchyWithoutTheCpuControllerLeavesV2InCharge) {
  Write("proc/self/cgroup", "1:name=systemd:/user.slice\n0::/serve\n");
  Write("cgroup/serve/cpu.max", "100000 100000\n");
  const UsableCores usable = Detect();
  ASSERT_TRUE(usable.quota.has_value());
  EXPECT_DOUBLE_EQ(*usable.quota, 1.0);
}

TEST_F(UsableCoresTreeTest, NoCgroupFilesMeansTheAffinityMask) {
  const UsableCores usable = Detect();
  EXPECT_FALSE(usable.quota.has_value());
  EXPECT_EQ(usable.cores, Affinity());
  EXPECT_NE(usable.Describe().find("no cgroup quota"), std::string::npos) << usable.Describe();
}

TEST(UsableCoresTest, ANarrowerAffinityMaskIsSeen) {
  cpu_set_t all;
  CPU_ZERO(&all);
  ASSERT_EQ(sched_getaffinity(0, sizeof(all), &all), 0);
  int first = 0;
  while (!CPU_ISSET(first, &all)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  const UsableCores usable = DetectUsableCores();
  ASSERT_EQ(sched_setaffinity(0, sizeof(all), &all), 0);
  EXPECT_EQ(usable.affinity, 1);
  EXPECT_EQ(usable.cores, 1);
}

}  // namespace
}  // namespace torchbricks
