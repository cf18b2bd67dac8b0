"""TLS, mutual TLS, certificate rotation and per-group access control (issue 12), with
certificates made by the real `openssl` for each test, against real server processes on
loopback, with Triton's flag names."""
import shutil
import subprocess
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from server_process import SERVER_BINARY, ServerProcess
from torchbricks_serve.generated import grpc_service_pb2 as pb
from torchbricks_serve.generated.grpc.health.v1 import health_pb2

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")

SERVICE = "/inference.GRPCInferenceService/"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> Path:
    """A self-signed CA: <name>.pem and <name>.key in `folder`."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(folder / f"{name}.key"), "-out", str(folder / f"{name}.pem"), "-days", "2",
            "-subj", f"/CN={name}")
    return folder / f"{name}.pem"


def make_leaf(folder: Path, name: str, ca: str, usage: str) -> tuple:
    """A key and certificate `name` signed by CA `ca`, for `usage` (serverAuth|clientAuth)."""
    key, csr, pem, ext = (folder / f"{name}.{suffix}" for suffix in ("key", "csr", "pem", "ext"))
    ext.write_text(f"subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage={usage}\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
            "-out", str(csr), "-subj", f"/CN={name}")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(folder / f"{ca}.pem"), "-CAkey", str(folder / f"{ca}.key"),
            "-CAcreateserial", "-out", str(pem), "-days", "2", "-extfile", str(ext))
    return key, pem


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other_ca"):
        make_ca(folder, ca)
    make_leaf(folder, "server", "ca", "serverAuth")
    make_leaf(folder, "server_by_other", "other_ca", "serverAuth")
    make_leaf(folder, "client", "ca", "clientAuth")
    make_leaf(folder, "client_by_other", "other_ca", "clientAuth")
    return folder


def tls_channel(address: str, pki: Path, root: str = "ca", client: str = "") -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / f"{root}.pem").read_bytes(),
        private_key=(pki / f"{client}.key").read_bytes() if client else None,
        certificate_chain=(pki / f"{client}.pem").read_bytes() if client else None)
    return grpc.secure_channel(address, credentials)


def server_live(channel: grpc.Channel, metadata=()) -> bool:
    call = channel.unary_unary(SERVICE + "ServerLive", request_serializer=pb.ServerLiveRequest.SerializeToString,
                               response_deserializer=pb.ServerLiveResponse.FromString)
    return call(pb.ServerLiveRequest(), timeout=10, metadata=metadata).live


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code()


def test_tls_serves_tls_clients_only(fixture_repository, pki):
    flags = ("--grpc-use-ssl", "true", "--grpc-server-cert", pki / "server.pem",
             "--grpc-server-key", pki / "server.key")
    with ServerProcess(fixture_repository, *flags, channel=lambda a: tls_channel(a, pki)) as server:
        with tls_channel(server.address, pki) as channel:
            assert server_live(channel)
        with tls_channel(server.address, pki, root="other_ca") as channel:  # server not trusted
            assert code_of(lambda: server_live(channel)) == grpc.StatusCode.UNAVAILABLE
        with grpc.insecure_channel(server.address) as channel:
            assert code_of(lambda: server_live(channel)) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate_from_the_root(fixture_repository, pki):
    flags = ("--grpc-use-ssl-mutual", "true", "--grpc-server-cert", pki / "server.pem",
             "--grpc-server-key", pki / "server.key", "--grpc-root-cert", pki / "ca.pem")
    with ServerProcess(fixture_repository, *flags,
                       channel=lambda a: tls_channel(a, pki, client="client")) as server:
        with tls_channel(server.address, pki, client="client") as channel:
            assert server_live(channel)
        for client in ("", "client_by_other"):
            with tls_channel(server.address, pki, client=client) as channel:
                assert code_of(lambda: server_live(channel)) == grpc.StatusCode.UNAVAILABLE, client


def test_rotated_certificate_files_are_served_without_restart(fixture_repository, pki, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(pki / "server.pem", cert)
    shutil.copy(pki / "server.key", key)
    flags = ("--grpc-use-ssl", "true", "--grpc-server-cert", cert, "--grpc-server-key", key,
             "--grpc-cert-refresh-secs", "1")
    with ServerProcess(fixture_repository, *flags, channel=lambda a: tls_channel(a, pki)) as server:
        with tls_channel(server.address, pki) as channel:
            assert server_live(channel)
        # Rotate to a certificate of another CA: key first, then the chain, as a deployment would.
        shutil.copy(pki / "server_by_other.key", key)
        shutil.copy(pki / "server_by_other.pem", cert)
        deadline = time.monotonic() + 30
        while True:
            with tls_channel(server.address, pki, root="other_ca") as channel:
                try:
                    assert server_live(channel)
                    break
                except grpc.RpcError:
                    assert time.monotonic() < deadline, "the rotated certificate was never served"
                    time.sleep(0.5)
        with tls_channel(server.address, pki) as channel:  # the old root no longer verifies it
            assert code_of(lambda: server_live(channel)) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("flags, message", [
    (("--grpc-use-ssl", "true"), "--grpc-use-ssl needs --grpc-server-cert"),
    (("--grpc-use-ssl-mutual", "true", "--grpc-server-cert", "a", "--grpc-server-key", "b"),
     "needs --grpc-root-cert"),
    (("--grpc-use-ssl", "true", "--grpc-server-cert", "/nonexistent.pem", "--grpc-server-key", "/nonexistent.key"),
     "/nonexistent.pem: cannot be read"),
    (("--grpc-restricted-protocol", "model-repo:k=v"), "unknown protocol group 'model-repo'"),
    (("--grpc-restricted-protocol", "inference:k=v", "--grpc-restricted-protocol", "health,inference:j=w"),
     "'inference' is in more than one"),
    (("--grpc-restricted-protocol", "inference:k v=x"), "the key must be"),
    (("--grpc-restricted-protocol", "inference"), "takes <group>"),
])
def test_bad_security_flags_stop_the_server_with_a_reason(fixture_repository, flags, message):
    result = subprocess.run([str(SERVER_BINARY), "--model-repository", str(fixture_repository), "--grpc-port", "0",
                             "--metrics-port", "0", *map(str, flags)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_restricted_protocol_groups_need_their_header(fixture_repository):
    admin = ("triton-grpc-protocol-admin-key", "s3cret")
    user = ("triton-grpc-protocol-user-key", "u")
    flags = ("--model-control-mode", "explicit", "--load-model", "readme_dummy",
             "--grpc-restricted-protocol", "model-repository,statistics:admin-key=s3cret",
             "--grpc-restricted-protocol", "inference:User-Key=u")
    with ServerProcess(fixture_repository, *flags) as server, grpc.insecure_channel(server.address) as channel:
        def rpc(method, request, response, metadata=()):
            call = channel.unary_unary(SERVICE + method, request_serializer=type(request).SerializeToString,
                                       response_deserializer=response.FromString)
            return call(request, timeout=30, metadata=metadata)

        load = lambda metadata=(): rpc("RepositoryModelLoad", pb.RepositoryModelLoadRequest(  # noqa: E731
            model_name="readme_loss"), pb.RepositoryModelLoadResponse, metadata)
        with pytest.raises(grpc.RpcError) as error:
            load()
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "triton-grpc-protocol-admin-key" in error.value.details() and "s3cret" not in error.value.details()
        for wrong in (("triton-grpc-protocol-admin-key", "s3cre"), ("triton-grpc-protocol-admin-key", "s3cret!"),
                      user):
            assert code_of(lambda: load((wrong,))) == grpc.StatusCode.PERMISSION_DENIED
        load((admin,))
        assert code_of(lambda: rpc("ModelStatistics", pb.ModelStatisticsRequest(), pb.ModelStatisticsResponse)) \
            == grpc.StatusCode.PERMISSION_DENIED
        assert rpc("ModelStatistics", pb.ModelStatisticsRequest(), pb.ModelStatisticsResponse, (admin,))

        request = pb.ModelInferRequest(model_name="readme_dummy")
        request.inputs.add(name="raw_images", datatype="FP32", shape=[1, 3, 100, 200])
        request.raw_input_contents.append(np.zeros((1, 3, 100, 200), np.float32).tobytes())
        infer = lambda metadata=(): rpc("ModelInfer", request, pb.ModelInferResponse, metadata)  # noqa: E731
        assert code_of(infer) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(lambda: infer((admin,))) == grpc.StatusCode.PERMISSION_DENIED
        assert infer((user,)).model_name == "readme_dummy"
        stream = channel.stream_stream(SERVICE + "ModelStreamInfer", request_serializer=pb.ModelInferRequest.SerializeToString,
                                       response_deserializer=pb.ModelStreamInferResponse.FromString)
        assert code_of(lambda: list(stream(iter([request]), timeout=30))) == grpc.StatusCode.PERMISSION_DENIED
        (answer,) = list(stream(iter([request]), timeout=30, metadata=(user,)))
        assert not answer.error_message

        # Unrestricted groups, and grpc.health.v1 (probes cannot send headers), stay open.
        assert server_live(channel)
        assert rpc("ModelMetadata", pb.ModelMetadataRequest(name="readme_dummy"), pb.ModelMetadataResponse).name
        health = channel.unary_unary("/grpc.health.v1.Health/Check",
                                     request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                                     response_deserializer=health_pb2.HealthCheckResponse.FromString)
        assert health(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING


def test_a_restricted_health_group_still_lets_the_server_start_and_probes_pass(fixture_repository):
    flags = ("--grpc-restricted-protocol", "health:probe=p")
    with ServerProcess(fixture_repository, *flags, ready_metadata=[("triton-grpc-protocol-probe", "p")]) as server, \
            grpc.insecure_channel(server.address) as channel:
        assert code_of(lambda: server_live(channel)) == grpc.StatusCode.PERMISSION_DENIED
        assert server_live(channel, (("triton-grpc-protocol-probe", "p"),))
