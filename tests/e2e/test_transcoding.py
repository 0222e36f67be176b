"""Retrieves in the transfer syntax a client asks for (issue 13).

A retrieve that names no transfer syntax asks for Explicit VR Little Endian (PS3.18 8.7.3.5.2). Instances stored
in Implicit VR Little Endian, Explicit VR Big Endian or Deflated Explicit VR Little Endian used to answer 406 to
such a request; they are now transcoded (pixel words of big-endian data come back little endian). Compressed
instances are decoded where a codec is at hand (JPEG baseline, 12-bit and lossless, RLE, JPEG-LS, JPEG 2000,
HTJ2K), whole or a frame at a time; the others (MPEG-2 and the other video syntaxes) answer 406, with a message that
says how to get them as stored.
"""

import array
import io

import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from requests_toolbelt.multipart.decoder import MultipartDecoder

ELE = "1.2.840.10008.1.2.1"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
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


def test_an_instance_that_cannot_be_decoded_says_how_to_get_it(server):
    from dicomweb_helpers import mpeg2_instance

    original = mpeg2_instance(server)
    url = instance_url(server, original)
    r = requests.get(url, headers={"Accept": "application/dicom"})
    assert r.status_code == 406
    assert "transfer-syntax=*" in r.text
    assert requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"}).status_code == 200
    r = requests.get(f"{url}/frames/1", headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    assert r.status_code == 406


def test_twelve_bit_jpeg_is_decoded_whole_and_by_frame_and_marked_lossy(server):
    original = store(server, get_testdata_file("JPEG-lossy.dcm"))
    url = instance_url(server, original)
    r = requests.get(url, headers={"Accept": "application/dicom"})
    assert r.status_code == 200, r.text[:300]
    got = pydicom.dcmread(io.BytesIO(r.content))
    assert got.file_meta.TransferSyntaxUID == ELE
    assert got.LossyImageCompression == "01"
    assert len(got.PixelData) == original.Rows * original.Columns * 2
    r = requests.get(f"{url}/frames/1", headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    assert r.status_code == 200, r.text[:300]
    [part] = MultipartDecoder.from_response(r).parts
    assert part.content == bytes(got.PixelData)


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


J2K = "1.2.840.10008.1.2.4.90"
JLS = "1.2.840.10008.1.2.4.80"
RLE = "1.2.840.10008.1.2.5"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_RPCL = "1.2.840.10008.1.2.4.202"  # decoded here, not encoded


def restored_as_new_instance(server, part10: bytes) -> pydicom.Dataset:
    """Stores a retrieved instance again under a new SOPInstanceUID (its pixel data untouched)."""
    from dicomweb_helpers import store_under_new_uid

    return store_under_new_uid(server, pydicom.dcmread(io.BytesIO(part10)))


@pytest.mark.parametrize("target", [J2K, HTJ2K_LOSSLESS, JLS, JPEG_LOSSLESS, RLE, DEFLATED])
@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_bigendian.dcm", "SC_rgb_rle_2frame.dcm"])
def test_an_instance_is_encoded_in_the_syntax_asked_and_decodes_back_to_its_pixels(server, name, target):
    """Encoded on retrieve, then stored again and decoded by the archive: the pixels of the default retrieve.
    (The conformance run checks the same encodings against pylibjpeg and CharLS's Python binding.)"""
    original = store(server, get_testdata_file(name))
    pixels = bytes(retrieve_default(server, original).PixelData)
    r = requests.get(instance_url(server, original), headers={"Accept": f"application/dicom; transfer-syntax={target}"})
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"] == f"application/dicom; transfer-syntax={target}"
    encoded = pydicom.dcmread(io.BytesIO(r.content))
    assert encoded.file_meta.TransferSyntaxUID == target
    assert encoded.PatientName == original.PatientName
    if target != DEFLATED:
        frames = list(pydicom.encaps.generate_frames(encoded.PixelData, number_of_frames=int(encoded.get("NumberOfFrames", 1))))
        assert len(frames) == int(original.get("NumberOfFrames", 1))
        assert len(bytes(encoded.PixelData)) < len(pixels) + 1024
        assert "LossyImageCompression" not in encoded or encoded.LossyImageCompression == original.get("LossyImageCompression")
    copy = restored_as_new_instance(server, r.content)
    assert bytes(retrieve_default(server, copy).PixelData) == pixels


def test_the_best_syntax_the_server_can_produce_wins(server):
    original = store(server, get_testdata_file("MR_small.dcm"))
    url = instance_url(server, original)

    def sent(accept):
        r = requests.get(url, headers={"Accept": accept})
        assert r.status_code == 200, r.text[:300]
        return r.headers["Content-Type"]

    # HTJ2K in RPCL order is preferred but cannot be produced; JPEG 2000 is the best that can.
    assert sent(f"application/dicom; transfer-syntax={HTJ2K_RPCL}; q=0.9, "
                f"application/dicom; transfer-syntax={J2K}; q=0.5, application/dicom; q=0.1") == (
        f"application/dicom; transfer-syntax={J2K}")
    # JPEG lossless (SV1) can.
    assert sent(f"application/dicom; transfer-syntax={JPEG_LOSSLESS}; q=0.9, application/dicom; q=0.1") == (
        f"application/dicom; transfer-syntax={JPEG_LOSSLESS}")
    # Quality orders, not position.
    assert sent(f"application/dicom; transfer-syntax={J2K}; q=0.2, application/dicom; transfer-syntax={RLE}") == (
        f"application/dicom; transfer-syntax={RLE}")
    # A lossy syntax is never given for a lossless request: 16-bit JPEG baseline cannot be made, so the next.
    assert sent(f"application/dicom; transfer-syntax={JPEG_BASELINE}, application/dicom; q=0.5") == (
        f"application/dicom; transfer-syntax={ELE}")
    # A study in the syntax asked, every part.
    r = requests.get(f"{server.root}/studies/{original.StudyInstanceUID}",
                     headers={"Accept": f'multipart/related; type="application/dicom"; transfer-syntax={JLS}'})
    assert r.status_code == 200, r.text[:300]
    parts = MultipartDecoder.from_response(r).parts
    assert parts and all(p.headers[b"Content-Type"].decode() == f"application/dicom; transfer-syntax={JLS}"
                         for p in parts)


def test_a_406_says_why_and_what_the_instance_is_available_in(server):
    original = store(server, get_testdata_file("MR_small.dcm"))
    r = requests.get(instance_url(server, original),
                     headers={"Accept": f"application/dicom; transfer-syntax={JPEG_BASELINE}"})
    assert r.status_code == 406
    assert "8-bit" in r.text, r.text
    for available in (ELE, J2K, HTJ2K_LOSSLESS, JLS, JPEG_LOSSLESS, RLE):
        assert available in r.text, r.text
    r = requests.get(f"{instance_url(server, original)}/frames/1",
                     headers={"Accept": 'multipart/related; type="image/jpeg"'})
    assert r.status_code == 406, "16-bit frames are not sent as JPEG baseline"
    assert "8-bit" in r.text


def test_frames_are_encoded_in_the_image_type_asked(server):
    original = store(server, get_testdata_file("MR_small.dcm"))
    url = f"{instance_url(server, original)}/frames/1"
    for media, syntax, starts in (("image/jp2", J2K, b"\xff\x4f\xff\x51"), ("image/jls", JLS, b"\xff\xd8\xff\xf7"),
                                  ("image/dicom-rle", RLE, (2).to_bytes(4, "little"))):
        r = requests.get(url, headers={"Accept": f'multipart/related; type="{media}"'})
        assert r.status_code == 200, r.text[:300]
        [part] = MultipartDecoder.from_response(r).parts
        assert part.headers[b"Content-Type"].decode() == f"{media}; transfer-syntax={syntax}"
        assert part.content.startswith(starts), part.content[:8]
    # A transfer syntax that is not of the media type asked is refused.
    r = requests.get(url, headers={"Accept": f'multipart/related; type="image/jp2"; transfer-syntax={JLS}'})
    assert r.status_code == 406


def test_an_8_bit_colour_instance_is_sent_as_jpeg_baseline_marked_lossy(server):
    original = store(server, get_testdata_file("SC_rgb_rle_2frame.dcm"))
    r = requests.get(instance_url(server, original),
                     headers={"Accept": f"application/dicom; transfer-syntax={JPEG_BASELINE}"})
    assert r.status_code == 200, r.text[:300]
    ds = pydicom.dcmread(io.BytesIO(r.content))
    assert ds.LossyImageCompression == "01"
    assert ds.LossyImageCompressionMethod == "ISO_10918_1"
    assert float(ds.LossyImageCompressionRatio) > 1
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    assert ds.PlanarConfiguration == 0
    reference = bytes(retrieve_default(server, original).PixelData)
    decoded = bytes(retrieve_default(server, restored_as_new_instance(server, r.content)).PixelData)
    assert len(decoded) == len(reference)
    mean_difference = sum(abs(a - b) for a, b in zip(decoded, reference)) / len(reference)
    assert mean_difference < 4, f"mean difference {mean_difference:.1f} per sample"


def test_a_cached_transcoded_frame_is_never_served_for_a_deleted_or_replaced_instance(server):
    """Transcoded frames are cached by stored file: asked again, a frame is the same bytes; deleted, it is a 404
    at once; the same UIDs stored again with other pixels give the new pixels, not the cached frame."""
    from dicomweb_helpers import store_under_new_uid

    ds = store_under_new_uid(server, pydicom.dcmread(get_testdata_file("MR_small.dcm")))
    frame_url = f"{instance_url(server, ds)}/frames/1"
    jls = {"Accept": f'multipart/related; type="image/jls"; transfer-syntax={JLS}'}
    native = {"Accept": f'multipart/related; type="application/octet-stream"; transfer-syntax={ELE}'}

    def frame(headers):
        r = requests.get(frame_url, headers=headers)
        assert r.status_code == 200, r.text[:300]
        [part] = MultipartDecoder.from_response(r).parts
        return part.content

    first = frame(jls)
    assert frame(jls) == first, "asked again: the same frame"
    assert requests.delete(instance_url(server, ds)).status_code in (200, 202, 204)
    assert requests.get(frame_url, headers=jls).status_code == 404

    # The same UIDs again, the image upside down: its JPEG-LS frame is the new image's.
    pixels, row = ds.PixelData, ds.Columns * 2
    ds.PixelData = b"".join(pixels[i : i + row] for i in range(len(pixels) - row, -1, -row))
    out = io.BytesIO()
    ds.save_as(out)
    assert requests.post(f"{server.root}/studies", data=out.getvalue(), headers={"Content-Type": "application/dicom"}).ok
    flipped = frame(jls)
    assert flipped != first
    # The whole instance encoded anew (no cache on that path) holds the same JPEG-LS frame: the new pixels'.
    whole = pydicom.dcmread(io.BytesIO(requests.get(instance_url(server, ds), headers={
        "Accept": f"application/dicom; transfer-syntax={JLS}"}).content))
    assert flipped in bytes(whole.PixelData)
    assert frame(native) == ds.PixelData
