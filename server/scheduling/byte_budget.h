// ByteBudget: a bound on the bytes of requests held at once (memory admission). A request
// takes its size from the budget before it is decoded and gives it back when answered;
// one that does not fit is refused at once rather than queued, so a burst of large
// requests cannot take the process's memory. Thread-safe.
//
//   ByteReservation held(&budget, request.ByteSizeLong());
//   if (!held.ok()) return RESOURCE_EXHAUSTED;
#ifndef TORCHBRICKS_SERVER_SCHEDULING_BYTE_BUDGET_H_
#define TORCHBRICKS_SERVER_SCHEDULING_BYTE_BUDGET_H_

#include <atomic>
#include <cstdint>

namespace torchbricks::server {

class ByteBudget {
 public:
  // `limit` bytes may be held at once; 0 means no bound.
  explicit ByteBudget(uint64_t limit = 0) : limit_(limit) {}
  ByteBudget(const ByteBudget&) = delete;
  ByteBudget& operator=(const ByteBudget&) = delete;

  // Sets the bound; call before requests arrive.
  void set_limit(uint64_t limit) { limit_ = limit; }
  uint64_t limit() const { return limit_; }
  uint64_t held() const { return held_.load(std::memory_order_relaxed); }

  // True, and `bytes` are held, when they fit beside what is held already. A request
  // larger than the whole limit never fits.
  bool TryTake(uint64_t bytes) {
    uint64_t now = held_.load(std::memory_order_relaxed);
    do {
      if (limit_ != 0 && (bytes > limit_ || now > limit_ - bytes)) return false;
    } while (!held_.compare_exchange_weak(now, now + bytes, std::memory_order_relaxed));
    return true;
  }
  // Gives back bytes that TryTake() granted.
  void Give(uint64_t bytes) { held_.fetch_sub(bytes, std::memory_order_relaxed); }

 private:
  uint64_t limit_;
  std::atomic<uint64_t> held_{0};
};

// Holds bytes of a ByteBudget for one scope.
class ByteReservation {
 public:
  ByteReservation(ByteBudget* budget, uint64_t bytes)
      : budget_(budget), bytes_(bytes), ok_(budget->TryTake(bytes)) {}
  ~ByteReservation() {
    if (ok_) budget_->Give(bytes_);
  }
  ByteReservation(const ByteReservation&) = delete;
  ByteReservation& operator=(const ByteReservation&) = delete;
  bool ok() const { return ok_; }

 private:
  ByteBudget* budget_;
  uint64_t bytes_;
  bool ok_;
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_SCHEDULING_BYTE_BUDGET_H_
