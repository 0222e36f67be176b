"""Every status code of the studies service, with the reason a client would see."""

import io

import pydicom
import requests

from dicomweb_helpers import (
    SERIES_RED_GREEN,
    SOP_BLUE,
    SOP_GREEN,
    SOP_RED,
    STUDY,
    failure_reasons,
    parts,
    related_body,
    sample,
    value,
)

DICOM_JSON = "application/dicom+json"
ANY_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def store(server, files, url="/studies", **kwargs):
    body, content_type = related_body(files, **kwargs)
    return requests.post(server.root + url, data=body, headers={"Content-Type": content_type})


def modified(name: str, **changes) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(sample(name)))
    for keyword, new in changes.items():
        if new is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, new)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def test_unquoted_boundary_is_accepted(server):
    r = store(server, [sample("red-triangle.dcm")], quote=False)
    assert r.status_code == 200, r.text


def test_empty_request_is_204(server):
    body = b"--b--\r\n"
    r = requests.post(server.root + "/studies", data=body, headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'})
    assert r.status_code == 204


def test_unsupported_content_type_is_415(server):
    r = requests.post(server.root + "/studies", data=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 415
    assert "Content-Type" in r.json()["message"]


def test_unsupported_accept_is_406(server):
    body, content_type = related_body([sample("red-triangle.dcm")])
    r = requests.post(server.root + "/studies", data=body, headers={"Content-Type": content_type, "Accept": "application/dicom+xml"})
    assert r.status_code == 406
    # Nothing was stored by the refused request.
    assert requests.get(f"{server.root}/studies/{STUDY}/metadata").status_code == 404


def test_missing_boundary_and_truncated_body_are_400(server):
    r = requests.post(server.root + "/studies", data=b"x", headers={"Content-Type": "multipart/related"})
    assert r.status_code == 400
    body, content_type = related_body([sample("red-triangle.dcm")])
    r = requests.post(server.root + "/studies", data=body[:-20], headers={"Content-Type": content_type})
    assert r.status_code == 400
    assert "multipart" in r.json()["message"]


def test_part_that_is_not_dicom_fails_only_that_part(server):
    r = store(server, [b"this is not a DICOM file" * 10, sample("green-square.dcm")])
    assert r.status_code == 202, r.text
    assert failure_reasons(r.json()) == [272]
    assert [value(i, "00081155")[0] for i in value(r.json(), "00081199")] == [SOP_GREEN]


def test_nothing_stored_is_409_with_reasons(server):
    r = store(server, [b"garbage" * 100])
    assert r.status_code == 409
    assert failure_reasons(r.json()) == [272]


def test_missing_required_attribute_is_43264(server):
    r = store(server, [modified("red-triangle.dcm", SOPClassUID=None)])
    assert r.status_code == 409, r.text
    assert failure_reasons(r.json()) == [43264]


def test_study_mismatch_is_43265(server):
    r = store(server, [sample("red-triangle.dcm")], url="/studies/1.2.3")
    assert r.status_code == 409, r.text
    [failed] = value(r.json(), "00081198")
    assert value(failed, "00081197") == [43265]
    assert value(failed, "00081155") == [SOP_RED]


def test_invalid_optional_attribute_is_stored_with_a_warning(server):
    r = store(server, [modified("blue-circle.dcm", StudyDate="NotADate")])
    assert r.status_code == 202, r.text
    [item] = value(r.json(), "00081199")
    assert value(item, "00081196") == [1]
    comments = [value(c, "00000902")[0] for c in value(item, "00741048")]
    assert any("(0008,0020)" in c and "DA" in c for c in comments), comments
    assert requests.get(f"{server.root}/studies/{STUDY}/metadata").status_code == 200


def test_malformed_uids_are_400_and_unknown_are_404(server):
    assert requests.get(f"{server.root}/studies/not..a/uid!/metadata").status_code in (400, 404)
    assert requests.get(f"{server.root}/studies/{'1' * 65}/metadata").status_code == 400
    assert requests.get(f"{server.root}/studies/a%20b/metadata").status_code == 400
    assert requests.get(f"{server.root}/studies/1.2.3/metadata").status_code == 404
    assert requests.delete(f"{server.root}/studies/1.2.3").status_code == 404


def test_retrieve_negotiation(server):
    assert store(server, [sample("red-triangle.dcm")]).status_code == 200
    instance = f"{server.root}/studies/{STUDY}/series/{SERIES_RED_GREEN}/instances/{SOP_RED}"
    # */* means application/dicom as stored.
    r = requests.get(instance, headers={"Accept": "*/*"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/dicom")
    # No transfer syntax named means Explicit VR Little Endian, which is how the sample is stored.
    r = requests.get(instance, headers={"Accept": "application/dicom"})
    assert r.status_code == 200
    # A syntax nothing here encodes to (HTJ2K lossless with RPCL order) is refused.
    r = requests.get(instance, headers={"Accept": "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.202"})
    assert r.status_code == 406
    r = requests.get(instance, headers={"Accept": "text/html"})
    assert r.status_code == 406
    r = requests.get(f"{server.root}/studies/{STUDY}", headers={"Accept": "application/dicom"})
    assert r.status_code == 406, "a study is a multipart resource"
    r = requests.get(f"{server.root}/studies/{STUDY}/metadata", headers={"Accept": "application/dicom"})
    assert r.status_code == 406


def test_metadata_etag_answers_304(server):
    assert store(server, [sample("red-triangle.dcm")]).status_code == 200
    url = f"{server.root}/studies/{STUDY}/metadata"
    r = requests.get(url)
    etag = r.headers["ETag"]
    assert requests.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert store(server, [sample("green-square.dcm")]).status_code == 200
    r = requests.get(url, headers={"If-None-Match": etag})
    assert r.status_code == 200 and len(r.json()) == 2, "a new instance changes the entity tag"


def test_frames_out_of_range_and_malformed(server):
    assert store(server, [sample("red-triangle.dcm")]).status_code == 200
    frames = f"{server.root}/studies/{STUDY}/series/{SERIES_RED_GREEN}/instances/{SOP_RED}/frames"
    octet = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}
    r = requests.get(f"{frames}/2", headers=octet)
    assert r.status_code == 404 and "1 frame" in r.json()["message"]
    assert requests.get(f"{frames}/0", headers=octet).status_code == 404
    assert requests.get(f"{frames}/1,x", headers=octet).status_code == 400
    r = requests.get(f"{frames}/1", headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    assert r.status_code == 200, "native frames are Explicit VR Little Endian"


def test_multiframe_and_encapsulated_frames(server):
    rle = (sample("pydicom/SC_rgb_rle_2frame.dcm"), 2)
    native = (sample("pydicom/rtdose.dcm"), 15)
    for content, count in (rle, native):
        ds = pydicom.dcmread(io.BytesIO(content))
        r = store(server, [content])
        assert r.status_code in (200, 202), r.text
        url = f"{server.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/frames"
        numbers = ",".join(str(n) for n in range(count, 0, -1))
        r = requests.get(f"{url}/{numbers}", headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'})
        assert r.status_code == 200, r.text
        got = [p.content for p in parts(r)]
        assert len(got) == count
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            expected = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=count))
            assert all(p.headers[b"Content-Type"].startswith(b"image/dicom-rle") for p in parts(r))
            # Uncompressed frames of a compressed instance are decoded (RLE here): native 8-bit RGB.
            r = requests.get(f"{url}/1", headers={"Accept": 'multipart/related; type="application/octet-stream"'})
            assert r.status_code == 200
            [frame] = [p.content for p in parts(r)]
            assert len(frame) == ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
        else:
            size = len(ds.PixelData) // count
            expected = [ds.PixelData[i * size:(i + 1) * size] for i in range(count)]
        assert got == expected[::-1]


def test_qido_errors_are_400_with_the_parameter_named(server):
    for params, needle in [
        ({"NoSuchAttribute": "x"}, "NoSuchAttribute"),
        ({"limit": "0"}, "limit"),
        ({"SOPInstanceUID": SOP_BLUE}, "instance-level"),
        ({"includefield": "Bogus"}, "Bogus"),
    ]:
        r = requests.get(f"{server.root}/studies", params=params)
        assert r.status_code == 400, params
        assert needle in r.json()["message"], (params, r.json())
    assert requests.get(f"{server.root}/studies", headers={"Accept": "application/dicom"}).status_code == 406


def test_qido_matches_patient_id_across_levels(server):
    assert store(server, [sample("red-triangle.dcm"), sample("green-square.dcm"), sample("blue-circle.dcm")]).status_code == 200
    r = requests.get(f"{server.root}/instances", params={"PatientID": "ID1"})
    assert r.status_code == 200 and len(r.json()) == 3
    r = requests.get(f"{server.root}/series", params={"PatientID": "ID1", "includefield": "SeriesDescription"})
    assert r.status_code == 200 and len(r.json()) == 2
    assert all(value(s, "00201209") for s in r.json())  # NumberOfSeriesRelatedInstances
    assert requests.get(f"{server.root}/studies", params={"PatientID": "nobody"}).status_code == 204
    r = requests.get(f"{server.root}/instances", params={"limit": "2", "offset": "2"})
    assert r.status_code == 200 and len(r.json()) == 1


def test_changefeed_paging_by_version(server):
    assert store(server, [sample("red-triangle.dcm"), sample("green-square.dcm"), sample("blue-circle.dcm")]).status_code == 200
    r = requests.get(f"{server.root}/v1/changefeed", params={"offset": 1, "limit": 1, "includemetadata": "false"})
    [entry] = r.json()
    assert entry["Sequence"] == 2 and entry["Metadata"] is None and entry["State"] == "current"
    r = requests.get(f"{server.root}/v2/changefeed", params={"offset": 2})
    assert [e["Sequence"] for e in r.json()] == [3]
    # The parts of one request are stored concurrently, so which of them got sequence 3 varies: its metadata is
    # that of the instance the entry names.
    [third] = r.json()
    assert third["Metadata"]["00080018"]["Value"] == [third["SopInstanceUid"]]
    assert third["SopInstanceUid"] in {SOP_RED, SOP_GREEN, SOP_BLUE}
    assert requests.get(f"{server.root}/v2/changefeed", params={"startTime": "2000-01-01T00:00:00Z", "endTime": "2001-01-01T00:00:00Z"}).json() == []
    assert requests.get(f"{server.root}/v2/changefeed", params={"startTime": "yesterday"}).status_code == 400
    assert requests.get(f"{server.root}/v1/changefeed", params={"limit": 101}).status_code == 400
    assert requests.get(f"{server.root}/v2/changefeed", params={"limit": 201}).status_code == 400


def test_concurrent_stores_of_one_instance_store_it_once(server):
    from concurrent.futures import ThreadPoolExecutor

    def attempt(_):
        return store(server, [sample("blue-circle.dcm")]).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(attempt, range(8)))
    assert sorted(codes) == [200] + [409] * 7, codes
    feed = requests.get(f"{server.root}/changefeed").json()
    assert len(feed) == 1
