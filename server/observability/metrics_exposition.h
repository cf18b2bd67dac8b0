// MetricsExposition: collects samples of Prometheus metric families and renders them in
// the text exposition format 0.0.4 (HELP and TYPE once per family, families in the order
// first added, label values escaped). Not thread-safe: one per scrape.
//
//   MetricsExposition out;
//   out.AddSample("torchbricks_requests_total", "Requests.", "counter", {{"code", "OK"}}, 3);
//   std::string text = out.Render();
#ifndef TORCHBRICKS_SERVER_OBSERVABILITY_METRICS_EXPOSITION_H_
#define TORCHBRICKS_SERVER_OBSERVABILITY_METRICS_EXPOSITION_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "server/observability/metrics_histogram.h"

namespace torchbricks::server {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class MetricsExposition {
 public:
  // A counter or gauge sample. `type` is "counter" or "gauge"; a family keeps the help and
  // type of its first sample.
  void AddSample(const std::string& name, const std::string& help, const std::string& type,
                 const MetricLabels& labels, double value);
  // The _bucket, _sum and _count samples of a histogram.
  void AddHistogram(const std::string& name, const std::string& help, const MetricLabels& labels,
                    const Histogram::Snapshot& snapshot);
  // Declares a family with no samples yet (so HELP and TYPE show before any traffic).
  void Declare(const std::string& name, const std::string& help, const std::string& type);

  std::string Render() const;

 private:
  struct Family {
    std::string help;
    std::string type;
    std::vector<std::string> lines;
  };
  Family& FamilyOf(const std::string& name, const std::string& help, const std::string& type);

  std::vector<std::string> order_;
  std::map<std::string, Family> families_;
};

// Prometheus' spelling of a sample value: integers without a decimal point, +Inf, NaN.
std::string FormatMetricValue(double value);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_OBSERVABILITY_METRICS_EXPOSITION_H_
