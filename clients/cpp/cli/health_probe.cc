// `torchbricks-health-probe`: asks a server's grpc.health.v1.Health/Check once and turns
// the answer into an exit code, for container HEALTHCHECKs and scripts that cannot speak
// gRPC. Links gRPC and the generated health messages only (no libtorch, no project core).
//
//   torchbricks-health-probe --addr 127.0.0.1:8001 [--service NAME] [--timeout-ms N]
//
// Exit 0: SERVING (one line on stdout). Exit 1: NOT_SERVING, an unknown service,
// unreachable, or out of time (one line on stderr saying which). Exit 2: bad usage.
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "base/command_line.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

constexpr int kExitServing = 0;
constexpr int kExitNotServing = 1;
constexpr int kExitUsage = 2;

constexpr char kUsage[] =
    "usage: torchbricks-health-probe [--addr HOST:PORT] [--service NAME] [--timeout-ms N]\n"
    "  --addr        server to ask (default 127.0.0.1:8001; plaintext gRPC)\n"
    "  --service     health service name (default \"\": readiness; \"liveness\": liveness)\n"
    "  --timeout-ms  deadline of the one call (default 2000)\n"
    "exit 0 when SERVING; 1 when NOT_SERVING, unknown service or unreachable; 2 on bad usage\n";

struct ProbeOptions {
  std::string address = "127.0.0.1:8001";
  std::string service;  // "" is the server as a whole (readiness)
  int64_t timeout_ms = 2000;
};

// Fills `options` from the arguments; false (after one line on stderr) when they are bad.
bool ParseProbeOptions(const std::vector<std::string>& args, ProbeOptions& options) {
  absl::StatusOr<torchbricks::CommandLine> command_line = torchbricks::ParseCommandLine(args);
  if (!command_line.ok()) {
    std::cerr << "torchbricks-health-probe: " << command_line.status().message() << "\n";
    return false;
  }
  if (!command_line->positional.empty()) {
    std::cerr << "torchbricks-health-probe: unexpected argument '"
              << command_line->positional.front() << "'\n";
    return false;
  }
  for (const auto& [flag, value] : command_line->flags) {
    if (flag == "--addr") {
      options.address = value;
    } else if (flag == "--service") {
      options.service = value;
    } else if (flag == "--timeout-ms") {
      if (!absl::SimpleAtoi(value, &options.timeout_ms) || options.timeout_ms <= 0) {
        std::cerr << "torchbricks-health-probe: --timeout-ms needs a positive integer, got '"
                  << value << "'\n";
        return false;
      }
    } else {
      std::cerr << "torchbricks-health-probe: unknown flag " << flag << "\n";
      return false;
    }
  }
  if (options.address.empty()) {
    std::cerr << "torchbricks-health-probe: --addr is empty\n";
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string& arg : args) {
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return kExitServing;
    }
  }
  ProbeOptions options;
  if (!ParseProbeOptions(args, options)) {
    std::cerr << kUsage;
    return kExitUsage;
  }

  const std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(options.address, grpc::InsecureChannelCredentials());
  std::unique_ptr<grpc::health::v1::Health::Stub> stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(options.timeout_ms));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(options.service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);

  const std::string subject = options.address + " service '" + options.service + "'";
  if (!status.ok()) {
    std::string why;
    switch (status.error_code()) {
      case grpc::StatusCode::NOT_FOUND:
        why = "unknown service";
        break;
      case grpc::StatusCode::UNAVAILABLE:
        why = "unreachable";
        break;
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        why = "no answer within " + std::to_string(options.timeout_ms) + " ms";
        break;
      default:
        why = "call failed";
        break;
    }
    std::cerr << "torchbricks-health-probe: " << subject << ": " << why << " (gRPC code "
              << static_cast<int>(status.error_code()) << ": " << status.error_message() << ")\n";
    return kExitNotServing;
  }
  const std::string state =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    std::cerr << "torchbricks-health-probe: " << subject << ": " << state << "\n";
    return kExitNotServing;
  }
  std::cout << subject << ": " << state << "\n";
  return kExitServing;
}
