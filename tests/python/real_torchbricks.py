"""Imports the real torchbricks, at a given release, for the tests.

0.4.2 is the `torchbricks` installed from PyPI in the project's Python environment (pinned in
requirements/python.txt, with its real dependencies typeguard, torchmetrics, torchvision and
onnx). 0.1.0 (the same package name, so not installable beside it) comes from
`../shared/torchbricks/0.1.0/` beside the repository (override the folder with
$TORCHBRICKS_RELEASES). A release found neither way (an installed torchbricks of another
version, say) falls back to its folder; with neither, the tests that need it are skipped
with the reason.

Both releases are the package `torchbricks`, so only one can be imported at a time:
`release(name)` imports it, and forgets it again (sys.modules and sys.path restored) on exit.
"""
import contextlib
import importlib
import importlib.metadata
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
RELEASES_DIR = Path(os.environ.get("TORCHBRICKS_RELEASES", REPO.parent / "shared" / "torchbricks"))
RELEASES = ("0.1.0", "0.4.2")


def _installed_version() -> Optional[str]:
    try:
        return importlib.metadata.version("torchbricks")
    except importlib.metadata.PackageNotFoundError:
        return None


def _forget(prefixes) -> dict:
    gone = {}
    for name in list(sys.modules):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            gone[name] = sys.modules.pop(name)
    return gone


def where(release: str) -> str:
    """Where `release` comes from ("installed torchbricks X" or "<folder>"); skips the
    calling test, with the reason, when it is available from neither."""
    installed = _installed_version()
    if installed == release:
        return f"installed torchbricks {installed}"
    folder = RELEASES_DIR / release
    if (folder / "torchbricks" / "__init__.py").is_file():
        return str(folder)
    pytest.skip(f"the real torchbricks {release} is not available: not installed"
                f"{f' (installed: {installed})' if installed else ''} and no folder {folder} "
                f"(set $TORCHBRICKS_RELEASES)")


@contextlib.contextmanager
def release(name: str) -> Iterator[SimpleNamespace]:
    """Imports torchbricks `name` (skipping the test when it is unavailable) and yields
    SimpleNamespace(path=..., torchbricks=module, version=name); forgets it on exit."""
    source = where(name)
    added = [] if source.startswith("installed") else [source]
    saved_path = list(sys.path)
    saved_modules = _forget(["torchbricks"])
    sys.path[:0] = added
    try:
        yield SimpleNamespace(path=source, torchbricks=importlib.import_module("torchbricks"), version=name)
    finally:
        _forget(["torchbricks"])
        sys.path[:] = saved_path
        sys.modules.update(saved_modules)
