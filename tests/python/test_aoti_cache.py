"""The AOTInductor compile cache (torchbricks_export/aoti_cache.py): what its key depends on, where
it lives, atomic stores, the size bound, and hits and misses of compile_package, with the compiler
replaced by a fake so that these tests compile nothing."""
import os
import time
from pathlib import Path

import pytest
import torch
from torch import nn

torch_export = pytest.importorskip("torch.export")
from torchbricks_export import aoti_cache  # noqa: E402

CONFIGS = {"cpp.dynamic_threads": True}


class Scale(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.arange(width, dtype=torch.float32))

    def forward(self, x):
        return x * self.weight


def program(module=None, width=4, max_batch=8):
    module = module if module is not None else Scale(width)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    return torch.export.export(module, (torch.ones(2, width),), dynamic_shapes=({0: batch},))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv(aoti_cache.CACHE_ENV, str(directory))
    return directory


@pytest.fixture
def fake_compiler(monkeypatch):
    """Replaces AOTInductor's compile by one that writes a small file and counts its calls."""
    from torch import _inductor
    calls = []

    def compile_and_package(program, package_path, inductor_configs):
        calls.append(package_path)
        with open(package_path, "wb") as out:
            out.write(b"package #%d" % len(calls))
        return package_path

    monkeypatch.setattr(_inductor, "aoti_compile_and_package", compile_and_package)
    return calls


def test_key_is_stable_and_follows_program_name_and_configs():
    key = aoti_cache.cache_key(program(), "head.pt2", CONFIGS)
    assert key == aoti_cache.cache_key(program(), "head.pt2", CONFIGS)
    assert len(key) == 64
    others = {
        "weights": aoti_cache.cache_key(program(changed_weight()), "head.pt2", CONFIGS),
        "shape": aoti_cache.cache_key(program(width=5), "head.pt2", CONFIGS),
        "max batch": aoti_cache.cache_key(program(max_batch=16), "head.pt2", CONFIGS),
        "file name": aoti_cache.cache_key(program(), "tail.pt2", CONFIGS),
        "configs": aoti_cache.cache_key(program(), "head.pt2", {"cpp.dynamic_threads": False}),
    }
    for what, other in others.items():
        assert other != key, what


def changed_weight() -> Scale:
    module = Scale()
    with torch.no_grad():
        module.weight[0] = 0.5
    return module


def test_key_follows_the_machine(monkeypatch):
    key = aoti_cache.cache_key(program(), "head.pt2", CONFIGS)
    monkeypatch.setattr(aoti_cache, "machine_description", lambda: "another CPU")
    assert aoti_cache.cache_key(program(), "head.pt2", CONFIGS) != key


def test_machine_description_names_cpu_and_compiler():
    description = aoti_cache.machine_description()
    assert os.uname().machine in description
    if os.path.exists("/proc/cpuinfo") and os.uname().machine == "x86_64":
        assert "flags:" in description


def test_location_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(aoti_cache.CACHE_ENV, raising=False)
    assert aoti_cache.cache_dir() == Path.home() / ".cache" / "torchbricks" / "aoti"
    monkeypatch.setenv(aoti_cache.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert aoti_cache.cache_dir() == tmp_path / "elsewhere"
    for off in ("off", "OFF", " off "):
        monkeypatch.setenv(aoti_cache.CACHE_ENV, off)
        assert aoti_cache.cache_dir() is None


def test_size_bound_from_environment(monkeypatch):
    monkeypatch.delenv(aoti_cache.MAX_MB_ENV, raising=False)
    assert aoti_cache.max_bytes() == aoti_cache.DEFAULT_MAX_MB * 1024 * 1024
    monkeypatch.setenv(aoti_cache.MAX_MB_ENV, "0.5")
    assert aoti_cache.max_bytes() == 512 * 1024
    monkeypatch.setenv(aoti_cache.MAX_MB_ENV, "lots")
    with pytest.warns(UserWarning, match="not a number"):
        assert aoti_cache.max_bytes() == aoti_cache.DEFAULT_MAX_MB * 1024 * 1024


def test_miss_compiles_and_stores_then_hit_copies(cache, fake_compiler, tmp_path):
    before = aoti_cache.counters()
    first, second = tmp_path / "a" / "head.pt2", tmp_path / "b" / "head.pt2"
    first.parent.mkdir()
    second.parent.mkdir()
    assert aoti_cache.compile_package(program(), first, CONFIGS) is False
    assert aoti_cache.compile_package(program(), second, CONFIGS) is True
    assert len(fake_compiler) == 1
    assert second.read_bytes() == first.read_bytes() == b"package #1"
    after = aoti_cache.counters()
    assert (after.hits - before.hits, after.compiles - before.compiles) == (1, 1)
    entries = list(cache.iterdir())
    assert [entry.name for entry in entries] == [aoti_cache.cache_key(program(), "head.pt2", CONFIGS) + ".pt2"]
    # Another weight misses.
    assert aoti_cache.compile_package(program(changed_weight()), tmp_path / "c.pt2", CONFIGS) is False
    assert len(fake_compiler) == 2


def test_off_always_compiles_and_writes_nothing(monkeypatch, fake_compiler, tmp_path):
    monkeypatch.setenv(aoti_cache.CACHE_ENV, "off")
    for name in ("a.pt2", "b.pt2"):
        assert aoti_cache.compile_package(program(), tmp_path / name, CONFIGS) is False
    assert len(fake_compiler) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.pt2", "b.pt2"]


def test_unwritable_cache_warns_and_still_compiles(monkeypatch, fake_compiler, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(aoti_cache.CACHE_ENV, str(blocker / "cache"))
    with pytest.warns(UserWarning, match="cannot be written"):
        assert aoti_cache.compile_package(program(), tmp_path / "head.pt2", CONFIGS) is False
    assert (tmp_path / "head.pt2").read_bytes() == b"package #1"


def test_store_is_atomic_and_leaves_no_temporary_file(tmp_path):
    source = tmp_path / "package.pt2"
    source.write_bytes(b"x" * 1000)
    directory = tmp_path / "cache"
    aoti_cache.store(directory, "k" * 64, source)
    assert [path.name for path in directory.iterdir()] == ["k" * 64 + ".pt2"]
    assert (directory / ("k" * 64 + ".pt2")).read_bytes() == source.read_bytes()


def test_prune_deletes_least_recently_used_and_stale_partials(tmp_path):
    now = time.time()
    for age, name in ((300, "old"), (200, "middle"), (100, "new")):
        path = tmp_path / f"{name}.pt2"
        path.write_bytes(b"x" * 100)
        os.utime(path, (now - age, now - age))
    stale = tmp_path / ".dead-process.partial"
    fresh = tmp_path / ".writing-now.partial"
    for path, age in ((stale, 2 * aoti_cache.STALE_PARTIAL_S), (fresh, 1)):
        path.write_bytes(b"x")
        os.utime(path, (now - age, now - age))
    aoti_cache.prune(tmp_path, limit=250, keep="old.pt2")
    assert sorted(path.name for path in tmp_path.iterdir()) == [".writing-now.partial", "new.pt2", "old.pt2"]


def test_hit_refreshes_the_entry_so_it_is_pruned_last(cache, fake_compiler, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    aoti_cache.compile_package(program(), tmp_path / "a" / "head.pt2", CONFIGS)
    (entry,) = cache.iterdir()
    os.utime(entry, (time.time() - 1000, time.time() - 1000))
    assert aoti_cache.compile_package(program(), tmp_path / "b" / "head.pt2", CONFIGS) is True
    assert time.time() - entry.stat().st_mtime < 100
