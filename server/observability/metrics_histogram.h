// Histogram: a Prometheus histogram with fixed bucket bounds, observed without locks (one
// relaxed atomic add per observation plus a compare-and-swap on the sum). Thread-safe;
// Read() sees each bucket atomically, not all buckets at one instant.
#ifndef TORCHBRICKS_SERVER_OBSERVABILITY_METRICS_HISTOGRAM_H_
#define TORCHBRICKS_SERVER_OBSERVABILITY_METRICS_HISTOGRAM_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace torchbricks::server {

// Seconds, from 100 µs to 10 s.
const std::vector<double>& LatencyBuckets();
// Batch rows: 1, 2, 4, ... 256.
const std::vector<double>& BatchSizeBuckets();

class Histogram {
 public:
  struct Snapshot {
    std::vector<double> bounds;        // upper bounds, ascending, without +Inf
    std::vector<uint64_t> cumulative;  // bounds.size() + 1 counts; the last is +Inf
    uint64_t count = 0;
    double sum = 0;
  };

  explicit Histogram(const std::vector<double>& bounds = LatencyBuckets());
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double value);
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bucket, not cumulative
  std::atomic<double> sum_{0};
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_OBSERVABILITY_METRICS_HISTOGRAM_H_
