"""Issue 21, item 4: the relocatable bundle the GPU check carries to a GPU machine
(scripts/make_gpu_bundle.sh) starts here, outside the build folder, with CPU instances. As on the
GPU machine, the only libraries it may take from outside itself are torch's (from the Python
environment's torch/lib, given by LD_LIBRARY_PATH as scripts/gpu_check.sh does) and the C/C++
runtimes every Linux machine has; its binaries' rpath is $ORIGIN/../lib, not the build's."""
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from readme_models import brick
from server_process import ServerProcess
from torchbricks_export import export_brick_collection

REPO = Path(__file__).resolve().parents[2]
SYSTEM_LIBRARIES = ("libc.so", "libm.so", "libdl.so", "librt.so", "libpthread.so", "ld-linux", "libstdc++.so",
                    "libgcc_s.so", "libgomp.so", "linux-vdso")
TORCH_LIB = (Path(torch.__file__).parent / "lib").resolve()
NVIDIA_WHEELS = TORCH_LIB.parents[1] / "nvidia"

pytestmark = pytest.mark.skipif(shutil.which("patchelf") is None, reason="patchelf is not installed (scripts/setup.sh)")


class Triple(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 3


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle") / "gpu-bundle"
    made = subprocess.run(["bash", str(REPO / "scripts" / "make_gpu_bundle.sh"), "--no-pack", str(folder)],
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stdout + made.stderr
    return folder


def bundle_environment(bundle: Path) -> dict:
    return {**os.environ, "LD_LIBRARY_PATH": f"{TORCH_LIB}:{bundle / 'lib'}"}


def test_bundle_binaries_need_only_the_bundle_torch_and_the_system_runtimes(bundle):
    binaries = sorted((bundle / "bin").iterdir())
    assert {b.name for b in binaries} == {"torchbricks-server", "torchbricks-perf", "torchbricks",
                                          "floor_benchmark", "floor_server"}
    for binary in binaries:
        rpath = subprocess.run(["patchelf", "--print-rpath", str(binary)], capture_output=True, text=True, check=True)
        assert rpath.stdout.strip() == "$ORIGIN/../lib", (binary, rpath.stdout)
        ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True,
                             env=bundle_environment(bundle)).stdout
        assert "not found" not in ldd, ldd
        for line in ldd.splitlines():
            name = line.split()[0]
            resolved = line.split("=>")[1].split("(")[0].strip() if "=>" in line else ""
            if not resolved or any(name.startswith(system) for system in SYSTEM_LIBRARIES):
                continue
            location = Path(resolved).resolve().parent
            # torch's CUDA libraries come from the nvidia-* wheels beside torch, there as here.
            assert (location in (bundle.resolve() / "lib", TORCH_LIB) or NVIDIA_WHEELS in location.parents), line


def test_bundled_server_starts_here_with_cpu_instances_and_answers(bundle, tmp_path, monkeypatch):
    repository = tmp_path / "repository"
    export_brick_collection({"triple": brick(Triple(), ["x"], ["y"], kind="NOT_TRAINABLE")}, repository / "triple" / "1",
                            example_inputs={"x": torch.ones(1, 2)})
    (repository / "triple" / "config.pbtxt").write_text("instance_group { kind: KIND_CPU count: 2 }\n")
    monkeypatch.setenv("LD_LIBRARY_PATH", bundle_environment(bundle)["LD_LIBRARY_PATH"])  # the server inherits it
    with ServerProcess(repository, binary=bundle / "bin" / "torchbricks-server") as server:
        with server.client() as client:
            result = client.infer("triple", {"x": np.array([[1.0, -2.0]], np.float32)})
            np.testing.assert_array_equal(result.outputs["y"], np.array([[3.0, -6.0]], np.float32))
        assert "s: 2 instances on cpu" in server.log()
        maps = Path(f"/proc/{server.pid}/maps").read_text()
        assert str(bundle.resolve() / "lib") in maps and str(TORCH_LIB) in maps
        assert str(REPO / "build") not in maps
