"""Regression tests for the holes an adversarial run found (issue 12): hostile model names,
ports already in use, client strings echoed without bound, bad flag values, and models that
cannot be loaded reporting why. Real server processes on loopback."""
import shutil
import socket
import subprocess

import grpc
import numpy as np
import pytest

from server_process import SERVER_BINARY, ServerError, ServerProcess
from torchbricks_serve.generated import grpc_service_pb2 as pb

HOSTILE_NAMES = ["/abs/path", "../outside/evil", "readme_dummy/.", "", ".", "..", "/", "/proc", "/root",
                 "nul\0byte", "a\\b", ".hidden"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def explicit_server(fixture_repository, tmp_path_factory):
    # A valid package outside the repository, which a traversal would load.
    outside = tmp_path_factory.mktemp("outside")
    shutil.copytree(fixture_repository / "readme_dummy", outside / "evil")
    flags = ("--model-control-mode", "explicit", "--load-model", "readme_dummy")
    with ServerProcess(fixture_repository, *flags) as server:
        yield server, outside


@pytest.mark.parametrize("name", HOSTILE_NAMES + ["<outside>"])
def test_hostile_model_names_load_nothing(explicit_server, name):
    server, outside = explicit_server
    if name == "<outside>":
        name = str(outside / "evil")
    with server.client() as client:
        with pytest.raises(grpc.RpcError) as error:
            client.load_model(name)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND, error.value.details()
        with pytest.raises(grpc.RpcError) as error:
            client.unload_model(name)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND, error.value.details()
        with pytest.raises(grpc.RpcError) as error:
            client.infer(name, {"raw_images": np.zeros((1, 3, 100, 200), np.float32)})
        assert error.value.code() == grpc.StatusCode.NOT_FOUND, error.value.details()
        names = {model.name for model in client.repository_index().models}
    on_disk = {p.name for p in server.repository.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert names == on_disk  # no phantom entries


def test_loading_a_model_without_versions_says_so(explicit_server):
    server, _ = explicit_server
    empty = server.repository / "zz_no_versions"
    empty.mkdir()
    try:
        with server.client() as client:
            with pytest.raises(grpc.RpcError) as error:
                client.load_model("zz_no_versions")
            assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "no version folder" in error.value.details()
    finally:
        empty.rmdir()


def test_long_client_strings_are_cut_not_turned_into_resource_exhausted(explicit_server):
    server, _ = explicit_server
    with server.client() as client:
        with pytest.raises(grpc.RpcError) as error:
            client.infer("m" * 8192, {"raw_images": np.zeros((1, 3, 100, 200), np.float32)})
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert len(error.value.details()) < 2100
        request = pb.ModelInferRequest(model_name="readme_dummy")  # 100 k dimensions, echoed
        request.inputs.add(name="raw_images", datatype="FP32", shape=[1] * 100_000)
        request.raw_input_contents.append(b"\0" * 4)
        with pytest.raises(grpc.RpcError) as error:
            client.infer_request(request)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "more bytes" in error.value.details() and len(error.value.details()) <= 2048
    log = server.log()
    assert max(len(line) for line in log.splitlines()) < 8192  # log fields are cut too


def run_expecting_failure(*flags: str, repository) -> str:
    result = subprocess.run([str(SERVER_BINARY), "--model-repository", str(repository), *flags],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode != 0, result.stdout + result.stderr
    return result.stderr


def test_a_grpc_port_in_use_is_an_error_at_start(fixture_repository):
    port = free_port()
    with ServerProcess(fixture_repository, "--grpc-port", str(port)) as first:
        assert first.port == port
        stderr = run_expecting_failure("--grpc-port", str(port), "--metrics-port", "0",
                                       repository=fixture_repository)
        assert f"cannot listen on 0.0.0.0:{port}" in stderr
        with first.client() as client:
            assert client.server_ready()


def test_starting_a_running_server_again_is_refused_and_the_first_is_still_stopped(fixture_repository):
    server = ServerProcess(fixture_repository).start()
    try:
        first_pid = server.pid
        with pytest.raises(ServerError, match="already running"):
            server.start()
        assert server.pid == first_pid
        with server.client() as client:
            assert client.server_ready()
    finally:
        server.stop()
    assert server.process.poll() is not None, "the first process outlived stop()"


def test_a_metrics_port_in_use_is_an_error_at_start(fixture_repository):
    with ServerProcess(fixture_repository) as first:
        stderr = run_expecting_failure("--grpc-port", "0", "--metrics-port", str(first.metrics_port),
                                       repository=fixture_repository)
        assert "cannot listen for metrics" in stderr


@pytest.mark.parametrize("flags,message", [
    (("--grpc-port", "8123", "--metrics-port", "8123"), "--grpc-port and --metrics-port are both 8123"),
    (("--repository-poll-secs", "nan"), "bad value 'nan' for --repository-poll-secs"),
    (("--repository-poll-secs", "1e300"), "bad value '1e300' for --repository-poll-secs"),
    (("--shutdown-timeout-secs", "nan"), "bad value 'nan' for --shutdown-timeout-secs"),
    (("--reuse-grpc-port", "maybe"), "bad value 'maybe' for --reuse-grpc-port"),
])
def test_bad_flag_values_are_refused(fixture_repository, flags, message):
    assert message in run_expecting_failure(*flags, repository=fixture_repository)


def test_unbounded_intra_op_threads_make_the_model_unavailable(fixture_repository, tmp_path):
    repository = tmp_path / "repo"
    shutil.copytree(fixture_repository / "readme_dummy", repository / "greedy")
    (repository / "greedy" / "config.pbtxt").write_text(
        'instance_group { kind: KIND_CPU count: 1 intra_op_threads: 100000 }\n')
    with ServerProcess(repository) as server, server.client() as client:
        assert not client.model_ready("greedy")
        (entry,) = client.repository_index().models
        assert entry.state == "UNAVAILABLE" and "intra_op_threads 100000 is not within" in entry.reason


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring width x height, without image data (a few bytes
    that would make a decoder allocate width * height * 3)."""
    return (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big")
            + b"\x08\x02\x00\x00\x00")


def test_images_over_the_inputs_pixel_budget_are_refused_before_decoding(fixture_repository, tmp_path):
    """vision_classifier resizes its input to 64x64, so its per-image budget is the floor
    (4096 x 4096 pixels), not the absolute 50 Mpx; config.pbtxt's max_image_pixels raises it."""
    repository = tmp_path / "repo"
    shutil.copytree(fixture_repository / "vision_classifier", repository / "vision_classifier")
    shutil.copytree(fixture_repository / "vision_classifier", repository / "generous")
    (repository / "generous" / "config.pbtxt").write_text(
        'parameters { key: "max_image_pixels" value: "50000000" }\n')
    shutil.copytree(fixture_repository / "vision_classifier", repository / "misconfigured")
    (repository / "misconfigured" / "config.pbtxt").write_text(
        'parameters { key: "max_image_pixels" value: "lots" }\n')
    files = np.array([png_header(64, 64), png_header(7000, 7000)], dtype=object)
    with ServerProcess(repository) as server, server.client() as client:
        with pytest.raises(grpc.RpcError) as error:
            client.infer("vision_classifier", {"image": files})
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = error.value.details()
        assert "input 'image' element 1" in details and "7000x7000" in details, details
        assert "budget of 16777216 pixels per image" in details, details
        # Raised budget: the header passes, and the (empty) file fails to decode instead.
        with pytest.raises(grpc.RpcError) as error:
            client.infer("generous", {"image": files})
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "budget" not in error.value.details(), error.value.details()
        entry = next(m for m in client.repository_index().models if m.name == "misconfigured")
        assert entry.state == "UNAVAILABLE" and "max_image_pixels" in entry.reason, entry.reason
