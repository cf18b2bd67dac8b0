#include "server/grpc/grpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace torchbricks::server {

std::string ShortenForClient(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  const size_t kept = max_bytes > 64 ? max_bytes - 64 : max_bytes;
  return absl::StrCat(text.substr(0, kept), "... (", text.size() - kept, " more bytes)");
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      ShortenForClient(status.message(), kMaxStatusMessageBytes));
}

}  // namespace torchbricks::server
