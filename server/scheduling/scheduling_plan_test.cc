#include "server/scheduling/scheduling_plan.h"

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace torchbricks::server {
namespace {

const CudaInventory kNoCuda{};
const CudaInventory kTwoGpus{.built = true, .devices = 2};
const CudaInventory kFourGpus{.built = true, .devices = 4};

config::ModelConfig Config(const std::string& text) {
  config::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

TEST(SchedulingPlanTest, AbsentConfigBatchesOnOneCpuInstanceLeavingACoreToGrpc) {
  auto plan = PlanScheduling(config::ModelConfig(), kNoCuda, /*cores=*/8);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->batching.max_batch_size, 32);
  EXPECT_EQ(plan->batching.max_queue_delay, absl::ZeroDuration());
  EXPECT_EQ(plan->batching.max_queue_size, 4096u);
  ASSERT_EQ(plan->instances.size(), 1u);
  EXPECT_EQ(plan->instances[0].device, "cpu");
  EXPECT_EQ(plan->instances[0].intra_op_threads, 7);
}

TEST(SchedulingPlanTest, ExplicitZeroDisablesBatching) {
  auto plan = PlanScheduling(Config("max_batch_size: 0"), kNoCuda, 2);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->batching.max_batch_size, 0);
}

TEST(SchedulingPlanTest, DynamicBatchingFieldsAndCpuThreadsSplitEvenly) {
  auto plan = PlanScheduling(Config(R"pb(
                               max_batch_size: 16
                               dynamic_batching {
                                 preferred_batch_size: [ 4, 8 ]
                                 max_queue_delay_microseconds: 500
                                 max_queue_size: 10
                                 default_timeout_microseconds: 2000
                               }
                               instance_group { kind: KIND_CPU count: 2 }
                             )pb"),
                             kNoCuda, 5);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->batching.preferred_batch_sizes, (std::vector<int>{4, 8}));
  EXPECT_EQ(plan->batching.max_queue_delay, absl::Microseconds(500));
  EXPECT_EQ(plan->batching.max_queue_size, 10u);
  EXPECT_EQ(plan->batching.default_timeout, absl::Milliseconds(2));
  ASSERT_EQ(plan->instances.size(), 2u);
  EXPECT_EQ(plan->instances[0].intra_op_threads, 2);
  EXPECT_EQ(plan->instances[1].intra_op_threads, 2);
}

TEST(SchedulingPlanTest, ExplicitThreadsAreKept) {
  auto plan = PlanScheduling(
      Config("instance_group { kind: KIND_CPU count: 3 intra_op_threads: 1 }"), kNoCuda, 2);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->instances.size(), 3u);
  for (const auto& instance : plan->instances) EXPECT_EQ(instance.intra_op_threads, 1);
}

TEST(SchedulingPlanTest, GpuGroupsNeedCudaAndSpreadOverGpus) {
  const config::ModelConfig gpu = Config("instance_group { kind: KIND_GPU count: 2 gpus: [0, 1] }");
  auto refused = PlanScheduling(gpu, kNoCuda, 2);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("KIND_GPU, but this server's libtorch has no CUDA"),
            std::string::npos)
      << refused.status();
  auto no_device = PlanScheduling(gpu, CudaInventory{.built = true, .devices = 0}, 2);
  EXPECT_EQ(no_device.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(no_device.status().message().find("sees no CUDA device"), std::string::npos)
      << no_device.status();
  auto one_gpu = PlanScheduling(gpu, CudaInventory{.built = true, .devices = 1}, 2);
  EXPECT_EQ(one_gpu.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(one_gpu.status().message().find("lists GPU 1, but libtorch sees 1 CUDA device "),
            std::string::npos)
      << one_gpu.status();
  auto plan = PlanScheduling(gpu, kTwoGpus, 2);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->instances.size(), 4u);
  EXPECT_EQ(plan->devices(), (std::vector<std::string>{"cuda:0", "cuda:1"}));
  EXPECT_EQ(plan->placement, "2 instances on cuda:0, 2 on cuda:1");
  auto automatic = PlanScheduling(config::ModelConfig(), kTwoGpus, 2);
  ASSERT_TRUE(automatic.ok());
  EXPECT_EQ(automatic->instances[0].device, "cuda:0");
  EXPECT_EQ(automatic->placement,
            "1 instance on cuda:0 (no instance_group: a usable GPU is present)");
}

TEST(SchedulingPlanTest, WithoutInstanceGroupTheCpuIsChosenAndTheReasonSaid) {
  auto plan = PlanScheduling(config::ModelConfig(), CudaInventory{.built = true, .devices = 0}, 2);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->devices(), std::vector<std::string>{"cpu"});
  EXPECT_EQ(plan->placement,
            "1 instance on cpu (no instance_group: on the CPU, as libtorch sees no CUDA device (no "
            "GPU or NVIDIA driver on this machine, or CUDA_VISIBLE_DEVICES hides them))");
  auto mixed = PlanScheduling(Config(R"pb(
                                instance_group { kind: KIND_CPU count: 2 }
                                instance_group {
                                  kind: KIND_GPU
                                  count: 1
                                  gpus: [ 1 ]
                                }
                              )pb"),
                              kTwoGpus, 2);
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_EQ(mixed->placement, "2 instances on cpu, 1 on cuda:1");
}

TEST(SchedulingPlanTest, BatchingPolicyParameterSelectsFairShare) {
  auto absent = PlanScheduling(Config("max_batch_size: 8"), kNoCuda, 2);
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->batching.fair_share);
  auto fair = PlanScheduling(Config(R"pb(
                               dynamic_batching { max_queue_delay_microseconds: 10000 }
                               parameters { key: "batching_policy" value: "fair_share" }
                             )pb"),
                             kNoCuda, 2);
  ASSERT_TRUE(fair.ok()) << fair.status();
  EXPECT_TRUE(fair->batching.fair_share);
  // Without a queue delay every batch closes at once: fair share would do nothing.
  auto no_delay = PlanScheduling(
      Config(R"pb(parameters { key: "batching_policy" value: "fair_share" })pb"), kNoCuda, 2);
  EXPECT_EQ(no_delay.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_delay.status().message().find("max_queue_delay_microseconds"), std::string::npos);
  auto delay = PlanScheduling(Config(R"pb(parameters { key: "batching_policy" value: "delay" })pb"),
                              kNoCuda, 2);
  ASSERT_TRUE(delay.ok()) << delay.status();
  EXPECT_FALSE(delay->batching.fair_share);
  auto bogus = PlanScheduling(
      Config(R"pb(parameters { key: "batching_policy" value: "greedy" })pb"), kNoCuda, 2);
  EXPECT_EQ(bogus.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bogus.status().message().find("fair_share"), std::string::npos);
}

TEST(SchedulingPlanTest, AdaptiveQueueDelayIsOnUnlessTheConfigTurnsItOff) {
  auto absent = PlanScheduling(Config("max_batch_size: 8"), kNoCuda, 2);
  ASSERT_TRUE(absent.ok());
  EXPECT_TRUE(absent->batching.adaptive_queue_delay);
  auto off = PlanScheduling(
      Config(R"pb(parameters { key: "adaptive_queue_delay" value: "false" })pb"), kNoCuda, 2);
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->batching.adaptive_queue_delay);
  auto bogus = PlanScheduling(
      Config(R"pb(parameters { key: "adaptive_queue_delay" value: "off" })pb"), kNoCuda, 2);
  EXPECT_EQ(bogus.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bogus.status().message().find("adaptive_queue_delay"), std::string::npos);
}

TEST(SchedulingPlanTest, BadSizesAreRefused) {
  EXPECT_FALSE(PlanScheduling(Config("max_batch_size: -1"), kNoCuda, 2).ok());
  EXPECT_FALSE(
      PlanScheduling(Config("max_batch_size: 4 dynamic_batching { preferred_batch_size: 8 }"),
                     kNoCuda, 2)
          .ok());
}

TEST(SchedulingPlanTest, ThreadsAndInstancesAreBoundedByTheMachine) {
  config::ModelConfig config;
  config::InstanceGroup* group = config.add_instance_group();
  group->set_intra_op_threads(100000);
  absl::StatusOr<SchedulingPlan> plan = PlanScheduling(config, kNoCuda, 2);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(plan.status().message().find("intra_op_threads 100000 is not within 0..2"),
            std::string::npos)
      << plan.status();
  group->set_intra_op_threads(2);
  EXPECT_TRUE(PlanScheduling(config, kNoCuda, 2).ok());
  group->set_count(9);
  plan = PlanScheduling(config, kNoCuda, 2);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("more than 8 instances"), std::string::npos)
      << plan.status();
  group->set_count(8);
  EXPECT_TRUE(PlanScheduling(config, kNoCuda, 2).ok());
}

// Found by tests/fuzz/model_config_fuzzer: uint64 microseconds above INT64_MAX became
// negative durations, and a huge count times the GPUs overflowed int.
TEST(SchedulingPlanTest, DurationsBeyondInt64AreRefusedNotNegative) {
  for (const char* text :
       {"dynamic_batching { max_queue_delay_microseconds: 18446744073709551615 }",
        "dynamic_batching { default_timeout_microseconds: 9223372036854775808 }"}) {
    auto plan = PlanScheduling(Config(text), kNoCuda, 2);
    ASSERT_FALSE(plan.ok()) << text;
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(plan.status().message().find("out of range"), std::string::npos);
  }
  auto largest = PlanScheduling(
      Config("dynamic_batching { max_queue_delay_microseconds: 9223372036854775807 }"), kNoCuda, 2);
  ASSERT_TRUE(largest.ok()) << largest.status();
  EXPECT_GT(largest->batching.max_queue_delay, absl::ZeroDuration());
}

TEST(SchedulingPlanTest, HugeGpuInstanceCountsAreRefusedWithoutOverflow) {
  auto plan = PlanScheduling(
      Config("instance_group { kind: KIND_GPU count: 1073741824 gpus: [ 0, 1, 2 ] }"), kFourGpus,
      2);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace torchbricks::server
