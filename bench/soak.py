#!/usr/bin/env python3
"""Bounded soak test of a real torchbricks-server on 127.0.0.1 (issue 12, "Soak").

    .venv/bin/python bench/soak.py                       # 100,000 requests at concurrency 64
    .venv/bin/python bench/soak.py --requests 3000 --concurrency 16 --json /tmp/soak.json

What it does, in order:

1. Copies the two models it serves (`stage_traced`, `keyword_inputs`) from `--repository`
   (default: the fixture repository the build exports, build/fixtures) and the server binary
   (`--server`) into a temporary folder, so that a rebuild running at the same time cannot
   change them under the soak, and starts the server there: loopback only, free ports,
   `--model-control-mode explicit --load-model stage_traced --load-model keyword_inputs`.
2. Sends `--requests` ModelInfer requests from `--concurrency` client threads (a few of them
   over ModelStreamInfer, one request per message, a new stream every `--stream-length`
   messages). The order of request kinds is a shuffle (by `--seed`) with fixed shares:

   | kind            | request                                        | expected outcome            |
   |-----------------|------------------------------------------------|-----------------------------|
   | good            | stage_traced, x FP32 [B,3]                     | OK, y == 2x exactly         |
   | good_export     | the same with stage EXPORT                     | OK, y == 2(x+100) exactly   |
   | storm           | keyword_inputs, x and y FP32 [B,3]             | OK (d == y-2x) or UNAVAILABLE (see 3.) |
   | unknown_model   | a model that is not in the repository          | NOT_FOUND                   |
   | wrong_shape     | x FP32 [B,4]                                   | INVALID_ARGUMENT            |
   | wrong_datatype  | x FP64 [B,3]                                   | INVALID_ARGUMENT            |
   | raw_length      | x's raw contents one byte short of [B,3] FP32  | INVALID_ARGUMENT            |
   | unknown_output  | asks for an output the model does not have     | INVALID_ARGUMENT            |
   | bad_stage       | the request parameter stage = an unknown stage | INVALID_ARGUMENT            |
   | skewed_rows     | keyword_inputs, x and y with different rows    | INVALID_ARGUMENT, or UNAVAILABLE as storm |

   Over the stream an error comes back as a message whose error_message starts with the status
   code's name ("INVALID_ARGUMENT: ..."); it is checked the same way. stage_traced gets a
   config.pbtxt with `max_queue_delay_microseconds` (`--queue-delay-us`, 2000): requests wait
   in the server for batch-mates, so that requests are held there when the SIGTERM comes.
3. Meanwhile a storm thread loads and unloads `keyword_inputs` (RepositoryModelLoad and
   RepositoryModelUnload, short random pauses) while the `storm` requests go to it. Every load
   and unload must answer OK. Accepted for a storm request: OK with the right answer, or
   UNAVAILABLE whose message says "is not loaded" (ModelRepository::Find: unloaded, but on
   disk) or "has no ready version" (its version is LOADING). Nothing else, by reading
   server/repository/model_repository.cc: NOT_FOUND is only for a model the repository never
   saw on disk, and keyword_inputs is on disk from the start, so NOT_FOUND would mean the storm
   made the server forget a model; a request that found a version holds it (shared_ptr) until
   answered, so the batcher's "is being unloaded" cannot reach it, and would be a finding.
4. RSS (VmRSS of /proc/PID/status) and the thread count (/proc/PID/task) of the server are
   sampled every `--sample-secs` under load. The criterion compares two measurements taken
   with the load paused (clients and storm parked, nothing in flight, the server's thread
   count unchanged for `--settle-secs`; median of 5 samples): once `--warmup-fraction` of the
   requests were answered, and when all `--requests` were answered (before the signal).
   Growth = end / baseline - 1 must stay under `--max-rss-growth-pct` (5). The pause matters:
   the server runs one thread per RPC in flight, so RSS under load moves with how many calls
   the (shared) CPUs let pile up at that instant; the live figures are reported too.
5. With the client threads calling again after the end measurement (they go on past
   `--requests` with the same mix), one SIGTERM. From the moment it is sent, a call may also
   end with UNAVAILABLE "the server is shutting down" (refused while draining) or an
   UNAVAILABLE from the transport once the port is closed (a client then stops calling: it
   would go to another replica). Everything
   else is as before; CANCELLED, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN or a stream that ends
   without answering a message it read are failures (a request the server accepted and did
   not answer). The process must exit 0 within `--shutdown-timeout-secs` of the signal, its
   log must say it stopped (and not that the shutdown timeout passed), and one more call after
   the exit must fail to connect (UNAVAILABLE).

Every loop stops by itself; `--timeout` bounds the whole run (the server is killed and the
run fails when it passes). Prints a short summary; `--json PATH` writes the full one. Exit
status 0 when every criterion holds, 1 when one fails, 2 on bad arguments or set-up errors.
"""
import argparse
import hashlib
import json
import os
import platform
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "clients" / "python" / "client"))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

from torchbricks_serve import build_infer_request  # noqa: E402
from torchbricks_serve.generated import grpc_service_pb2 as pb  # noqa: E402

MODEL = "stage_traced"         # x FP32 [-1,3] -> y = 2x (INFERENCE), 2(x + 100) (EXPORT)
STORM_MODEL = "keyword_inputs"  # x, y FP32 [-1,3] -> d = y - 2x
UNKNOWN_MODEL = "soak_no_such_model"
_SERVICE = "/inference.GRPCInferenceService/"
_PORT_LINE = re.compile(r"serving gRPC on (\S+):(\d+)")

# kind -> share of the requests (sums to 1). The seven bad kinds are 4 % each (28 % in all).
SHARES = {
    "good": 0.52, "good_export": 0.10, "storm": 0.10,
    "unknown_model": 0.04, "wrong_shape": 0.04, "wrong_datatype": 0.04,
    "raw_length": 0.04, "unknown_output": 0.04, "bad_stage": 0.04, "skewed_rows": 0.04,
}
# kind -> the status code it must get while the server serves normally.
EXPECTED_CODE = {
    "good": "OK", "good_export": "OK", "storm": "OK",
    "unknown_model": "NOT_FOUND", "wrong_shape": "INVALID_ARGUMENT", "wrong_datatype": "INVALID_ARGUMENT",
    "raw_length": "INVALID_ARGUMENT", "unknown_output": "INVALID_ARGUMENT", "bad_stage": "INVALID_ARGUMENT",
    "skewed_rows": "INVALID_ARGUMENT",
}
# Kinds sent to keyword_inputs, which the storm loads and unloads under them.
STORM_KINDS = ("storm", "skewed_rows")
# UNAVAILABLE details accepted for `storm` requests while keyword_inputs is loaded and unloaded.
STORM_UNAVAILABLE = re.compile(r"is not loaded|has no ready version")
# UNAVAILABLE details of the server's refusal while draining (server/grpc/inference_service.cc).
SHUTTING_DOWN = "the server is shutting down"
# UNAVAILABLE details of a call that could not reach the server once its port closed.
CONNECT_FAILED = re.compile(r"failed to connect|connection refused|connect failed|Connection reset|"
                            r"Socket closed|GOAWAY|Broken pipe|Cancelling all calls|Empty update|"
                            r"unreachable", re.IGNORECASE)
MAX_EXAMPLES = 20


# --- requests ------------------------------------------------------------------------------

class Catalogue:
    """Pre-serialized requests per kind (a few variants each) with their expected raw output."""

    VARIANTS = 16

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.variants = {kind: [] for kind in SHARES}  # kind -> [(request bytes, expected or None)]
        for v in range(self.VARIANTS):
            rows = 1 + v % 4
            x = rng.random((rows, 3), dtype=np.float32)
            y = rng.random((rows, 3), dtype=np.float32)
            add = self.variants
            add["good"].append((_ser(build_infer_request(MODEL, {"x": x})), ("y", x * np.float32(2))))
            add["good_export"].append((_ser(build_infer_request(MODEL, {"x": x}, stage="EXPORT")),
                                       ("y", (x + np.float32(100)) * np.float32(2))))
            add["storm"].append((_ser(build_infer_request(STORM_MODEL, {"x": x, "y": y})),
                                 ("d", y - x * np.float32(2))))
            add["unknown_model"].append((_ser(build_infer_request(UNKNOWN_MODEL, {"x": x})), None))
            wide = rng.random((rows, 4), dtype=np.float32)
            add["wrong_shape"].append((_ser(build_infer_request(MODEL, {"x": wide})), None))
            add["wrong_datatype"].append((_ser(build_infer_request(MODEL, {"x": x.astype(np.float64)})), None))
            short = build_infer_request(MODEL, {"x": x})
            short.raw_input_contents[0] = short.raw_input_contents[0][:-1]
            add["raw_length"].append((_ser(short), None))
            add["unknown_output"].append((_ser(build_infer_request(MODEL, {"x": x},
                                                                   outputs=["soak_no_such_output"])), None))
            add["bad_stage"].append((_ser(build_infer_request(MODEL, {"x": x}, stage="SOAK_NO_SUCH_STAGE")), None))
            # Inputs that disagree on their rows (issue 20: they would take a batch-mate's rows).
            skewed_y = rng.random(((rows + 1) if v % 2 else 0, 3), dtype=np.float32)
            add["skewed_rows"].append((_ser(build_infer_request(STORM_MODEL, {"x": x, "y": skewed_y})), None))

    def get(self, kind, index):
        return self.variants[kind][index % self.VARIANTS]


def _ser(message):
    return message.SerializeToString()


def plan_kinds(count, seed):
    """`count` request kinds with exactly the SHARES (rounded), shuffled by `seed`."""
    kinds = []
    names = list(SHARES)
    for name in names[1:]:
        kinds += [name] * int(round(count * SHARES[name]))
    kinds += [names[0]] * max(0, count - len(kinds))
    kinds = kinds[:count]
    random.Random(seed).shuffle(kinds)
    return kinds


def check_answer(response, expected):
    """None when the ModelInferResponse holds the expected output exactly, else what is wrong."""
    name, values = expected
    if [t.name for t in response.outputs] != [name]:
        return f"outputs {[t.name for t in response.outputs]}, expected ['{name}']"
    tensor = response.outputs[0]
    if tensor.datatype != "FP32" or list(tensor.shape) != list(values.shape):
        return f"output {tensor.datatype} {list(tensor.shape)}, expected FP32 {list(values.shape)}"
    if len(response.raw_output_contents) != 1:
        return f"{len(response.raw_output_contents)} raw outputs"
    raw = response.raw_output_contents[0]
    if raw != values.astype("<f4").tobytes():
        got = np.frombuffer(raw, dtype="<f4")
        if got.size != values.size or not np.allclose(got.reshape(values.shape), values, rtol=1e-6, atol=1e-6):
            return f"wrong values {got[:6].tolist()}..., expected {values.reshape(-1)[:6].tolist()}..."
    return None


# --- the server ----------------------------------------------------------------------------

class Server:
    """The server process: started with free loopback ports, stopped by its PID."""

    def __init__(self, binary, repository, log_path, shutdown_timeout, extra_flags=()):
        self.command = [str(binary), "--model-repository", str(repository), "--grpc-address", "127.0.0.1",
                        "--grpc-port", "0", "--metrics-port", "0", "--model-control-mode", "explicit",
                        "--load-model", MODEL, "--load-model", STORM_MODEL,
                        "--shutdown-timeout-secs", str(shutdown_timeout), *extra_flags]
        self.log_path = Path(log_path)
        self.process = None
        self.port = 0
        self.stdout = []
        self._port_seen = threading.Event()

    @property
    def pid(self):
        return self.process.pid

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout):
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=log,
                                            stdin=subprocess.DEVNULL)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._port_seen.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not listen (exit code {self.process.poll()}):\n{self.log_tail()}")
        channel = grpc.insecure_channel(self.address)
        ready = channel.unary_unary(_SERVICE + "ServerReady", request_serializer=pb.ServerReadyRequest.SerializeToString,
                                    response_deserializer=pb.ServerReadyResponse.FromString)
        try:
            while True:
                try:
                    if ready(pb.ServerReadyRequest(), timeout=2).ready:
                        return
                except grpc.RpcError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not become ready:\n{self.log_tail()}")
                time.sleep(0.05)
        finally:
            channel.close()

    def _read_stdout(self):
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stdout.append(line)
            match = _PORT_LINE.search(line)
            if match and not self._port_seen.is_set():
                self.port = int(match.group(2))
                self._port_seen.set()

    def sample(self):
        """(VmRSS in kB, thread count) of the process, or None once it is gone."""
        try:
            with open(f"/proc/{self.pid}/status") as status:
                rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            return rss, len(os.listdir(f"/proc/{self.pid}/task"))
        except (OSError, StopIteration, ValueError):
            return None

    def log(self):
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=30):
        return "\n".join(self.log().splitlines()[-lines:])

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


# --- the soak ------------------------------------------------------------------------------

class Soak:
    def __init__(self, args, server, catalogue, kinds, deadline):
        self.args = args
        self.server = server
        self.catalogue = catalogue
        self.kinds = kinds
        self.deadline = deadline
        self.lock = threading.Lock()
        self.next_index = 0
        self.tail_limit = args.requests + max(50 * args.concurrency, 5000)  # past --requests, while stopping
        self.answered = 0          # calls (or stream messages) that came back, any outcome
        self.issued = 0
        self.in_flight = 0
        self.main_done = threading.Event()   # --requests answered
        self.stop = threading.Event()        # every thread: stop now (timeout or failure)
        self.signal_time = None              # monotonic time of the SIGTERM
        self.in_flight_at_signal = None
        # outcome tables: phase -> kind -> outcome -> count
        self.outcomes = defaultdict(lambda: defaultdict(Counter))
        self.transport = Counter()
        self.unexpected = []
        self.unexpected_count = 0
        self.unanswered = 0
        self.examples = {}                   # kind -> one error detail seen, for the report
        self.storm = {"cycles": 0, "load": Counter(), "unload": Counter(), "load_seconds": [], "unexpected": 0}
        self.samples = []                    # (seconds since start, answered, rss kB, threads)
        self.quiesced = []                   # RSS measured with the load paused (see quiesce)
        self.paused = False
        self.unpaused = threading.Event()
        self.unpaused.set()
        self.storm_parked = threading.Event()
        self.storm_thread = None
        self.t0 = time.monotonic()

    # -- bookkeeping --

    def take_index(self):
        """The index of the next request to send (and it counts as in flight), or None: stop.
        Waits while the load is paused for an RSS measurement."""
        while True:
            with self.lock:
                if self.stop.is_set() or time.monotonic() > self.deadline:
                    return None
                if not self.paused:
                    index = self.next_index
                    if index >= self.tail_limit or (index >= self.args.requests and self.args.no_sigterm):
                        return None
                    self.next_index += 1
                    self.issued += 1
                    self.in_flight += 1
                    return index
            self.unpaused.wait(0.1)

    def quiesce(self, label):
        """Pauses the clients and the storm, waits until nothing is in flight and the server's
        thread count has settled, records RSS and threads (median of 5 samples), resumes."""
        with self.lock:
            self.paused = True
            self.unpaused.clear()
        started = time.monotonic()
        limit = min(self.deadline, started + self.args.call_timeout)
        storm = self.storm_thread
        while time.monotonic() < limit:
            with self.lock:
                idle = self.in_flight == 0
            if idle and (storm is None or not storm.is_alive() or self.storm_parked.is_set()):
                break
            time.sleep(0.01)
        idle_at = time.monotonic()
        threads, stable_since = None, time.monotonic()  # settled: same thread count for settle_secs
        while time.monotonic() - idle_at < self.args.settle_max_secs:
            sample = self.server.sample()
            if sample is None:
                break
            if sample[1] != threads:
                threads, stable_since = sample[1], time.monotonic()
            elif time.monotonic() - stable_since >= self.args.settle_secs:
                break
            time.sleep(0.05)
        samples = []
        for _ in range(5):
            sample = self.server.sample()
            if sample is not None:
                samples.append(sample)
            time.sleep(0.1)
        with self.lock:
            answered = self.answered
            self.paused = False
            self.unpaused.set()
        if not samples:
            return None
        point = {"label": label, "answered": answered, "at_s": round(started - self.t0, 3),
                 "rss_kb": sorted(s[0] for s in samples)[len(samples) // 2],
                 "threads": sorted(s[1] for s in samples)[len(samples) // 2],
                 "drain_s": round(idle_at - started, 3), "settle_s": round(time.monotonic() - idle_at, 3),
                 "paused_s": round(time.monotonic() - started, 3)}
        self.quiesced.append(point)
        return point

    def _phase(self, ended):
        if self.signal_time is not None and ended >= self.signal_time:
            return "after_sigterm"
        return "serving"

    def record(self, index, kind, transport, code, details, answer_problem=None):
        """One finished request: classify it; returns True when the caller should stop (refused
        or disconnected while the server stops)."""
        ended = time.monotonic()
        with self.lock:
            self.in_flight -= 1
            self.answered += 1
            if self.answered >= self.args.requests:
                self.main_done.set()
            phase = self._phase(ended)
            outcome, expected, stop_calling = self._classify(kind, phase, code, details, answer_problem)
            self.outcomes[phase][kind][outcome] += 1
            self.transport[transport] += 1
            if code != "OK" and kind not in self.examples and expected and outcome == code:
                self.examples[kind] = f"{code}: {details}"[:300]
            if not expected:
                self.unexpected_count += 1
                if outcome in ("DEADLINE_EXCEEDED", "CANCELLED", "UNANSWERED"):
                    self.unanswered += 1
                if len(self.unexpected) < MAX_EXAMPLES:
                    self.unexpected.append({"index": index, "kind": kind, "transport": transport, "phase": phase,
                                            "code": code, "details": (answer_problem or details or "")[:500],
                                            "seconds": round(ended - self.t0, 3)})
            return stop_calling

    def _classify(self, kind, phase, code, details, answer_problem):
        """(outcome label, expected?, stop calling?)"""
        details = details or ""
        if code == "OK":
            if answer_problem:
                return "WRONG_ANSWER", False, False
            return "OK", EXPECTED_CODE[kind] == "OK", False
        if code == EXPECTED_CODE[kind]:
            return code, True, False
        if kind in STORM_KINDS and code == "UNAVAILABLE":
            match = STORM_UNAVAILABLE.search(details)
            if match:
                return f"UNAVAILABLE ({match.group(0)})", True, False
        if phase == "after_sigterm" and code == "UNAVAILABLE":
            if SHUTTING_DOWN in details:
                return "UNAVAILABLE_SHUTTING_DOWN", True, True
            if CONNECT_FAILED.search(details):
                return "UNAVAILABLE_DISCONNECTED", True, True
        return code, False, phase == "after_sigterm"

    # -- client threads --

    def unary_worker(self, channel):
        call = channel.unary_unary(_SERVICE + "ModelInfer")  # bytes in, bytes out
        while True:
            index = self.take_index()
            if index is None:
                return
            kind = self.kinds[index % len(self.kinds)]
            request, expected = self.catalogue.get(kind, index)
            try:
                raw = call(request, timeout=self.args.call_timeout)
                problem = check_answer(pb.ModelInferResponse.FromString(raw), expected) if expected else None
                stop = self.record(index, kind, "unary", "OK", "", problem)
            except grpc.RpcError as error:
                stop = self.record(index, kind, "unary", error.code().name, error.details())
            if stop:
                return

    def stream_worker(self, channel):
        call = channel.stream_stream(_SERVICE + "ModelStreamInfer")
        while not self.stop.is_set():
            outbox = queue.Queue()

            def messages():
                while True:
                    item = outbox.get()
                    if item is None:
                        return
                    yield item

            replies = call(messages(), timeout=self.args.call_timeout * self.args.stream_length)
            ended_by_server = False
            try:
                for _ in range(self.args.stream_length):
                    index = self.take_index()
                    if index is None:
                        break
                    kind = self.kinds[index % len(self.kinds)]
                    request, expected = self.catalogue.get(kind, index)
                    outbox.put(request)
                    try:
                        reply = pb.ModelStreamInferResponse.FromString(next(replies))
                    except StopIteration:  # the stream ended OK without answering this message
                        self.record(index, kind, "stream", "UNANSWERED",
                                    "the stream ended with status OK before answering a message it was sent")
                        ended_by_server = True
                        return
                    except grpc.RpcError as error:
                        ended_by_server = True
                        if self.record(index, kind, "stream", error.code().name, error.details()):
                            return
                        break
                    if reply.error_message:
                        code, _, message = reply.error_message.partition(": ")
                        if code not in grpc.StatusCode.__members__:  # not "CODE: message"
                            code, message = "UNKNOWN", reply.error_message
                        self.record(index, kind, "stream", code, message)
                    else:
                        problem = check_answer(reply.infer_response, expected) if expected else None
                        self.record(index, kind, "stream", "OK", "", problem)
            finally:
                outbox.put(None)
                if not ended_by_server:
                    self._finish_stream(replies)
            if self.take_peek_done():
                return

    def _finish_stream(self, replies):
        """After the client half-closed: no more replies, then status OK (or a shutdown refusal)."""
        try:
            for extra in replies:
                self._note_stream_problem("a reply to no message", repr(extra)[:200])
        except grpc.RpcError as error:
            code = error.code().name
            acceptable = (self.signal_time is not None and code == "UNAVAILABLE")
            if not acceptable:
                self._note_stream_problem(f"stream ended with {code}", error.details())

    def _note_stream_problem(self, what, details):
        with self.lock:
            self.unexpected_count += 1
            if len(self.unexpected) < MAX_EXAMPLES:
                self.unexpected.append({"kind": "stream", "transport": "stream", "phase": self._phase(time.monotonic()),
                                        "code": what, "details": (details or "")[:500],
                                        "seconds": round(time.monotonic() - self.t0, 3)})

    def take_peek_done(self):
        with self.lock:
            return (self.stop.is_set() or self.next_index >= self.tail_limit or time.monotonic() > self.deadline
                    or (self.args.no_sigterm and self.next_index >= self.args.requests))

    def storm_worker(self, address):
        rng = random.Random(self.args.seed + 1)
        channel = grpc.insecure_channel(address)
        load = channel.unary_unary(_SERVICE + "RepositoryModelLoad",
                                   request_serializer=pb.RepositoryModelLoadRequest.SerializeToString,
                                   response_deserializer=pb.RepositoryModelLoadResponse.FromString)
        unload = channel.unary_unary(_SERVICE + "RepositoryModelUnload",
                                     request_serializer=pb.RepositoryModelUnloadRequest.SerializeToString,
                                     response_deserializer=pb.RepositoryModelUnloadResponse.FromString)
        try:
            for cycle in range(self.args.storm_max_cycles):
                while not self.unpaused.is_set():  # paused for RSS: park with the model loaded
                    self.storm_parked.set()
                    self.unpaused.wait(0.1)
                    if self.stop.is_set() or time.monotonic() > self.deadline:
                        return
                self.storm_parked.clear()
                for name, rpc, request in (("unload", unload, pb.RepositoryModelUnloadRequest(model_name=STORM_MODEL)),
                                           ("load", load, pb.RepositoryModelLoadRequest(model_name=STORM_MODEL))):
                    if self.main_done.is_set() or self.stop.is_set() or time.monotonic() > self.deadline:
                        return
                    started = time.monotonic()
                    try:
                        rpc(request, timeout=self.args.call_timeout)
                        code, details = "OK", ""
                    except grpc.RpcError as error:
                        code, details = error.code().name, error.details()
                    with self.lock:
                        self.storm[name][code] += 1
                        if name == "load" and code == "OK":
                            self.storm["load_seconds"].append(time.monotonic() - started)
                        if code != "OK":
                            self.storm["unexpected"] += 1
                            self.unexpected_count += 1
                            if len(self.unexpected) < MAX_EXAMPLES:
                                self.unexpected.append({"kind": f"storm_{name}", "transport": "unary",
                                                        "phase": "serving", "code": code, "details": details[:500],
                                                        "seconds": round(time.monotonic() - self.t0, 3)})
                    time.sleep(rng.uniform(0, self.args.storm_pause))
                with self.lock:
                    self.storm["cycles"] = cycle + 1
        finally:
            # Leave the model loaded, as at the start, so that the end RSS sample compares like
            # with like (the storm stops once --requests are answered, before that sample).
            if not self.stop.is_set() and self.server.process.poll() is None:
                try:
                    load(pb.RepositoryModelLoadRequest(model_name=STORM_MODEL), timeout=self.args.call_timeout)
                    with self.lock:
                        self.storm["load"]["OK"] += 1
                except grpc.RpcError as error:
                    with self.lock:
                        self.storm["load"][error.code().name] += 1
                        self.storm["unexpected"] += 1
                        self.unexpected_count += 1
            channel.close()

    def sampler(self):
        while (not self.stop.is_set() and self.signal_time is None and self.server.process.poll() is None
               and time.monotonic() < self.deadline):
            self.take_sample()
            time.sleep(self.args.sample_secs)

    def take_sample(self):
        sample = self.server.sample()
        if sample is not None:
            with self.lock:
                answered = self.answered
                self.samples.append((round(time.monotonic() - self.t0, 3), answered, sample[0], sample[1]))
        return sample


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _channels(address, count):
    return [grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(count)]


def machine_description():
    name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "os": name, "kernel": platform.release(),
            "python": platform.python_version(), "grpcio": grpc.__version__}


def prepare(args, workdir):
    """Copies the server binary and the two models into `workdir`; returns (binary, repository)."""
    source = Path(args.repository)
    repository = workdir / "repository"
    for model in (MODEL, STORM_MODEL):
        if not (source / model).is_dir():
            raise RuntimeError(f"{source} has no model '{model}' (the fixture repository: build the project, "
                               f"or export one with tests/fixtures/make_fixtures.py DIR)")
        shutil.copytree(source / model, repository / model)
    if args.queue_delay_us > 0:
        # Requests to the main model wait up to this long for batch-mates, so that at any moment
        # some are held inside the server: the SIGTERM then finds requests in flight to drain.
        (repository / MODEL / "config.pbtxt").write_text(
            f"max_batch_size: 32\ndynamic_batching {{ max_queue_delay_microseconds: {args.queue_delay_us} }}\n")
    binary = Path(args.server)
    if not binary.is_file():
        raise RuntimeError(f"the server is not built: {binary}")
    if args.copy_server:
        copy = workdir / binary.name
        shutil.copy2(binary, copy)
        binary = copy
    return binary, repository


def rss_figures(soak, live_end):
    """The criterion compares the two quiesced measurements (load paused, nothing in flight,
    thread count settled): after warm-up and at the end. The live samples (taken under load
    every --sample-secs) are reported beside it: they also move with the number of server
    threads, one per RPC in flight, and so with how busy the machine is at that instant."""
    points = {q["label"]: q for q in soak.quiesced}
    base, end = points.get("after warm-up"), points.get("end")
    if base is None or end is None:
        return {"error": "no RSS measurement after warm-up and at the end", "quiesced": soak.quiesced}
    after = [s for s in soak.samples if s[1] >= base["answered"]]
    live = {}
    if after and live_end is not None:
        live = {"live_first_after_warmup_kb": after[0][2], "live_end_kb": live_end[2],
                "live_growth_pct": round(100.0 * (live_end[2] - after[0][2]) / after[0][2], 3),
                "live_max_after_warmup_kb": max(s[2] for s in after),
                "live_min_after_warmup_kb": min(s[2] for s in after)}
        xs = np.array([s[1] for s in after], dtype=float)
        ys = np.array([s[2] for s in after], dtype=float)
        if len(after) >= 3 and np.ptp(xs) > 0:
            live["live_trend_kb_per_10k_requests"] = round(float(np.polyfit(xs, ys, 1)[0]) * 10_000, 1)
    return {
        "baseline_kb": base["rss_kb"], "baseline_at_answered": base["answered"], "baseline_threads": base["threads"],
        "end_kb": end["rss_kb"], "end_at_answered": end["answered"], "end_threads": end["threads"],
        "growth_pct": round(100.0 * (end["rss_kb"] - base["rss_kb"]) / base["rss_kb"], 3),
        "first_sample_kb": soak.samples[0][2] if soak.samples else None,
        "samples": len(soak.samples), "quiesced": soak.quiesced, **live,
    }


def downsample(samples, count=60):
    if len(samples) <= count:
        return samples
    step = (len(samples) - 1) / (count - 1)
    return [samples[round(i * step)] for i in range(count)]


def run(args):
    report = {"command": " ".join([Path(sys.executable).name] + sys.argv), "config": {
        k: v for k, v in vars(args).items() if k != "json"}, "machine": machine_description(),
        "load_average_start": os.getloadavg()}
    failures = []
    deadline = time.monotonic() + args.timeout
    workdir = Path(tempfile.mkdtemp(prefix="torchbricks-soak-"))
    server = None
    try:
        try:
            binary, repository = prepare(args, workdir)
        except (RuntimeError, OSError) as error:
            print(f"soak: {error}", file=sys.stderr)
            return 2, report
        log_path = Path(args.log) if args.log else workdir / "server.log"
        server = Server(binary, repository, log_path, args.shutdown_timeout_secs)
        started = time.monotonic()
        try:
            server.start(timeout=max(1.0, min(120.0, deadline - time.monotonic())))
        except RuntimeError as error:
            print(f"soak: {error}", file=sys.stderr)
            return 2, report
        source = Path(args.server).resolve()
        report["server"] = {"binary": str(source), "binary_bytes": binary.stat().st_size,
                            "binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(binary.stat().st_mtime)),
                            "binary_sha256": _sha256(binary), "pid": server.pid, "address": server.address,
                            "flags": server.command[1:], "start_seconds": round(time.monotonic() - started, 2)}

        kinds = plan_kinds(args.requests, args.seed)
        soak = Soak(args, server, Catalogue(args.seed), kinds, deadline)
        stream_workers = min(args.stream_workers, args.concurrency // 4) if args.concurrency > 1 else 0
        if args.concurrency > 1 and args.stream_workers > 0:
            stream_workers = max(1, stream_workers)
        channels = _channels(server.address, max(1, min(args.channels, args.concurrency)))
        threads = [threading.Thread(target=soak.sampler, name="sampler", daemon=True)]
        if not args.no_storm:
            soak.storm_thread = threading.Thread(target=soak.storm_worker, args=(server.address,), name="storm",
                                                 daemon=True)
            threads.append(soak.storm_thread)
        for i in range(args.concurrency):
            target = soak.stream_worker if i < stream_workers else soak.unary_worker
            threads.append(threading.Thread(target=target, args=(channels[i % len(channels)],),
                                            name=f"client-{i}", daemon=True))
        soak.take_sample()
        soak.t0 = time.monotonic()
        for thread in threads:
            thread.start()

        # Wait for --requests answers (or a stop), printing progress now and then.
        last_print = time.monotonic()
        warm_target = int(args.requests * args.warmup_fraction)
        while not soak.main_done.wait(0.05):
            if not soak.quiesced and soak.answered >= warm_target:
                soak.quiesce("after warm-up")
            if time.monotonic() > soak.deadline:
                failures.append(f"global timeout ({args.timeout} s) before {args.requests} requests were answered")
                break
            if server.process.poll() is not None:
                failures.append(f"the server exited with {server.process.returncode} during the soak")
                break
            if not any(t.is_alive() for t in threads if t.name.startswith("client")):
                failures.append("every client thread stopped before the requests were answered")
                break
            if args.progress and time.monotonic() - last_print >= args.progress:
                last_print = time.monotonic()
                with soak.lock:
                    answered, unexpected = soak.answered, soak.unexpected_count
                sample = server.sample() or (0, 0)
                print(f"  {time.monotonic() - soak.t0:7.1f} s  {answered:>7} answered  {unexpected} unexpected  "
                      f"RSS {sample[0] / 1024:.1f} MiB  {sample[1]} threads", flush=True)
        main_seconds = time.monotonic() - soak.t0
        main_answered = soak.answered
        paused_seconds = sum(q["paused_s"] for q in soak.quiesced)  # the warm-up pause
        live_end = soak.take_sample()
        live_end = soak.samples[-1] if live_end is not None else None
        if soak.storm_thread is not None:  # it stops at --requests, leaving its model loaded as at the start
            soak.storm_thread.join(timeout=args.call_timeout + 5)
        end_point = soak.quiesce("end") if not failures else None

        # One SIGTERM while the clients keep calling: first let them get going again.
        shutdown = {}
        if not failures and not args.no_sigterm:
            resumed, resumed_at_index = time.monotonic(), soak.next_index
            while time.monotonic() - resumed < 5:  # every client calling again, half of them in flight
                with soak.lock:
                    if soak.next_index >= resumed_at_index + args.concurrency and \
                            soak.in_flight >= max(1, args.concurrency // 2):
                        break
                time.sleep(0.001)
            with soak.lock:
                soak.in_flight_at_signal = soak.in_flight
                soak.signal_time = time.monotonic()
            os.kill(server.pid, signal.SIGTERM)
            wait_limit = args.shutdown_timeout_secs + 30
            try:
                code = server.process.wait(timeout=wait_limit)
            except subprocess.TimeoutExpired:
                code = None
                failures.append(f"the server did not exit within {wait_limit} s of SIGTERM (killed)")
                server.kill()
            exit_seconds = time.monotonic() - soak.signal_time
            shutdown = {"in_flight_at_sigterm": soak.in_flight_at_signal, "exit_code": code,
                        "exit_seconds_after_sigterm": round(exit_seconds, 3),
                        "shutdown_timeout_secs": args.shutdown_timeout_secs}
            if not soak.in_flight_at_signal:
                failures.append("no request was in flight when SIGTERM was sent")
            if code is not None and code != 0:
                failures.append(f"the server exited with {code} after SIGTERM")
            if code is not None and exit_seconds > args.shutdown_timeout_secs:
                failures.append(f"the server took {exit_seconds:.1f} s to exit, more than its shutdown timeout")
        else:
            soak.stop.set()
        join_deadline = min(soak.deadline, time.monotonic() + args.call_timeout + 5)
        for thread in threads:
            thread.join(timeout=max(0.0, join_deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        soak.stop.set()
        if stuck:
            failures.append(f"threads still running after the server stopped: {stuck[:8]}")

        # After the exit: one more call must fail to connect.
        if shutdown and server.process.poll() is not None:
            probe = grpc.insecure_channel(server.address)
            try:
                probe.unary_unary(_SERVICE + "ModelInfer")(catalogue_good(soak), timeout=5)
                shutdown["call_after_exit"] = "OK"
            except grpc.RpcError as error:
                shutdown["call_after_exit"] = f"{error.code().name}: {error.details()}"
            finally:
                probe.close()
            if not shutdown["call_after_exit"].startswith("UNAVAILABLE"):
                failures.append(f"a call after the exit got {shutdown['call_after_exit']}, expected UNAVAILABLE")
        for channel in channels:
            channel.close()
        if server.process.poll() is None:
            server.kill()
            if not args.no_sigterm:
                failures.append("the server was still running at the end (killed)")
        log = server.log()
        if shutdown:
            drained = re.search(r"draining (\d+) in-flight request", log)
            shutdown["server_draining_in_flight"] = int(drained.group(1)) if drained else None
            shutdown["log_says_stopped"] = bool(re.search(r"\bstopped\b", log))
            shutdown["log_says_shutdown_timeout"] = "shutdown timeout" in log
            if not shutdown["log_says_stopped"]:
                failures.append("the server log does not say 'stopped'")
            if shutdown["log_says_shutdown_timeout"]:
                failures.append("the server log says its shutdown timeout passed with requests still running")

        if time.monotonic() > deadline:
            failures.insert(0, f"global timeout: the run took longer than --timeout {args.timeout} s")

        # Figures.
        rss = rss_figures(soak, live_end)
        if "growth_pct" not in rss:
            failures.append("no RSS samples after warm-up")
        elif rss["growth_pct"] >= args.max_rss_growth_pct:
            failures.append(f"RSS grew {rss['growth_pct']:.2f} % after warm-up (limit {args.max_rss_growth_pct} %)")
        threads_seen = [s[3] for s in soak.samples]
        outcomes = {phase: {kind: dict(counter) for kind, counter in kinds_.items()}
                    for phase, kinds_ in soak.outcomes.items()}
        totals = Counter()
        for kinds_ in soak.outcomes.values():
            for counter in kinds_.values():
                totals.update(counter)
        if soak.unexpected_count:
            failures.append(f"{soak.unexpected_count} unexpected outcome(s), e.g. {soak.unexpected[:3]}")
        if soak.answered != soak.issued:
            failures.append(f"{soak.issued - soak.answered} request(s) issued but never answered")
        if main_answered < args.requests:
            failures.append(f"only {main_answered} of {args.requests} requests answered before the signal")
        storm = dict(soak.storm)
        load_seconds = storm.pop("load_seconds")
        storm["load"], storm["unload"] = dict(storm["load"]), dict(storm["unload"])
        storm["load_seconds_median"] = round(sorted(load_seconds)[len(load_seconds) // 2], 4) if load_seconds else None
        if not args.no_storm and storm["cycles"] == 0:
            failures.append("the storm thread did not complete a single load/unload cycle")
        report.update({
            "passed": not failures, "failures": failures,
            "duration_s": round(time.monotonic() - started, 2),
            "main_phase_s": round(main_seconds, 2),
            "paused_s": round(paused_seconds, 2),
            "throughput_rps": (round(main_answered / (main_seconds - paused_seconds), 1)
                               if main_seconds > paused_seconds else None),
            "requests": {"planned": args.requests, "issued": soak.issued, "answered": soak.answered,
                         "unanswered": soak.unanswered + (soak.issued - soak.answered),
                         "unexpected": soak.unexpected_count, "answered_before_sigterm": main_answered,
                         "by_outcome": dict(totals), "by_transport": dict(soak.transport),
                         "by_phase": outcomes, "planned_shares": SHARES},
            "unexpected_examples": soak.unexpected, "error_examples": soak.examples,
            "storm": storm, "shutdown": shutdown, "rss": rss,
            "threads": {"max": max(threads_seen) if threads_seen else None,
                        "at_start": threads_seen[0] if threads_seen else None,
                        "at_end": end_point["threads"] if end_point else None},
            "samples": downsample(soak.samples),
            "server_log": str(log_path) if args.log else None,
            "load_average_end": os.getloadavg(),
        })
        if failures:
            report["server_log_tail"] = server.log_tail(40)
        return (0 if not failures else 1), report
    finally:
        if server is not None:
            server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def catalogue_good(soak):
    return soak.catalogue.get("good", 0)[0]


def summary_text(report):
    if "requests" not in report:
        return "soak: did not run"
    r, rss, sd, st, th = report["requests"], report["rss"], report["shutdown"], report["storm"], report["threads"]
    lines = [
        f"soak: {'PASS' if report['passed'] else 'FAIL'} — {r['planned']} requests at concurrency "
        f"{report['config']['concurrency']} in {report['main_phase_s']} s ({report['throughput_rps']} req/s "
        f"not counting the {report['paused_s']} s pause to measure RSS); {report['duration_s']} s in all",
        f"  requests: {r['issued']} issued, {r['answered']} answered, {r['unanswered']} unanswered, "
        f"{r['unexpected']} unexpected",
        f"  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(r["by_outcome"].items())),
        f"  transport: " + ", ".join(f"{k} {v}" for k, v in sorted(r["by_transport"].items())),
        f"  storm: {st['cycles']} unload/load cycles of {STORM_MODEL} (and a last load); load {st['load']}, "
        f"unload {st['unload']}",
    ]
    if "growth_pct" in rss:
        lines.append(f"  RSS (load paused): {rss['baseline_kb'] / 1024:.1f} MiB after {rss['baseline_at_answered']} "
                     f"answers -> {rss['end_kb'] / 1024:.1f} MiB at {rss['end_at_answered']} "
                     f"({rss['growth_pct']:+.2f} %); under load {rss.get('live_min_after_warmup_kb', 0) / 1024:.1f}"
                     f"..{rss.get('live_max_after_warmup_kb', 0) / 1024:.1f} MiB; server threads max {th['max']}")
    if sd:
        lines.append(f"  SIGTERM with {sd['in_flight_at_sigterm']} in flight (server: draining "
                     f"{sd.get('server_draining_in_flight')}); exit {sd['exit_code']} after "
                     f"{sd['exit_seconds_after_sigterm']} s; after SIGTERM: "
                     + ", ".join(f"{k} {v}" for k, v in sorted(_after_sigterm(r).items()))
                     + f"; call after exit: {sd.get('call_after_exit', '-')[:60]}")
    for failure in report["failures"]:
        lines.append(f"  FAILED: {failure}"[:600])
    return "\n".join(lines)


def _after_sigterm(requests):
    total = Counter()
    for counter in requests["by_phase"].get("after_sigterm", {}).values():
        total.update(counter)
    return total


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000, help="inference requests before the SIGTERM")
    parser.add_argument("--concurrency", type=int, default=64, help="client threads, each with one call in flight")
    parser.add_argument("--server", default=str(REPO / "build" / "server" / "torchbricks-server"),
                        help="the torchbricks-server binary")
    parser.add_argument("--repository", default=str(REPO / "build" / "fixtures"),
                        help=f"a model repository holding {MODEL} and {STORM_MODEL}")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--json", help="write the JSON summary here")
    parser.add_argument("--log", help="keep the server's stderr in this file (default: a temporary one)")
    parser.add_argument("--timeout", type=float, default=1800, help="global bound on the run, seconds")
    parser.add_argument("--call-timeout", type=float, default=60, help="deadline of each call, seconds")
    parser.add_argument("--shutdown-timeout-secs", type=float, default=30, help="the server's flag")
    parser.add_argument("--stream-workers", type=int, default=4,
                        help="client threads that use ModelStreamInfer (at most a quarter of them)")
    parser.add_argument("--stream-length", type=int, default=50, help="messages per stream")
    parser.add_argument("--channels", type=int, default=8, help="gRPC channels (connections) the clients share")
    parser.add_argument("--storm-pause", type=float, default=0.05, help="longest pause between load and unload, s")
    parser.add_argument("--storm-max-cycles", type=int, default=100_000)
    parser.add_argument("--no-storm", action="store_true", help="no load/unload storm")
    parser.add_argument("--no-sigterm", action="store_true", help="stop with SIGKILL instead (no shutdown check)")
    parser.add_argument("--warmup-fraction", type=float, default=0.1)
    parser.add_argument("--sample-secs", type=float, default=0.25)
    parser.add_argument("--settle-secs", type=float, default=1.0,
                        help="RSS measurement: the thread count must be unchanged this long")
    parser.add_argument("--settle-max-secs", type=float, default=10.0, help="... or at most this long")
    parser.add_argument("--max-rss-growth-pct", type=float, default=5.0)
    parser.add_argument("--queue-delay-us", type=int, default=2000,
                        help=f"max_queue_delay_microseconds written into {MODEL}'s config.pbtxt (0: none)")
    parser.add_argument("--copy-server", type=int, choices=(0, 1), default=1,
                        help="run a copy of the binary (a concurrent rebuild cannot replace it)")
    parser.add_argument("--progress", type=float, default=10, help="print progress every N s (0: never)")
    args = parser.parse_args(argv)
    if args.requests < 100 or args.concurrency < 1 or not 0 < args.warmup_fraction < 1:
        parser.error("--requests must be >= 100, --concurrency >= 1, 0 < --warmup-fraction < 1")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    code, report = run(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(summary_text(report), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
