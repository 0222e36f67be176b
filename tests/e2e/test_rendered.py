"""Rendered images and thumbnails (issue 13): WADO-RS /rendered of instances and frames, /thumbnail of studies,
series, instances and frames (PS3.18 9.5.1.2.1, 10.4.1.1.3-4), as JPEG or PNG, with the quality, window and
viewport query parameters; what OHIF and browsers send is understood.

PNG answers are decoded here (zlib and PNG filters, a few lines) so that the grey levels can be checked against
the PS3.3 window function applied to the stored values by hand.
"""

import io
import struct
import zlib

import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file


def store(server, name) -> pydicom.Dataset:
    path = get_testdata_file(name)
    r = requests.post(f"{server.root}/studies", data=open(path, "rb").read(), headers={"Content-Type": "application/dicom"})
    assert r.status_code in (200, 202), r.text[:300]
    return pydicom.dcmread(path)


def instance_url(server, ds) -> str:
    return f"{server.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment."""
    assert data[:2] == b"\xff\xd8", "a JPEG"
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise AssertionError("no start of frame")


def png_pixels(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, channels, pixels) of an 8-bit grey or RGB PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "a PNG"
    i, idat, header = 8, b"", None
    while i < len(data):
        length, kind = struct.unpack(">I4s", data[i : i + 8])
        body = data[i + 8 : i + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        i += 12 + length
    width, height, depth, colour = header[:4]
    assert depth == 8
    channels = {0: 1, 2: 3}[colour]
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, channels, b"".join(rows)


def test_an_instance_renders_as_jpeg_by_default_and_as_png_on_request(server):
    ct = store(server, "CT_small.dcm")
    url = f"{instance_url(server, ct)}/rendered"
    for accept in ["image/jpeg", "*/*", "text/html,application/xhtml+xml,image/avif,image/webp,*/*;q=0.8", None]:
        r = requests.get(url, headers={"Accept": accept} if accept else {})
        assert r.status_code == 200, f"{accept}: {r.status_code} {r.text[:200]}"
        assert r.headers["Content-Type"] == "image/jpeg"
        assert jpeg_size(r.content) == (ct.Columns, ct.Rows)
    r = requests.get(url, headers={"Accept": "image/png"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert png_pixels(r.content)[:3] == (ct.Columns, ct.Rows, 1)
    assert requests.get(url, headers={"Accept": "application/dicom"}).status_code == 406


def test_a_window_maps_stored_values_to_grey_levels_as_ps3_3_says(server):
    ct = store(server, "CT_small.dcm")
    center, width = 40.0, 400.0
    r = requests.get(
        f"{instance_url(server, ct)}/rendered",
        params={"window": f"{center:g},{width:g},linear-exact"},
        headers={"Accept": "image/png"},
    )
    assert r.status_code == 200, r.text[:300]
    _, _, _, pixels = png_pixels(r.content)
    raw = struct.unpack(f"<{ct.Rows * ct.Columns}h", bytes(ct.PixelData))
    slope, intercept = float(ct.get("RescaleSlope", 1)), float(ct.get("RescaleIntercept", 0))
    expected = [round(min(max((v * slope + intercept - center) / width + 0.5, 0.0), 1.0) * 255) for v in raw]
    assert max(abs(a - b) for a, b in zip(pixels, expected)) <= 1


def test_a_viewport_scales_to_fit_and_crops_its_source_rectangle(server):
    ct = store(server, "CT_small.dcm")  # 128 x 128
    url = f"{instance_url(server, ct)}/rendered"
    r = requests.get(url, params={"viewport": "64,32"}, headers={"Accept": "image/png"})
    assert png_pixels(r.content)[:2] == (32, 32), "fits 64x32 keeping the aspect ratio"
    whole = png_pixels(requests.get(url, headers={"Accept": "image/png"}).content)[3]
    r = requests.get(url, params={"viewport": "16,16,8,4,16,16"}, headers={"Accept": "image/png"})
    width, height, _, pixels = png_pixels(r.content)
    assert (width, height) == (16, 16)
    assert pixels[:16] == whole[4 * 128 + 8 : 4 * 128 + 24], "the source rectangle, at its own size"


@pytest.mark.parametrize(
    "params,complaint",
    [
        ({"quality": "0"}, "quality"),
        ({"quality": "high"}, "quality"),
        ({"window": "40"}, "window"),
        ({"window": "40,-5"}, "window"),
        ({"window": "40,400,cubic"}, "window"),
        ({"viewport": "0,10"}, "viewport"),
        ({"viewport": "10"}, "viewport"),
        ({"viewport": "64,64,120,120,64,64"}, "viewport"),
    ],
)
def test_malformed_rendering_parameters_are_400s_that_name_them(server, params, complaint):
    ct = store(server, "CT_small.dcm")
    r = requests.get(f"{instance_url(server, ct)}/rendered", params=params, headers={"Accept": "image/jpeg"})
    assert r.status_code == 400, f"{params}: {r.status_code}"
    assert complaint in r.json()["message"]


def store_as_new(server, name) -> pydicom.Dataset:
    """Stores `name` under a new SOPInstanceUID (several of pydicom's files are one image in several syntaxes,
    with one UID)."""
    from dicomweb_helpers import store_under_new_uid

    return store_under_new_uid(server, pydicom.dcmread(get_testdata_file(name)))


def test_compressed_colour_and_big_endian_instances_render(server):
    for name in ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "SC_rgb_jpeg_dcmtk.dcm", "MR_small_bigendian.dcm"]:
        ds = store_as_new(server, name)
        r = requests.get(f"{instance_url(server, ds)}/rendered", headers={"Accept": "image/png"})
        assert r.status_code == 200, f"{name}: {r.status_code} {r.text[:300]}"
        width, height, channels, _ = png_pixels(r.content)
        assert (width, height, channels) == (ds.Columns, ds.Rows, ds.SamplesPerPixel), name
    # One image stored five ways renders the same.
    images = []
    for name in ["MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "MR_small_jp2klossless.dcm"]:
        ds = store_as_new(server, name)
        r = requests.get(f"{instance_url(server, ds)}/rendered", headers={"Accept": "image/png"})
        images.append(png_pixels(r.content)[3])
    assert all(image == images[0] for image in images)


def test_frames_render_one_at_a_time(server):
    ds = store(server, "SC_rgb_rle_2frame.dcm")
    url = instance_url(server, ds)
    first = requests.get(f"{url}/frames/1/rendered", headers={"Accept": "image/png"})
    second = requests.get(f"{url}/frames/2/rendered", headers={"Accept": "image/png"})
    assert first.status_code == second.status_code == 200
    assert png_pixels(first.content)[:3] == (ds.Columns, ds.Rows, 3)
    assert requests.get(f"{url}/frames/3/rendered", headers={"Accept": "image/png"}).status_code == 404
    assert requests.get(f"{url}/frames/1,2/rendered", headers={"Accept": "image/png"}).status_code == 400


def test_thumbnails_of_studies_series_instances_and_frames_as_ohif_asks(server):
    ct = store(server, "CT_small.dcm")
    study = f"{server.root}/studies/{ct.StudyInstanceUID}"
    for url in [
        f"{study}/thumbnail",
        f"{study}/series/{ct.SeriesInstanceUID}/thumbnail",
        f"{instance_url(server, ct)}/thumbnail",
        f"{instance_url(server, ct)}/frames/1/thumbnail",
    ]:
        # OHIF's thumbnailRendering 'thumbnail': a multipart Accept header and the accept query parameter.
        r = requests.get(url, params={"accept": "image/jpeg"}, headers={"Accept": 'multipart/related; type="image/jpeg"'})
        assert r.status_code == 200, f"{url}: {r.status_code} {r.text[:200]}"
        assert r.headers["Content-Type"] == "image/jpeg"
        assert max(jpeg_size(r.content)) == 128
    r = requests.get(f"{study}/thumbnail", params={"viewport": "64,64"}, headers={"Accept": "image/png"})
    assert png_pixels(r.content)[:2] == (64, 64)
    r = requests.get(f"{study}/thumbnail", params={"annotation": "patient"}, headers={"Accept": "image/jpeg"})
    assert r.status_code == 200 and "annotation" in r.headers["Warning"]
    assert requests.get(f"{server.root}/studies/1.2.3.404/thumbnail").status_code == 404


def test_what_cannot_be_decoded_yet_is_a_406_not_a_broken_image(server):
    ds = store(server, "JPEG-lossy.dcm")  # 12-bit JPEG
    r = requests.get(f"{instance_url(server, ds)}/rendered", headers={"Accept": "image/jpeg"})
    assert r.status_code == 406
    assert "not decoded yet" in r.json()["message"]


def test_a_study_thumbnail_skips_a_first_series_without_images(server):
    from pydicom.uid import generate_uid

    from dicomweb_helpers import secondary_capture

    study, series = generate_uid(), generate_uid()[:60]
    # Listings order series by UID: the series without pixel data comes first.
    report = secondary_capture(study, f"{series}.1")
    report.PatientID, report.Modality = "THUMBS", "SR"
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.PatientID = study, f"{series}.2", "THUMBS"
    ct.SOPInstanceUID = ct.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for ds in (report, ct):
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        r = requests.post(f"{server.root}/studies", data=out.getvalue(), headers={"Content-Type": "application/dicom"})
        assert r.status_code in (200, 202), r.text[:300]
    r = requests.get(f"{server.root}/studies/{study}/thumbnail", headers={"Accept": "image/jpeg"})
    assert r.status_code == 200, r.text[:300]
    assert max(jpeg_size(r.content)) == 128
