"""Limits that keep one client from taking the server (issue 12): the threads that serve
synchronous calls, the bytes of requests held at once, the number of open streams, and a
stream message that does not parse. Real server processes on loopback."""
import concurrent.futures
import os
import shutil
import socket
import threading
import time

import grpc
import numpy as np
import pytest

from server_process import ServerProcess
from torchbricks_serve.generated import grpc_service_pb2 as pb

STREAM_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"
INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
# Requests to "held" wait this long in its batcher for batch-mates, holding their call.
HOLD_SECONDS = 1.5


def infer_request(model: str, rows: int = 1) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="raw_images", datatype="FP32", shape=[rows, 3, 100, 200])
    request.raw_input_contents.append(np.zeros((rows, 3, 100, 200), np.float32).tobytes())
    return request


@pytest.fixture(scope="module")
def held_repository(fixture_repository, tmp_path_factory):
    """readme_dummy, and a copy ("held") whose batcher keeps requests HOLD_SECONDS."""
    repository = tmp_path_factory.mktemp("limits")
    shutil.copytree(fixture_repository / "readme_dummy", repository / "readme_dummy")
    shutil.copytree(fixture_repository / "readme_dummy", repository / "held")
    (repository / "held" / "config.pbtxt").write_text(
        "max_batch_size: 1000\n"
        f"dynamic_batching {{ max_queue_delay_microseconds: {int(HOLD_SECONDS * 1e6)} }}\n")
    return repository


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_stream_message_that_does_not_parse_ends_the_stream_with_invalid_argument(held_repository):
    good = infer_request("readme_dummy").SerializeToString()
    garbage = b"\xff\xff\xff\xff not a protobuf message"
    with ServerProcess(held_repository) as server, grpc.insecure_channel(server.address) as channel:
        stream = channel.stream_stream(STREAM_METHOD, request_serializer=None,
                                       response_deserializer=pb.ModelStreamInferResponse.FromString)
        call = stream(iter([good, garbage, good, good]), timeout=30)
        answers = []
        with pytest.raises(grpc.RpcError) as error:
            for answer in call:
                answers.append(answer)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
        assert "message 2 of the stream" in error.value.details()
        assert len(answers) == 1 and not answers[0].error_message
        assert answers[0].infer_response.model_name == "readme_dummy"
        # A well-formed stream is still served in full, in order, afterwards.
        requests = [infer_request("readme_dummy") for _ in range(5)]
        for index, request in enumerate(requests):
            request.id = f"r{index}"
        answers = list(stream(iter(r.SerializeToString() for r in requests), timeout=30))
        assert [a.infer_response.id for a in answers] == [f"r{i}" for i in range(5)]


def test_grpc_threads_are_bounded_and_excess_calls_refused(held_repository):
    limit = 16
    with ServerProcess(held_repository, "--grpc-max-threads", str(limit)) as server, \
            grpc.insecure_channel(server.address) as channel:
        infer = channel.unary_unary(INFER_METHOD, request_serializer=pb.ModelInferRequest.SerializeToString,
                                    response_deserializer=pb.ModelInferResponse.FromString)
        baseline = thread_count(server.pid)
        futures = [infer.future(infer_request("held"), timeout=30) for _ in range(120)]
        peak = baseline
        while not all(f.done() for f in futures):
            peak = max(peak, thread_count(server.pid))
            time.sleep(0.02)
        codes = [f.code() for f in futures]
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, set(codes)
        assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) > 0
        assert codes.count(grpc.StatusCode.OK) > 0
        # 120 calls held at once would need 120 threads; the server stays within its bound.
        assert peak - baseline <= limit, (baseline, peak)
        # Once the wave has passed, calls are served again.
        assert infer(infer_request("readme_dummy"), timeout=30).model_name == "readme_dummy"


def test_request_bytes_in_flight_are_bounded(held_repository):
    request = infer_request("held", rows=3)  # 720 kB of FP32
    size = request.ByteSize()
    flags = ("--grpc-max-message-size", str(size + 1000), "--max-inflight-bytes", str(size + 1000))
    with ServerProcess(held_repository, *flags) as server, grpc.insecure_channel(server.address) as channel:
        infer = channel.unary_unary(INFER_METHOD, request_serializer=pb.ModelInferRequest.SerializeToString,
                                    response_deserializer=pb.ModelInferResponse.FromString)
        first = infer.future(request, timeout=30)
        time.sleep(HOLD_SECONDS / 3)  # the first is held in the batcher, its bytes taken
        with pytest.raises(grpc.RpcError) as error:
            infer(request, timeout=30)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-inflight-bytes" in error.value.details()
        assert first.result().model_name == "held"
        # The bytes are given back: the same request now fits.
        assert infer(request, timeout=30).model_name == "held"


def test_open_streams_are_bounded(held_repository):
    with ServerProcess(held_repository, "--grpc-max-streams", "2") as server, \
            grpc.insecure_channel(server.address) as channel:
        stream = channel.stream_stream(STREAM_METHOD, request_serializer=pb.ModelInferRequest.SerializeToString,
                                       response_deserializer=pb.ModelStreamInferResponse.FromString)
        release = threading.Event()

        def requests():
            yield infer_request("readme_dummy")
            release.wait(30)

        open_calls = [stream(requests(), timeout=30) for _ in range(2)]
        for call in open_calls:
            assert not next(call).error_message  # both streams are open and served
        with pytest.raises(grpc.RpcError) as error:
            next(stream(iter([infer_request("readme_dummy")]), timeout=30))
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--grpc-max-streams" in error.value.details()
        release.set()
        for call in open_calls:
            assert list(call) == []
        # Closed streams free their places.
        answers = list(stream(iter([infer_request("readme_dummy")]), timeout=30))
        assert len(answers) == 1 and not answers[0].error_message


def http_get(address: str, path: str, timeout: float = 10) -> tuple:
    """(status, body) of one GET over a raw socket."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_slow_metrics_clients_cannot_block_scrapes(held_repository):
    with ServerProcess(held_repository) as server:
        host, port = server.metrics_address.rsplit(":", 1)
        stop = threading.Event()
        idle, trickling = [], []
        for _ in range(40):  # connect and send nothing
            idle.append(socket.create_connection((host, int(port)), timeout=10))
        for _ in range(40):  # send a request head one byte at a time, never finishing it
            connection = socket.create_connection((host, int(port)), timeout=10)
            connection.sendall(b"GET /metrics HTTP/1.1\r\n")
            trickling.append(connection)

        def trickle():
            while not stop.wait(0.3):
                for connection in trickling:
                    try:
                        connection.send(b"X")
                    except OSError:
                        pass

        trickler = threading.Thread(target=trickle)
        trickler.start()
        try:
            for _ in range(5):  # 80 slow clients hold connections; scrapes are still answered
                status, body = http_get(server.metrics_address, "/metrics")
                assert status == 200 and b"torchbricks_" in body
            # Every slow client is cut off (its time is 5 s), however long it keeps trickling.
            for connection in idle + trickling:
                connection.settimeout(15)
                try:
                    assert connection.recv(4096) == b""
                except ConnectionResetError:
                    pass
        finally:
            stop.set()
            trickler.join()
            for connection in idle + trickling:
                connection.close()


def test_metrics_endpoint_refuses_what_it_does_not_serve(held_repository):
    with ServerProcess(held_repository) as server:
        assert http_get(server.metrics_address, "/secret")[0] == 404
        host, port = server.metrics_address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
            assert connection.recv(4096).startswith(b"HTTP/1.1 431")
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(b"DELETE /metrics HTTP/1.1\r\n\r\n")
            assert connection.recv(4096).startswith(b"HTTP/1.1 405")
        assert http_get(server.metrics_address, "/metrics")[0] == 200
