#include "server/grpc/infer_codec.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
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

// A registered region "r" over a fresh POSIX shared-memory object of `bytes` bytes, mapped
// here too (`data()`) as a client would; the object is removed afterwards.
class ClientRegion {
 public:
  explicit ClientRegion(size_t bytes)
      : key_(absl::StrCat("/tb_codec_test_", getpid(), "_", counter_++)), bytes_(bytes) {
    fd_ = shm_open(key_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    EXPECT_GE(fd_, 0);
    EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(bytes)), 0);
    data_ = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0));
    EXPECT_TRUE(regions_.Register("r", key_, 0, bytes).ok());
  }
  ~ClientRegion() {
    munmap(data_, bytes_);
    close(fd_);
    shm_unlink(key_.c_str());
  }
  char* data() { return data_; }
  int fd() const { return fd_; }
  const SharedMemoryRegions* regions() const { return &regions_; }

 private:
  static inline int counter_ = 0;
  std::string key_;
  size_t bytes_;
  int fd_ = -1;
  char* data_ = nullptr;
  SharedMemoryRegions regions_;
};

void PlaceIn(google::protobuf::Map<std::string, inference::InferParameter>* parameters,
             int64_t offset, int64_t byte_size) {
  (*parameters)["shared_memory_region"].set_string_param("r");
  (*parameters)["shared_memory_offset"].set_int64_param(offset);
  (*parameters)["shared_memory_byte_size"].set_int64_param(byte_size);
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

TEST(InferCodecTest, InputsInSharedMemoryAreCopiedOutOfTheRegionOnce) {
  ClientRegion region(4096);
  const std::string values = FloatBytes({1, 2, 3});
  std::memcpy(region.data() + 64, values.data(), values.size());
  Request request;
  PlaceIn(AddInput(&request, "x", "FP32", {1, 3})->mutable_parameters(), 64, 12);
  std::deque<std::string> scratch;
  SharedMemoryLease lease(region.regions());
  auto views = DecodeInputs(request, &scratch, &lease);
  ASSERT_TRUE(views.ok()) << views.status();
  ASSERT_EQ(scratch.size(), 1u);
  EXPECT_EQ((*views)[0].data.data(), scratch.back().data());  // not the client's memory
  EXPECT_EQ((*views)[0].data, values);
  // Neither side reaches the other: the client writing its region leaves the view alone,
  // and a model writing its input (here, the scratch copy) leaves the region alone.
  std::memset(region.data() + 64, 0, 12);
  EXPECT_EQ((*views)[0].data, values);
  scratch.back()[0] = 'm';
  EXPECT_EQ(region.data()[64], 0);
}

TEST(InferCodecTest, SharedMemoryInputsOfTheWrongSizeAreRefusedBeforeTheyAreCopied) {
  ClientRegion region(1 << 20);
  Request request;
  // A whole MiB placed behind a [1, 3] FP32 input (12 bytes), several times over.
  for (const char* name : {"a", "b", "c"}) {
    PlaceIn(AddInput(&request, name, "FP32", {1, 3})->mutable_parameters(), 0, 1 << 20);
  }
  EXPECT_EQ(SharedMemoryInputBytes(request), 3u << 20);  // what the caller budgets for
  std::deque<std::string> scratch;
  SharedMemoryLease lease(region.regions());
  auto views = DecodeInputs(request, &scratch, &lease);
  EXPECT_EQ(views.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(views.status().message().find("input 'a' has 1048576 bytes in shared memory"),
            std::string::npos)
      << views.status();
  EXPECT_TRUE(scratch.empty()) << "nothing may be copied for a request that is refused";
}

TEST(InferCodecTest, AnOutputRequestedTwiceIsInvalidArgumentNamingIt) {
  ClientRegion region(4096);
  Request request;
  PlaceIn(request.add_outputs()->mutable_parameters(), 0, 64);
  request.mutable_outputs(0)->set_name("logits");
  auto* again = request.add_outputs();
  again->set_name("logits");
  PlaceIn(again->mutable_parameters(), 1024, 64);
  SharedMemoryLease lease(region.regions());
  auto placed = PlaceOutputs(request, &lease);
  EXPECT_EQ(placed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(placed.status().message().find("'logits'"), absl::string_view::npos) << placed.status();
  Request plain;  // also without shared memory
  plain.add_outputs()->set_name("d");
  plain.add_outputs()->set_name("d");
  EXPECT_EQ(PlaceOutputs(plain, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(InferCodecTest, RegionsThatLoseTheirPagesFailTheRequestInsteadOfKillingTheServer) {
  ClientRegion region(4 * 4096);
  const std::string values = FloatBytes({1, 2, 3});
  Request request;
  PlaceIn(AddInput(&request, "x", "FP32", {1, 3})->mutable_parameters(), 8192, 12);
  auto* output = request.add_outputs();
  output->set_name("y");
  PlaceIn(output->mutable_parameters(), 12288, 12);
  SharedMemoryLease lease(region.regions());
  auto placed = PlaceOutputs(request, &lease);
  ASSERT_TRUE(placed.ok()) << placed.status();
  ASSERT_EQ(ftruncate(region.fd(), 4096), 0);  // after the per-request size check
  std::deque<std::string> scratch;
  auto views = DecodeInputs(request, &scratch, &lease);
  EXPECT_EQ(views.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(views.status().message().find("'x'"), absl::string_view::npos) << views.status();
  std::vector<HostTensor> outputs(1);
  outputs[0].name = "y";
  outputs[0].data_type = package::TYPE_FP32;
  outputs[0].shape = {1, 3};
  outputs[0].data = values;
  inference::ModelInferResponse response;
  absl::Status encoded = EncodeOutputs(std::move(outputs), *placed, &response);
  EXPECT_EQ(encoded.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(encoded.message().find("output 'y'"), absl::string_view::npos) << encoded;
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
