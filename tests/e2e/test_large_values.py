"""Instances with huge non-bulk values (issue 12, "hostile input", finding 4).

Six instances with a 100 MiB UT each used to take 4-5 GB of server memory and make every metadata, QIDO and
change feed answer that showed them hundreds of MB. A value over 64 KiB is now a BulkDataURI in an instance's
metadata (issue 13; search results leave it out) and is not in the search index (the file keeps it, its bulk data
URI serves it), so these answers stay small and the server's memory bounded.
"""

import io
import json
import threading
import time
from pathlib import Path

import pydicom
import requests
from pydicom.uid import generate_uid

from dicomweb_helpers import process_memory, secondary_capture

MIB = 1024 * 1024
# The server's RSS must stay below this while it stores and shows instances with 20 MiB values.
RSS_LIMIT = 300 * MIB
JSON = {"Accept": "application/dicom+json"}


def rss_bytes(pid: int) -> int:
    return process_memory(pid, "VmRSS")


class PeakRss:
    """Samples a process's RSS every 10 ms while the `with` block runs."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            self._stop.wait(0.01)

    def __enter__(self):
        self.peak = rss_bytes(self.pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def with_huge_text(study: str, series: str, size: int) -> tuple[str, bytes]:
    """An instance of `study` with a `size`-byte UT TextValue and a short LT; returns (SOPInstanceUID, Part 10)."""
    ds = secondary_capture(study, series)
    meta = ds.file_meta
    ds.PatientID = "LARGE-VALUES"
    ds.Modality = "OT"
    ds.AdditionalPatientHistory = "kept: a short text"
    ds.TextValue = ("huge text " * (size // 10 + 1))[:size]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return ds.SOPInstanceUID, out.getvalue()


def test_huge_text_values_are_stored_whole_and_are_bulk_data_in_metadata_with_bounded_memory(server):
    study, series = generate_uid(), generate_uid()
    pid = server.process.pid
    files = {}
    print(f"baseline RSS {rss_bytes(pid) / MIB:.0f} MiB")
    with PeakRss(pid) as storing:
        for _ in range(3):
            sop, content = with_huge_text(study, series, 20 * MIB)
            r = requests.post(f"{server.root}/studies", data=content, headers={"Content-Type": "application/dicom"})
            assert r.status_code == 200, r.text
            files[sop] = content
    assert storing.peak < RSS_LIMIT, f"server RSS reached {storing.peak / MIB:.0f} MiB while storing"

    answers = {
        "study metadata": (f"{server.root}/studies/{study}/metadata", {}),
        "QIDO includefield=all": (f"{server.root}/studies/{study}/instances", {"includefield": "all"}),
        "change feed": (f"{server.root}/changefeed", {"includemetadata": "true", "limit": "10"}),
    }
    with PeakRss(pid) as showing:
        bodies = {}
        for name, (url, params) in answers.items():
            r = requests.get(url, params=params, headers=JSON)
            assert r.status_code == 200, f"{name}: {r.status_code} {r.text[:200]}"
            # The old answers held the 20 MiB values: 60 MiB each.
            assert len(r.content) < 256 * 1024, f"{name}: {len(r.content)} bytes"
            bodies[name] = r.json()
    assert showing.peak < RSS_LIMIT, f"server RSS reached {showing.peak / MIB:.0f} MiB while answering"
    print(f"peak RSS {storing.peak / MIB:.0f} MiB storing, {showing.peak / MIB:.0f} MiB answering")

    documents = bodies["study metadata"] + [entry["Metadata"] for entry in bodies["change feed"]]
    found = bodies["QIDO includefield=all"]
    assert len(documents) == 6 and len(found) == 3
    for instance in documents:
        text = instance["0040A160"]
        assert "Value" not in text and text["BulkDataURI"].endswith("/bulkdata/0040A160"), \
            "the 20 MiB TextValue is a BulkDataURI"
    for instance in found:
        assert "0040A160" not in instance, "search results carry no bulk values"
    for instance in documents + found:
        assert instance["001021B0"]["Value"] == ["kept: a short text"], "short texts are kept"

    # The URI serves the text, streamed from the file with bounded memory.
    with PeakRss(pid) as serving:
        for instance in bodies["study metadata"]:
            sop = instance["00080018"]["Value"][0]
            r = requests.get(instance["0040A160"]["BulkDataURI"], headers={"Accept": "application/octet-stream"})
            assert r.status_code == 200
            assert len(r.content) == 20 * MIB
            assert r.content.rstrip(b" ") == pydicom.dcmread(io.BytesIO(files[sop])).TextValue.encode().rstrip(b" ")
    assert serving.peak < RSS_LIMIT, f"server RSS reached {serving.peak / MIB:.0f} MiB serving the values"

    # The file keeps every byte of it.
    sop, content = next(iter(files.items()))
    r = requests.get(
        f"{server.root}/studies/{study}/series/{series}/instances/{sop}",
        headers={"Accept": "application/dicom; transfer-syntax=*"},
    )
    assert r.status_code == 200
    assert r.content[128:] == content[128:]

    # Neither the search index nor the catalogue holds the values (they held 60 MiB and more of them).
    assert requests.get(f"{server.root}/studies", params={"PatientID": "LARGE-VALUES"}, headers=JSON).json()
    time.sleep(1.5)  # the index commits 250 ms after a write, the catalogue checkpoints within a second
    kept = {name: tree_bytes(server.data_dir / name) for name in ("index", "catalogue")}
    print(f"index {kept['index'] / 1024:.0f} KiB, catalogue {kept['catalogue'] / 1024:.0f} KiB")
    assert all(size < 16 * MIB for size in kept.values()), kept
    assert requests.delete(f"{server.root}/studies/{study}").status_code == 204
    assert requests.get(f"{server.root}/studies/{study}/metadata", headers=JSON).status_code == 404
    time.sleep(1.5)
    print(f"after the delete: index {tree_bytes(server.data_dir / 'index') / 1024:.0f} KiB, RSS {rss_bytes(pid) / MIB:.0f} MiB")


def with_many_texts(study: str, series: str, count: int, size: int) -> tuple[str, bytes]:
    """An instance of `study` with `count` private UT values of `size` bytes each (each under the 64 KiB that
    metadata leaves out, so all of them are in its metadata); returns (SOPInstanceUID, Part 10)."""
    ds = secondary_capture(study, series)
    ds.PatientID = "LARGE-METADATA"
    ds.Modality = "OT"
    block = ds.private_block(0x0011, "DICOMWEB TEST", create=True)
    for i in range(count):
        block.add_new(i, "UT", (f"text {i:03} " * (size // 9 + 1))[:size])
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return ds.SOPInstanceUID, out.getvalue()


def test_metadata_and_change_feed_of_a_study_larger_than_memory_allows_are_streamed(server):
    """24 instances with 3.5 MiB of metadata each (60 UT values of 60 KiB, within the 4 MiB an instance may keep):
    the study's metadata is 84 MiB, and so is a change feed page of them. Both used to be built whole in
    memory (the records read, then the body: twice that); they are now read a few instances at a time while
    they are sent, so the server's memory grows by a few MiB, whatever the size of the study."""
    study, series = generate_uid(), generate_uid()
    pid = server.process.pid
    count = 24
    for _ in range(count):
        _, content = with_many_texts(study, series, 60, 60 * 1024)
        r = requests.post(f"{server.root}/studies", data=content, headers={"Content-Type": "application/dicom"})
        assert r.status_code == 200, r.text[:300]
    search = (f"{server.root}/studies/{study}/instances", {"includefield": "all", "limit": "200"})
    # At once, the search answers from stores the index has not committed (its overlay); the trimmed copies it
    # shows must be those the committed index shows after.
    before_commit = requests.get(search[0], params=search[1], headers=JSON).json()
    time.sleep(1.5)  # let the background index commit and catalogue checkpoint settle
    after_commit = requests.get(search[0], params=search[1], headers=JSON).json()
    key = lambda result: result["00080018"]["Value"][0]  # noqa: E731
    assert sorted(before_commit, key=key) == sorted(after_commit, key=key)

    answers = {
        "study metadata": (f"{server.root}/studies/{study}/metadata", {}),
        "change feed": (f"{server.root}/changefeed", {"includemetadata": "true", "limit": str(count)}),
    }
    for name, (url, params) in answers.items():
        before = rss_bytes(pid)
        with PeakRss(pid) as answering:
            r = requests.get(url, params=params, headers=JSON, stream=True)
            assert r.status_code == 200, f"{name}: {r.status_code}"
            received = bytearray()
            for piece in r.iter_content(1024 * 1024):
                received += piece
                time.sleep(0.005)  # a reader slower than the server: what is not sent yet must not pile up
        body = json.loads(received)
        growth = answering.peak - before
        print(f"{name}: {len(received) / MIB:.0f} MiB sent, server RSS grew by {growth / MIB:.0f} MiB")
        assert len(received) > count * 3 * MIB
        assert growth < 48 * MIB, f"{name}: the server's RSS grew by {growth / MIB:.0f} MiB"
        instances = body if name == "study metadata" else [entry["Metadata"] for entry in body]
        assert len(instances) == count
        for instance in instances:
            assert instance["0020000D"]["Value"] == [study]
            assert len([key for key in instance if key.startswith("0011")]) == 61, "60 values and the creator"

    # A search answers from the index's bounded copy of each instance's metadata (64 KiB at most: standard
    # attributes of up to 4 KiB), so a page of these instances is small, and names each one.
    with PeakRss(pid) as searching:
        r = requests.get(
            f"{server.root}/studies/{study}/instances", params={"includefield": "all", "limit": "200"}, headers=JSON
        )
    assert r.status_code == 200, r.text[:300]
    results = r.json()
    print(f"QIDO includefield=all: {len(r.content) / 1024:.0f} KiB, server RSS grew by {(searching.peak - before) / MIB:.0f} MiB")
    assert len(results) == count
    assert len(r.content) < count * 64 * 1024
    assert all(result["0020000D"]["Value"] == [study] and "00080018" in result for result in results)
    assert not any(key.startswith("0011") for result in results for key in result), "private values stay out"

