#include "clients/cpp/grpc_status.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace torchbricks::client {

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::Status FromStreamErrorMessage(absl::string_view message) {
  // absl's codes run from 1 (CANCELLED) to 16 (UNAUTHENTICATED).
  for (int code = 1; code <= 16; ++code) {
    const auto status_code = static_cast<absl::StatusCode>(code);
    const std::string prefix = absl::StrCat(absl::StatusCodeToString(status_code), ": ");
    if (absl::StartsWith(message, prefix)) {
      return absl::Status(status_code, message.substr(prefix.size()));
    }
  }
  return absl::UnknownError(message);
}

}  // namespace torchbricks::client
