"""Issue 20, items 1 and 2, against a real server: a request's rows are its own. Every batched
input of a request must have the same rows (dimension 0), or one client's rows would be answered
to another inside a shared batch; every batched input counts against max_batch_size; and an input
the requested stage does not read is refused instead of deciding the request's rows."""

import grpc
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from readme_models import brick
from concurrent_calls import infer_together
from server_process import ServerProcess
from torchbricks_export import export_brick_collection

MODEL = "two_inputs"
MAX_BATCH = 8
# A long queue delay, so that requests sent together are batched together.
CONFIG = f"max_batch_size: {MAX_BATCH}\ndynamic_batching {{ max_queue_delay_microseconds: 400000 }}\n"


class Combine(nn.Module):
    """ids * 10 + mask, row by row: each output row shows which input rows made it."""

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        return ids * 10 + mask


class ExportOnly(nn.Module):
    def forward(self, extra: Tensor) -> Tensor:
        return extra + 1


@pytest.fixture(scope="module")
def isolation_server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("isolation")
    collection = {
        "combine": brick(Combine(), ["ids", "mask"], ["combined"], kind="NOT_TRAINABLE"),
        # Declares input `extra`, read only in EXPORT.
        "export_only": brick(ExportOnly(), ["extra"], ["extra_out"], kind="NOT_TRAINABLE",
                             alive_stages=["EXPORT"]),
    }
    examples = {"INFERENCE": {"ids": torch.ones(2, 4), "mask": torch.zeros(2, 4)},
                "EXPORT": {"ids": torch.ones(2, 4), "mask": torch.zeros(2, 4), "extra": torch.ones(2, 4)}}
    export_brick_collection(collection, repository / MODEL / "1", example_inputs=examples)
    (repository / MODEL / "config.pbtxt").write_text(CONFIG, encoding="utf-8")
    with ServerProcess(repository) as server:
        yield server
        assert server.stop() == 0


def _rows(n: int, value: float) -> np.ndarray:
    return np.full((n, 4), value, dtype=np.float32)


def _together(server, requests):
    """Sends each {input: array} at the same moment from its own connection; results or RpcErrors."""
    return infer_together(server, MODEL, requests, outputs=[["combined"]] * len(requests))


def test_complementary_rows_cannot_reach_a_victims_batch(isolation_server):
    """The attack of the issue: two crafted requests whose inputs disagree on their rows (0 and 2,
    then 2 and 0) around a victim's request. They are refused at the boundary; the victim, in
    whatever batch it runs, gets the answer of its own rows, every round."""
    for round_index in range(3):
        attacker_a = {"ids": _rows(0, 7), "mask": _rows(2, 7)}
        victim = {"ids": _rows(1, 1), "mask": _rows(1, 2)}
        attacker_b = {"ids": _rows(2, 9), "mask": _rows(0, 9)}
        first, answer, second = _together(isolation_server, [attacker_a, victim, attacker_b])
        for refused in (first, second):
            assert isinstance(refused, grpc.RpcError), f"round {round_index}: a crafted request was answered"
            assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "disagree on the batch dimension" in refused.details()
        assert not isinstance(answer, grpc.RpcError), answer
        np.testing.assert_array_equal(answer.outputs["combined"], _rows(1, 12))


def test_honest_concurrent_requests_each_get_their_own_rows(isolation_server):
    requests = [{"ids": _rows(1 + i % 3, i), "mask": _rows(1 + i % 3, 0.5)} for i in range(6)]
    for request, result in zip(requests, _together(isolation_server, requests)):
        assert not isinstance(result, grpc.RpcError), result
        np.testing.assert_array_equal(result.outputs["combined"], request["ids"] * 10 + 0.5)


def test_every_batched_input_counts_against_max_batch_size(isolation_server):
    with isolation_server.client() as client:
        for inputs in ({"ids": _rows(MAX_BATCH + 1, 1), "mask": _rows(MAX_BATCH + 1, 1)},
                       {"ids": _rows(1, 1), "mask": _rows(4096, 1)},
                       {"ids": _rows(4096, 1), "mask": _rows(1, 1)}):
            with pytest.raises(grpc.RpcError) as error:
                client.infer(MODEL, inputs)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
        # At the limit, it runs.
        out = client.infer(MODEL, {"ids": _rows(MAX_BATCH, 1), "mask": _rows(MAX_BATCH, 1)})
        assert out.outputs["combined"].shape == (MAX_BATCH, 4)


def test_an_input_the_stage_does_not_read_is_refused(isolation_server):
    """`extra` is read only in EXPORT: sent to INFERENCE (first, with one row, ahead of inputs
    carrying thousands) it is refused, naming the input and the stage."""
    with isolation_server.client() as client:
        with pytest.raises(grpc.RpcError) as error:
            client.infer(MODEL, {"extra": _rows(1, 1), "ids": _rows(8192, 1), "mask": _rows(8192, 1)})
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "'extra'" in error.value.details() and "INFERENCE" in error.value.details()
        # In EXPORT it is read, and accepted.
        out = client.infer(MODEL, {"extra": _rows(2, 1), "ids": _rows(2, 1), "mask": _rows(2, 1)}, stage="EXPORT")
        np.testing.assert_array_equal(out.outputs["extra_out"], _rows(2, 2))


def test_unparseable_unary_request_is_invalid_argument(isolation_server):
    """The same bytes that end a ModelStreamInfer stream with INVALID_ARGUMENT are INVALID_ARGUMENT
    on the unary call too (not INTERNAL with an empty message); the server keeps serving."""
    channel = grpc.insecure_channel(isolation_server.address)
    try:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                   request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as error:
            call(b"\x0a\xff\xff\xff\xff\x0f", timeout=10)  # field 1 claims 4 GB that are not there
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "does not parse" in error.value.details()
    finally:
        channel.close()
    with isolation_server.client() as client:
        out = client.infer(MODEL, {"ids": _rows(1, 1), "mask": _rows(1, 1)})
        np.testing.assert_array_equal(out.outputs["combined"], _rows(1, 11))


@pytest.mark.parametrize("alias", [" 1", "+1", "01", "1 ", "0x1"])
def test_version_strings_have_one_spelling(isolation_server, alias):
    with isolation_server.client() as client:
        assert client.infer(MODEL, {"ids": _rows(1, 1), "mask": _rows(1, 1)}, version="1").outputs
        with pytest.raises(grpc.RpcError) as error:
            client.infer(MODEL, {"ids": _rows(1, 1), "mask": _rows(1, 1)}, version=alias)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
