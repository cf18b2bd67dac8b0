"""`ServerProcess`: runs the real torchbricks-server binary for a test and stops it again.

    with ServerProcess(repository, "--model-control-mode", "explicit") as server:
        with server.client() as client:
            ...
        assert server.stop() == 0

The binary is `$TORCHBRICKS_SERVER`, by default `<repo>/build/server/torchbricks-server`. It
listens on 127.0.0.1 on a free port (`--grpc-port 0`), which is read from the line it prints
on stdout; start-up waits (bounded) until ServerReady answers true. stderr goes to a log file
whose text `log()` returns, and failures quote its tail.

Metrics: `--metrics-port 0` is passed unless the flags name `--metrics-port` themselves, and
start-up also waits (bounded) for the line `serving metrics on ADDR:PORT`, whose port
`metrics_port` and `metrics_address` give; with `--allow-metrics false` among the flags no
such line is awaited and `metrics_port` stays 0. `stdout_lines()` returns what it printed.
"""
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import grpc

from torchbricks_serve.client import InferenceClient
from torchbricks_serve.generated import grpc_service_pb2 as pb

REPO = Path(__file__).resolve().parents[2]
SERVER_BINARY = Path(os.environ.get("TORCHBRICKS_SERVER", REPO / "build" / "server" / "torchbricks-server"))
_PORT_LINE = re.compile(r"serving gRPC on (\S+):(\d+)")
_METRICS_LINE = re.compile(r"serving metrics on (\S+):(\d+)")
_WILDCARD_HOSTS = {"0.0.0.0", "::", "[::]", ""}


class ServerError(RuntimeError):
    """The server did not start, did not become ready, or did not stop."""


class ServerProcess:
    """One server process on `repository` with `flags`; a context manager (stop() on exit)."""

    def __init__(self, repository, *flags: str, ready_timeout: float = 60, log_dir: Optional[Path] = None,
                 binary: Optional[Path] = None, channel: Optional[Callable[[str], grpc.Channel]] = None,
                 ready_metadata: Sequence[Tuple[str, str]] = (), command_prefix: Sequence[str] = ()) -> None:
        """`channel` makes the channel readiness is probed on (default: insecure; a TLS
        server needs its credentials); `ready_metadata` goes with the probe (a restricted
        health group needs its header); `command_prefix` runs the server through another
        command (e.g. `prlimit --nofile=256:256`)."""
        self.command_prefix = [str(part) for part in command_prefix]
        self.repository = Path(repository)
        self._channel = channel or grpc.insecure_channel
        self._ready_metadata = tuple(ready_metadata)
        self.flags = [str(flag) for flag in flags]
        self.ready_timeout = ready_timeout
        self.binary = Path(binary) if binary else SERVER_BINARY
        self.log_path = Path(tempfile.mkstemp(prefix="torchbricks-server-", suffix=".log",
                                              dir=str(log_dir) if log_dir else None)[1])
        self.process: Optional[subprocess.Popen] = None
        self.port = 0
        self.metrics_host = ""
        self.metrics_port = 0
        self.returncode: Optional[int] = None
        self._stdout_lines: List[str] = []
        self._port_seen = threading.Event()
        self._metrics_seen = threading.Event()
        self._reader: Optional[threading.Thread] = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_enabled(self) -> bool:
        """False when the flags turn metrics off: `--allow-metrics` with any value but `true`."""
        flags = " ".join(self.flags).replace("=", " ").split()
        return not any(flag == "--allow-metrics" and value != "true" for flag, value in zip(flags, flags[1:]))

    @property
    def metrics_address(self) -> str:
        """host:port of the metrics endpoint (127.0.0.1 when the server listens on every address)."""
        host = "127.0.0.1" if self.metrics_host in _WILDCARD_HOSTS else self.metrics_host
        return f"{host}:{self.metrics_port}"

    def stdout_lines(self) -> List[str]:
        return list(self._stdout_lines)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def client(self, timeout: float = 30) -> InferenceClient:
        return InferenceClient(self.address, timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _fail(self, message: str) -> ServerError:
        tail = "\n".join(self.log().splitlines()[-30:])
        return ServerError(f"{message}\n--- server stderr ({self.log_path}) ---\n{tail}")

    def start(self) -> "ServerProcess":
        if self.process is not None and self.process.poll() is None:
            # A second Popen would orphan the first process: nothing would stop it by PID.
            raise ServerError(f"this server is already running (pid {self.process.pid}); stop() it first")
        if not self.binary.is_file():
            raise ServerError(f"the server is not built: {self.binary} (set TORCHBRICKS_SERVER or build the project)")
        command = self.command_prefix + [str(self.binary), "--model-repository", str(self.repository), "--grpc-port", "0",
                   "--grpc-address", "127.0.0.1"]
        if not any(flag == "--metrics-port" or flag.startswith("--metrics-port=") for flag in self.flags):
            command += ["--metrics-port", "0"]
        if not any(flag.startswith("--self-configuration-seconds") for flag in self.flags):
            # Off unless a test names it: models keep the layout their config and the defaults
            # give, and load without measuring (test_self_configuration.py turns it on).
            command += ["--self-configuration-seconds", "0"]
        command += self.flags
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:  # drained until the process closes it
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self._stdout_lines.append(line)
            match = _PORT_LINE.search(line)
            if match and not self._port_seen.is_set():
                self.port = int(match.group(2))
                self._port_seen.set()
            match = _METRICS_LINE.search(line)
            if match and not self._metrics_seen.is_set():
                self.metrics_host, self.metrics_port = match.group(1), int(match.group(2))
                self._metrics_seen.set()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout
        while not self._port_seen.wait(0.05):
            if self.process.poll() is not None:
                raise self._fail(f"the server exited with {self.process.returncode} before listening")
            if time.monotonic() > deadline:
                raise self._fail(f"no 'serving gRPC on' line within {self.ready_timeout} s")
        while self.metrics_enabled and not self._metrics_seen.wait(0.05):
            if self.process.poll() is not None:
                raise self._fail(f"the server exited with {self.process.returncode} before serving metrics")
            if time.monotonic() > deadline:
                raise self._fail(f"no 'serving metrics on' line within {self.ready_timeout} s")
        with self._channel(self.address) as channel:
            ready = channel.unary_unary("/inference.GRPCInferenceService/ServerReady",
                                        request_serializer=pb.ServerReadyRequest.SerializeToString,
                                        response_deserializer=pb.ServerReadyResponse.FromString)
            while True:
                try:
                    if ready(pb.ServerReadyRequest(), timeout=2, metadata=self._ready_metadata).ready:
                        return
                except grpc.RpcError:
                    pass
                if self.process.poll() is not None:
                    raise self._fail(f"the server exited with {self.process.returncode} before it was ready")
                if time.monotonic() > deadline:
                    raise self._fail(f"ServerReady was not true within {self.ready_timeout} s")
                time.sleep(0.05)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60) -> int:
        """Waits for the process to exit and returns its exit code; ServerError on timeout."""
        assert self.process is not None
        try:
            self.returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise self._fail(f"the server did not exit within {timeout} s") from None
        if self._reader is not None:
            self._reader.join(timeout=5)  # stdout is closed: the reader has its last lines
        return self.returncode

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then waits (bounded) for the exit; returns the exit code (0 when graceful)."""
        if self.process is None:
            raise ServerError("the server was never started")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.stop()
            except ServerError:
                pass
