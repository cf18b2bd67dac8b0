#include "server/server_options.h"

#include "gtest/gtest.h"

namespace torchbricks::server {
namespace {

TEST(ServerOptionsTest, DefaultsNeedOnlyTheRepository) {
  auto options = ParseServerFlags({"--model-repository", "/models"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->model_repository, "/models");
  EXPECT_EQ(options->grpc_port, 8001);
  EXPECT_EQ(options->control_mode, ModelControlMode::kNone);
  EXPECT_EQ(options->poll_interval, absl::Seconds(15));
  EXPECT_GE(options->max_message_bytes, 64 * 3 * 1024 * 1024 * 4);
}

TEST(ServerOptionsTest, ParsesEveryFlagInBothSpellings) {
  auto options = ParseServerFlags(
      {"--model-repository=/m", "--grpc-port", "0", "--grpc-address=127.0.0.1",
       "--model-control-mode", "explicit", "--load-model", "a", "--load-model=b",
       "--repository-poll-secs", "0.5", "--grpc-max-message-size", "1024", "--log-level", "verbose",
       "--shutdown-timeout-secs", "2", "--warmup-runs", "0"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->grpc_port, 0);
  EXPECT_EQ(options->grpc_address, "127.0.0.1");
  EXPECT_EQ(options->control_mode, ModelControlMode::kExplicit);
  EXPECT_EQ(options->startup_models, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(options->poll_interval, absl::Milliseconds(500));
  EXPECT_EQ(options->max_message_bytes, 1024);
  EXPECT_EQ(options->log_level, LogLevel::kVerbose);
  EXPECT_EQ(options->shutdown_timeout, absl::Seconds(2));
  EXPECT_EQ(options->warmup_runs, 0);
}

TEST(ServerOptionsTest, RefusesBadInputNamingTheFlag) {
  auto expect_error = [](std::vector<std::string> args, const std::string& needle) {
    auto options = ParseServerFlags(args);
    ASSERT_FALSE(options.ok());
    EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(options.status().message().find(needle), std::string::npos) << options.status();
  };
  expect_error({}, "--model-repository");
  expect_error({"--model-repository", "/m", "--grpc-port", "70000"}, "--grpc-port");
  expect_error({"--model-repository", "/m", "--model-control-mode", "sometimes"},
               "--model-control-mode");
  expect_error({"--model-repository", "/m", "--frobnicate", "1"}, "--frobnicate");
  expect_error({"--model-repository", "/m", "--log-level", "loud"}, "loud");
  expect_error({"--model-repository"}, "needs a value");
}

}  // namespace
}  // namespace torchbricks::server
