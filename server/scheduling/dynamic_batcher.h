// DynamicBatcher: the scheduler of one model version. Requests wait in one bounded queue;
// worker threads (one per model instance) take the oldest request and the queued requests
// that can share its batch (same stage, input names, dtypes and sizes past dimension 0),
// run them as one, and hand each its own rows. A batch closes when it reaches
// max_batch_size rows, when its rows make a preferred size, when the oldest request has
// waited max_queue_delay, or — with the fair-share policy — when it holds its instance's
// share of the rows in sight (queued plus running; see BatchPolicy::fair_share). With
// BatchPolicy::adaptive_queue_delay, a batcher whose waits gather nothing stops waiting
// until requests come together again. Requests whose
// deadline passed or whose client went away are answered without running. Thread-safe.
//
// Ownership: Enqueue() borrows the PendingRequest (pending_request.h); on OK the batcher notifies
// its `done` exactly once, after which it no longer touches it. On error nothing was queued.
#ifndef TORCHBRICKS_SERVER_SCHEDULING_DYNAMIC_BATCHER_H_
#define TORCHBRICKS_SERVER_SCHEDULING_DYNAMIC_BATCHER_H_

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/servable/servable_model.h"
#include "server/observability/version_stats.h"
#include "server/scheduling/pending_request.h"
#include "server/scheduling/scheduling_plan.h"

namespace torchbricks::server {

// Adaptive queue delay (BatchPolicy::adaptive_queue_delay): the batches in a row that closed
// with nothing but the request that waited out the delay, after which batches stop waiting;
// and, while they do, one request in this many enqueued still waits (a probe), whose batch,
// if others joined it, makes batches wait again. tests/python/test_server_batching.py counts
// requests with the same two numbers.
inline constexpr int kFruitlessWaitsToSkip = 4;
inline constexpr int kProbeInterval = 256;

struct BatcherOptions {
  BatchPolicy batching;
  // Allows Enqueue()'s fast path (see there).
  bool run_on_caller_when_idle = true;
  // Spin-before-block: how long a worker with nothing to run polls the queue, and a caller
  // in AwaitDone() polls for its answer, before blocking; zero blocks at once. Above zero
  // the fast path is off, so that a polling worker, on a core that has not gone idle, runs
  // the request. Costs up to this much CPU per idle worker after each batch
  // (docs/PERFORMANCE.md, "Spin-before-block").
  absl::Duration spin_before_block = absl::ZeroDuration();

  struct Instance {
    const ServableModel* model = nullptr;  // borrowed; must outlive the batcher
    std::string device = "cpu";
    int intra_op_threads = 0;
  };
  std::vector<Instance> instances;  // at least one
};

class DynamicBatcher {
 public:
  // Starts one worker per instance. InvalidArgument for no instances or a null model.
  static absl::StatusOr<std::unique_ptr<DynamicBatcher>> Create(BatcherOptions options,
                                                                VersionStats* statistics);
  // Runs what is queued, then stops the workers.
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Queues `request` (see the ownership note above). ResourceExhausted when the queue is
  // full; InvalidArgument when its inputs do not make rows (BatchRows()).
  // When nothing is queued, an instance is idle, the instances run on the CPU and there is
  // no queue delay to wait out (none is set, or the adaptive delay skips it), the request runs at
  // once on the calling thread (a batch of one either way) and `done` is notified before Enqueue
  // returns: this saves two thread hand-offs on a lightly loaded server.
  absl::Status Enqueue(PendingRequest* request);

  size_t queued() const;

  // Waits until `request`, enqueued, is answered (its `done`): polls for up to
  // spin_before_block first.
  void AwaitDone(PendingRequest* request) const;

 private:
  DynamicBatcher(BatcherOptions options, VersionStats* statistics)
      : options_(std::move(options)), statistics_(statistics) {}

  // The oldest queued request and the queued requests that could share its batch
  // (dynamic_batcher.cc).
  struct BatchCandidate;
  // What fair share weighs a batch against (dynamic_batcher.cc).
  struct LoadInSight;

  void Worker(const BatcherOptions::Instance& instance);
  // Takes the next batch, waiting as the rules say. Empty when stopping with an empty queue.
  std::vector<PendingRequest*> NextBatch();

  // NextBatch()'s steps, in order; all run under mu_.
  // With spin_before_block, while there is nothing to run: releases mu_ and polls enqueued_
  // until a request is queued or the spin is over.
  void SpinForWork() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A request and a free instance to run it, or the batcher stopping.
  bool HasWork() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Blocks until HasWork().
  void AwaitWork() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers queued requests that expired or were cancelled.
  void DropDeadRequests() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The oldest request and its batch-mates, in queue order, up to max_batch_size rows.
  // The queue must not be empty.
  BatchCandidate GatherBatchMates() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The time now and, with fair share, the load the candidate's batch is weighed against.
  LoadInSight ObserveLoad(const BatchCandidate& candidate) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How many of the candidate's requests (a prefix) to send now; 0 to wait for more.
  size_t RequestsToTake(const BatchCandidate& candidate, const LoadInSight& load) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The longest prefix of the candidate whose rows make a preferred batch size; 0 for none.
  size_t PreferredPrefix(const BatchCandidate& candidate) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The prefix that holds this instance's fair share of the rows in sight, or 0 while the
  // candidate holds fewer rows than that share.
  size_t FairSharePrefix(const BatchCandidate& candidate, const LoadInSight& load) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a batch led by `oldest` closes without waiting for mates: the adaptive delay
  // skips waits and `oldest` is not a probe.
  bool SkipsWait(const PendingRequest& oldest) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The adaptive delay learns from a batch about to close with `take` of the candidate's
  // requests: a wait that gathered nothing counts towards skipping waits, any other batch
  // starts the count again; while waits are skipped, a probe's batch of several requests
  // ends the skipping.
  void LearnFromBatch(const BatchCandidate& candidate, size_t take)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the candidate's first `take` requests off the queue as a running batch.
  std::vector<PendingRequest*> CloseBatch(const BatchCandidate& candidate, size_t take,
                                          const LoadInSight& load)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Releases mu_ until the queue changes, the batcher stops, the oldest request is due
  // (`oldest_due`), a queued request's deadline comes, or it is time to look for cancelled
  // requests.
  void AwaitBatchMates(absl::Time oldest_due) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void Execute(const BatcherOptions::Instance& instance, std::vector<PendingRequest*> batch);
  // Enqueue()'s fast path: runs `request` alone on this thread.
  void RunOnCallingThread(PendingRequest* request);

  const BatcherOptions options_;
  bool direct_allowed_ = false;     // set once in Create()
  VersionStats* const statistics_;  // borrowed; outlives the batcher
  mutable absl::Mutex mu_;
  std::list<PendingRequest*> queue_ ABSL_GUARDED_BY(mu_);
  // Bumped on every enqueue and every finished batch: what a waiting worker wakes for.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  // Requests ever queued; what a spinning worker reads without mu_.
  std::atomic<uint64_t> enqueued_{0};
  // Batches running now, on workers or on callers' threads; at most instances.size().
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  // Rows of the batches running now.
  int64_t running_rows_ ABSL_GUARDED_BY(mu_) = 0;
  // Fair share: rows queued and running when recent batches closed, smoothed, as of
  // last_close_ (it fades with the time since).
  double recent_load_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_close_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Adaptive delay: waits in a row that gathered nothing; whether waits are skipped now; and
  // the requests since the last probe.
  int fruitless_waits_ ABSL_GUARDED_BY(mu_) = 0;
  bool skipping_waits_ ABSL_GUARDED_BY(mu_) = false;
  int since_probe_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

// A key that is equal exactly for requests that may share a batch.
std::string BatchKey(Stage stage, const std::vector<HostTensorView>& inputs);

// The rows of a request to a model with `max_batch_size`: 1 when the model does not batch
// (max_batch_size 0); else the size of dimension 0, which every input must share (a batch
// is split back by each request's rows, so inputs that disagree would hand one request's
// rows to another). InvalidArgument, naming the inputs, for an input without a batch
// dimension, inputs that disagree on it, or more rows than max_batch_size.
absl::StatusOr<int64_t> BatchRows(const std::vector<HostTensorView>& inputs,
                                  int64_t max_batch_size);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_SCHEDULING_DYNAMIC_BATCHER_H_
