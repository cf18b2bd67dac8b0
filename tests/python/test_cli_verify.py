"""End to end: README models exported here are verified by the C++ CLI against their reference
files, a tampered reference is caught, and the graph command prints mermaid.

The CLI is `$TORCHBRICKS_CLI`, by default `<repo>/build/tools/torchbricks` (build it first).
"""
import os
import subprocess
from pathlib import Path

import pytest
import torch

import readme_models
from torchbricks_export import Stage, export_brick_collection, load_reference
from torchbricks_export.reference import save_reference

REPO = Path(__file__).resolve().parents[2]
CLI = Path(os.environ.get("TORCHBRICKS_CLI", REPO / "build" / "tools" / "torchbricks"))


def run_cli(*args):
    if not CLI.is_file():
        pytest.fail(f"the torchbricks CLI is not built: {CLI} (set TORCHBRICKS_CLI or build the project)")
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=300)


def images(*shape):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(3))


MODELS = {
    "readme_dummy": (readme_models.readme_dummy, {"raw_images": images(2, 3, 100, 200)}),
    "readme_with_loss": (readme_models.readme_with_loss,
                         {Stage.TRAIN: {"raw_images": images(2, 3, 100, 200), "targets": torch.tensor([0, 2])},
                          Stage.INFERENCE: {"raw_images": images(2, 3, 100, 200)}}),
    "nested_heads": (readme_models.readme_nested_heads,
                     {Stage.TRAIN: {"raw": images(2, 3, 32, 32), "targets0": torch.tensor([1, 2]),
                                    "targets1": torch.tensor([4, 0])},
                      Stage.INFERENCE: {"raw": images(2, 3, 32, 32)}}),
    "all_input": (readme_models.readme_all_input, {"raw": images(2, 3, 20, 40)}),
    "stage_preprocessor": (readme_models.readme_stage_preprocessor, {"raw": images(2, 3, 100, 200)}),
    "resnet18_classifier": (readme_models.resnet18_classifier,
                            {Stage.INFERENCE: {"raw": images(2, 3, 32, 32)},
                             Stage.EXPORT: {"raw": images(2, 3, 32, 32)}}),
    "dict_output": (readme_models.dict_output, {"images": images(2, 3, 8, 16)}),
}


def export(tmp_path, name):
    build, examples = MODELS[name]
    return export_brick_collection(build(), tmp_path / name / "1", example_inputs=examples)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_verify_passes_and_reports_every_output(tmp_path, name):
    path = export(tmp_path, name)
    result = run_cli("verify", path)
    assert result.returncode == 0, result.stdout + result.stderr
    for reference in sorted((path / "reference").iterdir()):
        stage, _, outputs = load_reference(reference)
        assert stage in result.stdout
        for output in outputs:
            assert output in result.stdout, f"{stage}: {output} missing from\n{result.stdout}"


def test_verify_fails_on_tampered_reference(tmp_path):
    path = export(tmp_path, "readme_dummy")
    reference = path / "reference" / "INFERENCE.pt"
    stage, inputs, outputs = load_reference(reference)
    outputs["logits"] = outputs["logits"] + 0.5
    save_reference(reference, stage, inputs, outputs)
    result = run_cli("verify", path)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "logits" in result.stdout + result.stderr


def test_graph_prints_mermaid(tmp_path):
    path = export(tmp_path, "nested_heads")
    result = run_cli("graph", path, "--stage", "INFERENCE")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("flowchart LR")
    assert "head0/classify" in result.stdout
    assert "head0/loss" not in result.stdout  # dead in INFERENCE
