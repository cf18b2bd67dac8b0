#include "clients/cpp/shared_memory_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace torchbricks::client {
namespace {

bool IsKeyCharacter(char c) { return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-'; }

// `key` with one leading '/', or InvalidArgument.
absl::StatusOr<std::string> NormalizedKey(absl::string_view key) {
  absl::string_view name = key;
  if (!name.empty() && name.front() == '/') name.remove_prefix(1);
  bool valid = !name.empty() && name.size() <= 255 && name != "." && name != "..";
  for (const char c : name) valid = valid && IsKeyCharacter(c);
  if (!valid) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", key,
                     "' is not a shared memory key: an optional '/', then 1..255 letters, digits, "
                     "'.', '_' or '-' (not '.' or '..')"));
  }
  return absl::StrCat("/", name);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> SharedMemoryRegion::Create(
    absl::string_view key, int64_t byte_size) {
  absl::StatusOr<std::string> normalized = NormalizedKey(key);
  if (!normalized.ok()) return normalized.status();
  if (byte_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("a shared memory region needs a positive size, not ", byte_size));
  }
  const int fd = shm_open(normalized->c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) {
    const int error = errno;
    if (error == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat("shared memory object '", *normalized, "' exists already"));
    }
    return absl::InternalError(absl::StrCat("cannot create shared memory object '", *normalized,
                                            "': ", std::strerror(error)));
  }
  void* address = MAP_FAILED;
  if (ftruncate(fd, byte_size) == 0) {
    address = mmap(nullptr, byte_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  const int error = errno;
  close(fd);  // the mapping keeps the memory; the name lives until unlinked
  if (address == MAP_FAILED) {
    shm_unlink(normalized->c_str());
    return absl::InternalError(absl::StrCat("cannot size or map shared memory object '",
                                            *normalized, "': ", std::strerror(error)));
  }
  return std::unique_ptr<SharedMemoryRegion>(
      new SharedMemoryRegion(*std::move(normalized), byte_size, address));
}

SharedMemoryRegion::~SharedMemoryRegion() {
  munmap(address_, byte_size_);
  shm_unlink(key_.c_str());
}

absl::Status SharedMemoryRegion::Write(int64_t offset, absl::string_view bytes) {
  const int64_t size = static_cast<int64_t>(bytes.size());
  if (offset < 0 || offset > byte_size_ || size > byte_size_ - offset) {
    return absl::OutOfRangeError(absl::StrCat(size, " bytes at offset ", offset,
                                              " do not fit in shared memory object '", key_,
                                              "' of ", byte_size_, " bytes"));
  }
  if (size > 0) std::memcpy(static_cast<char*>(address_) + offset, bytes.data(), bytes.size());
  return absl::OkStatus();
}

absl::StatusOr<std::string> SharedMemoryRegion::Read(int64_t offset, int64_t size) const {
  if (offset < 0 || size < 0 || offset > byte_size_ || size > byte_size_ - offset) {
    return absl::OutOfRangeError(absl::StrCat(size, " bytes at offset ", offset,
                                              " lie outside shared memory object '", key_, "' of ",
                                              byte_size_, " bytes"));
  }
  return std::string(static_cast<const char*>(address_) + offset, static_cast<size_t>(size));
}

}  // namespace torchbricks::client
