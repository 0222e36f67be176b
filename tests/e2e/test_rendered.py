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


def test_what_cannot_be_decoded_is_a_406_not_a_broken_image(server):
    from dicomweb_helpers import mpeg2_instance

    ds = mpeg2_instance(server)
    for resource in ["rendered", "thumbnail"]:
        r = requests.get(f"{instance_url(server, ds)}/{resource}", headers={"Accept": "image/jpeg"})
        assert r.status_code == 406, f"{resource}: {r.status_code}"
        assert "not decoded yet" in r.json()["message"]
    r = requests.get(f"{server.root}/studies/{ds.StudyInstanceUID}/rendered", headers={"Accept": "image/jpeg"})
    assert r.status_code == 406


def test_twelve_bit_jpeg_renders(server):
    ds = store(server, "JPEG-lossy.dcm")  # JPEG Extended, 12-bit: decoded by libjpeg-turbo
    r = requests.get(f"{instance_url(server, ds)}/rendered", headers={"Accept": "image/png"})
    assert r.status_code == 200, r.text[:300]
    width, height, channels, grey = png_pixels(r.content)
    assert (width, height, channels) == (ds.Columns, ds.Rows, 1)
    assert len(set(grey)) > 16, "an image, not a flat field"


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


def test_a_study_and_a_series_render_as_one_part_per_image_instance(server):
    from pydicom.uid import generate_uid

    from dicomweb_helpers import parts, secondary_capture, store_under_new_uid

    study = generate_uid()
    images = []
    for name in ["CT_small.dcm", "MR_small.dcm"]:
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
        images.append(store_under_new_uid(server, ds))
    # A report in the study: no pixel data, so no part.
    report = secondary_capture(study, generate_uid())
    report.PatientID, report.Modality = images[0].PatientID, "SR"
    out = io.BytesIO()
    report.save_as(out, enforce_file_format=True)
    r = requests.post(f"{server.root}/studies", data=out.getvalue(), headers={"Content-Type": "application/dicom"})
    assert r.ok, r.text[:300]

    r = requests.get(f"{server.root}/studies/{study}/rendered", headers={"Accept": 'multipart/related; type="image/png"'})
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].startswith('multipart/related; type="image/png"')
    got = sorted(png_pixels(part.content)[:2] for part in parts(r))
    assert got == sorted((ds.Columns, ds.Rows) for ds in images)
    # Each part is the instance's own rendered resource.
    for ds in images:
        alone = requests.get(f"{instance_url(server, ds)}/rendered", headers={"Accept": "image/png"}).content
        assert alone in [part.content for part in parts(r)]

    # A series: its one image; a browser's Accept gets JPEG parts.
    ct = images[0]
    r = requests.get(f"{server.root}/studies/{study}/series/{ct.SeriesInstanceUID}/rendered",
                     headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, params={"viewport": "32,32"})
    assert r.status_code == 200, r.text[:300]
    [part] = parts(r)
    assert part.headers[b"Content-Type"] == b"image/jpeg" and max(jpeg_size(part.content)) == 32
    assert requests.get(f"{server.root}/studies/{study}/series/{report.SeriesInstanceUID}/rendered").status_code == 404
    assert requests.get(f"{server.root}/studies/1.2.3.404/rendered").status_code == 404


def test_a_cached_rendering_is_never_served_for_a_deleted_or_replaced_instance(server):
    """Thumbnails and rendered images are cached by stored file: a delete, and a new store of the same UIDs after
    it, show at once; the second request of an unchanged instance is the same image."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    from dicomweb_helpers import store_under_new_uid

    ds = store_under_new_uid(server, ds)
    url = instance_url(server, ds)
    png = {"Accept": "image/png"}
    first = requests.get(f"{url}/thumbnail", headers=png)
    assert first.status_code == 200
    assert requests.get(f"{url}/thumbnail", headers=png).content == first.content
    rendered = requests.get(f"{url}/rendered", headers=png).content

    assert requests.delete(url).status_code in (200, 202, 204)
    for resource in ["thumbnail", "rendered"]:
        r = requests.get(f"{url}/{resource}", headers=png)
        assert r.status_code == 404, f"{resource} of a deleted instance: {r.status_code}"
    series = f"{server.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    assert requests.get(f"{series}/thumbnail", headers=png).status_code == 404

    # The same UIDs stored again with other pixels (the image turned upside down): the new image is drawn.
    pixels, row = ds.PixelData, ds.Columns * 2
    ds.PixelData = b"".join(pixels[i : i + row] for i in range(len(pixels) - row, -1, -row))
    out = io.BytesIO()
    ds.save_as(out)
    assert requests.post(f"{server.root}/studies", data=out.getvalue(), headers={"Content-Type": "application/dicom"}).ok
    again = requests.get(f"{url}/thumbnail", headers=png)
    assert again.status_code == 200 and again.content != first.content
    assert requests.get(f"{series}/thumbnail", headers=png).content == again.content
    flipped = requests.get(f"{url}/rendered", headers=png).content
    assert flipped != rendered
    width, height, _, grey = png_pixels(flipped)
    _, _, _, original = png_pixels(rendered)
    assert grey == b"".join(original[i : i + width] for i in range(len(original) - width, -1, -width))


def test_palette_colour_is_drawn_through_its_red_green_and_blue_tables(server):
    """examples_palette.dcm: 8-bit indices, 256-entry 16-bit tables (bulk values, read from the stored file)."""
    ds = store_as_new(server, "examples_palette.dcm")
    r = requests.get(f"{instance_url(server, ds)}/rendered", headers={"Accept": "image/png"})
    assert r.status_code == 200, r.text[:300]
    width, height, channels, rgb = png_pixels(r.content)
    assert (width, height, channels) == (ds.Columns, ds.Rows, 3)

    def table(colour):
        count, first, bits = getattr(ds, f"{colour}PaletteColorLookupTableDescriptor")
        data = getattr(ds, f"{colour}PaletteColorLookupTableData")
        words = struct.unpack(f"<{len(data) // 2}H", data)
        return first, [w >> 8 if bits == 16 else w & 255 for w in words[: count or 65536]]

    tables = [table(c) for c in ("Red", "Green", "Blue")]
    expected = bytearray()
    for index in ds.PixelData:
        for first, entries in tables:
            expected.append(entries[min(max(index - first, 0), len(entries) - 1)])
    assert rgb == bytes(expected)
    thumb = requests.get(f"{instance_url(server, ds)}/thumbnail", headers={"Accept": "image/png"})
    assert thumb.status_code == 200 and png_pixels(thumb.content)[2] == 3


def test_thirty_two_bit_dose_frames_render(server):
    """rtdose.dcm: 15 frames of 32-bit unsigned dose values, shown over their range."""
    ds = store_as_new(server, "rtdose.dcm")
    for frame in (1, 8, 15):
        r = requests.get(f"{instance_url(server, ds)}/frames/{frame}/rendered", headers={"Accept": "image/png"})
        assert r.status_code == 200, r.text[:300]
        width, height, channels, grey = png_pixels(r.content)
        assert (width, height, channels) == (ds.Columns, ds.Rows, 1)
        assert max(grey) == 255 and min(grey) == 0, "the frame's range fills the grey levels"
