"""Issue 20, item 7, against a real server: running out of file descriptors must not silently cost
the gRPC listener. gRPC 1.51 stops accepting for good after one failed accept4() (EMFILE), so the
server raises its soft descriptor limit to the hard one at start, and when the listener is lost all
the same it stops reporting itself ready or live (ServerReady, grpc.health.v1, /metrics) instead of
looking healthy while answering no new client."""
import resource
import socket
import time
import urllib.request

import pytest

from server_process import ServerProcess

MODEL = "readme_dummy"


def _raise_own_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"this test process may open at most {hard} descriptors; the test needs {needed}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else hard, hard))


def _open_idle_connections(port: int, count: int):
    """`count` TCP connections that never speak (the server's gRPC accepts each: one descriptor)."""
    sockets = []
    for _ in range(count):
        sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    return sockets


def _close(sockets) -> None:
    for sock in sockets:
        sock.close()


def test_the_soft_limit_is_raised_so_many_idle_connections_leave_the_listener_working(fixture_repository):
    """Soft 256, hard 2048: on a server that kept the soft limit, 600 idle connections would
    exhaust it and the listener would be gone; raised, a new client is still served."""
    _raise_own_limit(1200)
    repository = fixture_repository
    with ServerProcess(repository, "--model-control-mode", "explicit", "--load-model", MODEL,
                       command_prefix=["prlimit", "--nofile=256:2048"]) as server:
        idle = _open_idle_connections(server.port, 600)
        try:
            time.sleep(1.0)  # let gRPC accept them all
            with server.client(timeout=10) as client:
                assert client.server_ready()
                assert client.infer(MODEL, {"raw_images": __import__("numpy").zeros((1, 3, 100, 200),
                                                                                     "float32")}).outputs
        finally:
            _close(idle)
        assert '"soft":"2048"' in server.log().replace(" ", "") or "soft=2048" in server.log()
        assert server.stop() == 0


@pytest.mark.parametrize("grpc_verbosity", [None, "NONE"])
def test_a_lost_listener_turns_readiness_and_liveness_off(fixture_repository, monkeypatch, grpc_verbosity):
    """Soft = hard = 200: 300 idle connections exhaust the descriptors and gRPC drops its listener.
    A connection made before still works, and on it the server says it is neither ready nor live;
    /metrics says the listener is down; the log says why. Also when the operator silenced gRPC's
    own log (GRPC_VERBOSITY=NONE), whose one line is how the loss shows."""
    if grpc_verbosity is not None:
        monkeypatch.setenv("GRPC_VERBOSITY", grpc_verbosity)
    _raise_own_limit(1000)
    with ServerProcess(fixture_repository, "--model-control-mode", "explicit", "--load-model", MODEL,
                       command_prefix=["prlimit", "--nofile=200:200"]) as server:
        with server.client(timeout=5) as client:
            assert client.server_ready()
            assert client.health_check("liveness") == "SERVING"
            idle = _open_idle_connections(server.port, 300)
            try:
                deadline = time.monotonic() + 15
                while client.server_ready() and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert not client.server_ready(), "the server still says it is ready without a listener"
                assert client.health_check("") == "NOT_SERVING"
                assert client.health_check("liveness") == "NOT_SERVING"
            finally:
                _close(idle)
        # The idle connections' descriptors are free again once gRPC sees them close: a bound, not
        # a timing (under ASan on a loaded 2-core machine it took longer than 15 s once).
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{server.metrics_address}/metrics", timeout=5) as reply:
                    text = reply.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert "torchbricks_grpc_listener_up 0" in text
        assert "stopped accepting connections" in server.log()
        assert server.stop() == 0
