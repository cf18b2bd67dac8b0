"""Issue 21, item 3, on a machine without a usable GPU (this one, and CI's): where the server puts
model instances and how it says so. A model whose config asks for KIND_GPU is UNAVAILABLE with
the reason, and the server keeps serving the others; a model without instance_group goes to the
CPU and the load log line says why; mixed CPU groups and ModelConfig, BrickStatistics and the
metrics name the device. Real server processes on loopback, the real torch 2.11 wheel.

Where a GPU is usable (the GPU check, scripts/gpu_check.sh) the same repository would load
`on_gpu`; these tests skip then, saying so, since what they assert is the no-GPU behaviour."""
import grpc
import numpy as np
import pytest
import torch
from torch import Tensor, nn

import metrics_scrape
from readme_models import brick
from server_process import ServerProcess
from torchbricks_export import export_brick_collection

pytestmark = pytest.mark.skipif(torch.cuda.is_available(),
                                reason="a GPU is usable here: these tests assert the no-GPU placement")

NO_DEVICE_REASON = "instance_group asks for KIND_GPU, but libtorch sees no CUDA device"
CONFIGS = {
    "on_gpu": "instance_group { kind: KIND_GPU count: 1 gpus: [ 0 ] }\n",
    "mixed": "instance_group { kind: KIND_CPU count: 2 intra_op_threads: 1 }\n",
    "automatic": None,  # no config.pbtxt: Triton's rule, a usable GPU else the CPU
}


class Double(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 2


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("devices")
    for name, config in CONFIGS.items():
        export_brick_collection({"double": brick(Double(), ["x"], ["y"], kind="NOT_TRAINABLE")}, root / name / "1",
                                example_inputs={"x": torch.ones(1, 3)})
        if config is not None:
            (root / name / "config.pbtxt").write_text(config)
    return root


@pytest.fixture(scope="module")
def server(repository):
    with ServerProcess(repository, "--allow-metrics", "true") as running:
        yield running


def test_kind_gpu_without_a_gpu_is_unavailable_with_the_reason(server):
    with server.client() as client:
        entries = {entry.name: entry for entry in client.repository_index().models}
        assert entries["on_gpu"].state == "UNAVAILABLE"
        assert NO_DEVICE_REASON in entries["on_gpu"].reason, entries["on_gpu"].reason
        assert not client.model_ready("on_gpu")
        with pytest.raises(grpc.RpcError) as refused:
            client.infer("on_gpu", {"x": np.ones((1, 3), np.float32)})
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # The others keep serving.
        for name in ("automatic", "mixed"):
            assert entries[name].state == "READY"
            result = client.infer(name, {"x": np.full((2, 3), 1.5, np.float32)})
            np.testing.assert_array_equal(result.outputs["y"], np.full((2, 3), 3.0, np.float32))
    assert f"failed to load model 'on_gpu' version 1: {NO_DEVICE_REASON}" in server.log()


def test_placement_is_logged_with_the_reason_for_a_model_without_instance_group(server):
    log = server.log()
    assert "CUDA: none usable: libtorch sees no CUDA device" in log
    assert ("loaded model 'automatic' version 1 in" in log
            and "s: 1 instance on cpu (no instance_group: on the CPU, as libtorch sees no CUDA device" in log), log
    assert "s: 2 instances on cpu" in log


def test_model_config_brick_statistics_and_metrics_name_the_device(server):
    with server.client() as client:
        for name, instances in (("automatic", 1), ("mixed", 2)):
            groups = client.model_config(name).instance_group
            assert [(g.kind, g.count, list(g.gpus)) for g in groups] == [(type(groups[0]).KIND_CPU, instances, [])]
            client.infer(name, {"x": np.ones((1, 3), np.float32)})
            assert list(client.brick_statistics(name).versions[0].devices) == ["cpu"]
    scrape = metrics_scrape.parse(metrics_scrape.fetch_text(server.metrics_address)[0])
    instances = {key: value for key, value in scrape.items() if key[0] == "torchbricks_model_instances"}
    by_model = {dict(key[1])["model"]: (dict(key[1])["device"], value) for key, value in instances.items()}
    assert by_model == {"automatic": ("cpu", 1), "mixed": ("cpu", 2)}, instances
