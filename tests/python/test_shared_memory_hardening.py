"""System shared memory against clients and file systems that misbehave (issue 20): a full
/dev/shm must not kill the server when it writes an output region (SIGBUS), a brick working
in place on its input must not write the client's region (nor answer differently when the
request is batched), and one output requested twice is refused. Real server processes on
loopback; every /dev/shm object a test creates is removed by it.

The full-/dev/shm test runs the server and its client (this file, run as a script) in a private
mount namespace with a 2 MiB tmpfs on /dev/shm; it is skipped where unshare or mount is not
permitted (not root, or no user namespaces)."""
import ctypes
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest

from server_process import ServerProcess
from torchbricks_serve import shared_memory as shm
from torchbricks_serve.client import build_infer_request

ENABLED = ("--allow-client-shm", "true")
MODEL = "inplace"
BATCHING_CONFIG = "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 300000 }\n"
KEY_PREFIX = f"tb-shm-hardening-{os.getpid()}-"
CALL_TIMEOUT = 20
CALLERS = 4
_SERIAL = itertools.count()


def export_inplace_model(version_dir: Path) -> None:
    """`inplace`: y = x.mul_(3), FP32 [B, 4], a brick that writes its input and returns it."""
    import torch
    from torch import Tensor, nn

    from readme_models import brick
    from torchbricks_export import export_brick_collection

    class TripleInPlace(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x.mul_(3)

    export_brick_collection({"triple": brick(TripleInPlace(), ["x"], ["y"], kind="NOT_TRAINABLE")},
                            version_dir, example_inputs={"x": torch.ones(2, 4)})
    (version_dir.parent / "config.pbtxt").write_text(BATCHING_CONFIG, encoding="utf-8")


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    out = tmp_path_factory.mktemp("shm_hardening")
    export_inplace_model(out / MODEL / "1")
    return out


@pytest.fixture(scope="module")
def server(repository):
    process = ServerProcess(repository, *ENABLED).start()
    try:
        yield process
    finally:
        code = process.stop()
        assert code == 0, f"the server exited with {code}:\n{process.log()[-3000:]}"


@pytest.fixture
def region():
    """A fresh 4 KiB shared-memory region (key /tb-shm-hardening-PID-N), destroyed afterwards."""
    handle = shm.create_shared_memory_region(f"r{next(_SERIAL)}", f"/{KEY_PREFIX}{next(_SERIAL)}", 4096)
    yield handle
    handle.destroy()
    assert not os.path.exists(handle.path)


def x_values(rows: int = 1) -> np.ndarray:
    return (np.arange(rows * 4, dtype=np.float32).reshape(rows, 4) + 1)


# --- item 6: client input memory is read-only to the model --------------------------------------
def test_a_brick_working_in_place_leaves_the_client_region_alone(server, region):
    x = x_values()
    shm.set_shared_memory_region(region, [x])
    before = region.read(x.nbytes)
    with server.client(timeout=CALL_TIMEOUT) as client:
        client.register_system_shared_memory(region.name, region.key, region.byte_size)
        try:
            for attempt in range(3):
                result = client.infer(MODEL, {"x": x}, shm_inputs={"x": (region.name, x.nbytes)})
                np.testing.assert_array_equal(result.outputs["y"], 3 * x, err_msg=f"request #{attempt + 1}")
                assert region.read(x.nbytes) == before, f"request #{attempt + 1} wrote the client's input region"
        finally:
            client.unregister_system_shared_memory(region.name)


def test_batched_and_unbatched_requests_give_the_same_answer(server, region):
    """CALLERS requests on the same region at once (batched by the 300 ms queue delay), then
    one alone: each answers 3x, and the region is unchanged."""
    x = x_values()
    shm.set_shared_memory_region(region, [x])
    before = region.read(x.nbytes)
    results = [None] * CALLERS
    barrier = threading.Barrier(CALLERS)

    def call(index):
        with server.client(timeout=CALL_TIMEOUT) as own:
            own.server_live()
            barrier.wait(timeout=30)
            try:
                results[index] = own.infer(MODEL, {"x": x}, shm_inputs={"x": (region.name, x.nbytes)}).outputs["y"]
            except grpc.RpcError as error:
                results[index] = error

    with server.client(timeout=CALL_TIMEOUT) as client:
        client.register_system_shared_memory(region.name, region.key, region.byte_size)
        try:
            (stats,) = client.model_statistics(MODEL).model_stats
            executions_before = stats.execution_count
            threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(CALLERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert not any(thread.is_alive() for thread in threads)
            (stats,) = client.model_statistics(MODEL).model_stats
            assert stats.execution_count - executions_before < CALLERS, "the requests were not batched"
            alone = client.infer(MODEL, {"x": x}, shm_inputs={"x": (region.name, x.nbytes)}).outputs["y"]
        finally:
            client.unregister_system_shared_memory(region.name)
    for index, result in enumerate(results):
        assert not isinstance(result, grpc.RpcError), f"caller {index}: {result}"
        np.testing.assert_array_equal(result, 3 * x, err_msg=f"caller {index}")
    np.testing.assert_array_equal(alone, 3 * x)
    assert region.read(x.nbytes) == before


# --- small: one output, one place ----------------------------------------------------------------
def test_an_output_requested_twice_is_invalid_argument(server, region):
    x = x_values()
    with server.client(timeout=CALL_TIMEOUT) as client:
        client.register_system_shared_memory(region.name, region.key, region.byte_size)
        try:
            twice_in_regions = build_infer_request(MODEL, {"x": x}, shm_outputs={"y": (region.name, 16)})
            again = twice_in_regions.outputs.add(name="y")
            again.parameters["shared_memory_region"].string_param = region.name
            again.parameters["shared_memory_offset"].int64_param = 2048
            again.parameters["shared_memory_byte_size"].int64_param = 16
            twice_plain = build_infer_request(MODEL, {"x": x}, outputs=["y", "y"])
            for request in (twice_in_regions, twice_plain):
                with pytest.raises(grpc.RpcError) as error:
                    client.infer_request(request)
                assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
                assert "'y'" in error.value.details(), error.value.details()
            np.testing.assert_array_equal(client.infer(MODEL, {"x": x}).outputs["y"], 3 * x)
        finally:
            client.unregister_system_shared_memory(region.name)


# --- item 5: a full /dev/shm ---------------------------------------------------------------------
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
SHM_SIZE = "2m"


def _punch_hole(path: str, byte_size: int) -> None:
    """Gives the object's pages back to its tmpfs, keeping its size (a client may)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    fd = os.open(path, os.O_RDWR)
    try:
        if libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, byte_size) != 0:
            raise OSError(ctypes.get_errno(), "fallocate(PUNCH_HOLE)")
    finally:
        os.close(fd)


def _fill(directory: str) -> str:
    """Writes a file into `directory` until its file system is full; returns its path."""
    path = os.path.join(directory, f"{KEY_PREFIX}filler")
    block = b"\xff" * 4096
    with open(path, "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(block)
        except OSError:
            pass
    return path


def _code_of(call) -> str:
    try:
        call()
        return "OK"
    except grpc.RpcError as error:
        return f"{error.code().name}: {error.details()}"


def run_full_shm_scenario(repository: str) -> dict:
    """Runs inside the private mount namespace (this file as a script): a server, a region
    whose pages are given back after registration, /dev/shm filled, then inference into it;
    then a region made with no pages registered on the full /dev/shm. Returns what happened."""
    outcome = {}
    x = x_values()
    with ServerProcess(Path(repository), *ENABLED) as server, server.client(timeout=CALL_TIMEOUT) as client:
        byte_size = 64 * 1024
        # Registered while there was room (its pages reserved), then the client punches them out.
        punched = shm.create_shared_memory_region("punched", f"/{KEY_PREFIX}punched", byte_size)
        client.register_system_shared_memory("punched", punched.key, byte_size)
        _punch_hole(punched.path, byte_size)
        filler = _fill(shm.SHM_DIRECTORY)
        outcome["write_into_punched"] = _code_of(
            lambda: client.infer(MODEL, {"x": x}, shm_outputs={"y": ("punched", 16, 8192)}))
        # As Triton's client makes an output region: shm_open + ftruncate, no pages.
        empty = shm.create_shared_memory_region("empty", f"/{KEY_PREFIX}empty", byte_size)
        outcome["register_empty"] = _code_of(
            lambda: client.register_system_shared_memory("empty", empty.key, byte_size))
        if outcome["register_empty"] == "OK":  # then the write must fail instead
            outcome["write_into_empty"] = _code_of(
                lambda: client.infer(MODEL, {"x": x}, shm_outputs={"y": ("empty", 16, 8192)}))
        outcome["alive"] = server.process.poll() is None
        outcome["plain"] = client.infer(MODEL, {"x": x}).outputs["y"].tolist() if outcome["alive"] else None
        # With room again, the same region registers and takes the output.
        os.unlink(filler)
        if outcome["alive"]:
            client.unregister_system_shared_memory("")
            client.register_system_shared_memory("empty", empty.key, byte_size)
            client.infer(MODEL, {"x": x}, shm_outputs={"y": ("empty", 16, 8192)})
            outcome["written_after"] = shm.get_contents_as_numpy(empty, "FP32", [1, 4], 8192).tolist()
            client.unregister_system_shared_memory("")
        punched.destroy()
        empty.destroy()
        outcome["exit_code"] = server.stop()
        outcome["log_tail"] = server.log()[-2000:]
    return outcome


def _private_tmpfs_permitted() -> str:
    """'' when this process may mount a tmpfs in a private mount namespace, else why not."""
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            f"mount -t tmpfs -o size={SHM_SIZE} tmpfs /dev/shm"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a private mount namespace: {probe.stderr.strip()}"
    return ""


def test_a_full_dev_shm_answers_an_error_and_the_server_keeps_serving(repository):
    why_not = _private_tmpfs_permitted()
    if why_not:
        pytest.skip(why_not)
    script = (f"mount -t tmpfs -o size={SHM_SIZE} tmpfs /dev/shm && "
              f"exec {sys.executable} {Path(__file__).resolve()} --full-shm-scenario {repository}")
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=300, env=environment, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"the scenario failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    context = json.dumps(outcome, indent=1)
    assert outcome["alive"], f"the server died (SIGBUS?):\n{context}"
    assert outcome["write_into_punched"].startswith("RESOURCE_EXHAUSTED"), context
    assert "punched" in outcome["write_into_punched"], context
    # A region whose pages do not fit is refused when registered, naming it and /dev/shm.
    assert outcome["register_empty"].startswith("RESOURCE_EXHAUSTED"), context
    assert "'empty'" in outcome["register_empty"] and "/dev/shm" in outcome["register_empty"], context
    assert outcome["plain"] == (3 * x_values()).tolist(), context
    assert outcome["written_after"] == (3 * x_values()).tolist(), context
    assert outcome["exit_code"] == 0, context


if __name__ == "__main__" and sys.argv[1:2] == ["--full-shm-scenario"]:
    print(json.dumps(run_full_shm_scenario(sys.argv[2])))
