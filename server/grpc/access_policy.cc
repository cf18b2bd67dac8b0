#include "server/grpc/access_policy.h"

#include <cstddef>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace torchbricks::server {
namespace {

constexpr absl::string_view kGroupNames[kProtocolGroups] = {
    "health",           "metadata",   "inference", "shared-memory", "model-config",
    "model-repository", "statistics", "trace",     "logging"};

constexpr absl::string_view kHeaderPrefix = "triton-grpc-protocol-";

bool IsKeyCharacter(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

// Compares in time that depends only on the lengths, so the answer's timing does not
// tell how much of a guessed value was right.
bool SameSecret(absl::string_view given, absl::string_view expected) {
  unsigned char difference = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    difference |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  }
  return difference == 0;
}

}  // namespace

absl::string_view ProtocolGroupName(ProtocolGroup group) {
  return kGroupNames[static_cast<int>(group)];
}

absl::StatusOr<ProtocolRestriction> ParseProtocolRestriction(absl::string_view flag_value) {
  const size_t colon = flag_value.find(':');
  const size_t equals = colon == absl::string_view::npos ? colon : flag_value.find('=', colon);
  if (equals == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "--grpc-restricted-protocol takes <group>[,<group>...]:<key>=<value>");
  }
  ProtocolRestriction restriction;
  for (absl::string_view name : absl::StrSplit(flag_value.substr(0, colon), ',')) {
    int found = -1;
    for (int g = 0; g < kProtocolGroups; ++g) {
      if (kGroupNames[g] == name) found = g;
    }
    if (found < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--grpc-restricted-protocol: unknown protocol group '", name,
                       "' (known: health, metadata, inference, shared-memory, model-config, "
                       "model-repository, statistics, trace, logging)"));
    }
    for (ProtocolGroup seen : restriction.groups) {
      if (seen == static_cast<ProtocolGroup>(found)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--grpc-restricted-protocol names '", name, "' twice"));
      }
    }
    restriction.groups.push_back(static_cast<ProtocolGroup>(found));
  }
  const absl::string_view key = flag_value.substr(colon + 1, equals - colon - 1);
  const absl::string_view value = flag_value.substr(equals + 1);
  if (key.empty() || key.size() > 200 || !std::all_of(key.begin(), key.end(), IsKeyCharacter)) {
    return absl::InvalidArgumentError(
        "--grpc-restricted-protocol: the key must be 1-200 letters, digits, '-', '_' or '.'");
  }
  if (value.empty() || value.size() > 4096 ||
      !std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c < 0x7f; })) {
    return absl::InvalidArgumentError(
        "--grpc-restricted-protocol: the value must be 1-4096 printable ASCII characters");
  }
  restriction.header = absl::StrCat(kHeaderPrefix, absl::AsciiStrToLower(key));
  restriction.value = std::string(value);
  return restriction;
}

absl::StatusOr<AccessPolicy> AccessPolicy::Create(
    const std::vector<ProtocolRestriction>& restrictions) {
  AccessPolicy policy;
  for (const ProtocolRestriction& restriction : restrictions) {
    for (ProtocolGroup group : restriction.groups) {
      std::optional<Requirement>& slot = policy.required_[static_cast<int>(group)];
      if (slot.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "protocol group '", ProtocolGroupName(group),
            "' is in more than one --grpc-restricted-protocol; a group takes one header"));
      }
      slot = Requirement{restriction.header, restriction.value};
    }
  }
  return policy;
}

absl::Status AccessPolicy::Check(const grpc::ServerContextBase& context,
                                 ProtocolGroup group) const {
  const std::optional<Requirement>& required = required_[static_cast<int>(group)];
  if (!required.has_value()) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  auto [first, last] = metadata.equal_range(required->header);
  bool allowed = first != last;
  for (auto it = first; it != last; ++it) {
    allowed = allowed &&
              SameSecret(absl::string_view(it->second.data(), it->second.size()), required->value);
  }
  if (allowed) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "the '", ProtocolGroupName(group), "' protocol group is restricted: the call ",
      first == last ? "lacks" : "has a wrong value for", " the header '", required->header, "'"));
}

}  // namespace torchbricks::server
