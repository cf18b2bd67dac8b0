"""Reference files hold the example inputs and every tensor the alive bricks produce, equal to a
direct eager computation; the exported modules reproduce them."""
import pytest
import torch

import readme_models
from torchbricks_export import ExportError, Stage, export_brick_collection, load_reference, run_reference
from torchbricks_export.naming import resolve_name


def test_reference_equals_direct_eager_computation(tmp_path):
    collection = readme_models.readme_dummy()
    images = torch.rand(2, 3, 100, 200)
    path = export_brick_collection(collection, tmp_path / "m" / "1",
                                   example_inputs={Stage.INFERENCE: {"raw_images": images}})
    stage, inputs, outputs = load_reference(path / "reference" / "INFERENCE.pt")
    assert stage == "INFERENCE"
    assert list(inputs) == ["raw_images"] and torch.equal(inputs["raw_images"], images)
    with torch.no_grad():
        processed = collection["preprocessor"]["module"](images)
        embedding = collection["backbone"]["module"](processed)
        logits, softmaxed = collection["head"]["module"](embedding)
    assert list(outputs) == ["processed", "embedding", "logits", "softmaxed"]
    for name, expected in [("processed", processed), ("embedding", embedding), ("logits", logits),
                           ("softmaxed", softmaxed)]:
        assert torch.equal(outputs[name], expected), name
    # Equality with torchbricks' own forward is tested with the real library (test_real_torchbricks.py).


def test_exported_modules_reproduce_reference(tmp_path):
    path = export_brick_collection(readme_models.resnet18_classifier(), tmp_path / "r" / "1",
                                   example_inputs={Stage.TRAIN: {"raw": torch.rand(2, 3, 32, 32),
                                                                 "targets": torch.tensor([3, 7])}})
    _, inputs, outputs = load_reference(path / "reference" / "TRAIN.pt")
    load = lambda name: torch.jit.load(str(path / "modules" / f"{name}.pt"))  # noqa: E731
    with torch.no_grad():
        normalized = load("preprocessor")(inputs["raw"])
        features = load("backbone")(normalized)
        logits, probabilities, prediction = load("head")(features)
        accuracy = load("accuracy")(prediction, inputs["targets"])
        loss = load("loss")(logits, inputs["targets"])
    assert features.shape == (2, 512)
    assert sorted(outputs) == sorted(["normalized", "features", "logits", "probabilities", "class_prediction",
                                      "accuracy", "loss_ce"])
    for name, value in [("normalized", normalized), ("features", features), ("logits", logits),
                        ("probabilities", probabilities), ("class_prediction", prediction),
                        ("accuracy", accuracy), ("loss_ce", loss)]:
        assert torch.allclose(outputs[name], value, rtol=1e-5, atol=1e-6), name


def test_stage_preprocessor_sizes(tmp_path):
    raw = torch.rand(2, 3, 100, 200)
    path = export_brick_collection(readme_models.readme_stage_preprocessor(), tmp_path / "s" / "1",
                                   example_inputs={"raw": raw})
    _, _, exported = load_reference(path / "reference" / "EXPORT.pt")
    _, _, inferred = load_reference(path / "reference" / "INFERENCE.pt")
    assert list(exported["processed"].shape) == [2, 3, 50, 100]
    assert list(inferred["processed"].shape) == [2, 3, 100, 200]
    assert torch.equal(inferred["processed"], raw / 2)
    scripted = torch.jit.load(str(path / "modules" / "preprocessor.pt"))
    assert torch.equal(scripted(raw, "EXPORT"), exported["processed"])


def test_nested_relative_outputs_resolved(tmp_path):
    examples = {Stage.TRAIN: {"raw": torch.rand(2, 3, 16, 16), "targets0": torch.tensor([0, 2]),
                              "targets1": torch.tensor([4, 1])},
                Stage.INFERENCE: {"raw": torch.rand(2, 3, 16, 16)}}
    collection = readme_models.readme_nested_heads()
    path = export_brick_collection(collection, tmp_path / "n" / "1", example_inputs=examples)
    _, inputs, train = load_reference(path / "reference" / "TRAIN.pt")
    _, _, inference = load_reference(path / "reference" / "INFERENCE.pt")
    heads = [f"head{i}/{name}" for i in (0, 1) for name in ("logits", "probabilities", "class_prediction")]
    assert set(inference) == {"normalized", "features", *heads}
    assert set(train) == set(inference) | {"head0/loss_ce", "head1/loss_ce"}
    expected = torch.nn.functional.cross_entropy(train["head1/logits"], inputs["targets1"])
    assert torch.allclose(train["head1/loss_ce"], expected)
    assert train["head1/probabilities"].shape == (2, 5) and train["head0/probabilities"].shape == (2, 3)


def test_all_input_receives_every_tensor(tmp_path):
    raw = torch.rand(2, 3, 10, 20)
    path = export_brick_collection(readme_models.readme_all_input(), tmp_path / "a" / "1",
                                   example_inputs={"raw": raw})
    _, _, outputs = load_reference(path / "reference" / "INFERENCE.pt")
    assert torch.equal(outputs["postprocessed"], outputs["embedding"])
    seen = {}
    spy = {"spy": {"module": lambda values, stage: seen.update(all=sorted(values), stage=stage),
                   "input_names": ["__all__", "stage"], "output_names": []}}
    collection = {"pre": {"module": readme_models.PreprocessorDummy(), "input_names": ["raw"],
                          "output_names": ["half"]}, **spy}
    run_reference(collection, "EXPORT", {"raw": raw})
    assert seen == {"all": ["half", "raw"], "stage": "EXPORT"}  # __all__: tensors only, not the stage


def test_dict_output_flattened(tmp_path):
    images = torch.rand(2, 3, 4, 8)
    path = export_brick_collection(readme_models.dict_output(), tmp_path / "d" / "1", example_inputs={"images": images})
    _, _, outputs = load_reference(path / "reference" / "INFERENCE.pt")
    assert sorted(outputs) == ["difference", "halves/left", "halves/right"]
    assert torch.equal(outputs["halves/left"], images[..., :4])
    assert torch.equal(outputs["difference"], images[..., :4] - images[..., 4:])


def test_flat_examples_choose_stages(tmp_path):
    path = export_brick_collection(readme_models.readme_with_loss(), tmp_path / "m" / "1",
                                   example_inputs={"raw_images": torch.rand(1, 3, 8, 8)})
    assert sorted(p.stem for p in (path / "reference").iterdir()) == ["EXPORT", "INFERENCE"]
    with pytest.raises(ExportError, match="targets"):
        export_brick_collection(readme_models.readme_with_loss(), tmp_path / "n" / "1",
                                example_inputs={Stage.TRAIN: {"raw_images": torch.rand(1, 3, 8, 8)}})
    with pytest.raises(ExportError, match="raw_images"):
        export_brick_collection(readme_models.readme_with_loss(), tmp_path / "o" / "1",
                                example_inputs={"images": torch.rand(1, 3, 8, 8)})


@pytest.mark.parametrize("name, path, expected", [
    ("./logits", ("head0",), "head0/logits"),
    ("../x", ("head0",), "x"),
    ("../x", ("head1", "nested"), "head1/x"),
    ("./a/../b", ("h",), "h/b"),
    ("absolute/name", ("h",), "absolute/name"),
    ("stage", ("h",), "stage"),
])
def test_resolve_name(name, path, expected):
    assert resolve_name(name, path, "brick") == expected


def test_climbing_above_root_names_the_brick(tmp_path):
    collection = {"outer": {"climber": {"module": torch.nn.Identity(), "input_names": ["../../escape"],
                                        "output_names": ["./y"]}}}
    with pytest.raises(ExportError, match="'outer/climber'.*climbs above the root"):
        export_brick_collection(collection, tmp_path / "c" / "1")
