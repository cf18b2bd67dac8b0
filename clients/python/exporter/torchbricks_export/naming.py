"""Resolution of brick input/output names against the enclosing collection.

A name starting with "." is relative and normalised like a POSIX path: for a brick in
collection `head1/nested`, "./x" -> "head1/nested/x" and "../x" -> "head1/x". Names without a
leading "." are absolute and kept as written. The special inputs are never resolved.
"""
from typing import Sequence

from .errors import ExportError

SPECIAL_INPUTS = ("stage", "__all__")


def resolve_name(name: str, collection_path: Sequence[str], brick: str) -> str:
    """Returns the absolute form of `name` for a brick inside `collection_path`.

    `brick` (the brick's full name) is only used in error messages. Raises ExportError for a
    relative name that climbs above the root or contains an empty component.
    """
    if not isinstance(name, str) or not name:
        raise ExportError(f"brick '{brick}': input/output names must be non-empty strings, got {name!r}")
    if name in SPECIAL_INPUTS or not name.startswith("."):
        return name
    parts = list(collection_path)
    for part in name.split("/"):
        if part == ".":
            continue
        if part == "..":
            if not parts:
                raise ExportError(f"brick '{brick}': relative name '{name}' climbs above the root collection")
            parts.pop()
        elif part:
            parts.append(part)
        else:
            raise ExportError(f"brick '{brick}': relative name '{name}' has an empty component")
    if not parts:
        raise ExportError(f"brick '{brick}': relative name '{name}' resolves to the root collection")
    return "/".join(parts)
