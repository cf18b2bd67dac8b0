// RequestSet: the ModelInfer requests torchbricks-perf sends, serialized once, and the
// system shared-memory regions they point into when inputs and outputs travel that way.
// Owns its regions: registered with the server on Create, unregistered (and unlinked) on
// destruction. Immutable after Create; requests() may be read from any thread.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<RequestSet> set,
//                    RequestSet::Create(*client, {.model = "readme_dummy"}, std::move(inputs)));
//   for (const grpc::ByteBuffer& request : set->requests()) ...
#ifndef TORCHBRICKS_CLIENTS_CPP_PERF_REQUEST_SET_H_
#define TORCHBRICKS_CLIENTS_CPP_PERF_REQUEST_SET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "clients/cpp/inference_client.h"
#include "clients/cpp/perf/input_data.h"
#include "clients/cpp/perf/perf_options.h"
#include "clients/cpp/shared_memory_region.h"
#include "grpcpp/support/byte_buffer.h"

namespace torchbricks::perf {

struct RequestSetOptions {
  std::string model;
  std::string version;  // "" = the newest ready version
  std::string stage;    // "" = the server's default
  // The outputs to ask for; empty = the stage's terminal outputs (none named).
  std::vector<std::string> outputs;
  SharedMemoryKind shared_memory = SharedMemoryKind::kNone;
  // With shared memory: the outputs placed in the output region when `outputs` is empty
  // (the stage's outputs from its metadata), and the bytes reserved for each. Every
  // request writes its outputs to the same places; their contents are never read.
  std::vector<std::string> default_outputs;
  int64_t output_shared_memory_size = 100 * 1024;
  // Names the regions ("<prefix>_input", "<prefix>_output") and their shared-memory keys;
  // unique per process.
  std::string region_prefix = "torchbricks_perf";
};

class RequestSet {
 public:
  // One serialized request per input set. With system shared memory, writes every input
  // set into one new region, reserves output_shared_memory_size bytes per output in
  // another, and registers both with the server through `client`, which must outlive the
  // RequestSet. InvalidArgument for no input sets; the server's status when it refuses a
  // region (FailedPrecondition: it runs without --allow-client-shm); Internal or
  // AlreadyExists when a region cannot be created. Nothing stays registered on failure.
  static absl::StatusOr<std::unique_ptr<RequestSet>> Create(client::InferenceClient& client,
                                                            const RequestSetOptions& options,
                                                            std::vector<InputSet> input_sets);

  // Unregisters the regions this set registered (errors ignored) and unlinks them.
  ~RequestSet();
  RequestSet(const RequestSet&) = delete;
  RequestSet& operator=(const RequestSet&) = delete;

  // Serialized inference.ModelInferRequest messages; valid while this object lives.
  const std::vector<grpc::ByteBuffer>& requests() const { return requests_; }
  // Bytes of the largest serialized request.
  int64_t max_request_bytes() const { return max_request_bytes_; }

 private:
  explicit RequestSet(client::InferenceClient& client) : client_(client) {}

  client::InferenceClient& client_;
  std::unique_ptr<client::SharedMemoryRegion> input_region_;
  std::unique_ptr<client::SharedMemoryRegion> output_region_;
  std::vector<std::string> registered_;  // region names to unregister
  std::vector<grpc::ByteBuffer> requests_;
  int64_t max_request_bytes_ = 0;
};

}  // namespace torchbricks::perf

#endif  // TORCHBRICKS_CLIENTS_CPP_PERF_REQUEST_SET_H_
