#include "base/command_line.h"

#include "gtest/gtest.h"

namespace torchbricks {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

TEST(SplitFlagValuesTest, BothSpellingsInOrder) {
  auto pairs = SplitFlagValues({"--a", "1", "--b=two", "--c", "--not-a-flag-but-a-value"});
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  EXPECT_EQ(*pairs, (Pairs{{"--a", "1"}, {"--b", "two"}, {"--c", "--not-a-flag-but-a-value"}}));
}

TEST(SplitFlagValuesTest, TrailingFlagWithoutValueIsInvalid) {
  auto pairs = SplitFlagValues({"--a", "1", "--lonely"});
  ASSERT_FALSE(pairs.ok());
  EXPECT_EQ(pairs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pairs.status().message(), "--lonely needs a value");
}

TEST(ParseCommandLineTest, PositionalArgumentsBetweenFlags) {
  auto parsed = ParseCommandLine({"repo/m/1", "--rtol", "1e-3", "extra", "--stage=EXPORT"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->positional, (std::vector<std::string>{"repo/m/1", "extra"}));
  EXPECT_EQ(parsed->flags, (Pairs{{"--rtol", "1e-3"}, {"--stage", "EXPORT"}}));
}

TEST(ParseCommandLineTest, TrailingFlagWithoutValueIsInvalid) {
  auto parsed = ParseCommandLine({"dir", "--atol"});
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "--atol needs a value");
}

}  // namespace
}  // namespace torchbricks
