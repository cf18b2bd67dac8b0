// floor_server: the transport floor. A bare gRPC C++ sync server of
// inference.GRPCInferenceService that answers every ModelInfer with a fixed response and
// does no model work: what any server pays to receive the same request message and send a
// response of the same size over the same gRPC, on this machine. bench/floor_benchmark
// runs it side by side with torchbricks-server and the in-process runs.
//
//   floor_server [--output-elements N] [--grpc-address 127.0.0.1] [--grpc-port 0]
//
// Prints "serving gRPC on HOST:PORT" on stdout once listening (what testing::ServerProcess
// waits for), answers ServerLive/ServerReady true, and exits 0 on SIGTERM or SIGINT.
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/command_line.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "proto/grpc_service.grpc.pb.h"

namespace torchbricks::bench {
namespace {

constexpr char kUsage[] =
    "usage: floor_server [--output-elements N] [--grpc-address HOST] [--grpc-port PORT]\n"
    "  --output-elements N   FP32 elements of the one output each response carries (default "
    "10)\n";

// Answers with the request's model name and id and one FP32 output "floor" of
// `output_elements` zeros, built once; the request is parsed by gRPC as for any server and
// otherwise ignored.
class FloorService final : public inference::GRPCInferenceService::Service {
 public:
  explicit FloorService(int64_t output_elements) {
    inference::ModelInferResponse::InferOutputTensor* output = response_.add_outputs();
    output->set_name("floor");
    output->set_datatype("FP32");
    output->add_shape(1);
    output->add_shape(output_elements);
    response_.add_raw_output_contents()->assign(static_cast<size_t>(output_elements) * 4, '\0');
  }

  grpc::Status ServerLive(grpc::ServerContext*, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* response) override {
    response->set_live(true);
    return grpc::Status::OK;
  }
  grpc::Status ServerReady(grpc::ServerContext*, const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse* response) override {
    response->set_ready(true);
    return grpc::Status::OK;
  }
  grpc::Status ModelInfer(grpc::ServerContext*, const inference::ModelInferRequest* request,
                          inference::ModelInferResponse* response) override {
    *response = response_;
    response->set_model_name(request->model_name());
    response->set_id(request->id());
    return grpc::Status::OK;
  }

 private:
  inference::ModelInferResponse response_;
};

int Main(const std::vector<std::string>& args) {
  int64_t output_elements = 10;
  std::string address = "127.0.0.1";
  int port = 0;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> pairs = SplitFlagValues(args);
  if (!pairs.ok()) {
    std::cerr << "floor_server: " << pairs.status().message() << "\n" << kUsage;
    return 2;
  }
  for (const auto& [flag, value] : *pairs) {
    bool ok = true;
    if (flag == "--output-elements") {
      ok = absl::SimpleAtoi(value, &output_elements) && output_elements >= 0 &&
           output_elements <= (int64_t{1} << 26);
    } else if (flag == "--grpc-address") {
      address = value;
    } else if (flag == "--grpc-port") {
      ok = absl::SimpleAtoi(value, &port) && port >= 0 && port <= 65535;
    } else {
      ok = false;
    }
    if (!ok) {
      std::cerr << "floor_server: bad flag " << flag << " " << value << "\n" << kUsage;
      return 2;
    }
  }

  // Block the stop signals before gRPC starts its threads, so that only sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  FloorService service(output_elements);
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(absl::StrCat(address, ":", port), grpc::InsecureServerCredentials(),
                           &bound_port);
  // The same message limit as torchbricks-server's default (256 MiB).
  builder.SetMaxReceiveMessageSize(256 << 20);
  builder.SetMaxSendMessageSize(256 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    std::cerr << "floor_server: cannot listen on " << address << ":" << port << "\n";
    return 1;
  }
  std::printf("serving gRPC on %s:%d\n", address.c_str(), bound_port);
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  server->Shutdown();
  return 0;
}

}  // namespace
}  // namespace torchbricks::bench

int main(int argc, char** argv) {
  return torchbricks::bench::Main(std::vector<std::string>(argv + 1, argv + argc));
}
