// Resolution of brick input/output names against the collection that encloses a brick.
// Names starting with '.' are relative and normalised like POSIX paths; others are
// absolute. Pure functions; thread-safe.
//
//   ResolveName("head0", "./logits")        -> "head0/logits"
//   ResolveName("head1/nested", "../x")     -> "head1/x"
//   ResolveName("", "../x")                 -> InvalidArgument (climbs above the root)
#ifndef TORCHBRICKS_CORE_GRAPH_NAMING_H_
#define TORCHBRICKS_CORE_GRAPH_NAMING_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace torchbricks {

// Input names with a meaning of their own; never resolved, never produced by a brick.
inline constexpr absl::string_view kStageInputName = "stage";
inline constexpr absl::string_view kAllInputName = "__all__";

// Resolves `name` as written inside the collection at `collection_path` ("" for the root,
// "head1/nested" for a nested one). Absolute names are returned unchanged.
// Returns InvalidArgument when a relative name climbs above the root or resolves to "".
absl::StatusOr<std::string> ResolveName(absl::string_view collection_path, absl::string_view name);

// Joins a collection path and a child name: JoinPath("head0", "loss") == "head0/loss".
std::string JoinPath(absl::string_view collection_path, absl::string_view child);

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_GRAPH_NAMING_H_
