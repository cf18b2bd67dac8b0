#include "core/graph/naming.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace torchbricks {

std::string JoinPath(absl::string_view collection_path, absl::string_view child) {
  if (collection_path.empty()) return std::string(child);
  return absl::StrCat(collection_path, "/", child);
}

absl::StatusOr<std::string> ResolveName(absl::string_view collection_path, absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("empty tensor name");
  if (name.front() != '.') return std::string(name);

  std::vector<std::string> parts;
  if (!collection_path.empty()) {
    parts = absl::StrSplit(collection_path, '/', absl::SkipEmpty());
  }
  for (absl::string_view part : absl::StrSplit(name, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      if (parts.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("relative name '", name, "' climbs above the root collection",
                         collection_path.empty() ? std::string()
                                                 : absl::StrCat(" from '", collection_path, "'")));
      }
      parts.pop_back();
      continue;
    }
    parts.emplace_back(part);
  }
  if (parts.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("relative name '", name, "' resolves to an empty name"));
  }
  return absl::StrJoin(parts, "/");
}

}  // namespace torchbricks
