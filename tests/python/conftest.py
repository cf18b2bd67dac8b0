"""pytest setup: puts the exporter (clients/python) and the test helpers (tests/python) on sys.path,
and offers `parse_bricks`, which reads a bricks.pbtxt through the real protobuf schema."""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
for path in (REPO / "clients" / "python", REPO / "tests" / "python"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


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
