#include "clients/cpp/perf/input_data.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace torchbricks::perf {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

inference::ModelMetadataResponse Metadata(
    std::vector<std::tuple<std::string, std::string, std::vector<int64_t>>> inputs) {
  inference::ModelMetadataResponse metadata;
  metadata.set_name("model");
  for (const auto& [name, datatype, shape] : inputs) {
    auto* input = metadata.add_inputs();
    input->set_name(name);
    input->set_datatype(datatype);
    for (const int64_t dim : shape) input->add_shape(dim);
  }
  return metadata;
}

inference::ModelConfig Batching(int max_batch_size) {
  inference::ModelConfig config;
  config.set_max_batch_size(max_batch_size);
  return config;
}

std::vector<float> Floats(const client::InferInput& input) {
  std::vector<float> values(input.data.size() / sizeof(float));
  std::memcpy(values.data(), input.data.data(), input.data.size());
  return values;
}

// A scratch folder for JSON files, removed at the end of the test.
class InputDataFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = std::filesystem::temp_directory_path() /
              ("input_data_test_" + std::to_string(getpid()) + "_" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(folder_);
  }
  void TearDown() override { std::filesystem::remove_all(folder_); }

  std::string WriteFile(const std::string& name, const std::string& contents) {
    std::ofstream(folder_ / name, std::ios::binary) << contents;
    return (folder_ / name).string();
  }

  std::filesystem::path folder_;
};

TEST(InputDataTest, RandomFillsTheBatchedShape) {
  const auto sets = BuildInputSets(Metadata({{"raw", "FP32", {-1, 3, 4, 5}}}), Batching(8),
                                   {.source = "random", .batch_size = 2});
  ASSERT_TRUE(sets.ok()) << sets.status();
  ASSERT_EQ(sets->size(), 1u);
  const client::InferInput& input = (*sets)[0][0];
  EXPECT_EQ(input.name, "raw");
  EXPECT_EQ(input.datatype, "FP32");
  EXPECT_THAT(input.shape, ElementsAre(2, 3, 4, 5));
  const std::vector<float> values = Floats(input);
  ASSERT_EQ(values.size(), 120u);
  bool varied = false;
  for (const float value : values) {
    EXPECT_GE(value, 0);
    EXPECT_LT(value, 1);
    varied = varied || value != values[0];
  }
  EXPECT_TRUE(varied);
}

TEST(InputDataTest, ZeroAndEveryDatatype) {
  const auto sets = BuildInputSets(Metadata({{"a", "INT64", {-1, 2}},
                                             {"b", "BYTES", {-1}},
                                             {"c", "FP16", {-1, 3}},
                                             {"d", "BOOL", {-1, 1}}}),
                                   Batching(4), {.source = "zero"});
  ASSERT_TRUE(sets.ok()) << sets.status();
  const InputSet& set = (*sets)[0];
  EXPECT_EQ(set[0].data, std::string(16, '\0'));
  EXPECT_EQ(set[1].data, std::string(4, '\0'));  // one empty element: its length prefix
  EXPECT_THAT(set[1].shape, ElementsAre(1));
  EXPECT_EQ(set[2].data, std::string(6, '\0'));
  EXPECT_EQ(set[3].data, std::string(1, '\0'));
}

TEST(InputDataTest, VariableDimensionsNeedShape) {
  const auto metadata = Metadata({{"raw", "FP32", {-1, 3, -1, -1}}});
  const auto missing = BuildInputSets(metadata, Batching(8), {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("--shape raw:"));
  const auto given =
      BuildInputSets(metadata, Batching(8), {.shapes = {{"raw", {3, 8, 16}}}, .batch_size = 3});
  ASSERT_TRUE(given.ok()) << given.status();
  EXPECT_THAT((*given)[0][0].shape, ElementsAre(3, 3, 8, 16));
  for (const std::vector<int64_t>& bad : {std::vector<int64_t>{4, 8, 16}, {3, 8}}) {
    EXPECT_THAT(
        std::string(
            BuildInputSets(metadata, Batching(8), {.shapes = {{"raw", bad}}}).status().message()),
        HasSubstr("does not fit"));
  }
  EXPECT_THAT(std::string(BuildInputSets(metadata, Batching(8),
                                         {.shapes = {{"raw", {3, 1, 1}}, {"nope", {1}}}})
                              .status()
                              .message()),
              HasSubstr("'nope'"));
}

TEST(InputDataTest, BatchSizeMustFitTheModel) {
  const auto metadata = Metadata({{"x", "FP32", {2}}});
  const auto fixed = BuildInputSets(metadata, Batching(0), {});
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_THAT((*fixed)[0][0].shape, ElementsAre(2));
  EXPECT_THAT(
      std::string(BuildInputSets(metadata, Batching(0), {.batch_size = 2}).status().message()),
      HasSubstr("does not batch"));
  EXPECT_THAT(
      std::string(BuildInputSets(Metadata({{"x", "FP32", {-1, 2}}}), Batching(4), {.batch_size = 5})
                      .status()
                      .message()),
      HasSubstr("max_batch_size 4"));
}

TEST_F(InputDataFileTest, PerfAnalyzerJsonFormat) {
  WriteFile("image.jpg", std::string("\xff\xd8jpeg", 6));
  const std::string path = WriteFile("data.json", R"({"data": [
      {"raw": [[0.5, 1], [2, 3]], "ids": {"content": [7], "shape": [1]},
       "files": [{"file": "image.jpg"}]},
      {"raw": [1, 1, 1, 1], "ids": [-3], "files": [{"b64": "aGk="}]},
      {"raw": {"b64": "AACAPwAAgD8AAIA/AACAPw=="}, "ids": [0], "files": ["text"]},
      {"raw": [1, 1, 1, 1], "ids": [0], "files": {"b64": "AgAAAGhp"}}]})");
  const auto sets = BuildInputSets(
      Metadata({{"raw", "FP32", {-1, 2, 2}}, {"ids", "INT64", {-1, -1}}, {"files", "BYTES", {-1}}}),
      Batching(4), {.source = path, .shapes = {{"ids", {1}}}, .batch_size = 2});
  ASSERT_TRUE(sets.ok()) << sets.status();
  ASSERT_EQ(sets->size(), 4u);
  EXPECT_THAT(Floats((*sets)[0][0]), ElementsAre(0.5, 1, 2, 3, 0.5, 1, 2, 3));
  EXPECT_THAT((*sets)[0][0].shape, ElementsAre(2, 2, 2));
  int64_t ids[2];
  ASSERT_EQ((*sets)[1][1].data.size(), sizeof(ids));
  std::memcpy(ids, (*sets)[1][1].data.data(), sizeof(ids));
  EXPECT_THAT(ids, ElementsAre(-3, -3));
  EXPECT_THAT(*client::SplitBytesElements((*sets)[0][2].data),
              ElementsAre(std::string("\xff\xd8jpeg", 6), std::string("\xff\xd8jpeg", 6)));
  EXPECT_THAT(*client::SplitBytesElements((*sets)[1][2].data), ElementsAre("hi", "hi"));
  EXPECT_THAT(*client::SplitBytesElements((*sets)[2][2].data), ElementsAre("text", "text"));
  EXPECT_THAT(Floats((*sets)[2][0]), ElementsAre(1, 1, 1, 1, 1, 1, 1, 1));
  // A BYTES tensor as {"b64": ...}: its wire bytes (length-prefixed elements), as perf_analyzer.
  EXPECT_THAT(*client::SplitBytesElements((*sets)[3][2].data), ElementsAre("hi", "hi"));
}

TEST_F(InputDataFileTest, BytesTensorAsB64MustHoldTheShapesElements) {
  const auto metadata = Metadata({{"files", "BYTES", {-1, 1}}});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"data": [{"files": {"b64": "AgAAAGhpAQAAAHg="}}]})", "holds 2 BYTES elements"},
      {R"({"data": [{"files": {"b64": "CQAAAGhp"}}]})", "claims 9"},  // a length past the end
      {R"({"data": [{"files": {"b64": "not base64!"}}]})", "not base64"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = WriteFile("bytes" + std::to_string(i) + ".json", cases[i].first);
    const auto sets = BuildInputSets(metadata, Batching(4), {.source = path});
    EXPECT_EQ(sets.status().code(), absl::StatusCode::kInvalidArgument) << cases[i].first;
    EXPECT_THAT(std::string(sets.status().message()), HasSubstr(cases[i].second)) << cases[i].first;
  }
}

TEST_F(InputDataFileTest, JsonThatDoesNotFitIsRefused) {
  const auto metadata = Metadata({{"raw", "FP32", {-1, 2}}, {"ids", "INT64", {-1, 1}}});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{not json", "is not JSON"},
      {R"({"rows": []})", "\"data\""},
      {R"({"data": [{"raw": [1, 2]}]})", "lacks input 'ids'"},
      {R"({"data": [{"raw": [1, 2], "ids": [1], "extra": [1]}]})", "'extra'"},
      {R"({"data": [{"raw": [1, 2, 3], "ids": [1]}]})", "holds 3 values"},
      {R"({"data": [{"raw": [1, 2], "ids": [1.5]}]})", "no INT64 value"},
      {R"({"data": [{"raw": ["a", "b"], "ids": [1]}]})", "must be a number"},
      {R"({"data": [{"raw": {"content": [1, 2, 3], "shape": [3]}, "ids": [1]}]})", "does not fit"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = WriteFile("case" + std::to_string(i) + ".json", cases[i].first);
    const auto sets = BuildInputSets(metadata, Batching(4), {.source = path});
    ASSERT_FALSE(sets.ok()) << cases[i].first;
    EXPECT_EQ(sets.status().code(), absl::StatusCode::kInvalidArgument) << cases[i].first;
    EXPECT_THAT(std::string(sets.status().message()), HasSubstr(cases[i].second));
  }
  EXPECT_EQ(BuildInputSets(metadata, Batching(4), {.source = (folder_ / "absent.json").string()})
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

uint16_t Half(absl::string_view datatype, double value) {
  const std::string bytes = *EncodeNumber(datatype, value);
  uint16_t bits = 0;
  std::memcpy(&bits, bytes.data(), sizeof(bits));
  return bits;
}

TEST(EncodeNumberTest, HalfPrecisionAndIntegerRanges) {
  EXPECT_EQ(Half("FP16", 1.0), 0x3c00);
  EXPECT_EQ(Half("FP16", -2.0), 0xc000);
  EXPECT_EQ(Half("FP16", 0.1), 0x2e66);
  EXPECT_EQ(Half("FP16", 65504), 0x7bff);
  EXPECT_EQ(Half("FP16", 1e6), 0x7c00);
  EXPECT_EQ(Half("FP16", 5.960464477539063e-08), 0x0001);  // 2^-24, the smallest subnormal
  EXPECT_EQ(Half("BF16", 1.0), 0x3f80);
  EXPECT_EQ(Half("BF16", -0.5), 0xbf00);
  EXPECT_EQ(EncodeNumber("INT8", 127)->size(), 1u);
  EXPECT_FALSE(EncodeNumber("INT8", 128).ok());
  EXPECT_FALSE(EncodeNumber("UINT8", -1).ok());
  EXPECT_FALSE(EncodeNumber("INT32", 0.5).ok());
  EXPECT_FALSE(EncodeNumber("INT64", 9.3e18).ok());
  EXPECT_TRUE(EncodeNumber("UINT64", 1.8e19).ok());
  EXPECT_EQ(*EncodeNumber("BOOL", 1), std::string(1, '\1'));
  EXPECT_FALSE(EncodeNumber("COMPLEX", 1).ok());
}

}  // namespace
}  // namespace torchbricks::perf
