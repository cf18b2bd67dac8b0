#include "core/graph/naming.h"

#include "gtest/gtest.h"

namespace torchbricks {
namespace {

TEST(ResolveNameTest, AbsoluteNamesAreUnchanged) {
  EXPECT_EQ(*ResolveName("head0", "features"), "features");
  EXPECT_EQ(*ResolveName("", "a/b"), "a/b");
}

TEST(ResolveNameTest, DotSlashJoinsTheEnclosingCollection) {
  EXPECT_EQ(*ResolveName("head0", "./logits"), "head0/logits");
  EXPECT_EQ(*ResolveName("", "./logits"), "logits");
  EXPECT_EQ(*ResolveName("a/b", "./c/d"), "a/b/c/d");
}

TEST(ResolveNameTest, DotDotClimbsOneCollection) {
  EXPECT_EQ(*ResolveName("head0", "../x"), "x");
  EXPECT_EQ(*ResolveName("head1/nested", "../x"), "head1/x");
  EXPECT_EQ(*ResolveName("a/b/c", "../../x"), "a/x");
  EXPECT_EQ(*ResolveName("a/b", "./../c/./d"), "a/c/d");
}

TEST(ResolveNameTest, ClimbingAboveTheRootIsRefused) {
  auto resolved = ResolveName("outer", "../../escape");
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(resolved.status().message().find("../../escape"), std::string::npos);
  EXPECT_NE(resolved.status().message().find("climbs above the root"), std::string::npos);
  EXPECT_FALSE(ResolveName("", "../x").ok());
}

TEST(ResolveNameTest, ResolvingToNothingIsRefused) {
  EXPECT_FALSE(ResolveName("a", "..").ok());
  EXPECT_FALSE(ResolveName("a", "").ok());
}

TEST(JoinPathTest, Joins) {
  EXPECT_EQ(JoinPath("", "x"), "x");
  EXPECT_EQ(JoinPath("head0", "loss"), "head0/loss");
}

}  // namespace
}  // namespace torchbricks
