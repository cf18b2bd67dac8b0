#include "server/grpc/shared_memory_regions.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace torchbricks::server {
namespace {

// A POSIX shared-memory object of `bytes` bytes for one test, removed afterwards.
class ShmObject {
 public:
  explicit ShmObject(size_t bytes)
      : key_(absl::StrCat("/tb_regions_test_", getpid(), "_", counter_++)) {
    const int fd = shm_open(key_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(bytes)), 0);
    close(fd);
  }
  ~ShmObject() { shm_unlink(key_.c_str()); }
  const std::string& key() const { return key_; }

 private:
  static inline int counter_ = 0;
  std::string key_;
};

TEST(SharedMemoryRegionsTest, RegistersListsAndUnregisters) {
  ShmObject object(8192);
  SharedMemoryRegions regions;
  ASSERT_TRUE(regions.Register("a", object.key(), 100, 4000).ok());
  EXPECT_EQ(regions.Register("a", object.key(), 0, 10).code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(regions.Register("b", object.key().substr(1), 0, 8192).ok());  // no leading '/'
  auto all = regions.Status("");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "a");
  EXPECT_EQ((*all)[0].offset, 100u);
  EXPECT_EQ((*all)[0].byte_size, 4000u);
  EXPECT_EQ(regions.Status("zzz").status().code(), absl::StatusCode::kNotFound);
  regions.Unregister("a");
  regions.Unregister("a");  // again: still fine
  EXPECT_EQ(regions.Find("a"), nullptr);
  regions.Unregister("");
  EXPECT_TRUE(regions.Status("")->empty());
}

TEST(SharedMemoryRegionsTest, RefusesKeysThatAreNotShmNamesAndRangesPastTheEnd) {
  ShmObject object(4096);
  SharedMemoryRegions regions;
  for (const char* key : {"", "/", "..", "/..", ".", "a/b", "/a/b", "../x", "/dev/shm/x", "a b"}) {
    EXPECT_EQ(regions.Register("r", key, 0, 1).code(), absl::StatusCode::kInvalidArgument) << key;
  }
  EXPECT_EQ(regions.Register("r", "/tb_no_such_object_here", 0, 1).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(regions.Register("r", object.key(), 0, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(regions.Register("r", object.key(), 4000, 97).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(regions.Register("r", object.key(), UINT64_MAX, 2).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(regions.Register("", object.key(), 0, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(regions.Register("r", object.key(), 4000, 96).ok());
}

TEST(SharedMemoryRegionsTest, LeasesCheckBoundsAndKeepUnregisteredRegionsMapped) {
  ShmObject object(3 * 4096);
  SharedMemoryRegions regions;
  ASSERT_TRUE(regions.Register("r", object.key(), 5000, 1000).ok());  // not page-aligned
  SharedMemoryLease lease(&regions);
  auto slice = lease.Slice("x", {"r", 10, 990});
  ASSERT_TRUE(slice.ok()) << slice.status();
  EXPECT_EQ(slice->size(), 990u);
  EXPECT_EQ(lease.Slice("x", {"r", 10, 991}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(lease.Slice("x", {"r", -1, 1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(lease.Slice("x", {"r", 0, -1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(lease.Slice("x", {"q", 0, 1}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(slice->CopyFrom(std::string(991, 'x')).code(), absl::StatusCode::kInvalidArgument);

  // The region maps the object's bytes 5000.. : what is written shows in a second mapping.
  ASSERT_TRUE(slice->CopyFrom("hello").ok());
  regions.Unregister("r");  // the lease still holds the mapping
  ASSERT_TRUE(slice->CopyFrom("hello!").ok());
  std::string back(990, '\0');
  ASSERT_TRUE(slice->CopyTo(back.data()).ok());
  EXPECT_EQ(back.substr(0, 7), std::string("hello!\0", 7));
  const int fd = shm_open(object.key().c_str(), O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  void* view = mmap(nullptr, 3 * 4096, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  ASSERT_NE(view, MAP_FAILED);
  EXPECT_EQ(std::string(static_cast<char*>(view) + 5010, 6), "hello!");
  munmap(view, 3 * 4096);

  SharedMemoryLease off(nullptr);
  EXPECT_EQ(off.Slice("x", {"r", 0, 1}).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SharedMemoryRegionsTest, RegisteringReservesTheRegionsPagesWithoutChangingTheObject) {
  ShmObject object(64 * 4096);  // ftruncate only: no pages yet
  const int fd = shm_open(object.key().c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  struct stat before {};
  ASSERT_EQ(fstat(fd, &before), 0);
  ASSERT_EQ(before.st_blocks, 0);
  ASSERT_EQ(pwrite(fd, "kept", 4, 8 * 4096), 4);
  SharedMemoryRegions regions;
  ASSERT_TRUE(regions.Register("r", object.key(), 8 * 4096, 32 * 4096).ok());
  struct stat after {};
  ASSERT_EQ(fstat(fd, &after), 0);
  EXPECT_EQ(after.st_size, before.st_size);
  EXPECT_GE(after.st_blocks * 512, 32 * 4096);
  EXPECT_LT(after.st_blocks * 512, 64 * 4096);  // only the region's pages
  char kept[4] = {};
  ASSERT_EQ(pread(fd, kept, 4, 8 * 4096), 4);
  EXPECT_EQ(std::string(kept, 4), "kept");
  close(fd);
}

TEST(SharedMemoryRegionsTest, AnObjectShrunkAfterTheSizeCheckFailsTheCopyInsteadOfKilling) {
  ShmObject object(4 * 4096);
  SharedMemoryRegions regions;
  ASSERT_TRUE(regions.Register("r", object.key(), 0, 4 * 4096).ok());
  SharedMemoryLease lease(&regions);
  auto slice = lease.Slice("x", {"r", 4096, 3 * 4096});  // the size is checked here
  ASSERT_TRUE(slice.ok()) << slice.status();
  const int fd = shm_open(object.key().c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 0), 0);  // ... and the client shrinks the object after it
  close(fd);
  std::string buffer(3 * 4096, 'b');
  absl::Status read = slice->CopyTo(buffer.data());
  EXPECT_EQ(read.code(), absl::StatusCode::kFailedPrecondition) << read;
  EXPECT_NE(read.message().find("'r'"), absl::string_view::npos) << read;
  EXPECT_NE(read.message().find("made smaller"), absl::string_view::npos) << read;
  absl::Status written = slice->CopyFrom(buffer);
  EXPECT_EQ(written.code(), absl::StatusCode::kFailedPrecondition) << written;
  EXPECT_EQ(lease.Slice("x", {"r", 0, 1}).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace torchbricks::server
