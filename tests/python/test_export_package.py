"""The exporter writes a complete package: bricks.pbtxt (checked against the protobuf schema),
TorchScript modules and reference files, for torchbricks 0.1 bricks, >= 0.3 tagged bricks and plain dicts."""
import warnings

import pytest
import torch
from torch import nn

import readme_models
import real_torchbricks
from package_helpers import KIND_ENUM, alive, flat_bricks
from torchbricks_export import ExportError, Stage, export_brick_collection
from torchbricks_export.pbtxt import quote

ALL = {"TRAIN", "VALIDATION", "TEST", "INFERENCE", "EXPORT"}
TRAINING = {"TRAIN", "VALIDATION", "TEST"}


def test_readme_dummy_package_files(tmp_path, parse_bricks):
    images = torch.rand(2, 3, 100, 200)
    path = export_brick_collection(readme_models.readme_dummy(), tmp_path / "dummy" / "1",
                                   example_inputs={"raw_images": images})
    assert path == tmp_path / "dummy" / "1"
    assert sorted(p.name for p in (path / "modules").iterdir()) == ["backbone.pt", "head.pt", "preprocessor.pt"]
    assert sorted(p.name for p in (path / "reference").iterdir()) == sorted(f"{s}.pt" for s in ALL)
    message = parse_bricks(path)
    assert message.name == "dummy"
    assert [(i.name, list(i.dims)) for i in message.inputs] == [("raw_images", [-1, 3, 100, 200])]
    assert message.inputs[0].data_type == 11  # TYPE_FP32
    bricks = flat_bricks(message)
    assert list(bricks) == ["preprocessor", "backbone", "head"]
    assert [b.module_type for b in bricks.values()] == ["PreprocessorDummy", "TinyModel", "ClassifierDummy"]
    assert [b.brick_type for b in bricks.values()] == ["BrickNotTrainable", "BrickTrainable", "BrickTrainable"]
    assert [KIND_ENUM[b.kind] for b in bricks.values()] == ["NOT_TRAINABLE", "TRAINABLE", "TRAINABLE"]
    assert all(b.alive_all for b in bricks.values())
    assert list(bricks["head"].output_names) == ["logits", "softmaxed"]
    metadata = dict(message.metadata)
    assert metadata["torch_version"] == torch.__version__
    assert float(metadata["reference_rtol"]) > 0 and float(metadata["reference_atol"]) > 0
    for name, brick in bricks.items():
        module = torch.jit.load(str(path / brick.module_file))
        assert module.original_name == brick.module_type, name


def test_v01_alive_stages_and_kinds(tmp_path, parse_bricks):
    path = export_brick_collection(readme_models.readme_with_loss(), tmp_path / "loss" / "1")
    bricks = flat_bricks(parse_bricks(path))
    assert alive(bricks["loss"]) == TRAINING and not bricks["loss"].alive_all
    assert list(bricks["loss"].alive_stages) == [1, 2, 3]  # canonical order
    assert KIND_ENUM[bricks["loss"].kind] == "LOSS" and bricks["loss"].brick_type == "BrickLoss"
    assert bricks["loss"].module_type == "CrossEntropyLoss"
    assert all(alive(bricks[name]) == ALL for name in ("preprocessor", "backbone", "head"))
    message = parse_bricks(path)
    assert [i.name for i in message.inputs] == ["raw_images", "targets"]
    assert all(i.data_type == 0 and not i.dims for i in message.inputs)  # no examples: unchecked


def test_v01_explicit_stage_list_and_metric_left_out(tmp_path, parse_bricks):
    with real_torchbricks.release("0.1.0"):
        from torchbricks.bricks import BrickCollection, BrickMetricSingle, BrickTrainable
        from torchbricks.bricks import Stage as LibraryStage
        from torchmetrics.classification import MulticlassAccuracy
        collection = BrickCollection({
            "model": BrickTrainable(readme_models.PreprocessorDummy(), ["x"], ["y"],
                                    alive_stages=[LibraryStage.EXPORT, LibraryStage.INFERENCE]),
            "loss": BrickTrainable(nn.Identity(), ["y"], ["z"], alive_stages=[LibraryStage.TEST]),
            "metric": BrickMetricSingle(MulticlassAccuracy(num_classes=3), ["y", "t"]),
        })
        with pytest.warns(UserWarning, match="METRIC brick 'metric' is a torchmetrics metric.*left out"):
            version = export_brick_collection(collection, tmp_path / "m" / "1")
    bricks = flat_bricks(parse_bricks(version))
    assert alive(bricks["model"]) == {"INFERENCE", "EXPORT"}
    assert alive(bricks["loss"]) == {"TEST"}
    assert "metric" not in bricks


def test_v01_loss_taking_the_stage_enum_is_traced_per_stage(tmp_path, parse_bricks):
    with real_torchbricks.release("0.1.0"):
        from torchbricks.bricks import BrickCollection, BrickLoss, BrickTrainable, Stage as LibraryStage

        class StagedLoss(nn.Module):
            def forward(self, y: torch.Tensor, stage: LibraryStage) -> torch.Tensor:
                scale = 2.0 if stage == LibraryStage.TRAIN else 1.0
                return y.abs().mean() * scale

        collection = BrickCollection({
            "model": BrickTrainable(readme_models.PreprocessorDummy(), ["x"], ["y"]),
            "loss": BrickLoss(StagedLoss(), ["y", "stage"], ["loss"]),
        })
        x = torch.rand(2, 3)
        version = export_brick_collection(collection, tmp_path / "m" / "1",
                                          example_inputs={"TRAIN": {"x": x}, "TEST": {"x": x}})
        with torch.no_grad():
            expected = {stage: collection(named_inputs={"x": x}, stage=LibraryStage[stage])["loss"]
                        for stage in ("TRAIN", "TEST")}
    loss = flat_bricks(parse_bricks(version))["loss"]
    assert {m.module_file for m in loss.stage_modules} == {"modules/loss.TRAIN.pt", "modules/loss.TEST.pt"}
    for stage, want in expected.items():
        traced = torch.jit.load(str(version / "modules" / f"loss.{stage}.pt"))
        assert torch.allclose(traced(x / 2), want)


def test_tags_map_to_stages_by_the_library_mapping(tmp_path, parse_bricks):
    with real_torchbricks.release("0.4.2"):
        from torchbricks.brick_collection import BrickCollection
        from torchbricks.bricks import BrickLoss, BrickTrainable
        identity = readme_models.PreprocessorDummy
        collection = BrickCollection({
            "model": BrickTrainable(identity(), ["x"], ["y"]),
            "loss": BrickLoss(identity(), ["y"], ["loss"]),
            "metric": BrickTrainable(identity(), ["y"], ["metric"], tags={"METRIC"}),
            "extra": BrickTrainable(identity(), ["y"], ["extra"], tags={"METRIC_EXTRA"}),
            "vis": BrickTrainable(identity(), ["y"], ["vis"], tags={"VISUALIZATION"}),
            "custom": BrickTrainable(identity(), ["y"], ["custom"], tags={"LOSS", "DEBUG"}),
        })
        with pytest.warns(UserWarning) as caught:
            version = export_brick_collection(collection, tmp_path / "t" / "1")
        with pytest.warns(UserWarning, match="'custom'"):  # DEBUG is still run by no stage
            custom = export_brick_collection(collection, tmp_path / "c" / "1",
                                             stage_tags={"INFERENCE": {"MODEL", "VISUALIZATION"}})
    warned = " ".join(str(w.message) for w in caught)
    assert "'vis'" in warned and "'custom'" in warned and "'model'" not in warned
    bricks = flat_bricks(parse_bricks(version))
    assert alive(bricks["model"]) == ALL and bricks["model"].alive_all
    assert KIND_ENUM[bricks["model"].kind] == "TRAINABLE" and bricks["model"].brick_type == "BrickTrainable"
    assert alive(bricks["loss"]) == TRAINING and KIND_ENUM[bricks["loss"].kind] == "LOSS"
    assert alive(bricks["metric"]) == TRAINING and KIND_ENUM[bricks["metric"].kind] == "METRIC"
    assert alive(bricks["extra"]) == {"TEST"} and KIND_ENUM[bricks["extra"].kind] == "METRIC"
    assert "vis" not in bricks  # no stage runs VISUALIZATION by default: left out
    assert alive(bricks["custom"]) == TRAINING
    overridden = flat_bricks(parse_bricks(custom))
    assert alive(overridden["vis"]) == {"INFERENCE"} and alive(overridden["model"]) == ALL


def test_plain_dict_collection(tmp_path, parse_bricks):
    collection = {
        "pre": {"module": readme_models.PreprocessorDummy(), "input_names": ["raw"], "output_names": ["x"],
                "kind": "NOT_TRAINABLE"},
        "task": {
            "model": {"module": readme_models.TinyModel(3, 4), "input_names": ["x"], "output_names": ["./y"]},
            "loss": {"module": nn.MSELoss(), "input_names": ["./y", "../target"], "output_names": ["./loss"],
                     "kind": "LOSS"},
            "metric": {"module": nn.L1Loss(), "input_names": ["./y", "target"], "output_names": ["./l1"],
                       "kind": "METRIC", "alive_stages": ["test"]},
            "single": {"module": nn.Identity(), "input_names": ["./y"], "output_names": ["./z"],
                       "alive_stages": Stage.VALIDATION},
            "vis": {"module": nn.Identity(), "input_names": ["./y"], "output_names": ["./vis"],
                    "kind": "VISUALIZATION"},
            "always": {"module": nn.Identity(), "input_names": ["./y"], "output_names": ["./same"],
                       "kind": "LOSS", "alive_stages": "all"},
        },
    }
    message = parse_bricks(export_brick_collection(collection, tmp_path / "d" / "1"))
    assert [node.name for node in message.nodes] == ["pre", "task"]
    assert message.nodes[1].WhichOneof("content") == "collection"
    bricks = flat_bricks(message)
    assert list(bricks) == ["pre", "task/model", "task/loss", "task/metric", "task/single", "task/vis", "task/always"]
    assert [b.brick_type for b in bricks.values()] == ["BrickNotTrainable", "BrickTrainable", "BrickLoss",
                                                        "BrickMetricSingle", "BrickTrainable",
                                                        "BrickPerImageVisualization", "BrickLoss"]
    assert alive(bricks["pre"]) == ALL and alive(bricks["task/model"]) == ALL
    assert alive(bricks["task/loss"]) == TRAINING
    assert alive(bricks["task/metric"]) == {"TEST"}
    assert alive(bricks["task/single"]) == {"VALIDATION"}
    assert alive(bricks["task/vis"]) == {"INFERENCE"}
    assert bricks["task/always"].alive_all
    # Names are written as the user wrote them; declared inputs are resolved.
    assert list(bricks["task/loss"].input_names) == ["./y", "../target"]
    assert [i.name for i in message.inputs] == ["raw", "target"]
    assert bricks["task/model"].module_file == "modules/task.model.pt"
    assert (tmp_path / "d" / "1" / "modules" / "task.model.pt").is_file()


def test_relative_names_preserved_in_nested_heads(tmp_path, parse_bricks):
    path = export_brick_collection(readme_models.readme_nested_heads(), tmp_path / "nested" / "1")
    message = parse_bricks(path)
    bricks = flat_bricks(message)
    assert list(bricks["head1/classify"].output_names) == ["./logits", "./probabilities", "./class_prediction"]
    assert list(bricks["head0/loss"].input_names) == ["./logits", "targets0"]
    assert [i.name for i in message.inputs] == ["raw", "targets0", "targets1"]
    assert bricks["head0/classify"].module_file == "modules/head0.classify.pt"


def test_example_specs_and_overrides(tmp_path, parse_bricks):
    examples = {Stage.TRAIN: {"raw_images": torch.rand(2, 3, 100, 200), "targets": torch.tensor([0, 2])},
                "inference": {"raw_images": torch.rand(4, 3, 100, 160)}}
    path = export_brick_collection(readme_models.readme_with_loss(), tmp_path / "a" / "1", example_inputs=examples)
    inputs = {i.name: i for i in parse_bricks(path).inputs}
    assert list(inputs["raw_images"].dims) == [-1, 3, 100, -1]  # widths differ between stages
    assert list(inputs["targets"].dims) == [-1] and inputs["targets"].data_type == 9  # TYPE_INT64
    path = export_brick_collection(readme_models.readme_with_loss(), tmp_path / "b" / "1", example_inputs=examples,
                                   input_specs={"raw_images": (torch.float16, [-1, 3, -1, -1]),
                                                "targets": ("INT32", None)})
    inputs = {i.name: i for i in parse_bricks(path).inputs}
    assert inputs["raw_images"].data_type == 10 and list(inputs["raw_images"].dims) == [-1, 3, -1, -1]
    assert inputs["targets"].data_type == 8 and list(inputs["targets"].dims) == []
    with pytest.raises(ExportError, match="raw_image"):
        export_brick_collection(readme_models.readme_with_loss(), tmp_path / "c" / "1",
                                input_specs={"raw_image": (torch.float32, [-1])})


def test_strings_are_escaped(tmp_path, parse_bricks):
    odd = 'quote " apostrophe \' back\\slash \n tab\t é'
    collection = {"odd": {"module": nn.Identity(), "input_names": [odd], "output_names": ["out"]}}
    message = parse_bricks(export_brick_collection(collection, tmp_path / "s" / "1", name="naïve \"model\""))
    assert message.name == 'naïve "model"'
    assert list(message.nodes[0].brick.input_names) == [odd]
    assert message.inputs[0].name == odd
    assert quote("a\x01") == '"a\\001"'


def test_reexport_replaces_version(tmp_path):
    version = tmp_path / "model" / "1"
    export_brick_collection(readme_models.readme_with_loss(), version,
                            example_inputs={"raw_images": torch.rand(1, 3, 8, 8), "targets": torch.tensor([1])})
    assert (version / "reference" / "TRAIN.pt").exists()
    export_brick_collection(readme_models.readme_dummy(), version,
                            example_inputs={Stage.INFERENCE: {"raw_images": torch.rand(1, 3, 8, 8)}})
    assert sorted(p.name for p in (version / "reference").iterdir()) == ["INFERENCE.pt"]
    assert not (version / "modules" / "loss.pt").exists()
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["1"]  # no staging left behind


def test_warns_on_non_integer_version(tmp_path):
    with pytest.warns(UserWarning, match="positive integer"):
        export_brick_collection(readme_models.readme_dummy(), tmp_path / "model" / "latest")


def test_training_mode_is_restored(tmp_path):
    collection = readme_models.readme_dummy()
    modules = [brick["module"] for brick in collection.values()]
    for module in modules:
        module.train()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_brick_collection(collection, tmp_path / "m" / "1",
                                example_inputs={"raw_images": torch.rand(1, 3, 8, 8)})
    assert all(sub.training for module in modules for sub in module.modules())
