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
CONFIG = "max_batch_size: 16\ndynamic_batching { max_queue_delay_microseconds: 300000 }\n"
CALLERS = 6


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
    export_brick_collection(readme_models.readme_dummy(), repository / DUMMY / "1",
                            example_inputs={"raw_images": torch.rand(2, 3, 8, 8)})
    (repository / DUMMY / "config.pbtxt").write_text(CONFIG, encoding="utf-8")
    with ServerProcess(repository) as server:
        yield server
        assert server.stop() == 0


def _call_together(server, inputs, model=MODEL, input_name="x", outputs=None):
    """Sends every input at the same moment from its own thread; returns results or RpcErrors."""
    return infer_together(server, model, [{input_name: x} for x in inputs], outputs)


def _executions(client):
    (stats,) = client.model_statistics(MODEL).model_stats
    return stats.execution_count, stats.inference_count


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
