"""STOW-RS of DICOM JSON metadata with bulk data parts (issue 13; PS3.18 10.5).

A `multipart/related; type="application/dicom+json"` request holds a JSON array of data sets and the bulk data
parts their BulkDataURIs name by `Content-Location`. Each data set is stored as a Part 10 file (Explicit VR Little
Endian, or the syntax of a compressed Pixel Data part) and is then retrievable as any other instance. The JSON is
written by pydicom's own `to_json_dict`, as a client would write it.
"""

import json

import pydicom
import requests
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames

JSON_TYPE = 'multipart/related; type="application/dicom+json"; boundary=BOUNDARY'
ANY_SYNTAX = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def body_of(parts) -> bytes:
    """A multipart/related body from (headers, bytes) parts."""
    out = b""
    for headers, content in parts:
        out += b"--BOUNDARY\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"
        out += content + b"\r\n"
    return out + b"--BOUNDARY--\r\n"


def json_and_parts(ds, base="http://client.example/bulk"):
    """The data set as DICOM JSON with every binary value a BulkDataURI, and the parts those URIs name."""
    parts = {}

    def handler(element):
        uri = f"{base}/{element.tag:08X}"
        parts[uri] = bytes(element.value)
        return uri

    document = ds.to_json_dict(bulk_data_threshold=0, bulk_data_element_handler=handler)
    return document, parts


def post(server, documents, parts):
    body = body_of([({"Content-Type": "application/dicom+json"}, json.dumps(documents).encode())] +
                   [({"Content-Type": content_type, "Content-Location": uri}, content)
                    for uri, (content_type, content) in parts.items()])
    return requests.post(f"{server.root}/studies", data=body,
                         headers={"Content-Type": JSON_TYPE, "Accept": "application/dicom+json"})


def retrieve(server, ds) -> pydicom.Dataset:
    r = requests.get(f"{server.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
                     f"{ds.SOPInstanceUID}", headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert r.status_code == 200, r.text[:300]
    from io import BytesIO
    return pydicom.dcmread(BytesIO(r.content))


def test_metadata_and_native_bulk_data_are_stored_as_one_instance(server):
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    document, parts = json_and_parts(original)
    r = post(server, [document], {uri: ("application/octet-stream", content) for uri, content in parts.items()})
    assert r.status_code == 200, r.text[:500]
    [stored] = r.json()["00081199"]["Value"]
    assert stored["00081155"]["Value"] == [original.SOPInstanceUID]

    retrieved = retrieve(server, original)
    assert retrieved.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert retrieved.PixelData == original.PixelData
    assert retrieved[0x00431029].value == original[0x00431029].value
    assert retrieved.PatientName == original.PatientName
    assert retrieved.Rows == original.Rows and retrieved.ImagePositionPatient == original.ImagePositionPatient
    # The stored instance answers metadata and searches as any other.
    r = requests.get(f"{server.root}/instances", params={"SOPInstanceUID": original.SOPInstanceUID})
    assert r.status_code == 200 and len(r.json()) == 1


def test_a_compressed_pixel_data_part_keeps_its_transfer_syntax(server):
    original = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    frame = next(generate_frames(original.PixelData, number_of_frames=1))
    document, parts = json_and_parts(original)
    pixel_uri = document["7FE00010"]["BulkDataURI"]
    typed = {uri: ("application/octet-stream", content) for uri, content in parts.items()}
    typed[pixel_uri] = ("image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50", frame)
    r = post(server, [document], typed)
    assert r.status_code == 200, r.text[:500]
    retrieved = retrieve(server, original)
    assert retrieved.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert next(generate_frames(retrieved.PixelData, number_of_frames=1)) == frame


def test_a_data_set_whose_uri_names_no_part_fails_alone(server):
    good = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    bad = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    good_document, good_parts = json_and_parts(good, base="http://client/good")
    bad_document, _ = json_and_parts(bad, base="http://client/bad")
    r = post(server, [good_document, bad_document],
             {uri: ("application/octet-stream", content) for uri, content in good_parts.items()})
    assert r.status_code == 202, r.text[:500]
    [failed] = r.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [272]
    assert failed["00081155"]["Value"] == [bad.SOPInstanceUID]
    assert "Content-Location" in failed["00741048"]["Value"][0]["00000902"]["Value"][0]
    assert retrieve(server, good).PixelData == good.PixelData


def test_malformed_requests_are_400s_that_say_what_is_missing(server):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    document, parts = json_and_parts(ds)
    uri, content = next(iter(parts.items()))
    cases = [
        ([({"Content-Type": "application/octet-stream", "Content-Location": uri}, content)], "application/dicom+json part"),
        ([({"Content-Type": "application/dicom+json"}, json.dumps([document]).encode()),
          ({"Content-Type": "application/octet-stream"}, content)], "Content-Location"),
        ([({"Content-Type": "application/dicom+json"}, b"[{not json")], "not JSON"),
    ]
    for parts_of_body, message in cases:
        r = requests.post(f"{server.root}/studies", data=body_of(parts_of_body), headers={"Content-Type": JSON_TYPE})
        assert r.status_code == 400, r.text[:300]
        assert message in r.json()["message"], r.text[:300]


def test_concurrent_json_stores_race_and_a_kill_9_then_a_rebuild_keep_every_view_in_agreement(make_server):
    """The JSON path ends in the same store as a Part 10 one; this tries to break it. Clients store new
    instances as JSON + bulk data, each sent twice at once (exactly one of the two may be stored), the server is
    killed mid-storm, restarted, then rebuilt from storage alone: every acknowledged instance is in metadata, the
    change feed, QIDO and WADO, whole, before and after the rebuild, with the same metadata."""
    import io
    import shutil
    import threading
    import time

    from pydicom.uid import generate_uid

    server = make_server()
    study = generate_uid()
    template = open(get_testdata_file("CT_small.dcm"), "rb").read()
    acknowledged, attempted, lock, stop = {}, {}, threading.Lock(), threading.Event()

    def client():
        series = generate_uid()
        while not stop.is_set():
            ds = pydicom.dcmread(io.BytesIO(template))
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
            document, parts = json_and_parts(ds, base=f"http://client/{ds.SOPInstanceUID}")
            typed = {uri: ("application/octet-stream", content) for uri, content in parts.items()}
            with lock:
                attempted[ds.SOPInstanceUID] = ds
            answers = []

            def send():
                try:
                    answers.append(post(server, [document], typed))
                except requests.RequestException:
                    pass  # the server died under us

            twins = [threading.Thread(target=send) for _ in range(2)]
            for t in twins:
                t.start()
            for t in twins:
                t.join()
            stored = [r for r in answers if r.status_code == 200]
            assert len(stored) <= 1, "one SOPInstanceUID is stored once"
            if len(answers) == 2:
                assert len(stored) == 1 and sorted(r.status_code for r in answers) == [200, 409], \
                    [r.text[:200] for r in answers]
            if stored:
                with lock:
                    acknowledged[ds.SOPInstanceUID] = series

    clients = [threading.Thread(target=client) for _ in range(3)]
    for t in clients:
        t.start()
    time.sleep(3)
    server.kill()
    stop.set()
    for t in clients:
        t.join(timeout=30)
    assert len(acknowledged) > 10, f"the storm was too small to mean anything: {len(acknowledged)}"

    def views():
        feed = []
        while page := requests.get(f"{server.root}/v1/changefeed",
                                   params={"offset": len(feed), "limit": 100, "includemetadata": "false"}).json():
            feed.extend(page)
        in_feed = [e["SopInstanceUid"] for e in feed]
        assert len(in_feed) == len(set(in_feed)), "one create entry per instance"
        metadata = {m["00080018"]["Value"][0]: m for m in requests.get(f"{server.root}/studies/{study}/metadata").json()}
        r = requests.get(f"{server.root}/studies/{study}/instances", params={"limit": 200})
        assert r.status_code == 200, r.text[:200]
        found = {i["00080018"]["Value"][0] for i in r.json()}
        assert len(found) < 200, "one page holds them all"
        assert set(metadata) == set(in_feed) == found, "metadata, change feed and QIDO agree"
        assert set(acknowledged) <= set(metadata) <= set(attempted), "nothing acknowledged is lost, nothing invented"
        for sop in metadata:
            original = attempted[sop]
            retrieved = retrieve(server, original)
            assert retrieved.PixelData == original.PixelData, "visible instances are whole"
        return metadata

    server.start()  # same data directory: recovery after kill -9
    before = views()
    server.stop()
    shutil.rmtree(server.data_dir / "index")
    shutil.rmtree(server.data_dir / "catalogue")
    server.start()  # the catalogue rebuilt from storage alone
    after = views()
    assert after == before, "the rebuilt metadata is the metadata the stores computed"
