#include "server/scheduling/calibration.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "base/status_macros.h"
#include "core/graph/data_types.h"

namespace torchbricks::server {
namespace {

// The value of every FP32 and FP64 element of a synthetic input.
constexpr float kSyntheticFloat = 0.5f;

// What one calibration thread measured.
struct ThreadResult {
  absl::Status status;
  std::vector<absl::Duration> runs;
  absl::Time end;
};

// Fills `data` (elements of `type`) with the synthetic value.
void FillSynthetic(package::DataType type, std::string* data) {
  if (type == package::TYPE_FP32) {
    for (size_t at = 0; at + sizeof(float) <= data->size(); at += sizeof(float)) {
      std::memcpy(data->data() + at, &kSyntheticFloat, sizeof(float));
    }
  } else if (type == package::TYPE_FP64) {
    const double value = kSyntheticFloat;
    for (size_t at = 0; at + sizeof(double) <= data->size(); at += sizeof(double)) {
      std::memcpy(data->data() + at, &value, sizeof(double));
    }
  }
}

std::vector<HostTensorView> Views(const std::vector<HostTensor>& tensors) {
  std::vector<HostTensorView> views;
  for (const HostTensor& tensor : tensors) {
    views.push_back({tensor.name, tensor.data_type, tensor.shape, tensor.data});
  }
  return views;
}

// One thread of a point: prepares like an instance, runs once unmeasured, waits for `go`,
// then runs at least once and until `deadline` (both set before `go`) or until it has enough.
void MeasureOnThread(const ServableModel& model, const CalibrationOptions& options,
                     const Layout& layout, const std::vector<HostTensorView>& inputs,
                     absl::BlockingCounter* ready, const absl::Notification* go,
                     const absl::Time* start, const absl::Time* deadline, ThreadResult* result) {
  result->status = PrepareWorkerThread(layout.intra_op_threads, "cpu");
  if (result->status.ok()) {
    result->status = model.Run(options.stage, inputs, {}, nullptr).status();
  }
  ready->DecrementCount();
  go->WaitForNotification();
  while (result->status.ok()) {
    const absl::Time now = absl::Now();
    const bool enough = static_cast<int>(result->runs.size()) >= options.enough_runs &&
                        now - *start >= options.enough_time;
    if (!result->runs.empty() && (now >= *deadline || enough)) break;
    result->status = model.Run(options.stage, inputs, {}, nullptr).status();
    result->runs.push_back(absl::Now() - now);
  }
  result->end = absl::Now();
}

// Measures one point: `layout.instances` threads running `inputs` at once. Once every
// thread has warmed up, the point gets its share of what is left until `budget_end`:
// an even split between it and the `points_left` - 1 points after it.
absl::StatusOr<CalibrationPoint> MeasurePoint(const ServableModel& model,
                                              const CalibrationOptions& options,
                                              const Layout& layout, int64_t batch,
                                              const std::vector<HostTensorView>& inputs,
                                              absl::Time budget_end, int64_t points_left) {
  std::vector<ThreadResult> results(layout.instances);
  absl::BlockingCounter ready(layout.instances);
  absl::Notification go;
  absl::Time start;
  absl::Time deadline;
  std::vector<std::thread> threads;
  for (int i = 0; i < layout.instances; ++i) {
    threads.emplace_back(MeasureOnThread, std::cref(model), std::cref(options), std::cref(layout),
                         std::cref(inputs), &ready, &go, &start, &deadline, &results[i]);
  }
  ready.Wait();
  start = absl::Now();
  deadline = start + std::max(budget_end - start, absl::ZeroDuration()) / points_left;
  go.Notify();
  for (std::thread& thread : threads) thread.join();

  CalibrationPoint point{.layout = layout, .batch = batch};
  std::vector<absl::Duration> runs;
  absl::Time end = start;
  for (const ThreadResult& result : results) {
    RETURN_IF_ERROR(result.status);
    runs.insert(runs.end(), result.runs.begin(), result.runs.end());
    end = std::max(end, result.end);
  }
  point.runs = static_cast<int>(runs.size());
  if (runs.empty() || end <= start) return point;
  std::nth_element(runs.begin(), runs.begin() + runs.size() / 2, runs.end());
  point.run_time = runs[runs.size() / 2];
  point.rows_per_second = static_cast<double>(batch) * static_cast<double>(runs.size()) /
                          absl::ToDoubleSeconds(end - start);
  return point;
}

}  // namespace

absl::StatusOr<std::vector<HostTensor>> SyntheticInputs(const ServableModel& model, Stage stage,
                                                        int64_t rows) {
  std::vector<HostTensor> inputs;
  for (int index : model.plan(stage).required_inputs()) {
    const ValueSpec& spec = model.graph().inputs()[index];
    auto refuse = [&](const std::string& why) {
      return absl::FailedPreconditionError(
          absl::StrCat("no synthetic input '", spec.name, "' can be made: ", why));
    };
    if (spec.encoded_image || spec.data_type == package::TYPE_STRING) {
      return refuse("it holds encoded bytes");
    }
    const int64_t element_size = ElementSize(spec.data_type);
    if (element_size <= 0) return refuse("its data type is not fixed");
    if (spec.dims.empty()) return refuse("it declares no dims");
    HostTensor tensor{.name = spec.name, .data_type = spec.data_type, .shape = {rows}};
    int64_t elements = rows;
    for (size_t d = 1; d < spec.dims.size(); ++d) {
      if (spec.dims[d] < 0) return refuse(absl::StrCat("dimension ", d, " is variable"));
      tensor.shape.push_back(spec.dims[d]);
      elements *= spec.dims[d];
    }
    tensor.data.assign(static_cast<size_t>(elements * element_size), '\0');
    FillSynthetic(spec.data_type, &tensor.data);
    inputs.push_back(std::move(tensor));
  }
  return inputs;
}

absl::StatusOr<std::vector<CalibrationPoint>> Calibrate(const ServableModel& model,
                                                        const CalibrationOptions& options) {
  const absl::Time deadline = absl::Now() + options.budget;
  const size_t total = options.layouts.size() * options.batches.size();
  std::vector<CalibrationPoint> points;
  size_t done = 0;
  for (int64_t batch : options.batches) {
    if (absl::Now() >= deadline) break;  // before making a batch's inputs
    ASSIGN_OR_RETURN(const std::vector<HostTensor> tensors,
                     SyntheticInputs(model, options.stage, batch));
    const std::vector<HostTensorView> inputs = Views(tensors);
    for (const Layout& layout : options.layouts) {
      if (absl::Now() >= deadline) break;
      ASSIGN_OR_RETURN(CalibrationPoint point,
                       MeasurePoint(model, options, layout, batch, inputs, deadline,
                                    static_cast<int64_t>(total - done)));
      ++done;
      if (point.runs > 0) points.push_back(point);
    }
  }
  if (points.empty()) {
    return absl::DeadlineExceededError(absl::StrCat("the calibration budget of ",
                                                    absl::FormatDuration(options.budget),
                                                    " ended before a point was measured"));
  }
  return points;
}

}  // namespace torchbricks::server
