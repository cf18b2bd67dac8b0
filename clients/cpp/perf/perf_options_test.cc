#include "clients/cpp/perf/perf_options.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace torchbricks::perf {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

absl::StatusOr<PerfOptions> Parse(std::vector<std::string> args) { return ParsePerfOptions(args); }

TEST(PerfOptionsTest, DefaultsFollowPerfAnalyzer) {
  absl::StatusOr<PerfOptions> options = Parse({"-m", "readme_dummy"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->model, "readme_dummy");
  EXPECT_EQ(options->client.url, "127.0.0.1:8001");
  EXPECT_EQ(options->mode, LoadMode::kConcurrency);
  EXPECT_THAT(options->levels, ElementsAre(1));
  EXPECT_EQ(options->measurement_interval, absl::Milliseconds(5000));
  EXPECT_EQ(options->stability_percentage, 10);
  EXPECT_EQ(options->max_trials, 10);
  EXPECT_EQ(options->input_data, "random");
  EXPECT_EQ(options->shared_memory, SharedMemoryKind::kNone);
  EXPECT_EQ(options->batch_size, 1);
}

TEST(PerfOptionsTest, ShortAndLongFlags) {
  absl::StatusOr<PerfOptions> options = Parse({"-m",
                                               "m",
                                               "-x",
                                               "2",
                                               "-u",
                                               "host:9",
                                               "-b",
                                               "4",
                                               "-f",
                                               "out.csv",
                                               "-H",
                                               "Triton-Grpc-Protocol-Admin-Key: secret",
                                               "-i",
                                               "grpc",
                                               "--stage",
                                               "export",
                                               "--output",
                                               "embedding",
                                               "--output=logits",
                                               "--shape",
                                               "raw:3,8,8",
                                               "--input-data=zero",
                                               "--shared-memory",
                                               "system",
                                               "--output-shared-memory-size",
                                               "4096",
                                               "--measurement-interval",
                                               "250",
                                               "--stability-percentage",
                                               "25.5",
                                               "--max-trials",
                                               "4",
                                               "--max-threads",
                                               "2",
                                               "--request-timeout-ms",
                                               "1500",
                                               "--brick-csv",
                                               "b.csv",
                                               "--json",
                                               "-",
                                               "-v"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->model_version, "2");
  EXPECT_EQ(options->client.url, "host:9");
  EXPECT_EQ(options->batch_size, 4);
  EXPECT_EQ(options->latency_report_file, "out.csv");
  EXPECT_THAT(options->client.headers,
              ElementsAre(Pair("triton-grpc-protocol-admin-key", "secret")));
  EXPECT_EQ(options->stage, "EXPORT");
  EXPECT_THAT(options->outputs, ElementsAre("embedding", "logits"));
  EXPECT_THAT(options->shapes, ElementsAre(Pair("raw", ElementsAre(3, 8, 8))));
  EXPECT_EQ(options->input_data, "zero");
  EXPECT_EQ(options->shared_memory, SharedMemoryKind::kSystem);
  EXPECT_EQ(options->output_shared_memory_size, 4096);
  EXPECT_EQ(options->measurement_interval, absl::Milliseconds(250));
  EXPECT_EQ(options->stability_percentage, 25.5);
  EXPECT_EQ(options->max_trials, 4);
  EXPECT_EQ(options->max_threads, 2);
  EXPECT_EQ(options->client.timeout, absl::Milliseconds(1500));
  EXPECT_EQ(options->brick_csv_file, "b.csv");
  EXPECT_EQ(options->json_file, "-");
  EXPECT_TRUE(options->verbose);
}

// perf_analyzer's short flags for options torchbricks-perf has: -p, -s, -r, -z, and -a, which
// changes nothing (every request is asynchronous).
TEST(PerfOptionsTest, PerfAnalyzerShortFlags) {
  absl::StatusOr<PerfOptions> options =
      Parse({"-a", "-m", "m", "-p", "750", "-s", "30", "-r", "6", "-z", "--async"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->measurement_interval, absl::Milliseconds(750));
  EXPECT_EQ(options->stability_percentage, 30);
  EXPECT_EQ(options->max_trials, 6);
  EXPECT_EQ(options->input_data, "zero");
  EXPECT_EQ(options->model, "m");

  absl::StatusOr<PerfOptions> defaults = Parse({"-m", "m", "-a"});
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->measurement_interval, absl::Milliseconds(5000));
  EXPECT_EQ(defaults->input_data, "random");

  // The short flags check their values as the long ones do.
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"-m", "m", "-p", "0"}, "--measurement-interval"},
      {{"-m", "m", "-s", "-5"}, "--stability-percentage"},
      {{"-m", "m", "-r", "x"}, "--max-trials"},
      {{"-m", "m", "-p"}, "needs a value"},
  };
  for (const auto& [args, message] : bad) {
    absl::StatusOr<PerfOptions> refused = Parse(args);
    ASSERT_FALSE(refused.ok()) << args.back();
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr(message));
  }
}

TEST(PerfOptionsTest, RangesExpandIntoLevels) {
  absl::StatusOr<PerfOptions> concurrency = Parse({"-m", "m", "--concurrency-range", "1:8:3"});
  ASSERT_TRUE(concurrency.ok()) << concurrency.status();
  EXPECT_THAT(concurrency->levels, ElementsAre(1, 4, 7));
  absl::StatusOr<PerfOptions> rate = Parse(
      {"-m", "m", "--request-rate-range", "0.5:1.5:0.5", "--request-distribution", "poisson"});
  ASSERT_TRUE(rate.ok()) << rate.status();
  EXPECT_EQ(rate->mode, LoadMode::kRequestRate);
  EXPECT_EQ(rate->distribution, RequestDistribution::kPoisson);
  EXPECT_THAT(rate->levels, ElementsAre(0.5, 1, 1.5));
  EXPECT_THAT(*ParseLevelRange("3", true), ElementsAre(3));
  EXPECT_THAT(*ParseLevelRange("2:4", true), ElementsAre(2, 3, 4));
  EXPECT_THAT(*ParseLevelRange("0.1:0.3:0.1", false), ElementsAre(0.1, 0.2, 0.30000000000000004));
}

TEST(PerfOptionsTest, BadRangesAreRefused) {
  for (const std::string range : {"0", "4:1", "1:4:0", "1.5", "a", "1:2:3:4", "", "-1:2"}) {
    EXPECT_EQ(ParseLevelRange(range, true).status().code(), absl::StatusCode::kInvalidArgument)
        << range;
  }
  EXPECT_TRUE(ParseLevelRange("1.5:2", false).ok());
  // Levels a thread count or a send interval cannot hold.
  EXPECT_EQ(ParseLevelRange("1e10", true).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseLevelRange("1e13", false).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseLevelRange("1e-300", false).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PerfOptionsTest, UsageErrorsNameTheProblem) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--concurrency-range", "1"}, "-m/--model is required"},
      {{"-m", "m", "--concurrency-range", "1", "--request-rate-range", "5"}, "not both"},
      {{"-m", "m", "--no-such-flag", "1"}, "unknown flag --no-such-flag"},
      {{"-m", "m", "positional"}, "unexpected argument 'positional'"},
      {{"-m", "m", "--shared-memory", "cuda"}, "--shared-memory"},
      {{"-m", "m", "--concurrency-range", "0:4"}, "--concurrency-range: '0:4' is not"},
      {{"-m", "m", "--request-rate-range", "5:1"}, "--request-rate-range: '5:1' is not"},
      {{"-m", "m", "-i", "http"}, "grpc"},
      {{"-m", "m", "--shape", "3,4"}, "--shape"},
      {{"-m", "m", "--shape", "x:3,-4"}, "--shape"},
      {{"-m", "m", "-b", "0"}, "--batch-size"},
      {{"-m", "m", "-H", "novalue"}, "NAME:VALUE"},
      {{"-m", "m", "--stage", "TRAIN"}, "INFERENCE or EXPORT"},
      {{"-m", "m", "--stability-percentage", "0"}, "--stability-percentage"},
      {{"-m", "m", "--measurement-interval"}, "needs a value"},
  };
  for (const auto& [args, message] : cases) {
    absl::StatusOr<PerfOptions> options = Parse(args);
    ASSERT_FALSE(options.ok()) << args.back();
    EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(options.status().message()), HasSubstr(message));
  }
}

TEST(PerfOptionsTest, ValueLessFlags) {
  absl::StatusOr<PerfOptions> help = Parse({"--help"});
  ASSERT_TRUE(help.ok()) << help.status();
  EXPECT_TRUE(help->help);
  absl::StatusOr<PerfOptions> bare = Parse({"--ssl-grpc-use-ssl", "-m", "m"});
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_TRUE(bare->client.use_tls);
  absl::StatusOr<PerfOptions> off = Parse({"--ssl-grpc-use-ssl", "false", "-m", "m"});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->client.use_tls);
  absl::StatusOr<PerfOptions> files =
      Parse({"-m", "m", "--ssl-grpc-root-certifications-file", "ca.pem",
             "--ssl-grpc-private-key-file", "c.key", "--ssl-grpc-certificate-chain-file", "c.pem"});
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(files->client.root_certificates_file, "ca.pem");
  EXPECT_EQ(files->client.private_key_file, "c.key");
  EXPECT_EQ(files->client.certificate_chain_file, "c.pem");
}

}  // namespace
}  // namespace torchbricks::perf
