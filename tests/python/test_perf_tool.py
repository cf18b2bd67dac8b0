"""End-to-end tests of `torchbricks-perf` (clients/cpp/perf) against real servers on loopback,
on the example repository: short sweeps write perf_analyzer's CSV with one row per level, the
requests the tool counts per level equal the server's ModelStatistics success delta, the brick
breakdown equals BrickStatistics' delta, system shared memory, request-rate mode, TLS,
--input-data files (image files for a BYTES input), and the documented exit codes. No timing
thresholds: only counts, columns and codes are asserted."""
import base64
import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

# conftest's `server` and `client` on the example repository, client shared memory allowed.
from example_shm_server import server_flags, server_repository  # noqa: F401
from server_process import ServerProcess

REPO = Path(__file__).resolve().parents[2]
PERF = Path(os.environ.get("TORCHBRICKS_PERF", REPO / "build" / "clients" / "cpp" / "perf" / "torchbricks-perf"))
MODEL = "classifier"  # raw_images FP32 [B,3,100,200]; bricks preprocessor, backbone, head, loss
PERF_ANALYZER_COLUMNS = ["Inferences/Second", "Client Send", "Network+Server Send/Recv", "Server Queue",
                         "Server Compute Input", "Server Compute Infer", "Server Compute Output", "Client Recv",
                         "p50 latency", "p90 latency", "p95 latency", "p99 latency"]
# The documented exit codes (clients/cpp/perf/README.md).
OK, FAILED, USAGE, UNREACHABLE = 0, 1, 2, 3
# Short windows: the tests check counts and columns, not performance.
SHORT = ("--measurement-interval", "300", "--max-trials", "3", "--max-threads", "2")

pytestmark = pytest.mark.skipif(not PERF.exists(), reason=f"{PERF} is not built")


def perf(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([str(PERF), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def success_count(client, model=MODEL) -> int:
    return sum(s.inference_stats.success.count for s in client.model_statistics(model).model_stats)


def brick_runs(client, model=MODEL) -> dict:
    return {brick.name: brick.executions for version in client.brick_statistics(model).versions
            for brick in version.bricks}


def read_csv(path: Path):
    rows = list(csv.reader(io.StringIO(path.read_text())))
    return rows[0], rows[1:]


def test_concurrency_sweep_writes_perf_analyzer_csv_and_counts_agree_with_the_server(server, client, tmp_path):
    before = success_count(client)
    done = perf("-u", server.address, "-m", MODEL, "--concurrency-range", "1:3:2", *SHORT,
                "-f", tmp_path / "perf.csv", "--json", tmp_path / "summary.json")
    assert done.returncode == OK, done.stderr
    after = success_count(client)

    header, rows = read_csv(tmp_path / "perf.csv")
    assert header == ["Concurrency", *PERF_ANALYZER_COLUMNS]
    assert [row[0] for row in rows] == ["1", "3"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mode"] == "concurrency" and summary["model"] == MODEL
    levels = summary["levels"]
    assert [level["concurrency"] for level in levels] == [1, 3]
    for row, level in zip(rows, levels):
        values = [float(value) for value in row]  # every field is a number
        assert all(value >= 0 for value in values)
        p50, p90, p95, p99 = values[-4:]
        assert p50 <= p90 <= p95 <= p99
        assert values[1] == pytest.approx(level["client"]["inferences_per_second"], abs=0.01)
        # Every request the tool saw succeed in the level is one the server counted, and no more.
        assert level["level"]["requests"] == level["level"]["server"]["success_count"] > 0
        assert level["level"]["failures"] == 0
        # The reported windows are part of the level.
        assert 0 < level["client"]["requests"] <= level["level"]["requests"]
        assert 1 <= level["reported_windows"] <= min(3, level["windows"]) <= 3
    assert sum(level["level"]["requests"] for level in levels) == after - before
    assert "Request concurrency: 1" in done.stdout and "Request concurrency: 3" in done.stdout


def test_brick_breakdown_agrees_with_brick_statistics_and_follows_requested_outputs(server, client, tmp_path):
    before = brick_runs(client)
    done = perf("-u", server.address, "-m", MODEL, *SHORT, "--brick-csv", tmp_path / "bricks.csv")
    assert done.returncode == OK, done.stderr
    middle = brick_runs(client)
    header, rows = read_csv(tmp_path / "bricks.csv")
    assert header == ["Concurrency", "Version", "Brick", "Runs", "Avg Compute (us)"]
    runs = {row[2]: int(row[3]) for row in rows}
    assert runs == {name: middle[name] - before[name] for name in middle if middle[name] > before[name]}
    assert set(runs) == {"preprocessor", "backbone", "head"}  # the loss is dead in INFERENCE

    # Asking for the backbone's output runs two bricks of three; the breakdown shows it.
    done = perf("-u", server.address, "-m", MODEL, *SHORT, "--output", "embedding",
                "--brick-csv", tmp_path / "embedding.csv")
    assert done.returncode == OK, done.stderr
    after = brick_runs(client)
    _, rows = read_csv(tmp_path / "embedding.csv")
    assert {row[2]: int(row[3]) for row in rows} == {
        name: after[name] - middle[name] for name in ("preprocessor", "backbone")}
    assert after["head"] == middle["head"]
    assert "backbone" in done.stdout and "avg usec" in done.stdout


def test_system_shared_memory(server, client, example_repository, tmp_path):
    before = success_count(client)
    done = perf("-u", server.address, "-m", MODEL, *SHORT, "--shared-memory", "system",
                "--output-shared-memory-size", "4096", "--json", tmp_path / "summary.json")
    assert done.returncode == OK, done.stderr
    level = json.loads((tmp_path / "summary.json").read_text())["levels"][0]
    assert level["level"]["requests"] == success_count(client) - before > 0
    assert "shared memory: system" in done.stdout
    assert len(client.get_system_shared_memory_status().regions) == 0  # the tool unregistered its regions

    # A server that refuses client shared memory refuses the tool's regions: nothing is measured.
    with ServerProcess(example_repository) as plain:
        refused = perf("-u", plain.address, "-m", MODEL, *SHORT, "--shared-memory", "system")
        assert refused.returncode == FAILED
        assert "FAILED_PRECONDITION" in refused.stderr
        with plain.client() as plain_client:
            assert success_count(plain_client) == 0


def test_request_rate_sweep(server, client, tmp_path):
    before = success_count(client)
    done = perf("-u", server.address, "-m", MODEL, "--request-rate-range", "20:40:20", *SHORT,
                "-f", tmp_path / "rate.csv", "--json", "-")
    assert done.returncode == OK, done.stderr
    header, rows = read_csv(tmp_path / "rate.csv")
    assert header == ["Request Rate", *PERF_ANALYZER_COLUMNS]
    assert [row[0] for row in rows] == ["20", "40"]
    summary = json.loads(done.stdout[done.stdout.index("\n{") + 1:])
    assert summary["mode"] == "request_rate"
    assert [level["request_rate"] for level in summary["levels"]] == [20, 40]
    assert sum(level["level"]["requests"] for level in summary["levels"]) == success_count(client) - before


def jpeg(seed: int) -> bytes:
    from PIL import Image
    pixels = (np.random.default_rng(seed).random((48, 64, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_input_data_files(server, client, tmp_path):
    # Numbers for an FP32 input, two request variants sent in turn, batch 2.
    images = np.random.default_rng(5).random((2, 3, 100, 200), dtype=np.float32)
    (tmp_path / "numbers.json").write_text(json.dumps(
        {"data": [{"raw_images": images[0].tolist()},
                  {"raw_images": {"content": images[1].ravel().tolist(), "shape": [3, 100, 200]}}]}))
    before = success_count(client)
    done = perf("-u", server.address, "-m", MODEL, *SHORT, "-b", "2", "--input-data", tmp_path / "numbers.json",
                "--json", tmp_path / "numbers-summary.json")
    assert done.returncode == OK, done.stderr
    level = json.loads((tmp_path / "numbers-summary.json").read_text())["levels"][0]
    assert level["level"]["requests"] == success_count(client) - before
    assert level["level"]["server"]["inference_count"] == 2 * level["level"]["requests"]  # batch 2 each

    # Encoded images for a BYTES input: a file by name, and one inline as base64.
    (tmp_path / "street.jpg").write_bytes(jpeg(1))
    (tmp_path / "images.json").write_text(json.dumps(
        {"data": [{"image": [{"file": "street.jpg"}]}, {"image": [{"b64": base64.b64encode(jpeg(2)).decode()}]}]}))
    done = perf("-u", server.address, "-m", "scene_classifier", *SHORT, "--input-data", tmp_path / "images.json",
                "--output", "logits")
    assert done.returncode == OK, done.stderr

    # Data that does not fit the model is a usage error, found before any load.
    (tmp_path / "short.json").write_text(json.dumps({"data": [{"raw_images": [1.0, 2.0]}]}))
    short = perf("-u", server.address, "-m", MODEL, "--input-data", tmp_path / "short.json")
    assert short.returncode == USAGE and "holds 2 values" in short.stderr


def test_failed_requests_exit_1_and_stop_the_sweep(server, tmp_path):
    done = perf("-u", server.address, "-m", MODEL, "--concurrency-range", "1:2", *SHORT,
                "--output", "no_such_output", "-f", tmp_path / "perf.csv")
    assert done.returncode == FAILED
    assert "INVALID_ARGUMENT" in done.stdout + done.stderr
    _, rows = read_csv(tmp_path / "perf.csv")
    assert [row[0] for row in rows] == ["1"]  # the sweep stopped at the first failing level


def test_usage_errors_exit_2(server, tmp_path):
    for args in (["--concurrency-range", "1"],  # no model
                 ["-m", MODEL, "--concurrency-range", "0:2"],
                 ["-m", MODEL, "--concurrency-range", "1", "--request-rate-range", "5"],
                 ["-m", MODEL, "--no-such-flag", "1"],
                 ["-m", MODEL, "--shared-memory", "cuda"],
                 ["-m", MODEL, "--measurement-interval"],
                 ["-m", MODEL, "-b", "64"],  # beyond the model's max_batch_size
                 ["-m", MODEL, "--shape", "nope:1,2"],
                 ["-m", MODEL, "-f", tmp_path / "no" / "such" / "dir.csv"],
                 ["-m", MODEL, "--input-data", tmp_path / "absent.json"]):
        done = perf("-u", server.address, *args)
        assert done.returncode == USAGE, (args, done.stderr)
        assert done.stderr.startswith("torchbricks-perf: "), args
    helped = perf("--help")
    assert helped.returncode == OK and "exit codes" in helped.stdout and "--concurrency-range" in helped.stdout


def test_unknown_model_and_unreachable_server_exit_3(server):
    unknown = perf("-u", server.address, "-m", "no_such_model")
    assert unknown.returncode == UNREACHABLE and "NOT_FOUND" in unknown.stderr
    unreachable = perf("-u", "127.0.0.1:1", "-m", MODEL, "--request-timeout-ms", "3000")
    assert unreachable.returncode == UNREACHABLE


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_mutual_tls(example_repository, tmp_path):
    from test_server_security import make_ca, make_leaf, tls_channel

    make_ca(tmp_path, "ca")
    make_leaf(tmp_path, "server", "ca", "serverAuth")
    make_leaf(tmp_path, "client", "ca", "clientAuth")
    flags = ("--grpc-use-ssl-mutual", "true", "--grpc-server-cert", tmp_path / "server.pem",
             "--grpc-server-key", tmp_path / "server.key", "--grpc-root-cert", tmp_path / "ca.pem")
    with ServerProcess(example_repository, *flags, channel=lambda a: tls_channel(a, tmp_path, client="client")) as server:
        mutual = ("--ssl-grpc-root-certifications-file", tmp_path / "ca.pem",
                  "--ssl-grpc-certificate-chain-file", tmp_path / "client.pem",
                  "--ssl-grpc-private-key-file", tmp_path / "client.key")
        done = perf("-u", server.address, "-m", MODEL, *SHORT, *mutual, "--json", tmp_path / "tls.json")
        assert done.returncode == OK, done.stderr
        level = json.loads((tmp_path / "tls.json").read_text())["levels"][0]
        assert level["level"]["requests"] == level["level"]["server"]["success_count"] > 0
        without_client_cert = perf("-u", server.address, "-m", MODEL, "--request-timeout-ms", "3000",
                                   "--ssl-grpc-root-certifications-file", tmp_path / "ca.pem")
        assert without_client_cert.returncode == UNREACHABLE
        half_pair = perf("-u", server.address, "-m", MODEL, "--ssl-grpc-root-certifications-file",
                         tmp_path / "ca.pem", "--ssl-grpc-certificate-chain-file", tmp_path / "client.pem")
        assert half_pair.returncode == USAGE
