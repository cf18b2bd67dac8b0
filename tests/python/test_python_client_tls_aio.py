"""The Python client's catch-up with issue 14, against real servers on loopback:
`model_config()`, TLS and mutual TLS arguments (certificates made by `openssl` for the test),
`headers` for access control, and `AsyncInferenceClient` on grpc.aio."""
import asyncio
import shutil

import grpc
import numpy as np
import pytest

from server_process import ServerProcess
from torchbricks_serve import AsyncInferenceClient, InferenceClient, build_infer_request

IMAGES = np.random.default_rng(5).random((1, 3, 100, 200), dtype=np.float32)


def test_model_config(client):
    config = client.model_config("readme_dummy")
    assert config.name == "readme_dummy"
    assert config.backend == "torchbricks"
    assert [tensor.name for tensor in config.input] == ["raw_images"]
    with pytest.raises(grpc.RpcError) as error:
        client.model_config("no_such_model")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    from test_server_security import make_ca, make_leaf

    folder = tmp_path_factory.mktemp("pki")
    make_ca(folder, "ca")
    make_ca(folder, "other_ca")
    make_leaf(folder, "server", "ca", "serverAuth")
    make_leaf(folder, "client", "ca", "clientAuth")
    return folder


@pytest.fixture(scope="module")
def small_repository(fixture_repository, tmp_path_factory):
    repository = tmp_path_factory.mktemp("repository")
    shutil.copytree(fixture_repository / "readme_dummy", repository / "readme_dummy")
    return repository


def test_tls_arguments_take_files_or_bytes(small_repository, pki):
    flags = ("--grpc-use-ssl", "true", "--grpc-server-cert", pki / "server.pem", "--grpc-server-key",
             pki / "server.key")
    probe = lambda address: grpc.secure_channel(  # noqa: E731
        address, grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes()))
    with ServerProcess(small_repository, *flags, channel=probe) as server:
        with InferenceClient(server.address, root_certificates=pki / "ca.pem") as by_path:
            assert by_path.server_live()
            assert by_path.infer("readme_dummy", {"raw_images": IMAGES}).outputs["softmaxed"].shape == (1, 3)
        with InferenceClient(server.address, root_certificates=(pki / "ca.pem").read_bytes()) as by_bytes:
            assert by_bytes.model_config("readme_dummy").name == "readme_dummy"
        for wrong in (dict(), dict(root_certificates=str(pki / "other_ca.pem"))):
            with InferenceClient(server.address, timeout=10, **wrong) as refused:
                with pytest.raises(grpc.RpcError) as error:
                    refused.server_live()
                assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert server.stop() == 0


def test_mutual_tls_and_headers(small_repository, pki):
    flags = ("--grpc-use-ssl-mutual", "true", "--grpc-server-cert", pki / "server.pem", "--grpc-server-key",
             pki / "server.key", "--grpc-root-cert", pki / "ca.pem",
             "--grpc-restricted-protocol", "model-repository:admin-key=s3cret")
    probe = lambda address: grpc.secure_channel(address, grpc.ssl_channel_credentials(  # noqa: E731
        (pki / "ca.pem").read_bytes(), (pki / "client.key").read_bytes(), (pki / "client.pem").read_bytes()))
    mutual = dict(root_certificates=pki / "ca.pem", private_key=pki / "client.key",
                  certificate_chain=pki / "client.pem")
    with ServerProcess(small_repository, *flags, channel=probe) as server:
        with InferenceClient(server.address, headers=[("triton-grpc-protocol-admin-key", "s3cret")],
                             **mutual) as admin:
            assert admin.server_ready()
            assert [model.name for model in admin.repository_index().models] == ["readme_dummy"]
        with InferenceClient(server.address, **mutual) as anonymous:
            with pytest.raises(grpc.RpcError) as error:
                anonymous.repository_index()
            assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with InferenceClient(server.address, timeout=10, root_certificates=pki / "ca.pem") as no_certificate:
            with pytest.raises(grpc.RpcError) as error:
                no_certificate.server_live()
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE

        async def aio_admin():
            async with AsyncInferenceClient(server.address, headers=[("triton-grpc-protocol-admin-key", "s3cret")],
                                            **mutual) as client:
                return await client.repository_index()

        assert [model.name for model in asyncio.run(aio_admin()).models] == ["readme_dummy"]
        assert server.stop() == 0


def test_half_a_key_pair_is_refused(pki):
    with pytest.raises(ValueError, match="both private_key and certificate_chain"):
        InferenceClient("127.0.0.1:1", private_key=pki / "client.key")


def test_async_client_answers_as_the_blocking_one(server, client):
    expected = client.infer("readme_dummy", {"raw_images": IMAGES})

    async def calls():
        async with AsyncInferenceClient(server.address) as aio:
            assert await aio.server_live() and await aio.server_ready()
            assert await aio.model_ready("readme_dummy")
            assert await aio.health_check() == "SERVING"
            assert (await aio.model_metadata("readme_dummy", stage="EXPORT")).inputs[0].name == "raw_images"
            assert (await aio.model_config("readme_dummy")).name == "readme_dummy"
            assert (await aio.model_graph("readme_dummy")).mermaid == client.model_graph("readme_dummy").mermaid
            results = await asyncio.gather(*(aio.infer("readme_dummy", {"raw_images": IMAGES}) for _ in range(4)))
            with pytest.raises(grpc.RpcError) as error:
                await aio.infer("no_such_model", {"raw_images": IMAGES})
            assert error.value.code() == grpc.StatusCode.NOT_FOUND
            requests = [build_infer_request("readme_dummy", {"raw_images": IMAGES}, request_id="a"),
                        build_infer_request("no_such_model", {"raw_images": IMAGES}, request_id="b"),
                        build_infer_request("readme_dummy", {"raw_images": IMAGES}, request_id="c")]
            streamed = [result async for result in aio.stream_infer(requests)]
            statistics = await aio.model_statistics("readme_dummy")
            bricks = await aio.brick_statistics("readme_dummy")
            return results, streamed, statistics, bricks

    results, streamed, statistics, bricks = asyncio.run(calls())
    for result in results:
        for name, array in expected.outputs.items():
            np.testing.assert_allclose(result.outputs[name], array, rtol=1e-6, atol=1e-7)  # may be batched
    assert len(streamed) == 3 and [streamed[0].id, streamed[2].id] == ["a", "c"]
    assert streamed[1].error_message and "no_such_model" in streamed[1].error_message
    np.testing.assert_allclose(streamed[2].outputs["softmaxed"], expected.outputs["softmaxed"], rtol=1e-6, atol=1e-7)
    assert statistics.model_stats[0].inference_count >= 7
    assert any(brick.name == "head" and brick.executions >= 1 for brick in bricks.versions[0].bricks)
