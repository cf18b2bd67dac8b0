"""Every RPC of the running server, through the real grpcio client: health, metadata, inference
(raw and typed, checked against the exporter's reference outputs), streaming, statistics, the
repository RPCs (none and explicit control modes), BrickService and output pruning."""
from pathlib import Path

import grpc
import numpy as np
import pytest

from server_process import ServerProcess
from torchbricks_export import load_reference
from torchbricks_serve import build_infer_request

VALID = ["readme_dummy", "readme_loss", "nested_heads", "all_input", "stage_preprocessor", "resnet18_classifier",
         "dict_output"]
# invalid fixture model -> the brick its load error names
INVALID = {"invalid_cycle": "ping", "invalid_duplicate_producer": "second_writer",
           "invalid_climb_above_root": "outer/climber", "invalid_missing_input": "orphan_consumer",
           "invalid_missing_module": "ghost", "invalid_corrupt_module": "garbled", "invalid_tuple_arity": "two_headed"}
RTOL, ATOL = 1e-4, 1e-5


def images(batch=1, seed=0, shape=(3, 100, 200)):
    return np.random.default_rng(seed).random((batch, *shape), dtype=np.float32)


def reference(repository: Path, model: str, stage: str = "INFERENCE"):
    """(inputs, outputs) of the exporter's reference file, as numpy arrays."""
    _, inputs, outputs = load_reference(repository / model / "1" / "reference" / f"{stage}.pt")
    return ({k: v.numpy() for k, v in inputs.items()}, {k: v.numpy() for k, v in outputs.items()})


def assert_matches(got, expected):
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype, name
        assert got[name].shape == value.shape, name
        np.testing.assert_allclose(got[name], value, rtol=RTOL, atol=ATOL, err_msg=name)


def test_server_live_and_ready(client):
    assert client.server_live()
    assert client.server_ready()


def test_model_ready(client):
    assert client.model_ready("readme_dummy")
    assert client.model_ready("readme_dummy", version="1")
    assert not client.model_ready("invalid_corrupt_module")
    # As Triton's ModelReady: an unknown model or version is not ready, not an error
    # (tritonclient's is_model_ready returns False; test_tritonclient.py).
    assert not client.model_ready("no_such_model")
    assert not client.model_ready("readme_dummy", version="99")


def test_server_metadata(client):
    metadata = client.server_metadata()
    assert metadata.name == "torchbricks-serve"
    assert metadata.version
    assert {"model_repository", "statistics"} <= set(metadata.extensions)


def test_model_metadata_inference(client):
    metadata = client.model_metadata("readme_dummy")
    assert metadata.name == "readme_dummy"
    assert list(metadata.versions) == ["1"]
    assert metadata.platform
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("raw_images", "FP32", [-1, 3, 100, 200])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [("logits", "FP32", [-1, 3]),
                                                                              ("softmaxed", "FP32", [-1, 3])]


def test_model_metadata_train_stage_shows_targets(client):
    inference = client.model_metadata("readme_loss", stage="INFERENCE")
    assert [t.name for t in inference.inputs] == ["raw_images"]
    train = client.model_metadata("readme_loss", stage="TRAIN")
    inputs = {t.name: (t.datatype, list(t.shape)) for t in train.inputs}
    # One class label per batch item: [-1, 1], as Triton shows an input of dims [1] reshaped to [].
    assert inputs == {"raw_images": ("FP32", [-1, 3, 100, 200]), "targets": ("INT64", [-1, 1])}
    assert "loss_ce" in [t.name for t in train.outputs]
    with pytest.raises(grpc.RpcError) as error:
        client.model_metadata("readme_loss", stage="BOGUS")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "BOGUS" in error.value.details()


@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
@pytest.mark.parametrize("model", VALID)
def test_model_infer_matches_reference(client, fixture_repository, model, typed):
    inputs, expected = reference(fixture_repository, model)
    # Every tensor the alive bricks produce; a Dict output comes back flattened as name/key.
    produced = [name for brick in client.model_graph(model).bricks for name in brick.output_names]
    result = client.infer(model, inputs, outputs=produced, request_id=f"{model}-{typed}", typed=typed)
    assert result.model_name == model
    assert result.model_version == "1"
    assert result.id == f"{model}-{typed}"
    assert_matches(result.outputs, expected)


def test_model_infer_default_outputs_are_terminal(client, fixture_repository):
    inputs, expected = reference(fixture_repository, "readme_dummy")
    result = client.infer("readme_dummy", inputs)
    assert_matches(result.outputs, {name: expected[name] for name in ("logits", "softmaxed")})


def test_export_stage_parameter(client, fixture_repository):
    inputs, expected = reference(fixture_repository, "stage_preprocessor", "EXPORT")
    result = client.infer("stage_preprocessor", inputs, stage="EXPORT")
    assert result.outputs["processed"].shape == (2, 3, 50, 100)
    assert_matches(result.outputs, expected)
    inference = client.infer("stage_preprocessor", inputs, stage="INFERENCE")
    assert inference.outputs["processed"].shape == (2, 3, 100, 200)
    np.testing.assert_array_equal(inference.outputs["processed"], inputs["raw"] / 2)


def test_model_stream_infer_error_travels_in_stream(client):
    first, second = images(1, seed=1), images(2, seed=2)
    requests = [
        build_infer_request("readme_dummy", {"raw_images": first}, outputs=["processed"], request_id="a"),
        build_infer_request("readme_dummy", {"wrong_name": first}, request_id="b"),
        build_infer_request("readme_dummy", {"raw_images": second}, outputs=["processed"], request_id="c"),
        build_infer_request("no_such_model", {"raw_images": first}, request_id="d"),
        build_infer_request("readme_dummy", {"raw_images": second}, outputs=["logits"], request_id="e"),
    ]
    answers = list(client.stream_infer(requests))
    assert [a.id for a in answers] == ["a", "b", "c", "d", "e"]
    assert [bool(a.error_message) for a in answers] == [False, True, False, True, False]
    assert "wrong_name" in answers[1].error_message
    assert "no_such_model" in answers[3].error_message
    np.testing.assert_array_equal(answers[0].outputs["processed"], first / 2)
    np.testing.assert_array_equal(answers[2].outputs["processed"], second / 2)
    assert answers[4].outputs["logits"].shape == (2, 3)
    assert answers[4].model_version == "1"


def _stats(client, model):
    (stats,) = client.model_statistics(model).model_stats
    return stats


def test_model_statistics_count_exactly(client):
    before = _stats(client, "readme_dummy")
    batches = [1, 2, 3]
    for seed, batch in enumerate(batches):
        client.infer("readme_dummy", {"raw_images": images(batch, seed)}, outputs=["logits"])
    with pytest.raises(grpc.RpcError):
        client.infer("readme_dummy", {"raw_images": images(1)[:, :2]})
    after = _stats(client, "readme_dummy")
    assert (after.name, after.version) == ("readme_dummy", "1")
    assert after.inference_stats.success.count - before.inference_stats.success.count == len(batches)
    assert after.inference_stats.fail.count - before.inference_stats.fail.count == 1
    assert after.inference_count - before.inference_count == sum(batches)
    assert after.execution_count - before.execution_count == len(batches)
    assert after.inference_stats.compute_infer.count - before.inference_stats.compute_infer.count == len(batches)
    assert after.inference_stats.success.ns > before.inference_stats.success.ns
    assert after.last_inference >= before.last_inference > 0
    everything = {(s.name, s.version) for s in client.model_statistics().model_stats}
    assert {(name, "1") for name in VALID} <= everything
    assert not any(name in INVALID for name, _ in everything)
    with pytest.raises(grpc.RpcError) as error:
        client.model_statistics("no_such_model")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_repository_index(client):
    index = {m.name: m for m in client.repository_index().models}
    for name in VALID:
        assert (index[name].version, index[name].state, index[name].reason) == ("1", "READY", ""), name
    for name, culprit in INVALID.items():
        assert index[name].state == "UNAVAILABLE", name
        assert culprit in index[name].reason, (name, index[name].reason)
    ready = {m.name for m in client.repository_index(ready=True).models}
    assert set(VALID) <= ready
    assert not ready & set(INVALID)


def test_repository_load_refused_outside_explicit_mode(client):
    for call in (client.load_model, client.unload_model):
        with pytest.raises(grpc.RpcError) as error:
            call("readme_dummy")
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "explicit" in error.value.details()
    assert client.model_ready("readme_dummy")


def test_repository_load_and_unload_in_explicit_mode(fixture_repository):
    flags = ("--model-control-mode", "explicit", "--load-model", "readme_dummy")
    with ServerProcess(fixture_repository, *flags) as server, server.client() as client:
        assert client.model_ready("readme_dummy")
        assert not client.model_ready("dict_output")
        index = {m.name: m for m in client.repository_index().models}
        assert index["dict_output"].state == "UNAVAILABLE"
        assert [m.name for m in client.repository_index(ready=True).models] == ["readme_dummy"]

        client.load_model("dict_output")
        assert client.model_ready("dict_output")
        ramps = np.tile(np.arange(16, dtype=np.float32), (1, 3, 8, 1))
        np.testing.assert_array_equal(client.infer("dict_output", {"images": ramps}).outputs["difference"],
                                      np.full((1, 3, 8, 8), -8, dtype=np.float32))

        client.unload_model("readme_dummy")
        assert not client.model_ready("readme_dummy")
        with pytest.raises(grpc.RpcError) as error:
            client.infer("readme_dummy", {"raw_images": images()})
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "readme_dummy" in error.value.details()

        with pytest.raises(grpc.RpcError) as error:
            client.load_model("no_such_model")
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert "no_such_model" in error.value.details()
        with pytest.raises(grpc.RpcError) as error:
            client.load_model("invalid_corrupt_module")
        assert "garbled" in error.value.details()
        assert not client.model_ready("invalid_corrupt_module")

        client.load_model("readme_dummy")
        assert client.model_ready("readme_dummy")
        assert client.infer("readme_dummy", {"raw_images": images()}).outputs["logits"].shape == (1, 3)
        client.close()  # an open idle connection holds up the server's exit for its 5 s gRPC grace
        assert server.stop() == 0


def test_model_graph(client):
    graph = client.model_graph("readme_dummy")
    assert (graph.model_name, graph.model_version, graph.stage) == ("readme_dummy", "1", "INFERENCE")
    assert [b.name for b in graph.bricks] == ["preprocessor", "backbone", "head"]
    assert [(b.kind, b.module_type, b.brick_type) for b in graph.bricks][0] == (
        "NOT_TRAINABLE", "PreprocessorDummy", "BrickNotTrainable")
    assert list(graph.bricks[2].output_names) == ["logits", "softmaxed"]
    assert [(e.producer, e.consumer, e.tensor) for e in graph.edges] == [
        ("preprocessor", "backbone", "processed"), ("backbone", "head", "embedding")]
    assert [(t.name, t.datatype, list(t.shape)) for t in graph.inputs] == [("raw_images", "FP32", [-1, 3, 100, 200])]
    assert list(graph.outputs) == ["logits", "softmaxed"]
    assert graph.mermaid.startswith("flowchart LR")


def test_model_graph_per_stage_and_errors(client):
    train = client.model_graph("readme_loss", stage="TRAIN")
    assert [b.name for b in train.bricks] == ["preprocessor", "backbone", "head", "loss"]
    assert ("head", "loss", "logits") in [(e.producer, e.consumer, e.tensor) for e in train.edges]
    assert [t.name for t in train.inputs] == ["raw_images", "targets"]
    assert "loss_ce" in train.outputs
    nested = client.model_graph("nested_heads")
    assert "head0/classify" in [b.name for b in nested.bricks]
    assert "head0/accuracy" not in [b.name for b in nested.bricks]  # metric: not alive in INFERENCE
    for kwargs, code in [({"name": "no_such_model"}, grpc.StatusCode.NOT_FOUND),
                         ({"name": "readme_dummy", "version": "9"}, grpc.StatusCode.NOT_FOUND),
                         ({"name": "readme_dummy", "stage": "BOGUS"}, grpc.StatusCode.INVALID_ARGUMENT)]:
        with pytest.raises(grpc.RpcError) as error:
            client.model_graph(**kwargs)
        assert error.value.code() == code, kwargs


def test_health_check(client):
    assert client.health_check() == "SERVING"  # readiness
    assert client.health_check("liveness") == "SERVING"
    with pytest.raises(grpc.RpcError) as error:
        client.health_check("no-such-service")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def _brick_executions(client, model):
    (version,) = client.brick_statistics(model).versions
    return {brick.name: brick.executions for brick in version.bricks}


def test_requested_outputs_prune_the_graph(client):
    before = _brick_executions(client, "readme_dummy")
    assert list(before) == ["preprocessor", "backbone", "head"]
    result = client.infer("readme_dummy", {"raw_images": images(2, seed=5)}, outputs=["embedding"])
    assert list(result.outputs) == ["embedding"]
    assert result.outputs["embedding"].shape == (2, 10, 100, 200)
    after = _brick_executions(client, "readme_dummy")
    assert after["preprocessor"] == before["preprocessor"] + 1
    assert after["backbone"] == before["backbone"] + 1
    assert after["head"] == before["head"]
    client.infer("readme_dummy", {"raw_images": images(1, seed=6)}, outputs=["logits"])
    assert _brick_executions(client, "readme_dummy")["head"] == before["head"] + 1
    with pytest.raises(grpc.RpcError) as error:
        client.brick_statistics("no_such_model")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_large_messages_pass_the_default_grpc_limit(client):
    batch = images(24, seed=8)  # about 5.8 MB each way, over gRPC's default 4 MiB limit
    result = client.infer("readme_dummy", {"raw_images": batch}, outputs=["processed"])
    np.testing.assert_array_equal(result.outputs["processed"], batch / 2)


@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
def test_empty_batch(client, typed):
    result = client.infer("readme_dummy", {"raw_images": images(0)}, typed=typed)
    assert {name: value.shape for name, value in result.outputs.items()} == {"logits": (0, 3), "softmaxed": (0, 3)}
