"""The write path: what a STOW 200 and a DELETE 204 promise, through races, broken bodies and kill -9.

- A STOW 200 is durable (file and catalogue record survive kill -9) and visible on the very next request:
  retrievable, searchable and in the change feed.
- A DELETE 204 is sent once the catalogue removal is durable and the instance files are gone; a store and a delete
  of the same UIDs serialise, so afterwards an instance exists with exactly one file, or not at all.
- After a restart, recovery removes what interrupted work left behind: spool files in `<data-dir>/tmp`, staging
  blobs in `blobs/.staging`, object_store partial files (`#` in the name) and blobs that no catalogue entry
  references. `dicomweb reindex` rebuilds the search index from the catalogue and never brings back an instance
  that was never acknowledged or was deleted.
- A multipart body that breaks after some parts were stored answers 202 with what was stored; one that breaks
  before anything was stored answers 400.
- Each change feed entry keeps the metadata of its own version of the instance.

These tests look at the files on local disk, so they run with the default storage (blobs under the data
directory) only. Random choices are seeded; the seed is printed (set DICOMWEB_E2E_SEED to replay one).
"""

import hashlib
import io
import os
import random
import shutil
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from dicomweb_helpers import failure_reasons, parts, related_body, sample, value

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("DICOMWEB_E2E_STORAGE")),
    reason="the write path tests inspect the instance files on local disk",
)

TEMPLATE = sample("pydicom/CT_small.dcm")
DICOM_JSON = "application/dicom+json"
ONE_INSTANCE = "application/dicom; transfer-syntax=*"
ALL_INSTANCES = 'multipart/related; type="application/dicom"; transfer-syntax=*'
# Recovery may run in the background right after start; this is how long its results are waited for.
RECOVERY_WAIT = 30.0
# ReaderLimits::default().max_header_bytes in crates/dicomweb-multipart/src/reader.rs.
MULTIPART_HEADER_LIMIT = 16 * 1024
# Pixel data of a "large" instance: 3000 x 3000 x 16 bits = 18 MB, past the 16 MiB memory spool limit (so it is
# spooled to <data-dir>/tmp) and past the 8 MiB multipart threshold of object_store (so it is staged in .staging).
LARGE_PIXELS = (3000, 3000)


# ------------------------------------------------------------------------------------------------------------ instances


@dataclass(frozen=True)
class Instance:
    """One synthetic instance: its UIDs, its bytes and the digest of what the server must give back."""

    study: str
    series: str
    sop: str
    content: bytes
    digest: str

    @property
    def url(self) -> str:
        return f"/studies/{self.study}/series/{self.series}/instances/{self.sop}"

    def without_content(self) -> "Instance":
        """The same instance without its bytes (for large instances that are only compared by digest)."""
        return replace(self, content=b"")


def digest_of(content: bytes) -> str:
    """What identifies an instance's bytes; the 128-byte preamble is left out because the server zeroes it."""
    return hashlib.sha256(content[128:]).hexdigest()


def synthetic_instance(study, series, sop=None, number=1, patient_name="Write^Path", large=False) -> Instance:
    # A fresh parse per instance: Dataset.copy() is shallow, and clients run in parallel threads.
    ds = pydicom.dcmread(io.BytesIO(TEMPLATE))
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SOPInstanceUID = sop or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = number
    ds.PatientName = patient_name
    if large:
        ds.Rows, ds.Columns = LARGE_PIXELS
        ds.PixelData = bytes(LARGE_PIXELS[0] * LARGE_PIXELS[1] * 2)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    content = out.getvalue()
    return Instance(study, series, ds.SOPInstanceUID, content, digest_of(content))


def another_version(instance: Instance, patient_name: str, large=False) -> Instance:
    """The same UIDs with different bytes, as a modality sends after a correction."""
    return synthetic_instance(instance.study, instance.series, instance.sop, patient_name=patient_name, large=large)


# ----------------------------------------------------------------------------------------------------------------- HTTP


def store(server, instances, timeout=120) -> requests.Response:
    body, content_type = related_body([i.content for i in instances])
    return requests.post(
        server.root + "/studies",
        data=body,
        headers={"Content-Type": content_type, "Accept": DICOM_JSON},
        timeout=timeout,
    )


def referenced_sops(response) -> list:
    """ReferencedSOPInstanceUID of each item of the response's ReferencedSOPSequence."""
    return [value(item, "00081155")[0] for item in value(response.json(), "00081199") or []]


def store_all(server, instances, batch=50, clients=3):
    """Stores instances in multipart requests of `batch`, `clients` requests at a time; each must answer 200."""
    batches = [instances[i:i + batch] for i in range(0, len(instances), batch)]
    with ThreadPoolExecutor(clients) as pool:
        for chunk, r in zip(batches, pool.map(lambda chunk: store(server, chunk), batches)):
            assert r.status_code == 200, r.text
            assert sorted(referenced_sops(r)) == sorted(i.sop for i in chunk)


def delete(server, path, timeout=300) -> requests.Response:
    return requests.delete(server.root + path, timeout=timeout)


def retrieve(server, instance) -> requests.Response:
    return requests.get(server.root + instance.url, headers={"Accept": ONE_INSTANCE}, timeout=60)


def metadata_status(server, instance) -> int:
    return requests.get(server.root + instance.url + "/metadata", timeout=30).status_code


def qido(server, resource, **params) -> list:
    """The matches of a search; 204 (no match) is an empty list."""
    r = requests.get(f"{server.root}/{resource}", params=params, timeout=30)
    assert r.status_code in (200, 204), r.text
    return r.json() if r.status_code == 200 else []


def qido_finds_instance(server, sop) -> bool:
    return len(qido(server, "instances", SOPInstanceUID=sop)) == 1


def qido_finds_study(server, study) -> bool:
    return bool(qido(server, "studies", StudyInstanceUID=study))


def catalogued_sops(server, study) -> set:
    """The instances of a study the server knows of, from the study's metadata (404: none)."""
    r = requests.get(f"{server.root}/studies/{study}/metadata", timeout=120)
    assert r.status_code in (200, 404), r.text
    return {m["00080018"]["Value"][0] for m in r.json()} if r.status_code == 200 else set()


def retrieve_study(server, study) -> dict:
    """Every instance of a study retrieved in one multipart response, parsed completely: SOPInstanceUID ->
    digest. A study that does not exist is an empty dict."""
    r = requests.get(f"{server.root}/studies/{study}", headers={"Accept": ALL_INSTANCES}, timeout=300)
    if r.status_code == 404:
        return {}
    assert r.status_code == 200, r.text
    found = {}
    for part in parts(r):
        ds = pydicom.dcmread(io.BytesIO(part.content))
        assert ds.SOPInstanceUID not in found, f"{ds.SOPInstanceUID} is sent twice"
        found[ds.SOPInstanceUID] = digest_of(part.content)
    return found


def change_feed(server, include_metadata=False) -> list:
    """The whole change feed, oldest first (paged by the unversioned rules: `offset` skips entries)."""
    entries = []
    while True:
        r = requests.get(
            f"{server.root}/changefeed",
            params={"offset": len(entries), "limit": 200, "includemetadata": str(include_metadata).lower()},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        if not r.json():
            return entries
        entries.extend(r.json())


def assert_gap_free(feed):
    assert [e["Sequence"] for e in feed] == list(range(1, len(feed) + 1)), "change feed sequences are 1..n"


def last_entry_per_sop(feed) -> dict:
    last = {}
    for entry in feed:
        last[entry["SopInstanceUid"]] = entry
    return last


def is_current_create(entry) -> bool:
    return entry is not None and entry["Action"] == "create" and entry["State"] == "current"


def patient_name_in(entry) -> str:
    names = value(entry["Metadata"] or {}, "00100010")
    return names[0]["Alphabetic"] if names else None


# -------------------------------------------------------------------------------------------------------- files on disk


def blobs(server) -> Path:
    return server.data_dir / "blobs"


def is_file_of(name: str, sop: str) -> bool:
    """`<sop>.dcm` (old layout) or `<sop>_<version>.dcm` (new layout)."""
    return name == f"{sop}.dcm" or (name.startswith(f"{sop}_") and name.endswith(".dcm"))


def files_of(server, instance) -> list:
    folder = blobs(server) / "studies" / instance.study / "series" / instance.series / "instances"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and is_file_of(p.name, instance.sop))


def files_under(folder: Path) -> list:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def study_files(server, study) -> list:
    """Every file under the study's folder in storage: instance files, partial files, anything."""
    return files_under(blobs(server) / "studies" / study)


def instance_files(server) -> Counter:
    """SOPInstanceUID -> number of instance files in storage, over all studies."""
    counts = Counter()
    for path in files_under(blobs(server) / "studies"):
        if path.name.endswith(".dcm"):
            counts[path.name[: -len(".dcm")].split("_", 1)[0]] += 1
    return counts


def leftovers(server) -> dict:
    """What interrupted work leaves behind and recovery must remove."""
    return {
        "spool files in tmp": files_under(server.data_dir / "tmp"),
        "staging blobs": files_under(blobs(server) / ".staging"),
        "partial files (#)": [p for p in files_under(blobs(server)) if "#" in p.name],
    }


def describe(found: dict) -> str:
    return ", ".join(f"{len(paths)} {kind}" for kind, paths in found.items())


# ------------------------------------------------------------------------------------------------------- server control


def eventually(check, timeout=RECOVERY_WAIT, interval=0.2):
    """Runs `check` until it stops raising AssertionError; after `timeout` seconds its last failure stands."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(interval)


def reindex(server):
    """Stops the server, runs `dicomweb reindex` on its data directory (it must succeed) and starts it again."""
    server.stop()
    binary = os.environ.get("DICOMWEB_BIN") or shutil.which("dicomweb")
    done = subprocess.run(
        [binary, "reindex", "--data-dir", str(server.data_dir)], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    server.start()


def seeded_random(name: str) -> random.Random:
    seed = int(os.environ.get("DICOMWEB_E2E_SEED") or random.SystemRandom().randrange(2**32))
    print(f"{name}: seed {seed} (DICOMWEB_E2E_SEED={seed} replays it)")
    return random.Random(seed)


# ----------------------------------------------------------------------------------------------------------- assertions


def assert_stored_whole(server, instance):
    """Retrievable byte for byte, in metadata and QIDO, with exactly one file."""
    r = retrieve(server, instance)
    assert r.status_code == 200, (
        f"acknowledged {instance.sop} is not retrievable: {r.status_code} {r.text[:200]} "
        f"(metadata {metadata_status(server, instance)}, QIDO finds it: {qido_finds_instance(server, instance.sop)}, "
        f"files: {len(files_of(server, instance))})"
    )
    assert digest_of(r.content) == instance.digest, f"{instance.sop} comes back with other bytes than were stored"
    assert metadata_status(server, instance) == 200, f"acknowledged {instance.sop} has no metadata"
    assert qido_finds_instance(server, instance.sop), f"acknowledged {instance.sop} is not found by QIDO"
    files = files_of(server, instance)
    assert len(files) == 1, f"acknowledged {instance.sop} has {len(files)} files: {files}"


def assert_not_stored(server, instance):
    """404 for WADO and metadata, not found by QIDO, no file."""
    assert retrieve(server, instance).status_code == 404, f"{instance.sop} is retrievable"
    assert metadata_status(server, instance) == 404, f"{instance.sop} has metadata"
    assert not qido_finds_instance(server, instance.sop), f"{instance.sop} is found by QIDO"
    assert files_of(server, instance) == [], f"{instance.sop} still has files"


def assert_study_gone_from_qido(server, study):
    assert not qido_finds_study(server, study), "QIDO still finds the study"


def assert_study_gone(server, study):
    """Neither QIDO (study and instance level), WADO nor metadata knows the study."""
    assert not qido_finds_study(server, study), "QIDO finds the deleted study"
    assert qido(server, "instances", StudyInstanceUID=study) == [], "QIDO finds instances of the deleted study"
    r = requests.get(f"{server.root}/studies/{study}", headers={"Accept": ALL_INSTANCES}, timeout=60)
    assert r.status_code == 404, f"WADO retrieves the deleted study: {r.status_code}"
    r = requests.get(f"{server.root}/studies/{study}/metadata", timeout=60)
    assert r.status_code == 404, f"the deleted study has metadata: {r.status_code}"


def assert_no_study_files(server, study):
    files = study_files(server, study)
    assert files == [], f"{len(files)} files of the deleted study remain, e.g. {files[:3]}"


def assert_no_leftovers(server):
    found = leftovers(server)
    assert not any(found.values()), f"recovery left {describe(found)}: {[p for ps in found.values() for p in ps][:5]}"


# ------------------------------------------------------------------------------------------------ 1. delete vs re-store


def test_a_study_deleted_while_its_instances_are_stored_again_keeps_exactly_the_acknowledged_stores(make_server):
    """A DELETE of a 600-instance study runs while 100 of its instances are stored again (new bytes, same UIDs,
    8 at a time, starting as soon as QIDO no longer finds the study). After the delete's 204, each re-store that
    answered 200 is retrievable byte for byte, in metadata and QIDO, with exactly one file; every other instance
    of the study is gone with no file; a study retrieve holds exactly the re-stored instances; the change feed's
    last entry per SOP says the same."""
    rng = seeded_random("delete vs re-store")
    server = make_server()
    study = generate_uid()
    series = [generate_uid() for _ in range(3)]
    originals = [synthetic_instance(study, series[n % 3], number=n) for n in range(600)]
    store_all(server, originals)
    chosen = rng.sample(originals, 100)
    again = [another_version(i, "Stored^Again") for i in chosen]

    with ThreadPoolExecutor(1) as background:
        deletion = background.submit(delete, server, f"/studies/{study}")
        eventually(lambda: assert_study_gone_from_qido(server, study), timeout=120, interval=0.005)
        with ThreadPoolExecutor(8) as clients:
            statuses = dict(zip((i.sop for i in again), clients.map(lambda i: store(server, [i]).status_code, again)))
        assert deletion.result().status_code == 204
    acknowledged = {sop for sop, status in statuses.items() if status == 200}
    print(f"re-stores during the delete: {Counter(statuses.values())}")

    for instance in again:
        if instance.sop in acknowledged:
            assert_stored_whole(server, instance)
        else:
            assert_not_stored(server, instance)
    restored = {i.sop: i.digest for i in again if i.sop in acknowledged}
    assert retrieve_study(server, study) == restored, "a study retrieve sends exactly the re-stored instances"
    assert catalogued_sops(server, study) == set(restored)
    for instance in originals:
        if instance.sop not in acknowledged:
            assert files_of(server, instance) == [], f"deleted {instance.sop} still has a file"
    last = last_entry_per_sop(change_feed(server))
    for instance in originals:
        entry = last.get(instance.sop)
        if instance.sop in acknowledged:
            assert is_current_create(entry), f"re-stored {instance.sop}: last change feed entry {entry}"
        else:
            assert entry["Action"] == "delete", f"deleted {instance.sop}: last change feed entry {entry}"


# --------------------------------------------------------------------------------------------- 2. deleted stays deleted


def test_a_study_deleted_when_the_server_is_killed_stays_deleted_through_restart_reindex_and_a_lost_index(
    make_server,
):
    """The server is killed -9 as soon as QIDO no longer finds a 1500-instance study being deleted (its files may
    still be being removed). After restart the study is not found by QIDO, WADO or metadata, and within the
    recovery wait no file of it remains; `dicomweb reindex` adds no create entry and does not bring it back;
    neither does a start with the index directory deleted."""
    server = make_server()
    study = generate_uid()
    series = [generate_uid() for _ in range(3)]
    store_all(server, [synthetic_instance(study, series[n % 3], number=n) for n in range(1500)])

    with ThreadPoolExecutor(1) as background:
        deletion = background.submit(delete, server, f"/studies/{study}")
        eventually(lambda: assert_study_gone_from_qido(server, study), timeout=120, interval=0.005)
        server.kill()
        try:
            deletion.result()
        except requests.RequestException:
            pass  # the server died under it
    print(f"files of the study at the kill: {len(study_files(server, study))}")

    server.start()
    assert_study_gone(server, study)
    eventually(lambda: assert_no_study_files(server, study))

    feed_before = change_feed(server)
    reindex(server)
    assert_study_gone(server, study)
    feed_after = change_feed(server)
    assert [e for e in feed_after[len(feed_before):] if e["Action"] == "create"] == [], "reindex adds no instance"
    assert not [e for e in feed_after if is_current_create(e)], "no instance of the deleted study is current"
    assert_no_study_files(server, study)

    server.stop()
    shutil.rmtree(server.data_dir / "index")
    server.start()
    assert_study_gone(server, study)
    last = last_entry_per_sop(change_feed(server))
    assert not [e for e in last.values() if e["StudyInstanceUid"] == study and is_current_create(e)]
    assert_no_study_files(server, study)


def test_a_delete_answered_204_has_already_removed_every_file(make_server):
    """Once a DELETE of a study, a series or an instance has answered 204, none of its files is on disk."""
    server = make_server()
    study, other = generate_uid(), generate_uid()
    series = [generate_uid() for _ in range(2)]
    instances = [synthetic_instance(study, series[n % 2], number=n) for n in range(200)]
    others = [synthetic_instance(other, generate_uid(), number=n) for n in range(4)]
    store_all(server, instances + others)

    single = others[0]
    assert delete(server, single.url).status_code == 204
    assert files_of(server, single) == [], "a deleted instance keeps its file"
    assert delete(server, f"/studies/{other}/series/{others[1].series}").status_code == 204
    assert files_of(server, others[1]) == [], "a deleted series keeps its file"
    assert delete(server, f"/studies/{study}").status_code == 204
    assert_no_study_files(server, study)
    for instance in others[2:]:
        assert len(files_of(server, instance)) == 1, "instances outside the deleted scopes keep their files"


# --------------------------------------------------------------------------------------------------- 3. crash leftovers


def test_kill_9_during_concurrent_stores_leaves_nothing_after_recovery_and_reindex_adds_nothing(make_server):
    """12 clients store one instance per request (two of them 18 MB instances, which are spooled to tmp and
    staged), and the server is killed -9 at a random moment four times. After the last restart and the recovery
    wait there is no spool file, staging blob or partial file; the instance files are exactly the catalogued
    instances, one each; every acknowledged instance is retrievable byte for byte; `dicomweb reindex` catalogues
    no further instance."""
    rng = seeded_random("crash leftovers")
    server = make_server()
    study = generate_uid()
    attempted = {}  # SOPInstanceUID -> Instance (without content)
    acknowledged = set()
    lock = threading.Lock()

    def client(worker: int, stop: threading.Event):
        series = generate_uid()
        number = 0
        while not stop.is_set():
            number += 1
            instance = synthetic_instance(study, series, number=number, large=worker < 2)
            with lock:
                attempted[instance.sop] = instance.without_content()
            try:
                r = store(server, [instance], timeout=60)
            except requests.RequestException:
                return  # the server died under us
            if r.status_code == 200:
                with lock:
                    acknowledged.add(instance.sop)

    for round_number in range(4):
        stop = threading.Event()
        clients = [threading.Thread(target=client, args=(k, stop)) for k in range(12)]
        for t in clients:
            t.start()
        time.sleep(rng.uniform(1.0, 4.0))
        server.kill()
        stop.set()
        for t in clients:
            t.join(timeout=60)
        orphans = set(instance_files(server)) - acknowledged
        print(f"kill {round_number + 1}: {len(acknowledged)} acknowledged so far; left {describe(leftovers(server))}, "
              f"{len(orphans)} unacknowledged instance files")
        server.start()
    assert len(acknowledged) > 20, f"the storm was too small to mean anything: {len(acknowledged)}"

    eventually(lambda: assert_no_leftovers(server))
    catalogued = catalogued_sops(server, study)

    def files_are_the_catalogued_instances():
        files = instance_files(server)
        assert set(files) == catalogued, (
            f"{len(set(files) - catalogued)} instance files belong to no catalogued instance, "
            f"{len(catalogued - set(files))} catalogued instances have no file"
        )
        assert [sop for sop, n in files.items() if n != 1] == [], "each instance has exactly one file"

    eventually(files_are_the_catalogued_instances)
    assert acknowledged <= catalogued, f"{len(acknowledged - catalogued)} acknowledged instances are lost"
    assert catalogued <= set(attempted)
    for sop in sorted(catalogued):
        instance = attempted[sop]
        r = retrieve(server, instance)
        assert r.status_code == 200, f"catalogued {sop} is not retrievable: {r.status_code}"
        assert digest_of(r.content) == instance.digest, f"catalogued {sop} is not whole"

    reindex(server)
    assert catalogued_sops(server, study) == catalogued, "reindex adds no instance and loses none"
    files_are_the_catalogued_instances()


# -------------------------------------------------------------------------------------------------- 4. broken multipart

BOUNDARY = "WritePathBoundary"
CLOSING_DELIMITER = f"--{BOUNDARY}--\r\n".encode()
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary="{BOUNDARY}"'


def part(content: bytes, headers=("Content-Type: application/dicom",)) -> bytes:
    head = f"--{BOUNDARY}\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n"
    return head.encode() + content + b"\r\n"


def truncated_part(content: bytes) -> bytes:
    """Half a part, and the body ends there: no closing delimiter."""
    return part(content)[: len(content) // 2]


def part_with_malformed_header(content: bytes) -> bytes:
    headers = ("Content-Type: application/dicom", "this header line has no colon")
    return part(content, headers=headers) + CLOSING_DELIMITER


def part_with_oversized_header(content: bytes) -> bytes:
    padding = "X-Padding: " + "a" * (2 * MULTIPART_HEADER_LIMIT)
    return part(content, headers=("Content-Type: application/dicom", padding)) + CLOSING_DELIMITER


BREAKAGES = {
    "truncated": truncated_part,
    "malformed-header": part_with_malformed_header,
    "oversized-header": part_with_oversized_header,
}


def post_body(server, body: bytes) -> requests.Response:
    return requests.post(
        server.root + "/studies", data=body, headers={"Content-Type": CONTENT_TYPE, "Accept": DICOM_JSON}, timeout=60
    )


@pytest.mark.parametrize("breakage", BREAKAGES, ids=list(BREAKAGES))
def test_a_body_that_breaks_after_five_stored_parts_is_202_with_the_five_stored(make_server, breakage):
    """Five good parts then a broken sixth (truncated with no closing delimiter, a header line without a colon,
    a header block past the reader's limit): 202, the five in ReferencedSOPSequence and one FailedSOPSequence item
    with FailureReason 272. The five are retrievable byte for byte and a retry of them answers 409; the sixth is
    not stored, and storing it whole afterwards answers 200."""
    server = make_server()
    study, series = generate_uid(), generate_uid()
    good = [synthetic_instance(study, series, number=n) for n in range(5)]
    sixth = synthetic_instance(study, series, number=6)
    body = b"".join(part(i.content) for i in good) + BREAKAGES[breakage](sixth.content)

    r = post_body(server, body)
    assert r.status_code == 202, f"{r.status_code} {r.text[:300]}"
    assert sorted(referenced_sops(r)) == sorted(i.sop for i in good)
    assert failure_reasons(r.json()) == [272]

    for instance in good:
        assert_stored_whole(server, instance)
    assert_not_stored(server, sixth)
    again = store(server, good)
    assert again.status_code == 409, again.text
    assert failure_reasons(again.json()) == [45070] * 5
    assert store(server, [sixth]).status_code == 200


@pytest.mark.parametrize("breakage", BREAKAGES, ids=list(BREAKAGES))
def test_a_body_broken_in_its_first_part_is_400_and_stores_nothing(make_server, breakage):
    """A body whose first part is broken (five good parts follow, when the break leaves any) answers 400 and
    stores nothing."""
    server = make_server()
    study, series = generate_uid(), generate_uid()
    first = synthetic_instance(study, series, number=1)
    rest = [synthetic_instance(study, series, number=n) for n in range(2, 7)]
    if breakage == "truncated":
        body = truncated_part(first.content)
    else:
        body = BREAKAGES[breakage](first.content)[: -len(CLOSING_DELIMITER)]
        body += b"".join(part(i.content) for i in rest) + CLOSING_DELIMITER

    r = post_body(server, body)
    assert r.status_code == 400, f"{r.status_code} {r.text[:300]}"
    for instance in [first, *rest]:
        assert_not_stored(server, instance)
    assert files_under(blobs(server) / "studies") == []
    assert change_feed(server) == []


# ------------------------------------------------------------------------------------------------------- 5. change feed


def test_each_change_feed_entry_keeps_the_metadata_of_its_own_version_also_across_restarts(make_server):
    """Store an instance with PatientName A, delete it, store the same UIDs with PatientName B: the change feed is
    1 create/replaced with A, 2 delete/deleted with A, 3 create/current with B; the same after a clean restart
    and after kill -9."""
    server = make_server()
    study, series = generate_uid(), generate_uid()
    version_a = synthetic_instance(study, series, patient_name="Version^A")
    version_b = another_version(version_a, "Version^B")
    assert store(server, [version_a]).status_code == 200
    assert delete(server, version_a.url).status_code == 204
    assert store(server, [version_b]).status_code == 200
    expected = [
        (1, "create", "replaced", "Version^A"),
        (2, "delete", "deleted", "Version^A"),
        (3, "create", "current", "Version^B"),
    ]

    def feed_says_what_happened():
        feed = change_feed(server, include_metadata=True)
        got = [(e["Sequence"], e["Action"], e["State"], patient_name_in(e)) for e in feed]
        assert got == expected, "each entry keeps the metadata of its own version"
        assert {e["SopInstanceUid"] for e in feed} == {version_a.sop}
        latest = requests.get(f"{server.root}/changefeed/latest", params={"includemetadata": "true"}, timeout=30)
        assert latest.status_code == 200 and latest.json()["Sequence"] == 3
        assert patient_name_in(latest.json()) == "Version^B"

    feed_says_what_happened()
    server.stop()
    server.start()
    feed_says_what_happened()
    server.kill()
    server.start()
    feed_says_what_happened()
    assert_stored_whole(server, version_b)


# ----------------------------------------------------------------------------------------------- 6. random interleaving

PRESENT, ABSENT, UNKNOWN = "present", "absent", "unknown"


class Model:
    """What the server must show for each SOP of the pool: present (with known bytes, or bytes to adopt), absent,
    or unknown (an operation on it was interrupted by a kill; the next check adopts what the server shows)."""

    def __init__(self, pool):
        self.pool = pool
        self.state = {i.sop: ABSENT for i in pool}
        self.digest = {}

    def stored(self, sop, digest):
        self.state[sop], self.digest[sop] = PRESENT, digest

    def already_there(self, sop, step):
        assert self.state[sop] != ABSENT, f"step {step}: store of absent {sop} answered 409"
        if self.state[sop] == UNKNOWN:
            self.state[sop], self.digest[sop] = PRESENT, None

    def deleted(self, sop):
        self.state[sop] = ABSENT
        self.digest.pop(sop, None)

    def forget(self, sop):
        self.state[sop] = UNKNOWN
        self.digest.pop(sop, None)


def scope_of(path: str, pool) -> list:
    """The pool instances a DELETE path covers."""
    return [i for i in pool if i.url == path or i.url.startswith(path + "/")]


def random_scope(rng, pool) -> str:
    instance = rng.choice(pool)
    series = f"/studies/{instance.study}/series/{instance.series}"
    return rng.choice([instance.url, series, f"/studies/{instance.study}"])


def check_agreement(server, model: Model, step: str, after_restart: bool):
    """QIDO, WADO, metadata and the change feed agree with each other and with the model where it is known
    (adopting what they show where it is not); the files agree too, once recovery has settled."""
    feed = change_feed(server)
    assert_gap_free(feed)
    last = last_entry_per_sop(feed)
    current = Counter(e["SopInstanceUid"] for e in feed if e["State"] == "current")
    present = {}
    for instance in model.pool:
        sop = instance.sop
        r = retrieve(server, instance)
        seen = {
            "qido": qido_finds_instance(server, sop),
            "wado": r.status_code == 200,
            "metadata": metadata_status(server, instance) == 200,
            "change feed": is_current_create(last.get(sop)),
        }
        assert len(set(seen.values())) == 1, f"{step}: {sop} is seen inconsistently: {seen}, feed {last.get(sop)}"
        assert r.status_code in (200, 404), f"{step}: WADO of {sop} answered {r.status_code}"
        is_present = seen["qido"]
        assert current[sop] == int(is_present), f"{step}: {sop} has {current[sop]} current change feed entries"
        if model.state[sop] != UNKNOWN:
            assert is_present == (model.state[sop] == PRESENT), f"{step}: {sop} should be {model.state[sop]}: {seen}"
        if is_present:
            if model.digest.get(sop) is not None:
                assert digest_of(r.content) == model.digest[sop], f"{step}: {sop} comes back with other bytes"
            model.stored(sop, digest_of(r.content))
        else:
            model.deleted(sop)
        present[sop] = is_present

    def files_agree():
        files = instance_files(server)
        wrong = {
            sop: f"{files[sop]} files, {'present' if present[sop] else 'absent'}"
            for sop in present
            if files[sop] != int(present[sop])
        }
        assert not wrong, f"{step}: an instance has one file iff it is present: {wrong}"
        assert set(files) <= set(present), f"{step}: files of instances never stored: {set(files) - set(present)}"

    if after_restart:
        eventually(files_agree)
        eventually(lambda: assert_no_leftovers(server))
    else:
        files_agree()


def test_random_interleavings_of_stores_deletes_kills_and_reindexes_keep_every_view_consistent(make_server):
    """50 seeded random steps over a pool of 2 studies x 2 series x 4 instances: concurrent stores of 1-8
    instances (some of 18 MB), concurrent identical stores, deletes of an instance, series or study, a delete
    racing stores of instances in its scope, kill -9 during concurrent stores and a delete, and stop + reindex +
    start. After each step QIDO, WADO, metadata, the change feed and
    the files agree with each other and with a model of the acknowledged outcomes."""
    rng = seeded_random("random interleaving")
    server = make_server()
    pool = []
    for _ in range(2):
        study = generate_uid()
        for _ in range(2):
            series = generate_uid()
            pool += [synthetic_instance(study, series, number=n) for n in range(4)]
    model = Model(pool)
    versions = iter(range(1, 10**6))

    def fresh(instance, large=False):
        return another_version(instance, f"Version^{next(versions)}", large=large)

    def store_concurrently(step, instances):
        with ThreadPoolExecutor(8) as clients:
            statuses = list(clients.map(lambda i: store(server, [i]).status_code, instances))
        for instance, status in zip(instances, statuses):
            assert status in (200, 409), f"step {step}: store of {instance.sop} answered {status}"
            if status == 200:
                assert model.state[instance.sop] != PRESENT, f"step {step}: {instance.sop} was stored twice"
                model.stored(instance.sop, instance.digest)
            else:
                model.already_there(instance.sop, step)

    def store_identical_copies(step, instance, copies):
        with ThreadPoolExecutor(copies) as clients:
            statuses = Counter(clients.map(lambda _: store(server, [instance]).status_code, range(copies)))
        assert set(statuses) <= {200, 409}, f"step {step}: {statuses}"
        before = model.state[instance.sop]
        if before == ABSENT:
            assert statuses[200] == 1, f"step {step}: {copies} identical stores of an absent instance: {statuses}"
        elif before == PRESENT:
            assert statuses[409] == copies, f"step {step}: stores of a present instance: {statuses}"
        else:
            assert statuses[200] <= 1, f"step {step}: {statuses}"
        if statuses[200]:
            model.stored(instance.sop, instance.digest)
        else:
            model.already_there(instance.sop, step)

    def delete_scope(step, path):
        covered = scope_of(path, pool)
        r = delete(server, path)
        assert r.status_code in (204, 404), f"step {step}: DELETE {path} answered {r.status_code}"
        if r.status_code == 404:
            assert not [i.sop for i in covered if model.state[i.sop] == PRESENT], f"step {step}: {path} was there"
        else:
            assert [i for i in covered if model.state[i.sop] != ABSENT], f"step {step}: {path} was not there"
        for instance in covered:
            model.deleted(instance.sop)

    def race(step, instances, path, kill):
        """Stores of `instances` (each sent after a random delay of up to 30 ms) and, if `path`, a DELETE run
        concurrently; with `kill`, the server is killed -9 at a random moment and restarted."""

        def delayed_store(instance, delay):
            time.sleep(delay)
            return store(server, [instance])

        with ThreadPoolExecutor(9) as clients:
            deletion = clients.submit(delete, server, path) if path else None
            stores = [(i, clients.submit(delayed_store, i, rng.uniform(0, 0.03))) for i in instances]
            if kill:
                time.sleep(rng.uniform(0.0, 0.1))
                server.kill()

        def status_of(future):
            try:
                return future.result().status_code
            except requests.RequestException:
                assert kill, f"step {step}: a request failed although the server was not killed"
                return None  # interrupted by the kill: its outcome is unknown

        covered = {i.sop for i in scope_of(path, pool)} if path else set()
        stored_too = {i.sop for i in instances}
        for instance, future in stores:
            status = status_of(future)
            if status is None or instance.sop in covered:
                model.forget(instance.sop)  # interrupted, or ordered against the delete in a way we cannot see
            elif status == 200:
                assert model.state[instance.sop] != PRESENT, f"step {step}: {instance.sop} was stored twice"
                model.stored(instance.sop, instance.digest)
            else:
                assert status == 409, f"step {step}: store of {instance.sop} answered {status}"
                model.already_there(instance.sop, step)
        if deletion is not None:
            status = status_of(deletion)
            for sop in covered - stored_too:
                if status is None:
                    model.forget(sop)
                elif status == 204:
                    model.deleted(sop)
                else:
                    assert status == 404, f"step {step}: DELETE {path} answered {status}"
                    assert model.state[sop] != PRESENT, f"step {step}: DELETE {path} did not find {sop}"
                    model.deleted(sop)
        if kill:
            server.start()

    def some_fresh_versions():
        """1-8 instances of the pool with new bytes; some of them 18 MB (spooled to disk, staged, slower)."""
        return [fresh(i, large=rng.random() < 0.15) for i in rng.sample(pool, rng.randint(1, 8))]

    kinds = ["store"] * 6 + ["identical"] * 2 + ["delete"] * 4 + ["race"] * 3 + ["crash"] * 4 + ["reindex"] * 2
    tally = Counter()
    started = time.monotonic()
    for step in range(50):
        kind = rng.choice(kinds)
        tally[kind] += 1
        label = f"step {step} ({kind})"
        if kind == "store":
            store_concurrently(label, some_fresh_versions())
        elif kind == "identical":
            store_identical_copies(label, fresh(rng.choice(pool)), rng.randint(2, 4))
        elif kind == "delete":
            delete_scope(label, random_scope(rng, pool))
        elif kind == "race":
            race(label, some_fresh_versions(), random_scope(rng, pool), kill=False)
        elif kind == "crash":
            path = random_scope(rng, pool) if rng.random() < 0.7 else None
            race(label, some_fresh_versions(), path, kill=True)
        else:
            reindex(server)
        check_agreement(server, model, label, after_restart=kind in ("crash", "reindex"))
    print(f"steps: {dict(tally)}; {time.monotonic() - started:.0f} s; final: {Counter(model.state.values())}")
