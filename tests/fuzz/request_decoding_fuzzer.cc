// Fuzz target: request decoding. The input is a serialized inference::ModelInferRequest,
// as a client's bytes reach the server; it goes through StageOfRequest and
// NormalizeRequest against a version whose servable is the test fake (which accepts every
// input, so all checks exercised here are the codec's). Invariants for a normalized
// request: one view per input, each exactly the bytes its shape and datatype need (BYTES:
// elements that split and match the shape), requested outputs without repeats.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "core/graph/bytes_elements.h"
#include "core/graph/data_types.h"
#include "server/grpc/infer_codec.h"
#include "server/grpc/infer_request.h"
#include "server/repository/model_version.h"
#include "server/scheduling/pending_request.h"
#include "server/testing/fake_servable_model.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using torchbricks::HostTensorView;
using torchbricks::package::TYPE_STRING;

class AcceptingModel : public torchbricks::server::testing::FakeServableModel {
 public:
  absl::StatusOr<std::vector<torchbricks::HostTensor>> Run(torchbricks::Stage,
                                                           absl::Span<const HostTensorView>,
                                                           absl::Span<const std::string>,
                                                           torchbricks::RunTrace*) const override {
    return std::vector<torchbricks::HostTensor>();
  }
};

const torchbricks::server::ModelVersion& Version() {
  static const auto* version = [] {
    auto* v = new torchbricks::server::ModelVersion();
    v->model_name = "fuzz_model";
    v->version = 1;
    v->version_string = "1";
    v->servable = std::make_unique<AcceptingModel>();
    return v;
  }();
  return *version;
}

void CheckView(const HostTensorView& view) {
  for (int64_t dim : view.shape) FUZZ_CHECK(dim >= 0);
  const std::optional<int64_t> count = torchbricks::ShapeElements(view.shape);
  FUZZ_CHECK(count.has_value());
  const int64_t elements = *count;
  if (view.data_type == TYPE_STRING) {
    auto parts = torchbricks::SplitBytesElements(view.data, view.name);
    FUZZ_CHECK(parts.ok());
    FUZZ_CHECK(static_cast<int64_t>(parts->size()) == elements);
  } else {
    FUZZ_CHECK(torchbricks::ElementSize(view.data_type) > 0);
    FUZZ_CHECK(static_cast<int64_t>(view.data.size()) ==
               elements * torchbricks::ElementSize(view.data_type));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<torchbricks::Stage> stage = torchbricks::server::StageOfRequest(request);
  if (!stage.ok()) {
    FUZZ_CHECK(stage.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  std::deque<std::string> scratch;
  torchbricks::server::PendingRequest pending;
  const absl::Status status = torchbricks::server::NormalizeRequest(nullptr, request, *stage,
                                                                    Version(), &scratch, &pending);
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(pending.stage == *stage);
  FUZZ_CHECK(static_cast<int>(pending.inputs.size()) == request.inputs_size());
  for (const HostTensorView& view : pending.inputs) CheckView(view);
  absl::flat_hash_set<std::string> outputs(pending.outputs.begin(), pending.outputs.end());
  FUZZ_CHECK(outputs.size() == pending.outputs.size());
  FUZZ_CHECK(pending.deadline == absl::InfiniteFuture());
  return 0;
}
