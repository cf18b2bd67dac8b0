"""Packages across torch versions, served by the server built on the torch wheel (2.11).

- A package exported with Debian's torch 1.13, as today's users have them (the committed
  fixture tests/fixtures/torch113, written by tests/fixtures/export_torch113.py), passes
  `torchbricks verify` and is served with its saved reference outputs.
- A brick calling torch.nn.functional.scaled_dot_product_attention (added in torch 2.0, so no
  1.13 package can hold it) exports with this torch and is served with its eager outputs.
- The server process maps libtorch from this Python's torch wheel, never Debian's libtorch,
  and exactly one OpenMP runtime although OpenCV (through OpenBLAS) asks for one too.
"""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from server_process import ServerProcess
from test_cli_verify import run_cli
from torchbricks_export import Stage, export_brick_collection, load_reference

REPO = Path(__file__).resolve().parents[2]
TORCH113 = REPO / "tests" / "fixtures" / "torch113"
RTOL, ATOL = 1e-4, 1e-5  # torchbricks verify's defaults


def _packages_of(repository: Path):
    return sorted(repository.glob("*/1"))


@pytest.fixture(scope="module")
def torch113_repository(tmp_path_factory) -> Path:
    repository = tmp_path_factory.mktemp("torch113")
    shutil.copytree(TORCH113, repository, dirs_exist_ok=True)
    return repository


def test_fixture_was_exported_with_torch_1_13():
    packages = _packages_of(TORCH113)
    assert [p.parent.name for p in packages] == ["readme_dummy", "stage_preprocessor"]
    for package in packages:
        assert re.search(r'key: "torch_version"\s+value: "1\.13', (package / "bricks.pbtxt").read_text()), package
    assert torch.__version__.startswith("2."), "the project's Python must hold the torch 2 wheel"


@pytest.mark.parametrize("name", ["readme_dummy", "stage_preprocessor"])
def test_torch_1_13_package_passes_verify(torch113_repository, name):
    result = run_cli("verify", torch113_repository / name / "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " ok" in result.stdout


def test_torch_1_13_packages_are_served_with_their_reference_outputs(torch113_repository):
    with ServerProcess(torch113_repository) as server, server.client() as client:
        checked = 0
        for package in _packages_of(torch113_repository):
            for reference in sorted((package / "reference").glob("*.pt")):
                stage, inputs, outputs = load_reference(reference)
                result = client.infer(package.parent.name, {k: v.numpy() for k, v in inputs.items()},
                                      outputs=sorted(outputs), stage=stage)
                for key, want in outputs.items():
                    np.testing.assert_allclose(result.outputs[key], want.numpy(), rtol=RTOL, atol=ATOL,
                                               err_msg=f"{package.parent.name} {stage} {key}")
                    checked += 1
        assert server.stop() == 0, server.log()[-3000:]
    assert checked >= 6


class SelfAttention(nn.Module):
    """One attention head over a sequence: torch.nn.functional.scaled_dot_product_attention."""

    def __init__(self, features: int = 8) -> None:
        super().__init__()
        self.qkv = nn.Linear(features, 3 * features)

    def forward(self, tokens: Tensor) -> Tensor:
        query, key, value = self.qkv(tokens).chunk(3, dim=-1)
        return nn.functional.scaled_dot_product_attention(query, key, value, is_causal=True)


def test_scaled_dot_product_attention_brick_exports_and_serves(tmp_path):
    torch.manual_seed(5)
    collection = {
        "attention": {"module": SelfAttention(), "input_names": ["tokens"], "output_names": ["attended"]},
        "pool": {"module": nn.Flatten(), "input_names": ["attended"], "output_names": ["flat"],
                 "kind": "NOT_TRAINABLE"},
    }
    tokens = torch.rand(2, 5, 8, generator=torch.Generator().manual_seed(9))
    package = export_brick_collection(collection, tmp_path / "attention" / "1",
                                      example_inputs={Stage.INFERENCE: {"tokens": tokens}})
    scripted = torch.jit.load(str(next((package / "modules").glob("attention*.pt"))))
    assert "scaled_dot_product_attention" in str(scripted.inlined_graph)
    result = run_cli("verify", package)
    assert result.returncode == 0, result.stdout + result.stderr

    with torch.no_grad():
        expected = collection["attention"]["module"](tokens).flatten(1)
    with ServerProcess(tmp_path) as server, server.client() as client:
        for batch in (tokens, tokens[:1]):
            got = client.infer("attention", {"tokens": batch.numpy()}, outputs=["flat"]).outputs["flat"]
            np.testing.assert_allclose(got, expected[:len(batch)].numpy(), rtol=RTOL, atol=ATOL)
        assert server.stop() == 0, server.log()[-3000:]


def _mapped_files(pid: int):
    files = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            files.add(Path(fields[5].replace(" (deleted)", "")))
    return files


OPENMP_RUNTIME = re.compile(r"^lib(gomp|iomp\d*|omp)([-.].*)?\.so")


def test_server_maps_the_wheels_libtorch_and_one_openmp_runtime(torch113_repository):
    torch_lib = (Path(torch.__file__).parent / "lib").resolve()
    with ServerProcess(torch113_repository) as server, server.client() as client:
        # A request, so that libtorch's intra-op threads (OpenMP) have started.
        client.infer("readme_dummy", {"raw_images": np.ones((4, 3, 8, 16), np.float32)})
        files = _mapped_files(server.pid)
        assert server.stop() == 0, server.log()[-3000:]
    libtorch = {f.resolve() for f in files if f.name.startswith(("libtorch", "libc10"))}
    assert torch_lib / "libtorch_cpu.so" in libtorch, sorted(libtorch)
    assert all(f.parent == torch_lib for f in libtorch), sorted(libtorch)
    # Debian's OpenCV (libopencv_core -> libblas.so.3 -> OpenBLAS) is in the process too.
    assert any(f.name.startswith("libopencv_core") for f in files)
    openmp = sorted({f.resolve() for f in files if OPENMP_RUNTIME.match(f.name)})
    assert len(openmp) == 1, f"more than one OpenMP runtime mapped: {openmp}"
