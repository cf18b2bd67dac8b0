"""Golden tests of `torchbricks-client` (the C++ client library's command line, clients/cpp/cli)
against real servers on loopback: `infer` from a .npy and from JPEG files writes outputs equal
to what the Python client gets from the same server, `graph` prints the server's mermaid,
`--json` documents, TLS flags, `-u` as Triton's example clients spell --url, and the documented
exit codes. The usage example (examples/cpp/infer_example) runs here too."""
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from server_process import ServerProcess

REPO = Path(__file__).resolve().parents[2]
CLIENT = Path(os.environ.get("TORCHBRICKS_CLIENT", REPO / "build" / "clients" / "cpp" / "torchbricks-client"))
EXAMPLE = REPO / "build" / "examples" / "cpp" / "infer_example"
IMAGE_MODEL = "vision_classifier"  # encoded 64x64 image input, classification drawing

# The documented exit codes (clients/cpp/README.md).
OK, NOT_READY, USAGE, SERVER_ERROR, UNREACHABLE = 0, 1, 2, 3, 4

pytestmark = pytest.mark.skipif(not CLIENT.exists(), reason=f"{CLIENT} is not built")


def run(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLIENT), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def cli(server, *args) -> subprocess.CompletedProcess:
    return run("--url", server.address, *args)


def jpeg(seed: int, height: int = 64, width: int = 64) -> bytes:
    pixels = (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def file_stem(name: str) -> str:
    return name.replace("/", ".")


def test_infer_from_npy_writes_what_the_python_client_gets(server, client, tmp_path):
    images = np.random.default_rng(3).random((2, 3, 100, 200), dtype=np.float32)
    np.save(tmp_path / "images.npy", images)
    done = cli(server, "infer", "readme_dummy", "--input", f"raw_images={tmp_path / 'images.npy'}",
               "--out", tmp_path / "out")
    assert done.returncode == OK, done.stderr
    expected = client.infer("readme_dummy", {"raw_images": images}).outputs
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(f"{n}.npy" for n in expected)
    for name, array in expected.items():
        written = np.load(tmp_path / "out" / f"{name}.npy")
        assert written.dtype == array.dtype and written.shape == array.shape, name
        np.testing.assert_allclose(written, array, rtol=1e-6, atol=1e-7, err_msg=name)
        assert f"{name} FP32 [2, 3] -> " in done.stdout
    assert np.allclose(np.load(tmp_path / "out" / "softmaxed.npy").sum(axis=1), 1, atol=1e-5)


def test_infer_writes_requested_outputs_of_the_stage_only(server, client, tmp_path):
    images = np.random.default_rng(4).random((1, 3, 100, 200), dtype=np.float32)
    np.save(tmp_path / "images.npy", images)
    done = cli(server, "infer", "readme_dummy", "--input", f"raw_images={tmp_path / 'images.npy'}",
               "--output", "embedding", "--stage", "EXPORT", "--out", tmp_path / "out")
    assert done.returncode == OK, done.stderr
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["embedding.npy"]
    expected = client.infer("readme_dummy", {"raw_images": images}, outputs=["embedding"], stage="EXPORT")
    np.testing.assert_allclose(np.load(tmp_path / "out" / "embedding.npy"), expected.outputs["embedding"],
                               rtol=1e-6, atol=1e-7)


def test_infer_from_jpegs_writes_tensors_and_one_png_per_drawing(server, client, tmp_path):
    files = [jpeg(1), jpeg(2, 48, 80)]
    for index, data in enumerate(files):
        (tmp_path / f"photo{index}.jpg").write_bytes(data)
    done = cli(server, "--json", "infer", IMAGE_MODEL, "--input", f"image={tmp_path / 'photo0.jpg'}",
               "--input", f"image={tmp_path / 'photo1.jpg'}", "--out", tmp_path / "out")
    assert done.returncode == OK, done.stderr
    answer = json.loads(done.stdout)
    assert answer["model_name"] == IMAGE_MODEL and answer["model_version"] == "1"
    listed = {output["name"]: output for output in answer["outputs"]}

    images = np.empty(2, dtype=object)
    images[:] = files
    expected = client.infer(IMAGE_MODEL, {"image": images})
    assert set(listed) == set(expected.outputs)
    drawings = [name for name, datatype in expected.datatypes.items() if datatype == "BYTES"]
    assert drawings, "the model draws nothing"
    for name, array in expected.outputs.items():
        stem = file_stem(name)
        if name in drawings:
            paths = [tmp_path / "out" / f"{stem}-{i}.png" for i in range(len(array))]
            assert listed[name]["files"] == [str(path) for path in paths]
            for path, png in zip(paths, array):
                assert path.read_bytes() == png, path  # the very PNG the server drew
                assert Image.open(path).format == "PNG"
        else:
            assert listed[name]["files"] == [str(tmp_path / "out" / f"{stem}.npy")]
            assert listed[name]["shape"] == list(array.shape)
            written = np.load(tmp_path / "out" / f"{stem}.npy")
            assert written.dtype == array.dtype, name
            np.testing.assert_allclose(written, array, rtol=1e-6, atol=1e-7, err_msg=name)


def test_graph_prints_the_mermaid_of_the_stage(server, client):
    for stage in ("INFERENCE", "EXPORT"):
        done = cli(server, "graph", "readme_dummy", "--stage", stage)
        assert done.returncode == OK, done.stderr
        assert done.stdout == client.model_graph("readme_dummy", stage=stage).mermaid
        assert done.stdout.startswith("flowchart")
    as_json = json.loads(cli(server, "--json", "graph", "readme_dummy").stdout)
    assert as_json["stage"] == "INFERENCE"
    assert [brick["name"] for brick in as_json["bricks"]] == ["preprocessor", "backbone", "head"]
    assert cli(server, "graph", "readme_dummy", "--stage", "SLEEP").returncode == SERVER_ERROR


def test_json_documents(server, client):
    health = json.loads(cli(server, "--json", "health", "readme_dummy").stdout)
    assert health == {"url": server.address, "live": True, "ready": True, "health": "SERVING",
                      "model": "readme_dummy", "model_ready": True}

    models = json.loads(cli(server, "--json", "models").stdout)["models"]
    states = {(model["name"], model["version"]): model["state"] for model in models}
    assert states[("readme_dummy", "1")] == "READY"
    assert states[("invalid_cycle", "1")] == "UNAVAILABLE"

    metadata = json.loads(cli(server, "--json", "metadata", "readme_dummy").stdout)
    assert metadata["inputs"] == [{"name": "raw_images", "datatype": "FP32", "shape": ["-1", "3", "100", "200"]}]

    config = json.loads(cli(server, "--json", "config", "readme_dummy").stdout)
    assert config["name"] == "readme_dummy" and config["backend"] == "torchbricks"

    client.infer("readme_dummy", {"raw_images": np.zeros((1, 3, 100, 200), np.float32)})
    stats = json.loads(cli(server, "--json", "stats", "readme_dummy").stdout)
    assert int(stats["model_statistics"]["model_stats"][0]["inference_count"]) >= 1
    bricks = {brick["name"]: brick for brick in stats["brick_statistics"]["versions"][0]["bricks"]}
    assert int(bricks["head"]["executions"]) >= 1


def test_text_answers(server):
    health = cli(server, "health")
    assert health.returncode == OK and "ready: true" in health.stdout and "health: SERVING" in health.stdout
    models = cli(server, "models").stdout.splitlines()
    assert models[0].split() == ["NAME", "VERSION", "STATE", "REASON"]
    assert any(line.split()[:3] == ["readme_dummy", "1", "READY"] for line in models)
    metadata = cli(server, "metadata", "readme_dummy").stdout
    assert "raw_images FP32 [-1, 3, 100, 200]" in metadata
    assert 'name: "readme_dummy"' in cli(server, "config", "readme_dummy").stdout
    assert "head:" in cli(server, "stats", "readme_dummy").stdout


def test_exit_codes(server, tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3, 10, 10), np.float32))
    np.save(tmp_path / "objects.npy", np.array(["a"], dtype=object), allow_pickle=True)

    unknown = cli(server, "metadata", "no_such_model")
    assert unknown.returncode == SERVER_ERROR and "NOT_FOUND" in unknown.stderr
    wrong_shape = cli(server, "infer", "readme_dummy", "--input", f"raw_images={tmp_path / 'wrong.npy'}",
                      "--out", tmp_path / "out")
    assert wrong_shape.returncode == SERVER_ERROR and "INVALID_ARGUMENT" in wrong_shape.stderr
    assert not (tmp_path / "out").exists()
    not_explicit = cli(server, "load", "readme_dummy")
    assert not_explicit.returncode == SERVER_ERROR and "FAILED_PRECONDITION" in not_explicit.stderr

    not_ready = cli(server, "health", "invalid_cycle")
    assert not_ready.returncode == NOT_READY and "model invalid_cycle ready: false" in not_ready.stdout

    for args in (["infer", "readme_dummy", "--input", f"raw_images={tmp_path / 'missing.npy'}"],
                 ["infer", "readme_dummy", "--input", f"raw_images={tmp_path / 'objects.npy'}"],
                 ["infer", "readme_dummy", "--input", f"raw_images={tmp_path / 'notes.txt'}"],
                 ["infer", "readme_dummy"], ["graph"], ["graph", "readme_dummy", "--input", "x=y.npy"],
                 ["frobnicate"], ["--timeout", "soon", "health"], ["health", "--url"]):
        done = cli(server, *args)
        assert done.returncode == USAGE, (args, done.stderr)
        assert done.stderr.startswith("torchbricks-client: "), args

    unreachable = run("--url", "127.0.0.1:1", "--timeout", "10", "health")
    assert unreachable.returncode == UNREACHABLE and "UNAVAILABLE" in unreachable.stderr
    assert run("--help").returncode == OK and "exit codes" in run("--help").stdout


def test_short_url_flag_as_in_triton_example_clients(server):
    before = run("-u", server.address, "health")
    assert before.returncode == OK and "ready: true" in before.stdout, before.stderr
    after = run("metadata", "readme_dummy", "-u", server.address)
    assert after.returncode == OK and "raw_images FP32" in after.stdout, after.stderr
    assert run("-u", "127.0.0.1:1", "--timeout", "10", "health").returncode == UNREACHABLE
    # A flag's value "-u" stays that value.
    header = run("--url", server.address, "--header", "-u", "health")
    assert header.returncode == USAGE and "--header takes KEY=VALUE, not '-u'" in header.stderr
    assert "-u, --url HOST:PORT" in run("--help").stdout


def test_load_and_unload_in_explicit_mode(fixture_repository):
    with ServerProcess(fixture_repository, "--model-control-mode", "explicit", "--load-model", "readme_dummy",
                       "--warmup-runs", "1") as server:
        assert cli(server, "health", "keyword_inputs").returncode == NOT_READY
        loaded = cli(server, "--json", "load", "keyword_inputs")
        assert loaded.returncode == OK, loaded.stderr
        assert json.loads(loaded.stdout) == {"model": "keyword_inputs", "loaded": True}
        assert cli(server, "health", "keyword_inputs").returncode == OK
        assert cli(server, "unload", "keyword_inputs").stdout == "unloaded keyword_inputs\n"
        assert cli(server, "health", "keyword_inputs").returncode == NOT_READY
        assert cli(server, "load", "no_such_model").returncode == SERVER_ERROR
        assert server.stop() == 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_tls_flags(fixture_repository, tmp_path):
    from test_server_security import make_ca, make_leaf, tls_channel

    make_ca(tmp_path, "ca")
    make_leaf(tmp_path, "server", "ca", "serverAuth")
    make_leaf(tmp_path, "client", "ca", "clientAuth")
    repository = tmp_path / "repository"
    shutil.copytree(fixture_repository / "readme_dummy", repository / "readme_dummy")
    flags = ("--grpc-use-ssl-mutual", "true", "--grpc-server-cert", tmp_path / "server.pem",
             "--grpc-server-key", tmp_path / "server.key", "--grpc-root-cert", tmp_path / "ca.pem")
    with ServerProcess(repository, *flags, channel=lambda a: tls_channel(a, tmp_path, client="client")) as server:
        mutual = ("--ssl-root-cert", tmp_path / "ca.pem", "--ssl-cert", tmp_path / "client.pem",
                  "--ssl-key", tmp_path / "client.key")
        done = cli(server, *mutual, "health", "readme_dummy")
        assert done.returncode == OK, done.stderr
        assert cli(server, "--timeout", "10", "health").returncode == UNREACHABLE
        assert cli(server, "--timeout", "10", "--ssl-root-cert", tmp_path / "ca.pem", "health").returncode \
            == UNREACHABLE
        assert cli(server, "--ssl-root-cert", tmp_path / "ca.pem", "--ssl-cert", tmp_path / "client.pem",
                   "health").returncode == USAGE  # a certificate without its key
        assert server.stop() == 0


def test_cpp_usage_example_runs(server):
    if not EXAMPLE.exists():
        pytest.skip(f"{EXAMPLE} is not built")
    done = subprocess.run([str(EXAMPLE), server.address, "readme_dummy"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "readme_dummy version 1" in done.stdout
    assert "softmaxed FP32 [1, 3]" in done.stdout
    assert "flowchart" in done.stdout
