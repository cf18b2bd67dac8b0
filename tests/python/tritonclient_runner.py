"""Runs tritonclient_calls.py (Triton's own Python client) in a process of its own and returns
what it saw; see that file for why it cannot run inside the test process.

    seen = run_tritonclient(tmp_path, server.address, ["rpcs", "infer"], fp32_input=...)

The interpreter is $TORCHBRICKS_TRITONCLIENT_PYTHON, else this one (the project's .venv, where
scripts/setup.sh installs tritonclient from requirements/python.txt). `tritonclient_missing()`
says why the tests must skip, or "" when the client is there.
"""
import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Sequence

CALLS = Path(__file__).resolve().parent / "tritonclient_calls.py"
PYTHON = os.environ.get("TORCHBRICKS_TRITONCLIENT_PYTHON", sys.executable)
TIMEOUT = 120


def tritonclient_missing() -> str:
    if PYTHON == sys.executable:
        found = importlib.util.find_spec("tritonclient") is not None  # finds without importing it
    else:
        found = subprocess.run([PYTHON, "-c", "import tritonclient.grpc"], capture_output=True).returncode == 0
    return "" if found else f"tritonclient is not installed for {PYTHON} (scripts/setup.sh installs it)"


def run_tritonclient(folder: Path, address: str, scenarios: Sequence[str], **spec) -> dict:
    """Runs `scenarios` against `address`; returns {scenario: what it saw}. A scenario that
    raised fails the calling test here, with tritonclient's traceback."""
    spec_path, result_path = Path(folder) / "tritonclient_spec.json", Path(folder) / "tritonclient_result.pickle"
    spec_path.write_text(json.dumps({"address": address, "scenarios": list(scenarios), **spec}, default=str))
    done = subprocess.run([PYTHON, str(CALLS), str(spec_path), str(result_path)], capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"tritonclient_calls.py exited with {done.returncode}:\n{done.stderr[-3000:]}"
    results = pickle.loads(result_path.read_bytes())
    for name, seen in results.items():
        assert "exception" not in seen, f"scenario {name} raised {seen['exception']}:\n{seen['traceback']}"
    return results
