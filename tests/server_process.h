// Test-only: runs the real torchbricks-server binary as a child process on a loopback
// port and stops it with SIGTERM. Not thread-safe; one per test fixture.
#ifndef TORCHBRICKS_TESTS_SERVER_PROCESS_H_
#define TORCHBRICKS_TESTS_SERVER_PROCESS_H_

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/create_channel.h"
#include "proto/grpc_service.grpc.pb.h"

extern char** environ;

namespace torchbricks::testing {

class ServerProcess {
 public:
  // Starts the server on `repository` with `flags` and waits (up to 60 s) until it is
  // ready. port() is 0 when it did not come up.
  ServerProcess(const std::string& repository, const std::vector<std::string>& flags)
      : ServerProcess(Command{ServerCommand(repository, flags)}) {}

  // Any gRPC server binary that prints "serving gRPC on HOST:PORT" on stdout (bench/
  // floor_server does): argv[0] is the binary's path. `ready(port)` says whether it is
  // ready; by default, a plaintext inference.GRPCInferenceService/ServerReady answering
  // true (a TLS server needs a probe with its credentials).
  struct Command {
    std::vector<std::string> argv;
    std::function<bool(int port)> ready;
  };
  explicit ServerProcess(Command command) {
    std::vector<std::string>& args = command.argv;
    if (args.empty()) return;
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    int out[2];
    if (pipe(out) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    if (pid_ <= 0) return;
    FILE* stdout_of_child = fdopen(out[0], "r");
    char line[512];
    while (std::fgets(line, sizeof(line), stdout_of_child) != nullptr) {
      const std::string text(line);
      const size_t colon = text.rfind(':');
      if (text.find("serving gRPC on") != std::string::npos && colon != std::string::npos) {
        port_ = std::atoi(text.c_str() + colon + 1);
        break;
      }
    }
    std::fclose(stdout_of_child);
    if (port_ == 0) return;
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                   grpc::InsecureChannelCredentials());
    auto stub = inference::GRPCInferenceService::NewStub(channel_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (command.ready != nullptr) {
        if (command.ready(port_)) return;
      } else {
        grpc::ClientContext context;
        inference::ServerReadyRequest request;
        inference::ServerReadyResponse response;
        if (stub->ServerReady(&context, request, &response).ok() && response.ready()) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    port_ = 0;
  }

  // The command that starts this build's torchbricks-server ($TORCHBRICKS_SERVER overrides)
  // on `repository` on a free loopback port, quiet, with `flags` added. Self-configuration
  // is off (--self-configuration-seconds 0) unless `flags` name it: a test's models keep
  // the layout their config.pbtxt and the defaults give, and load without measuring.
  static std::vector<std::string> ServerCommand(const std::string& repository,
                                                const std::vector<std::string>& flags) {
    const char* binary = std::getenv("TORCHBRICKS_SERVER");
#ifdef TORCHBRICKS_DEFAULT_SERVER
    const char* fallback = TORCHBRICKS_DEFAULT_SERVER;
#else
    const char* fallback = "build/server/torchbricks-server";
#endif
    std::vector<std::string> args = {binary != nullptr ? binary : fallback,
                                     "--model-repository",
                                     repository,
                                     "--grpc-port",
                                     "0",
                                     "--grpc-address",
                                     "127.0.0.1",
                                     "--log-level",
                                     "warning",
                                     "--metrics-port",
                                     "0"};
    const bool names_self_configuration = std::any_of(
        flags.begin(), flags.end(),
        [](const std::string& flag) { return flag.rfind("--self-configuration-seconds", 0) == 0; });
    if (!names_self_configuration) {
      args.insert(args.end(), {"--self-configuration-seconds", "0"});
    }
    args.insert(args.end(), flags.begin(), flags.end());
    return args;
  }

  ~ServerProcess() {
    if (pid_ > 0 && !stopped_) Stop();
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  // The server's process id; -1 when it did not start.
  pid_t pid() const { return pid_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

  // SIGTERM, then waits; returns the exit status (-1 when it did not exit normally or
  // never started).
  int Stop() {
    stopped_ = true;
    if (pid_ <= 0) return -1;  // never kill(0 or -1, ...): that would signal other processes
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  bool stopped_ = false;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace torchbricks::testing

#endif  // TORCHBRICKS_TESTS_SERVER_PROCESS_H_
