"""Triton's own perf_analyzer (the PyPI wheel pinned in requirements/perf_analyzer.txt, run
unmodified by scripts/perf_analyzer.sh; scripts/setup.sh installs it) against a real server on
the example repository over gRPC: a concurrency sweep with perf_analyzer's CSV, --input-data in
perf_analyzer's JSON format with expected outputs it checks byte for byte, and system shared
memory. Short windows (-p 300 ms) and a stability band that any three windows meet (-s 1000):
these runs check that perf_analyzer works against the server and that the figures it reads from
the server are plausible, not performance (bench/perf_analyzer_vs_perf.sh does that)."""
import base64
import csv
import io
import json
import re
import subprocess
import threading
from pathlib import Path

import numpy as np
from PIL import Image
from torchbricks_serve.shared_memory import serialize_array

# conftest's `server` and `client` on the example repository, client shared memory allowed.
from example_shm_server import server_flags, server_repository  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
PERF_ANALYZER = REPO / "scripts" / "perf_analyzer.sh"
MODEL = "classifier"  # raw_images FP32 [B,3,100,200] -> logits, softmaxed FP32 [B,3]
SCENE = "scene_classifier"  # image BYTES, one JPEG or PNG file per batch item
COLUMNS = ["Concurrency", "Inferences/Second", "Client Send", "Network+Server Send/Recv", "Server Queue",
           "Server Compute Input", "Server Compute Infer", "Server Compute Output", "Client Recv",
           "p50 latency", "p90 latency", "p95 latency", "p99 latency"]
# Short windows; at least 3 per level, at most 5.
SHORT = ("-p", "300", "-s", "1000", "-r", "5")


def perf_analyzer(server, *args, model: str = MODEL) -> subprocess.CompletedProcess:
    done = subprocess.run([str(PERF_ANALYZER), "-i", "grpc", "-u", server.address, "-m", model, *map(str, args)],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode != 127, f"perf_analyzer is not installed (scripts/setup.sh): {done.stderr}"
    return done


def success_count(client) -> int:
    return sum(s.inference_stats.success.count for s in client.model_statistics(MODEL).model_stats)


def client_request_counts(stdout: str):
    """The 'Request count: N' perf_analyzer prints for each level (the measured windows)."""
    return [int(count) for count in re.findall(r"Request count: (\d+)", stdout)]


def read_csv(path: Path):
    rows = list(csv.reader(io.StringIO(path.read_text())))
    return rows[0], [dict(zip(rows[0], map(float, row))) for row in rows[1:]]


def assert_plausible(row):
    assert row["Inferences/Second"] > 0
    assert row["Server Compute Infer"] > 0  # from our ModelStatistics: the collection ran
    assert row["p50 latency"] <= row["p90 latency"] <= row["p95 latency"] <= row["p99 latency"]
    server_time = sum(row[column] for column in ("Server Queue", "Server Compute Input", "Server Compute Infer",
                                                 "Server Compute Output"))
    assert 0 < server_time <= row["p99 latency"], row  # the server's part lies inside the client's latency


def test_concurrency_sweep_writes_csv_with_server_figures(server, client, tmp_path):
    before = success_count(client)
    done = perf_analyzer(server, "--concurrency-range", "1:3:2", *SHORT, "-f", tmp_path / "sweep.csv")
    assert done.returncode == 0, done.stdout + done.stderr
    header, rows = read_csv(tmp_path / "sweep.csv")
    assert header == COLUMNS
    assert sorted(row["Concurrency"] for row in rows) == [1, 3]  # perf_analyzer sorts rows by throughput
    for row in rows:
        assert_plausible(row)
    # Every request perf_analyzer counted in its windows succeeded on the server, which also
    # saw the unreported windows before them.
    counts = client_request_counts(done.stdout)
    assert len(counts) == 2 and min(counts) > 0
    assert success_count(client) - before >= sum(counts)


def input_data(tmp_path: Path, client, validate: bool = True) -> Path:
    """perf_analyzer's JSON input format: two requests for raw_images (a flat list, and content
    with its shape), each with the outputs the server answers for it as validation_data, which
    perf_analyzer compares byte for byte with every response (it wants every output there). Values are multiples of 1/256,
    exact in JSON, float32 and double alike. perf_analyzer reads the outputs it checks from the
    response, so `validate` must be False with shared memory (the outputs are in a region)."""
    rng = np.random.default_rng(24)
    images = [(rng.integers(0, 256, size=(3, 100, 200)) / 256).astype(np.float32) for _ in range(2)]
    answers = [client.infer(MODEL, {"raw_images": image[None]}).outputs for image in images]
    data = {"data": [{"raw_images": images[0].ravel().tolist()},
                     {"raw_images": {"content": images[1].ravel().tolist(), "shape": [3, 100, 200]}}],
            "validation_data": [{name: answer[name][0].tolist() for name in ("logits", "softmaxed")}
                                for answer in answers]}
    if not validate:
        del data["validation_data"]
    path = tmp_path / "input.json"
    path.write_text(json.dumps(data))
    return path


def test_input_data_json_answers_match_its_validation_data(server, client, tmp_path):
    data = input_data(tmp_path, client)
    # Concurrency 1: each request runs alone, so its logits are those of the single requests above.
    done = perf_analyzer(server, "--concurrency-range", "1", *SHORT, "--input-data", data, "-f", tmp_path / "data.csv")
    assert done.returncode == 0, done.stdout + done.stderr
    _, rows = read_csv(tmp_path / "data.csv")
    assert len(rows) == 1
    assert_plausible(rows[0])


def test_input_data_json_with_wrong_validation_data_fails(server, client, tmp_path):
    data = input_data(tmp_path, client)
    document = json.loads(data.read_text())
    document["validation_data"][0]["logits"][0] += 1.0
    data.write_text(json.dumps(document))
    done = perf_analyzer(server, "--concurrency-range", "1", *SHORT, "--input-data", data)
    assert done.returncode != 0
    assert "Output doesn't match expected output" in done.stdout + done.stderr


def test_system_shared_memory_sweep(server, client, tmp_path):
    data = input_data(tmp_path, client, validate=False)
    before = success_count(client)
    # The regions the server holds, sampled while perf_analyzer runs.
    seen, finished = set(), threading.Event()

    def sample():
        while not finished.wait(0.05):
            seen.update(client.get_system_shared_memory_status().regions)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        done = perf_analyzer(server, "--concurrency-range", "1:2", *SHORT, "--shared-memory", "system",
                             "--input-data", data, "-f", tmp_path / "shm.csv")
    finally:
        finished.set()
        sampler.join()
    assert done.returncode == 0, done.stdout + done.stderr
    assert seen, "perf_analyzer registered no shared-memory region with the server"
    header, rows = read_csv(tmp_path / "shm.csv")
    assert header == COLUMNS
    assert sorted(row["Concurrency"] for row in rows) == [1, 2]
    for row in rows:
        assert_plausible(row)
    assert success_count(client) - before >= sum(client_request_counts(done.stdout))
    # perf_analyzer registered its regions with the server and unregistered them on exit.
    assert not client.get_system_shared_memory_status().regions


def length_prefixed(file: bytes) -> str:
    """One BYTES element as perf_analyzer's "b64" takes it: the tensor's wire bytes (a little-endian
    4-byte length, then the file), base64-encoded."""
    return base64.b64encode(serialize_array(np.array([file], dtype=np.object_))).decode()


def test_scene_classifier_with_encoded_images_at_batch_2(server, client, tmp_path):
    """An input with one value per batch item (an encoded image): perf_analyzer reads dims [1] with
    reshape [] from the config and sends [2, 1]; it used to refuse the model ("unable to set shape
    for the input") when the server showed empty dims."""
    files = []
    for seed, kind in ((5, "JPEG"), (6, "PNG")):
        encoded = io.BytesIO()
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(encoded, kind)
        files.append(encoded.getvalue())
    data = tmp_path / "images.json"
    data.write_text(json.dumps({"data": [{"image": {"b64": length_prefixed(file)}} for file in files]}))
    before = client.model_statistics(SCENE).model_stats[0]
    done = perf_analyzer(server, "-b", "2", "--concurrency-range", "1", *SHORT, "--input-data", data,
                         "-f", tmp_path / "scene.csv", model=SCENE)
    assert done.returncode == 0, done.stdout + done.stderr
    _, rows = read_csv(tmp_path / "scene.csv")
    assert len(rows) == 1
    assert_plausible(rows[0])
    after = client.model_statistics(SCENE).model_stats[0]
    requests = after.inference_stats.success.count - before.inference_stats.success.count
    assert requests >= sum(client_request_counts(done.stdout)) > 0
    assert after.inference_count - before.inference_count == 2 * requests  # two images in each request
