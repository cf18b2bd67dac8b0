"""Hostile JPEGs through a real server (issue 20, items 3 and 4): a decoy frame header cannot
hide the size libjpeg decodes from the pixel budget, a progressive file of thousands of scans
does not hold a worker past its deadline, and libjpeg's warnings reach --log-format json as
JSON lines. The files are made here with Pillow and byte surgery."""
import io
import json
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from PIL import Image

import readme_models
from server_process import ServerProcess
from torchbricks_export import EncodedImage, Stage, export_brick_collection

MODEL = "vision_classifier"  # encoded 64x64 input: its pixel budget is 4096 x 4096


def jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def segments(file: bytes):
    """The segments of a JPEG file after SOI, each with its marker; a scan with its data."""
    found, offset = [], 2
    while offset + 2 <= len(file):
        marker = file[offset + 1]
        if marker == 0xD9:
            found.append(file[offset:offset + 2])
            break
        end = offset + 2 + int.from_bytes(file[offset + 2:offset + 4], "big")
        if marker == 0xDA:  # entropy-coded data up to the next marker (not a stuffed 00, not RSTn)
            while end + 1 < len(file) and not (file[end] == 0xFF and file[end + 1] != 0
                                               and not 0xD0 <= file[end + 1] <= 0xD7):
                end += 1
        found.append(file[offset:end])
        offset = end
    return found


def naive_frame_size(file: bytes):
    """(width, height) as a reader finds it that takes a length after every marker, as the
    server's own header reader did: what the decoy is made to fool."""
    offset = 2
    while offset + 9 <= len(file) and file[offset] == 0xFF:
        if 0xC0 <= file[offset + 1] <= 0xC2:
            return int.from_bytes(file[offset + 7:offset + 9], "big"), int.from_bytes(file[offset + 5:offset + 7], "big")
        offset += 2 + int.from_bytes(file[offset + 2:offset + 4], "big")
    return None


def decoy_jpeg(width: int, height: int) -> bytes:
    """A width x height JPEG behind an 8 x 8 decoy: TEM after SOI has no length for libjpeg,
    but a naive reader takes the next marker's bytes (FF E0) as one and lands ~64 KB later on
    a decoy frame header, inside a comment segment that libjpeg skips."""
    real = jpeg(Image.new("L", (width, height), 90))
    app0_end = 4 + int.from_bytes(real[4:6], "big")
    head = real[:2] + b"\xff\x01" + real[2:app0_end]
    landing = 2 + 2 + int.from_bytes(head[4:6], "big")
    decoy = b"\xff\xc0\x00\x0b\x08" + (8).to_bytes(2, "big") + (8).to_bytes(2, "big") + b"\x01\x01\x11\x00"
    payload = bytes(landing - (len(head) + 4)) + decoy
    comment = b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload
    return head + comment + real[app0_end:]


def many_scan_jpeg(copies: int) -> bytes:
    """A 4096 x 4096 progressive JPEG (within the budget) whose last scan is repeated `copies`
    times: each copy is a few bytes and another pass over all 262 144 blocks (libjpeg warns
    about the progression and decodes on: 1500 copies, 115 KB, took 18.7 s in cv::imdecode)."""
    found = segments(jpeg(Image.new("L", (4096, 4096)), progressive=True))
    return b"\xff\xd8" + b"".join(found[:-1]) + found[-2] * copies + found[-1]


def files(*elements: bytes) -> np.ndarray:
    array = np.empty(len(elements), dtype=object)
    array[:] = list(elements)
    return array


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    torch.manual_seed(3)
    photos = (torch.rand(2, 3, 64, 64) * 255).to(torch.uint8)
    out = tmp_path_factory.mktemp("repository")
    export_brick_collection(readme_models.vision_classifier(), out / MODEL / "1", name=MODEL,
                            example_inputs={Stage.INFERENCE: {"image": photos}}, input_specs={"image": EncodedImage(64, 64)})
    return out


@pytest.fixture(scope="module")
def json_server(repository):
    with ServerProcess(repository, "--log-format", "json") as server:
        yield server


def good_request(server):
    with server.client(timeout=30) as client:
        result = client.infer(MODEL, {"image": files(jpeg(Image.new("RGB", (64, 64), (200, 30, 30))))})
    assert result.outputs


def test_decoy_frame_header_is_refused_by_the_pixel_budget_without_decoding(repository):
    decoy = decoy_jpeg(8000, 6000)  # 48 Mpx: under the absolute limit, over this input's budget
    assert naive_frame_size(decoy) == (8, 8)
    with ServerProcess(repository) as server:
        good_request(server)
        before = peak_rss_kb(server.pid)
        with server.client() as client:
            with pytest.raises(grpc.RpcError) as error:
                client.infer(MODEL, {"image": files(decoy)})
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = error.value.details()
        assert "8000x6000" in details and "budget of 16777216 pixels per image" in details, details
        # Decoding it would take 144 MB for the pixels alone (3 copies before the resize).
        assert peak_rss_kb(server.pid) - before < 100_000
        good_request(server)


def test_many_scan_progressive_jpeg_does_not_hold_the_worker(json_server):
    slow = many_scan_jpeg(1500)
    assert len(slow) < 150_000
    start = time.monotonic()
    with json_server.client(timeout=2) as client:
        with pytest.raises(grpc.RpcError) as error:
            client.infer(MODEL, {"image": files(slow)})
    assert error.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INVALID_ARGUMENT)
    if error.value.code() == grpc.StatusCode.INVALID_ARGUMENT:
        details = error.value.details()
        assert "more than 100 scans" in details or "scan-pixels" in details, details
    # The next request is served at once, not after the ~20 s the file would take to decode.
    good_request(json_server)
    assert time.monotonic() - start < 10


def test_libjpeg_warnings_are_json_lines_with_source_libjpeg(json_server):
    noise = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    whole = jpeg(Image.fromarray(noise), quality=95)
    scan = whole.rindex(b"\xff\xda")
    # The entropy-coded data cut in half: decodable (the rest grey), with a warning.
    corrupt = whole[:scan + (len(whole) - scan) // 2] + b"\xff\xd9"
    with json_server.client() as client:
        result = client.infer(MODEL, {"image": files(corrupt)}, request_id="corrupt-jpeg")
    assert result.outputs
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in json_server.log().splitlines() if line.strip()]
        records = [json.loads(line) for line in lines]  # every line of stderr is JSON
        libjpeg = [r for r in records if r.get("source") == "libjpeg"]
        if libjpeg or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert libjpeg, "\n".join(lines[-20:])
    assert any("input 'image' element 0" in r["message"] and "Corrupt JPEG data" in r["message"]
               for r in libjpeg), libjpeg
    assert all(r["level"] == "warning" for r in libjpeg)


def _corrupt_jpeg(seed: int) -> bytes:
    """A JPEG whose entropy-coded data is cut in half: decodable (the rest grey), with a warning."""
    noise = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    whole = jpeg(Image.fromarray(noise), quality=95)
    scan = whole.rindex(b"\xff\xda")
    return whole[:scan + (len(whole) - scan) // 2] + b"\xff\xd9"


def test_libjpeg_warnings_are_rate_limited_log_lines_in_text_format_too(repository):
    """Any client can send corrupt JPEGs: under the default --log-format text their warnings are
    still the server's own log lines (source=libjpeg), at most a burst of 20 and then one a second,
    never libjpeg's plain 'Corrupt JPEG data' text on stderr."""
    with ServerProcess(repository) as server:
        with server.client() as client:
            for i in range(60):
                assert client.infer(MODEL, {"image": files(_corrupt_jpeg(i))}).outputs
        time.sleep(0.5)
        lines = [line for line in server.log().splitlines() if "Corrupt JPEG data" in line]
        assert lines, server.log()[-2000:]
        assert all("source=libjpeg" in line for line in lines), lines[:3]
        assert len(lines) <= 20 + 5, len(lines)  # the burst, and the few a second refills
        assert server.stop() == 0
