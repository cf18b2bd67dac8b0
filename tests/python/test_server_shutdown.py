"""Graceful shutdown under load: SIGTERM while many clients call. Every request either succeeds
with the correct answer or is refused with UNAVAILABLE (never INTERNAL, CANCELLED or UNKNOWN),
readiness turns false and stays false, and the process exits 0. A client that is refused stops
calling, as a client behind a load balancer goes to another replica; the server keeps refusing
for a moment after its last in-flight request before it closes the port."""
import threading
import time

import grpc
import numpy as np
import pytest
import torch

import readme_models
from server_process import ServerProcess
from torchbricks_export import run_reference
from torchbricks_serve import build_infer_request

MODEL = "readme_dummy"
CLIENTS = 16
ROUNDS = 3
TIME_LIMIT_S = 60


class Load:
    """Unary callers plus one streaming caller; each records (time, outcome) per request."""

    def __init__(self, server, inputs, expected):
        self.server, self.inputs, self.expected = server, inputs, expected
        self.lock = threading.Lock()
        self.outcomes = []  # (monotonic time the answer came, "OK" or status code name, detail)
        self.deadline = time.monotonic() + TIME_LIMIT_S
        self.threads = [threading.Thread(target=self._unary, args=(i,), daemon=True) for i in range(CLIENTS)]
        self.threads.append(threading.Thread(target=self._stream, daemon=True))

    def _record(self, outcome, detail=""):
        with self.lock:
            self.outcomes.append((time.monotonic(), outcome, detail))

    def _check(self, which, result):
        np.testing.assert_array_equal(result.outputs["processed"], self.inputs[which] / 2)
        np.testing.assert_allclose(result.outputs["logits"], self.expected[which], rtol=1e-4, atol=1e-5)

    def _finished(self):
        return self.server.process.poll() is not None or time.monotonic() > self.deadline

    def _unary(self, index):
        with self.server.client(timeout=30) as client:
            i = index
            while not self._finished():
                which = i % len(self.inputs)
                i += 1
                try:
                    result = client.infer(MODEL, {"raw_images": self.inputs[which]}, outputs=["processed", "logits"])
                    self._check(which, result)
                    self._record("OK")
                except grpc.RpcError as error:
                    self._record(error.code().name, error.details())
                    if error.code() == grpc.StatusCode.UNAVAILABLE:
                        return  # refused: a real client goes to another replica
                except AssertionError as error:
                    self._record("WRONG_ANSWER", str(error)[:300])

    def _stream(self):
        def requests():
            for i in range(10 ** 6):
                if self._finished():
                    return
                yield build_infer_request(MODEL, {"raw_images": self.inputs[i % len(self.inputs)]},
                                          outputs=["processed", "logits"], request_id=str(i))

        with self.server.client(timeout=TIME_LIMIT_S) as client:
            while not self._finished():
                try:
                    for answer in client.stream_infer(requests()):
                        if answer.error_message:
                            self._record("STREAM_ERROR", answer.error_message)
                            continue
                        try:
                            self._check(int(answer.id) % len(self.inputs), answer)
                            self._record("OK")
                        except AssertionError as error:
                            self._record("WRONG_ANSWER", str(error)[:300])
                except grpc.RpcError as error:
                    self._record(error.code().name, "stream: " + (error.details() or ""))
                    if error.code() == grpc.StatusCode.UNAVAILABLE:
                        return

    def count(self, outcome, since=0.0):
        with self.lock:
            return sum(1 for t, o, _ in self.outcomes if o == outcome and t >= since)


def _run_once(repository, inputs, expected):
    """One server: load, SIGTERM mid-load, watch readiness until it exits -> (server, code, load, readiness)."""
    server = ServerProcess(repository, "--shutdown-timeout-secs", "20").start()
    try:
        load = Load(server, inputs, expected)
        for thread in load.threads:
            thread.start()
        deadline = time.monotonic() + TIME_LIMIT_S
        while load.count("OK") < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert load.count("OK") >= 100, load.outcomes[-5:]

        readiness = []  # what ServerReady and the health service say after the signal, in order
        signalled = time.monotonic()
        server.signal()
        with server.client(timeout=5) as watcher:
            while server.process.poll() is None and time.monotonic() < deadline:
                for ask in (watcher.server_ready, lambda: watcher.health_check() == "SERVING"):
                    try:
                        readiness.append(ask())
                    except grpc.RpcError as error:
                        readiness.append(error.code().name)
                time.sleep(0.005)
        code = server.wait(timeout=30)
        for thread in load.threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in load.threads)
    finally:
        server.kill()
    print(f"\n{load.count('OK')} answers, {load.count('OK', signalled)} of them after SIGTERM; "
          f"{load.count('UNAVAILABLE')} refused; ServerReady after SIGTERM: {readiness[:3]}...{readiness[-3:]}")
    return server, code, load, readiness


@pytest.fixture(scope="module")
def shutdown_runs(fixture_repository):
    """The scenario, ROUNDS times (the moment of the signal is a race; several rounds cover more of it)."""
    collection = readme_models.readme_dummy()
    generator = torch.Generator().manual_seed(21)
    tensors = [torch.rand(1, 3, 100, 200, generator=generator) for _ in range(6)]
    expected = [run_reference(collection, "INFERENCE", {"raw_images": x})["logits"].numpy() for x in tensors]
    inputs = [x.numpy() for x in tensors]
    return [_run_once(fixture_repository, inputs, expected) for _ in range(ROUNDS)]


def test_sigterm_under_load_drains_gracefully(shutdown_runs):
    for server, code, load, readiness in shutdown_runs:
        assert code == 0, server.log()[-3000:]
        log = server.log()
        assert "received SIGTERM" in log and "stopped" in log
        wrong = [d for _, o, d in load.outcomes if o in ("WRONG_ANSWER", "STREAM_ERROR", "INTERNAL", "UNKNOWN")]
        assert not wrong, wrong[:5]
        assert load.count("UNAVAILABLE") > 0  # callers kept calling until the port closed
        # Once the server has said it is not ready / not serving (or stopped answering), it never
        # says ready again.
        first_not_ready = next((i for i, r in enumerate(readiness) if r is not True), len(readiness))
        assert True not in readiness[first_not_ready:], readiness


def test_requests_during_shutdown_are_answered_or_refused_unavailable(shutdown_runs):
    """Every request either got its (correct) answer or UNAVAILABLE; never CANCELLED."""
    for round_index, (_, _, load, _) in enumerate(shutdown_runs):
        unexpected = [(o, d) for _, o, d in load.outcomes if o not in ("OK", "UNAVAILABLE")]
        assert not unexpected, f"round {round_index}: {len(unexpected)} requests ended otherwise, e.g. {unexpected[:5]}"
