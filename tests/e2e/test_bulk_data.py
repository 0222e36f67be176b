"""Bulk data (issue 13): metadata gives a BulkDataURI for every bulk value, and the URI serves it; metadata also
says in which transfer syntax the instance is stored (Available Transfer Syntax UID).

Bulk values are attributes of VR OB, OD, OF, OL, OV, OW and UN, Pixel Data, and values over 64 KiB of any other VR;
their URIs are `{instance}/bulkdata/{path}` under the root the client used (`/v2` included), with paths such as
`7FE00010` or `54000100.0.54001010` inside item 0 of (5400,0100). A value is `multipart/related;
type="application/octet-stream"` (the default) or a single `application/octet-stream`, little endian whatever the
stored transfer syntax, whole or the one byte range of a `Range` header. Encapsulated Pixel Data leads to its
frames. The bytes are checked against pydicom's reading of the original file, through pydicom's own
`Dataset.from_json` with a bulk data handler, as a client would read them.
"""

import array

import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames
from requests_toolbelt.multipart.decoder import MultipartDecoder

MULTIPART_OCTETS = 'multipart/related; type="application/octet-stream"'
BIG = "1.2.840.10008.1.2.2"
BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


def store(server, name) -> pydicom.Dataset:
    path = get_testdata_file(name)
    r = requests.post(f"{server.root}/studies", data=open(path, "rb").read(),
                      headers={"Content-Type": "application/dicom"})
    assert r.status_code in (200, 202), r.text[:300]
    return pydicom.dcmread(path)


def instance_path(ds) -> str:
    return f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def metadata(server, ds, prefix="/v2") -> dict:
    r = requests.get(f"{server.root}{prefix}{instance_path(ds)}/metadata", headers={"Accept": "application/dicom+json"})
    assert r.status_code == 200, r.text[:300]
    [document] = r.json()
    return document


def one_part(response) -> bytes:
    parts = MultipartDecoder.from_response(response).parts
    assert len(parts) == 1
    assert parts[0].headers[b"Content-Type"] == b"application/octet-stream"
    return parts[0].content


def bulk_uris(document, path="") -> dict:
    """{attribute path: BulkDataURI} of a DICOM JSON document, nested items included."""
    found = {}
    for key, attribute in document.items():
        if "BulkDataURI" in attribute:
            found[path + key] = attribute["BulkDataURI"]
        for index, item in enumerate(attribute.get("Value", []) if attribute.get("vr") == "SQ" else []):
            found.update(bulk_uris(item, f"{path}{key}.{index}."))
    return found


def little_endian(element, big_endian) -> bytes:
    raw = bytes(element.value)
    width = {"OW": 2, "US": 2, "SS": 2, "OF": 4, "OL": 4, "FL": 4, "UL": 4, "SL": 4, "OD": 8, "FD": 8}.get(element.VR)
    if big_endian and width:
        words = array.array({2: "H", 4: "I", 8: "Q"}[width], raw)
        words.byteswap()
        raw = words.tobytes()
    return raw


def element_at(ds, path):
    steps = path.split(".")
    for sequence, index in zip(steps[0:-1:2], steps[1:-1:2]):
        ds = ds[int(sequence, 16)].value[int(index)]
    return ds[int(steps[-1], 16)]


@pytest.mark.parametrize("name,paths", [
    # Private OB values, native Pixel Data, and the trailing padding after it.
    ("CT_small.dcm", {"00431028", "00431029", "0043102A", "7FE00010", "FFFCFFFC"}),
    # OW and OB values of a waveform, one nested in an item of the Waveform Sequence.
    ("waveform_ecg.dcm", {"14551000", "14551001", "14551009", "1455100A", "1455100B", "1455100C", "1455100E",
                          "54000100.0.54001010", "54000100.1.54001010"}),
    # Big endian: OW words come back little endian.
    ("MR_small_bigendian.dcm", {"7FE00010"}),
    # Deflated: offsets in the file mean nothing; the value is inflated.
    ("image_dfl.dcm", {"7FE00010"}),
])
def test_every_bulk_value_has_a_uri_that_serves_its_bytes(server, name, paths):
    original = store(server, name)
    document = metadata(server, original)
    uris = bulk_uris(document)
    assert set(uris) == paths
    base = f"{server.root}/v2{instance_path(original)}/bulkdata/"
    big_endian = original.file_meta.TransferSyntaxUID == BIG
    for path, uri in uris.items():
        assert uri == base + path
        r = requests.get(uri, headers={"Accept": MULTIPART_OCTETS})
        assert r.status_code == 200, r.text[:300]
        assert r.headers["Accept-Ranges"] == "bytes"
        assert one_part(r) == little_endian(element_at(original, path), big_endian), path


def test_pydicom_reads_the_values_back_through_the_uris(server):
    original = store(server, "waveform_ecg.dcm")

    def fetch(tag, vr, uri):
        r = requests.get(uri, headers={"Accept": "application/octet-stream"})
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/octet-stream"
        return r.content

    read = pydicom.Dataset.from_json(metadata(server, original), bulk_data_uri_handler=fetch)
    assert bytes(read.WaveformSequence[0].WaveformData) == bytes(original.WaveformSequence[0].WaveformData)
    assert read[0x14551001].value == original[0x14551001].value


def test_a_byte_range_of_a_value_is_sent_alone_with_its_position(server):
    original = store(server, "MR_small_bigendian.dcm")
    uri = bulk_uris(metadata(server, original))["7FE00010"]
    whole = little_endian(original["PixelData"], True)
    length = len(whole)

    for header, expected in [("bytes=10-19", (10, 20)), ("bytes=1-4", (1, 5)), ("bytes=-5", (length - 5, length)),
                             (f"bytes={length - 3}-", (length - 3, length)),
                             (f"bytes=8-{length * 2}", (8, length))]:
        r = requests.get(uri, headers={"Accept": "application/octet-stream", "Range": header})
        assert r.status_code == 206, (header, r.text[:200])
        assert r.headers["Content-Range"] == f"bytes {expected[0]}-{expected[1] - 1}/{length}", header
        assert r.content == whole[expected[0]:expected[1]], header

    r = requests.get(uri, headers={"Accept": MULTIPART_OCTETS, "Range": "bytes=100-199"})
    assert r.status_code == 206
    [part] = MultipartDecoder.from_response(r).parts
    assert part.headers[b"Content-Range"] == f"bytes 100-199/{length}".encode()
    assert part.content == whole[100:200]

    r = requests.get(uri, headers={"Accept": "application/octet-stream", "Range": f"bytes={length}-"})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{length}"

    # Several ranges, or a malformed one: the whole value.
    for ignored in ["bytes=0-1,4-5", "bytes=z-", "lines=1-2"]:
        r = requests.get(uri, headers={"Accept": "application/octet-stream", "Range": ignored})
        assert r.status_code == 200 and r.content == whole, ignored


def test_the_pixel_data_uri_of_a_compressed_instance_leads_to_its_frames(server):
    original = store(server, "SC_rgb_jpeg_dcmtk.dcm")
    uri = bulk_uris(metadata(server, original))["7FE00010"]
    r = requests.get(uri, headers={"Accept": 'multipart/related; type="image/jpeg"'})
    assert r.status_code == 200, r.text[:300]
    [part] = MultipartDecoder.from_response(r).parts
    assert part.content == next(generate_frames(original.PixelData, number_of_frames=1))
    # As octet-stream, the frames are decoded, as a frames request would give them.
    r = requests.get(uri, headers={"Accept": MULTIPART_OCTETS})
    assert r.status_code == 200, r.text[:300]
    [part] = MultipartDecoder.from_response(r).parts
    assert len(part.content) == original.Rows * original.Columns * 3


def test_bad_paths_absent_attributes_and_unacceptable_types_are_told_apart(server):
    original = store(server, "CT_small.dcm")
    base = f"{server.root}{instance_path(original)}/bulkdata"
    octets = {"Accept": MULTIPART_OCTETS}
    r = requests.get(f"{base}/7FE0001", headers=octets)
    assert r.status_code == 400 and "attribute path" in r.json()["message"]
    assert requests.get(f"{base}/00091010", headers=octets).status_code == 404
    assert requests.get(f"{base}/00431028.0.00100010", headers=octets).status_code == 404
    r = requests.get(f"{base}/00431028", headers={"Accept": "application/dicom+json"})
    assert r.status_code == 406
    missing = f"{server.root}/studies/1.2.3/series/4.5.6/instances/7.8.9/bulkdata/7FE00010"
    assert requests.get(missing, headers=octets).status_code == 404


def test_searches_carry_no_bulk_values_but_nested_uris_resolve_and_the_change_feed_resolves(server):
    original = store(server, "waveform_ecg.dcm")
    r = requests.get(f"{server.root}/v2/instances",
                     params={"SOPInstanceUID": original.SOPInstanceUID, "includefield": "all"})
    assert r.status_code == 200, r.text[:300]
    [found] = r.json()
    assert not any("BulkDataURI" in attribute for attribute in found.values())
    nested = found["54000100"]["Value"][0]["54001010"]
    assert nested["BulkDataURI"] == f"{server.root}/v2{instance_path(original)}/bulkdata/54000100.0.54001010"

    r = requests.get(f"{server.root}/v1/changefeed")
    assert r.status_code == 200
    [entry] = [e for e in r.json() if e["SopInstanceUid"] == original.SOPInstanceUID]
    assert entry["Metadata"]["14551000"]["BulkDataURI"] == \
        f"{server.root}/v1{instance_path(original)}/bulkdata/14551000"


def test_each_root_gets_its_own_uris_and_entity_tag(server):
    original = store(server, "CT_small.dcm")
    tags = set()
    for prefix in ["", "/v1", "/v2"]:
        r = requests.get(f"{server.root}{prefix}{instance_path(original)}/metadata",
                         headers={"Accept": "application/dicom+json"})
        assert r.json()[0]["7FE00010"]["BulkDataURI"] == \
            f"{server.root}{prefix}{instance_path(original)}/bulkdata/7FE00010"
        tags.add(r.headers["ETag"])
    assert len(tags) == 3


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "SC_rgb_jpeg_dcmtk.dcm", "CT_small.dcm"])
def test_metadata_says_which_transfer_syntax_the_instance_is_stored_in(server, name):
    original = store(server, name)
    assert metadata(server, original)["00083002"] == {"vr": "UI", "Value": [original.file_meta.TransferSyntaxUID]}


def test_a_study_series_and_instance_give_all_their_bulk_values_each_named_by_its_uri(server):
    """The /bulkdata resources of PS3.18 Table 10.4.1-1: one part per value, Content-Location its BulkDataURI;
    encapsulated Pixel Data as its frames, as stored."""
    from pydicom.uid import generate_uid

    from dicomweb_helpers import store_under_new_uid

    study = generate_uid()
    stored = []
    for name in ["CT_small.dcm", "waveform_ecg.dcm", "MR_small_jp2klossless.dcm"]:
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = study, generate_uid(), "BULK-ALL"
        stored.append(store_under_new_uid(server, ds))
    ct, ecg, j2k = stored

    def parts_of(url):
        r = requests.get(url, headers={"Accept": MULTIPART_OCTETS})
        assert r.status_code == 200, r.text[:300]
        assert r.headers["Content-Type"].startswith(MULTIPART_OCTETS)
        return {p.headers[b"Content-Location"].decode(): p for p in MultipartDecoder.from_response(r).parts}

    study_parts = parts_of(f"{server.root}/v2/studies/{study}/bulkdata")
    expected = {}
    for ds in (ct, ecg, j2k):
        for path, uri in bulk_uris(metadata(server, ds)).items():
            if ds is j2k and path == "7FE00010":
                continue  # encapsulated: its frames, below
            expected[uri] = little_endian(element_at(ds, path), False)
    j2k_url = f"{server.root}/v2{instance_path(j2k)}"
    expected[f"{j2k_url}/frames/1"] = next(generate_frames(j2k.PixelData, number_of_frames=1))
    assert set(study_parts) == set(expected)
    for uri, part in study_parts.items():
        assert part.content == expected[uri] or part.content[:-1] == expected[uri], uri
        kind = part.headers[b"Content-Type"].decode()
        assert kind == ("image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90" if "/frames/" in uri
                        else "application/octet-stream"), uri

    series = parts_of(f"{server.root}/v2/studies/{study}/series/{ecg.SeriesInstanceUID}/bulkdata")
    assert set(series) == {uri for uri in expected if ecg.SOPInstanceUID in uri}
    instance = parts_of(f"{server.root}/v2{instance_path(ct)}/bulkdata")
    assert set(instance) == {uri for uri in expected if ct.SOPInstanceUID in uri}

    r = requests.get(f"{server.root}/studies/{study}/bulkdata", headers={"Accept": "application/octet-stream"})
    assert r.status_code == 406 and "multipart" in r.text
    assert requests.get(f"{server.root}/studies/1.2.3.404/bulkdata", headers={"Accept": MULTIPART_OCTETS}).status_code == 404
