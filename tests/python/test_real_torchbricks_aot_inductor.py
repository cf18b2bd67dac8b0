"""AOTInductor bricks (issue 23) with the real torchbricks, both releases: every README example and
bag_of_bricks module is exported with `module_format="aot_inductor"` (each brick through
torch.export, batch dimension dynamic up to MAX_BATCH, compiled into a .pt2), the bricks
torch.export cannot take left in TorchScript by name (KEEP_TORCHSCRIPT, each with the error that
says why), served by a real server, and its outputs compared with the library's own forward
(rtol 1e-4) at batch 1, 3 and MAX_BATCH through the dynamic batcher, in INFERENCE and EXPORT.

Compiling costs ~20 s per brick on two cores: the exporter's compile cache
($TORCHBRICKS_AOTI_CACHE, default ~/.cache/torchbricks/aoti, outside the checkout) makes a second
run of this module take seconds.
"""
import shutil
import threading

import grpc
import numpy as np
import pytest

import readme_examples
import real_torchbricks
from metrics_scrape import Scrape
from package_helpers import flat_bricks
from server_process import ServerProcess
from test_cli_verify import run_cli
from test_real_torchbricks import ATOL, PARAMS, RTOL, exported_case, model_name, serve_releases
from torchbricks_export import ExportError, export_brick_collection

MAX_BATCH = 8
# Bricks of the examples that torch.export cannot take, by (release, case): brick -> what the
# export error says (torch.export's reason).
# torchbricks' bag_of_bricks Preprocessor normalizes with torchvision, which branches on
# `(std == 0).any()`; the 0.1 README's stage preprocessor takes the Stage enum; the README's
# post-processor takes every tensor as a dict ("__all__").
DATA_DEPENDENT = "GuardOnDataDependentSymNode: Could not guard on data-dependent expression"
KEEP_TORCHSCRIPT = {
    ("0.1.0", "readme_resnet"): {"preprocessor": DATA_DEPENDENT},
    ("0.1.0", "readme_nested_heads"): {"preprocessor": DATA_DEPENDENT},
    ("0.1.0", "readme_all_input"): {"post_processor": "takes the input '__all__'"},
    ("0.1.0", "readme_stage"): {"preprocessor": "takes the input 'stage'"},
    ("0.4.2", "readme_resnet"): {"preprocessor": DATA_DEPENDENT},
    ("0.4.2", "readme_nested_heads"): {"preprocessor": DATA_DEPENDENT},
    ("0.4.2", "bag_of_bricks_classifier"): {"preprocessor": DATA_DEPENDENT},
    ("0.4.2", "readme_all_input"): {"post_processor": "takes the input '__all__'"},
}
CONFIG = f"""max_batch_size: {MAX_BATCH}
dynamic_batching {{ max_queue_delay_microseconds: 20000 }}
"""


def aot_options(release: str, name: str) -> dict:
    return {"module_format": "aot_inductor", "max_batch_size": MAX_BATCH,
            "keep_torchscript": sorted(KEEP_TORCHSCRIPT.get((release, name), {}))}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """Both releases exported as AOTInductor bricks into one repository, served by one server
    with dynamic batching up to the compiled maximum."""
    yield from serve_releases(tmp_path_factory.mktemp("real_torchbricks_aoti"), aot_options,
                              rows=(1, 3, MAX_BATCH), config=CONFIG)


_case = exported_case


@pytest.mark.parametrize("release,name", PARAMS)
def test_every_module_brick_is_compiled_unless_kept(suite, release, name, parse_bricks):
    _case(suite, release, name)
    bricks = flat_bricks(parse_bricks(suite.repository / model_name(release, name) / "1"))
    kept = KEEP_TORCHSCRIPT.get((release, name), {})
    for brick_name, brick in bricks.items():
        if not brick.module_file and not brick.stage_modules:
            continue  # a built-in renderer: nothing to compile
        compiled = brick.module_format == 1  # AOT_INDUCTOR
        # Kept by name; LOSS and METRIC bricks (training stages only) and VISUALIZATION modules.
        if brick_name in kept or brick.kind in (3, 4, 5):
            assert not compiled, brick_name
            continue
        assert compiled and brick.module_file.endswith(".pt2"), brick_name
        assert (brick.compiled.min_batch, brick.compiled.max_batch) == (1, MAX_BATCH), brick_name
        assert [spec.dims[0] for spec in brick.compiled.inputs] == [-1] * len(brick.input_names), brick_name


def assert_verifies(suite, release: str, name: str) -> None:
    """`torchbricks verify` of the case's exported package passes (C++ against Python)."""
    _case(suite, release, name)
    result = run_cli("verify", suite.repository / model_name(release, name) / "1")
    assert result.returncode == 0, result.stdout + result.stderr


def assert_outputs_equal(result, expected, rows: int, stage: str) -> None:
    """Each served output has the library's shape and values (RTOL, ATOL)."""
    for key, want in expected.items():
        got = result.outputs[key]
        assert list(got.shape) == list(want.shape), (rows, stage, key)
        np.testing.assert_allclose(got, want.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"{rows} {stage} {key}")


@pytest.mark.parametrize("release,name", PARAMS)
def test_export_then_verify(suite, release, name):
    assert_verifies(suite, release, name)


@pytest.mark.parametrize("release,name", PARAMS)
def test_served_outputs_equal_library_forward_at_batch_1_3_and_max(suite, release, name):
    outcome = _case(suite, release, name)
    for rows, (inputs, expected_per_stage) in outcome.at_rows.items():
        for stage, expected in expected_per_stage.items():
            result = suite.client.infer(model_name(release, name), {k: v.numpy() for k, v in inputs.items()},
                                        outputs=sorted(expected), stage=stage)
            assert_outputs_equal(result, expected, rows, stage)


def test_single_rows_sent_together_share_a_compiled_batch(suite):
    """MAX_BATCH one-row requests at once: the dynamic batcher runs them in fewer executions, and
    each gets its own row of the batched run."""
    release, name = real_torchbricks.RELEASES[-1], "readme_dummy"
    outcome = _case(suite, release, name)
    rows = readme_examples.resized(next(iter(outcome.case.inputs.values())), MAX_BATCH)
    input_name = next(iter(outcome.case.inputs))
    model = model_name(release, name)
    alone = [suite.client.infer(model, {input_name: rows[i:i + 1].numpy()}).outputs for i in range(MAX_BATCH)]
    before = suite.client.model_statistics(model).model_stats[0].execution_count
    answers, barrier = [None] * MAX_BATCH, threading.Barrier(MAX_BATCH)

    def send(i: int) -> None:
        with suite.server.client(timeout=60) as own:
            barrier.wait()
            answers[i] = own.infer(model, {input_name: rows[i:i + 1].numpy()}).outputs

    threads = [threading.Thread(target=send, args=(i,)) for i in range(MAX_BATCH)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    executions = suite.client.model_statistics(model).model_stats[0].execution_count - before
    assert executions < MAX_BATCH
    for mine, single in zip(answers, alone):
        for key in single:
            np.testing.assert_allclose(mine[key], single[key], rtol=RTOL, atol=ATOL, err_msg=key)


def test_a_batch_above_the_compiled_range_is_invalid_argument(suite):
    release, name = real_torchbricks.RELEASES[-1], "readme_dummy"
    outcome = _case(suite, release, name)
    input_name, value = next(iter(outcome.case.inputs.items()))
    with pytest.raises(grpc.RpcError) as error:
        suite.client.infer(model_name(release, name), {input_name: readme_examples.resized(value, MAX_BATCH + 1).numpy()})
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(MAX_BATCH) in error.value.details()
    assert suite.client.server_ready()


@pytest.mark.parametrize("release,name", sorted(KEEP_TORCHSCRIPT))
def test_bricks_torch_export_cannot_take_are_named_with_the_reason(suite, release, name, tmp_path):
    """Without keep_torchscript the export fails on the brick, says why and how to keep it."""
    _case(suite, release, name)
    ((brick, reason),) = KEEP_TORCHSCRIPT[(release, name)].items()
    with real_torchbricks.release(release):
        case = readme_examples.CASES[release]()[name]()  # built anew: the release is imported anew
        with pytest.raises(ExportError) as error:
            export_brick_collection(case.collection, tmp_path / "m" / "1", example_inputs=case.example_inputs(),
                                    stage_tags=case.stage_tags, module_format="aot_inductor", max_batch_size=MAX_BATCH)
    message = str(error.value)
    assert f"brick '{brick}'" in message and reason in message, message
    assert f'keep_torchscript=["{brick}"]' in message
    assert not (tmp_path / "m" / "1").exists()


def test_a_corrupt_compiled_brick_fails_its_load_with_failed_precondition(suite, tmp_path):
    """A truncated .pt2: loading the model is FAILED_PRECONDITION naming the brick, and the
    server goes on serving the model it already had."""
    release, name = real_torchbricks.RELEASES[-1], "readme_dummy"
    outcome = _case(suite, release, name)
    repository = tmp_path / "repository"
    for model in ("good", "corrupt"):
        shutil.copytree(suite.repository / model_name(release, name), repository / model)
    package = repository / "corrupt" / "1" / "modules" / "backbone.pt2"
    package.write_bytes(package.read_bytes()[: package.stat().st_size // 2])
    input_name, value = next(iter(outcome.case.inputs.items()))
    with ServerProcess(repository, "--model-control-mode", "explicit", "--load-model", "good") as server:
        with server.client(timeout=60) as client:
            with pytest.raises(grpc.RpcError) as error:
                client.load_model("corrupt")
            assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION, error.value.details()
            assert "'backbone'" in error.value.details()
            assert client.infer("good", {input_name: value.numpy()}).outputs


# --- fused stages (issue 23, item 2) ----------------------------------------------------------
# README examples of both releases exported with fused_stages=["INFERENCE"]: the compiled bricks
# alive in INFERENCE become one program (kept bricks and renderers run around it), served by a
# server of their own. One fused compile per case; the bricks' own compiles hit the cache.
# module_renderer: a TorchScript renderer runs after the fused program; readme_nested_heads and
# bag_of_bricks_classifier: a kept preprocessor runs before it, LOSS/METRIC bricks stay out.
FUSED_CASES = (("0.1.0", "readme_dummy"), ("0.1.0", "keyword_inputs"), ("0.1.0", "module_renderer"),
               ("0.4.2", "readme_dummy"), ("0.4.2", "readme_nested_heads"), ("0.4.2", "bag_of_bricks_classifier"))
FUSED = "<fused INFERENCE>"
INFERENCE = 4


def fused_options(release: str, name: str) -> dict:
    return {**aot_options(release, name), "fused_stages": ["INFERENCE"]}


@pytest.fixture(scope="module")
def fused_suite(tmp_path_factory):
    yield from serve_releases(tmp_path_factory.mktemp("real_torchbricks_fused"), fused_options,
                              rows=(1, 3, MAX_BATCH), config=CONFIG, only=FUSED_CASES)


def fused_stage_of(suite, release, name, parse_bricks):
    message = parse_bricks(suite.repository / model_name(release, name) / "1")
    (fused,) = message.fused_stages
    return message, fused


def fused_executions(suite, model):
    """(the fused program's executions, {brick: executions}) from BrickStatistics."""
    (version,) = suite.client.brick_statistics(model).versions
    stats = {stat.name: stat.executions for stat in version.bricks}
    return stats.pop(FUSED), stats


@pytest.mark.parametrize("release,name", FUSED_CASES)
def test_fused_stage_holds_every_compiled_inference_brick(fused_suite, release, name, parse_bricks):
    _case(fused_suite, release, name)
    message, fused = fused_stage_of(fused_suite, release, name, parse_bricks)
    bricks = flat_bricks(message)
    compiled_alive = [brick_name for brick_name, brick in bricks.items()
                      if brick.module_format == 1 and (brick.alive_all or INFERENCE in brick.alive_stages)]
    assert fused.stage == INFERENCE and list(fused.bricks) == compiled_alive
    assert compiled_alive
    for kept in KEEP_TORCHSCRIPT.get((release, name), {}):
        assert kept not in fused.bricks
    assert (fused.compiled.min_batch, fused.compiled.max_batch) == (1, MAX_BATCH)
    assert (fused_suite.repository / model_name(release, name) / "1" / fused.module_file).is_file()
    graph = fused_suite.client.model_graph(model_name(release, name))
    assert {brick.name for brick in graph.bricks if brick.fused_program == FUSED} == set(compiled_alive)
    assert "fused: INFERENCE program" in graph.mermaid


@pytest.mark.parametrize("release,name", FUSED_CASES)
def test_fused_export_then_verify(fused_suite, release, name):
    """`torchbricks verify` loads the package (fused program included) and compares with Python."""
    assert_verifies(fused_suite, release, name)


@pytest.mark.parametrize("release,name", FUSED_CASES)
def test_fused_served_outputs_equal_library_forward_at_batch_1_3_and_max(fused_suite, release, name):
    outcome = _case(fused_suite, release, name)
    model = model_name(release, name)
    for rows, (inputs, expected_per_stage) in outcome.at_rows.items():
        for stage, expected in expected_per_stage.items():
            before, _ = fused_executions(fused_suite, model)
            result = fused_suite.client.infer(model, {k: v.numpy() for k, v in inputs.items()},
                                              outputs=sorted(expected), stage=stage)
            assert_outputs_equal(result, expected, rows, stage)
            after, _ = fused_executions(fused_suite, model)
            # The fused program ran for INFERENCE (in place of its bricks), not for EXPORT.
            assert after - before == (1 if stage == "INFERENCE" else 0), (rows, stage)
    # The per-brick metrics count the program under its one name, as BrickStatistics does.
    scrape = Scrape.fetch(fused_suite.server.metrics_address)
    assert scrape.total("torchbricks_brick_executions_total", model=model, brick=FUSED) == after > 0
    assert scrape.total("torchbricks_brick_compute_seconds_total", model=model, brick=FUSED) > 0


@pytest.mark.parametrize("release,name", FUSED_CASES)
def test_a_subset_request_runs_only_the_bricks_it_needs(fused_suite, release, name, parse_bricks):
    """Asking for the first fused brick's output only: the per-brick plan runs that brick (and
    what feeds it), not the fused program (docs/PERFORMANCE.md, "Fused stages"), unless the
    output needs every fused brick (a program of one brick)."""
    outcome = _case(fused_suite, release, name)
    message, fused = fused_stage_of(fused_suite, release, name, parse_bricks)
    first = fused.bricks[0]
    output = flat_bricks(message)[first].output_names[0]
    runs_program = len(fused.bricks) == 1
    model = model_name(release, name)
    inputs, expected = outcome.at_rows[3]
    before_fused, before = fused_executions(fused_suite, model)
    result = fused_suite.client.infer(model, {k: v.numpy() for k, v in inputs.items()}, outputs=[output])
    assert list(result.outputs) == [output]
    np.testing.assert_allclose(result.outputs[output], expected["INFERENCE"][output].numpy(), rtol=RTOL, atol=ATOL)
    after_fused, after = fused_executions(fused_suite, model)
    assert after_fused == before_fused + runs_program
    assert after[first] == before[first] + (not runs_program)


def test_a_batch_above_the_fused_range_is_invalid_argument(fused_suite):
    release, name = "0.4.2", "readme_dummy"
    outcome = _case(fused_suite, release, name)
    input_name, value = next(iter(outcome.case.inputs.items()))
    with pytest.raises(grpc.RpcError) as error:
        fused_suite.client.infer(model_name(release, name),
                                 {input_name: readme_examples.resized(value, MAX_BATCH + 1).numpy()})
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(MAX_BATCH) in error.value.details()
    assert fused_suite.client.server_ready()


def test_a_corrupt_fused_program_fails_its_load_with_failed_precondition(fused_suite, tmp_path, parse_bricks):
    release, name = "0.4.2", "readme_dummy"
    outcome = _case(fused_suite, release, name)
    _, fused = fused_stage_of(fused_suite, release, name, parse_bricks)
    repository = tmp_path / "repository"
    for model in ("good", "corrupt"):
        shutil.copytree(fused_suite.repository / model_name(release, name), repository / model)
    package = repository / "corrupt" / "1" / fused.module_file
    package.write_bytes(package.read_bytes()[: package.stat().st_size // 2])
    input_name, value = next(iter(outcome.case.inputs.items()))
    with ServerProcess(repository, "--model-control-mode", "explicit", "--load-model", "good") as server:
        with server.client(timeout=60) as client:
            with pytest.raises(grpc.RpcError) as error:
                client.load_model("corrupt")
            assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION, error.value.details()
            assert f"fused program '{FUSED}'" in error.value.details()
            assert client.infer("good", {input_name: value.numpy()}).outputs
