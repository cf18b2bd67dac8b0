"""Python messages generated from proto/*.proto by the build (`protoc --python_out`).

The *_pb2.py files are build outputs (not committed): scripts/build.sh writes them here.
"""
