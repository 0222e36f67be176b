"""Retrieves in the transfer syntax a client asks for (issue 13).

A retrieve that names no transfer syntax asks for Explicit VR Little Endian (PS3.18 8.7.3.5.2). Instances stored
in Implicit VR Little Endian, Explicit VR Big Endian or Deflated Explicit VR Little Endian used to answer 406 to
such a request; they are now transcoded (pixel words of big-endian data come back little endian). Compressed
instances are decoded where a codec is at hand (JPEG baseline and lossless, RLE, JPEG-LS, JPEG 2000, HTJ2K), whole
or a frame at a time; the others (12-bit JPEG) still answer 406, with a message that says how to get them as
stored.
"""

import array
import io

import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from requests_toolbelt.multipart.decoder import MultipartDecoder

ELE = "1.2.840.10008.1.2.1"
ILE = "1.2.840.10008.1.2"
BIG = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"

NATIVE = [
    ("MR_small_implicit.dcm", ILE),
    ("MR_small_bigendian.dcm", BIG),
    ("rtdose_expb_1frame.dcm", BIG),  # 32-bit words
    ("image_dfl.dcm", DEFLATED),
]


def little_endian_pixels(ds) -> bytes:
    """The Pixel Data of `ds` as little-endian bytes."""
    raw = bytes(ds.PixelData)
    if ds.file_meta.TransferSyntaxUID == BIG and ds.BitsAllocated > 8:
        words = array.array({16: "H", 32: "I"}[ds.BitsAllocated], raw)
        words.byteswap()
        raw = words.tobytes()
    return raw


def store(server, path) -> pydicom.Dataset:
    content = open(path, "rb").read()
    r = requests.post(f"{server.root}/studies", data=content, headers={"Content-Type": "application/dicom"})
    assert r.status_code in (200, 202), r.text[:300]
    return pydicom.dcmread(path)


def instance_url(server, ds) -> str:
    return f"{server.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


@pytest.mark.parametrize("name,stored_syntax", NATIVE)
def test_a_native_instance_is_retrieved_in_explicit_vr_little_endian_by_default(server, name, stored_syntax):
    path = get_testdata_file(name)
    original = store(server, path)
    assert original.file_meta.TransferSyntaxUID == stored_syntax
    url = instance_url(server, original)

    for accept in ["application/dicom", f"application/dicom; transfer-syntax={ELE}"]:
        r = requests.get(url, headers={"Accept": accept})
        assert r.status_code == 200, f"{accept}: {r.status_code} {r.text[:300]}"
        assert r.headers["Content-Type"] == f"application/dicom; transfer-syntax={ELE}"
        assert int(r.headers["Content-Length"]) == len(r.content)
        got = pydicom.dcmread(io.BytesIO(r.content))
        assert got.file_meta.TransferSyntaxUID == ELE
        assert got.SOPInstanceUID == original.SOPInstanceUID
        assert got.PatientName == original.PatientName
        assert bytes(got.PixelData) == little_endian_pixels(original), "the same pixels, little endian"

    # Implicit VR Little Endian on request.
    r = requests.get(url, headers={"Accept": f"application/dicom; transfer-syntax={ILE}"})
    assert r.status_code == 200
    assert pydicom.dcmread(io.BytesIO(r.content)).file_meta.TransferSyntaxUID == ILE

    # As stored, byte for byte after the preamble.
    r = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == f"application/dicom; transfer-syntax={stored_syntax}"
    assert r.content[128:] == open(path, "rb").read()[128:]


def test_a_study_mixing_stored_syntaxes_comes_back_whole_in_the_default_syntax(server):
    from pydicom.uid import generate_uid

    study = generate_uid()
    sent = {}
    for name, _ in NATIVE[:2] + [("CT_small.dcm", ELE)]:
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.StudyInstanceUID = study
        # Two of the files are one image in two syntaxes, with one SOPInstanceUID.
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        out = io.BytesIO()
        ds.save_as(out)
        r = requests.post(f"{server.root}/studies", data=out.getvalue(), headers={"Content-Type": "application/dicom"})
        assert r.status_code in (200, 202), r.text[:300]
        sent[ds.SOPInstanceUID] = ds
    r = requests.get(f"{server.root}/studies/{study}", headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert r.status_code == 200, r.text[:300]
    parts = MultipartDecoder.from_response(r).parts
    assert len(parts) == len(sent)
    for part in parts:
        assert part.headers[b"Content-Type"].decode() == f"application/dicom; transfer-syntax={ELE}"
        got = pydicom.dcmread(io.BytesIO(part.content))
        assert got.file_meta.TransferSyntaxUID == ELE
        assert bytes(got.PixelData) == little_endian_pixels(sent.pop(got.SOPInstanceUID))
    assert not sent


def frames_of(server, ds, numbers, accept='multipart/related; type="application/octet-stream"'):
    r = requests.get(f"{instance_url(server, ds)}/frames/{','.join(map(str, numbers))}", headers={"Accept": accept})
    assert r.status_code == 200, r.text[:300]
    return [part.content for part in MultipartDecoder.from_response(r).parts]


def retrieve_default(server, ds) -> pydicom.Dataset:
    r = requests.get(instance_url(server, ds), headers={"Accept": "application/dicom"})
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"] == f"application/dicom; transfer-syntax={ELE}"
    got = pydicom.dcmread(io.BytesIO(r.content))
    assert got.file_meta.TransferSyntaxUID == ELE
    return got


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_a_losslessly_compressed_instance_decodes_to_the_pixels_of_its_native_original(server, name):
    native = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    original = store(server, get_testdata_file(name))
    got = retrieve_default(server, original)
    assert bytes(got.PixelData) == bytes(native.PixelData)
    assert got.PhotometricInterpretation == "MONOCHROME2"
    assert "LossyImageCompression" not in got or got.LossyImageCompression != "01"
    # Its frame, decoded from the stored fragments alone, is the same.
    assert frames_of(server, original, [1]) == [bytes(native.PixelData)]


def test_frames_of_a_multi_frame_colour_instance_decode_like_the_whole_instance(server):
    original = store(server, get_testdata_file("SC_rgb_rle_2frame.dcm"))
    whole = retrieve_default(server, original)
    assert whole.PhotometricInterpretation == "RGB"
    frame_length = whole.Rows * whole.Columns * 3
    pixels = bytes(whole.PixelData)
    assert len(pixels) == 2 * frame_length
    assert frames_of(server, original, [1, 2]) == [pixels[:frame_length], pixels[frame_length:]]
    assert frames_of(server, original, [2]) == [pixels[frame_length:]]


def test_a_jpeg_instance_decodes_to_rgb_close_to_the_lossless_original_and_says_it_was_lossy(server):
    reference = retrieve_default(server, store(server, get_testdata_file("SC_rgb_rle.dcm")))
    original = store(server, get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    got = retrieve_default(server, original)
    assert got.PhotometricInterpretation == "RGB"
    assert got.LossyImageCompression == "01"
    assert (got.Rows, got.Columns) == (reference.Rows, reference.Columns)
    ours, theirs = bytes(got.PixelData), bytes(reference.PixelData)
    assert len(ours) == len(theirs)
    mean_difference = sum(abs(a - b) for a, b in zip(ours, theirs)) / len(ours)
    assert mean_difference < 8, f"mean difference {mean_difference:.1f} per sample"


@pytest.mark.parametrize("name", ["JPEG-lossy.dcm"])
def test_an_instance_that_cannot_be_decoded_yet_says_how_to_get_it(server, name):
    """12-bit JPEG is not decoded yet."""
    original = store(server, get_testdata_file(name))
    url = instance_url(server, original)
    r = requests.get(url, headers={"Accept": "application/dicom"})
    assert r.status_code == 406
    assert "transfer-syntax=*" in r.text
    assert requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"}).status_code == 200
    r = requests.get(f"{url}/frames/1", headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    assert r.status_code == 406


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "rtdose_expb_1frame.dcm"])
def test_frames_of_a_big_endian_instance_come_back_little_endian_unless_asked_as_stored(server, name):
    original = store(server, get_testdata_file(name))
    url = f"{instance_url(server, original)}/frames/1"
    r = requests.get(url, headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    assert r.status_code == 200, r.text[:300]
    [part] = MultipartDecoder.from_response(r).parts
    assert part.headers[b"Content-Type"].decode() == f"application/octet-stream; transfer-syntax={ELE}"
    assert part.content == little_endian_pixels(original)

    r = requests.get(url, headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'})
    assert r.status_code == 200
    [part] = MultipartDecoder.from_response(r).parts
    assert part.content == bytes(original.PixelData), "as stored: big endian"


def test_frames_of_a_deflated_instance_are_inflated(server):
    original = store(server, get_testdata_file("image_dfl.dcm"))
    assert original.file_meta.TransferSyntaxUID == DEFLATED
    [frame] = [
        part.content
        for part in MultipartDecoder.from_response(
            requests.get(
                f"{instance_url(server, original)}/frames/1",
                headers={"Accept": 'multipart/related; type="application/octet-stream"'},
            )
        ).parts
    ]
    assert frame == bytes(original.PixelData)
    assert requests.get(f"{instance_url(server, original)}/frames/2").status_code == 404
