#include "server/grpc/shared_memory_regions.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/grpc/guarded_memory_copy.h"

namespace torchbricks::server {
namespace {

constexpr size_t kMaxNameBytes = 128;
constexpr size_t kMaxKeyBytes = 255;

bool IsKeyCharacter(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

// The key's object name without its leading '/', or InvalidArgument.
absl::StatusOr<std::string> ObjectName(const std::string& key) {
  absl::string_view name = key;
  if (!name.empty() && name.front() == '/') name.remove_prefix(1);
  if (name.empty() || name.size() > kMaxKeyBytes || name == "." || name == ".." ||
      !std::all_of(name.begin(), name.end(), IsKeyCharacter)) {
    return absl::InvalidArgumentError(
        "the shared-memory key must be a POSIX shared-memory name: an optional '/', then 1-255 "
        "letters, digits, '.', '_' or '-' (no other '/', not '.' or '..')");
  }
  return std::string(name);
}

// Reserves the pages of [offset, offset + byte_size) of the object `fd` (named `path`) for
// region `name`, keeping its size and contents. OK where the file system cannot reserve
// (EOPNOTSUPP): writes stay guarded there.
absl::Status ReservePages(int fd, const std::string& name, const std::string& path, uint64_t offset,
                          uint64_t byte_size) {
  int result;
  do {
    result = fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                       static_cast<off_t>(byte_size));
  } while (result != 0 && errno == EINTR);
  if (result == 0) return absl::OkStatus();
  const int error = errno;
  if (error == EOPNOTSUPP || error == ENOSYS) return absl::OkStatus();
  if (error == ENOSPC || error == EDQUOT || error == ENOMEM) {
    return absl::ResourceExhaustedError(
        absl::StrCat("region '", name, "': no room for the ", byte_size,
                     " bytes of shared-memory object '", path, "' (", std::strerror(error),
                     "): its file system (/dev/shm) is full; free space there or make it larger"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "region '", name, "': cannot reserve the pages of '", path, "': ", std::strerror(error)));
}

}  // namespace

SharedMemoryRegion::~SharedMemoryRegion() {
  if (mapping_ != nullptr) munmap(mapping_, mapped_bytes_);
  if (fd_ >= 0) close(fd_);
}

bool SharedMemoryRegion::ObjectCoversRegion() const {
  struct stat status {};
  return fstat(fd_, &status) == 0 && status.st_size >= 0 &&
         static_cast<uint64_t>(status.st_size) >= offset_ + byte_size_;
}

absl::Status SharedMemoryRegion::CheckRange(uint64_t offset, size_t bytes) const {
  if (offset <= byte_size_ && bytes <= byte_size_ - offset) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("region '", name_, "': ", bytes, " bytes at ",
                                                 offset, " are outside its ", byte_size_,
                                                 " bytes"));
}

absl::Status SharedMemoryRegion::Read(uint64_t offset, absl::Span<char> destination) const {
  RETURN_IF_ERROR(CheckRange(offset, destination.size()));
  absl::Status copied = GuardedMemoryCopy(destination.data(), data_ + offset, destination.size());
  return copied.ok() ? copied : CopyFault("reading");
}

absl::Status SharedMemoryRegion::Write(uint64_t offset, absl::string_view source) const {
  RETURN_IF_ERROR(CheckRange(offset, source.size()));
  absl::Status copied = GuardedMemoryCopy(data_ + offset, source.data(), source.size());
  return copied.ok() ? copied : CopyFault("writing");
}

absl::Status SharedMemoryRegion::CopyFault(absl::string_view doing) const {
  if (!ObjectCoversRegion()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the shared-memory object '", key_, "' of region '", name_, "' was made smaller than ",
        "the region while ", doing, " it; register it again"));
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("no memory for a page of shared-memory object '", key_, "' of region '", name_,
                   "' while ", doing,
                   " it (SIGBUS): its file system (/dev/shm) is full, or the object lost "
                   "the page"));
}

absl::Status SharedMemorySlice::CopyFrom(absl::string_view bytes) const {
  if (bytes.size() > size_) {
    return absl::InvalidArgumentError(absl::StrCat("region '", region_->name(), "': ", bytes.size(),
                                                   " bytes do not fit in ", size_));
  }
  return region_->Write(offset_, bytes);
}

absl::Status SharedMemoryRegions::Register(const std::string& name, const std::string& key,
                                           uint64_t offset, uint64_t byte_size) {
  if (name.empty() || name.size() > kMaxNameBytes ||
      !std::all_of(name.begin(), name.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return absl::InvalidArgumentError(
        "a shared-memory region name must be 1-128 printable characters without spaces");
  }
  absl::StatusOr<std::string> object = ObjectName(key);
  if (!object.ok()) return object.status();
  if (byte_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat("region '", name, "': byte_size is 0"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (regions_.count(name) > 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("a shared-memory region named '", name, "' is registered already"));
    }
    if (regions_.size() >= kMaxRegions) {
      return absl::ResourceExhaustedError(absl::StrCat(
          kMaxRegions, " shared-memory regions are registered: unregister some first"));
    }
  }
  const std::string path = "/" + *object;
  const int fd = shm_open(path.c_str(), O_RDWR, 0);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) {
      return absl::NotFoundError(absl::StrCat("no shared-memory object '", path, "'"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open shared-memory object '", path, "': ", std::strerror(error)));
  }
  struct stat status {};
  const bool stated = fstat(fd, &status) == 0;
  const uint64_t object_bytes = stated ? static_cast<uint64_t>(status.st_size) : 0;
  if (!stated || offset > object_bytes || byte_size > object_bytes - offset) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        "region '", name, "': offset ", offset, " + byte_size ", byte_size,
        " is past the end of shared-memory object '", path, "' (", object_bytes, " bytes)"));
  }
  if (absl::Status reserved = ReservePages(fd, name, path, offset, byte_size); !reserved.ok()) {
    close(fd);
    return reserved;
  }
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t start = offset - offset % page;
  const size_t mapped_bytes = static_cast<size_t>(offset + byte_size - start);
  void* mapping = mmap(nullptr, mapped_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                       static_cast<off_t>(start));
  if (mapping == MAP_FAILED) {
    const int error = errno;
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("cannot map shared-memory object '", path, "': ", std::strerror(error)));
  }
  char* base = static_cast<char*>(mapping);
  auto region = std::make_shared<const SharedMemoryRegion>(name, key, offset, byte_size, fd, base,
                                                           mapped_bytes, base + (offset - start));
  absl::MutexLock lock(&mu_);
  if (!regions_.emplace(name, std::move(region)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("a shared-memory region named '", name, "' is registered already"));
  }
  return absl::OkStatus();
}

void SharedMemoryRegions::Unregister(const std::string& name) {
  // Unmapping happens when `dropped` goes, after the lock is released.
  std::vector<std::shared_ptr<const SharedMemoryRegion>> dropped;
  absl::MutexLock lock(&mu_);
  if (name.empty()) {
    for (auto& [unused, region] : regions_) dropped.push_back(std::move(region));
    regions_.clear();
    return;
  }
  auto it = regions_.find(name);
  if (it == regions_.end()) return;
  dropped.push_back(std::move(it->second));
  regions_.erase(it);
}

absl::StatusOr<std::vector<SharedMemoryRegions::Entry>> SharedMemoryRegions::Status(
    const std::string& name) const {
  std::vector<Entry> entries;
  absl::MutexLock lock(&mu_);
  for (const auto& [region_name, region] : regions_) {
    if (!name.empty() && region_name != name) continue;
    entries.push_back({region->name(), region->key(), region->offset(), region->byte_size()});
  }
  if (!name.empty() && entries.empty()) {
    return absl::NotFoundError(absl::StrCat("no shared-memory region named '", name, "'"));
  }
  return entries;
}

std::shared_ptr<const SharedMemoryRegion> SharedMemoryRegions::Find(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = regions_.find(name);
  return it == regions_.end() ? nullptr : it->second;
}

absl::StatusOr<SharedMemorySlice> SharedMemoryLease::Slice(absl::string_view tensor,
                                                           const ShmPlacement& placement) {
  if (regions_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("tensor '", tensor,
                     "' uses shared memory, which this server does not allow "
                     "(start it with --allow-client-shm true)"));
  }
  std::shared_ptr<const SharedMemoryRegion> region = regions_->Find(placement.region);
  if (region == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "tensor '", tensor, "': no shared-memory region named '", placement.region, "'"));
  }
  const uint64_t size = region->byte_size();
  if (placement.offset < 0 || placement.byte_size < 0 ||
      static_cast<uint64_t>(placement.offset) > size ||
      static_cast<uint64_t>(placement.byte_size) > size - static_cast<uint64_t>(placement.offset)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", tensor, "': offset ", placement.offset, " + byte_size ", placement.byte_size,
        " is outside region '", placement.region, "' (", size, " bytes)"));
  }
  if (!region->ObjectCoversRegion()) {
    return absl::FailedPreconditionError(
        absl::StrCat("tensor '", tensor, "': the shared-memory object of region '",
                     placement.region, "' was made smaller than the region; register it again"));
  }
  SharedMemorySlice slice(region.get(), static_cast<uint64_t>(placement.offset),
                          static_cast<size_t>(placement.byte_size));
  held_.push_back(std::move(region));
  return slice;
}

}  // namespace torchbricks::server
