"""A short run of the soak test (bench/soak.py): a real server on loopback, good and bad
requests over ModelInfer and ModelStreamInfer, a load/unload storm, one SIGTERM under load.
It must pass, with every request answered and no outcome outside the expected ones."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOAK = REPO / "bench" / "soak.py"
BUILT_FIXTURES = REPO / "build" / "fixtures"
MODELS = ("stage_traced", "keyword_inputs")  # what bench/soak.py serves


def _repository(request):
    """The fixture repository the build exported, or (not built) the one conftest exports."""
    if all((BUILT_FIXTURES / model / "1" / "bricks.pbtxt").is_file() for model in MODELS):
        return BUILT_FIXTURES
    return request.getfixturevalue("fixture_repository")


def test_short_soak_passes(request, tmp_path):
    summary_path = tmp_path / "soak.json"
    command = [sys.executable, str(SOAK), "--requests", "3000", "--concurrency", "16", "--seed", "7",
               "--repository", str(_repository(request)), "--json", str(summary_path),
               "--log", str(tmp_path / "server.log"), "--progress", "0", "--timeout", "240"]
    environment = dict(os.environ, PYTHONPATH=str(REPO / "clients" / "python" / "client"))
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO,
                            stdin=subprocess.DEVNULL, env=environment)
    print(result.stdout)
    assert summary_path.is_file(), f"no JSON summary; stdout:\n{result.stdout}\nstderr:\n{result.stderr[-3000:]}"
    summary = json.loads(summary_path.read_text())
    assert result.returncode == 0, f"{summary['failures']}\n{result.stdout}\n{result.stderr[-3000:]}"

    requests = summary["requests"]
    assert summary["passed"] and summary["failures"] == []
    assert requests["unexpected"] == 0, summary["unexpected_examples"]
    assert requests["unanswered"] == 0
    assert requests["answered"] == requests["issued"] >= requests["planned"] == 3000
    assert requests["answered_before_sigterm"] >= 3000

    # Each kind of request was sent and got its expected answer; both transports were used.
    serving = requests["by_phase"]["serving"]
    assert serving["good"].get("OK", 0) > 0 and serving["good_export"].get("OK", 0) > 0
    assert serving["unknown_model"].get("NOT_FOUND", 0) > 0
    for kind in ("wrong_shape", "wrong_datatype", "raw_length", "unknown_output", "bad_stage", "skewed_rows"):
        assert serving[kind].get("INVALID_ARGUMENT", 0) > 0, (kind, serving[kind])
    assert serving["storm"].get("OK", 0) > 0
    assert requests["by_transport"].get("unary", 0) > 0 and requests["by_transport"].get("stream", 0) > 0

    storm = summary["storm"]
    assert storm["cycles"] > 0 and storm["unexpected"] == 0
    assert set(storm["load"]) == {"OK"} and set(storm["unload"]) == {"OK"}

    shutdown = summary["shutdown"]
    assert shutdown["exit_code"] == 0 and shutdown["in_flight_at_sigterm"] > 0
    assert shutdown["log_says_stopped"] and not shutdown["log_says_shutdown_timeout"]
    assert shutdown["call_after_exit"].startswith("UNAVAILABLE")
    assert summary["rss"]["samples"] > 0 and summary["threads"]["max"] > 0
