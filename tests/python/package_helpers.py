"""Test helpers that read exported packages: the protobuf schema of bricks.pbtxt and its bricks."""
import shutil
import subprocess
from pathlib import Path

import pytest

STAGE_ENUM = {1: "TRAIN", 2: "VALIDATION", 3: "TEST", 4: "INFERENCE", 5: "EXPORT"}
KIND_ENUM = {1: "TRAINABLE", 2: "NOT_TRAINABLE", 3: "LOSS", 4: "METRIC", 5: "VISUALIZATION"}


def brick_collection_class(proto_dir: Path, work_dir: Path):
    """Compiles bricks.proto with protoc and returns the BrickCollection message class."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    if shutil.which("protoc") is None:
        pytest.skip("protoc is not installed")
    out = work_dir / "bricks.desc"
    subprocess.run(["protoc", f"--proto_path={proto_dir}", f"--descriptor_set_out={out}", "bricks.proto"],
                   check=True, capture_output=True)
    pool = descriptor_pool.DescriptorPool()
    for file_proto in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(file_proto)
    descriptor = pool.FindMessageTypeByName("torchbricks.package.BrickCollection")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def flat_bricks(collection, prefix=""):
    """{full name: Brick message} over a parsed (nested) collection, in file order."""
    bricks = {}
    for node in collection.nodes:
        full = prefix + node.name
        if node.WhichOneof("content") == "brick":
            bricks[full] = node.brick
        else:
            bricks.update(flat_bricks(node.collection, full + "/"))
    return bricks


def alive(brick):
    """The brick's alive stages as a set of names ("all" expanded)."""
    if brick.alive_all:
        return set(STAGE_ENUM.values())
    return {STAGE_ENUM[stage] for stage in brick.alive_stages}
