"""Imports the real torchbricks, at a given release, for the tests.

The releases our users run live in `../shared/torchbricks/<release>/` beside the repository
(override the folder with $TORCHBRICKS_RELEASES). Where that folder is missing, a
pip-installed `torchbricks` of the same API flavour (0.1.x: `alive_stages`; >= 0.3: `tags`)
is used instead; with neither, the tests that need it are skipped with the reason.

Both releases are the package `torchbricks`, so only one can be imported at a time:
`release(name)` imports it, and forgets it again (sys.modules and sys.path restored) on exit.
The library imports `typeguard` and `torchmetrics`, which are not installable here; the
stand-ins in `stand_ins/` (see its README) are used only for a package that is missing.
"""
import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
RELEASES_DIR = Path(os.environ.get("TORCHBRICKS_RELEASES", REPO.parent / "shared" / "torchbricks"))
STAND_INS = Path(__file__).resolve().parent / "stand_ins"
RELEASES = ("0.1.0", "0.4.2")


def _flavour(version: str) -> str:
    major, minor = (int(part) for part in version.split(".")[:2])
    return "0.1.0" if (major, minor) < (0, 3) else "0.4.2"


def _installed_version() -> Optional[str]:
    try:
        return importlib.metadata.version("torchbricks")
    except importlib.metadata.PackageNotFoundError:
        return None


def _needs_stand_in(package: str) -> bool:
    if importlib.util.find_spec(package) is None:
        return True
    if package == "typeguard":  # both releases need typeguard >= 3 (Debian has 2.2.2)
        try:
            return int(importlib.metadata.version("typeguard").split(".")[0]) < 3
        except (importlib.metadata.PackageNotFoundError, ValueError):
            return True
    return False


def _forget(prefixes) -> dict:
    gone = {}
    for name in list(sys.modules):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            gone[name] = sys.modules.pop(name)
    return gone


def where(release: str) -> str:
    """Where `release` comes from ("<folder>" or "installed torchbricks X"); skips the
    calling test, with the reason, when it is available from neither."""
    folder = RELEASES_DIR / release
    if (folder / "torchbricks" / "__init__.py").is_file():
        return str(folder)
    installed = _installed_version()
    if installed is not None and _flavour(installed) == release:
        return f"installed torchbricks {installed}"
    pytest.skip(f"the real torchbricks {release} is not available: no folder {folder} (set "
                f"$TORCHBRICKS_RELEASES) and no installed torchbricks of its API flavour"
                f"{f' (installed: {installed})' if installed else ''}")


@contextlib.contextmanager
def release(name: str) -> Iterator[SimpleNamespace]:
    """Imports torchbricks `name` (skipping the test when it is unavailable) and yields
    SimpleNamespace(path=..., torchbricks=module, version=name); forgets it on exit."""
    source = where(name)
    added = []
    if not source.startswith("installed"):
        added.append(source)
    stand_ins = [package for package in ("typeguard", "torchmetrics") if _needs_stand_in(package)]
    if stand_ins:
        added.append(str(STAND_INS))
    saved_path = list(sys.path)
    saved_modules = _forget(["torchbricks", *stand_ins])
    sys.path[:0] = added
    try:
        yield SimpleNamespace(path=source, torchbricks=importlib.import_module("torchbricks"), version=name,
                              stand_ins=stand_ins)
    finally:
        _forget(["torchbricks", *stand_ins])
        sys.path[:] = saved_path
        sys.modules.update(saved_modules)
