"""WADO-RS retrieve under hostile input: frame lists that would make huge bodies, and weak entity tags.

A frame list names each frame at most once and at most 10,000 frames; a response that is not small streams
each frame from storage as it is sent, so the server's memory does not grow with the size of the response.
"""

import io
import time

import requests
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicomweb_helpers import STUDY, process_memory, sample, secondary_capture

MIB = 1024 * 1024
OCTET = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}


def multi_frame(frames: int, frame_len: int) -> Dataset:
    """A native 8-bit instance whose frame n (from 1) is `frame_len` bytes of value n (rows of 1024 pixels)."""
    assert frame_len % 1024 == 0
    ds = secondary_capture(generate_uid(), generate_uid())
    meta = ds.file_meta
    ds.PatientID = "LIMITS"
    ds.Modality = "OT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = frames
    ds.Rows = frame_len // 1024
    ds.Columns = 1024
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = b"".join(bytes([n]) * frame_len for n in range(1, frames + 1))
    return ds


def store(server, ds: Dataset) -> str:
    """Stores `ds`; returns the URL of its frames."""
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    r = requests.post(f"{server.root}/studies", data=out.getvalue(), headers={"Content-Type": "application/dicom"})
    assert r.status_code == 200, r.text
    return (
        f"{server.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames"
    )


def rss_bytes(pid: int) -> int:
    return process_memory(pid, "VmRSS")


def test_a_frame_asked_many_times_is_400_naming_the_limit(server):
    # Issue 12, finding 3: one 8 MiB frame repeated in a short URL used to build the whole body in memory.
    url = store(server, multi_frame(2, 8 * MIB))
    started = time.monotonic()
    r = requests.get(f"{url}/{','.join(['1'] * 20)}", headers=OCTET, stream=True)
    assert r.status_code == 400, f"{r.status_code} {r.headers.get('Content-Length')}"
    message = r.json()["message"]
    assert "asks for 20 frames" in message and "frame 1 more than once" in message, message
    assert "at most the 2 frame(s)" in message, message
    assert time.monotonic() - started < 5, "refused before anything is read"
    # Each frame once is fine; out of range, zero, malformed and empty lists answer as before.
    r = requests.get(f"{url}/2,1", headers=OCTET)
    assert r.status_code == 200 and len(r.content) > 16 * MIB
    assert requests.get(f"{url}/3", headers=OCTET).status_code == 404
    assert requests.get(f"{url}/0", headers=OCTET).status_code == 404
    assert requests.get(f"{url}/1,x", headers=OCTET).status_code == 400
    assert requests.get(f"{url}/1,,2", headers=OCTET).status_code == 400
    assert requests.get(f"{url}/,", headers=OCTET).status_code == 400
    assert requests.get(f"{url}/", headers=OCTET).status_code == 404, "no frame list: no such resource"


def test_a_frame_list_over_10000_numbers_is_400_naming_the_limit(server):
    url = store(server, multi_frame(2, 1024))
    numbers = ",".join(str(n) for n in range(1, 10_002))
    r = requests.get(f"{url}/{numbers}", headers=OCTET)
    assert r.status_code == 400
    message = r.json()["message"]
    assert "asks for 10001 frames" in message and "at most 10000" in message, message


def test_a_large_frame_response_streams_with_bounded_memory(server):
    frames, frame_len = 16, 4 * MIB
    url = store(server, multi_frame(frames, frame_len))
    pid = server.process.pid
    # Warm the allocator and the page cache with one small answer first.
    assert requests.get(f"{url}/1", headers=OCTET).status_code == 200
    before = rss_bytes(pid)
    asked = list(range(frames, 0, -1))
    r = requests.get(f"{url}/{','.join(map(str, asked))}", headers=OCTET, stream=True)
    assert r.status_code == 200, r.text
    peak, body = before, bytearray()
    for chunk in r.iter_content(256 * 1024):
        body += chunk
        peak = max(peak, rss_bytes(pid))
    grew = peak - before
    # The old code held every frame and then the whole body: over 128 MiB for these 64 MiB of frames.
    assert grew < 24 * MIB, f"server RSS grew by {grew / MIB:.1f} MiB while sending {len(body) / MIB:.0f} MiB"
    assert "Content-Length" not in r.headers, "a large answer is streamed"
    boundary = r.headers["Content-Type"].split("boundary=")[1].strip('"').encode()
    got = bytes(body).split(b"--" + boundary)[1:-1]
    assert len(got) == frames
    for n, part in zip(asked, got):
        head, content = part.split(b"\r\n\r\n", 1)
        assert b"application/octet-stream" in head
        content = content[:-2]  # the CRLF before the next delimiter
        assert len(content) == frame_len and content == bytes([n]) * frame_len, f"frame {n}"


def test_a_large_single_frame_streams_with_its_length(server):
    url = store(server, multi_frame(2, 4 * MIB))
    r = requests.get(f"{url}/2", headers={"Accept": "application/octet-stream"})
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(4 * MIB)
    assert r.content == bytes([2]) * (4 * MIB)


def test_if_none_match_compares_weakly(server):
    # Issue 12, finding 11: RFC 9110 uses the weak comparison for If-None-Match.
    body = sample("red-triangle.dcm")
    r = requests.post(f"{server.root}/studies", data=body, headers={"Content-Type": "application/dicom"})
    assert r.status_code == 200, r.text
    url = f"{server.root}/studies/{STUDY}/metadata"
    etag = requests.get(url).headers["ETag"]
    assert etag.startswith('"'), "the server's tags are strong"
    for matching in [etag, f"W/{etag}", f'"other", W/{etag}', "*"]:
        r = requests.get(url, headers={"If-None-Match": matching})
        assert r.status_code == 304, matching
        assert r.headers["ETag"] == etag
    for other in ['W/"other"', '"other"']:
        assert requests.get(url, headers={"If-None-Match": other}).status_code == 200, other
