"""Dynamic batching seen from clients: concurrent requests are run together (fewer executions
than requests) and each caller gets its own rows back; a request that makes a brick fail gets
INTERNAL naming the brick while its batch-mates still get their correct answers."""

import grpc
import numpy as np
import pytest
import torch
from torch import Tensor, nn

import readme_models
from readme_models import brick
from concurrent_calls import infer_together
from server_process import ServerProcess
from torchbricks_export import export_brick_collection, run_reference

MODEL = "picky"
DUMMY = "small_dummy"  # readme_dummy on 8x8 images
DELAY_S = 0.3
CONFIG = f"max_batch_size: 16\ndynamic_batching {{ max_queue_delay_microseconds: {int(DELAY_S * 1e6)} }}\n"
CALLERS = 6
# The same gate, served with the adaptive queue delay (the default) and without it.
ADAPTIVE = "adaptive"
PATIENT = "patient"
FRUITLESS_WAITS_TO_SKIP = 4  # server/scheduling/dynamic_batcher.h
PROBE_INTERVAL = 256  # the same


class RejectNegative(nn.Module):
    """Doubles its input, and fails (a libtorch error inside the brick) on any negative value."""

    def forward(self, x: Tensor) -> Tensor:
        if bool((x < 0).any()):
            raise RuntimeError("negative input")
        return x * 2


@pytest.fixture(scope="module")
def batching_server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("batching")
    collection = {"gate": brick(RejectNegative(), input_names=["x"], output_names=["y"], kind="NOT_TRAINABLE")}
    export_brick_collection(collection, repository / MODEL / "1", example_inputs={"x": torch.ones(2, 4)})
    (repository / MODEL / "config.pbtxt").write_text(CONFIG, encoding="utf-8")
    for name, extra in ((ADAPTIVE, ""), (PATIENT, 'parameters { key: "adaptive_queue_delay" value: "false" }\n')):
        export_brick_collection(collection, repository / name / "1", example_inputs={"x": torch.ones(2, 4)})
        (repository / name / "config.pbtxt").write_text(CONFIG + extra, encoding="utf-8")
    export_brick_collection(readme_models.readme_dummy(), repository / DUMMY / "1",
                            example_inputs={"raw_images": torch.rand(2, 3, 8, 8)})
    (repository / DUMMY / "config.pbtxt").write_text(CONFIG, encoding="utf-8")
    with ServerProcess(repository) as server:
        yield server
        assert server.stop() == 0


def _call_together(server, inputs, model=MODEL, input_name="x", outputs=None):
    """Sends every input at the same moment from its own thread; returns results or RpcErrors."""
    return infer_together(server, model, [{input_name: x} for x in inputs], outputs)


def _executions(client, model=MODEL):
    (stats,) = client.model_statistics(model).model_stats
    return stats.execution_count, stats.inference_count


def _lone_queue_seconds(client, model, count):
    """Sends `count` one-row requests one after another; returns each one's time in the queue
    (the server's cumulative queue time, read after each)."""
    waited = []
    for i in range(count):
        (before,) = client.model_statistics(model).model_stats
        x = np.full((1, 4), i, dtype=np.float32)
        np.testing.assert_array_equal(client.infer(model, {"x": x}).outputs["y"], x * 2)
        (after,) = client.model_statistics(model).model_stats
        waited.append((after.inference_stats.queue.ns - before.inference_stats.queue.ns) / 1e9)
    return waited


def test_concurrent_requests_share_executions(batching_server):
    inputs = [np.full((1 + i % 2, 4), i, dtype=np.float32) for i in range(CALLERS)]
    with batching_server.client() as client:
        executions, rows = _executions(client)
        results = _call_together(batching_server, inputs)
        after_executions, after_rows = _executions(client)
    for x, result in zip(inputs, results):
        assert not isinstance(result, grpc.RpcError), result
        np.testing.assert_array_equal(result.outputs["y"], x * 2)
    assert after_rows - rows == sum(len(x) for x in inputs)
    assert 1 <= after_executions - executions < CALLERS  # at least two requests ran together


def test_a_failing_request_does_not_fail_its_batch_mates(batching_server):
    inputs = [np.full((1, 4), i + 1, dtype=np.float32) for i in range(CALLERS)]
    inputs[2] = -inputs[2]
    with batching_server.client() as client:
        executions, _ = _executions(client)
        results = _call_together(batching_server, inputs)
        assert _executions(client)[0] - executions < CALLERS  # the bad request had batch-mates
    for index, (x, result) in enumerate(zip(inputs, results)):
        if index == 2:
            assert isinstance(result, grpc.RpcError), result
            assert result.code() == grpc.StatusCode.INTERNAL, result.details()
            assert "'gate'" in result.details() and MODEL in result.details()
        else:
            assert not isinstance(result, grpc.RpcError), (index, result.details())
            np.testing.assert_array_equal(result.outputs["y"], x * 2)
    with batching_server.client() as client:
        np.testing.assert_array_equal(client.infer(MODEL, {"x": inputs[0]}).outputs["y"], inputs[0] * 2)


def test_batch_mates_get_the_outputs_each_asked_for(batching_server):
    asked = [["processed"], ["logits"], None, ["embedding", "softmaxed"], ["logits", "processed"], None]
    inputs = [np.random.default_rng(i).random((1 + i % 3, 3, 8, 8), dtype=np.float32) for i in range(len(asked))]
    collection = readme_models.readme_dummy()
    results = _call_together(batching_server, inputs, DUMMY, "raw_images", asked)
    for x, names, result in zip(inputs, asked, results):
        assert not isinstance(result, grpc.RpcError), result
        expected = run_reference(collection, "INFERENCE", {"raw_images": torch.from_numpy(x)})
        assert sorted(result.outputs) == sorted(names or ["logits", "softmaxed"])
        for name, value in result.outputs.items():
            np.testing.assert_allclose(value, expected[name].numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_lone_requests_stop_waiting_and_requests_together_batch_again(batching_server):
    skipped = 3
    with batching_server.client() as client:
        waited = _lone_queue_seconds(client, ADAPTIVE, FRUITLESS_WAITS_TO_SKIP + skipped)
        # Each of the first waits out the whole delay alone; after them nobody waits for mates.
        assert all(w >= DELAY_S for w in waited[:FRUITLESS_WAITS_TO_SKIP]), waited
        assert all(w < DELAY_S for w in waited[FRUITLESS_WAITS_TO_SKIP:]), waited
        # Lone requests up to the probe, which waits out the delay: callers that come while it
        # waits join its batch.
        x = np.ones((1, 4), dtype=np.float32)
        for _ in range(PROBE_INTERVAL - skipped - 1):
            client.infer(ADAPTIVE, {"x": x})
        executions, _ = _executions(client, ADAPTIVE)
        results = _call_together(batching_server, [np.full((1, 4), i, dtype=np.float32) for i in range(CALLERS)],
                                 model=ADAPTIVE)
        for i, result in enumerate(results):
            assert not isinstance(result, grpc.RpcError), result
            np.testing.assert_array_equal(result.outputs["y"], np.full((1, 4), 2 * i, dtype=np.float32))
        assert _executions(client, ADAPTIVE)[0] - executions == 1  # all of them in the probe's batch
        # Requests came together, so the batcher waits for mates again.
        assert _lone_queue_seconds(client, ADAPTIVE, 1)[0] >= DELAY_S


def test_without_the_adaptive_delay_every_lone_request_waits(batching_server):
    with batching_server.client() as client:
        waited = _lone_queue_seconds(client, PATIENT, FRUITLESS_WAITS_TO_SKIP + 2)
        assert all(w >= DELAY_S for w in waited), waited
        assert client.model_config(PATIENT).parameters["adaptive_queue_delay"].string_value == "false"
