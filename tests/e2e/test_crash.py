"""Durability: instances acknowledged with 200 survive kill -9; nothing half-stored ever becomes visible."""

import io
import threading
import time

import pydicom
import requests
from pydicom.uid import generate_uid

from dicomweb_helpers import related_body, sample

TEMPLATE = sample("pydicom/CT_small.dcm")


def synthetic_instance(study: str, series: str, number: int):
    # A fresh parse per instance: Dataset.copy() is shallow, and the clients run in parallel threads.
    ds = pydicom.dcmread(io.BytesIO(TEMPLATE))
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = number
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return ds.SOPInstanceUID, out.getvalue()


def store_storm(server, study: str, seconds: float, clients: int = 4):
    """`clients` threads store new instances of `study` until `seconds` have passed or the server dies; returns
    the acknowledged (series, sop) pairs and every attempted instance by SOP."""
    acknowledged = []
    attempted = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int):
        series = generate_uid()
        number = 0
        while not stop.is_set():
            number += 1
            sop, content = synthetic_instance(study, series, number)
            with lock:
                attempted[sop] = content
            body, content_type = related_body([content])
            try:
                r = requests.post(server.root + "/studies", data=body, headers={"Content-Type": content_type}, timeout=10)
            except requests.RequestException:
                return  # the server died under us
            if r.status_code == 200:
                with lock:
                    acknowledged.append((series, sop))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    return threads, stop, acknowledged, attempted


def end_storm(threads, stop):
    stop.set()
    for t in threads:
        t.join(timeout=30)


def assert_acknowledged_stores_survived(server, study, acknowledged, attempted):
    """After a restart: every acknowledged instance is in metadata, the change feed, WADO and QIDO (whose index
    must catch up with the catalogue first); whatever is visible is whole; the feed is gap-free."""
    root = server.root
    feed = []
    while True:
        page = requests.get(f"{root}/v1/changefeed", params={"offset": len(feed), "limit": 100, "includemetadata": "false"}).json()
        if not page:
            break
        feed.extend(page)
    assert [e["Sequence"] for e in feed] == list(range(1, len(feed) + 1)), "sequence numbers are gap-free"
    in_feed = {e["SopInstanceUid"] for e in feed}

    r = requests.get(f"{root}/studies/{study}/metadata")
    assert r.status_code == 200
    catalogued = {m["00080018"]["Value"][0] for m in r.json()}
    for series, sop in acknowledged:
        assert sop in catalogued, f"acknowledged instance {sop} is lost"
        assert sop in in_feed, f"acknowledged instance {sop} is missing from the change feed"
        r = requests.get(f"{root}/studies/{study}/series/{series}/instances/{sop}", headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert r.status_code == 200, r.text
        assert pydicom.dcmread(io.BytesIO(r.content)).SOPInstanceUID == sop
        r = requests.get(f"{root}/instances", params={"SOPInstanceUID": sop})
        assert r.status_code == 200 and len(r.json()) == 1
    # Whatever is visible is whole: every catalogued instance can be read back completely.
    assert catalogued <= set(attempted)
    assert catalogued == in_feed
    found = set()
    while True:
        r = requests.get(f"{root}/studies/{study}/instances", params={"offset": len(found), "limit": 100})
        assert r.status_code in (200, 204), r.text
        page = r.json() if r.status_code == 200 else []
        found |= {i["00080018"]["Value"][0] for i in page}
        if len(page) < 100:
            break
    assert found == catalogued, "QIDO finds exactly the catalogued instances"
    r = requests.get(f"{root}/studies/{study}", headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    from requests_toolbelt.multipart.decoder import MultipartDecoder

    for part in MultipartDecoder.from_response(r).parts:
        ds = pydicom.dcmread(io.BytesIO(part.content))
        assert part.content[128:] == attempted[ds.SOPInstanceUID][128:], "visible instances are whole"
    return catalogued


def test_kill_9_during_a_store_storm_loses_nothing_acknowledged(make_server):
    server = make_server()
    study = generate_uid()
    threads, stop, acknowledged, attempted = store_storm(server, study, seconds=3)
    server.kill()
    end_storm(threads, stop)
    assert len(acknowledged) > 20, f"the storm was too small to mean anything: {len(acknowledged)}"

    server.start()  # same data directory
    catalogued = assert_acknowledged_stores_survived(server, study, acknowledged, attempted)

    # Instances in flight at the kill were never acknowledged; storing them again succeeds (no orphan trips it up).
    unacknowledged = [sop for sop in attempted if sop not in catalogued]
    for sop in unacknowledged:
        body, content_type = related_body([attempted[sop]])
        r = requests.post(f"{server.root}/studies", data=body, headers={"Content-Type": content_type})
        assert r.status_code == 200, r.text


def test_kill_9_while_the_search_index_commits_in_the_background_loses_nothing_acknowledged(make_server):
    # The search index commits 250 ms after a store (follower.rs); killing 0.15-0.40 s after the last
    # acknowledged store lands before, during and after that commit. The catalogue is the record: the restarted
    # server's index catches up from its watermark and every search finds every acknowledged instance.
    server = make_server()
    study = generate_uid()
    acknowledged, attempted = [], {}
    for delay in (0.15, 0.22, 0.26, 0.30, 0.40):
        threads, stop, acked, tried = store_storm(server, study, seconds=0.8)
        end_storm(threads, stop)
        time.sleep(delay)
        server.kill()
        acknowledged += acked
        attempted.update(tried)
        server.start()
        assert_acknowledged_stores_survived(server, study, acknowledged, attempted)
    assert len(acknowledged) > 20, f"the storms were too small to mean anything: {len(acknowledged)}"


def test_kill_9_during_recovery_at_start_loses_nothing_acknowledged(make_server):
    # A crash leaves spool files, partial uploads and an index behind the catalogue; the next start recovers
    # them (before serving) and sweeps and catches up (in the background). Killed again at points of that
    # recovery, the server still loses nothing acknowledged and shows nothing half-stored.
    server = make_server()
    study = generate_uid()
    acknowledged, attempted = [], {}
    for delay in (0.0, 0.05, 0.15, 0.4):
        threads, stop, acked, tried = store_storm(server, study, seconds=1.0)
        server.kill()
        end_storm(threads, stop)
        acknowledged += acked
        attempted.update(tried)
        server.start(wait_until_healthy=False)
        time.sleep(delay)
        server.kill()
        server.start()
        assert_acknowledged_stores_survived(server, study, acknowledged, attempted)
    assert len(acknowledged) > 20, f"the storms were too small to mean anything: {len(acknowledged)}"


SAMPLES_STUDY = "1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420"


def test_a_power_cut_that_loses_unflushed_files_loses_nothing_acknowledged(make_server):
    """Small stores on local disk are acknowledged before their files are flushed: the catalogue commit carries a
    copy of each file. With the flush an hour away, every file stored here is only in the page cache; the power
    cut is played by kill -9 and then deleting or zeroing every instance file, as a lost page cache leaves them."""
    import re

    server = make_server(extra_args=["--store-flush-delay-ms", "3600000"])
    study = generate_uid()
    threads, stop, acknowledged, attempted = store_storm(server, study, seconds=2)
    server.kill()
    end_storm(threads, stop)
    assert len(acknowledged) > 10, f"the storm was too small to mean anything: {len(acknowledged)}"
    files = sorted((server.data_dir / "blobs").rglob("*.dcm"))
    assert len(files) >= len(acknowledged)
    for i, path in enumerate(files):
        if i % 2:
            path.unlink()
        else:
            path.write_bytes(bytes(path.stat().st_size))

    server.start()
    assert_acknowledged_stores_survived(server, study, acknowledged, attempted)
    server.log.flush()
    log = (server.data_dir.parent / "server.log").read_text(errors="replace")
    recoveries = re.findall(r"copies_intact=(\d+) copies_rewritten=(\d+)", log)
    assert recoveries, "recovery at start reports the copies it checked"
    intact, rewritten = map(int, recoveries[-1])
    assert intact == 0 and rewritten >= len(acknowledged), (intact, rewritten, len(acknowledged))


def store_the_three_samples(server):
    """Stores the tutorial's three instances in one request; returns their study metadata."""
    body, content_type = related_body([sample("red-triangle.dcm"), sample("green-square.dcm"), sample("blue-circle.dcm")])
    assert requests.post(server.root + "/studies", data=body, headers={"Content-Type": content_type}).status_code == 200
    return requests.get(f"{server.root}/studies/{SAMPLES_STUDY}/metadata").json()


def assert_the_three_samples_are_served(server, metadata_before):
    """The samples' study has the same metadata as before and is found by QIDO with its three instances."""
    after = requests.get(f"{server.root}/studies/{SAMPLES_STUDY}/metadata")
    assert after.status_code == 200
    key = lambda m: m["00080018"]["Value"][0]  # noqa: E731
    assert sorted(after.json(), key=key) == sorted(metadata_before, key=key)
    r = requests.get(f"{server.root}/studies", params={"PatientID": "ID1"})
    assert r.status_code == 200 and r.json()[0]["00201208"]["Value"] == [3]


def test_a_server_with_a_lost_search_index_rebuilds_it_from_the_catalogue(make_server):
    import shutil

    server = make_server()
    before = store_the_three_samples(server)
    server.stop()

    shutil.rmtree(server.data_dir / "index")  # derived data: replayed from the catalogue of record
    server.start()
    assert_the_three_samples_are_served(server, before)
    assert len(requests.get(f"{server.root}/changefeed").json()) == 3


def test_a_server_that_lost_its_data_directory_rebuilds_the_catalogue_from_storage(make_server):
    import shutil

    server = make_server()
    before = store_the_three_samples(server)
    server.stop()

    # The node lost its local disk (catalogue and index); storage survived.
    shutil.rmtree(server.data_dir / "index")
    shutil.rmtree(server.data_dir / "catalogue")
    server.start()
    assert_the_three_samples_are_served(server, before)
    # A new history starts: one create entry per instance.
    assert [e["Action"] for e in requests.get(f"{server.root}/changefeed").json()] == ["create"] * 3


def test_an_index_of_an_older_schema_is_set_aside_and_rebuilt(make_server):
    server = make_server()
    body, content_type = related_body([sample("red-triangle.dcm"), sample("green-square.dcm")])
    assert requests.post(server.root + "/studies", data=body, headers={"Content-Type": content_type}).status_code == 200
    server.stop()
    [version_file] = (server.data_dir / "index").glob("*schema-version")
    version_file.write_text("1\n")  # as written by an older build

    server.start()
    study = "1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420"
    r = requests.get(f"{server.root}/studies/{study}/metadata")
    assert r.status_code == 200 and len(r.json()) == 2
    assert list(server.data_dir.glob("index-schema-1-*")), "the old index is kept aside, not deleted"


def test_reindex_command_rebuilds_the_search_index_from_the_catalogue(make_server):
    import os
    import shutil
    import subprocess

    server = make_server()
    body, content_type = related_body([sample("red-triangle.dcm"), sample("blue-circle.dcm")])
    assert requests.post(server.root + "/studies", data=body, headers={"Content-Type": content_type}).status_code == 200
    server.stop()
    shutil.rmtree(server.data_dir / "index")

    command = [os.environ["DICOMWEB_BIN"], "reindex", "--data-dir", str(server.data_dir)]
    if server.storage:
        command += ["--storage", server.storage]
    done = subprocess.run(
        command,
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "reindex finished" in done.stderr and "instances=2" in done.stderr, done.stderr

    server.start()
    r = requests.get(f"{server.root}/instances")
    assert r.status_code == 200 and len(r.json()) == 2


def test_check_command_reports_reachable_and_unreachable_storage(tmp_path):
    import os
    import subprocess

    from conftest import free_port

    binary = os.environ["DICOMWEB_BIN"]
    ok = subprocess.run([binary, "check", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "reachable and writable" in ok.stdout

    closed = free_port()  # nothing listens there
    env = dict(
        {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_"))},
        AWS_ENDPOINT=f"http://127.0.0.1:{closed}",
        AWS_ALLOW_HTTP="true",
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_REGION="us-east-1",
    )
    failed = subprocess.run(
        [binary, "check", "--data-dir", str(tmp_path), "--storage", "s3://no-such-bucket/prefix"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert failed.returncode != 0
    assert "s3://no-such-bucket" in failed.stderr, failed.stderr
