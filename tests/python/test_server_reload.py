"""Poll mode under load: a new version dropped into the repository (built elsewhere, moved in by
rename) takes over without a single failed request; a corrupt newer version is reported
UNAVAILABLE in the index while the previous one keeps serving."""
import os
import random
import shutil
import threading
import time

import numpy as np
import torch

import readme_models
from server_process import ServerProcess
from torchbricks_export import export_brick_collection, run_reference

MODEL = "reloadable"
SHAPE = (3, 16, 16)
CLIENTS = 4
TIME_LIMIT_S = 60


def _collection(version):
    collection = readme_models.readme_dummy()
    if version == 2:  # different weights: logits shift by exactly 10
        with torch.no_grad():
            collection["head"]["module"].fc.bias += 10
    return collection


def _wait_for(condition, what, timeout=TIME_LIMIT_S):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Callers:
    """Client threads calling the model in a loop, checking each answer against its version."""

    def __init__(self, server, inputs, expected):
        self.server, self.inputs, self.expected = server, inputs, expected
        self.stop = threading.Event()
        self.failures = []
        self.versions = [[] for _ in range(CLIENTS)]
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CLIENTS)]
        self.deadline = time.monotonic() + 3 * TIME_LIMIT_S

    def _run(self, index):
        with self.server.client(timeout=30) as client:
            i = 0
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                which = (index + i) % len(self.inputs)
                i += 1
                try:
                    result = client.infer(MODEL, {"raw_images": self.inputs[which]}, outputs=["logits"])
                    np.testing.assert_allclose(result.outputs["logits"], self.expected[result.model_version][which],
                                               rtol=1e-4, atol=1e-5)
                    self.versions[index].append(result.model_version)
                except Exception as error:  # reported by the test
                    self.failures.append(f"client {index}: {type(error).__name__}: {error}"[:500])

    def seen(self, version):
        return all(version in versions for versions in self.versions)

    def count(self, version):
        return sum(versions.count(version) for versions in self.versions)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def _index_entry(client, version):
    for entry in client.repository_index().models:
        if entry.name == MODEL and entry.version == version:
            return entry
    return None


def test_poll_mode_switches_versions_without_failures(tmp_path):
    repository, staging = tmp_path / "repository", tmp_path / "staging"
    generator = torch.Generator().manual_seed(3)
    examples = {"raw_images": torch.rand(2, *SHAPE, generator=generator)}
    export_brick_collection(_collection(1), repository / MODEL / "1", example_inputs=examples, name=MODEL)
    inputs = [torch.rand(1, *SHAPE, generator=generator) for _ in range(4)]
    expected = {str(v): [run_reference(_collection(v), "INFERENCE", {"raw_images": x})["logits"].numpy()
                         for x in inputs] for v in (1, 2)}
    assert not np.allclose(expected["1"][0], expected["2"][0], atol=1)
    arrays = [x.numpy() for x in inputs]

    flags = ("--model-control-mode", "poll", "--repository-poll-secs", "0.2")
    with ServerProcess(repository, *flags) as server, server.client() as client:
        with Callers(server, arrays, expected) as callers:
            _wait_for(lambda: callers.count("1") >= 20 or callers.failures, "answers from version 1")

            # Version 2: exported elsewhere, then moved in with one rename.
            export_brick_collection(_collection(2), staging / "2", example_inputs=examples, name=MODEL)
            os.rename(staging / "2", repository / MODEL / "2")
            _wait_for(lambda: callers.seen("2") or callers.failures, "every client to see version 2")
            settled = callers.count("2")
            _wait_for(lambda: callers.count("2") >= settled + 20 or callers.failures, "more answers from version 2")
            assert client.model_ready(MODEL, "2")
            assert _index_entry(client, "1") is None  # retired once version 2 was ready
            assert _index_entry(client, "2").state == "READY"

            # Version 3: a corrupt module; version 2 must keep serving.
            shutil.copytree(repository / MODEL / "2", staging / "3")
            for module in (staging / "3" / "modules").iterdir():
                module.write_bytes(bytes(random.Random(module.name).getrandbits(8) for _ in range(2048)))
            os.rename(staging / "3", repository / MODEL / "3")
            _wait_for(lambda: getattr(_index_entry(client, "3"), "state", "") == "UNAVAILABLE",
                      "version 3 to be reported UNAVAILABLE")
            reached = callers.count("2")
            _wait_for(lambda: callers.count("2") >= reached + 20 or callers.failures, "answers after version 3")

        entry = _index_entry(client, "3")
        assert "modules/" in entry.reason, entry.reason
        assert _index_entry(client, "2").state == "READY"
        assert client.model_ready(MODEL)
        assert not client.model_ready(MODEL, "3")
        assert client.infer(MODEL, {"raw_images": arrays[0]}).model_version == "2"
        assert not callers.failures, "\n".join(callers.failures[:10])
        for versions in callers.versions:  # each client switched once, from 1 to 2, and never back
            assert versions == sorted(versions) and set(versions) == {"1", "2"}, versions
        client.close()  # an open idle connection holds up the server's exit for its 5 s gRPC grace
        assert server.stop() == 0
