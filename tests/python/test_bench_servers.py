"""The servers bench/floor_benchmark compares torchbricks-server with, checked against it.

The floor (bench/floor_server) must answer the same ModelInfer request with a response of
the size it was told, and the Python torchbricks + grpcio server (bench/python_server.py)
must do the same work as torchbricks-server on the example repository — the same models
answering the same outputs with the same names, shapes and dtypes (the weights are random
in both, initialised separately) — or their figures would compare unlike things. A short floor_benchmark run proves the whole comparison still runs and
writes its targets table.
"""
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from server_process import ServerProcess
from torchbricks_serve.client import InferenceClient

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
FLOOR = BUILD / "bench" / "floor_server"
BENCHMARK = BUILD / "bench" / "floor_benchmark"
_PORT_LINE = re.compile(r"serving gRPC on (\S+):(\d+)")


class Child:
    """A process that prints 'serving gRPC on HOST:PORT'; stopped with SIGTERM by PID. Its
    output is read on a thread throughout (so it never blocks on a full pipe)."""

    def __init__(self, command, timeout=120):
        self.process = subprocess.Popen([str(part) for part in command], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.address = None
        self.lines = []
        started = threading.Event()

        def read():
            for raw in self.process.stdout:
                line = raw.decode("utf-8", errors="replace")
                self.lines.append(line)
                match = _PORT_LINE.search(line)
                if match and self.address is None:
                    self.address = f"127.0.0.1:{match.group(2)}"
                    started.set()
            started.set()  # the process closed its output: it ended

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not started.wait(timeout) or self.address is None:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError("did not start:\n" + "".join(self.lines[-20:]))

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=10)
            self.reader.join(timeout=10)


@pytest.mark.skipif(not FLOOR.is_file(), reason="bench/floor_server is not built")
def test_floor_server_answers_with_the_response_size_it_was_given():
    floor = Child([FLOOR, "--output-elements", "6"])
    try:
        with InferenceClient(floor.address) as client:
            images = np.random.rand(1, 3, 100, 200).astype(np.float32)
            result = client.infer("classifier", {"raw_images": images}, request_id="r-7")
            assert result.model_name == "classifier"
            assert result.id == "r-7"
            assert list(result.outputs) == ["floor"]
            assert result.outputs["floor"].shape == (1, 6)
            assert result.outputs["floor"].dtype == np.float32
            assert client.server_ready()
    finally:
        assert floor.stop() == 0


@pytest.mark.skipif(not FLOOR.is_file(), reason="bench/floor_server is not built")
def test_floor_server_refuses_bad_flags():
    done = subprocess.run([str(FLOOR), "--output-elements", "-1"], capture_output=True, timeout=30)
    assert done.returncode == 2
    assert b"--output-elements" in done.stderr


def test_python_server_does_the_same_work_as_torchbricks_server(example_repository):
    python = Child([sys.executable, REPO / "bench" / "python_server.py", "--grpc-port", "0"])
    try:
        with ServerProcess(example_repository) as server, server.client() as ours, \
                InferenceClient(python.address) as theirs:
            rng = np.random.default_rng(3)
            for model, name, shape in [("classifier", "raw_images", (2, 3, 100, 200)),
                                       ("resnet18_classifier", "raw", (3, 3, 32, 32))]:
                inputs = {name: rng.random(shape, dtype=np.float32)}
                expected = ours.infer(model, inputs).outputs
                got = theirs.infer(model, inputs).outputs
                assert sorted(got) == sorted(expected), model
                for output, value in expected.items():
                    assert got[output].shape == value.shape, (model, output)
                    assert got[output].dtype == value.dtype, (model, output)
                    # The weights are initialised separately (random either way), so the
                    # values differ; the computation does not.
                    assert np.all(np.isfinite(got[output].astype(np.float64))), (model, output)
    finally:
        assert python.stop() == 0


@pytest.mark.skipif(not BENCHMARK.is_file(), reason="bench/floor_benchmark is not built")
def test_floor_benchmark_runs_every_point_and_writes_the_targets(example_repository, tmp_path):
    report = tmp_path / "floor.md"
    # In a session of its own, so that a timeout stops the servers it started too.
    benchmark = subprocess.Popen([str(BENCHMARK), "--repository", str(example_repository), "--rounds", "1",
                                  "--seconds", "0.3", "--warmup-seconds", "0.1", "--out", str(report)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, stderr = benchmark.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(benchmark.pid, signal.SIGKILL)
        benchmark.communicate()
        raise
    assert benchmark.returncode == 0, stderr.decode()[-3000:]
    text = report.read_text()
    for row in ["W1 c=1 p50 ÷ (floor p50 + in-process p50)", "W1 c=1 p50 in shared memory",
                "W2 c=16 req/s ÷ in-process batch 16", "W2 c=64 req/s ÷ in-process batch 64",
                "| floor tiny c=1 |", "| server W1 shm c=1 |",
                "torchbricks-server exit status after SIGTERM: 0",
                "floor_server exit status after SIGTERM: 0"]:
        assert row in text, row
    # Every point ran without a failed request (the errors column is the last one).
    for line in text.splitlines():
        if line.startswith(("| floor", "| server")):
            assert line.rstrip(" |").endswith(" 0"), line
    assert not list(Path("/dev/shm").glob("tb_floor_*")), "the benchmark left shared memory behind"
