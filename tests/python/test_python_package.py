"""clients/python holds two distributions, each built into a wheel and installed into a fresh
virtual environment outside the checkout:

- client/ (`torchbricks-serve`, import `torchbricks_serve`) carries the protocol messages protoc
  generates while it is built (never written into the source tree). Installed where grpcio,
  protobuf and numpy are the only other distributions, it imports, constructs both clients,
  calls through them, and never imports torch.
- exporter/ (`torchbricks-export`, import `torchbricks_export`), installed beside the project's
  torch and without the client, exports a small model that reproduces its reference.
"""
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Dict, Iterable, List

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON_CLIENTS = REPO / "clients" / "python"
CLIENT_DEPENDENCIES = {"grpcio", "protobuf", "numpy"}

CLIENT_PROBE = """
import asyncio, importlib.abc, importlib.metadata, importlib.util, re, socket, sys

assert importlib.util.find_spec("torch") is None, "torch is reachable in the client's environment"

class TorchWatch(importlib.abc.MetaPathFinder):  # records every attempt to import torch
    attempts = []
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            self.attempts.append(name)
sys.meta_path.insert(0, TorchWatch())
import grpc, numpy as np
import torchbricks_serve
from torchbricks_serve import AsyncInferenceClient, InferenceClient, build_infer_request, shared_memory
from torchbricks_serve.generated import bricks_pb2, grpc_service_pb2

requires = {re.match(r"[A-Za-z0-9_.-]+", r).group(0) for r in importlib.metadata.requires("torchbricks-serve")}
print("requires", ",".join(sorted(requires)))
request = build_infer_request("m", {"x": np.ones((2, 3), np.float32)})
assert isinstance(request, grpc_service_pb2.ModelInferRequest) and request.inputs[0].shape == [2, 3]
with socket.socket() as s:  # a port nobody listens on once closed
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
with InferenceClient(f"127.0.0.1:{port}", timeout=5, headers=[("x-probe", "1")]) as client:
    try:
        client.server_live()
        raise AssertionError("server_live answered without a server")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error
InferenceClient("127.0.0.1:1", ssl=True).close()  # TLS credentials from gRPC's default roots

async def call_async():
    async with AsyncInferenceClient(f"127.0.0.1:{port}", timeout=5) as client:
        try:
            await client.server_live()
            raise AssertionError("server_live answered without a server")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
asyncio.run(call_async())
torch_modules = sorted(name for name in sys.modules if name.split(".")[0] == "torch")
assert not torch_modules and not TorchWatch.attempts, (torch_modules, TorchWatch.attempts)
print("file", torchbricks_serve.__file__)
"""

EXPORTER_PROBE = """
import importlib.util, sys
from pathlib import Path
import torch
from torch import nn
import torchbricks_export
from torchbricks_export import export_brick_collection, load_reference

assert importlib.util.find_spec("torchbricks_serve") is None, "the client is installed beside the exporter"
torch.manual_seed(0)
linear, x = nn.Linear(3, 2), torch.rand(4, 3)
path = export_brick_collection({"head": {"module": linear, "input_names": ["x"], "output_names": ["y"]}},
                               Path(sys.argv[1]) / "tiny" / "1", example_inputs={"x": x})
with torch.no_grad():
    expected = linear(x)
stage, inputs, outputs = load_reference(path / "reference" / "INFERENCE.pt")
assert stage == "INFERENCE" and torch.equal(inputs["x"], x) and torch.allclose(outputs["y"], expected)
assert torch.allclose(torch.jit.load(str(path / "modules" / "head.pt"))(x), expected)
assert 'name: "head"' in (path / "bricks.pbtxt").read_text()
assert "grpc" not in sys.modules and "torchbricks_serve" not in sys.modules
print("file", torchbricks_export.__file__)
"""


def test_source_tree_holds_no_generated_messages():
    generated = PYTHON_CLIENTS / "client" / "torchbricks_serve" / "generated"
    assert sorted(p.name for p in generated.iterdir() if p.name != "__pycache__") == ["__init__.py"]


def test_client_imports_no_torch_anywhere():
    """Not one module of the client names torch, lazily or not."""
    sources = sorted((PYTHON_CLIENTS / "client" / "torchbricks_serve").rglob("*.py"))
    assert len(sources) >= 5
    offenders = [str(p) for p in sources if re.search(r"^\s*(import|from)\s+torch\b", p.read_text(), re.M)
                 or "import_module" in p.read_text()]
    assert offenders == []


def _environment() -> Dict[str, str]:
    """The test's environment without the checkout's packages or the user's site-packages."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONNOUSERSITE"] = "1"
    env["TORCHBRICKS_PROTO_DIR"] = str(REPO / "proto")
    return env


def _build_wheel(folder: str, tmp_path: Path) -> Path:
    """The wheel of clients/python/<folder>, built from a copy so nothing is written into the checkout."""
    source = tmp_path / f"src_{folder}"
    shutil.copytree(PYTHON_CLIENTS / folder, source,
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    wheels = tmp_path / f"wheels_{folder}"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", str(wheels),
                    str(source)], check=True, capture_output=True, env=_environment(), timeout=300)
    (wheel,) = wheels.glob("*.whl")
    assert not list((PYTHON_CLIENTS / folder).glob("*.egg-info"))
    return wheel


def _top_level_packages(wheel: Path) -> set:
    with zipfile.ZipFile(wheel) as archive:
        return {name.split("/")[0] for name in archive.namelist() if ".dist-info/" not in name}


def _link_distributions(names: Iterable[str], target: Path) -> List[str]:
    """Links the project environment's files of `names` and of what they require (extras left
    out) into `target`; returns the distributions linked."""
    target.mkdir()
    pending, linked = list(names), []
    while pending:
        distribution = importlib.metadata.distribution(pending.pop())
        name = distribution.metadata["Name"].lower()
        if name in linked:
            continue
        linked.append(name)
        for entry in {Path(str(file)).parts[0] for file in distribution.files or ()} - {"..", "__pycache__"}:
            if not (target / entry).exists():
                (target / entry).symlink_to(Path(distribution.locate_file(entry)))
        for requirement in distribution.requires or ():
            if "extra ==" not in requirement:
                pending.append(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))
    return linked


def _venv_with(tmp_path: Path, name: str, site: Path, wheel: Path) -> Path:
    """A fresh virtual environment whose other distributions are those in `site` (a .pth line),
    with `wheel` installed; pip resolves the wheel's requirements there, without an index."""
    venv = tmp_path / name
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(f"{site}\n")
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-index", str(wheel)], capture_output=True,
                               text=True, env=_environment(), timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def _probe(python: Path, code: str, cwd: Path, *args: str) -> str:
    result = subprocess.run([str(python), "-c", code, *args], capture_output=True, text=True, env=_environment(),
                            cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def needs_protoc():
    if shutil.which("protoc") is None:
        pytest.skip("protoc is not installed (Debian's protobuf-compiler)")


def test_client_wheel_installs_and_works_without_torch(tmp_path, needs_protoc):
    wheel = _build_wheel("client", tmp_path)
    assert _top_level_packages(wheel) == {"torchbricks_serve"}
    # The client's dependencies come from the project's environment, linked one by one into a
    # folder the venv reads through a .pth line: the project's environment itself holds torch,
    # and --system-site-packages would give the base interpreter's, which may have none of them.
    linked = _link_distributions(CLIENT_DEPENDENCIES, tmp_path / "client_dependencies")
    assert CLIENT_DEPENDENCIES <= set(linked) and "torch" not in linked
    python = _venv_with(tmp_path, "client_venv", tmp_path / "client_dependencies", wheel)
    output = _probe(python, CLIENT_PROBE, tmp_path)
    assert f"requires {','.join(sorted(CLIENT_DEPENDENCIES))}\n" in output
    assert f"file {tmp_path / 'client_venv'}" in output  # the installed copy, not the checkout


def test_exporter_wheel_installs_and_exports_without_the_client(tmp_path):
    pytest.importorskip("torch")
    wheel = _build_wheel("exporter", tmp_path)
    assert _top_level_packages(wheel) == {"torchbricks_export"}
    # Everything the project's environment holds (torch, torchvision, numpy), but not the client.
    python = _venv_with(tmp_path, "exporter_venv", Path(sysconfig.get_paths()["purelib"]), wheel)
    output = _probe(python, EXPORTER_PROBE, tmp_path, str(tmp_path / "repository"))
    assert f"file {tmp_path / 'exporter_venv'}" in output
    assert (tmp_path / "repository" / "tiny" / "1" / "modules" / "head.pt").is_file()
