// Fuzz target: a batch never answers one request with another's rows (issue 20). The input
// describes 1-6 requests to the fixture package keyword_inputs (two batched inputs x and y,
// output d = y - x row by row), each input with its own row count (so requests whose inputs
// disagree, as an attacker's would, are common) and fuzzer-chosen values. Requests that
// BatchRows() refuses never reach a batch, as in the server; the rest run together through
// ServableModel::RunBatch. Invariant: every answer is exactly what that request gets when it
// runs alone, and a request is answered OK only when it is OK alone.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/servable/servable_model.h"
#include "core/testing/package_fixtures.h"
#include "server/scheduling/dynamic_batcher.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using torchbricks::BatchItem;
using torchbricks::HostTensor;
using torchbricks::HostTensorView;

constexpr int64_t kMaxBatchSize = 8;
constexpr int64_t kColumns = 3;  // keyword_inputs takes x and y of [B, 3]

const torchbricks::ServableModel& Model() {
  static const auto* model = [] {
    auto loaded = torchbricks::LoadServableModel(
        {.version_dir = torchbricks::testing::FixturePackage("keyword_inputs"), .warmup_runs = 0});
    FUZZ_CHECK(loaded.ok());
    return loaded->release();
  }();
  return *model;
}

// Reads the fuzz input a byte at a time; zeros once it is used up.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t Next() { return at_ < size_ ? data_[at_++] : 0; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

struct Request {
  std::vector<std::string> bytes;  // owns what the views borrow
  std::vector<HostTensorView> views;
};

std::unique_ptr<Request> MakeRequest(ByteReader* reader) {
  auto request = std::make_unique<Request>();
  request->bytes.reserve(2);
  for (const char* name : {"x", "y"}) {
    const int64_t rows = reader->Next() % (kMaxBatchSize + 3);  // past the maximum too
    std::vector<float> values(rows * kColumns);
    for (float& value : values) value = static_cast<float>(static_cast<int8_t>(reader->Next()));
    request->bytes.emplace_back(reinterpret_cast<const char*>(values.data()),
                                values.size() * sizeof(float));
    request->views.push_back(
        {name, torchbricks::package::TYPE_FP32, {rows, kColumns}, request->bytes.back()});
  }
  return request;
}

bool SameTensors(const std::vector<HostTensor>& a, const std::vector<HostTensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].shape != b[i].shape || a[i].data != b[i].data) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteReader reader(data, size);
  const int count = 1 + reader.Next() % 6;
  std::vector<std::unique_ptr<Request>> admitted;
  for (int i = 0; i < count; ++i) {
    std::unique_ptr<Request> request = MakeRequest(&reader);
    auto rows = torchbricks::server::BatchRows(request->views, kMaxBatchSize);
    if (!rows.ok()) {
      FUZZ_CHECK(request->views[0].shape[0] != request->views[1].shape[0] ||
                 request->views[0].shape[0] > kMaxBatchSize);
      continue;
    }
    FUZZ_CHECK(*rows == request->views[0].shape[0] && *rows == request->views[1].shape[0]);
    admitted.push_back(std::move(request));
  }
  if (admitted.empty()) return 0;
  std::vector<BatchItem> items;
  for (const auto& request : admitted) items.push_back({request->views, {}});
  const auto batched = Model().RunBatch(torchbricks::Stage::kInference, items, nullptr);
  FUZZ_CHECK(batched.size() == items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const auto alone = Model().Run(torchbricks::Stage::kInference, items[i].inputs, {}, nullptr);
    FUZZ_CHECK(batched[i].ok() == alone.ok());
    if (alone.ok()) FUZZ_CHECK(SameTensors(*batched[i], *alone));
  }
  return 0;
}
