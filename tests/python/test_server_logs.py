"""Logs: one line per model load and per refused request (with a request id, without
payloads), in plain text or, with --log-format json, one JSON object per line."""
import json
import warnings

import grpc
import numpy as np
import pytest
import torch

from server_process import ServerProcess
from torchbricks_export import export_brick_collection


def _refuse_two(server):
    with server.client() as client:
        with pytest.raises(grpc.RpcError):
            client.infer("readme_dummy", {"raw_images": np.zeros((1, 3, 10, 20), np.float32)}, request_id="mine-42")
        with pytest.raises(grpc.RpcError):
            client.infer("no_such_model", {"x": np.zeros(1, np.float32)})


def test_json_logs_carry_request_ids_and_no_payloads(fixture_repository):
    with ServerProcess(fixture_repository, "--log-format", "json") as server:
        _refuse_two(server)
        code = server.stop()
    assert code == 0
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert records and all({"time", "level", "message"} <= set(r) for r in records)
    loads = [r for r in records if r["message"].startswith("loaded model 'readme_dummy'")]
    assert len(loads) == 1
    failures = [r for r in records if r["message"].startswith("failed to load model 'invalid_cycle'")]
    assert failures and failures[0]["level"] == "error"
    refused = [r for r in records if r["message"] == "request refused"]
    assert [r["request_id"] for r in refused][:1] == ["mine-42"]
    assert refused[0]["code"] == "INVALID_ARGUMENT" and "raw_images" in refused[0]["error"]
    assert refused[1]["code"] == "NOT_FOUND" and refused[1]["request_id"].startswith("auto-")
    assert all(len(json.dumps(r)) < 1000 for r in refused), "a log line carries a payload"


def test_text_logs_have_key_value_fields(fixture_repository):
    with ServerProcess(fixture_repository) as server:
        _refuse_two(server)
        assert server.stop() == 0
    lines = [line for line in server.log().splitlines() if "request refused" in line]
    assert len(lines) == 2
    assert "request_id=mine-42" in lines[0] and "code=INVALID_ARGUMENT" in lines[0]
    assert "code=NOT_FOUND" in lines[1]


def test_json_logs_hold_grpc_library_lines_too(fixture_repository, monkeypatch):
    """gRPC's own lines (made plentiful with GRPC_VERBOSITY=debug) go through the server's
    logger: with --log-format json every stderr line is a JSON object."""
    monkeypatch.setenv("GRPC_VERBOSITY", "debug")
    with ServerProcess(fixture_repository, "--log-format", "json", "--log-level", "verbose") as server:
        _refuse_two(server)
        assert server.stop() == 0
    lines = [line for line in server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # fails on any non-JSON line
    assert any(r.get("source") == "grpc" for r in records)


class WarnsInScript(torch.nn.Module):
    """Calls warnings.warn in TorchScript, which libtorch turns into TORCH_WARN when it runs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        warnings.warn("torchbricks-test: a scripted module warns")
        return x * 2


def test_json_logs_hold_libtorch_warnings_too(tmp_path):
    """libtorch's warnings (here a TorchScript warnings.warn, raised in the warm-up at load and
    in the first requests on the instance threads) go through the server's logger too."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's eager reference run warns in Python
        export_brick_collection({"warner": {"module": WarnsInScript(), "input_names": ["x"],
                                            "output_names": ["y"]}},
                                tmp_path / "warner" / "1", example_inputs={"x": torch.ones(2, 3)})
    with ServerProcess(tmp_path, "--log-format", "json") as server:
        with server.client() as client:
            for _ in range(3):
                client.infer("warner", {"x": np.ones((1, 3), np.float32)})
        assert server.stop() == 0
    lines = [line for line in server.log().splitlines() if line.strip()]
    assert any("torchbricks-test: a scripted module warns" in line for line in lines), lines
    records = [json.loads(line) for line in lines]  # fails on any non-JSON line
    warned = [r for r in records if "torchbricks-test: a scripted module warns" in r["message"]]
    assert warned and all(r["source"] == "libtorch" and r["level"] == "warning" for r in warned)
