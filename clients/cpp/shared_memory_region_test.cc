#include "clients/cpp/shared_memory_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace torchbricks::client {
namespace {

std::string UniqueKey(absl::string_view stem) {
  return absl::StrCat("/tb-client-test-", stem, "-", getpid());
}

TEST(SharedMemoryRegionTest, WritesAreSeenThroughAnotherMappingAndDestructionUnlinks) {
  const std::string key = UniqueKey("seen");
  {
    absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
        SharedMemoryRegion::Create(key, 64);
    ASSERT_TRUE(region.ok()) << region.status();
    EXPECT_EQ((*region)->key(), key);
    EXPECT_EQ((*region)->byte_size(), 64);
    ASSERT_TRUE((*region)->Write(8, "hello").ok());
    const int fd = shm_open(key.c_str(), O_RDONLY, 0);
    ASSERT_GE(fd, 0);
    char buffer[5] = {};
    ASSERT_EQ(pread(fd, buffer, 5, 8), 5);
    close(fd);
    EXPECT_EQ(std::string(buffer, 5), "hello");
    absl::StatusOr<std::string> read = (*region)->Read(8, 5);
    ASSERT_TRUE(read.ok());
    EXPECT_EQ(*read, "hello");
    EXPECT_EQ((*region)->data()[0], 0);  // zero-filled
  }
  EXPECT_FALSE(std::filesystem::exists("/dev/shm" + key));
}

TEST(SharedMemoryRegionTest, OutOfRangeAccessesAreRefused) {
  absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
      SharedMemoryRegion::Create(UniqueKey("range"), 16);
  ASSERT_TRUE(region.ok()) << region.status();
  EXPECT_EQ((*region)->Write(12, "12345").code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ((*region)->Write(-1, "1").code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ((*region)->Read(10, 7).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE((*region)->Write(11, "12345").ok());
}

TEST(SharedMemoryRegionTest, BadKeysSizesAndExistingObjectsAreRefused) {
  EXPECT_EQ(SharedMemoryRegion::Create("/a/b", 8).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SharedMemoryRegion::Create("..", 8).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SharedMemoryRegion::Create(UniqueKey("size"), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::string key = UniqueKey("twice");
  absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> first = SharedMemoryRegion::Create(key, 8);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(SharedMemoryRegion::Create(key.substr(1), 8).status().code(),
            absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace torchbricks::client
