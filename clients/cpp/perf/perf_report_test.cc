#include "clients/cpp/perf/perf_report.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace torchbricks::perf {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kPerfAnalyzerColumns[] =
    "Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,"
    "Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,"
    "p95 latency,p99 latency";

LevelResult Level(double level) {
  LevelResult result{.level = level, .windows = 4, .reported_windows = 3, .stable = true};
  result.requests = 300;
  result.seconds = 3;
  result.requests_per_second = 100;
  result.inferences_per_second = 200;
  result.latency = {.avg_us = 1000, .p50_us = 900, .p90_us = 1500, .p95_us = 1700, .p99_us = 2500};
  result.client_send_us = 20.4;
  result.client_recv_us = 9.6;
  result.server.success = {.count = 300, .ns = 300 * 800'000};
  result.server.queue = {.count = 300, .ns = 300 * 100'000};
  result.server.compute_input = {.count = 300, .ns = 300 * 50'000};
  result.server.compute_infer = {.count = 300, .ns = 300 * 600'000};
  result.server.compute_output = {.count = 300, .ns = 300 * 30'000};
  result.level_requests = 410;
  result.level_server.success.count = 410;
  result.level_bricks = {
      {.version = "1", .brick = "backbone", .runs = 40, .compute_ns = 40 * 500'000},
      {.version = "1", .brick = "loss", .runs = 0},
      {.version = "1", .brick = "head,odd", .runs = 40, .compute_ns = 40 * 1500}};
  return result;
}

TEST(LatencyCsvTest, PerfAnalyzerColumnsAndOneRowPerLevel) {
  const std::string csv = LatencyCsv(LoadMode::kConcurrency, {Level(1), Level(4)});
  const std::vector<std::string> lines = absl::StrSplit(csv, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], std::string("Concurrency,") + kPerfAnalyzerColumns);
  // 1000 - 20.4 - 9.6 - (100 + 50 + 600 + 30) = 190 us on the network and in the server's
  // own handling.
  EXPECT_EQ(lines[1], "1,200.00,20,190,100,50,600,30,10,900,1500,1700,2500");
  EXPECT_EQ(lines[2].substr(0, 2), "4,");
  EXPECT_EQ(LatencyCsv(LoadMode::kRequestRate, {Level(2.5)}).substr(0, 17), "Request Rate,Infe");
  EXPECT_EQ(absl::StrSplit(LatencyCsv(LoadMode::kRequestRate, {Level(2.5)}), '\n').begin()->size(),
            std::string("Request Rate,").size() + std::string(kPerfAnalyzerColumns).size());
}

TEST(LatencyCsvTest, OverheadNeverNegative) {
  LevelResult level = Level(1);
  level.latency.avg_us = 500;  // less than the parts: clocks of two processes disagree
  EXPECT_EQ(level.NetworkAndServerOverheadUs(), 0);
}

TEST(BrickCsvTest, BricksThatRanQuotedWhenNeeded) {
  const std::string csv = BrickCsv(LoadMode::kConcurrency, {Level(2)});
  EXPECT_EQ(csv,
            "Concurrency,Version,Brick,Runs,Avg Compute (us)\n"
            "2,1,backbone,40,500.0\n"
            "2,1,\"head,odd\",40,1.5\n");
}

TEST(JsonSummaryTest, ParsesBackWithBothSidesOfEachLevel) {
  PerfOptions options;
  options.model = "readme_dummy";
  options.mode = LoadMode::kRequestRate;
  const std::string json = JsonSummary(options, {Level(5)});
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok()) << json;
  EXPECT_EQ(parsed.fields().at("model").string_value(), "readme_dummy");
  EXPECT_EQ(parsed.fields().at("mode").string_value(), "request_rate");
  const auto& level = parsed.fields().at("levels").list_value().values(0).struct_value().fields();
  EXPECT_EQ(level.at("request_rate").number_value(), 5);
  EXPECT_EQ(level.at("client").struct_value().fields().at("requests").number_value(), 300);
  EXPECT_EQ(level.at("server").struct_value().fields().at("compute_infer_us").number_value(), 600);
  const auto& whole = level.at("level").struct_value().fields();
  EXPECT_EQ(whole.at("requests").number_value(), 410);
  EXPECT_EQ(whole.at("server").struct_value().fields().at("success_count").number_value(), 410);
  EXPECT_EQ(level.at("bricks").list_value().values_size(), 3);
}

TEST(PrintLevelTest, ShowsTheSplitAndTheBricks) {
  PerfOptions options;
  std::ostringstream out;
  PrintLevel(out, options, Level(3));
  EXPECT_THAT(out.str(), HasSubstr("Request concurrency: 3"));
  EXPECT_THAT(out.str(), HasSubstr("Throughput: 200.00 infer/sec"));
  EXPECT_THAT(out.str(), HasSubstr("queue 100 + compute input 50 + compute infer 600"));
  EXPECT_THAT(out.str(),
              HasSubstr("410 successful requests seen by the client, 410 by the server"));
  EXPECT_THAT(out.str(), HasSubstr("backbone"));
}

}  // namespace
}  // namespace torchbricks::perf
