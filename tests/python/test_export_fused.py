"""fused_stages=["INFERENCE"]: the compiled bricks alive in a stage captured and compiled as ONE
AOTInductor program beside their own packages (fused_export.py), recorded in the manifest's
fused_stages; a kept brick stays out of it; a set that is not convex is refused by name.

The module shares one compile cache of its own and one exported package between its tests: four
programs are compiled in all (two bricks, two fused programs), small ones.
"""
from typing import Dict

import pytest
import torch
from torch import nn

from package_helpers import flat_bricks
from readme_models import brick
from torchbricks_export import ExportError, export_brick_collection

aoti_load_package = pytest.importorskip("torch._inductor").aoti_load_package

MAX_BATCH = 8
RTOL, ATOL = 1e-4, 1e-5
INFERENCE = 4
TORCHSCRIPT, AOT_INDUCTOR = 0, 1
TYPE_FP32 = 11


pytestmark = pytest.mark.usefixtures("module_compile_cache")  # compiles shared within this module


def small_collection():
    """backbone (conv) -> features -> head (linear) -> logits, plus a training-only loss."""
    torch.manual_seed(5)
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    return {"backbone": brick(backbone, ["images"], ["features"]),
            "head": brick(head, ["features"], ["logits"]),
            "loss": brick(nn.CrossEntropyLoss(), ["logits", "targets"], ["loss"], kind="LOSS")}


EXAMPLES = {"INFERENCE": {"images": torch.rand(2, 3, 6, 6)}}


def export(collection, version_dir, **kwargs):
    export_brick_collection(collection, version_dir, example_inputs=EXAMPLES, module_format="aot_inductor",
                            max_batch_size=MAX_BATCH, **kwargs)
    return version_dir


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    collection = small_collection()
    version = export(collection, tmp_path_factory.mktemp("fused") / "m" / "1", fused_stages=["INFERENCE"])
    return collection, version


def test_the_fused_program_is_in_the_manifest(fused, parse_bricks):
    _, version = fused
    message = parse_bricks(version)
    (stage,) = message.fused_stages
    assert stage.stage == INFERENCE
    assert stage.module_file == "modules/__fused__.INFERENCE.pt2"
    assert list(stage.bricks) == ["backbone", "head"]
    assert list(stage.input_names) == ["images"]
    assert list(stage.output_names) == ["features", "logits"]
    compiled = stage.compiled
    assert [(spec.name, spec.data_type, list(spec.dims)) for spec in compiled.inputs] == [
        ("images", TYPE_FP32, [-1, 3, 6, 6])]
    assert (compiled.min_batch, compiled.max_batch, compiled.device) == (1, MAX_BATCH, "cpu")
    assert compiled.cpu_isa == aoti_load_package(str(version / stage.module_file)).get_metadata().get(
        "AOTI_CPU_ISA", "")
    # The bricks keep their own packages (other stages, subset requests run them).
    bricks = flat_bricks(message)
    assert bricks["backbone"].module_format == AOT_INDUCTOR and bricks["head"].module_format == AOT_INDUCTOR
    assert sorted(path.name for path in (version / "modules").iterdir()) == [
        "__fused__.INFERENCE.pt2", "backbone.pt2", "head.pt2", "loss.pt"]


def test_the_fused_program_equals_the_eager_bricks_at_batch_1_3_and_max(fused):
    collection, version = fused
    package = aoti_load_package(str(version / "modules" / "__fused__.INFERENCE.pt2"))
    for batch in (1, 3, MAX_BATCH):
        images = torch.rand(batch, 3, 6, 6)
        with torch.no_grad():
            features = collection["backbone"]["module"](images)
            logits = collection["head"]["module"](features)
        got_features, got_logits = package(images)
        torch.testing.assert_close(got_features, features, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(got_logits, logits, rtol=RTOL, atol=ATOL)


def test_a_kept_brick_is_not_fused(tmp_path, parse_bricks):
    version = export(small_collection(), tmp_path / "m" / "1", fused_stages=["INFERENCE"], keep_torchscript=["head"])
    message = parse_bricks(version)
    (stage,) = message.fused_stages
    assert list(stage.bricks) == ["backbone"]
    assert list(stage.output_names) == ["features"]
    assert flat_bricks(message)["head"].module_format == TORCHSCRIPT


def refused_fusing_around_mid(collection, version_dir) -> str:
    """The ExportError's message for fusing the INFERENCE stage with brick 'mid' kept in
    TorchScript; the package must not be written."""
    with pytest.raises(ExportError) as error:
        export_brick_collection(collection, version_dir, example_inputs={"INFERENCE": {"x": torch.rand(2, 3)}},
                                module_format="aot_inductor", max_batch_size=MAX_BATCH,
                                keep_torchscript=["mid"], fused_stages=["INFERENCE"])
    assert not version_dir.exists()
    return str(error.value)


def test_a_set_that_is_not_convex_is_refused_naming_the_bricks(tmp_path):
    """'mid' stays TorchScript but sits between two compiled bricks: 'a' leaves the set and
    comes back as 'b'."""
    collection = {"first": brick(nn.ReLU(), ["x"], ["a"]),
                  "mid": brick(nn.Tanh(), ["a"], ["b"]),
                  "last": brick(nn.Sigmoid(), ["b"], ["c"])}
    message = refused_fusing_around_mid(collection, tmp_path / "m" / "1")
    assert "not convex" in message
    assert "'mid'" in message and "'first'" in message and "'last'" in message, message


class ReadsAll(nn.Module):
    """A brick of torchbricks' "__all__" input: every value computed before it, by name."""

    def forward(self, named: Dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.tanh(named["a"])


def test_a_brick_reading_all_between_fused_bricks_makes_the_set_not_convex(tmp_path):
    """'mid' reads "__all__", so it depends on 'first' (every brick before it, as the server
    plans it) though it names no value of it, and 'after' reads its output."""
    collection = {"first": brick(nn.ReLU(), ["x"], ["a"]),
                  "mid": brick(ReadsAll(), ["__all__"], ["b"]),
                  "after": brick(nn.Sigmoid(), ["b"], ["d"])}
    message = refused_fusing_around_mid(collection, tmp_path / "m" / "1")
    assert "not convex" in message
    assert "'mid'" in message and "'first'" in message and "'after'" in message, message


@pytest.mark.parametrize("kwargs,needle", [
    ({"module_format": "torchscript", "fused_stages": ["INFERENCE"]}, "needs module_format='aot_inductor'"),
    ({"module_format": "aot_inductor", "fused_stages": ["INFERENCES"]}, "names no stage: 'INFERENCES'"),
    ({"module_format": "aot_inductor", "fused_stages": "INFERENCE"}, "must be a list of stage names"),
    ({"module_format": "aot_inductor", "fused_stages": ["INFERENCE"], "keep_torchscript": ["backbone", "head"]},
     "nothing to fuse"),
])
def test_bad_fused_stages_arguments(tmp_path, kwargs, needle):
    with pytest.raises(ExportError, match=None) as error:
        export_brick_collection(small_collection(), tmp_path / "m" / "1", example_inputs=EXAMPLES,
                                max_batch_size=MAX_BATCH, **kwargs)
    assert needle in str(error.value)
