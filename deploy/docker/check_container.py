"""Checks a running torchbricks-serve container with the project's own clients; called by
deploy/docker/test.sh, which started the container on the example repository.

In order: readiness SERVING over grpc.health.v1 and the image's HEALTHCHECK reported healthy;
the process runs as uid 10001 on a read-only root filesystem; each example model answers its
exporter's reference inputs with the reference outputs; /metrics counts those requests; the
AOTInductor model (classifier_aoti, the classifier compiled) was unpacked into /tmp, a tmpfs
mounted without noexec, and answers a full batch as the TorchScript classifier does; and
`docker stop` (SIGTERM) while clients are calling lets every request that was in flight finish
OK, refuses later ones only with UNAVAILABLE, and the container exits 0 within the grace period.
Prints one line per check; exits 1 at the first that fails.
"""
import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np

from metrics_scrape import Scrape
from torchbricks_export.reference import load_reference
from torchbricks_serve import InferenceClient

USER_ID = 10001
REFERENCE_MODELS = ["classifier", "resnet18_classifier", "classifier_aoti"]
# The example classifier exported with AOTInductor (deploy/docker/test.sh): the same weights as
# its TorchScript twin, a compiled batch range 1..COMPILED_BATCH.
COMPILED_MODEL, TWIN_MODEL, COMPILED_BATCH = "classifier_aoti", "classifier", 8
LOAD_MODEL = "resnet18_classifier"
LOAD_CLIENTS = 8


class CheckFailed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


class Docker:
    def __init__(self, cli: str, host: str, container: str) -> None:
        self.command = [cli, "-H", host]
        self.container = container

    def run(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run([*self.command, *args], capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
        check(result.returncode == 0, f"docker {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def inspect(self, template: str) -> str:
        return self.run("inspect", "--format", template, self.container)


def wait_serving(client: InferenceClient, docker: Docker, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        check(docker.inspect("{{.State.Running}}") == "true",
              f"the container stopped: exit code {docker.inspect('{{.State.ExitCode}}')}")
        try:
            if client.health_check("") == "SERVING":
                return
        except grpc.RpcError:
            pass  # not listening yet
        check(time.monotonic() < deadline, f"not SERVING within {seconds:.0f} s")
        time.sleep(0.5)


def wait_healthy(docker: Docker, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while True:
        state = docker.inspect("{{.State.Health.Status}}")
        if state == "healthy":
            return state
        check(state != "unhealthy", "the image's HEALTHCHECK reports unhealthy: "
              + docker.inspect("{{json .State.Health.Log}}"))
        check(time.monotonic() < deadline, f"HEALTHCHECK still '{state}' after {seconds:.0f} s")
        time.sleep(0.5)


def check_user_and_filesystem(docker: Docker) -> None:
    pid = docker.inspect("{{.State.Pid}}")
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    gids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Gid:"))
    check(uids == [str(USER_ID)] * 4 and gids == [str(USER_ID)] * 4,
          f"server process {pid} runs as uid {uids}, gid {gids}; want {USER_ID}")
    check(docker.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true", "the root filesystem is not read-only")
    print(f"ok: the server (host pid {pid}) runs as uid/gid {USER_ID} on a read-only root filesystem")


def check_reference_outputs(client: InferenceClient, repository: Path) -> None:
    """Each reference model answers its exporter's INFERENCE inputs (one request) with its outputs."""
    for model in REFERENCE_MODELS:
        stage, inputs, outputs = load_reference(repository / model / "1" / "reference" / "INFERENCE.pt")
        result = client.infer(model, {name: tensor.numpy() for name, tensor in inputs.items()},
                              outputs=sorted(outputs), stage=stage)
        for name, expected in outputs.items():
            np.testing.assert_allclose(result.outputs[name], expected.numpy(), rtol=1e-4, atol=1e-5,
                                       err_msg=f"{model} output {name}")
        print(f"ok: {model} answers the reference inputs with the reference outputs ({', '.join(sorted(outputs))})")


def check_metrics(address: str) -> None:
    """/metrics counts the one reference request per model."""
    scrape = Scrape.fetch(address)
    for model in REFERENCE_MODELS:
        served = scrape.total("torchbricks_requests_total", model=model, code="OK")
        check(served == 1, f"/metrics counts {served} OK requests for {model}, want 1")
    check(scrape.total("torchbricks_model_ready", model=LOAD_MODEL) == 1, f"{LOAD_MODEL} not ready in /metrics")
    print(f"ok: /metrics on {address} scraped; it counts the reference requests")


def check_compiled_model(client: InferenceClient, docker: Docker, repository: Path) -> None:
    """COMPILED_MODEL's bricks are AOTInductor packages, which the loader unpacked into the
    container's /tmp (a tmpfs that allows executing), and a full batch of random rows gets the
    answers of its TorchScript twin."""
    packages = sorted(path.name for path in (repository / COMPILED_MODEL / "1" / "modules").glob("*.pt2"))
    check(packages, f"{COMPILED_MODEL} holds no AOTInductor package (.pt2)")
    pid = docker.inspect("{{.State.Pid}}")
    mounts = [line.split() for line in Path(f"/proc/{pid}/mounts").read_text().splitlines()]
    tmp = [fields for fields in mounts if fields[1] == "/tmp"]
    check(tmp and tmp[-1][2] == "tmpfs", f"/tmp in the container is not a tmpfs: {tmp}")
    options = tmp[-1][3].split(",")
    check("rw" in options and "noexec" not in options, f"/tmp is mounted {tmp[-1][3]}: the loader needs rw, exec")
    unpacked = [path for path in Path(f"/proc/{pid}/root/tmp").iterdir() if path.is_dir()]
    check(len(unpacked) >= len(packages),
          f"{len(unpacked)} folders in the container's /tmp for {len(packages)} packages ({', '.join(packages)})")
    rows = np.random.default_rng(0).random((COMPILED_BATCH, 3, 100, 200), dtype=np.float32)
    outputs = ["logits", "softmaxed"]
    compiled = client.infer(COMPILED_MODEL, {"raw_images": rows}, outputs=outputs)
    scripted = client.infer(TWIN_MODEL, {"raw_images": rows}, outputs=outputs)
    for name in outputs:
        np.testing.assert_allclose(compiled.outputs[name], scripted.outputs[name], rtol=1e-4, atol=1e-5,
                                   err_msg=f"{COMPILED_MODEL} output {name} against {TWIN_MODEL}")
    print(f"ok: {COMPILED_MODEL} ({', '.join(packages)}) unpacked into /tmp ({tmp[-1][3]}) and answers "
          f"{COMPILED_BATCH} rows as {TWIN_MODEL} does")


class Load:
    """LOAD_CLIENTS callers, each sending until refused or out of time; records
    (start, end, outcome) per request."""

    def __init__(self, address: str, seconds: float) -> None:
        self.address = address
        self.deadline = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.records = []
        self.threads = [threading.Thread(target=self._call, args=(i,), daemon=True) for i in range(LOAD_CLIENTS)]

    def _call(self, index: int) -> None:
        rows = np.random.default_rng(index).random((16, 3, 32, 32), dtype=np.float32)
        with InferenceClient(self.address, timeout=60) as client:
            while time.monotonic() < self.deadline:
                start = time.monotonic()
                try:
                    result = client.infer(LOAD_MODEL, {"raw": rows}, outputs=["probabilities"])
                    outcome = "OK" if result.outputs["probabilities"].shape == (16, 10) else "WRONG_SHAPE"
                except grpc.RpcError as error:
                    outcome = error.code().name
                with self.lock:
                    self.records.append((start, time.monotonic(), outcome))
                if outcome != "OK":
                    return  # refused: a real client goes to another replica

    def count(self) -> int:
        with self.lock:
            return len(self.records)


def check_drain(docker: Docker, address: str, drain_secs: float) -> None:
    load = Load(address, seconds=drain_secs + 30)
    for thread in load.threads:
        thread.start()
    deadline = time.monotonic() + 60
    while load.count() < 4 * LOAD_CLIENTS:
        check(time.monotonic() < deadline, "the load made no progress")
        time.sleep(0.05)
    stop_sent = time.monotonic()
    docker.run("stop", "--time", str(int(drain_secs) + 10), docker.container, timeout=drain_secs + 60)
    stop_took = time.monotonic() - stop_sent
    for thread in load.threads:
        thread.join(timeout=90)
    exit_code = docker.inspect("{{.State.ExitCode}}")
    check(exit_code == "0", f"the container exited {exit_code} after docker stop (137 = killed after the grace)")
    check(docker.inspect("{{.State.OOMKilled}}") == "false", "the container was OOM-killed")
    in_flight = [outcome for start, end, outcome in load.records if start < stop_sent < end]
    check(in_flight, "no request was in flight when docker stop was sent")
    check(all(outcome == "OK" for outcome in in_flight),
          f"requests in flight at docker stop did not all finish OK: {sorted(set(in_flight))}")
    others = {outcome for _, _, outcome in load.records} - {"OK", "UNAVAILABLE"}
    check(not others, f"requests answered with {sorted(others)} (only OK or UNAVAILABLE are right)")
    print(f"ok: docker stop drained {len(in_flight)} in-flight requests (all OK; {len(load.records)} requests "
          f"in all) and the container exited 0 after {stop_took:.1f} s (grace {int(drain_secs) + 10} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docker", required=True, help="docker client binary")
    parser.add_argument("--docker-host", required=True, help="the daemon's address (unix://...)")
    parser.add_argument("--container", required=True)
    parser.add_argument("--grpc", required=True, help="HOST:PORT of the server's gRPC port")
    parser.add_argument("--metrics", required=True, help="HOST:PORT of its /metrics")
    parser.add_argument("--repository", required=True, type=Path, help="the repository mounted into it")
    parser.add_argument("--drain-secs", type=float, default=30, help="its --shutdown-timeout-secs")
    args = parser.parse_args()
    docker = Docker(args.docker, args.docker_host, args.container)
    try:
        with InferenceClient(args.grpc, timeout=30) as client:
            wait_serving(client, docker, seconds=180)
            print(f"ok: grpc.health.v1 readiness SERVING on {args.grpc}")
            print(f"ok: HEALTHCHECK (torchbricks-health-probe) reports {wait_healthy(docker, seconds=60)}")
            check_user_and_filesystem(docker)
            check_reference_outputs(client, args.repository)
            check_metrics(args.metrics)  # before any other request
            check_compiled_model(client, docker, args.repository)
        check_drain(docker, args.grpc, args.drain_secs)
    except (CheckFailed, AssertionError, grpc.RpcError, OSError, subprocess.TimeoutExpired) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
