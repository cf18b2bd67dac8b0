"""Generates the package's protobuf messages while it is built (pip install clients/python/client).

The messages are written into the build folder of the package (build_lib), never into the
source tree. `protoc` comes from Debian's protobuf-compiler (or $PROTOC); the .proto files
from ../../../proto (or $TORCHBRICKS_PROTO_DIR); grpc.health.v1 from Debian's grpc-proto (or
$GRPC_PROTO_DIR) when present.
"""
import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROTOS = ("grpc_service.proto", "brick_service.proto", "bricks.proto", "model_config.proto")
HEALTH = "grpc/health/v1/health.proto"


class BuildWithProtos(build_py):
    def run(self):
        super().run()
        protoc = os.environ.get("PROTOC") or shutil.which("protoc")
        if protoc is None:
            raise RuntimeError("protoc is needed to build torchbricks-serve (apt-get install protobuf-compiler)")
        proto_dir = Path(os.environ.get("TORCHBRICKS_PROTO_DIR", HERE.parents[2] / "proto"))
        out = Path(self.build_lib) / "torchbricks_serve" / "generated"
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([protoc, f"--proto_path={proto_dir}", f"--python_out={out}", *PROTOS], check=True)
        grpc_dir = Path(os.environ.get("GRPC_PROTO_DIR", "/usr/share/grpc-proto"))
        if (grpc_dir / HEALTH).is_file():
            subprocess.run([protoc, f"--proto_path={grpc_dir}", f"--python_out={out}", HEALTH], check=True)


setup(cmdclass={"build_py": BuildWithProtos})
