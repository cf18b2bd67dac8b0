"""Python messages generated from proto/*.proto (`protoc --python_out`), never committed.

An installed package (`pip install clients/python/client`) carries them in this folder, generated
by its setup.py. Run from a checkout (PYTHONPATH=clients/python/client), they are the build's:
`build/python/torchbricks_serve/generated/`, or the folder named by
$TORCHBRICKS_PYTHON_PROTOS; this package's search path is extended to it.
"""
import os
from pathlib import Path

_CHECKOUT_BUILD = Path(__file__).resolve().parents[5] / "build" / "python" / "torchbricks_serve" / "generated"
for _folder in (os.environ.get("TORCHBRICKS_PYTHON_PROTOS"), _CHECKOUT_BUILD):
    if _folder and Path(_folder).is_dir() and str(_folder) not in __path__:
        __path__.append(str(_folder))
