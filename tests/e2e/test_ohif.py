"""The OHIF viewer (3.13, its prebuilt dist/, default configuration) in Debian's Chromium against the server.

tests/run.sh provides the browser, OHIF and puppeteer-core and says where they are (OHIF_DIST, CHROMIUM,
PUPPETEER_CORE); without them this test is skipped. OHIF is served from a second origin on 127.0.0.1, as a viewer
usually is, so the server runs with `--cors-origin` for it. The only change to OHIF's shipped app-config.js is the
data source's URLs: its data source options (thumbnailRendering 'thumbnail', staticWado, singlepart
'bulkdata,video', bulkDataURI, omitQuotationForMultipartRequest) are kept as shipped.
"""

import io
import json
import mimetypes
import os
import shutil
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import free_port

OHIF_DIST = os.environ.get("OHIF_DIST")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium")
PUPPETEER_CORE = os.environ.get("PUPPETEER_CORE")
DRIVER = Path(__file__).resolve().parents[1] / "ohif" / "check_viewer.cjs"
# The data source URL of OHIF's shipped app-config.js (a public demo server), replaced by the server under test.
SHIPPED_DATA_SOURCE = "https://d14fa38qiwhyfd.cloudfront.net/dicomweb"

pytestmark = pytest.mark.skipif(
    not (OHIF_DIST and CHROMIUM and PUPPETEER_CORE),
    reason="OHIF_DIST, CHROMIUM and PUPPETEER_CORE are set by tests/run.sh, which installs them",
)


class OhifHandler(SimpleHTTPRequestHandler):
    """OHIF's dist/ as its own deployments serve it: files as they are, app-config.js pointed at the server, and
    index.html for every other path (OHIF routes in the browser: /viewer, /?...)."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm", ".js": "text/javascript"}

    def __init__(self, *args, app_config: bytes, **kwargs):
        self.app_config = app_config
        super().__init__(*args, **kwargs)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/app-config.js":
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript")
            self.send_header("Content-Length", str(len(self.app_config)))
            self.end_headers()
            self.wfile.write(self.app_config)
            return
        if not (Path(self.directory) / path.lstrip("/")).is_file():
            self.path = "/index.html"
        super().do_GET()

    def log_message(self, *args):
        pass


def serve_ohif(port: int, server_root: str) -> ThreadingHTTPServer:
    shipped = (Path(OHIF_DIST) / "app-config.js").read_text()
    assert SHIPPED_DATA_SOURCE in shipped, "OHIF's app-config.js changed: update SHIPPED_DATA_SOURCE"
    config = shipped.replace(SHIPPED_DATA_SOURCE, server_root).encode()
    mimetypes.add_type("application/wasm", ".wasm")
    handler = partial(OhifHandler, directory=OHIF_DIST, app_config=config)
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def as_new_study(ds: pydicom.Dataset, patient_id: str) -> pydicom.Dataset:
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientID = patient_id
    ds.PatientName = f"OHIF^{patient_id}"
    return ds


def multi_frame_ct() -> pydicom.Dataset:
    """A 6-frame Multi-frame Grayscale Word Secondary Capture made of CT_small's pixels."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    pixels, row = ds.PixelData, ds.Columns * 2
    # Frame n is the image moved down by 8n rows (wrapping round): each frame differs from the others.
    frames = [pixels[len(pixels) - 8 * n * row :] + pixels[: len(pixels) - 8 * n * row] for n in range(6)]
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.NumberOfFrames = 6
    ds.PixelData = b"".join(frames)
    return ds


def stored_studies(server):
    """One study per kind of image a viewer must draw, each with its own PatientID (what the study list shows)."""
    kinds = [
        ("native", lambda: pydicom.dcmread(get_testdata_file("CT_small.dcm"))),
        ("multiframe", multi_frame_ct),
        ("jpeg", lambda: pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_gdcm.dcm"))),
        ("jpeg2000", lambda: pydicom.dcmread(get_testdata_file("MR_small_jp2klossless.dcm"))),
        ("jpegls", lambda: pydicom.dcmread(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))),
        ("rle", lambda: pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))),
    ]
    studies = []
    for label, read in kinds:
        ds = as_new_study(read(), f"OHIF-{label.upper()}")
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        r = requests.post(
            f"{server.root}/studies", data=out.getvalue(), headers={"Content-Type": "application/dicom"}, timeout=30
        )
        assert r.status_code == 200, f"{label}: {r.status_code} {r.text[:300]}"
        studies.append({"uid": ds.StudyInstanceUID, "patientId": ds.PatientID, "label": label, "thumbnails": 1})
    return studies


def test_ohif_lists_draws_and_thumbnails_every_kind_of_image_with_no_failed_request(make_server, tmp_path):
    viewer_port = free_port()
    viewer = f"http://127.0.0.1:{viewer_port}"
    server = make_server(["--cors-origin", viewer])
    studies = stored_studies(server)
    httpd = serve_ohif(viewer_port, server.root)
    try:
        plan = {
            "chromium": CHROMIUM,
            "viewer": viewer,
            "server": server.root,
            "screenshots": str(tmp_path),
            "studies": studies,
        }
        (tmp_path / "plan.json").write_text(json.dumps(plan))
        run = subprocess.run(
            ["node", str(DRIVER), str(tmp_path / "plan.json")],
            capture_output=True,
            text=True,
            timeout=600,
            env=dict(os.environ, PUPPETEER_CORE=PUPPETEER_CORE),
        )
    finally:
        httpd.shutdown()
    assert run.returncode == 0, f"driver failed: {run.stderr[-3000:]}"
    report = json.loads(run.stdout)
    (tmp_path / "report.json").write_text(json.dumps(report, indent=1))
    where = f"(screenshots in {tmp_path}; browser console errors: {report['console'][:10]})"

    assert report["studyList"]["shown"] == [s["patientId"] for s in studies], f"study list {report['studyList']} {where}"
    for study in report["studies"]:
        assert study["drawn"], f"{study['label']} not drawn: {study.get('error')} {where}"
        assert study["thumbnails"] >= 1, f"{study['label']} has no thumbnail: {study.get('error')} {where}"
    assert report["failures"] == [], f"failed requests {report['failures'][:20]} {where}"
    # The viewer did use the server's rendered thumbnails and frames, not only metadata.
    urls = [r["url"] for r in report["requests"]]
    assert any("/thumbnail" in url for url in urls), urls[:50]
    assert any("/frames/" in url for url in urls), urls[:50]
