// Batch formation with a fake model that records every batch it is given.
#include "server/scheduling/dynamic_batcher.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/testing/fake_servable_model.h"

namespace torchbricks::server {
namespace {

// Echoes each item's first input bytes; can be held so requests pile up in the queue.
class RecordingModel : public testing::FakeServableModel {
 public:
  absl::StatusOr<std::vector<HostTensor>> Run(Stage, absl::Span<const HostTensorView> inputs,
                                              absl::Span<const std::string>,
                                              RunTrace*) const override {
    HostTensor out;
    out.name = "echo";
    out.data = std::string(inputs[0].data);
    return std::vector<HostTensor>{out};
  }
  std::vector<absl::StatusOr<std::vector<HostTensor>>> RunBatch(Stage stage,
                                                                absl::Span<const BatchItem> items,
                                                                RunTrace* trace) const override {
    {
      absl::MutexLock lock(&mu_);
      ++entered_;
      auto released = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !held_; };
      mu_.Await(absl::Condition(&released));
      std::vector<std::string> batch;
      for (const BatchItem& item : items) batch.push_back(std::string(item.inputs[0].data));
      batches_.push_back(batch);
    }
    return FakeServableModel::RunBatch(stage, items, trace);
  }

  void Hold() {
    absl::MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    held_ = false;
  }
  int entered() const {
    absl::MutexLock lock(&mu_);
    return entered_;
  }
  std::vector<std::vector<std::string>> batches() const {
    absl::MutexLock lock(&mu_);
    return batches_;
  }

 private:
  mutable absl::Mutex mu_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  mutable int entered_ ABSL_GUARDED_BY(mu_) = 0;  // batches that reached RunBatch
  mutable std::vector<std::vector<std::string>> batches_ ABSL_GUARDED_BY(mu_);
};

class DynamicBatcherTest : public ::testing::Test {
 protected:
  // Requests go through the queue and a worker (no fast path), so a held model blocks the
  // worker, never the test.
  std::unique_ptr<DynamicBatcher> Make(BatcherOptions options) {
    options.instances = {{&model_, "cpu", 1}};
    options.run_on_caller_when_idle = false;
    auto batcher = DynamicBatcher::Create(std::move(options), &stats_);
    EXPECT_TRUE(batcher.ok()) << batcher.status();
    return *std::move(batcher);
  }
  // A one-row request whose payload names it; `width` changes the non-batch shape.
  std::unique_ptr<PendingRequest> Request(const std::string& payload, int64_t width = 1,
                                          int64_t rows = 1) {
    auto request = std::make_unique<PendingRequest>();
    payloads_.push_back(std::make_unique<std::string>(payload));
    request->inputs.push_back({"x", package::TYPE_UINT8, {rows, width}, *payloads_.back()});
    return request;
  }
  // Waits until the worker has taken `n` batches (it may be held inside RunBatch).
  void WaitForBatches(int n) {
    for (int i = 0; i < 5000 && model_.entered() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  // Sends `n` one-row requests one after another, each answered before the next is sent;
  // returns their times in the queue.
  std::vector<absl::Duration> LoneRequests(DynamicBatcher& batcher, int n) {
    std::vector<absl::Duration> waited;
    for (int i = 0; i < n; ++i) {
      auto request = Request(absl::StrCat("lone", i));
      EXPECT_TRUE(batcher.Enqueue(request.get()).ok());
      request->done.WaitForNotification();
      EXPECT_TRUE(request->result.ok());
      waited.push_back(request->queue_time);
    }
    return waited;
  }

  RecordingModel model_;
  VersionStats stats_{0};
  std::vector<std::unique_ptr<std::string>> payloads_;
};

TEST_F(DynamicBatcherTest, BatchClosesAtMaxSizeWithoutWaitingForTheDelay) {
  auto batcher = Make({.batching = {.max_batch_size = 3, .max_queue_delay = absl::Seconds(30)}});
  std::vector<std::unique_ptr<PendingRequest>> requests;
  for (const char* name : {"a", "b", "c", "d", "e", "f"}) {
    requests.push_back(Request(name));
    ASSERT_TRUE(batcher->Enqueue(requests.back().get()).ok());
  }
  for (auto& request : requests) request->done.WaitForNotification();
  const auto batches = model_.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0], (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(batches[1], (std::vector<std::string>{"d", "e", "f"}));
  for (auto& request : requests) {
    ASSERT_TRUE(request->result.ok());
    EXPECT_EQ(request->batch_rows, 3);
  }
  EXPECT_EQ(stats_.execution_count.load(), 2u);
  EXPECT_EQ(stats_.inference_count.load(), 6u);
}

TEST_F(DynamicBatcherTest, WaitsForBatchMatesWithinTheQueueDelay) {
  auto batcher = Make({.batching = {.max_batch_size = 2, .max_queue_delay = absl::Seconds(30)}});
  auto first = Request("first");
  auto second = Request("second");
  ASSERT_TRUE(batcher->Enqueue(first.get()).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(first->done.HasBeenNotified()) << "ran before its delay with room to spare";
  ASSERT_TRUE(batcher->Enqueue(second.get()).ok());
  first->done.WaitForNotification();
  second->done.WaitForNotification();
  EXPECT_EQ(model_.batches(), (std::vector<std::vector<std::string>>{{"first", "second"}}));
}

TEST_F(DynamicBatcherTest, DueDelaySendsAPartialBatch) {
  auto batcher =
      Make({.batching = {.max_batch_size = 8, .max_queue_delay = absl::Milliseconds(20)}});
  auto lone = Request("lone");
  ASSERT_TRUE(batcher->Enqueue(lone.get()).ok());
  lone->done.WaitForNotification();
  ASSERT_TRUE(lone->result.ok());
  EXPECT_EQ(lone->batch_rows, 1);
}

TEST_F(DynamicBatcherTest, PreferredSizeClosesTheBatchEarly) {
  auto batcher = Make({.batching = {.max_batch_size = 8,
                                    .preferred_batch_sizes = {2},
                                    .max_queue_delay = absl::Milliseconds(200)}});
  model_.Hold();
  auto blocker = Request("blocker");
  ASSERT_TRUE(batcher->Enqueue(blocker.get()).ok());
  WaitForBatches(1);
  std::vector<std::unique_ptr<PendingRequest>> requests;
  for (const char* name : {"a", "b", "c"}) {
    requests.push_back(Request(name));
    ASSERT_TRUE(batcher->Enqueue(requests.back().get()).ok());
  }
  model_.Release();
  for (auto& request : requests) request->done.WaitForNotification();
  const auto batches = model_.batches();
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[1], (std::vector<std::string>{"a", "b"}));  // preferred size 2
  EXPECT_EQ(batches[2], (std::vector<std::string>{"c"}));       // sent when due
}

TEST_F(DynamicBatcherTest, FairShareClosesABatchAtItsInstancesShareOfTheRowsInSight) {
  BatcherOptions options{
      .batching = {.max_batch_size = 8, .max_queue_delay = absl::Seconds(30), .fair_share = true},
      .run_on_caller_when_idle = false};
  options.instances = {{&model_, "cpu", 1}, {&model_, "cpu", 1}};
  auto made = DynamicBatcher::Create(std::move(options), &stats_);
  ASSERT_TRUE(made.ok()) << made.status();
  std::unique_ptr<DynamicBatcher> batcher = *std::move(made);
  model_.Hold();
  // Nothing runs: four rows in sight, two instances, a share of two; the request of four
  // rows is taken whole (a request is never split).
  auto big = Request("big", 1, 4);
  ASSERT_TRUE(batcher->Enqueue(big.get()).ok());
  WaitForBatches(1);
  // Four rows run on one instance: the other waits until it holds half of what is in
  // sight, i.e. as many rows as are running (the delay alone would keep it 30 s).
  std::vector<std::unique_ptr<PendingRequest>> requests;
  for (const char* name : {"a", "b", "c"}) {
    requests.push_back(Request(name));
    ASSERT_TRUE(batcher->Enqueue(requests.back().get()).ok());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(model_.entered(), 1) << "closed a batch of 3 rows while 4 were running";
  requests.push_back(Request("d"));
  ASSERT_TRUE(batcher->Enqueue(requests.back().get()).ok());
  WaitForBatches(2);
  EXPECT_EQ(model_.entered(), 2);
  model_.Release();
  big->done.WaitForNotification();
  for (auto& request : requests) request->done.WaitForNotification();
  auto batches = model_.batches();
  std::sort(batches.begin(), batches.end());
  EXPECT_EQ(batches, (std::vector<std::vector<std::string>>{{"a", "b", "c", "d"}, {"big"}}));
}

TEST_F(DynamicBatcherTest, WithoutFairShareTheSecondInstanceWaitsForTheDelay) {
  BatcherOptions options{.batching = {.max_batch_size = 8, .max_queue_delay = absl::Seconds(30)},
                         .run_on_caller_when_idle = false};
  options.instances = {{&model_, "cpu", 1}, {&model_, "cpu", 1}};
  auto made = DynamicBatcher::Create(std::move(options), &stats_);
  ASSERT_TRUE(made.ok()) << made.status();
  std::unique_ptr<DynamicBatcher> batcher = *std::move(made);
  model_.Hold();
  auto big = Request("big", 1, 8);  // full: closes at once
  ASSERT_TRUE(batcher->Enqueue(big.get()).ok());
  WaitForBatches(1);
  std::vector<std::unique_ptr<PendingRequest>> requests;
  for (const char* name : {"a", "b", "c", "d"}) {
    requests.push_back(Request(name));
    ASSERT_TRUE(batcher->Enqueue(requests.back().get()).ok());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(model_.entered(), 1);
  model_.Release();
  big->done.WaitForNotification();
  batcher.reset();  // runs what is queued
  for (auto& request : requests) request->done.WaitForNotification();
}

TEST_F(DynamicBatcherTest, OnlyEqualShapesShareABatch) {
  auto batcher = Make({.batching = {.max_batch_size = 8}});
  model_.Hold();
  auto blocker = Request("blocker");
  ASSERT_TRUE(batcher->Enqueue(blocker.get()).ok());
  WaitForBatches(1);
  std::vector<std::unique_ptr<PendingRequest>> requests;
  requests.push_back(Request("n1", 1));
  requests.push_back(Request("w1", 2));
  requests.push_back(Request("n2", 1));
  requests.push_back(Request("w2", 2));
  auto exported = Request("e1", 1);
  exported->stage = Stage::kExport;
  requests.push_back(std::move(exported));
  for (auto& request : requests) ASSERT_TRUE(batcher->Enqueue(request.get()).ok());
  model_.Release();
  for (auto& request : requests) request->done.WaitForNotification();
  const auto batches = model_.batches();
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches[1], (std::vector<std::string>{"n1", "n2"}));
  EXPECT_EQ(batches[2], (std::vector<std::string>{"w1", "w2"}));
  EXPECT_EQ(batches[3], (std::vector<std::string>{"e1"}));
  for (auto& request : requests) {
    ASSERT_TRUE(request->result.ok());
    EXPECT_EQ((*request->result)[0].data, std::string(request->inputs[0].data));
  }
}

TEST_F(DynamicBatcherTest, FullQueueIsRefusedAtOnce) {
  auto batcher = Make({.batching = {.max_batch_size = 1, .max_queue_size = 2}});
  model_.Hold();
  auto running = Request("running");
  ASSERT_TRUE(batcher->Enqueue(running.get()).ok());
  WaitForBatches(1);
  auto q1 = Request("q1");
  auto q2 = Request("q2");
  auto refused = Request("refused");
  ASSERT_TRUE(batcher->Enqueue(q1.get()).ok());
  ASSERT_TRUE(batcher->Enqueue(q2.get()).ok());
  absl::Status status = batcher->Enqueue(refused.get());
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  model_.Release();
  q2->done.WaitForNotification();
  EXPECT_TRUE(q2->result.ok());
}

TEST_F(DynamicBatcherTest, ExpiredRequestIsAnsweredWithoutRunning) {
  auto batcher = Make({.batching = {.max_batch_size = 4}});
  model_.Hold();
  auto running = Request("running");
  ASSERT_TRUE(batcher->Enqueue(running.get()).ok());
  WaitForBatches(1);
  auto late = Request("late");
  late->deadline = absl::Now() + absl::Milliseconds(10);
  auto timed_out = Request("timed_out");
  ASSERT_TRUE(batcher->Enqueue(late.get()).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  model_.Release();
  late->done.WaitForNotification();
  EXPECT_EQ(late->result.status().code(), absl::StatusCode::kDeadlineExceeded);
  for (const auto& batch : model_.batches()) {
    EXPECT_EQ(std::count(batch.begin(), batch.end(), "late"), 0) << "an expired request ran";
  }
}

TEST_F(DynamicBatcherTest, DefaultTimeoutBoundsTheWaitInTheQueue) {
  auto batcher =
      Make({.batching = {.max_batch_size = 4, .default_timeout = absl::Milliseconds(10)}});
  model_.Hold();
  auto running = Request("running");
  ASSERT_TRUE(batcher->Enqueue(running.get()).ok());
  WaitForBatches(1);
  auto waiting = Request("waiting");
  ASSERT_TRUE(batcher->Enqueue(waiting.get()).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  model_.Release();
  waiting->done.WaitForNotification();
  EXPECT_EQ(waiting->result.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(DynamicBatcherTest, CancelledRequestIsDropped) {
  auto batcher = Make({.batching = {.max_batch_size = 4}});
  model_.Hold();
  auto running = Request("running");
  ASSERT_TRUE(batcher->Enqueue(running.get()).ok());
  WaitForBatches(1);
  auto gone = Request("gone");
  gone->cancelled = [] { return true; };
  auto kept = Request("kept");
  ASSERT_TRUE(batcher->Enqueue(gone.get()).ok());
  ASSERT_TRUE(batcher->Enqueue(kept.get()).ok());
  model_.Release();
  gone->done.WaitForNotification();
  kept->done.WaitForNotification();
  EXPECT_EQ(gone->result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(kept->result.ok());
  EXPECT_EQ(model_.batches().back(), (std::vector<std::string>{"kept"}));
}

TEST_F(DynamicBatcherTest, RequestLargerThanMaxBatchIsInvalid) {
  auto batcher = Make({.batching = {.max_batch_size = 2}});
  auto big = Request("big", 1, /*rows=*/3);
  EXPECT_EQ(batcher->Enqueue(big.get()).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DynamicBatcherTest, InputsThatDisagreeOnTheirRowsAreRefusedBeforeQueueing) {
  auto batcher = Make({.batching = {.max_batch_size = 8}});
  // The issue-20 attack: 0 rows in the first input, 2 in the second (and the reverse).
  for (const auto& [first, second] : {std::pair<int64_t, int64_t>{0, 2}, {2, 0}, {1, 3}}) {
    auto request = Request("crafted", 1, first);
    payloads_.push_back(std::make_unique<std::string>(second, 'm'));
    request->inputs.push_back({"mask", package::TYPE_UINT8, {second, 1}, *payloads_.back()});
    const absl::Status refused = batcher->Enqueue(request.get());
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << first << "," << second;
    EXPECT_NE(refused.message().find("disagree on the batch dimension"), std::string::npos);
  }
  EXPECT_EQ(batcher->queued(), 0u);
}

TEST(BatchRowsTest, EveryInputCountsAgainstMaxBatchSize) {
  const std::string bytes(4096, 'x');
  auto view = [&](const char* name, std::vector<int64_t> shape) {
    return HostTensorView{name, package::TYPE_UINT8, std::move(shape), bytes};
  };
  EXPECT_EQ(*BatchRows({view("a", {3, 1}), view("b", {3, 7})}, 4), 3);
  // A small first input does not decide the rows of the rest.
  EXPECT_EQ(BatchRows({view("a", {1}), view("b", {4096})}, 32).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BatchRows({view("a", {5, 1}), view("b", {5, 1})}, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A batching model needs a batch dimension on every input.
  EXPECT_EQ(BatchRows({view("a", {2}), view("b", {})}, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A model that does not batch: one request is one run, whatever its shapes.
  EXPECT_EQ(*BatchRows({view("a", {9}), view("b", {})}, 0), 1);
}

TEST_F(DynamicBatcherTest, MultiRowRequestsCountRowsTowardsTheMaximum) {
  auto batcher =
      Make({.batching = {.max_batch_size = 4, .max_queue_delay = absl::Milliseconds(100)}});
  auto two = Request("two", 1, 2);
  auto three = Request("three", 1, 3);
  auto one = Request("one", 1, 1);
  ASSERT_TRUE(batcher->Enqueue(two.get()).ok());
  ASSERT_TRUE(batcher->Enqueue(three.get()).ok());
  ASSERT_TRUE(batcher->Enqueue(one.get()).ok());
  for (auto* request : {two.get(), three.get(), one.get()}) request->done.WaitForNotification();
  // 2 + 3 rows exceed 4, so "three" waits for the next batch while "one" joins "two".
  const auto batches = model_.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0], (std::vector<std::string>{"two", "one"}));
  EXPECT_EQ(batches[1], (std::vector<std::string>{"three"}));
  EXPECT_EQ(two->batch_rows, 3);
  EXPECT_EQ(three->batch_rows, 3);
}

TEST_F(DynamicBatcherTest, RequestsWaitingForMatesStillExpireAndCancel) {
  auto batcher = Make({.batching = {.max_batch_size = 8, .max_queue_delay = absl::Seconds(30)}});
  auto expiring = Request("expiring");
  expiring->deadline = absl::Now() + absl::Milliseconds(30);
  std::atomic<bool> gone{false};
  auto cancelling = Request("cancelling");
  cancelling->cancelled = [&gone] { return gone.load(); };
  ASSERT_TRUE(batcher->Enqueue(expiring.get()).ok());
  ASSERT_TRUE(batcher->Enqueue(cancelling.get()).ok());
  expiring->done.WaitForNotification();
  EXPECT_EQ(expiring->result.status().code(), absl::StatusCode::kDeadlineExceeded);
  gone = true;
  cancelling->done.WaitForNotification();
  EXPECT_EQ(cancelling->result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(model_.batches().empty()) << "a dead request ran";
}

TEST_F(DynamicBatcherTest, IdleBatcherRunsARequestOnTheCallingThread) {
  BatcherOptions options{.batching = {.max_batch_size = 4}};
  options.instances = {{&model_, "cpu", 1}};
  auto batcher = DynamicBatcher::Create(std::move(options), &stats_);
  ASSERT_TRUE(batcher.ok());
  auto request = Request("direct");
  ASSERT_TRUE((*batcher)->Enqueue(request.get()).ok());
  EXPECT_TRUE(request->done.HasBeenNotified()) << "an idle batcher should answer before returning";
  ASSERT_TRUE(request->result.ok());
  EXPECT_EQ((*request->result)[0].data, "direct");
  EXPECT_EQ(stats_.execution_count.load(), 1u);
}

TEST_F(DynamicBatcherTest, ASpinningWorkerRunsTheRequestsInsteadOfTheCallingThread) {
  BatcherOptions options{.batching = {.max_batch_size = 4},
                         .spin_before_block = absl::Milliseconds(5)};
  options.instances = {{&model_, "cpu", 1}};
  auto batcher = DynamicBatcher::Create(std::move(options), &stats_);
  ASSERT_TRUE(batcher.ok());
  model_.Hold();  // only a worker can be held: the test thread must not block in the model
  auto first = Request("first");
  ASSERT_TRUE((*batcher)->Enqueue(first.get()).ok());
  WaitForBatches(1);
  EXPECT_EQ(model_.entered(), 1);
  EXPECT_FALSE(first->done.HasBeenNotified());
  model_.Release();
  (*batcher)->AwaitDone(first.get());
  ASSERT_TRUE(first->result.ok());
  EXPECT_EQ((*first->result)[0].data, "first");
  // Requests one after another, each caught by the worker while it polls.
  for (int i = 0; i < 20; ++i) {
    auto request = Request(absl::StrCat("r", i));
    ASSERT_TRUE((*batcher)->Enqueue(request.get()).ok());
    (*batcher)->AwaitDone(request.get());
    ASSERT_TRUE(request->result.ok());
    EXPECT_EQ((*request->result)[0].data, absl::StrCat("r", i));
  }
  EXPECT_EQ(stats_.execution_count.load(), 21u);
}

TEST_F(DynamicBatcherTest, AStopEndsASpinningWorker) {
  BatcherOptions options{.batching = {.max_batch_size = 4},
                         .spin_before_block = absl::Milliseconds(10)};
  options.instances = {{&model_, "cpu", 1}};
  auto batcher = DynamicBatcher::Create(std::move(options), &stats_);
  ASSERT_TRUE(batcher.ok());
  auto request = Request("once");
  ASSERT_TRUE((*batcher)->Enqueue(request.get()).ok());
  (*batcher)->AwaitDone(request.get());
  batcher->reset();  // the worker polls for at most 10 ms, then sees the stop and exits
  EXPECT_EQ(stats_.execution_count.load(), 1u);
}

constexpr absl::Duration kLearnDelay = absl::Milliseconds(100);

TEST_F(DynamicBatcherTest, AdaptiveDelayStopsWaitingWhenWaitsGatherNothing) {
  auto batcher = Make({.batching = {.max_batch_size = 8, .max_queue_delay = kLearnDelay}});
  const std::vector<absl::Duration> waited = LoneRequests(*batcher, kFruitlessWaitsToSkip + 4);
  for (int i = 0; i < kFruitlessWaitsToSkip; ++i) {
    EXPECT_GE(waited[i], kLearnDelay) << "request " << i << " did not wait out the delay";
  }
  for (size_t i = kFruitlessWaitsToSkip; i < waited.size(); ++i) {
    EXPECT_LT(waited[i], kLearnDelay) << "request " << i << " still waited for mates that "
                                      << "never came";
  }
  for (const auto& batch : model_.batches()) EXPECT_EQ(batch.size(), 1u);
}

TEST_F(DynamicBatcherTest, RequestsThatJoinAProbeMakeBatchesWaitAgain) {
  auto batcher = Make({.batching = {.max_batch_size = 8, .max_queue_delay = kLearnDelay}});
  LoneRequests(*batcher, kFruitlessWaitsToSkip);  // now waits are skipped
  LoneRequests(*batcher, kProbeInterval - 1);     // each closes at once
  auto probe = Request("probe");
  auto mate = Request("mate");
  ASSERT_TRUE(batcher->Enqueue(probe.get()).ok());
  ASSERT_TRUE(batcher->Enqueue(mate.get()).ok());
  probe->done.WaitForNotification();
  mate->done.WaitForNotification();
  EXPECT_EQ(model_.batches().back(), (std::vector<std::string>{"probe", "mate"}));
  EXPECT_GE(probe->queue_time, kLearnDelay) << "the probe did not wait out the delay";
  // A request joined the probe: the next lone request waits for mates again.
  EXPECT_GE(LoneRequests(*batcher, 1)[0], kLearnDelay);
}

TEST_F(DynamicBatcherTest, ABatchThatQueuedBehindABusyInstanceDoesNotEndTheSkipping) {
  auto batcher = Make({.batching = {.max_batch_size = 8, .max_queue_delay = kLearnDelay}});
  LoneRequests(*batcher, kFruitlessWaitsToSkip);
  model_.Hold();
  auto blocker = Request("blocker");
  ASSERT_TRUE(batcher->Enqueue(blocker.get()).ok());
  WaitForBatches(kFruitlessWaitsToSkip + 1);
  auto a = Request("a");
  auto b = Request("b");
  ASSERT_TRUE(batcher->Enqueue(a.get()).ok());
  ASSERT_TRUE(batcher->Enqueue(b.get()).ok());
  model_.Release();
  a->done.WaitForNotification();
  b->done.WaitForNotification();
  EXPECT_EQ(model_.batches().back(), (std::vector<std::string>{"a", "b"}));
  // They batched because the instance was busy, as they would without a delay.
  EXPECT_LT(LoneRequests(*batcher, 1)[0], kLearnDelay);
}

TEST_F(DynamicBatcherTest, WhileWaitsAreSkippedAnIdleBatcherAnswersOnTheCallingThreadButProbes) {
  BatcherOptions options{.batching = {.max_batch_size = 8, .max_queue_delay = kLearnDelay}};
  options.instances = {{&model_, "cpu", 1}};
  auto made = DynamicBatcher::Create(std::move(options), &stats_);
  ASSERT_TRUE(made.ok());
  DynamicBatcher& batcher = **made;
  // With a delay set, lone requests go through the queue until their waits prove fruitless.
  LoneRequests(batcher, kFruitlessWaitsToSkip);
  std::vector<int> waited;   // requests that waited out the delay
  int answered_at_once = 0;  // answered on this thread before Enqueue returned
  for (int i = 0; i < kProbeInterval + 1; ++i) {
    auto request = Request(absl::StrCat("r", i));
    ASSERT_TRUE(batcher.Enqueue(request.get()).ok());
    if (request->done.HasBeenNotified()) ++answered_at_once;
    request->done.WaitForNotification();
    ASSERT_TRUE(request->result.ok());
    if (request->queue_time >= kLearnDelay) waited.push_back(i);
  }
  EXPECT_EQ(waited, std::vector<int>{kProbeInterval - 1}) << "one request in kProbeInterval "
                                                          << "waits; the others run at once";
  // A worker notifies its request before it counts itself idle, so now and then the next
  // request finds it busy and is queued (and taken at once); most run on this thread.
  EXPECT_GT(answered_at_once, kProbeInterval / 2);
}

TEST_F(DynamicBatcherTest, WithoutTheAdaptiveDelayEveryLoneRequestWaits) {
  auto batcher = Make(
      {.batching = {
           .max_batch_size = 8, .max_queue_delay = kLearnDelay, .adaptive_queue_delay = false}});
  for (absl::Duration waited : LoneRequests(*batcher, kFruitlessWaitsToSkip + 2)) {
    EXPECT_GE(waited, kLearnDelay);
  }
}

}  // namespace
}  // namespace torchbricks::server
