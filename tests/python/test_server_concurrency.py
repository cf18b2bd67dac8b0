"""Many clients at once: 32 threads x 200 requests with distinct inputs to readme_dummy; every
answer is checked against values computed independently (processed = input / 2 exactly, and
logits from an eager run of the same collection in this process), and the statistics count
exactly the requests and rows sent. Requests of 1 and 2 rows share batches in the server's
dynamic batcher, so this also checks that batched results go back to the right caller.
Bounded in time."""
import threading
import time

import numpy as np
import torch

import readme_models
from torchbricks_export import run_reference

MODEL = "readme_dummy"
THREADS = 32
REQUESTS_PER_THREAD = 200
TIME_LIMIT_S = 150
SHAPE = (3, 100, 200)  # the declared non-batch dims of readme_dummy
RTOL, ATOL = 1e-4, 1e-5


def test_many_concurrent_clients_get_their_own_correct_answers(server):
    collection = readme_models.readme_dummy()  # the weights the package was exported with
    lock = threading.Lock()
    failures = []
    batches = [0] * THREADS
    deadline = time.monotonic() + TIME_LIMIT_S
    start_together = threading.Barrier(THREADS)

    def expected_logits(images):
        with lock:  # eager torch from 32 threads at once only adds contention on 2 cores
            return run_reference(collection, "INFERENCE", {"raw_images": torch.from_numpy(images)})["logits"].numpy()

    def worker(index):
        base = np.random.default_rng(1000 + index).random((2, *SHAPE), dtype=np.float32)
        with server.client(timeout=60) as client:
            start_together.wait(timeout=60)
            for i in range(REQUESTS_PER_THREAD):
                if time.monotonic() > deadline:
                    failures.append(f"thread {index}: out of time after {i} requests")
                    return
                batch = 2 if i % 4 == 0 else 1
                images = base[:batch] + np.float32(i)  # distinct per thread and per request
                request_id = f"{index}-{i}"
                try:
                    result = client.infer(MODEL, {"raw_images": images}, outputs=["processed", "logits"],
                                          request_id=request_id)
                    assert result.id == request_id
                    assert result.model_version == "1"
                    np.testing.assert_array_equal(result.outputs["processed"], images / 2)
                    np.testing.assert_allclose(result.outputs["logits"], expected_logits(images), rtol=RTOL, atol=ATOL)
                except Exception as error:  # collected and reported by the main thread
                    failures.append(f"thread {index} request {i}: {type(error).__name__}: {error}"[:500])
                    return
                batches[index] += batch

    with server.client() as client:
        (before,) = client.model_statistics(MODEL).model_stats
        threads = [threading.Thread(target=worker, args=(index,), daemon=True) for index in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, deadline + 30 - time.monotonic()))
        assert not any(thread.is_alive() for thread in threads), "client threads still running"
        assert not failures, "\n".join(failures[:10])
        (after,) = client.model_statistics(MODEL).model_stats
        total = THREADS * REQUESTS_PER_THREAD
        assert after.inference_stats.success.count - before.inference_stats.success.count == total
        assert after.inference_stats.fail.count == before.inference_stats.fail.count
        # The dynamic batcher may run several requests as one execution.
        assert 1 <= after.execution_count - before.execution_count <= total
        assert after.inference_count - before.inference_count == sum(batches)
        assert client.server_ready()
