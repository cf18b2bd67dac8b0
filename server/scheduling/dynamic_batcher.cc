#include "server/scheduling/dynamic_batcher.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "server/observability/logging.h"

namespace torchbricks::server {
namespace {

// One iteration of a polling loop: tells the CPU this thread spins (x86 `pause`), so that
// its sibling hyperthread and the memory bus lose less to it.
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Polls `ready` for up to `spin` (spin-before-block): true once it holds.
template <typename Ready>
bool PollFor(absl::Duration spin, Ready ready) {
  const absl::Time until = absl::Now() + spin;
  while (!ready()) {
    if (absl::Now() >= until) return false;
    CpuRelax();
  }
  return true;
}

// How long fair share remembers a load it no longer sees (the e-folding time).
constexpr absl::Duration kRecentLoadMemory = absl::Seconds(1);

// Fair share smooths the load over the last few batches: each closing batch's load counts
// with this weight, the smoothed load before it with the rest (about five batches count).
constexpr double kRecentLoadNewWeight = 0.2;

// While requests wait for batch-mates, how often cancelled ones are looked for.
constexpr absl::Duration kCancellationPollInterval = absl::Milliseconds(20);

// The most rows a batch of a model that does not batch (max_batch_size 0) holds: one
// request, whose rows BatchRows() counts as one.
constexpr int64_t kUnbatchedRows = 1;

// The most rows one batch may hold under `policy`.
int64_t MaxBatchRows(const BatchPolicy& policy) {
  return policy.max_batch_size > 0 ? policy.max_batch_size : kUnbatchedRows;
}

}  // namespace

std::string BatchKey(Stage stage, const std::vector<HostTensorView>& inputs) {
  std::vector<const HostTensorView*> sorted;
  for (const HostTensorView& view : inputs) sorted.push_back(&view);
  std::sort(sorted.begin(), sorted.end(),
            [](const HostTensorView* a, const HostTensorView* b) { return a->name < b->name; });
  std::string key(StageName(stage));
  for (const HostTensorView* view : sorted) {
    absl::StrAppend(&key, "|", view->name, ":", static_cast<int>(view->data_type), ":",
                    view->shape.size());
    for (size_t d = 1; d < view->shape.size(); ++d) absl::StrAppend(&key, ",", view->shape[d]);
  }
  return key;
}

absl::StatusOr<std::unique_ptr<DynamicBatcher>> DynamicBatcher::Create(BatcherOptions options,
                                                                       VersionStats* statistics) {
  if (options.instances.empty()) {
    return absl::InvalidArgumentError("a batcher needs at least one model instance");
  }
  for (const auto& instance : options.instances) {
    if (instance.model == nullptr) return absl::InvalidArgumentError("null model instance");
  }
  std::unique_ptr<DynamicBatcher> batcher(new DynamicBatcher(std::move(options), statistics));
  batcher->direct_allowed_ = batcher->options_.run_on_caller_when_idle &&
                             batcher->options_.spin_before_block <= absl::ZeroDuration();
  for (const auto& instance : batcher->options_.instances) {
    batcher->direct_allowed_ = batcher->direct_allowed_ && instance.device == "cpu";
    batcher->workers_.emplace_back([b = batcher.get(), &instance] { b->Worker(instance); });
  }
  return batcher;
}

DynamicBatcher::~DynamicBatcher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
}

size_t DynamicBatcher::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

absl::StatusOr<int64_t> BatchRows(const std::vector<HostTensorView>& inputs,
                                  int64_t max_batch_size) {
  if (max_batch_size <= 0 || inputs.empty()) return 1;
  for (const HostTensorView& input : inputs) {
    if (input.shape.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", input.name, "' has no batch dimension; the model batches (max_batch_size ",
          max_batch_size, "), so every input's shape starts with its rows"));
    }
  }
  const HostTensorView& first = inputs.front();
  for (const HostTensorView& input : inputs) {
    if (input.shape[0] != first.shape[0]) {
      return absl::InvalidArgumentError(
          absl::StrCat("inputs '", first.name, "' and '", input.name, "' disagree on the batch ",
                       "dimension (", first.shape[0], " and ", input.shape[0],
                       " rows); every input of a request must have the same rows"));
    }
  }
  if (first.shape[0] > max_batch_size) {
    return absl::InvalidArgumentError(absl::StrCat("the request has ", first.shape[0],
                                                   " rows but the model's max_batch_size is ",
                                                   max_batch_size));
  }
  return first.shape[0];
}

absl::Status DynamicBatcher::Enqueue(PendingRequest* request) {
  ASSIGN_OR_RETURN(request->rows_, BatchRows(request->inputs, options_.batching.max_batch_size));
  request->key_ = BatchKey(request->stage, request->inputs);
  request->enqueued_ = absl::Now();
  if (options_.batching.default_timeout > absl::ZeroDuration()) {
    request->deadline =
        std::min(request->deadline, request->enqueued_ + options_.batching.default_timeout);
  }
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the model version is being unloaded");
  if (skipping_waits_ && ++since_probe_ >= kProbeInterval) {
    since_probe_ = 0;
    request->probe_ = true;
  }
  if (direct_allowed_ && queue_.empty() && busy_ < static_cast<int>(options_.instances.size()) &&
      (options_.batching.max_queue_delay == absl::ZeroDuration() || SkipsWait(*request))) {
    ++busy_;
    running_rows_ += request->rows_;
    const int64_t rows = request->rows_;  // `request` may be gone once it has run
    mu_.Unlock();
    RunOnCallingThread(request);
    mu_.Lock();
    --busy_;
    running_rows_ -= rows;
    ++generation_;
    return absl::OkStatus();
  }
  if (queue_.size() >= options_.batching.max_queue_size) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the model's queue is full (", options_.batching.max_queue_size, " requests waiting)"));
  }
  queue_.push_back(request);
  ++generation_;
  enqueued_.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

void DynamicBatcher::AwaitDone(PendingRequest* request) const {
  if (options_.spin_before_block > absl::ZeroDuration() &&
      PollFor(options_.spin_before_block, [request] { return request->done.HasBeenNotified(); })) {
    return;
  }
  request->done.WaitForNotification();
}

void DynamicBatcher::DropDeadRequests() {
  const absl::Time now = absl::Now();
  for (auto it = queue_.begin(); it != queue_.end();) {
    PendingRequest* request = *it;
    absl::Status why;
    if (now >= request->deadline) {
      why = absl::DeadlineExceededError(absl::StrCat("the request's deadline passed after ",
                                                     absl::FormatDuration(now - request->enqueued_),
                                                     " in the queue; it did not run"));
    } else if (request->cancelled && request->cancelled()) {
      why = absl::CancelledError(
          "the request was cancelled (the client went away, or the server's shutdown timeout "
          "passed); it did not run");
    }
    if (why.ok()) {
      ++it;
      continue;
    }
    it = queue_.erase(it);
    request->result = why;
    request->queue_time = now - request->enqueued_;
    statistics_->ObserveQueue(ServedStageIndex(request->stage),
                              absl::ToDoubleSeconds(request->queue_time));
    request->done.Notify();
  }
}

// The requests that may close the next batch.
struct DynamicBatcher::BatchCandidate {
  const PendingRequest* oldest = nullptr;  // the front of the queue
  // The oldest request and the queued requests that can share its batch, in queue order.
  std::vector<std::list<PendingRequest*>::iterator> mates;
  int64_t rows = 0;       // the mates' rows together
  bool full = false;      // the rows reach max_batch_size, or the model does not batch
  absl::Time oldest_due;  // when the oldest request has waited max_queue_delay
  bool due = false;       // oldest_due has passed, or the batcher is stopping
};

// Fair share's view of the load when a batch may close.
struct DynamicBatcher::LoadInSight {
  int64_t queued_rows = 0;  // queued rows that could join the candidate's batch
  double recent_load = 0;   // recent_load_, faded to `now`
  absl::Time now;
};

std::vector<PendingRequest*> DynamicBatcher::NextBatch() {
  absl::MutexLock lock(&mu_);
  while (true) {
    SpinForWork();
    AwaitWork();
    DropDeadRequests();
    if (queue_.empty()) {
      if (stopping_) return {};
      continue;
    }
    const BatchCandidate candidate = GatherBatchMates();
    const LoadInSight load = ObserveLoad(candidate);
    const size_t take = RequestsToTake(candidate, load);
    if (take > 0) {
      LearnFromBatch(candidate, take);
      return CloseBatch(candidate, take, load);
    }
    AwaitBatchMates(candidate.oldest_due);
  }
}

void DynamicBatcher::SpinForWork() {
  if (options_.spin_before_block <= absl::ZeroDuration() || HasWork()) return;
  const uint64_t seen = enqueued_.load(std::memory_order_acquire);
  mu_.Unlock();
  PollFor(options_.spin_before_block,
          [this, seen] { return enqueued_.load(std::memory_order_acquire) != seen; });
  mu_.Lock();
}

bool DynamicBatcher::HasWork() const {
  return stopping_ || (!queue_.empty() && busy_ < static_cast<int>(options_.instances.size()));
}

void DynamicBatcher::AwaitWork() { mu_.Await(absl::Condition(this, &DynamicBatcher::HasWork)); }

DynamicBatcher::BatchCandidate DynamicBatcher::GatherBatchMates() {
  BatchCandidate candidate;
  candidate.oldest = queue_.front();
  const int64_t max_rows = MaxBatchRows(options_.batching);
  for (auto it = queue_.begin(); it != queue_.end() && candidate.rows < max_rows; ++it) {
    const PendingRequest& request = **it;
    if (request.key_ != candidate.oldest->key_ || candidate.rows + request.rows_ > max_rows) {
      continue;
    }
    candidate.mates.push_back(it);
    candidate.rows += request.rows_;
  }
  candidate.full = candidate.rows >= max_rows || options_.batching.max_batch_size == 0;
  candidate.oldest_due = candidate.oldest->enqueued_ + options_.batching.max_queue_delay;
  candidate.due = absl::Now() >= candidate.oldest_due || stopping_;
  return candidate;
}

DynamicBatcher::LoadInSight DynamicBatcher::ObserveLoad(const BatchCandidate& candidate) const {
  LoadInSight load;
  load.now = absl::Now();
  if (!options_.batching.fair_share) return load;
  // Only rows that could join this batch count as queued.
  for (const PendingRequest* request : queue_) {
    if (request->key_ == candidate.oldest->key_) load.queued_rows += request->rows_;
  }
  // The recent load fades with time (time constant kRecentLoadMemory), so that a busy
  // hour does not make the light traffic after it wait for rows that will not come.
  load.recent_load = recent_load_ * std::exp(-absl::ToDoubleSeconds(load.now - last_close_) /
                                             absl::ToDoubleSeconds(kRecentLoadMemory));
  return load;
}

size_t DynamicBatcher::RequestsToTake(const BatchCandidate& candidate,
                                      const LoadInSight& load) const {
  if (const size_t preferred = PreferredPrefix(candidate); preferred > 0) return preferred;
  if (candidate.full || candidate.due || SkipsWait(*candidate.oldest)) {
    return candidate.mates.size();
  }
  if (options_.batching.fair_share) return FairSharePrefix(candidate, load);
  return 0;
}

bool DynamicBatcher::SkipsWait(const PendingRequest& oldest) const {
  return skipping_waits_ && !oldest.probe_;
}

void DynamicBatcher::LearnFromBatch(const BatchCandidate& candidate, size_t take) {
  if (!options_.batching.adaptive_queue_delay ||
      options_.batching.max_queue_delay <= absl::ZeroDuration()) {
    return;
  }
  if (skipping_waits_) {
    // Only a probe's wait says whether waiting gathers: batches that queued up behind busy
    // instances form the same way without it.
    if (candidate.oldest->probe_ && take > 1) {
      skipping_waits_ = false;
      fruitless_waits_ = 0;
    }
    return;
  }
  // A lone request that waited out the whole delay: nothing came to join it.
  const bool fruitless = candidate.due && !candidate.full && take == 1 && !stopping_;
  fruitless_waits_ = fruitless ? fruitless_waits_ + 1 : 0;
  if (fruitless_waits_ >= kFruitlessWaitsToSkip) {
    skipping_waits_ = true;
    since_probe_ = 0;
  }
}

size_t DynamicBatcher::PreferredPrefix(const BatchCandidate& candidate) const {
  const std::vector<int>& preferred = options_.batching.preferred_batch_sizes;
  size_t take = 0;
  int64_t prefix = 0;
  for (size_t i = 0; i < candidate.mates.size(); ++i) {
    prefix += (*candidate.mates[i])->rows_;
    if (std::find(preferred.begin(), preferred.end(), prefix) != preferred.end()) take = i + 1;
  }
  return take;
}

size_t DynamicBatcher::FairSharePrefix(const BatchCandidate& candidate,
                                       const LoadInSight& load) const {
  // The batch holds as many rows as this instance would get if the rows in sight were
  // split evenly: those queued and running (whose clients will send again), or, when
  // more, the recent load — rows just answered are on their way back. Waiting longer
  // would only take rows from a later batch.
  const int64_t instances = static_cast<int64_t>(options_.instances.size());
  const int64_t in_sight =
      std::max<int64_t>(load.queued_rows + running_rows_, std::llround(load.recent_load));
  const int64_t share =
      std::min(MaxBatchRows(options_.batching), (in_sight + instances - 1) / instances);
  if (candidate.rows < share) return 0;
  size_t take = 0;
  for (int64_t prefix = 0; take < candidate.mates.size() && prefix < share; ++take) {
    prefix += (*candidate.mates[take])->rows_;
  }
  return take;
}

std::vector<PendingRequest*> DynamicBatcher::CloseBatch(const BatchCandidate& candidate,
                                                        size_t take, const LoadInSight& load) {
  std::vector<PendingRequest*> batch;
  int64_t batch_rows = 0;
  for (size_t i = 0; i < take; ++i) {
    batch_rows += (*candidate.mates[i])->rows_;
    batch.push_back(*candidate.mates[i]);
    queue_.erase(candidate.mates[i]);
  }
  ++busy_;
  // The load as the batch closes, smoothed over the last few batches.
  recent_load_ = (1 - kRecentLoadNewWeight) * load.recent_load +
                 kRecentLoadNewWeight * static_cast<double>(load.queued_rows + running_rows_);
  last_close_ = load.now;
  running_rows_ += batch_rows;
  return batch;
}

void DynamicBatcher::AwaitBatchMates(absl::Time oldest_due) {
  absl::Time wake = std::min(oldest_due, absl::Now() + kCancellationPollInterval);
  for (const PendingRequest* request : queue_) wake = std::min(wake, request->deadline);
  const uint64_t seen = generation_;
  auto changed = [this, seen]()
                     ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || generation_ != seen; };
  mu_.AwaitWithDeadline(absl::Condition(&changed), wake);
}

void DynamicBatcher::Worker(const BatcherOptions::Instance& instance) {
  absl::Status prepared = PrepareWorkerThread(instance.intra_op_threads, instance.device);
  if (!prepared.ok()) Log(LogLevel::kError, prepared.ToString());
  while (true) {
    std::vector<PendingRequest*> batch = NextBatch();
    if (batch.empty()) return;
    int64_t rows = 0;
    for (const PendingRequest* request : batch) rows += request->rows_;
    Execute(instance, std::move(batch));  // the requests may be gone after this
    absl::MutexLock lock(&mu_);
    --busy_;
    running_rows_ -= rows;
    ++generation_;
  }
}

void DynamicBatcher::RunOnCallingThread(PendingRequest* request) {
  // The first CPU instance's settings; every instance runs the same CPU model.
  const BatcherOptions::Instance& instance = options_.instances.front();
  thread_local int prepared_threads = -1;
  if (prepared_threads != instance.intra_op_threads) {
    absl::Status prepared = PrepareWorkerThread(instance.intra_op_threads, instance.device);
    if (!prepared.ok()) Log(LogLevel::kError, prepared.ToString());
    prepared_threads = instance.intra_op_threads;
  }
  Execute(instance, {request});
}

void DynamicBatcher::Execute(const BatcherOptions::Instance& instance,
                             std::vector<PendingRequest*> batch) {
  const absl::Time start = absl::Now();
  std::vector<BatchItem> items;
  int64_t rows = 0;
  for (PendingRequest* request : batch) {
    items.push_back({request->inputs, request->outputs,
                     RunLimits{.deadline = request->deadline, .cancelled = request->cancelled}});
    rows += request->rows_;
  }
  RunTrace trace;
  std::vector<absl::StatusOr<std::vector<HostTensor>>> results =
      instance.model->RunBatch(batch.front()->stage, items, &trace);
  const absl::Duration compute = absl::Now() - start;
  statistics_->AddTrace(trace);
  statistics_->execution_count.fetch_add(1, std::memory_order_relaxed);
  statistics_->inference_count.fetch_add(rows, std::memory_order_relaxed);
  statistics_->ObserveBatch(rows);
  for (size_t i = 0; i < batch.size(); ++i) {
    PendingRequest* request = batch[i];
    request->result = std::move(results[i]);
    request->queue_time = start - request->enqueued_;
    request->compute_time = compute;
    request->batch_rows = rows;
    const int stage = ServedStageIndex(request->stage);
    statistics_->ObserveQueue(stage, absl::ToDoubleSeconds(request->queue_time));
    statistics_->ObserveCompute(stage, absl::ToDoubleSeconds(compute));
    request->done.Notify();  // the request may be gone after this
  }
}

}  // namespace torchbricks::server
