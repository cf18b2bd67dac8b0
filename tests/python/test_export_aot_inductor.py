"""module_format="aot_inductor": bricks captured by torch.export with a dynamic batch and compiled by
AOTInductor into .pt2 packages, with the real torchbricks 0.4.2; mixed packages (keep_torchscript);
bricks that cannot be compiled; and the compile cache across exports.

Every compile costs seconds to tens of seconds, so the module shares one compile cache
(a folder of its own) and one exported README classifier between its tests: five distinct
programs are compiled in all.
"""
import copy

import pytest
import torch
from torch import nn

import readme_examples
import readme_models
import real_torchbricks
from package_helpers import flat_bricks
from readme_models import brick
from torchbricks_export import ExportError, aoti_cache, export_brick_collection, load_reference

aoti_load_package = pytest.importorskip("torch._inductor").aoti_load_package

MAX_BATCH = 8
BATCHES = (1, 3, MAX_BATCH)
RTOL, ATOL = 1e-4, 1e-5
TORCHSCRIPT, AOT_INDUCTOR = 0, 1
TYPE_FP32 = 11


pytestmark = pytest.mark.usefixtures("module_compile_cache")  # compiles shared within this module


def export_compiled(collection, version_dir, **kwargs):
    """Exports with module_format="aot_inductor" and max_batch_size MAX_BATCH; returns
    (cache hits, compiles) of this export."""
    before = aoti_cache.counters()
    export_brick_collection(collection, version_dir, module_format="aot_inductor", max_batch_size=MAX_BATCH, **kwargs)
    after = aoti_cache.counters()
    return after.hits - before.hits, after.compiles - before.compiles


def export_readme_case(case, version_dir, **kwargs):
    """export_compiled for a real torchbricks 0.4.2 case (exported inside its release, as the
    exporter reads the library's stage tags)."""
    with real_torchbricks.release("0.4.2"):
        return export_compiled(case.collection, version_dir, example_inputs=case.example_inputs(), **kwargs)


def build_case(name):
    with real_torchbricks.release("0.4.2"):
        return readme_examples.CASES["0.4.2"]()[name]()


def assert_matches_eager(package_file, eager, dims, batches=BATCHES):
    """The package, run through torch's AOTInductor loader on random inputs of `dims` at each
    batch size, returns what the eager callable returns (rtol 1e-4; integer outputs equal)."""
    package = aoti_load_package(str(package_file))
    generator = torch.Generator().manual_seed(3)
    for batch in batches:
        x = torch.rand(batch, *dims[1:], generator=generator)
        with torch.no_grad():
            want = eager(x)
        got = package(x)
        want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
        assert len(got) == len(want)
        for expected, actual in zip(want, got):
            assert actual.shape == expected.shape and actual.dtype == expected.dtype, batch
            if expected.is_floating_point():
                assert torch.allclose(actual, expected, rtol=RTOL, atol=ATOL), (batch, (actual - expected).abs().max())
            else:
                assert torch.equal(actual, expected), batch


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """The torchbricks README's classifier (preprocessor, backbone, head: its first example, with
    a cross-entropy loss added) exported as aot_inductor."""
    case = build_case("readme_dummy")
    with real_torchbricks.release("0.4.2"):
        from torchbricks.bricks import BrickLoss
        case.collection["loss"] = BrickLoss(model=nn.CrossEntropyLoss(), input_names=["logits", "targets"],
                                            output_names=["loss_ce"])
    case.train_inputs = {"raw_images": case.inputs["raw_images"], "targets": torch.tensor([0, 2])}
    version = tmp_path_factory.mktemp("classifier") / "classifier" / "1"
    counts = export_readme_case(case, version)
    return case, version, counts


def test_classifier_manifest(classifier, parse_bricks):
    case, version, (hits, compiles) = classifier
    assert hits + compiles == 3
    message = parse_bricks(version)
    assert dict(message.metadata)["module_format"] == "aot_inductor"
    bricks = flat_bricks(message)
    assert list(bricks) == ["preprocessor", "backbone", "head", "loss"]
    assert sorted(path.name for path in (version / "modules").iterdir()) == [
        "backbone.pt2", "head.pt2", "loss.pt", "preprocessor.pt2"]
    expected_inputs = {"preprocessor": ("raw_images", [-1, 3, 100, 200]),
                       "backbone": ("processed", [-1, 3, 100, 200]), "head": ("embedding", [-1, 10, 100, 200])}
    for name, (input_name, dims) in expected_inputs.items():
        written = bricks[name]
        assert written.module_format == AOT_INDUCTOR, name
        assert written.module_file == f"modules/{name}.pt2"
        assert not written.input_arguments
        compiled = written.compiled
        assert [(spec.name, spec.data_type, list(spec.dims)) for spec in compiled.inputs] == [
            (input_name, TYPE_FP32, dims)]
        assert (compiled.min_batch, compiled.max_batch, compiled.device) == (1, MAX_BATCH, "cpu")
        metadata = aoti_load_package(str(version / written.module_file)).get_metadata()
        assert compiled.cpu_isa == metadata.get("AOTI_CPU_ISA", "")
    # The loss stays TorchScript (LOSS and METRIC bricks always do).
    assert bricks["loss"].module_format == TORCHSCRIPT and bricks["loss"].module_file == "modules/loss.pt"
    assert not bricks["loss"].HasField("compiled")


def test_classifier_bricks_match_eager_at_batch_1_3_and_max(classifier, parse_bricks):
    case, version, _ = classifier
    bricks = flat_bricks(parse_bricks(version))
    for name in ("preprocessor", "backbone", "head"):
        module = case.collection[name].model
        assert_matches_eager(version / bricks[name].module_file, module, list(bricks[name].compiled.inputs[0].dims))


def test_classifier_reference_is_the_eager_run(classifier):
    case, version, _ = classifier
    stage, inputs, outputs = load_reference(version / "reference" / "INFERENCE.pt")
    assert stage == "INFERENCE" and torch.equal(inputs["raw_images"], case.inputs["raw_images"])
    with torch.no_grad():
        modules = {name: case.collection[name].model for name in ("preprocessor", "backbone", "head")}
        logits = modules["head"](modules["backbone"](modules["preprocessor"](case.inputs["raw_images"])))[0]
    assert torch.allclose(outputs["logits"], logits, rtol=RTOL, atol=ATOL)


def test_second_export_of_the_same_collection_hits_the_cache(classifier, tmp_path):
    case, version, _ = classifier
    hits, compiles = export_readme_case(case, tmp_path / "again" / "1")
    assert (hits, compiles) == (3, 0)
    for name in ("preprocessor", "backbone", "head"):
        assert (tmp_path / "again" / "1" / "modules" / f"{name}.pt2").read_bytes() == \
            (version / "modules" / f"{name}.pt2").read_bytes()


def test_a_changed_weight_misses_the_cache(classifier, tmp_path, parse_bricks):
    case, _, _ = classifier
    changed = copy.deepcopy(case)
    head = changed.collection["head"].model
    with torch.no_grad():
        head.fc.bias[0] += 1.0
    hits, compiles = export_readme_case(changed, tmp_path / "changed" / "1")
    assert (hits, compiles) == (2, 1)
    written = flat_bricks(parse_bricks(tmp_path / "changed" / "1"))["head"]
    assert_matches_eager(tmp_path / "changed" / "1" / written.module_file, head, [-1, 10, 100, 200], batches=(2,))


def test_mixed_package_keeps_the_named_bricks_in_torchscript(tmp_path, parse_bricks):
    """The README's keyword example: the backbone kept in TorchScript, the head (called by
    keyword, ImageClassifier(backbone_features=...)) compiled, taking its input by position."""
    case = build_case("keyword_inputs")
    version = tmp_path / "mixed" / "1"
    with real_torchbricks.release("0.4.2"):
        hits, compiles = export_compiled(case.collection, version, example_inputs=case.example_inputs(),
                                         keep_torchscript=["backbone"])
    assert (hits, compiles) == (0, 1)
    bricks = flat_bricks(parse_bricks(version))
    backbone, head = bricks["backbone"], bricks["head"]
    assert backbone.module_format == TORCHSCRIPT and backbone.module_file == "modules/backbone.pt"
    assert not backbone.HasField("compiled")
    assert head.module_format == AOT_INDUCTOR and head.module_file == "modules/head.pt2"
    assert list(head.input_names) == ["features"] and not head.input_arguments
    assert [(spec.name, list(spec.dims)) for spec in head.compiled.inputs] == [("features", [-1, 8, 16, 16])]
    assert sorted(path.name for path in (version / "modules").iterdir()) == ["backbone.pt", "head.pt2"]
    classify = case.collection["head"].model
    assert_matches_eager(version / head.module_file, lambda x: classify(backbone_features=x), [-1, 8, 16, 16])


class DataDependent(nn.Module):
    """Branches on a tensor's value: torch.export cannot capture that (TorchScript can)."""

    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x - 1


def test_data_dependent_control_flow_names_the_brick_and_the_way_out(tmp_path):
    collection = {"pre": brick(readme_models.PreprocessorDummy(), ["raw"], ["x"], kind="NOT_TRAINABLE"),
                  "post": {"gate": brick(DataDependent(), ["x"], ["y"])}}
    version = tmp_path / "model" / "1"
    version.mkdir(parents=True)
    (version / "bricks.pbtxt").write_text("the previous export")
    with pytest.raises(ExportError) as error:
        export_compiled(collection, version, example_inputs={"raw": torch.rand(2, 3)})
    message = str(error.value)
    assert "'post/gate'" in message and "DataDependent" in message
    assert "GuardOnDataDependentSymNode: Could not guard on data-dependent expression" in message
    assert 'keep_torchscript=["post/gate"]' in message
    assert [path.name for path in version.iterdir()] == ["bricks.pbtxt"]
    assert (version / "bricks.pbtxt").read_text() == "the previous export"
    assert [path.name for path in version.parent.iterdir()] == ["1"]  # no staging folder left


def test_readme_preprocessor_is_data_dependent(tmp_path):
    """torchbricks' bag_of_bricks Preprocessor normalises with torchvision, whose
    `if (std == 0).any(): raise` torch.export cannot capture: such a package keeps it in
    TorchScript (docs/PACKAGE_FORMAT.md)."""
    case = build_case("readme_resnet")
    with pytest.raises(ExportError, match=r"'preprocessor' \(Preprocessor\) cannot be captured by torch.export: "
                                          r"GuardOnDataDependentSymNode.*keep_torchscript=\[\"preprocessor\"\]"):
        export_readme_case(case, tmp_path / "m" / "1")


def test_unknown_keep_torchscript_name(tmp_path):
    with pytest.raises(ExportError, match=r"keep_torchscript names no brick.*'head/classify'.*preprocessor, "
                                          r"backbone, head"):
        export_compiled(readme_models.readme_dummy(), tmp_path / "m" / "1",
                        example_inputs={"raw_images": torch.rand(2, 3, 8, 8)}, keep_torchscript=["head/classify"])
    with pytest.raises(ExportError, match="list of brick names"):
        export_compiled(readme_models.readme_dummy(), tmp_path / "m" / "1",
                        example_inputs={"raw_images": torch.rand(2, 3, 8, 8)}, keep_torchscript="head")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("collection,inputs,reason", [
    (readme_models.readme_stage_preprocessor, {"raw": torch.rand(2, 3, 8, 8)},
     r"'preprocessor' \(Preprocessor\) takes the input 'stage'"),
    (readme_models.dict_output, {"images": torch.rand(2, 3, 4, 4)},
     r"'split' \(SplitHalves\) returns a dict of 2 tensor\(s\) for the output names \['halves'\]"),
    (readme_models.readme_all_input, {"raw": torch.rand(2, 3, 4, 4)},
     r"'post_processor' \(MyNewPostProcessor\) takes the input '__all__'"),
])
def test_bricks_that_cannot_be_compiled(tmp_path, collection, inputs, reason):
    with pytest.raises(ExportError, match=reason + r".*keep_torchscript=\[\""):
        export_compiled(collection(), tmp_path / "m" / "1", example_inputs=inputs)
    assert not (tmp_path / "m").exists()


def test_example_batch_above_max_batch_size(tmp_path):
    with pytest.raises(ExportError, match=r"'preprocessor' receives a batch of 9 .* more than max_batch_size 8"):
        export_compiled(readme_models.readme_dummy(), tmp_path / "m" / "1",
                        example_inputs={"raw_images": torch.rand(9, 3, 8, 8)})


def test_without_example_inputs(tmp_path):
    with pytest.raises(ExportError, match="aot_inductor' needs example_inputs"):
        export_compiled(readme_models.readme_dummy(), tmp_path / "m" / "1")
