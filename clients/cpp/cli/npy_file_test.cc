#include "clients/cpp/cli/npy_file.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace torchbricks::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A .npy file as numpy writes it: version `major`, `header` padded to 64 bytes.
std::string NpyFile(int major, std::string header, absl::string_view data) {
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string file = "\x93NUMPY";
  file.push_back(static_cast<char>(major));
  file.push_back('\0');
  const size_t length = header.size();
  for (size_t i = 0; i < prefix - 8; ++i) file.push_back(static_cast<char>(length >> (8 * i)));
  return file + header + std::string(data);
}

TEST(NpyFileTest, ReadsWhatNumpyWrites) {
  const float values[] = {1, 2, 3, 4, 5, 6};
  const std::string data(reinterpret_cast<const char*>(values), sizeof(values));
  absl::StatusOr<NpyArray> array =
      ParseNpy(NpyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data));
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->datatype, "FP32");
  EXPECT_THAT(array->shape, ElementsAre(2, 3));
  EXPECT_EQ(array->data, data);

  absl::StatusOr<NpyArray> v2 =
      ParseNpy(NpyFile(2, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", "abc"));
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->datatype, "UINT8");
  EXPECT_THAT(v2->shape, ElementsAre(3));

  absl::StatusOr<NpyArray> scalar =
      ParseNpy(NpyFile(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (), }",
                       std::string("\x07\0\0\0\0\0\0\0", 8)));
  ASSERT_TRUE(scalar.ok()) << scalar.status();
  EXPECT_EQ(scalar->datatype, "INT64");
  EXPECT_TRUE(scalar->shape.empty());
}

TEST(NpyFileTest, BigEndianElementsAreSwapped) {
  absl::StatusOr<NpyArray> array =
      ParseNpy(NpyFile(1, "{'descr': '>i2', 'fortran_order': False, 'shape': (2,), }",
                       std::string("\x01\x02\x03\x04", 4)));
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->data, std::string("\x02\x01\x04\x03", 4));
}

TEST(NpyFileTest, RefusesWhatCannotBeSent) {
  const auto code = [](const std::string& file) { return ParseNpy(file).status(); };
  const auto message = [&](const std::string& file) { return std::string(code(file).message()); };
  EXPECT_THAT(message("PK\x03\x04 not npy"), HasSubstr("magic"));
  EXPECT_THAT(
      message(NpyFile(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1), }", "abcd")),
      HasSubstr("Fortran"));
  EXPECT_THAT(message(NpyFile(1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "x")),
              HasSubstr("no protocol datatype"));
  EXPECT_THAT(message(NpyFile(1, "{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }", "x")),
              HasSubstr("no protocol datatype"));
  EXPECT_THAT(
      message(NpyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", "abcd")),
      HasSubstr("needs 2 elements of 4 bytes"));
  // 2^61 + 1 elements of 8 bytes: the byte count wraps around to 8.
  EXPECT_THAT(message(NpyFile(1,
                              "{'descr': '<f8', 'fortran_order': False, 'shape': "
                              "(2305843009213693953,), }",
                              std::string(8, '\0'))),
              HasSubstr("needs 2305843009213693953 elements"));
  EXPECT_EQ(code(NpyFile(9, "{}", "")).code(), absl::StatusCode::kInvalidArgument);
}

TEST(NpyFileTest, WritesAFileItReadsBack) {
  const NpyArray array{"INT32", {2, 1}, std::string("\x01\0\0\0\x02\0\0\0", 8)};
  absl::StatusOr<std::string> file = SerializeNpy(array);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size() % 64, 8u);  // 64-byte aligned header, then 8 bytes of data
  EXPECT_THAT(*file, HasSubstr("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 1), }"));
  absl::StatusOr<NpyArray> back = ParseNpy(*file);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->datatype, "INT32");
  EXPECT_THAT(back->shape, ElementsAre(2, 1));
  EXPECT_EQ(back->data, array.data);
  EXPECT_THAT(*SerializeNpy({"BOOL", {1}, std::string("\x01", 1)}), HasSubstr("'|b1'"));
  EXPECT_THAT(*SerializeNpy({"FP32", {3}, std::string(12, '\0')}), HasSubstr("(3,)"));
}

TEST(NpyFileTest, Bf16IsWidenedAndBytesRefused) {
  absl::StatusOr<std::string> file = SerializeNpy({"BF16", {1}, std::string("\x80\x3f", 2)});
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<NpyArray> back = ParseNpy(*file);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->datatype, "FP32");
  float value = 0;
  std::memcpy(&value, back->data.data(), 4);
  EXPECT_EQ(value, 1.0f);
  EXPECT_EQ(SerializeNpy({"BYTES", {1}, "abcd"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SerializeNpy({"FP32", {2}, "abcd"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace torchbricks::client
