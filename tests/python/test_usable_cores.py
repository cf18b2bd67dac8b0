"""The server sizes its defaults and bounds by the CPUs it may use (its affinity mask and its
cgroup's CPU quota), not by the host's: run under `taskset` on one CPU, a model asking for more
instances than one core allows is refused, while the same repository loads on the whole
machine. Real server processes on loopback; the cgroup quota itself is covered by
base/usable_cores_test (this machine's tests cannot set one)."""
import os

import pytest
import torch

import readme_models
from server_process import ServerProcess
from torchbricks_export import export_brick_collection

INSTANCES_PER_CORE = 4  # server/scheduling/scheduling_plan.cc
CROWDED = "crowded"


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("cores")
    export_brick_collection(readme_models.readme_dummy(), root / CROWDED / "1",
                            example_inputs={"raw_images": torch.rand(2, 3, 8, 8)})
    (root / CROWDED / "config.pbtxt").write_text(
        f"instance_group {{ kind: KIND_CPU count: {INSTANCES_PER_CORE + 1} intra_op_threads: 1 }}\n",
        encoding="utf-8")
    return root


def _serve(repository, prefix=()):
    server = ServerProcess(repository, "--self-configuration-seconds", "0", command_prefix=prefix)
    server.__enter__()
    try:
        with server.client() as client:
            ready = client.model_ready(CROWDED)
            (entry,) = [m for m in client.repository_index().models if m.name == CROWDED]
        return ready, entry.reason, server.log()
    finally:
        assert server.stop() == 0


def test_one_cpu_of_affinity_bounds_the_instances(repository):
    first_cpu = min(os.sched_getaffinity(0))
    ready, reason, log = _serve(repository, ["taskset", "-c", str(first_cpu)])
    assert "cores: 1 (affinity 1 CPUs" in log, log[-2000:]
    assert not ready
    assert f"more than {INSTANCES_PER_CORE} instances" in reason, reason


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to contrast with one")
def test_the_whole_machine_takes_the_same_instances(repository):
    ready, reason, log = _serve(repository)
    # A cgroup quota (CI in a container with --cpus) may lower the cores; the mask is the mask.
    assert f"(affinity {len(os.sched_getaffinity(0))} CPUs" in log, log[-2000:]
    assert ready, reason
