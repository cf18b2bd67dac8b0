"""clients/python is an installable package: a wheel built from it carries the generated
protocol messages (made by protoc during the build, never written into the source tree), and
installed into a fresh virtual environment it imports and works without the checkout."""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_source_tree_holds_no_generated_messages():
    generated = REPO / "clients" / "python" / "torchbricks_serve" / "generated"
    assert sorted(p.name for p in generated.iterdir() if p.name != "__pycache__") == ["__init__.py"]


def test_wheel_installs_into_a_venv_and_imports_outside_the_checkout(tmp_path):
    if shutil.which("protoc") is None:
        pytest.skip("protoc is not installed (Debian's protobuf-compiler)")
    source = tmp_path / "src"  # built from a copy, so the build writes nothing into the checkout
    shutil.copytree(REPO / "clients" / "python", source, ignore=shutil.ignore_patterns("__pycache__", "build",
                                                                                      "*.egg-info"))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["TORCHBRICKS_PROTO_DIR"] = str(REPO / "proto")
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", str(wheels),
                    str(source)], check=True, capture_output=True, env=env, timeout=300)
    (wheel,) = wheels.glob("torchbricks_serve-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # The wheel's dependencies (numpy, grpcio, protobuf) come from the project's environment, as
    # a .pth line: --system-site-packages would give the base interpreter's (Debian's python3),
    # which on a fresh machine has none of them. The package itself must come from the wheel.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    (Path(site) / "project_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, env=env, timeout=300)
    probe = ("import torchbricks_serve, numpy as np\n"
             "from torchbricks_serve import InferenceClient, build_infer_request\n"
             "from torchbricks_serve.generated import grpc_service_pb2, bricks_pb2\n"
             "request = build_infer_request('m', {'x': np.ones((2, 3), np.float32)})\n"
             "assert isinstance(request, grpc_service_pb2.ModelInferRequest) and request.inputs[0].shape == [2, 3]\n"
             "print(torchbricks_serve.__file__)\n")
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert str(venv) in result.stdout  # the installed copy, not the checkout
    assert not list((REPO / "clients" / "python").glob("*.egg-info"))
