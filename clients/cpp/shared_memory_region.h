// A POSIX shared-memory object (`/dev/shm/<key>` on Linux) created and mapped read-write by
// this process, for the server's system shared-memory extension: write inputs into it and
// read outputs from it, after registering it with
// InferenceClient::RegisterSystemSharedMemory. The object owns its mapping and unlinks the
// name when destroyed. Not thread-safe for concurrent writes to overlapping bytes; the
// mapping itself may be read and written from any thread.
//
//   absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
//       SharedMemoryRegion::Create("/my_inputs", 4 * 1024);
//   (*region)->Write(0, bytes);
//   client->RegisterSystemSharedMemory("inputs", (*region)->key(), (*region)->byte_size());
//
// The server must run on the same machine with `--allow-client-shm true`.
#ifndef TORCHBRICKS_CLIENTS_CPP_SHARED_MEMORY_REGION_H_
#define TORCHBRICKS_CLIENTS_CPP_SHARED_MEMORY_REGION_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace torchbricks::client {

class SharedMemoryRegion {
 public:
  // Creates shared-memory object `key` (an optional '/', then 1..255 letters, digits, '.',
  // '_' or '-', not "." or "..": what the server accepts) of `byte_size` zero bytes and maps
  // it. InvalidArgument for a bad key or a size that is not positive; AlreadyExists when
  // the object exists; Internal when the system refuses to create, size or map it (nothing
  // is left behind).
  static absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> Create(absl::string_view key,
                                                                    int64_t byte_size);

  // Unmaps and unlinks the object. A server that registered it keeps its own mapping until
  // the region is unregistered.
  ~SharedMemoryRegion();
  SharedMemoryRegion(const SharedMemoryRegion&) = delete;
  SharedMemoryRegion& operator=(const SharedMemoryRegion&) = delete;

  // The key with its leading '/' ("/my_inputs"), as RegisterSystemSharedMemory takes it.
  const std::string& key() const { return key_; }
  int64_t byte_size() const { return byte_size_; }

  // The mapped bytes; valid while this object lives.
  absl::Span<char> data() {
    return {static_cast<char*>(address_), static_cast<size_t>(byte_size_)};
  }

  // Copies `bytes` to `offset`. OutOfRange (nothing written) when they do not fit.
  absl::Status Write(int64_t offset, absl::string_view bytes);

  // A copy of `size` bytes at `offset`. OutOfRange when they lie outside the region.
  absl::StatusOr<std::string> Read(int64_t offset, int64_t size) const;

 private:
  SharedMemoryRegion(std::string key, int64_t byte_size, void* address)
      : key_(std::move(key)), byte_size_(byte_size), address_(address) {}

  const std::string key_;
  const int64_t byte_size_;
  void* const address_;
};

}  // namespace torchbricks::client

#endif  // TORCHBRICKS_CLIENTS_CPP_SHARED_MEMORY_REGION_H_
