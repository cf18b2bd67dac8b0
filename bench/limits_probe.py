"""Measures what the server's bounds hold under pressure (issue 12), against a real
torchbricks-server on 127.0.0.1 that it starts and stops by PID:

  threads  N concurrent ModelInfer calls that each wait in the batcher: peak server
           threads and the outcome of every call (default 1,500 calls, default flags).
  memory   K concurrent requests of B bytes each: peak RSS, and how many were admitted
           under --max-inflight-bytes (default 6 requests of 200 MB).

Usage: .venv/bin/python bench/limits_probe.py [--calls 1500] [--big 6] [--big-mb 200] [flags...]
(PYTHONPATH must reach clients/python/client and tests/python, as in scripts/test.sh.)
Prints one JSON object. Bounded: every call has a deadline; the server is stopped at the end.
"""
import argparse
import collections
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "python"), str(REPO / "clients" / "python" / "client")]
from server_process import ServerProcess  # noqa: E402
from torchbricks_serve.generated import grpc_service_pb2 as pb  # noqa: E402

INFER = "/inference.GRPCInferenceService/ModelInfer"
ROW_BYTES = 3 * 100 * 200 * 4  # one raw_images row of readme_dummy


def request(rows: int) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="held")
    message.inputs.add(name="raw_images", datatype="FP32", shape=[rows, 3, 100, 200])
    message.raw_input_contents.append(np.zeros((rows, 3, 100, 200), np.float32).tobytes())
    return message


class Sampler:
    """Peak thread count and RSS of a process, sampled every 10 ms until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid, self.threads, self.rss_kib = pid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self.threads = max(self.threads, len(os.listdir(f"/proc/{self.pid}/task")))
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.rss_kib = max(self.rss_kib, int(line.split()[1]))
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def wave(server: ServerProcess, messages, deadline_s: float) -> dict:
    sampler = Sampler(server.pid)
    with grpc.insecure_channel(server.address, options=[("grpc.max_send_message_length", -1),
                                                        ("grpc.max_receive_message_length", -1)]) as channel:
        infer = channel.unary_unary(INFER, request_serializer=pb.ModelInferRequest.SerializeToString,
                                    response_deserializer=pb.ModelInferResponse.FromString)
        started = time.monotonic()
        futures = [infer.future(m, timeout=deadline_s) for m in messages]
        codes = collections.Counter(f.code().name for f in futures)
        elapsed = time.monotonic() - started
    sampler.stop()
    return {"calls": len(messages), "codes": dict(codes), "peak_threads": sampler.threads,
            "peak_rss_mib": round(sampler.rss_kib / 1024, 1), "seconds": round(elapsed, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--big", type=int, default=6)
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--repository", type=Path, default=REPO / "build" / "fixtures")
    parser.add_argument("flags", nargs="*", help="extra server flags (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        repository = Path(folder)
        shutil.copytree(args.repository / "readme_dummy", repository / "held")
        (repository / "held" / "config.pbtxt").write_text(
            "max_batch_size: 4000\ndynamic_batching { max_queue_delay_microseconds: 2000000 }\n")
        result = {"flags": args.flags}
        with ServerProcess(repository, *args.flags) as server:
            result["idle_threads"] = len(os.listdir(f"/proc/{server.pid}/task"))
            result["threads"] = wave(server, [request(1)] * args.calls, deadline_s=60)
            rows = max(1, args.big_mb * 1_000_000 // ROW_BYTES)
            result["memory"] = dict(wave(server, [request(rows)] * args.big, deadline_s=120),
                                    request_mb=round(rows * ROW_BYTES / 1e6, 1))
            result["exit_code"] = server.stop()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
