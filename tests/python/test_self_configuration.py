"""Self-configuration at load (issue 25), end to end against the real server: a model whose
config.pbtxt leaves its layout open is measured in-process at load, gets a chosen layout that
ModelConfig shows, and serves the same outputs; explicit settings are never overridden; the
chosen settings are written as a config.pbtxt that loads as they were chosen.

The package is the fixture resnet18 (real torchvision resnet18 at 32x32, exported by
tests/fixtures/make_fixtures.py). Self-configuration is off in every other test's server
(server_process.py passes --self-configuration-seconds 0); here it is turned on.
"""
import os
import re
import shutil

import numpy as np
import pytest
from google.protobuf import text_format

from server_process import ServerProcess
from torchbricks_serve.generated import model_config_pb2

PACKAGE = "resnet18_classifier"
CONFIGS = {
    # Nothing set: layout, preferred sizes, queue delay and max_batch_size are all open.
    "empty": None,
    # The issue's plain config: max_batch_size and the queue delay explicit.
    "plain": "max_batch_size: 16\ndynamic_batching { max_queue_delay_microseconds: 2000 }\n",
    # Everything self-configuration chooses is explicit: nothing is measured.
    "pinned": ("max_batch_size: 8\ndynamic_batching { preferred_batch_size: 4 max_queue_delay_microseconds: 500 }\n"
               "instance_group { kind: KIND_CPU count: 1 intra_op_threads: 1 }\n"),
    # Open, but turned off for this model.
    "off": 'max_batch_size: 16\nparameters { key: "self_configuration" value: "off" }\n',
    # An objective no measured point keeps.
    "strict": 'max_batch_size: 16\nparameters { key: "latency_objective_p99_ms" value: "0.001" }\n',
    # A parameter the server cannot read: the load fails, the others serve.
    "bad": 'parameters { key: "latency_objective_p99_ms" value: "soon" }\n',
}


@pytest.fixture(scope="module")
def repository(fixture_repository, tmp_path_factory):
    root = tmp_path_factory.mktemp("self_configuration")
    for name, config in CONFIGS.items():
        shutil.copytree(fixture_repository / PACKAGE, root / name)
        (root / name / "config.pbtxt").unlink(missing_ok=True)
        if config is not None:
            (root / name / "config.pbtxt").write_text(config)
    return root


@pytest.fixture(scope="module")
def chosen_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("chosen")


@pytest.fixture(scope="module")
def server(repository, chosen_dir):
    with ServerProcess(repository, "--self-configuration-seconds", "1", "--write-chosen-config", chosen_dir,
                       "--log-level", "info") as running:
        yield running


def layout_of(config):
    """(instances, intra-op threads) of a CPU-only ModelConfig, threads read from the summary."""
    instances = sum(group.count for group in config.instance_group)
    summary = config.parameters["self_configured"].string_value
    match = re.match(r"(\d+) instances? x (\d+) intra-op threads?", summary)
    assert match, summary
    assert int(match.group(1)) == instances, (summary, instances)
    return instances, int(match.group(2))


def images(rows):
    return np.random.default_rng(rows).random((rows, 3, 32, 32), dtype=np.float32)


def test_an_open_layout_is_chosen_shown_and_logged(server):
    log = server.log()
    with server.client() as client:
        for name in ("empty", "plain"):
            config = client.model_config(name)
            instances, threads = layout_of(config)
            # On this machine's cores: fill them, or leave one to the front end.
            assert 1 <= instances * threads <= max(1, os.cpu_count()), (instances, threads)
            assert re.search(rf"self-configuration of model '{name}' version 1 measured \d+ points", log), log
            assert re.search(rf"self-configuration of model '{name}' version 1 chose {instances} instance", log), log
            assert re.search(rf"loaded model '{name}' version 1 in [\d.]+ s: {instances} instance", log), log


def test_explicit_settings_are_never_overridden(server):
    with server.client() as client:
        plain = client.model_config("plain")
        assert plain.max_batch_size == 16
        assert plain.dynamic_batching.max_queue_delay_microseconds == 2000
        pinned = client.model_config("pinned")
        assert "self_configured" not in pinned.parameters  # nothing open: nothing measured
        assert [(g.count) for g in pinned.instance_group] == [1]
        assert list(pinned.dynamic_batching.preferred_batch_size) == [4]
        assert pinned.dynamic_batching.max_queue_delay_microseconds == 500
        off = client.model_config("off")
        assert "self_configured" not in off.parameters
        assert [(g.count) for g in off.instance_group] == [1]
    assert "model 'pinned' version 1 measured" not in server.log()
    assert "model 'off' version 1 measured" not in server.log()


def test_an_objective_no_point_keeps_is_said(server):
    with server.client() as client:
        summary = client.model_config("strict").parameters["self_configured"].string_value
    assert "not met by any measured point" in summary, summary
    assert "latency objective p99 0 ms" in summary, summary


def test_a_bad_parameter_fails_that_model_only(server):
    with server.client() as client:
        assert not client.model_ready("bad")
        index = {model.name: model for model in client.repository_index().models}
        assert index["bad"].state == "UNAVAILABLE"
        assert "latency_objective_p99_ms" in index["bad"].reason, index["bad"].reason
        assert client.model_ready("empty")


def test_self_configured_models_serve_the_same_outputs(server):
    with server.client() as client:
        for rows in (1, 3, 8):
            reference = client.infer("off", {"raw": images(rows)}).outputs
            for name in ("empty", "plain", "strict"):
                outputs = client.infer(name, {"raw": images(rows)}).outputs
                assert outputs.keys() == reference.keys()
                for key in reference:
                    np.testing.assert_allclose(outputs[key], reference[key], rtol=1e-5, atol=1e-6)


def test_the_written_config_pins_the_choice(server, chosen_dir, repository, tmp_path):
    with server.client() as client:
        chosen = {name: layout_of(client.model_config(name)) for name in ("empty", "plain")}
    assert not (chosen_dir / "pinned").exists() and not (chosen_dir / "off").exists()
    pinned_repository = tmp_path / "pinned_repository"
    for name, layout in chosen.items():
        written = (chosen_dir / name / "config.pbtxt").read_text()
        parsed = text_format.Parse(written, model_config_pb2.ModelConfig())
        assert [(g.count, g.intra_op_threads) for g in parsed.instance_group] == [layout], written
        assert parsed.parameters["self_configuration"] == "off"
        shutil.copytree(repository / name, pinned_repository / name)
        shutil.copy(chosen_dir / name / "config.pbtxt", pinned_repository / name / "config.pbtxt")
    # Served with the written configs and self-configuration on: nothing is measured, and the
    # layout is the one chosen before.
    with ServerProcess(pinned_repository, "--self-configuration-seconds", "1", "--log-level", "info") as again:
        with again.client() as client:
            for name, (instances, _) in chosen.items():
                config = client.model_config(name)
                assert "self_configured" not in config.parameters
                assert sum(g.count for g in config.instance_group) == instances
                client.infer(name, {"raw": images(2)})
        assert "measured" not in again.log()


def test_turned_off_by_flag_nothing_is_measured(repository):
    with ServerProcess(repository, "--log-level", "info") as server:  # server_process passes 0
        with server.client() as client:
            config = client.model_config("empty")
            assert "self_configured" not in config.parameters
            assert [g.count for g in config.instance_group] == [1]
        assert "self-configuration" not in server.log()
