// Test-only: a ServableModel with an empty graph (or one a test gives) whose Run() a test
// supplies. Validate() accepts everything and RunBatch() runs each item on its own, so a fake
// only says what one run returns.
#ifndef TORCHBRICKS_SERVER_TESTING_FAKE_SERVABLE_MODEL_H_
#define TORCHBRICKS_SERVER_TESTING_FAKE_SERVABLE_MODEL_H_

#include <string>
#include <utility>
#include <vector>

#include "core/servable/servable_model.h"

namespace torchbricks::server::testing {

class FakeServableModel : public ServableModel {
 public:
  FakeServableModel() = default;
  // A fake whose graph() is `graph` (its plans stay empty).
  explicit FakeServableModel(BrickGraph graph) : graph_(std::move(graph)) {}

  absl::Status Validate(Stage, absl::Span<const HostTensorView>,
                        absl::Span<const std::string>) const override {
    return absl::OkStatus();
  }
  std::vector<absl::StatusOr<std::vector<HostTensor>>> RunBatch(Stage stage,
                                                                absl::Span<const BatchItem> items,
                                                                RunTrace* trace) const override {
    std::vector<absl::StatusOr<std::vector<HostTensor>>> results;
    for (const BatchItem& item : items) {
      results.push_back(Run(stage, item.inputs, item.outputs, trace));
    }
    return results;
  }
  std::vector<ValueSpec> OutputSpecs(Stage) const override { return {}; }
  const BrickGraph& graph() const override { return graph_; }
  const StagePlan& plan(Stage) const override { return plan_; }
  std::string Mermaid(Stage) const override { return ""; }

 private:
  BrickGraph graph_;
  StagePlan plan_;
};

}  // namespace torchbricks::server::testing

#endif  // TORCHBRICKS_SERVER_TESTING_FAKE_SERVABLE_MODEL_H_
