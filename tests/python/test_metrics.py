"""Prometheus metrics of the running server (GET /metrics on --metrics-port, text format 0.0.4):
every counter and histogram moves by exactly what a known sequence of requests implies,
ModelStatistics and BrickStatistics read the same counters, `promtool check metrics` accepts a
live scrape, a real Prometheus scrapes the server and evaluates deploy/prometheus/rules.yml,
the deploy files pass promtool, and `--allow-metrics false` turns the endpoint off."""
import json
import math
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import grpc
import numpy as np
import pytest

from metrics_scrape import Scrape, histogram_buckets
from server_process import REPO, ServerProcess
from torchbricks_serve import build_infer_request

MODEL = "readme_dummy"
UNCHECKED_MODEL = "unchecked_dummy"  # conftest.UNCHECKED_MODEL: a bad tensor reaches libtorch
NOT_READY_MODEL = "invalid_corrupt_module"  # known to the repository, failed to load
DEPLOY = REPO / "deploy" / "prometheus"
SERVING = {"model": MODEL, "version": "1"}
HISTOGRAMS = ["torchbricks_request_duration_seconds", "torchbricks_queue_duration_seconds",
              "torchbricks_compute_duration_seconds", "torchbricks_batch_size"]
TYPES = {
    "torchbricks_requests_total": "counter", "torchbricks_requests_refused_total": "counter",
    **{name: "histogram" for name in HISTOGRAMS},
    "torchbricks_requests_in_flight": "gauge", "torchbricks_queued_requests": "gauge",
    "torchbricks_model_ready": "gauge", "torchbricks_model_load_duration_seconds": "gauge",
    "torchbricks_model_instances": "gauge",
    "torchbricks_model_load_failures_total": "counter", "torchbricks_brick_executions_total": "counter",
    "torchbricks_brick_compute_seconds_total": "counter", "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge", "process_cpu_seconds_total": "counter",
    "process_start_time_seconds": "gauge",
}

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")


def images(batch=1, seed=0, shape=(3, 100, 200)):
    return np.random.default_rng(seed).random((batch, *shape), dtype=np.float32)


def scrape(server) -> Scrape:
    return Scrape.fetch(server.metrics_address)


def moved(before: Scrape, after: Scrape, name: str, **labels) -> float:
    return after.total(name, **labels) - before.total(name, **labels)


def expect_code(code, call, *args, **kwargs):
    with pytest.raises(grpc.RpcError) as error:
        call(*args, **kwargs)
    assert error.value.code() == code, error.value.details()


def test_exposition_format_and_families(server, client):
    client.infer(MODEL, {"raw_images": images()})
    now = time.time()
    metrics = scrape(server)
    assert metrics.content_type.startswith("text/plain"), metrics.content_type
    assert "version=0.0.4" in metrics.content_type, metrics.content_type
    for family, kind in TYPES.items():
        assert metrics.type_of(family) == kind, (family, metrics.type_of(family))
        assert family in metrics.helps or family.removesuffix("_total") in metrics.helps, family
    for name in HISTOGRAMS:  # cumulative buckets ending in +Inf == _count, for every series
        series = list(metrics.series(name + "_count"))
        assert series, name
        for labels, count in series:
            buckets = histogram_buckets(metrics, name, **labels)
            assert buckets[-1] == (math.inf, count), (name, labels)
            assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), (name, labels, buckets)
            assert metrics.value(name + "_sum", **labels) >= 0, (name, labels)
    assert metrics.value("process_resident_memory_bytes") > 1 << 20
    assert metrics.value("process_virtual_memory_bytes") >= metrics.value("process_resident_memory_bytes")
    assert metrics.value("process_cpu_seconds_total") > 0
    assert now - 3600 < metrics.value("process_start_time_seconds") <= now + 1
    assert metrics.value("torchbricks_requests_in_flight") == 0
    assert metrics.value("torchbricks_queued_requests", **SERVING) == 0


def test_request_outcomes_move_counters_exactly(server, client):
    before = scrape(server)
    rows = [1, 2, 1, 3, 1]
    for seed, batch in enumerate(rows):  # 5 OK
        client.infer(MODEL, {"raw_images": images(batch, seed)}, outputs=["logits"])
    for _ in range(2):  # 2 INVALID_ARGUMENT (wrong shape): reach the version, never queued
        expect_code(grpc.StatusCode.INVALID_ARGUMENT, client.infer, MODEL, {"raw_images": images(1)[:, :2]})
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, client.infer, MODEL, {"raw_images": images()}, stage="BOGUS")
    client.infer(MODEL, {"raw_images": images(1, seed=9)}, stage="EXPORT")
    expect_code(grpc.StatusCode.NOT_FOUND, client.infer, "no_such_model", {"raw_images": images()})
    expect_code(grpc.StatusCode.NOT_FOUND, client.infer, MODEL, {"raw_images": images()}, version="9")
    expect_code(grpc.StatusCode.UNAVAILABLE, client.infer, NOT_READY_MODEL, {"raw_images": images()})
    stream = [build_infer_request(MODEL, {"raw_images": images(1, seed=20)}),  # OK
              build_infer_request(MODEL, {"wrong_name": images()}),  # INVALID_ARGUMENT
              build_infer_request("no_such_model", {"raw_images": images()}),  # refused NOT_FOUND
              build_infer_request(MODEL, {"raw_images": images(2, seed=21)})]  # OK
    assert [bool(a.error_message) for a in client.stream_infer(stream)] == [False, True, True, False]
    after = scrape(server)

    inference = dict(SERVING, stage="INFERENCE")
    export = dict(SERVING, stage="EXPORT")
    bad_stage = dict(SERVING, stage="")
    requests = "torchbricks_requests_total"
    assert moved(before, after, requests, code="OK", **inference) == 5 + 2
    assert moved(before, after, requests, code="INVALID_ARGUMENT", **inference) == 2 + 1
    assert moved(before, after, requests, code="INVALID_ARGUMENT", **bad_stage) == 1
    assert moved(before, after, requests, code="OK", **export) == 1
    assert moved(before, after, requests) == 12, "requests_total moved for another model, stage or code"
    assert moved(before, after, "torchbricks_requests_refused_total", code="NOT_FOUND") == 3
    assert moved(before, after, "torchbricks_requests_refused_total", code="UNAVAILABLE") == 1
    assert moved(before, after, "torchbricks_requests_refused_total") == 4

    for labels, reached, ran in [(inference, 10, 7), (export, 1, 1), (bad_stage, 1, 0)]:
        assert moved(before, after, "torchbricks_request_duration_seconds_count", **labels) == reached, labels
        assert moved(before, after, "torchbricks_queue_duration_seconds_count", **labels) == ran, labels
        assert moved(before, after, "torchbricks_compute_duration_seconds_count", **labels) == ran, labels
    # Sequential requests never share a batch: one execution per OK request, rows as sent.
    assert moved(before, after, "torchbricks_batch_size_count", **SERVING) == 5 + 1 + 2
    assert moved(before, after, "torchbricks_batch_size_sum", **SERVING) == sum(rows) + 1 + 1 + 2
    # Each OK request ran alone: its queue time and batch run lie inside its request time.
    request_seconds = moved(before, after, "torchbricks_request_duration_seconds_sum", **inference)
    queue_seconds = moved(before, after, "torchbricks_queue_duration_seconds_sum", **inference)
    compute_seconds = moved(before, after, "torchbricks_compute_duration_seconds_sum", **inference)
    assert compute_seconds > 0 and queue_seconds >= 0
    assert request_seconds + 1e-3 >= queue_seconds + compute_seconds
    assert after.value("torchbricks_requests_in_flight") == 0
    assert after.value("torchbricks_queued_requests", **SERVING) == 0


def test_brick_failure_is_internal(server, client):
    before = scrape(server)
    client.infer(UNCHECKED_MODEL, {"raw_images": images(1, shape=(3, 8, 8))}, outputs=["logits"])
    expect_code(grpc.StatusCode.INTERNAL, client.infer, UNCHECKED_MODEL, {"raw_images": images(1, shape=(5, 8, 8))})
    after = scrape(server)
    labels = {"model": UNCHECKED_MODEL, "version": "1", "stage": "INFERENCE"}
    assert moved(before, after, "torchbricks_requests_total", code="OK", **labels) == 1
    assert moved(before, after, "torchbricks_requests_total", code="INTERNAL", **labels) == 1
    assert moved(before, after, "torchbricks_request_duration_seconds_count", **labels) == 2


def test_model_statistics_agree_with_metrics(server, client):
    client.infer(MODEL, {"raw_images": images(4, seed=3)})
    everything = client.model_statistics().model_stats
    metrics = scrape(server)  # nothing runs in between: both read the same counters
    assert {(s.name, s.version) for s in everything} >= {(MODEL, "1"), (UNCHECKED_MODEL, "1")}
    for stats in everything:
        labels = {"model": stats.name, "version": stats.version}
        assert stats.inference_stats.success.count == metrics.total("torchbricks_requests_total", code="OK",
                                                                    **labels), labels
        assert stats.execution_count == metrics.total("torchbricks_batch_size_count", **labels), labels
        assert stats.inference_count == metrics.total("torchbricks_batch_size_sum", **labels), labels


def test_brick_metrics_follow_pruning(server, client):
    def bricks(metrics, name):
        return {brick: metrics.total(name, brick=brick, **SERVING) for brick in ("preprocessor", "backbone", "head")}

    before = scrape(server)
    client.infer(MODEL, {"raw_images": images(2, seed=5)}, outputs=["embedding"])
    after = scrape(server)
    executions = {brick: after_n - bricks(before, "torchbricks_brick_executions_total")[brick]
                  for brick, after_n in bricks(after, "torchbricks_brick_executions_total").items()}
    assert executions == {"preprocessor": 1, "backbone": 1, "head": 0}
    assert moved(before, after, "torchbricks_brick_compute_seconds_total", brick="backbone", **SERVING) > 0
    assert moved(before, after, "torchbricks_brick_compute_seconds_total", brick="head", **SERVING) == 0

    (version,) = client.brick_statistics(MODEL).versions
    for brick in version.bricks:  # BrickStatistics reads the same counters
        assert after.total("torchbricks_brick_executions_total", brick=brick.name, **SERVING) == brick.executions
        assert after.total("torchbricks_brick_compute_seconds_total", brick=brick.name, **SERVING) == \
            pytest.approx(brick.compute_ns / 1e9, rel=1e-9, abs=1e-6)


def test_model_gauges(server):
    metrics = scrape(server)
    assert metrics.value("torchbricks_model_ready", **SERVING) == 1
    assert metrics.value("torchbricks_model_load_duration_seconds", **SERVING) > 0
    not_ready = [value for _, value in metrics.series("torchbricks_model_ready", model=NOT_READY_MODEL)]
    assert not_ready and set(not_ready) == {0}, not_ready
    assert metrics.total("torchbricks_model_load_failures_total", model=NOT_READY_MODEL) >= 1
    assert metrics.total("torchbricks_model_load_failures_total", model=MODEL) == 0


@needs_promtool
def test_promtool_accepts_a_live_scrape(server, client):
    client.infer(MODEL, {"raw_images": images()})
    text = scrape(server).text
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize("command", [["check", "config", "prometheus.yml"], ["check", "rules", "rules.yml"],
                                     ["test", "rules", "rules_test.yml"]], ids=lambda c: "-".join(c[:2]))
def test_deploy_files_pass_promtool(command):
    result = subprocess.run(["promtool", *command], cwd=DEPLOY, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def query(address: str, promql: str) -> list:
    url = f"http://{address}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            answer = json.loads(response.read().decode("utf-8"))
    except OSError:  # not listening yet
        return []
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed")
def test_prometheus_scrapes_the_server(server, client, tmp_path):
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{json.dumps(str(DEPLOY / 'rules.yml'))}]\n"
        "scrape_configs:\n"
        "  - job_name: torchbricks\n"
        f"    static_configs: [{{targets: [\"{server.metrics_address}\"]}}]\n", encoding="utf-8")
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path / "prometheus.log"
    with open(log, "wb") as out:
        command = ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                   f"--web.listen-address={address}"]
        prometheus = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      cwd=tmp_path)
    wanted = {"up": f'up{{job="torchbricks"}} == 1',
              "requests": f'torchbricks_requests_total{{model="{MODEL}"}}',
              "queue rule": f'torchbricks:queue_seconds_per_request:rate1m{{model="{MODEL}"}} >= 0'}
    found = {}
    try:
        deadline = time.monotonic() + 60
        while set(found) != set(wanted) and time.monotonic() < deadline:
            assert prometheus.poll() is None, log.read_text(errors="replace")[-3000:]
            client.infer(MODEL, {"raw_images": images()})  # keeps the 1m rates above zero
            for key, promql in wanted.items():
                result = query(address, promql)
                if result and key not in found:
                    found[key] = result
            time.sleep(0.5)
    finally:
        prometheus.send_signal(signal.SIGTERM)
        try:
            prometheus.wait(timeout=30)
        except subprocess.TimeoutExpired:
            prometheus.kill()
            prometheus.wait(timeout=30)
    assert set(found) == set(wanted), (found, log.read_text(errors="replace")[-3000:])
    assert {r["metric"]["model"] for r in found["requests"]} == {MODEL}
    assert {r["metric"]["code"] for r in found["requests"]} >= {"OK"}
    assert float(found["queue rule"][0]["value"][1]) >= 0


@pytest.fixture(scope="module")
def small_repository(fixture_repository, tmp_path_factory):
    """Only readme_dummy, for the servers this module starts itself."""
    repository = tmp_path_factory.mktemp("metrics-repository")
    shutil.copytree(fixture_repository / MODEL, repository / MODEL)
    return repository


def test_metrics_disabled(small_repository):
    with ServerProcess(small_repository, "--allow-metrics", "false") as server:
        assert server.metrics_port == 0
        with server.client() as client:
            assert client.infer(MODEL, {"raw_images": images()}).outputs["logits"].shape == (1, 3)
            (stats,) = client.model_statistics(MODEL).model_stats  # counted without metrics too
            assert (stats.inference_stats.success.count, stats.execution_count, stats.inference_count) == (1, 1, 1)
        assert server.stop() == 0
    lines = server.stdout_lines()
    assert any("serving gRPC on" in line for line in lines), lines
    assert not any("serving metrics" in line for line in lines), lines


def test_fixed_metrics_port(small_repository):
    port = free_port()
    with ServerProcess(small_repository, "--metrics-port", str(port)) as server:
        assert server.metrics_port == port
        assert scrape(server).value("torchbricks_model_ready", **SERVING) == 1
        assert server.stop() == 0
