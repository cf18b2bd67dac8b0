"""The real torchbricks, both releases: every README example and bag_of_bricks module is
exported, passes `torchbricks verify`, and is served (a real server on loopback) with outputs
equal to the library's own forward: `collection(named_inputs, stage=Stage.X)` for 0.1.0 and
`collection(named_inputs, tags=...)` for 0.4.2, in INFERENCE and EXPORT.

0.4.2 is the torchbricks installed from PyPI (requirements/python.txt), 0.1.0 comes from
../shared/torchbricks/0.1.0 (real_torchbricks.py); both run on the real typeguard and
torchmetrics from PyPI. The tests of a release are skipped, with the reason, when it is
unavailable.
"""
import importlib.metadata
import io
import subprocess
import warnings
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Collection, Iterator, Optional, Sequence, Tuple

import numpy as np
import pytest
import torch

import readme_examples
import real_torchbricks
from package_helpers import flat_bricks
from server_process import ServerProcess
from test_cli_verify import run_cli
from torchbricks_export import ExportError, export_brick_collection

PARAMS = [(release, name) for release in real_torchbricks.RELEASES for name in readme_examples.CASE_NAMES[release]]
RTOL, ATOL = 1e-4, 1e-5


def model_name(release: str, case: str) -> str:
    return f"tb{release.replace('.', '')}_{case}"


def export_release(release: str, repository: Path, options: Callable[[str, str], dict] = lambda release, name: {},
                   rows: Sequence[int] = (), only: Optional[Collection[str]] = None) -> SimpleNamespace:
    """Builds and exports every case of `release` (those named in `only`, when given, each built
    after seeding torch's generator from its name), with
    export_brick_collection's extra arguments
    `options(release, case)`; records, per case, the export's error or warnings and the
    library's forward per served stage, and for each of `rows` the inputs resized to that many
    rows (readme_examples.resized) with the library's forward on them per stage."""
    results = {}
    with real_torchbricks.release(release) as tb:
        builders = readme_examples.CASES[release]()
        assert tuple(builders) == readme_examples.CASE_NAMES[release]
        for name, build in builders.items():
            if only is not None:
                if name not in only:
                    continue
                # Weights that do not depend on which cases ran before (nor on compiles that hit
                # or missed the cache), so that the compile cache serves a later run.
                torch.manual_seed(zlib.crc32(f"{release}/{name}".encode()))
            case = build()
            outcome = SimpleNamespace(case=case, error=None, warnings=[], expected={}, library_drawings={})
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    export_brick_collection(case.collection, repository / model_name(release, name) / "1",
                                            example_inputs=case.example_inputs(), stage_tags=case.stage_tags,
                                            **options(release, name))
                except ExportError as error:
                    outcome.error = error
            outcome.warnings = [str(w.message) for w in caught]
            for stage in case.stages:
                forward = readme_examples.library_forward(tb, case, stage, case.inputs)
                outcome.expected[stage] = {key: value.clone() for key, value in forward.items()
                                           if isinstance(value, torch.Tensor) and key not in case.inputs}
                outcome.library_drawings.update({key: len(forward[key]) for key in case.drawings if key in forward})
            outcome.at_rows = {}
            for count in rows:
                inputs = {key: readme_examples.resized(value, count) for key, value in case.inputs.items()}
                outcome.at_rows[count] = (inputs, {
                    stage: {key: value.clone() for key, value in readme_examples.library_forward(tb, case, stage, inputs).items()
                            if isinstance(value, torch.Tensor) and key not in inputs} for stage in case.stages})
            results[name] = outcome
    return SimpleNamespace(source=tb.path, cases=results)


def test_releases_are_the_real_packages():
    """0.4.2 is PyPI's, installed in the project's environment, and both releases import the
    real typeguard and torchmetrics (no stand-ins)."""
    import typeguard
    import torchmetrics
    assert real_torchbricks.where("0.4.2") == "installed torchbricks 0.4.2"
    for module in (typeguard, torchmetrics):
        assert "site-packages" in Path(module.__file__).parts, module.__file__
    assert int(importlib.metadata.version("typeguard").split(".")[0]) >= 3
    with real_torchbricks.release("0.1.0") as tb:
        assert Path(tb.torchbricks.__file__).resolve().is_relative_to(real_torchbricks.RELEASES_DIR.resolve())


def serve_releases(repository: Path, options: Callable[[str, str], dict] = lambda release, name: {},
                   rows: Sequence[int] = (), config: str = "",
                   only: Optional[Collection[Tuple[str, str]]] = None) -> Iterator[SimpleNamespace]:
    """Both releases exported into `repository` (export_release's `options` and `rows`; only the
    (release, case) pairs in `only`, when given), each model
    given `config` as its config.pbtxt when one is given, and served by one server: yields what
    the tests read (the repository, the releases' outcomes, a client, the server)."""
    releases = {}
    for release in real_torchbricks.RELEASES:
        try:
            names = None if only is None else {name for owner, name in only if owner == release}
            releases[release] = export_release(release, repository, options, rows, names)
        except pytest.skip.Exception as skipped:
            releases[release] = str(skipped)
    if not any(isinstance(value, SimpleNamespace) for value in releases.values()):
        pytest.skip("; ".join(releases.values()))
    if config:
        for folder in repository.iterdir():
            (folder / "config.pbtxt").write_text(config)
    server = ServerProcess(repository, ready_timeout=600).start()
    try:
        with server.client(timeout=120) as client:
            yield SimpleNamespace(repository=repository, releases=releases, client=client, server=server)
    finally:
        code = server.stop()
    assert code == 0, server.log()[-3000:]


def exported_case(suite, release, name):
    """The outcome of exporting case `name` of `release`; skips when the release is unavailable."""
    exported = suite.releases[release]
    if isinstance(exported, str):
        pytest.skip(exported)
    outcome = exported.cases[name]
    assert outcome.error is None, f"export failed: {outcome.error}"
    return outcome


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """Both releases exported into one repository and served by one server."""
    yield from serve_releases(tmp_path_factory.mktemp("real_torchbricks"))


_case = exported_case


@pytest.mark.parametrize("release,name", PARAMS)
def test_export_then_verify(suite, release, name):
    outcome = _case(suite, release, name)
    result = run_cli("verify", suite.repository / model_name(release, name) / "1")
    assert result.returncode == 0, result.stdout + result.stderr
    checked = {(line.split()[0], line.split()[1]) for line in result.stdout.splitlines() if line.endswith(" ok")}
    for stage, expected in outcome.expected.items():
        assert {(stage, key) for key in expected} <= checked, result.stdout


@pytest.mark.parametrize("release,name", PARAMS)
def test_served_outputs_equal_library_forward(suite, release, name):
    outcome = _case(suite, release, name)
    case = outcome.case
    inputs = {key: value.numpy() for key, value in case.inputs.items()}
    for stage, expected in outcome.expected.items():
        assert expected or case.drawings, f"the library's forward produced no tensor in {stage}"
        result = suite.client.infer(model_name(release, name), inputs, outputs=sorted(expected), stage=stage)
        for key, want in expected.items():
            got = result.outputs[key]
            assert list(got.shape) == list(want.shape), (stage, key)
            assert got.dtype == want.numpy().dtype, (stage, key)
            np.testing.assert_allclose(got, want.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"{stage} {key}")


@pytest.mark.parametrize("release,name", [p for p in PARAMS if p[1] in ("readme_visualization", "module_renderer")])
def test_served_drawings_are_pngs_per_image(suite, release, name):
    """One PNG per image, as many as the library's own forward draws (where it can run the
    renderer: a TorchScript renderer module cannot take the numpy images it hands over)."""
    from PIL import Image
    outcome = _case(suite, release, name)
    case = outcome.case
    inputs = {key: value.numpy() for key, value in case.inputs.items()}
    result = suite.client.infer(model_name(release, name), inputs, outputs=list(case.drawings), stage="INFERENCE")
    batch, _, height, width = next(iter(case.inputs.values())).shape
    for drawing in case.drawings:
        pngs = result.outputs[drawing]
        assert len(pngs) == batch == outcome.library_drawings.get(drawing, batch)
        for png in pngs:
            image = Image.open(io.BytesIO(png))
            assert image.format == "PNG"
            assert image.size[0] * height == image.size[1] * width  # aspect kept (built-ins may enlarge)


# --- the two failures of the issue, with the real library -----------------------------------
def _manifest(suite, release, name, parse_bricks):
    _case(suite, release, name)
    parsed = parse_bricks(suite.repository / model_name(release, name) / "1")
    return parsed, flat_bricks(parsed)


@pytest.mark.parametrize("release", real_torchbricks.RELEASES)
def test_call_only_preprocessor_is_scripted_with_its_call_as_forward(suite, release, parse_bricks):
    parsed, bricks = _manifest(suite, release, "readme_resnet", parse_bricks)
    assert "preprocessor" not in parsed.metadata.get("traced_bricks", "")
    module = torch.jit.load(str(suite.repository / model_name(release, "readme_resnet") / "1" /
                                bricks["preprocessor"].module_file))
    assert [a.name for a in module.forward.schema.arguments[1:]] == ["img"]


@pytest.mark.parametrize("release", real_torchbricks.RELEASES)
def test_keyword_input_names_are_recorded_and_wired_by_value(suite, release, parse_bricks):
    _, bricks = _manifest(suite, release, "keyword_inputs", parse_bricks)
    head = bricks["head"]
    assert list(head.input_names) == ["features"]
    assert list(head.input_arguments) == ["backbone_features"]


def test_stage_enum_module_is_traced_per_stage(suite, parse_bricks):
    _, bricks = _manifest(suite, "0.1.0", "readme_stage", parse_bricks)
    pre = bricks["preprocessor"]
    assert pre.module_file == ""
    assert {m.module_file for m in pre.stage_modules} >= {"modules/preprocessor.INFERENCE.pt",
                                                          "modules/preprocessor.EXPORT.pt"}
    raw = readme_examples.images(2, 3, 100, 200).numpy()
    shapes = {stage: suite.client.infer(model_name("0.1.0", "readme_stage"), {"raw": raw}, outputs=["processed"],
                                        stage=stage).outputs["processed"].shape for stage in ("INFERENCE", "EXPORT")}
    assert shapes == {"INFERENCE": (2, 3, 100, 200), "EXPORT": (2, 3, 50, 100)}


@pytest.mark.parametrize("release,name,brick", [("0.1.0", "readme_resnet", "accuracy"),
                                                ("0.4.2", "bag_of_bricks_classifier", "animals/metrics")])
def test_metric_bricks_are_left_out_with_a_warning(suite, release, name, brick, parse_bricks):
    _, bricks = _manifest(suite, release, name, parse_bricks)
    assert brick not in bricks
    outcome = suite.releases[release].cases[name]
    assert any(f"'{brick}'" in message and "left out" in message for message in outcome.warnings)


def test_visualization_tag_outside_default_stage_tags_is_left_out_with_a_warning(tmp_path):
    from torchbricks_export import renderers
    with real_torchbricks.release("0.4.2"):
        from torchbricks.bag_of_bricks.brick_visualizer import BrickPerImageVisualization
        from torchbricks.brick_collection import BrickCollection
        from torchbricks.bricks import BrickTrainable
        collection = BrickCollection({
            "head": BrickTrainable(readme_examples.ClassifierDummy(3, 3), input_names=["image"],
                                   output_names=["logits", "scores"]),
            "viz": BrickPerImageVisualization(callable=renderers.ImageClassification(class_names=["a", "b", "c"]),
                                              input_names=["image", "scores"], output_names=["drawing"]),
        })
        with pytest.warns(UserWarning, match="'viz' has the tag.*VISUALIZATION.*left out of INFERENCE and EXPORT"):
            export_brick_collection(collection, tmp_path / "m" / "1",
                                    example_inputs={"image": readme_examples.images(2, 3, 8, 8)})
    text = (tmp_path / "m" / "1" / "bricks.pbtxt").read_text()
    assert 'name: "head"' in text and 'name: "viz"' not in text


def test_readme_pil_visualizer_is_refused_with_the_built_in_alternative(tmp_path):
    with real_torchbricks.release("0.1.0"):
        from torchbricks.brick_visualizer import BrickPerImageVisualization
        from torchbricks.bricks import BrickCollection, Stage

        class VisualizeImageClassification:  # the notebook's, without its font file
            def __init__(self, class_names):
                self.class_names = class_names

            def __call__(self, input_image, target_prediction):
                return input_image

        collection = BrickCollection({"visualizer": BrickPerImageVisualization(
            callable=VisualizeImageClassification(class_names=["cat", "dog"]), input_names=["input_image", "target"],
            output_names=["visualization"], alive_stages=[Stage.INFERENCE])})
        with pytest.raises(ExportError, match="'visualizer'.*plain Python.*renderers.ImageClassification"):
            export_brick_collection(collection, tmp_path / "m" / "1",
                                    example_inputs={"input_image": torch.zeros(2, 3, 10, 20),
                                                    "target": torch.tensor([0, 1])})
    assert not (tmp_path / "m" / "1").exists()
