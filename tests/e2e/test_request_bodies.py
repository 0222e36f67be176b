"""Hostile request bodies (issue 12, findings 5 and 12): what a STOW body may cost the server.

- A body that stops making progress (less than 16 KiB within `--body-idle-timeout` of waiting) ends its request
  with 408 and a closed connection; nothing of the part being received is stored (parts before it follow the
  partial-STOW rules: 202 naming what was stored). A slow upload that keeps sending is stored.
- Many trickling connections are all cut within the timeout, and the server keeps answering meanwhile.
- The memory of all spools together is bounded (`--spool-memory-mib`): uploads past it go to disk and succeed.
- `Content-Encoding: gzip`, `x-gzip` and `deflate` bodies are decoded: the stored instance is the uncompressed
  file. A decompression bomb is 413, fast and with bounded memory, and stores nothing. Other codings are 415.
"""

import gzip
import hashlib
import io
import socket
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from dicomweb_helpers import process_memory, related_body, sample

TEMPLATE = sample("pydicom/CT_small.dcm")
DICOM_JSON = "application/dicom+json"
IDLE_TIMEOUT = 2  # seconds, set on the servers of the timeout tests
MIB = 1024 * 1024


def instance(pixels=(128, 128)) -> tuple:
    """A fresh instance (its own UIDs) with `pixels` rows and columns of 16-bit pixel data: (sop, bytes)."""
    ds = pydicom.dcmread(io.BytesIO(TEMPLATE))
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Rows, ds.Columns = pixels
    size = pixels[0] * pixels[1] * 2
    ds.PixelData = (bytes(range(256)) * (size // 256 + 1))[:size]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return ds, out.getvalue()


def url_of(ds) -> str:
    return f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def retrieved(server, ds) -> requests.Response:
    return requests.get(
        server.root + url_of(ds), headers={"Accept": "application/dicom; transfer-syntax=*"}, timeout=60
    )


def assert_stored_as(server, ds, content: bytes):
    r = retrieved(server, ds)
    assert r.status_code == 200, r.text[:200]
    # The server zeroes the preamble; everything after it comes back byte for byte.
    assert hashlib.sha256(r.content[128:]).digest() == hashlib.sha256(content[128:]).digest()


def assert_nothing_stored(server):
    r = requests.get(server.root + "/instances", timeout=30)
    assert r.status_code == 204, f"instances were stored: {r.text[:300]}"
    files = [p for p in (server.data_dir / "blobs").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert not [p for p in files if p.suffix == ".dcm"], files


def peak_rss(server) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    return process_memory(server.process.pid, "VmHWM")


def head(path: str, content_type: str, length=None, extra=()) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}", f"Accept: {DICOM_JSON}"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(s: socket.socket, wait: float) -> tuple:
    """(what the server sent, whether it closed the connection) within `wait` seconds."""
    s.settimeout(wait)
    answer, closed = b"", False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            answer += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    return answer, closed


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
def timeout_server(make_server):
    return make_server(["--body-idle-timeout", str(IDLE_TIMEOUT)])


# ------------------------------------------------------------------------------------------------------ stalled bodies


def test_a_stalled_single_part_upload_is_408_within_the_timeout_closed_and_stores_nothing(timeout_server):
    _, content = instance()
    with socket.create_connection(("127.0.0.1", timeout_server.port)) as s:
        s.sendall(head("/studies", "application/dicom", len(content)) + content[: len(content) // 2])
        started = time.monotonic()
        answer, closed = read_answer(s, IDLE_TIMEOUT + 5)
        elapsed = time.monotonic() - started
    assert status_of(answer) == 408, answer[:300]
    assert b"stalled" in answer
    assert closed, "the connection of a stalled body stays open"
    assert IDLE_TIMEOUT - 0.5 < elapsed < IDLE_TIMEOUT + 3, elapsed
    assert_nothing_stored(timeout_server)


def test_a_multipart_upload_stalled_in_its_second_part_stores_the_first_only_and_is_closed(timeout_server):
    (first_ds, first), (second_ds, second) = instance(), instance()
    body, content_type = related_body([first, second])
    cut = body.index(second) + len(second) // 2
    with socket.create_connection(("127.0.0.1", timeout_server.port)) as s:
        s.sendall(head("/studies", content_type, len(body)) + body[:cut])
        answer, closed = read_answer(s, IDLE_TIMEOUT + 5)
    assert status_of(answer) == 202, answer[:300]
    assert b"stalled" in answer
    assert closed
    assert_stored_as(timeout_server, first_ds, first)
    assert retrieved(timeout_server, second_ds).status_code == 404


def test_two_hundred_trickling_connections_are_all_cut_within_the_timeout_and_health_stays_fast(timeout_server):
    _, content = instance()
    request = head("/studies", "application/dicom", len(content))
    sockets = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", timeout_server.port))
        s.sendall(request + content[:200])
        s.setblocking(False)
        sockets.append(s)
    started = time.monotonic()
    answers = {s: b"" for s in sockets}
    open_sockets = set(sockets)
    health = []
    position = 200
    try:
        # One byte per connection every 0.25 s: alive, but far from 16 KiB per timeout.
        while open_sockets and time.monotonic() - started < IDLE_TIMEOUT + 4:
            for s in list(open_sockets):
                try:
                    while chunk := s.recv(65536):
                        answers[s] += chunk
                    if not chunk:
                        open_sockets.discard(s)
                        continue
                except BlockingIOError:
                    pass
                except (ConnectionResetError, BrokenPipeError):
                    open_sockets.discard(s)
                    continue
                try:
                    s.send(content[position : position + 1])
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass
            position += 1
            t = time.monotonic()
            assert requests.get(timeout_server.root + "/health", timeout=5).status_code == 200
            health.append(time.monotonic() - t)
            time.sleep(0.25)
        elapsed = time.monotonic() - started
    finally:
        for s in sockets:
            s.close()
    assert not open_sockets, f"{len(open_sockets)} of 200 trickling connections still open after {elapsed:.1f} s"
    statuses = {status_of(a) for a in answers.values() if a}
    assert statuses <= {408}, statuses
    assert max(health) < 1.0, f"/health took {max(health):.2f} s while connections trickled"


def test_a_slow_upload_that_keeps_sending_is_stored(timeout_server):
    ds, content = instance((256, 256))  # about 170 KiB
    piece = 32 * 1024

    def slowly():
        for i in range(0, len(content), piece):
            yield content[i : i + piece]
            time.sleep(IDLE_TIMEOUT * 0.5)

    started = time.monotonic()
    r = requests.post(
        timeout_server.root + "/studies",
        data=slowly(),
        headers={"Content-Type": "application/dicom", "Accept": DICOM_JSON},
        timeout=60,
    )
    assert time.monotonic() - started > IDLE_TIMEOUT * 1.5, "the upload was not slower than the timeout"
    assert r.status_code == 200, r.text[:300]
    assert_stored_as(timeout_server, ds, content)


# ------------------------------------------------------------------------------------------------ spool memory budget


def test_concurrent_uploads_past_the_spool_memory_budget_all_succeed_with_bounded_memory(make_server):
    server = make_server(["--spool-memory-mib", "8"])
    # 12 MiB each: under the 16 MiB per-instance memory limit, so without the shared budget all twelve would be
    # held in memory at once.
    uploads = [instance((2048, 3072)) for _ in range(12)]
    before = peak_rss(server)
    barrier = threading.Barrier(len(uploads))

    def upload(item):
        _, content = item

        def body():
            barrier.wait()
            for i in range(0, len(content), MIB):
                yield content[i : i + MIB]
                time.sleep(0.03)  # all twelve are being received at the same time

        return requests.post(
            server.root + "/studies",
            data=body(),
            headers={"Content-Type": "application/dicom", "Accept": DICOM_JSON},
            timeout=120,
        )

    with ThreadPoolExecutor(len(uploads)) as pool:
        responses = list(pool.map(upload, uploads))
    growth = peak_rss(server) - before
    assert [r.status_code for r in responses] == [200] * len(uploads), [r.text[:200] for r in responses]
    for ds, content in uploads:
        assert_stored_as(server, ds, content)
    print(f"peak RSS growth {growth / MIB:.0f} MiB")
    # Without the budget it grows by about 300 MiB (twelve 16 MiB buffers, and the allocator's share).
    assert growth < 180 * MIB, f"peak RSS grew by {growth / MIB:.0f} MiB for 12 concurrent 12 MiB uploads"


# ---------------------------------------------------------------------------------------------------- content codings


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # zlib-wrapped, as RFC 9110 defines deflate
    "deflate-raw": raw_deflate,  # what some clients send as deflate
}


@pytest.mark.parametrize("coding", list(ENCODERS))
def test_an_encoded_single_part_body_is_stored_byte_identical_to_the_uncompressed_file(server, coding):
    ds, content = instance((512, 512))
    r = requests.post(
        server.root + "/studies",
        data=ENCODERS[coding](content),
        headers={
            "Content-Type": "application/dicom",
            "Content-Encoding": coding.removesuffix("-raw"),
            "Accept": DICOM_JSON,
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text[:300]
    assert_stored_as(server, ds, content)


def test_a_gzip_multipart_body_stores_every_part(server):
    items = [instance(), instance((300, 300))]
    body, content_type = related_body([content for _, content in items])
    r = requests.post(
        server.root + "/studies",
        data=gzip.compress(body),
        headers={"Content-Type": content_type, "Content-Encoding": "gzip", "Accept": DICOM_JSON},
        timeout=60,
    )
    assert r.status_code == 200, r.text[:300]
    for ds, content in items:
        assert_stored_as(server, ds, content)


def gzip_bomb(decoded_mib: int) -> bytes:
    """A DICOM-looking start (preamble and magic) followed by zeros: `decoded_mib` MiB once decoded."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [compressor.compress(bytes(128) + b"DICM")]
    zeros = bytes(MIB)
    out += [compressor.compress(zeros) for _ in range(decoded_mib)]
    out.append(compressor.flush())
    return b"".join(out)


BOMB = None


@pytest.mark.parametrize(
    "limits",
    [[], ["--max-decoding-ratio", "0", "--max-decoded-body-mib", "64"]],
    ids=["ratio", "size"],
)
def test_a_gzip_bomb_is_413_quickly_with_bounded_memory_and_stores_nothing(make_server, limits):
    global BOMB
    BOMB = BOMB or gzip_bomb(1024)  # 1 GiB of zeros in about 1 MiB
    server = make_server(limits)
    before = peak_rss(server)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        request = head("/studies", "application/dicom", len(BOMB), ["Content-Encoding: gzip"]) + BOMB

        def send():
            try:
                s.sendall(request)
            except OSError:
                pass  # the server stopped reading after its answer

        sender = threading.Thread(target=send)
        sender.start()
        answer, _ = read_answer(s, 20)
        s.shutdown(socket.SHUT_RDWR)
        sender.join()
    elapsed = time.monotonic() - started
    assert status_of(answer) == 413, answer[:300]
    assert elapsed < 10, f"the bomb took {elapsed:.1f} s to refuse"
    growth = peak_rss(server) - before
    assert growth < 150 * MIB, f"peak RSS grew by {growth / MIB:.0f} MiB"
    assert_nothing_stored(server)
    assert not [p for p in (server.data_dir / "tmp").rglob("*") if p.is_file()], "a spool file was left behind"


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, br", "gzip, gzip", "x-unknown"])
def test_codings_other_than_gzip_and_deflate_are_415_naming_them(server, coding):
    _, content = instance()
    r = requests.post(
        server.root + "/studies",
        data=content,
        headers={"Content-Type": "application/dicom", "Content-Encoding": coding, "Accept": DICOM_JSON},
        timeout=30,
    )
    assert r.status_code == 415, r.text[:300]
    assert coding in r.json()["message"]
    assert_nothing_stored(server)


def test_identity_is_no_coding(server):
    ds, content = instance()
    r = requests.post(
        server.root + "/studies",
        data=content,
        headers={"Content-Type": "application/dicom", "Content-Encoding": "identity", "Accept": DICOM_JSON},
        timeout=30,
    )
    assert r.status_code == 200, r.text[:300]
    assert_stored_as(server, ds, content)
