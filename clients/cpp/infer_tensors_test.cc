#include "clients/cpp/infer_tensors.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace torchbricks::client {
namespace {

using ::testing::ElementsAre;

TEST(DatatypeTest, NamesAndSizes) {
  EXPECT_EQ(DatatypeOf<float>(), "FP32");
  EXPECT_EQ(DatatypeOf<int64_t>(), "INT64");
  EXPECT_EQ(DatatypeOf<bool>(), "BOOL");
  EXPECT_EQ(DatatypeByteSize("FP16"), 2);
  EXPECT_EQ(DatatypeByteSize("FP64"), 8);
  EXPECT_EQ(DatatypeByteSize("BYTES"), 0);
  EXPECT_EQ(DatatypeByteSize("FP128"), 0);
}

TEST(ElementCountTest, ScalarsEmptyNegativeAndOverflow) {
  EXPECT_EQ(ElementCount({}), 1);
  EXPECT_EQ(ElementCount({2, 3, 4}), 24);
  EXPECT_EQ(ElementCount({2, 0, 4}), 0);
  EXPECT_EQ(ElementCount({2, -1}), -1);
  EXPECT_EQ(ElementCount({int64_t{1} << 40, int64_t{1} << 40}), -1);
}

TEST(BytesElementsTest, RoundTripAndTruncation) {
  const std::vector<std::string> elements = {"ab", "", std::string("\0x", 2)};
  const std::string raw = JoinBytesElements(elements);
  EXPECT_EQ(raw.size(), 3 * 4 + 4u);
  EXPECT_EQ(raw.substr(0, 6), std::string("\x02\x00\x00\x00"
                                          "ab",
                                          6));
  absl::StatusOr<std::vector<std::string>> split = SplitBytesElements(raw);
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_EQ(*split, elements);
  EXPECT_EQ(SplitBytesElements(raw.substr(0, raw.size() - 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SplitBytesElements(raw.substr(0, 2)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BuildModelInferRequestTest, RawContentsOnlyForInputsOutsideSharedMemory) {
  const std::vector<float> values = {1, 2, 3, 4};
  const InferRequest request{
      .model = "m",
      .inputs = {InferInput::Of<float>("a", {2, 2}, values),
                 InferInput::InSharedMemory("b", "INT64", {1}, {.region = "r", .byte_size = 8}),
                 InferInput::OfElements("c", {1}, {std::string("png")})},
      .outputs = {{"x"}, {"y", SharedMemoryPlacement{"out", 16, 32}}},
      .stage = "EXPORT",
      .version = "2",
      .id = "req-1"};
  const inference::ModelInferRequest message = BuildModelInferRequest(request);
  EXPECT_EQ(message.model_name(), "m");
  EXPECT_EQ(message.model_version(), "2");
  EXPECT_EQ(message.id(), "req-1");
  EXPECT_EQ(message.parameters().at("stage").string_param(), "EXPORT");
  ASSERT_EQ(message.inputs_size(), 3);
  EXPECT_EQ(message.inputs(0).datatype(), "FP32");
  EXPECT_THAT(message.inputs(0).shape(), ElementsAre(2, 2));
  EXPECT_EQ(message.inputs(1).parameters().at("shared_memory_region").string_param(), "r");
  EXPECT_EQ(message.inputs(1).parameters().at("shared_memory_byte_size").int64_param(), 8);
  EXPECT_EQ(message.inputs(1).parameters().count("shared_memory_offset"), 0u);
  ASSERT_EQ(message.raw_input_contents_size(), 2);  // a and c, in order
  EXPECT_EQ(message.raw_input_contents(0).size(), 16u);
  EXPECT_EQ(message.raw_input_contents(1), std::string("\x03\x00\x00\x00png", 7));
  ASSERT_EQ(message.outputs_size(), 2);
  EXPECT_TRUE(message.outputs(0).parameters().empty());
  EXPECT_EQ(message.outputs(1).parameters().at("shared_memory_offset").int64_param(), 32);
}

TEST(BuildModelInferRequestTest, NoStageParameterByDefault) {
  EXPECT_TRUE(BuildModelInferRequest({.model = "m"}).parameters().empty());
}

inference::ModelInferResponse Response() {
  inference::ModelInferResponse response;
  response.set_model_name("m");
  response.set_model_version("1");
  response.set_id("7");
  auto* logits = response.add_outputs();
  logits->set_name("logits");
  logits->set_datatype("FP32");
  logits->add_shape(1);
  logits->add_shape(2);
  const float values[] = {0.5f, -1.5f};
  response.add_raw_output_contents(std::string(reinterpret_cast<const char*>(values), 8));
  auto* drawing = response.add_outputs();
  drawing->set_name("visualization/classification");
  drawing->set_datatype("BYTES");
  drawing->add_shape(1);
  response.add_raw_output_contents(JoinBytesElements({"\x89PNG"}));
  return response;
}

TEST(InferResultTest, TypedAccessors) {
  absl::StatusOr<InferResult> result = InferResultFromResponse(Response());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->model_version, "1");
  EXPECT_EQ(result->id, "7");
  const InferOutput* logits = result->Find("logits");
  ASSERT_NE(logits, nullptr);
  EXPECT_THAT(logits->shape, ElementsAre(1, 2));
  absl::StatusOr<std::vector<float>> values = logits->Values<float>();
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_THAT(*values, ElementsAre(0.5f, -1.5f));
  EXPECT_EQ(logits->Values<double>().status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(logits->Elements().status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::vector<std::string>> pngs =
      result->Find("visualization/classification")->Elements();
  ASSERT_TRUE(pngs.ok()) << pngs.status();
  EXPECT_THAT(*pngs, ElementsAre("\x89PNG"));
  EXPECT_EQ(result->Find("missing"), nullptr);
}

TEST(InferResultTest, ContentsOfTheWrongSizeAreRefused) {
  inference::ModelInferResponse response = Response();
  response.mutable_raw_output_contents(0)->resize(4);
  absl::StatusOr<InferResult> result = InferResultFromResponse(response);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->Find("logits")->Values<float>().status().code(),
            absl::StatusCode::kInvalidArgument);
  response.add_raw_output_contents("extra");
  EXPECT_EQ(InferResultFromResponse(response).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(InferResultTest, BoolOutputsAndShapesWhoseByteCountWouldWrapAround) {
  inference::ModelInferResponse response;
  auto* flags = response.add_outputs();
  flags->set_name("flags");
  flags->set_datatype("BOOL");
  flags->add_shape(3);
  response.add_raw_output_contents(std::string("\x01\x00\x01", 3));
  // 2^61 + 1 elements of 8 bytes: the byte count wraps to 8, which must not pass for 8 bytes.
  auto* huge = response.add_outputs();
  huge->set_name("huge");
  huge->set_datatype("FP64");
  huge->add_shape((int64_t{1} << 61) + 1);
  response.add_raw_output_contents(std::string(8, '\0'));
  absl::StatusOr<InferResult> result = InferResultFromResponse(response);
  ASSERT_TRUE(result.ok()) << result.status();
  absl::StatusOr<std::vector<bool>> values = result->Find("flags")->Values<bool>();
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_THAT(*values, ElementsAre(true, false, true));
  EXPECT_EQ(result->Find("huge")->Values<double>().status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(InferResultTest, OutputsInSharedMemoryCarryTheirPlacement) {
  inference::ModelInferResponse response = Response();
  auto& parameters = *response.mutable_outputs(0)->mutable_parameters();
  parameters["shared_memory_region"].set_string_param("out");
  parameters["shared_memory_byte_size"].set_int64_param(8);
  parameters["shared_memory_offset"].set_int64_param(64);
  response.mutable_raw_output_contents(0)->clear();
  absl::StatusOr<InferResult> result = InferResultFromResponse(response);
  ASSERT_TRUE(result.ok());
  const InferOutput* logits = result->Find("logits");
  ASSERT_TRUE(logits->shared_memory.has_value());
  EXPECT_EQ(logits->shared_memory->region, "out");
  EXPECT_EQ(logits->shared_memory->byte_size, 8);
  EXPECT_EQ(logits->shared_memory->offset, 64);
  EXPECT_EQ(logits->Values<float>().status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace torchbricks::client
