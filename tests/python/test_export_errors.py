"""Every way an export can fail raises ExportError naming the brick, and leaves the target untouched;
modules that do not script are traced when example inputs allow it."""
import pytest
import torch
from torch import Tensor, nn

import readme_models
from readme_models import brick
from package_helpers import flat_bricks
from torchbricks_export import ExportError, Stage, export_brick_collection, load_reference


class Unscriptable(nn.Module):
    """Scripting fails (a dict of lambdas is no TorchScript type); tracing works."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = {"double": lambda t: t * 2}

    def forward(self, x: Tensor) -> Tensor:
        return self.ops["double"](x) + 1


class UnscriptableWithStage(Unscriptable):
    def forward(self, x: Tensor, stage: str) -> Tensor:
        return self.ops["double"](x) + (1.0 if stage == "EXPORT" else 0.0)


class UnscriptableLoss(Unscriptable):
    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        return self.ops["double"]((x - target).abs().mean())


def plain_function(x):
    return x * 3


def with_brick(name, added, extra=None):
    return dict({"pre": brick(readme_models.PreprocessorDummy(), ["raw"], ["x"], kind="NOT_TRAINABLE"),
                               name: added, **(extra or {})})


@pytest.mark.parametrize("module", [plain_function, lambda x: x + 1])
def test_plain_callable_is_rejected(tmp_path, module):
    collection = {"outer": {"my_callable": {"module": module, "input_names": ["raw"], "output_names": ["y"]}}}
    with pytest.raises(ExportError, match=r"'outer/my_callable'.*not a torch.nn.Module.*wrap it in a scriptable"):
        export_brick_collection(collection, tmp_path / "m" / "1", example_inputs={"raw": torch.rand(2)})
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_unscriptable_without_examples_names_brick(tmp_path):
    collection = with_brick("stubborn", brick(Unscriptable(), ["x"], ["y"]))
    with pytest.raises(ExportError) as error:
        export_brick_collection(collection, tmp_path / "m" / "1")
    message = str(error.value)
    assert "'stubborn'" in message and "Unscriptable" in message
    assert "ops" in message  # the scripting error's first line
    assert "example_inputs" in message and "traced" in message and "scriptable" in message


def test_unscriptable_is_traced_with_example_inputs(tmp_path, parse_bricks):
    collection = with_brick("stubborn", brick(Unscriptable(), ["x"], ["y"]))
    raw = torch.rand(2, 3)
    path = export_brick_collection(collection, tmp_path / "m" / "1", example_inputs={"raw": raw})
    traced = torch.jit.load(str(path / "modules" / "stubborn.pt"))
    other = torch.rand(5, 3)
    assert torch.allclose(traced(other), other * 2 + 1)
    _, _, outputs = load_reference(path / "reference" / "EXPORT.pt")
    assert torch.allclose(outputs["y"], raw / 2 * 2 + 1)
    assert dict(parse_bricks(path).metadata)["traced_bricks"] == "stubborn"


def test_unscriptable_stage_input_is_traced_once_per_stage(tmp_path, parse_bricks):
    collection = with_brick("stage_user", brick(UnscriptableWithStage(), ["x", "stage"], ["y"]))
    raw = torch.rand(2, 3)
    path = export_brick_collection(collection, tmp_path / "m" / "1", example_inputs={"raw": raw})
    written = flat_bricks(parse_bricks(path))["stage_user"]
    assert written.module_file == ""
    files = {m.module_file for m in written.stage_modules}
    assert "modules/stage_user.EXPORT.pt" in files and "modules/stage_user.INFERENCE.pt" in files
    other = torch.rand(4, 3)
    for stage, offset in (("INFERENCE", 0.0), ("EXPORT", 1.0)):
        module = torch.jit.load(str(path / "modules" / f"stage_user.{stage}.pt"))
        assert torch.allclose(module(other), other * 2 + offset)  # the stage is bound, not an argument


def test_stage_traced_brick_needs_examples_for_each_served_stage(tmp_path):
    collection = with_brick("stage_user", brick(UnscriptableWithStage(), ["x", "stage"], ["y"]))
    with pytest.raises(ExportError, match=r"'stage_user'.*traced once per stage.*EXPORT"):
        export_brick_collection(collection, tmp_path / "m" / "1",
                                example_inputs={Stage.INFERENCE: {"raw": torch.rand(2, 3)}})
    assert not (tmp_path / "m" / "1").exists()


def test_all_input_cannot_be_traced(tmp_path):
    collection = with_brick("all_user", brick(Unscriptable(), ["__all__"], ["y"]))
    with pytest.raises(ExportError, match=r"'all_user'.*cannot be traced.*'__all__'"):
        export_brick_collection(collection, tmp_path / "m" / "1", example_inputs={"raw": torch.rand(2, 3)})


def test_unscriptable_loss_is_left_out_with_warning(tmp_path, parse_bricks):
    collection = with_brick("bad_loss", brick(UnscriptableLoss(), ["x", "target"], ["loss"], kind="LOSS"),
                            extra={"loss_metric": brick(nn.Identity(), ["loss"], ["loss_copy"], kind="METRIC")})
    examples = {Stage.TRAIN: {"raw": torch.rand(2, 3), "target": torch.rand(2, 3)},
                Stage.INFERENCE: {"raw": torch.rand(2, 3)}}
    with pytest.warns(UserWarning, match="'bad_loss'") as record:
        path = export_brick_collection(collection, tmp_path / "m" / "1", example_inputs=examples)
    assert any("'loss_metric'" in str(w.message) for w in record)  # its consumer goes with it
    message = parse_bricks(path)
    assert list(flat_bricks(message)) == ["pre"]
    assert [i.name for i in message.inputs] == ["raw"]
    _, _, train = load_reference(path / "reference" / "TRAIN.pt")
    assert list(train) == ["x"]
    assert not (path / "modules" / "bad_loss.pt").exists()


def test_unscriptable_loss_consumed_at_inference_is_an_error(tmp_path):
    collection = with_brick("bad_loss", brick(UnscriptableLoss(), ["x", "target"], ["loss"], kind="LOSS"),
                            extra={"reporter": brick(nn.Identity(), ["loss"], ["report"], kind="NOT_TRAINABLE")})
    with pytest.raises(ExportError, match=r"'bad_loss'.*'reporter'.*INFERENCE"):
        export_brick_collection(collection, tmp_path / "m" / "1")


def test_output_count_mismatch_names_brick(tmp_path):
    collection = with_brick("three_names", brick(readme_models.ClassifierDummy(3, 3), ["x"],
                                                             ["a", "b", "c"]))
    with pytest.raises(ExportError, match=r"'three_names'.*2 values for 3 output names"):
        export_brick_collection(collection, tmp_path / "m" / "1", example_inputs={"raw": torch.rand(2, 3, 4, 4)})


def test_failing_module_names_brick(tmp_path):
    collection = with_brick("backbone", brick(readme_models.TinyModel(3, 4), ["x"], ["y"]))
    with pytest.raises(ExportError, match=r"'backbone' failed in stage"):
        export_brick_collection(collection, tmp_path / "m" / "1", example_inputs={"raw": torch.rand(2, 5, 4, 4)})


def test_duplicate_producer_and_cycle(tmp_path):
    duplicate = with_brick("second", brick(nn.Identity(), ["raw"], ["x"]))
    with pytest.raises(ExportError, match=r"'pre' and 'second' both produce 'x'"):
        export_brick_collection(duplicate, tmp_path / "d" / "1")
    cycle = {"ping": {"module": nn.Identity(), "input_names": ["pong_out"], "output_names": ["ping_out"]},
             "pong": {"module": nn.Identity(), "input_names": ["ping_out"], "output_names": ["pong_out"]}}
    with pytest.raises(ExportError, match=r"cycle.*ping -> pong -> ping"):
        export_brick_collection(cycle, tmp_path / "c" / "1")


def test_bad_collections(tmp_path):
    with pytest.raises(ExportError, match="no bricks"):
        export_brick_collection({}, tmp_path / "e" / "1")
    with pytest.raises(ExportError, match="'odd'.*neither a brick nor a collection"):
        export_brick_collection({"odd": 3}, tmp_path / "o" / "1")
    with pytest.raises(ExportError, match="'bad'.*unknown kind"):
        export_brick_collection({"bad": {"module": nn.Identity(), "kind": "LOST"}}, tmp_path / "k" / "1")
    with pytest.raises(ExportError, match="'late'.*unknown stage"):
        export_brick_collection({"late": {"module": nn.Identity(), "alive_stages": ["TRAINING"]}}, tmp_path / "s" / "1")
    clash = {"a.b": {"module": nn.Identity(), "output_names": ["x"]},
             "a": {"b": {"module": nn.Identity(), "output_names": ["y"]}}}
    with pytest.raises(ExportError, match="'a.b' and 'a/b'.*modules/a.b.pt"):
        export_brick_collection(clash, tmp_path / "c" / "1")


def test_failed_export_keeps_previous_version(tmp_path):
    version = tmp_path / "model" / "1"
    export_brick_collection(readme_models.readme_dummy(), version)
    before = (version / "bricks.pbtxt").read_text()
    with pytest.raises(ExportError):
        export_brick_collection(with_brick("stubborn", brick(Unscriptable(), ["x"], ["y"])), version)
    assert (version / "bricks.pbtxt").read_text() == before
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["1"]


class ScriptedDiffers(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_scripting():
            return x + 1
        return x


def test_exported_module_must_match_eager(tmp_path):
    collection = with_brick("two_faced", brick(ScriptedDiffers(), ["x"], ["y"]))
    with pytest.raises(ExportError, match=r"'two_faced'.*output 'y'.*differs from the eager"):
        export_brick_collection(collection, tmp_path / "m" / "1", example_inputs={"raw": torch.rand(2, 3)})
    export_brick_collection(collection, tmp_path / "n" / "1")  # without examples nothing is compared


def test_stage_module_file_cannot_collide_with_another_brick(tmp_path):
    collection = with_brick("stage_user", brick(UnscriptableWithStage(), ["x", "stage"], ["y"]),
                            extra={"stage_user.EXPORT": brick(nn.Identity(), ["x"], ["z"])})
    with pytest.raises(ExportError, match=r"'stage_user' and 'stage_user.EXPORT'.*modules/stage_user.EXPORT.pt"):
        export_brick_collection(collection, tmp_path / "m" / "1", example_inputs={"raw": torch.rand(2, 3)})


@pytest.mark.parametrize("stage_tags,message", [
    ({"PREDICT": {"MODEL"}}, r"stage_tags: unknown stage 'PREDICT'"),
    ({"INFERENCE": 5}, r"stage_tags\['INFERENCE'\] must be a tag or a set of tags"),
    ({"INFERENCE": None}, r"stage_tags\['INFERENCE'\] must be a tag or a set of tags"),
    (["INFERENCE"], r"stage_tags must be a dict"),
])
def test_stage_tags_are_checked_up_front(tmp_path, stage_tags, message):
    with pytest.raises(ExportError, match=message):
        export_brick_collection(with_brick("b", brick(nn.Identity(), ["x"], ["y"])), tmp_path / "m" / "1",
                                stage_tags=stage_tags)


def test_stage_tags_without_tagged_bricks_warn(tmp_path):
    with pytest.warns(UserWarning, match="stage_tags has no effect"):
        export_brick_collection(with_brick("b", brick(nn.Identity(), ["x"], ["y"])), tmp_path / "m" / "1",
                                stage_tags={"INFERENCE": {"MODEL"}})
