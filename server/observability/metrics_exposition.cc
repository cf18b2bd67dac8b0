#include "server/observability/metrics_exposition.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace torchbricks::server {
namespace {

// Backslashes and newlines escaped, as HELP text needs; label values also escape quotes.
std::string Escape(const std::string& text, bool quotes) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string LabelText(const MetricLabels& labels) {
  if (labels.empty()) return "";
  std::string text = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    absl::StrAppend(&text, i == 0 ? "" : ",", labels[i].first, "=\"",
                    Escape(labels[i].second, /*quotes=*/true), "\"");
  }
  return text + "}";
}

}  // namespace

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  return buffer;
}

MetricsExposition::Family& MetricsExposition::FamilyOf(const std::string& name,
                                                       const std::string& help,
                                                       const std::string& type) {
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.help = help;
    it->second.type = type;
    order_.push_back(name);
  }
  return it->second;
}

void MetricsExposition::Declare(const std::string& name, const std::string& help,
                                const std::string& type) {
  FamilyOf(name, help, type);
}

void MetricsExposition::AddSample(const std::string& name, const std::string& help,
                                  const std::string& type, const MetricLabels& labels,
                                  double value) {
  FamilyOf(name, help, type)
      .lines.push_back(absl::StrCat(name, LabelText(labels), " ", FormatMetricValue(value)));
}

void MetricsExposition::AddHistogram(const std::string& name, const std::string& help,
                                     const MetricLabels& labels,
                                     const Histogram::Snapshot& snapshot) {
  Family& family = FamilyOf(name, help, "histogram");
  for (size_t i = 0; i < snapshot.cumulative.size(); ++i) {
    MetricLabels with_le = labels;
    with_le.emplace_back(
        "le", i < snapshot.bounds.size() ? FormatMetricValue(snapshot.bounds[i]) : "+Inf");
    family.lines.push_back(
        absl::StrCat(name, "_bucket", LabelText(with_le), " ", snapshot.cumulative[i]));
  }
  family.lines.push_back(
      absl::StrCat(name, "_sum", LabelText(labels), " ", FormatMetricValue(snapshot.sum)));
  family.lines.push_back(absl::StrCat(name, "_count", LabelText(labels), " ", snapshot.count));
}

std::string MetricsExposition::Render() const {
  std::string text;
  for (const std::string& name : order_) {
    const Family& family = families_.at(name);
    absl::StrAppend(&text, "# HELP ", name, " ", Escape(family.help, /*quotes=*/false), "\n# TYPE ",
                    name, " ", family.type, "\n");
    for (const std::string& line : family.lines) absl::StrAppend(&text, line, "\n");
  }
  return text;
}

}  // namespace torchbricks::server
