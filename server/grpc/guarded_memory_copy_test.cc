#include "server/grpc/guarded_memory_copy.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace torchbricks::server {
namespace {

// A shared mapping of a memory file of `pages` pages; Shrink() truncates the file to 0, after
// which touching the mapping raises SIGBUS.
class ShrinkableMapping {
 public:
  explicit ShrinkableMapping(size_t pages) : bytes_(pages * static_cast<size_t>(getpagesize())) {
    fd_ = memfd_create("guarded_memory_copy_test", 0);
    EXPECT_GE(fd_, 0);
    EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(bytes_)), 0);
    void* mapping = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    EXPECT_NE(mapping, MAP_FAILED);
    data_ = static_cast<char*>(mapping);
  }
  ~ShrinkableMapping() {
    munmap(data_, bytes_);
    close(fd_);
  }
  ShrinkableMapping(const ShrinkableMapping&) = delete;
  ShrinkableMapping& operator=(const ShrinkableMapping&) = delete;

  void Shrink(size_t to_bytes = 0) { ASSERT_EQ(ftruncate(fd_, static_cast<off_t>(to_bytes)), 0); }
  char* data() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  size_t bytes_;
  int fd_ = -1;
  char* data_ = nullptr;
};

bool SigbusBlocked() {
  sigset_t mask;
  sigprocmask(SIG_BLOCK, nullptr, &mask);
  return sigismember(&mask, SIGBUS) == 1;
}

TEST(GuardedMemoryCopyTest, CopiesLikeMemcpy) {
  ShrinkableMapping mapping(2);
  std::string source(mapping.size(), 'x');
  for (size_t i = 0; i < source.size(); ++i) source[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(GuardedMemoryCopy(mapping.data(), source.data(), source.size()).ok());
  std::string back(mapping.size(), '\0');
  ASSERT_TRUE(GuardedMemoryCopy(back.data(), mapping.data(), back.size()).ok());
  EXPECT_EQ(back, source);
  EXPECT_TRUE(GuardedMemoryCopy(nullptr, nullptr, 0).ok());
}

TEST(GuardedMemoryCopyTest, ReadingMemoryThatLostItsPagesFailsInsteadOfKilling) {
  ShrinkableMapping mapping(2);
  mapping.Shrink();
  std::string destination(mapping.size(), '\0');
  for (int attempt = 0; attempt < 3; ++attempt) {  // the guard re-arms after a fault
    absl::Status copied = GuardedMemoryCopy(destination.data(), mapping.data(), mapping.size());
    EXPECT_EQ(copied.code(), absl::StatusCode::kDataLoss) << copied;
    EXPECT_NE(copied.message().find("SIGBUS"), absl::string_view::npos);
    EXPECT_FALSE(SigbusBlocked());
  }
}

TEST(GuardedMemoryCopyTest, WritingMemoryThatLostItsPagesFailsInsteadOfKilling) {
  ShrinkableMapping mapping(2);
  mapping.Shrink();
  const std::string source(mapping.size(), 'y');
  absl::Status copied = GuardedMemoryCopy(mapping.data(), source.data(), source.size());
  EXPECT_EQ(copied.code(), absl::StatusCode::kDataLoss) << copied;
  EXPECT_FALSE(SigbusBlocked());
  // A copy whose first page is fine and the rest not still reports the fault.
  ShrinkableMapping partly(4);
  partly.Shrink(static_cast<size_t>(getpagesize()));
  const std::string longer(partly.size(), 'z');
  EXPECT_EQ(GuardedMemoryCopy(partly.data(), longer.data(), longer.size()).code(),
            absl::StatusCode::kDataLoss);
}

TEST(GuardedMemoryCopyTest, ThreadsFaultingAndCopyingAtOnceEachGetTheirOwnResult) {
  ShrinkableMapping lost(1);
  lost.Shrink();
  ShrinkableMapping kept(1);
  std::vector<int> failures(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::string buffer(kept.size(), '\0');
      for (int i = 0; i < 200; ++i) {
        const char* from = t % 2 == 0 ? lost.data() : kept.data();
        if (!GuardedMemoryCopy(buffer.data(), from, buffer.size()).ok()) ++failures[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(failures[t], t % 2 == 0 ? 200 : 0) << t;
}

// The process dies as it would without the guard: by SIGBUS, or under AddressSanitizer
// through its SIGBUS report (exit code 1).
bool DiedOfSigbus(int status) {
  return (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) ||
         (WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

TEST(GuardedMemoryCopyDeathTest, SigbusOutsideAGuardedCopyStillKills) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ShrinkableMapping mapping(1);
        char byte = 0;
        (void)GuardedMemoryCopy(&byte, "a", 1);  // installs the handler
        mapping.Shrink();
        *static_cast<volatile char*>(mapping.data()) = 1;  // a fault outside the guard
        _exit(0);
      },
      DiedOfSigbus, "");
  EXPECT_EXIT(
      {
        char byte = 0;
        (void)GuardedMemoryCopy(&byte, "a", 1);
        raise(SIGBUS);  // sent, not a fault
        _exit(0);
      },
      DiedOfSigbus, "");
}

}  // namespace
}  // namespace torchbricks::server
