"""The autoscaling signal end to end: a real Prometheus scrapes a real server under load, and the
prometheus-adapter rule of deploy/kubernetes/prometheus-adapter/config.yaml, its seriesQuery and
its metricsQuery filled in as the adapter fills them for a Pods metric, returns the average
queue time per request that ModelStatistics reports. The recording rule
torchbricks:queue_seconds_per_request:rate1m (deploy/prometheus/rules.yml) evaluated at the
same instant agrees with it.

The scrape gets the `namespace` and `pod` labels that prometheus-operator's ServiceMonitor
gives it in a cluster, from the static target's labels here."""
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from server_process import ServerProcess
from torchbricks_serve import InferenceClient

REPO = Path(__file__).resolve().parents[2]
ADAPTER_CONFIG = REPO / "deploy" / "kubernetes" / "prometheus-adapter" / "config.yaml"
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
HPA = REPO / "deploy" / "kubernetes" / "base" / "hpa.yaml"
MODEL = "resnet18_classifier"
NAMESPACE, POD = "serving", "torchbricks-serve-0"
CLIENTS, REQUESTS_PER_CLIENT = 8, 15

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Prometheus:
    """A prometheus process scraping one target every second; stopped by PID."""

    def __init__(self, tmp_path: Path, target: str) -> None:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{json.dumps(str(RULES))}]\n"
            "scrape_configs:\n"
            "  - job_name: torchbricks\n"
            f"    static_configs: [{{targets: [\"{target}\"], labels: {{namespace: {NAMESPACE}, pod: {POD}}}}}]\n",
            encoding="utf-8")
        self.address = f"127.0.0.1:{free_port()}"
        self.log = tmp_path / "prometheus.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address={self.address}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path)

    def api(self, path: str, **params) -> list:
        assert self.process.poll() is None, self.log.read_text(errors="replace")[-3000:]
        url = f"http://{self.address}/api/v1/{path}?" + urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                answer = json.loads(response.read().decode("utf-8"))
        except OSError:  # not listening yet
            return []
        assert answer["status"] == "success", answer
        return answer["data"]["result"] if isinstance(answer["data"], dict) else answer["data"]

    def query(self, promql: str, at: float = None) -> list:
        return self.api("query", query=promql, **({"time": repr(at)} if at is not None else {}))

    def wait_for(self, promql: str, what: str, seconds: float = 60) -> list:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.3)
        pytest.fail(f"Prometheus never showed {what} ({promql})\n" + self.log.read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def adapter_rule() -> dict:
    rules = yaml.safe_load(ADAPTER_CONFIG.read_text())["rules"]
    metric = yaml.safe_load(HPA.read_text())["spec"]["metrics"][0]["pods"]["metric"]["name"]
    matching = [rule for rule in rules if rule["name"]["as"] == metric]
    assert len(matching) == 1, f"one adapter rule must serve the HPA's metric {metric}"
    return matching[0]


def fill(template: str, series: str, label_matchers: str, group_by: str) -> str:
    """The adapter's Go template for metricsQuery: <<.Series>>, <<.LabelMatchers>>, <<.GroupBy>>."""
    filled = (template.replace("<<.Series>>", series).replace("<<.LabelMatchers>>", label_matchers)
              .replace("<<.GroupBy>>", group_by))
    assert "<<" not in filled, f"unfilled template field in {filled}"
    return filled


def recording_rule_expression(record: str) -> str:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("record") == record:
                return rule["expr"]
    raise AssertionError(f"no recording rule {record} in {RULES}")


def run_load(address: str) -> None:
    errors = []

    def call(index: int) -> None:
        rows = np.random.default_rng(index).random((4, 3, 32, 32), dtype=np.float32)
        try:
            with InferenceClient(address, timeout=60) as client:
                for _ in range(REQUESTS_PER_CLIENT):
                    client.infer(MODEL, {"raw": rows}, outputs=["probabilities"])
        except Exception as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors


@pytest.fixture(scope="module")
def example_repository(tmp_path_factory):
    out = tmp_path_factory.mktemp("repository")
    result = subprocess.run([sys.executable, str(REPO / "examples" / "build_example_repository.py"), str(out)],
                            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_adapter_query_returns_model_statistics_queue_time(example_repository, tmp_path):
    rule = adapter_rule()
    series_name = re.sub(r"\{.*", "", rule["seriesQuery"].strip("'\" "))
    assert re.fullmatch(rule["name"]["matches"], series_name)
    with ServerProcess(example_repository) as server:
        prometheus = Prometheus(tmp_path, server.metrics_address)
        try:
            # The adapter discovers series with seriesQuery and maps their labels to pods.
            discovered = prometheus.wait_for(f'count({rule["seriesQuery"]})', "the adapter's series")
            assert int(discovered[0]["value"][1]) > 0
            for label, override in rule["resources"]["overrides"].items():
                assert override["resource"] in ("namespace", "pod") and label in ("namespace", "pod")
            # A scrape from before the load: every counter at zero.
            before = prometheus.wait_for(
                f'timestamp(sum(torchbricks_queue_duration_seconds_count{{pod="{POD}"}}) == 0)', "a scrape before load")
            zero_at = float(before[0]["value"][1])

            run_load(server.address)
            with server.client() as client:
                stats = client.model_statistics().model_stats
            queue_count = sum(s.inference_stats.queue.count for s in stats)
            queue_ns = sum(s.inference_stats.queue.ns for s in stats)
            assert queue_count == CLIENTS * REQUESTS_PER_CLIENT
            expected = queue_ns / 1e9 / queue_count
            assert expected > 0

            # The first scrape that holds the final counters.
            after = prometheus.wait_for(
                f'timestamp(sum(torchbricks_queue_duration_seconds_count{{pod="{POD}"}}) == {queue_count})',
                "the scrape after the load")
            at = float(after[0]["value"][1])
            assert at - zero_at < 59, ("the load outlasted the rule's 1m window, so the rates would be "
                                       f"extrapolated from a window without a zero sample ({at - zero_at:.0f} s)")

            # The metricsQuery as the adapter sends it for the pods of one namespace.
            query = fill(rule["metricsQuery"], series_name, f'namespace="{NAMESPACE}",pod=~"{POD}"', "pod")
            result = prometheus.query(query, at=at)
            assert [r["metric"] for r in result] == [{"pod": POD}], result
            assert float(result[0]["value"][1]) == pytest.approx(expected, rel=1e-4), (query, stats)

            # The recording rule's expression at the same instant: the same number, by model.
            recorded = prometheus.query(recording_rule_expression("torchbricks:queue_seconds_per_request:rate1m"),
                                        at=at)
            by_model = {r["metric"]["model"]: float(r["value"][1]) for r in recorded}
            assert by_model[MODEL] == pytest.approx(expected, rel=1e-4), by_model
        finally:
            prometheus.stop()
        assert server.stop() == 0
