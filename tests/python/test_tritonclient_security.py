"""Triton's own Python client over TLS and mutual TLS (its `ssl=True, root_certificates=,
private_key=, certificate_chain=` arguments, certificates made by openssl as in
test_server_security.py) and with `headers=` against `--grpc-restricted-protocol`; answers
compared with our client's over the same channel."""
import shutil

import numpy as np
import pytest

from server_process import ServerProcess
from test_server_security import make_ca, make_leaf, tls_channel
from tritonclient_runner import run_tritonclient, tritonclient_missing

pytestmark = [pytest.mark.skipif(bool(tritonclient_missing()), reason=tritonclient_missing() or "-"),
              pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")]

MODEL = "classifier"
SERVE_ONE = ("--model-control-mode", "explicit", "--load-model", MODEL)
DENIED = "StatusCode.PERMISSION_DENIED"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    make_ca(folder, "ca")
    make_ca(folder, "other_ca")
    make_leaf(folder, "server", "ca", "serverAuth")
    make_leaf(folder, "client", "ca", "clientAuth")
    make_leaf(folder, "client_by_other", "other_ca", "clientAuth")
    return folder


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "raw.npy"
    np.save(path, np.random.default_rng(5).random((2, 3, 100, 200), dtype=np.float32))
    return path


def tls_arguments(pki, client: str = "", root: str = "ca") -> dict:
    """tritonclient's (and our client's) TLS arguments: file paths for tritonclient."""
    arguments = {"ssl": True, "root_certificates": str(pki / f"{root}.pem")}
    if client:
        arguments.update(private_key=str(pki / f"{client}.key"), certificate_chain=str(pki / f"{client}.pem"))
    return arguments


def expected_logits(server, raw, **pem_files) -> np.ndarray:
    """Our client's logits for `raw` over TLS with the same files."""
    from torchbricks_serve.client import InferenceClient
    pem = {key: path.read_bytes() for key, path in pem_files.items()}
    with InferenceClient(server.address, ssl=True, **pem) as client:
        return client.infer(MODEL, {"raw_images": np.load(raw)}, outputs=["logits"]).outputs["logits"]


def test_tls(example_repository, pki, raw, tmp_path):
    flags = ("--grpc-use-ssl", "true", "--grpc-server-cert", pki / "server.pem",
             "--grpc-server-key", pki / "server.key")
    with ServerProcess(example_repository, *SERVE_ONE, *flags, channel=lambda a: tls_channel(a, pki)) as server:
        seen = run_tritonclient(tmp_path, server.address, ["secured", "aio"], fp32_input=raw,
                                client=tls_arguments(pki))
        expected = expected_logits(server, raw, root_certificates=pki / "ca.pem")
        assert seen["secured"]["live"] == {"value": True}
        assert seen["secured"]["metadata"]["value"]["name"] == MODEL
        assert np.array_equal(seen["secured"]["infer"]["value"], expected)
        assert np.array_equal(seen["aio"]["infer"]["logits"][2], expected)
        plaintext = run_tritonclient(tmp_path, server.address, ["secured"], fp32_input=raw)["secured"]
        untrusted = run_tritonclient(tmp_path, server.address, ["secured"], fp32_input=raw,
                                     client=tls_arguments(pki, root="other_ca"))["secured"]
        for refused in (plaintext, untrusted):
            assert refused["live"]["error"]["status"] == "StatusCode.UNAVAILABLE"


def test_mutual_tls(example_repository, pki, raw, tmp_path):
    flags = ("--grpc-use-ssl-mutual", "true", "--grpc-server-cert", pki / "server.pem",
             "--grpc-server-key", pki / "server.key", "--grpc-root-cert", pki / "ca.pem")
    with ServerProcess(example_repository, *SERVE_ONE, *flags,
                       channel=lambda a: tls_channel(a, pki, client="client")) as server:
        seen = run_tritonclient(tmp_path, server.address, ["secured", "aio"], fp32_input=raw,
                                client=tls_arguments(pki, client="client"))
        expected = expected_logits(server, raw, root_certificates=pki / "ca.pem", private_key=pki / "client.key",
                                   certificate_chain=pki / "client.pem")
        assert seen["secured"]["live"] == {"value": True}
        assert np.array_equal(seen["secured"]["infer"]["value"], expected)
        assert np.array_equal(seen["aio"]["infer"]["logits"][2], expected)
        for client in ("", "client_by_other"):  # no certificate, or one of another CA
            refused = run_tritonclient(tmp_path, server.address, ["secured"], fp32_input=raw,
                                       client=tls_arguments(pki, client=client))["secured"]
            assert refused["live"]["error"]["status"] == "StatusCode.UNAVAILABLE", client


def test_headers_open_restricted_protocol_groups(example_repository, raw, tmp_path):
    flags = ("--grpc-restricted-protocol", "inference:infer-key=s3cret",
             "--grpc-restricted-protocol", "model-repository:admin-key=other")
    with ServerProcess(example_repository, *SERVE_ONE, *flags) as server:
        seen = run_tritonclient(tmp_path, server.address, ["secured", "stream"], fp32_input=raw,
                                headers={"triton-grpc-protocol-infer-key": "s3cret"})
        secured = seen["secured"]
        assert secured["live"] == {"value": True} and secured["metadata"]["value"]["name"] == MODEL
        with server.client() as client, \
                type(client)(server.address, headers=[("triton-grpc-protocol-infer-key", "s3cret")]) as allowed:
            expected = allowed.infer(MODEL, {"raw_images": np.load(raw)}, outputs=["logits"]).outputs["logits"]
        assert np.array_equal(secured["infer"]["value"], expected)
        assert secured["infer_without_headers"]["error"]["status"] == DENIED
        assert secured["index"]["error"]["status"] == DENIED  # another group's header is needed
        assert "triton-grpc-protocol-admin-key" in secured["index"]["error"]["message"]
        # The stream carries start_stream's headers: its requests were answered, not refused.
        assert sorted(seen["stream"]["results"]) == ["first", "second"]
