"""Large instances are transcoded frame by frame as they are sent (issue 13: "no 100 MB limit: large multi-frame
instances are transcoded frame by frame as they stream, with memory bounded by a few frames").

Two servers hold the same instances: one transcodes every instance whole in memory (the default for instances up to
32 MiB), the other, started with `--transcode-whole-max-mib 0`, frame by frame whatever the size. Both must give
the same data set, element for element, and the same frames; the streamed one leaves the Basic Offset Table empty
and, for a compressed target, sends no Content-Length (the size is known only at the end). Deflated and lossy
targets are never streamed (the deflater needs the data set whole; a lossy ratio needs every frame's size).
"""

import io

import pydicom
import pytest
import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid
from requests_toolbelt.multipart.decoder import MultipartDecoder

from pydicom.data import get_testdata_file

ELE = "1.2.840.10008.1.2.1"
ILE = "1.2.840.10008.1.2"
BIG = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
RLE = "1.2.840.10008.1.2.5"
JLS = "1.2.840.10008.1.2.4.80"
J2K = "1.2.840.10008.1.2.4.90"
HTJ2K = "1.2.840.10008.1.2.4.201"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
TARGETS = [ELE, ILE, RLE, JLS, J2K, HTJ2K, JPEG_LOSSLESS]
STUDY = generate_uid()
SERIES = generate_uid()


def multi_frame(syntax: str, frames: int, rows: int, columns: int, colour: bool, trailing: bool) -> bytes:
    """A multi-frame instance of the one test study, written by pydicom in `syntax`."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = SERIES
    ds.PatientName = "Streamed^Transcode"
    ds.PatientID = "STREAM-1"
    ds.Modality = "OT"
    ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, columns
    if colour:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 1
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        pixels = bytes((i * 7 + i // 97) % 256 for i in range(frames * rows * columns * 3))
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        words = [(i * 37 + i // 11) % 4096 for i in range(frames * rows * columns)]
        pixels = b"".join(w.to_bytes(2, "big" if syntax == BIG else "little") for w in words)
    ds.PixelRepresentation = 0
    ds.PixelData = pixels + (b"\0" if len(pixels) % 2 else b"")
    ds["PixelData"].VR = "OB" if colour else "OW"
    if trailing:
        ds.DataSetTrailingPadding = b"\0" * 8
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=syntax == ILE, little_endian=syntax != BIG, enforce_file_format=True)
    return out.getvalue()


def stored_samples():
    """Part 10 files of every kind of source: native in the three syntaxes, colour by plane, odd sizes, a
    trailing element, and compressed (RLE, JPEG 2000, JPEG-LS, JPEG lossless, lossy JPEG 2000)."""
    files = [
        multi_frame(ELE, 12, 48, 64, colour=False, trailing=True),
        multi_frame(ILE, 7, 31, 17, colour=False, trailing=False),
        multi_frame(BIG, 5, 16, 16, colour=False, trailing=False),
        multi_frame(ELE, 5, 17, 33, colour=True, trailing=False),
    ]
    for name in [
        "MR_small.dcm",
        "SC_rgb_rle_2frame.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "SC_rgb_jpeg_gdcm.dcm",
        "JPEG2000.dcm",
    ]:
        # Several share a SOP Instance UID: each is stored under a new one, its pixel data untouched.
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        files.append(out.getvalue())
    return files


def store_all(server, files):
    for content in files:
        r = requests.post(f"{server.root}/studies", data=content, headers={"Content-Type": "application/dicom"})
        assert r.status_code in (200, 202), r.text[:300]


def url_of(server, ds) -> str:
    return (
        f"{server.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def frames_of(ds) -> list:
    if not ds.file_meta.TransferSyntaxUID.is_compressed:
        return [bytes(ds.PixelData)]
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1))))


def without_pixel_data(ds) -> dict:
    return {element.tag: element.value for element in ds if element.tag != 0x7FE00010}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The whole-instance server and the streaming one, with the same instances."""
    from conftest import Server

    whole = Server(tmp_path_factory.mktemp("whole") / "data").start()
    streaming = Server(
        tmp_path_factory.mktemp("streaming") / "data", ["--transcode-whole-max-mib", "0"]
    ).start()
    files = stored_samples()
    store_all(whole, files)
    store_all(streaming, files)
    yield whole, streaming, [pydicom.dcmread(io.BytesIO(f), stop_before_pixels=True) for f in files]
    for server in (whole, streaming):
        server.stop()
        server.log.close()


@pytest.mark.parametrize("target", TARGETS)
def test_a_streamed_transcode_gives_the_data_set_and_frames_of_the_whole_one(servers, target):
    whole, streaming, originals = servers
    for original in originals:
        accept = {"Accept": f"application/dicom; transfer-syntax={target}"}
        expected = requests.get(url_of(whole, original), headers=accept)
        got = requests.get(url_of(streaming, original), headers=accept)
        what = f"{original.file_meta.TransferSyntaxUID} ({original.get('NumberOfFrames', 1)} frames) to {target}"
        assert got.status_code == expected.status_code, f"{what}: {got.text[:300]}"
        if expected.status_code != 200:
            continue
        assert got.headers["Content-Type"] == expected.headers["Content-Type"]
        streamed, reference = pydicom.dcmread(io.BytesIO(got.content)), pydicom.dcmread(io.BytesIO(expected.content))
        assert streamed.file_meta.TransferSyntaxUID == target, what
        assert without_pixel_data(streamed) == without_pixel_data(reference), what
        assert frames_of(streamed) == frames_of(reference), what
        if target in (ELE, ILE):
            # The length of a native target is known before the frames are transcoded.
            assert int(got.headers["Content-Length"]) == len(got.content), what
        elif original.file_meta.TransferSyntaxUID != target:
            assert "Content-Length" not in got.headers, what
            assert got.headers.get("Transfer-Encoding") == "chunked", what


def test_a_streamed_instance_stored_again_decodes_to_the_same_pixels(servers):
    """What the streaming server sends is a valid instance to the archive itself: stored again under a new
    UID and decoded, it gives the pixels of the original."""
    whole, streaming, originals = servers
    original = originals[0]  # 12 frames of 16-bit MONOCHROME2, with a trailing element
    default = requests.get(url_of(whole, original), headers={"Accept": "application/dicom"}).content
    for target in (RLE, JLS, J2K, HTJ2K, JPEG_LOSSLESS):
        r = requests.get(url_of(streaming, original), headers={"Accept": f"application/dicom; transfer-syntax={target}"})
        assert r.status_code == 200, r.text[:300]
        copy = pydicom.dcmread(io.BytesIO(r.content))
        assert len(frames_of(copy)) == 12
        copy.SOPInstanceUID = copy.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        out = io.BytesIO()
        copy.save_as(out, enforce_file_format=True)
        stored = requests.post(f"{whole.root}/studies", data=out.getvalue(), headers={"Content-Type": "application/dicom"})
        assert stored.status_code == 200, stored.text[:300]
        back = requests.get(url_of(whole, copy), headers={"Accept": "application/dicom"})
        assert back.status_code == 200
        assert bytes(pydicom.dcmread(io.BytesIO(back.content)).PixelData) == bytes(
            pydicom.dcmread(io.BytesIO(default)).PixelData
        ), target


def test_a_series_retrieve_streams_each_instance_in_the_syntax_asked(servers):
    whole, streaming, originals = servers
    url = f"{streaming.root}/studies/{STUDY}/series/{SERIES}"
    r = requests.get(url, headers={"Accept": f'multipart/related; type="application/dicom"; transfer-syntax={RLE}'})
    assert r.status_code == 200, r.text[:300]
    parts = MultipartDecoder.from_response(r).parts
    assert len(parts) == 4
    for part in parts:
        ds = pydicom.dcmread(io.BytesIO(part.content))
        assert ds.file_meta.TransferSyntaxUID == RLE
        reference = requests.get(url_of(whole, ds), headers={"Accept": f"application/dicom; transfer-syntax={RLE}"})
        assert frames_of(ds) == frames_of(pydicom.dcmread(io.BytesIO(reference.content)))


@pytest.mark.parametrize("target", [DEFLATED, JPEG_BASELINE])
def test_deflated_and_lossy_targets_are_transcoded_whole_as_before(servers, target):
    whole, streaming, originals = servers
    colour = originals[3]  # 8-bit RGB, which JPEG baseline takes
    accept = {"Accept": f"application/dicom; transfer-syntax={target}"}
    got = requests.get(url_of(streaming, colour), headers=accept)
    assert got.status_code == 200, got.text[:300]
    assert int(got.headers["Content-Length"]) == len(got.content)
    assert got.content == requests.get(url_of(whole, colour), headers=accept).content
