// SharedMemoryRegions: the system shared-memory regions clients registered (Triton's
// system_shared_memory extension), each a mapping of a POSIX shared-memory object that input
// tensors are copied out of and output tensors written into. Every access to a region goes
// through GuardedMemoryCopy, so an object that loses memory behind the server's back (shrunk,
// or its /dev/shm full) fails the request instead of killing the process with SIGBUS.
// A region is held by shared pointer: unregistering it while requests use it only drops the
// registry's reference, and the mapping lives until the last request lets go. Thread-safe.
//
//   SharedMemoryRegions regions;
//   RETURN_IF_ERROR(regions.Register("in0", "/client_inputs", 0, 1 << 20));
//   SharedMemoryLease lease(&regions);   // per request
//   ASSIGN_OR_RETURN(SharedMemorySlice slice, lease.Slice("x", {"in0", 0, 4096}));
//   RETURN_IF_ERROR(slice.CopyTo(buffer));
#ifndef TORCHBRICKS_SERVER_GRPC_SHARED_MEMORY_REGIONS_H_
#define TORCHBRICKS_SERVER_GRPC_SHARED_MEMORY_REGIONS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace torchbricks::server {

// Where one tensor lies in a registered region: the tensor parameters
// shared_memory_region, shared_memory_offset (default 0) and shared_memory_byte_size.
struct ShmPlacement {
  std::string region;
  int64_t offset = 0;
  int64_t byte_size = 0;
};

// One registered region: `byte_size` bytes at `offset` of the object `key`, mapped
// read-write, its pages reserved at registration. Unmapped when the last holder lets go.
class SharedMemoryRegion {
 public:
  // Takes `fd` (the object, kept open to re-check its size) and the mapping.
  SharedMemoryRegion(std::string name, std::string key, uint64_t offset, uint64_t byte_size, int fd,
                     char* mapping, size_t mapped_bytes, char* data)
      : fd_(fd),
        name_(std::move(name)),
        key_(std::move(key)),
        offset_(offset),
        byte_size_(byte_size),
        mapping_(mapping),
        mapped_bytes_(mapped_bytes),
        data_(data) {}
  ~SharedMemoryRegion();
  SharedMemoryRegion(const SharedMemoryRegion&) = delete;
  SharedMemoryRegion& operator=(const SharedMemoryRegion&) = delete;

  const std::string& name() const { return name_; }
  const std::string& key() const { return key_; }
  uint64_t offset() const { return offset_; }
  uint64_t byte_size() const { return byte_size_; }
  // True while the object still holds the whole region. A process that can write the
  // object can shrink it at any time, and touching a mapped page past its end raises
  // SIGBUS: this check, made per request, refuses a region known to be short before any
  // copy; the copies themselves are guarded against what happens after it.
  bool ObjectCoversRegion() const;
  // Copies `destination.size()` bytes from the region, starting `offset` bytes in, into
  // `destination`. InvalidArgument when the range is not inside the region; when a page
  // faults (SIGBUS): FailedPrecondition if the object was made smaller than the region,
  // else ResourceExhausted (no memory for the page); `destination` is then unspecified.
  absl::Status Read(uint64_t offset, absl::Span<char> destination) const;
  // Copies `source` into the region, starting `offset` bytes in. Errors as Read; on a
  // fault part of `source` may have been written.
  absl::Status Write(uint64_t offset, absl::string_view source) const;

 private:
  // InvalidArgument when `bytes` bytes at `offset` are not inside the region.
  absl::Status CheckRange(uint64_t offset, size_t bytes) const;
  // The error for a copy that faulted while `doing` ("reading", "writing") the region.
  absl::Status CopyFault(absl::string_view doing) const;

  int fd_;
  std::string name_;
  std::string key_;
  uint64_t offset_;
  uint64_t byte_size_;
  char* mapping_;
  size_t mapped_bytes_;
  char* data_;
};

class SharedMemoryRegions {
 public:
  // Regions registered at once at most; one more is ResourceExhausted.
  // Each region keeps its object open: 256 leaves most of a 1,024-descriptor limit free.
  static constexpr size_t kMaxRegions = 256;

  struct Entry {
    std::string name;
    std::string key;
    uint64_t offset = 0;
    uint64_t byte_size = 0;
  };

  SharedMemoryRegions() = default;
  SharedMemoryRegions(const SharedMemoryRegions&) = delete;
  SharedMemoryRegions& operator=(const SharedMemoryRegions&) = delete;

  // Maps `byte_size` bytes at `offset` of the POSIX shared-memory object `key` as region
  // `name`, and reserves the object's pages for that range (fallocate, which keeps the
  // object's size and contents): an object made by shm_open + ftruncate has no pages yet,
  // and a page its file system cannot supply would fault when first written.
  // InvalidArgument for a name that is empty, longer than 128 bytes or not printable, a key
  // that is not a shared-memory name (an optional '/', then 1-255 letters, digits, '.', '_'
  // or '-', not "." or ".."), a zero size, or a range past the object's end; NotFound when
  // no such object exists; AlreadyExists for a name in use; ResourceExhausted past
  // kMaxRegions, or when the pages cannot be reserved (the object's file system, /dev/shm,
  // is full). Nothing changes in the registry on error (pages reserved before a failure
  // may stay with the object, as writing them would have left them).
  absl::Status Register(const std::string& name, const std::string& key, uint64_t offset,
                        uint64_t byte_size);
  // Forgets region `name` (every region when empty). OK for a name not registered, so
  // that clean-up can be repeated. Mappings still used by requests stay until they finish.
  void Unregister(const std::string& name);
  // The region `name`, or every region (by name) when empty. NotFound for a name not
  // registered.
  absl::StatusOr<std::vector<Entry>> Status(const std::string& name) const;
  // The region `name`, or null.
  std::shared_ptr<const SharedMemoryRegion> Find(const std::string& name) const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const SharedMemoryRegion>> regions_ ABSL_GUARDED_BY(mu_);
};

// Where one tensor lies in a region a SharedMemoryLease holds: valid (and its copies safe)
// while that lease lives. Cheap to copy.
class SharedMemorySlice {
 public:
  SharedMemorySlice(const SharedMemoryRegion* region, uint64_t offset, size_t size)
      : region_(region), offset_(offset), size_(size) {}

  size_t size() const { return size_; }
  const std::string& region_name() const { return region_->name(); }
  // Copies the slice's size() bytes into `destination`. Errors as SharedMemoryRegion::Read.
  absl::Status CopyTo(char* destination) const {
    return region_->Read(offset_, absl::Span<char>(destination, size_));
  }
  // Writes `bytes` at the slice's start. InvalidArgument when it is longer than size();
  // other errors as SharedMemoryRegion::Write.
  absl::Status CopyFrom(absl::string_view bytes) const;

 private:
  const SharedMemoryRegion* region_;
  uint64_t offset_;
  size_t size_;
};

// The regions one request uses, held until the lease is destroyed (after the response is
// written). Not thread-safe; one per request.
class SharedMemoryLease {
 public:
  // `regions` is borrowed for the lease's life; null means shared memory is off.
  explicit SharedMemoryLease(const SharedMemoryRegions* regions) : regions_(regions) {}
  SharedMemoryLease(const SharedMemoryLease&) = delete;
  SharedMemoryLease& operator=(const SharedMemoryLease&) = delete;

  // The place `placement` names, for tensor `tensor`, held until the lease goes.
  // FailedPrecondition when shared memory is off, or when the region's object was made
  // smaller than the region; NotFound for an unknown region; InvalidArgument for a
  // negative offset or size, or a range past the region's end.
  absl::StatusOr<SharedMemorySlice> Slice(absl::string_view tensor, const ShmPlacement& placement);

 private:
  const SharedMemoryRegions* regions_;
  std::vector<std::shared_ptr<const SharedMemoryRegion>> held_;
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_SHARED_MEMORY_REGIONS_H_
