#include "server/grpc/infer_codec.h"

#include <cstring>

#include "gtest/gtest.h"

namespace torchbricks::server {
namespace {

using Request = inference::ModelInferRequest;

Request::InferInputTensor* AddInput(Request* request, const std::string& name,
                                    const std::string& datatype, std::vector<int64_t> shape) {
  auto* input = request->add_inputs();
  input->set_name(name);
  input->set_datatype(datatype);
  for (int64_t dim : shape) input->add_shape(dim);
  return input;
}

std::string FloatBytes(std::vector<float> values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

absl::Status DecodeError(const Request& request) {
  std::deque<std::string> scratch;
  return DecodeInputs(request, &scratch).status();
}

TEST(InferCodecTest, RawContentsAreViewedInPlace) {
  Request request;
  AddInput(&request, "x", "FP32", {1, 2});
  request.add_raw_input_contents(FloatBytes({1.5f, -2.0f}));
  std::deque<std::string> scratch;
  auto views = DecodeInputs(request, &scratch);
  ASSERT_TRUE(views.ok()) << views.status();
  ASSERT_EQ(views->size(), 1u);
  EXPECT_EQ((*views)[0].data.data(), request.raw_input_contents(0).data());
  EXPECT_EQ((*views)[0].data_type, package::TYPE_FP32);
  EXPECT_TRUE(scratch.empty());
}

TEST(InferCodecTest, TypedContentsArePackedPerDatatype) {
  Request request;
  AddInput(&request, "f", "FP32", {2})->mutable_contents()->add_fp32_contents(0.25f);
  request.mutable_inputs(0)->mutable_contents()->add_fp32_contents(4.0f);
  auto* i8 = AddInput(&request, "b", "INT8", {3});
  for (int v : {-1, 0, 7}) i8->mutable_contents()->add_int_contents(v);
  AddInput(&request, "l", "INT64", {1})->mutable_contents()->add_int64_contents(1LL << 40);
  AddInput(&request, "o", "BOOL", {1})->mutable_contents()->add_bool_contents(true);
  std::deque<std::string> scratch;
  auto views = DecodeInputs(request, &scratch);
  ASSERT_TRUE(views.ok()) << views.status();
  ASSERT_EQ(views->size(), 4u);
  EXPECT_EQ((*views)[0].data, FloatBytes({0.25f, 4.0f}));
  EXPECT_EQ((*views)[1].data, std::string("\xff\x00\x07", 3));
  int64_t big = 0;
  std::memcpy(&big, (*views)[2].data.data(), sizeof(big));
  EXPECT_EQ(big, 1LL << 40);
  EXPECT_EQ((*views)[3].data, std::string("\x01", 1));
}

TEST(InferCodecTest, MalformedRequestsNameTheTensor) {
  {
    Request request;  // duplicated input
    AddInput(&request, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    AddInput(&request, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    EXPECT_NE(DecodeError(request).message().find("'x' appears more than once"), std::string::npos);
  }
  {
    Request request;  // raw and typed mixed
    AddInput(&request, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    request.add_raw_input_contents(FloatBytes({1}));
    EXPECT_NE(DecodeError(request).message().find("'x' has typed contents"), std::string::npos);
  }
  {
    Request request;  // raw size does not match the shape
    AddInput(&request, "x", "FP32", {2, 2});
    request.add_raw_input_contents(FloatBytes({1, 2, 3}));
    absl::Status status = DecodeError(request);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("'x' has 12 bytes"), std::string::npos) << status;
  }
  {
    Request request;  // typed count does not match the shape
    AddInput(&request, "y", "FP32", {3})->mutable_contents()->add_fp32_contents(1);
    EXPECT_NE(DecodeError(request).message().find("'y' has 1 elements"), std::string::npos);
  }
  {
    Request request;  // typed contents in the wrong field
    AddInput(&request, "z", "FP32", {1})->mutable_contents()->add_int_contents(1);
    EXPECT_NE(DecodeError(request).message().find("'z'"), std::string::npos);
  }
  {
    Request request;  // unknown and unsupported datatypes
    AddInput(&request, "u", "FP8", {1});
    EXPECT_NE(DecodeError(request).message().find("'u': unknown datatype 'FP8'"),
              std::string::npos);
    Request wide;
    AddInput(&wide, "w", "UINT32", {1});
    EXPECT_NE(DecodeError(wide).message().find("'w'"), std::string::npos);
  }
  {
    Request request;  // no contents at all
    AddInput(&request, "n", "FP32", {1});
    EXPECT_NE(DecodeError(request).message().find("'n' has no contents"), std::string::npos);
  }
}

TEST(InferCodecTest, StageParameter) {
  Request request;
  EXPECT_EQ(*StageOfRequest(request), Stage::kInference);
  (*request.mutable_parameters())["stage"].set_string_param("export");
  EXPECT_EQ(*StageOfRequest(request), Stage::kExport);
  (*request.mutable_parameters())["stage"].set_string_param("TRAIN");
  EXPECT_EQ(StageOfRequest(request).status().code(), absl::StatusCode::kInvalidArgument);
  (*request.mutable_parameters())["stage"].set_int64_param(4);
  EXPECT_NE(StageOfRequest(request).status().message().find("'stage' must be a string"),
            std::string::npos);
}

TEST(InferCodecTest, OutputsAreEncodedRawAndMoved) {
  std::vector<HostTensor> outputs(1);
  outputs[0].name = "logits";
  outputs[0].data_type = package::TYPE_FP32;
  outputs[0].shape = {1, 2};
  outputs[0].data = FloatBytes({3, 4});
  inference::ModelInferResponse response;
  ASSERT_TRUE(EncodeOutputs(std::move(outputs), {}, &response).ok());
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "logits");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_EQ(response.outputs(0).shape_size(), 2);
  EXPECT_EQ(response.raw_output_contents(0), FloatBytes({3, 4}));
  std::vector<std::string> names;
  Request request;
  request.add_outputs()->set_name("a");
  request.add_outputs()->set_name("b");
  request.add_outputs()->set_name("a");
  EXPECT_EQ(RequestedOutputs(request), (std::vector<std::string>{"a", "b"}));
}

// Found by tests/fuzz/request_decoding_fuzzer: the element count of a shape overflowed
// int64 (undefined behaviour); [2^32, 2^32] wrapped to 0 and passed with no contents.
TEST(InferCodecTest, ShapesOfTooManyElementsAreRefusedWithoutOverflow) {
  const int64_t huge = int64_t{1} << 32;
  Request empty;
  AddInput(&empty, "x", "FP32", {huge, huge});
  EXPECT_EQ(DecodeError(empty).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(DecodeError(empty).message()).find("elements"), std::string::npos);

  Request raw;
  AddInput(&raw, "x", "FP64", {int64_t{1} << 61});
  raw.add_raw_input_contents("");
  EXPECT_EQ(DecodeError(raw).code(), absl::StatusCode::kInvalidArgument);

  Request zero;
  AddInput(&zero, "x", "FP32", {huge, huge, 0});
  EXPECT_TRUE(DecodeError(zero).ok()) << DecodeError(zero);
}

}  // namespace
}  // namespace torchbricks::server
