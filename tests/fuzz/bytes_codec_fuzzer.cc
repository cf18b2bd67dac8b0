// Fuzz target: the BYTES codec in its three forms. The input is a BYTES tensor in the
// protocol's raw layout (4-byte little-endian length, then the bytes, per element).
// Invariants, for data that splits: appending the elements again gives the input back;
// the core's rows tensor (PackBytes) unpacks to the same elements; and the server's codec
// accepts it as a raw BYTES input of that many elements, viewed in place. Data that does
// not split is refused by the codec too. The same bytes, read as a rows tensor (the first
// byte choosing 1..8 rows), must unpack to elements that fit their rows or be refused.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "core/execution/image_io.h"
#include "core/graph/bytes_elements.h"
#include "server/grpc/infer_codec.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using torchbricks::AppendBytesElement;
using torchbricks::SplitBytesElements;

void CheckServerCodec(const std::string& data,
                      const absl::StatusOr<std::vector<absl::string_view>>& split) {
  inference::ModelInferRequest request;
  auto* input = request.add_inputs();
  input->set_name("b");
  input->set_datatype("BYTES");
  input->add_shape(split.ok() ? static_cast<int64_t>(split->size()) : 1);
  request.add_raw_input_contents(data);
  std::deque<std::string> scratch;
  auto views = torchbricks::server::DecodeInputs(request, &scratch);
  FUZZ_CHECK(views.ok() == split.ok());
  if (!views.ok()) return;
  FUZZ_CHECK(views->size() == 1);
  FUZZ_CHECK((*views)[0].data.data() == request.raw_input_contents(0).data());
  FUZZ_CHECK((*views)[0].data.size() == data.size());
}

// `data` after its first byte as a uint8 [rows, width] tensor, rows from the first byte.
void CheckRows(const std::string& data) {
  if (data.empty()) return;
  const int64_t rows = static_cast<unsigned char>(data[0]) % 8 + 1;
  const int64_t width = static_cast<int64_t>(data.size() - 1) / rows;
  at::Tensor tensor = at::empty({rows, width}, at::kByte);
  if (rows * width > 0) std::memcpy(tensor.data_ptr<uint8_t>(), data.data() + 1, rows * width);
  absl::StatusOr<std::vector<std::string>> unpacked = torchbricks::UnpackBytes(tensor, "rows");
  if (!unpacked.ok()) {
    FUZZ_CHECK(unpacked.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(width >= 4);
  FUZZ_CHECK(static_cast<int64_t>(unpacked->size()) == rows);
  for (const std::string& element : *unpacked) {
    FUZZ_CHECK(static_cast<int64_t>(element.size()) <= width - 4);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string data(reinterpret_cast<const char*>(bytes), size);
  const absl::StatusOr<std::vector<absl::string_view>> split = SplitBytesElements(data, "b");
  CheckServerCodec(data, split);
  CheckRows(data);
  if (!split.ok()) {
    FUZZ_CHECK(split.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  std::string again;
  for (absl::string_view element : *split) AppendBytesElement(element, &again);
  FUZZ_CHECK(again == data);

  // The rows tensor may take up to four times the bytes; the server refuses more, so
  // only inputs the padding check accepts are packed.
  if (!torchbricks::CheckBytesPadding(*split, "b").ok()) return 0;
  const at::Tensor rows = torchbricks::PackBytes(absl::MakeConstSpan(*split));
  absl::StatusOr<std::vector<std::string>> unpacked = torchbricks::UnpackBytes(rows, "b");
  FUZZ_CHECK(unpacked.ok());
  FUZZ_CHECK(unpacked->size() == split->size());
  for (size_t i = 0; i < split->size(); ++i) FUZZ_CHECK((*unpacked)[i] == (*split)[i]);
  return 0;
}
