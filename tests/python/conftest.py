"""pytest setup: puts the client (clients/python/client), the exporter (clients/python/exporter) and
the test helpers (tests/python) on sys.path, and offers `parse_bricks`, which reads a bricks.pbtxt
through the real protobuf schema."""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON_CLIENTS = REPO / "clients" / "python"
for path in (PYTHON_CLIENTS / "client", PYTHON_CLIENTS / "exporter", REPO / "tests" / "python"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture(scope="module")
def module_compile_cache(tmp_path_factory):
    """An AOTInductor compile cache of the requesting module's own, so that packages compiled
    once serve every test of that module (`pytestmark = pytest.mark.usefixtures(...)`)."""
    from torchbricks_export import aoti_cache

    directory = tmp_path_factory.mktemp("aoti_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(aoti_cache.CACHE_ENV, str(directory))
        yield directory


@pytest.fixture(scope="session")
def brick_collection_class(tmp_path_factory):
    """The message class torchbricks.package.BrickCollection, built from proto/bricks.proto."""
    pytest.importorskip("google.protobuf")
    import package_helpers
    return package_helpers.brick_collection_class(REPO / "proto", tmp_path_factory.mktemp("proto"))


@pytest.fixture
def parse_bricks(brick_collection_class):
    """parse_bricks(version_dir) -> the parsed BrickCollection message of its bricks.pbtxt."""
    from google.protobuf import text_format

    def parse(version_dir):
        return text_format.Parse((Path(version_dir) / "bricks.pbtxt").read_text(encoding="utf-8"),
                                 brick_collection_class())
    return parse


# --- running-server fixtures (test_server_*.py, test_perf_tool.py) --------------------------------
# The extra package of the fixture repository: readme_dummy with its input left unchecked
# (any dtype, any shape), so that a bad tensor reaches libtorch inside a brick.
UNCHECKED_MODEL = "unchecked_dummy"


@pytest.fixture(scope="session")
def fixture_repository(tmp_path_factory):
    """A model repository holding every package of tests/fixtures/make_fixtures.py (valid ones
    READY, invalid ones UNAVAILABLE once served) plus `unchecked_dummy`."""
    import subprocess
    import torch
    import readme_models
    from torchbricks_export import export_brick_collection

    out = tmp_path_factory.mktemp("repository")
    result = subprocess.run([sys.executable, str(REPO / "tests" / "fixtures" / "make_fixtures.py"), str(out)],
                            capture_output=True, text=True, timeout=300, cwd=out, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(11))
    export_brick_collection(readme_models.readme_dummy(), out / UNCHECKED_MODEL / "1",
                            example_inputs={"raw_images": images}, input_specs={"raw_images": (None, None)})
    return out


@pytest.fixture(scope="module")
def server_repository(fixture_repository):
    """The repository `server` serves: the fixture repository, unless a test module overrides
    this fixture (test_perf_tool.py serves the example repository)."""
    return fixture_repository


@pytest.fixture(scope="module")
def server_flags():
    """Extra torchbricks-server flags for `server`: none, unless a test module overrides this
    fixture."""
    return ()


@pytest.fixture(scope="module")
def server(server_repository, server_flags):
    """A torchbricks-server (control mode none) on `server_repository` with `server_flags`, for
    one test module; it must shut down gracefully (exit code 0) at the end."""
    from server_process import ServerProcess

    process = ServerProcess(server_repository, *server_flags).start()
    try:
        yield process
    finally:
        code = process.stop()
    assert code == 0, f"the server exited with {code}:\n{process.log()[-3000:]}"


@pytest.fixture(scope="module")
def client(server):
    """An InferenceClient connected to `server`."""
    with server.client() as connected:
        yield connected


@pytest.fixture(scope="session")
def example_repository(tmp_path_factory):
    """The bundled example repository, built as scripts/run_example.sh builds it (it is not in
    git): the README's classifier and resnet18 with the real torchbricks, and scene_classifier."""
    import os
    import subprocess
    out = tmp_path_factory.mktemp("examples") / "repository"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, str(REPO / "examples" / "build_example_repository.py"), str(out)],
                          capture_output=True, text=True, timeout=600, env=environment, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return out
