#include "clients/cpp/perf/server_counters.h"

#include "gtest/gtest.h"

namespace torchbricks::perf {
namespace {

TEST(ServerCountersTest, DifferenceCountsAResetCounterFromZero) {
  const ServerCounters earlier{.success = {.count = 4, .ns = 4000}, .inference_count = 10};
  const ServerCounters later{.success = {.count = 6, .ns = 7000}, .inference_count = 3};
  const ServerCounters delta = later - earlier;
  EXPECT_EQ(delta.success.count, 2u);
  EXPECT_EQ(delta.success.ns, 3000u);
  EXPECT_EQ(delta.inference_count, 3u);  // went down: reloaded, counts from zero
}

TEST(ServerCountersTest, SumAddsEveryField) {
  ServerCounters total{.success = {.count = 1, .ns = 10}, .queue = {.count = 1, .ns = 5}};
  total += ServerCounters{.success = {.count = 2, .ns = 20},
                          .fail = {.count = 1, .ns = 1},
                          .queue = {.count = 2, .ns = 7},
                          .compute_input = {.count = 2, .ns = 3},
                          .compute_infer = {.count = 2, .ns = 40},
                          .compute_output = {.count = 2, .ns = 4},
                          .inference_count = 8,
                          .execution_count = 2};
  EXPECT_EQ(total.success.count, 3u);
  EXPECT_EQ(total.success.ns, 30u);
  EXPECT_EQ(total.fail.count, 1u);
  EXPECT_EQ(total.queue.ns, 12u);
  EXPECT_EQ(total.compute_input.ns, 3u);
  EXPECT_EQ(total.compute_infer.ns, 40u);
  EXPECT_EQ(total.compute_output.ns, 4u);
  EXPECT_EQ(total.inference_count, 8u);
  EXPECT_EQ(total.execution_count, 2u);
}

TEST(ServerCountersTest, FiguresPerBatchAndPerSuccessfulRequest) {
  // Two executions of batch 4 and 2: six requests, each counting its execution's run.
  const ServerCounters counters{.success = {.count = 6, .ns = 60000},
                                .queue = {.count = 6, .ns = 12000},
                                .compute_infer = {.count = 6, .ns = 30000},
                                .inference_count = 6,
                                .execution_count = 2};
  EXPECT_DOUBLE_EQ(counters.AverageBatch(), 3.0);
  EXPECT_DOUBLE_EQ(counters.QueueUsPerRequest(), 2.0);
  EXPECT_DOUBLE_EQ(counters.InferUsPerExecution(), 5.0);
}

TEST(ServerCountersTest, FiguresAreZeroWhenNothingRan) {
  const ServerCounters none;
  EXPECT_EQ(none.AverageBatch(), 0);
  EXPECT_EQ(none.QueueUsPerRequest(), 0);
  EXPECT_EQ(none.InferUsPerExecution(), 0);
}

}  // namespace
}  // namespace torchbricks::perf
