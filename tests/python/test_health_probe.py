"""torchbricks-health-probe (the image's HEALTHCHECK) against a real server: exit 0 when the
service is SERVING, 1 for an unknown service or a port nothing listens on, 2 on bad usage,
and one line on stderr saying why whenever it does not exit 0."""
import os
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(os.environ.get("TORCHBRICKS_HEALTH_PROBE", REPO / "build" / "clients" / "cpp" / "torchbricks-health-probe"))


def probe(*args):
    if not PROBE.is_file():
        pytest.fail(f"the health probe is not built: {PROBE}")
    return subprocess.run([str(PROBE), *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def closed_port():
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serving_server_exits_0(server):
    result = probe("--addr", server.address)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("SERVING")
    assert result.stderr == ""


def test_liveness_service_exits_0(server):
    result = probe("--addr", server.address, "--service", "liveness", "--timeout-ms", "5000")
    assert result.returncode == 0, result.stderr


def test_unknown_service_exits_1_and_says_so(server):
    result = probe("--addr", server.address, "--service", "no.such.Service")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown service" in lines[0] and "no.such.Service" in lines[0]
    assert result.stdout == ""


def test_closed_port_exits_1_as_unreachable():
    result = probe("--addr", f"127.0.0.1:{closed_port()}", "--timeout-ms", "3000")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ("unreachable" in lines[0] or "no answer" in lines[0]), result.stderr


@pytest.mark.parametrize("args", [["--timeout-ms", "soon"], ["--timeout-ms", "0"], ["--bogus", "1"],
                                  ["127.0.0.1:8001"], ["--addr"], ["--addr", ""]])
def test_bad_usage_exits_2(args):
    result = probe(*args)
    assert result.returncode == 2, (args, result.stderr)
    assert result.stderr.startswith("torchbricks-health-probe: ")
    assert "usage:" in result.stderr


def test_help_exits_0():
    result = probe("--help")
    assert result.returncode == 0 and "usage:" in result.stdout
