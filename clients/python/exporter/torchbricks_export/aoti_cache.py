"""A compile cache for AOTInductor packages, shared by every export on this machine.

Compiling one brick with AOTInductor takes tens of seconds, and tests and CI export the same
bricks again and again. `compile_package` looks a program up by a key made of everything the
compiled code depends on and copies the cached `.pt2` on a hit; on a miss it compiles and
stores the result.

- Key: sha256 over the torch version, the program as `torch.export.save` writes it (graph,
  signature, batch range and every weight, so other weights or shapes miss), the package's
  file name (it names the folder inside the zip, so a hit is the file a compile would write),
  the inductor configs and the machine: architecture, CPU model and flags, torch's CPU
  capability and the C++ compiler's version (the code is compiled for this CPU).
- Location: `$TORCHBRICKS_AOTI_CACHE`, else `~/.cache/torchbricks/aoti`; the value `off`
  disables the cache.
- Bound: after each store the least recently used entries (a hit refreshes an entry's
  mtime) are deleted until the cache holds at most `$TORCHBRICKS_AOTI_CACHE_MAX_MB`
  megabytes (default 2048; a resnet18 package is about 47 MB).
- Safe across processes: entries are written to a temporary file and renamed into place, so
  a reader sees a whole package or none; an entry deleted under a reader is a miss. A cache
  that cannot be written only costs the compile time again (a warning says why).

Counters of hits and compiles in this process are kept for tests and logs (`counters()`).
"""
import hashlib
import io
import json
import logging
import os
import platform
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

CACHE_ENV = "TORCHBRICKS_AOTI_CACHE"
MAX_MB_ENV = "TORCHBRICKS_AOTI_CACHE_MAX_MB"
DEFAULT_MAX_MB = 2048
DISABLED = "off"
ENTRY_SUFFIX = ".pt2"
PARTIAL_SUFFIX = ".partial"
# A temporary file this old was left by a process that died while storing it.
STALE_PARTIAL_S = 3600

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheCounters:
    """What compile_package did in this process: packages copied from the cache, and packages
    compiled (cache misses, and every compile while the cache is off)."""

    hits: int = 0
    compiles: int = 0


_counters = CacheCounters()


def counters() -> CacheCounters:
    """A snapshot of this process's counters (compare two snapshots to see what a call did)."""
    return _counters


def cache_dir() -> Optional[Path]:
    """The cache folder from `$TORCHBRICKS_AOTI_CACHE` (default ~/.cache/torchbricks/aoti), or
    None when the variable is `off`. The folder is not created here."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() == DISABLED:
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "torchbricks" / "aoti"


def max_bytes() -> int:
    """The cache's size bound from `$TORCHBRICKS_AOTI_CACHE_MAX_MB` (default 2048 MB)."""
    value = os.environ.get(MAX_MB_ENV, "").strip()
    try:
        megabytes = float(value) if value else DEFAULT_MAX_MB
    except ValueError:
        warnings.warn(f"${MAX_MB_ENV}={value!r} is not a number; using {DEFAULT_MAX_MB}", stacklevel=2)
        megabytes = DEFAULT_MAX_MB
    return max(0, int(megabytes * 1024 * 1024))


# Changes whenever how compile_package compiles changes in a way the other parts of the key do
# not show (2: compiled without gradients, so that `freezing` takes effect).
COMPILE_RECIPE = "2"


def cache_key(program: Any, package_name: str, inductor_configs: Mapping[str, Any]) -> str:
    """The hex sha256 that identifies the package AOTInductor compiles from `program`
    (a torch.export.ExportedProgram) under `package_name` with `inductor_configs` here."""
    serialized = io.BytesIO()
    torch.export.save(program, serialized)
    digest = hashlib.sha256()
    for part in (COMPILE_RECIPE, torch.__version__, package_name, json.dumps(dict(inductor_configs), sort_keys=True, default=repr),
                 machine_description()):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    digest.update(serialized.getvalue())
    return digest.hexdigest()


def machine_description() -> str:
    """What the compiled code depends on about this machine: architecture, CPU model and
    flags, torch's CPU capability and the C++ compiler's version."""
    parts = [platform.system(), platform.machine(), _cpu_model_and_flags()]
    try:
        parts.append(torch.backends.cpu.get_cpu_capability())
    except AttributeError:
        pass
    try:
        from torch._inductor import cpp_builder
        parts.append(cpp_builder.get_compiler_version_info(cpp_builder.get_cpp_compiler()))
    except Exception:  # a private helper of torch: without it, the compiler is simply not keyed
        pass
    return "\n".join(parts)


def _cpu_model_and_flags() -> str:
    """The first processor's model name and flags from /proc/cpuinfo ("" where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor()
    wanted = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "flags", "Features", "CPU part") and key not in wanted:
            wanted[key] = value.strip()
        if not line.strip() and wanted:
            break  # the first processor's block is enough
    return "\n".join(f"{key}: {value}" for key, value in sorted(wanted.items()))


def compile_package(program: Any, package_path: Path, inductor_configs: Mapping[str, Any]) -> bool:
    """Writes the AOTInductor package of `program` to `package_path`; True when it was copied
    from the cache, False when it was compiled. Compile errors propagate unchanged."""
    global _counters
    package_path = Path(package_path)
    directory = cache_dir()
    key = cache_key(program, package_path.name, inductor_configs) if directory is not None else ""
    if directory is not None and _copy_entry(directory / (key + ENTRY_SUFFIX), package_path):
        _counters = replace(_counters, hits=_counters.hits + 1)
        _log.info("AOTInductor cache hit for %s (%s)", package_path.name, key[:12])
        return True
    from torch._inductor import aoti_compile_and_package

    started = time.monotonic()
    # no_grad: Inductor applies the `freezing` config (weights as constants, packed for oneDNN)
    # only when gradients are off; with them on it is silently ignored.
    with warnings.catch_warnings(), torch.no_grad():
        # A deprecation inside torch's own compile code: nothing the exporting user can act on.
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                category=FutureWarning)
        aoti_compile_and_package(program, package_path=str(package_path), inductor_configs=dict(inductor_configs))
    _counters = replace(_counters, compiles=_counters.compiles + 1)
    _log.info("AOTInductor compiled %s in %.1f s", package_path.name, time.monotonic() - started)
    if directory is not None:
        store(directory, key, package_path)
    return False


def _copy_entry(entry: Path, destination: Path) -> bool:
    """Copies a cache entry to `destination` and marks it recently used; False when absent."""
    try:
        shutil.copyfile(entry, destination)
    except (FileNotFoundError, NotADirectoryError):  # not cached (or no cache folder yet)
        return False
    except OSError as error:
        warnings.warn(f"AOTInductor cache entry {entry} cannot be read ({error}); compiling instead", stacklevel=3)
        return False
    try:
        os.utime(entry)
    except OSError:
        pass  # deleted meanwhile, or a read-only cache: it stays usable as it is
    return True


def store(directory: Path, key: str, package: Path) -> None:
    """Adds `package` to the cache under `key` (atomically), then enforces the size bound.
    A cache that cannot be written is warned about and left as it is."""
    partial = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(prefix=f".{key[:16]}-", suffix=PARTIAL_SUFFIX, dir=directory)
        os.close(handle)
        shutil.copyfile(package, partial)
        os.replace(partial, directory / (key + ENTRY_SUFFIX))
    except OSError as error:
        if partial is not None:
            Path(partial).unlink(missing_ok=True)
        warnings.warn(f"AOTInductor cache {directory} cannot be written ({error}); set ${CACHE_ENV}=off "
                      "or point it at a writable folder", stacklevel=3)
        return
    prune(directory, max_bytes(), keep=key + ENTRY_SUFFIX)


def prune(directory: Path, limit: int, keep: str = "") -> None:
    """Deletes the least recently used entries until the cache holds at most `limit` bytes
    (never the entry named `keep`), and temporary files left by crashed processes."""
    entries = []
    now = time.time()
    for path in directory.iterdir():
        try:
            status = path.stat()
        except FileNotFoundError:
            continue  # deleted by another process meanwhile
        if path.name.endswith(PARTIAL_SUFFIX):
            if now - status.st_mtime > STALE_PARTIAL_S:
                path.unlink(missing_ok=True)
        elif path.name.endswith(ENTRY_SUFFIX):
            entries.append((status.st_mtime, status.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        if path.name == keep:
            continue
        path.unlink(missing_ok=True)
        total -= size
