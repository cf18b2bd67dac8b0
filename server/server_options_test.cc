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
  EXPECT_GE(options->max_message_bytes, 64 * 3 * 512 * 512 * 4);  // 64 RGB 512x512 FP32
  EXPECT_GE(options->max_inflight_bytes, options->max_message_bytes);
  EXPECT_FALSE(options->grpc_use_ssl);
  EXPECT_TRUE(options->restricted_protocols.empty());
}

TEST(ServerOptionsTest, ParsesLimitsAndSecurityFlags) {
  auto options = ParseServerFlags({"--model-repository=/m",
                                   "--grpc-max-threads",
                                   "32",
                                   "--grpc-max-streams=3",
                                   "--grpc-max-message-size",
                                   "1000",
                                   "--max-inflight-bytes",
                                   "5000",
                                   "--grpc-use-ssl-mutual",
                                   "true",
                                   "--grpc-server-cert",
                                   "c.pem",
                                   "--grpc-server-key",
                                   "k.pem",
                                   "--grpc-root-cert",
                                   "r.pem",
                                   "--grpc-cert-refresh-secs",
                                   "5",
                                   "--grpc-restricted-protocol",
                                   "model-repository,statistics:Admin=x:y=z"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->grpc_max_threads, 32);
  EXPECT_EQ(options->grpc_max_streams, 3);
  EXPECT_EQ(options->max_inflight_bytes, 5000);
  EXPECT_TRUE(options->grpc_use_ssl);  // implied by mutual TLS
  EXPECT_TRUE(options->grpc_use_ssl_mutual);
  EXPECT_EQ(options->grpc_cert_refresh_secs, 5);
  ASSERT_EQ(options->restricted_protocols.size(), 1u);
  const ProtocolRestriction& restriction = options->restricted_protocols[0];
  EXPECT_EQ(restriction.groups, (std::vector<ProtocolGroup>{ProtocolGroup::kModelRepository,
                                                            ProtocolGroup::kStatistics}));
  EXPECT_EQ(restriction.header, "triton-grpc-protocol-admin");
  EXPECT_EQ(restriction.value, "x:y=z");  // the value is everything after the first '='
}

TEST(ServerOptionsTest, ParsesEveryFlagInBothSpellings) {
  auto options = ParseServerFlags({"--model-repository=/m",
                                   "--grpc-port",
                                   "0",
                                   "--grpc-address=127.0.0.1",
                                   "--model-control-mode",
                                   "explicit",
                                   "--load-model",
                                   "a",
                                   "--load-model=b",
                                   "--repository-poll-secs",
                                   "0.5",
                                   "--grpc-max-message-size",
                                   "1024",
                                   "--log-level",
                                   "verbose",
                                   "--shutdown-timeout-secs",
                                   "2",
                                   "--warmup-runs",
                                   "0",
                                   "--self-configuration-seconds",
                                   "0.5",
                                   "--write-chosen-config",
                                   "/tmp",
                                   "--spin-before-block-us",
                                   "250"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->self_configuration_budget, absl::Milliseconds(500));
  EXPECT_EQ(options->chosen_config_dir, "/tmp");
  EXPECT_EQ(options->spin_before_block, absl::Microseconds(250));
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

TEST(ServerOptionsTest, RefusesLimitsThatCannotWork) {
  auto expect_error = [](std::vector<std::string> args, const std::string& needle) {
    args.insert(args.begin(), "--model-repository=/m");
    auto options = ParseServerFlags(args);
    ASSERT_FALSE(options.ok());
    EXPECT_NE(options.status().message().find(needle), std::string::npos) << options.status();
  };
  expect_error({"--grpc-max-threads", "2"}, "--grpc-max-threads");
  expect_error({"--grpc-max-threads", "100000"}, "--grpc-max-threads");
  expect_error({"--grpc-max-streams", "-1"}, "--grpc-max-streams");
  expect_error({"--max-inflight-bytes", "0"}, "--max-inflight-bytes");
  expect_error({"--grpc-max-message-size", "2000", "--max-inflight-bytes", "1000"},
               "could never be admitted");
  expect_error({"--grpc-cert-refresh-secs", "0"}, "--grpc-cert-refresh-secs");
  expect_error({"--grpc-use-ssl", "yes"}, "--grpc-use-ssl");
  expect_error({"--grpc-restricted-protocol", "trace:k="}, "the value must be");
  expect_error({"--grpc-restricted-protocol", "trace,trace:k=v"}, "names 'trace' twice");
  expect_error({"--self-configuration-seconds", "-1"}, "--self-configuration-seconds");
  expect_error({"--self-configuration-seconds", "61"}, "--self-configuration-seconds");
  expect_error({"--self-configuration-seconds", "nan"}, "--self-configuration-seconds");
  expect_error({"--spin-before-block-us", "-1"}, "--spin-before-block-us");
  expect_error({"--spin-before-block-us", "10001"}, "--spin-before-block-us");
  expect_error({"--spin-before-block-us", "0.5"}, "--spin-before-block-us");
  expect_error({"--write-chosen-config", "/no/such/folder"}, "--write-chosen-config");
}

TEST(ServerOptionsTest, SelfConfigurationIsOnByDefault) {
  auto options = ParseServerFlags({"--model-repository=/m"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->self_configuration_budget, absl::Seconds(2));
  EXPECT_TRUE(options->chosen_config_dir.empty());
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
