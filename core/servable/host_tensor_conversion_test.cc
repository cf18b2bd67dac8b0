// Host tensor conversions: byte-size checks, BYTES layout both ways, borrowing.
#include "core/servable/host_tensor_conversion.h"

#include "core/execution/image_io.h"
#include "core/graph/bytes_elements.h"
#include "core/graph/data_types.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace torchbricks {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(HostTensorsTest, ByteSizeMustMatchShapeAndType) {
  const std::string bytes(24, '\0');
  EXPECT_TRUE(CheckByteSize({"x", package::TYPE_FP32, {2, 3}, bytes}).ok());
  absl::Status wrong = CheckByteSize({"x", package::TYPE_FP32, {2, 4}, bytes});
  EXPECT_EQ(wrong.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(wrong.message()), HasSubstr("input 'x' has 24 bytes"));
  EXPECT_THAT(std::string(CheckByteSize({"x", package::TYPE_FP32, {-1, 6}, bytes}).message()),
              HasSubstr("negative dimension"));
  EXPECT_THAT(std::string(CheckByteSize({"x", package::TYPE_UINT32, {6}, bytes}).message()),
              HasSubstr("no brick can take"));
}

// A shape whose element count overflows int64 used to wrap (to 0 for [2^32, 2^32]) and
// pass the byte-size check with no bytes (tests/fuzz/request_decoding_fuzzer's find).
TEST(HostTensorsTest, ShapesOfTooManyElementsAreRefusedWithoutOverflow) {
  const int64_t huge = int64_t{1} << 32;
  for (package::DataType type : {package::TYPE_FP32, package::TYPE_STRING}) {
    absl::Status status = CheckByteSize({"x", type, {huge, huge}, ""});
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), HasSubstr("elements"));
  }
  EXPECT_EQ(NumElements({"x", package::TYPE_FP32, {huge, huge, 0}, ""}), 0);
  EXPECT_EQ(NumElements({"x", package::TYPE_FP32, {kMaxTensorElements, 2}, ""}), -1);
  EXPECT_EQ(NumElements({"x", package::TYPE_FP32, {kMaxTensorElements}, ""}), kMaxTensorElements);
}

TEST(HostTensorsTest, BytesElementsMustNumberAsTheShapeSays) {
  std::string raw;
  AppendBytesElement("png one", &raw);
  AppendBytesElement("", &raw);
  auto elements = BytesElements({"image", package::TYPE_STRING, {2}, raw});
  ASSERT_TRUE(elements.ok()) << elements.status();
  EXPECT_THAT(*elements, ElementsAre("png one", ""));
  EXPECT_THAT(std::string(CheckByteSize({"image", package::TYPE_STRING, {3}, raw}).message()),
              HasSubstr("2 BYTES elements but shape [3] needs 3"));
  EXPECT_FALSE(CheckByteSize({"image", package::TYPE_STRING, {2}, raw.substr(0, 9)}).ok());
}

TEST(HostTensorsTest, BorrowedTensorsShareTheCallersBytesCopiesDoNot) {
  alignas(64) float values[4] = {1, 2, 3, 4};
  const HostTensorView view{"x",
                            package::TYPE_FP32,
                            {2, 2},
                            absl::string_view(reinterpret_cast<const char*>(values), 16)};
  auto borrowed = ToTensor(view, /*borrow=*/true);
  auto copied = ToTensor(view, /*borrow=*/false);
  ASSERT_TRUE(borrowed.ok() && copied.ok());
  values[0] = 10;
  EXPECT_EQ(borrowed->index({0, 0}).item<float>(), 10);
  EXPECT_EQ(copied->index({0, 0}).item<float>(), 1);
}

TEST(HostTensorsTest, BytesRoundTripThroughRowsTensor) {
  std::string raw;
  AppendBytesElement("first", &raw);
  AppendBytesElement("second element", &raw);
  auto rows = ToTensor({"image", package::TYPE_STRING, {2}, raw});
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->scalar_type(), at::kByte);
  EXPECT_EQ(rows->size(0), 2);
  auto host = ToHost("drawing", *rows, /*bytes=*/true);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->data_type, package::TYPE_STRING);
  EXPECT_EQ(host->shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(host->data, raw);
  // The same rows read as plain uint8 when not marked as BYTES.
  auto plain = ToHost("drawing", *rows, /*bytes=*/false);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->data_type, package::TYPE_UINT8);
}

TEST(HostTensorsTest, OutputsThePackageCannotNameAreInternal) {
  auto host = ToHost("z", at::zeros({2}, at::kComplexFloat), /*bytes=*/false);
  EXPECT_EQ(host.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(host.status().message()), HasSubstr("output 'z'"));
}

}  // namespace
}  // namespace torchbricks
