"""DICOMweb conformance of a running server, checked by independent clients.

Run by `cargo xtask conformance`, which starts the server (or takes --url), makes the virtual environment from
requirements.txt next to this file and prints the results. Every transaction goes through dicomweb-client, the
DICOMweb client of the imaging community, and through raw HTTP (requests) where the client has no call (single-part
STOW, invalid bodies, conditional requests, the change feed). pydicom reads every retrieved part; dciodvfy (Debian's
dicom3tools) must find no error in a retrieved instance that it does not find in the stored original.

Rendered images and thumbnails are decoded by Pillow and compared with PS3.3's windowing of pydicom's reading of
the stored instance.

Each check is one row of the results: its PS3.18 section, a name, "pass", "fail" or "not implemented" (a known gap
of the server: transcoding, rendered resources, thumbnails, bulk data URIs), and a detail. The results go to the
JSON file named by --results; this script exits 0 whenever it could run the checks (the caller judges the results).
"""

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from io import BytesIO
from pathlib import Path

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from requests_toolbelt.multipart.decoder import MultipartDecoder

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"

STOW = "10.5 Store (STOW-RS)"
WADO = "10.4 Retrieve (WADO-RS)"
RENDERED = "10.4.1.1.3-4 Rendered and thumbnails (WADO-RS)"
QIDO = "10.6 Search (QIDO-RS)"
DELETE = "Delete (non-standard: Microsoft DICOM server)"
FEED = "Change feed v1, v2 (non-standard: Microsoft DICOM server)"

DICOM_JSON = "application/dicom+json"
ANY_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
ANY_OCTET = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
DEFLATED = "1.2.840.10008.1.2.1.99"
BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
# Media types of encapsulated frames, as dicomweb-client names them.
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
}

HTJ2K_SYNTAXES = {"1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}

# The compressed (and deflated) syntaxes the server encodes to, whether they are lossless, and the pixel formats
# each takes (bits allocated); what it refuses must be a 406 that says why.
ENCODE_TARGETS = [
    ("1.2.840.10008.1.2.4.90", "JPEG 2000 lossless", True, {8, 16}),
    ("1.2.840.10008.1.2.4.201", "HTJ2K lossless", True, {8, 16}),
    ("1.2.840.10008.1.2.4.80", "JPEG-LS lossless", True, {8, 16}),
    ("1.2.840.10008.1.2.4.70", "JPEG lossless SV1", True, {8, 16}),
    ("1.2.840.10008.1.2.5", "RLE lossless", True, {8, 16, 32}),
    ("1.2.840.10008.1.2.1.99", "deflated", True, {8, 16, 32, 64}),
    ("1.2.840.10008.1.2.4.50", "JPEG baseline", False, {8}),
]
LOSSY_SYNTAXES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
                  "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203"}
# Stored syntaxes the server cannot decode (none in the corpus: the video syntaxes are kept as stored).
UNDECODED = {"1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103"}

SAMPLES = ["blue-circle.dcm", "red-triangle.dcm", "green-square.dcm"]
# One instance per transfer syntax and kind of object from pydicom's test files (tests/data/pydicom) and the
# pydicom-data wheel: multi-frame, JPEG baseline, extended and lossless, JPEG 2000, JPEG-LS, RLE, deflate, big
# endian, implicit VR, structured reports, RT objects, a waveform. Several share a SOPInstanceUID (one dataset in
# several transfer syntaxes), so each is stored, checked and deleted on its own.
CORPUS_REPO = [
    "CT_small.dcm",
    "JPEG-lossy.dcm",
    "JPGExtended.dcm",
    "JPEG2000.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_rgb_rle_2frame.dcm",
    "SC_rgb_small_odd.dcm",
    "SC_rgb_small_odd_jpeg.dcm",
    "image_dfl.dcm",
    "liver_1frame.dcm",
    "reportsi.dcm",
    "rtdose.dcm",
    "rtplan.dcm",
    "test-SR.dcm",
    "waveform_ecg.dcm",
]
CORPUS_PYDICOM_DATA = [
    "emri_small.dcm",
    "emri_small_RLE.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_big_endian.dcm",
    "color3d_jpeg_baseline.dcm",
    "JPGLosslessP14SV1_1s_1f_8b.dcm",
    "SC_rgb_2frame.dcm",
    "liver.dcm",
]


class NotImplementedGap(Exception):
    """A known gap of the server (answered, typically with 406 or 404, instead of served)."""


class Results:
    def __init__(self, verbose):
        self.rows = []
        self.verbose = verbose

    def check(self, section, name, fn):
        started = time.monotonic()
        try:
            detail = fn() or ""
            status = "pass"
        except NotImplementedGap as gap:
            status, detail = "not implemented", str(gap)
        except Exception as error:  # noqa: BLE001 - every failure becomes a row
            status = "fail"
            detail = f"{type(error).__name__}: {error}".strip()
            if self.verbose:
                traceback.print_exc()
        self.rows.append({"section": section, "check": name, "status": status, "detail": str(detail)[:2000]})
        if status == "pass" and not self.verbose:
            return
        mark = {"pass": "ok", "fail": "FAIL", "not implemented": "n/i"}[status]
        print(f"  {mark:<4} {section[:5]} {name}" + (f": {detail}" if status != "pass" else ""), flush=True)


def value(dataset_json, tag):
    element = dataset_json.get(tag)
    if not element or "Value" not in element:
        return None
    return element["Value"]


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def expect_status(response, *codes):
    expect(response.status_code in codes, f"{response.request.method} {response.url} answered {response.status_code}, "
           f"expected {' or '.join(map(str, codes))}: {response.text[:300]}")


def failure_reasons(response):
    return [value(item, "00081197")[0] for item in (value(response.json(), "00081198") or [])]


def related_body(contents, boundary="conformanceBoundary", with_type=True):
    out = BytesIO()
    for content in contents:
        out.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        out.write(content)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    kind = 'type="application/dicom"; ' if with_type else ""
    return out.getvalue(), f"multipart/related; {kind}boundary={boundary}"


def multipart_parts(response):
    return MultipartDecoder.from_response(response).parts


def read(content):
    return pydicom.dcmread(BytesIO(content))


def encode(ds):
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def dicom_file_tail(content):
    """A Part 10 file without its preamble, which the server stores as zeros."""
    return content[128:]


class Conformance:
    def __init__(self, args):
        self.root = args.url.rstrip("/")
        self.results = Results(args.verbose)
        self.dciodvfy = args.dciodvfy
        self.run_id = uuid.uuid4().hex[:8].upper()
        self.http = requests.Session()
        self.client = DICOMwebClient(url=self.root)
        self.work = Path(tempfile.mkdtemp(prefix="dicomweb-conformance-"))
        self.dciodvfy_runs = 0

    def check(self, section, name, fn):
        self.results.check(section, name, fn)

    # ----------------------------------------------------------------------------------------------------------------
    # Data

    def corpus(self):
        import data_store  # the pydicom-data wheel: its files are in the package

        pydicom_data = Path(data_store.__file__).parent / "data"
        files = [(f"pydicom/{name}", DATA / "pydicom" / name) for name in CORPUS_REPO]
        files += [(f"pydicom-data/{name}", pydicom_data / name) for name in CORPUS_PYDICOM_DATA]
        missing = [str(path) for _, path in files if not path.is_file()]
        if missing:
            raise RuntimeError(f"test files missing: {missing}")
        return files

    def synthetic_studies(self):
        """Three studies of two series of two instances with known search values, unique to this run."""
        people = [("Müller^Jürgen", "19700101", "F"), ("Smith^John", "19800202", "M"), ("O'Brien^Ann", "19900303", "F")]
        dates = ["20200101", "20210615", "20221231"]
        times = ["080000", "120000", "173000"]
        modalities = [("CT", "SR"), ("MR", "MR"), ("CT", "PR")]
        instances = []
        for s, ((name, birth, sex), date, tm, mods) in enumerate(zip(people, dates, times, modalities)):
            study = generate_uid()
            for r, modality in enumerate(mods):
                series = generate_uid()
                for i in range(2):
                    meta = FileMetaDataset()
                    meta.TransferSyntaxUID = ExplicitVRLittleEndian
                    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
                    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
                    ds.SOPInstanceUID = generate_uid()
                    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
                    ds.PatientName = name
                    ds.PatientID = f"CONF{self.run_id}-{s}"
                    ds.PatientBirthDate = birth
                    ds.PatientSex = sex
                    ds.StudyInstanceUID = study
                    ds.SeriesInstanceUID = series
                    ds.StudyDate = date
                    ds.StudyTime = tm
                    ds.AccessionNumber = f"ACC{s}"
                    ds.StudyID = f"S{s}"
                    ds.StudyDescription = f"Conformance study {s}"
                    ds.ReferringPhysicianName = "Referrer^Rita"
                    ds.Modality = modality
                    ds.SeriesNumber = r + 1
                    ds.SeriesDescription = f"Series {r}"
                    ds.InstanceNumber = i + 1
                    request = Dataset()
                    request.RequestedProcedureID = f"RP{s}"
                    request.ScheduledProcedureStepID = f"SPS{s}"
                    ds.RequestAttributesSequence = Sequence([request])
                    instances.append(ds)
        return instances

    # ----------------------------------------------------------------------------------------------------------------
    # Helpers

    def instance_url(self, ds, root=None):
        return (f"{root or self.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}")

    def post(self, url, contents, single=False, with_type=True):
        if single:
            return self.http.post(url, data=contents[0], headers={"Content-Type": "application/dicom",
                                                                  "Accept": DICOM_JSON})
        body, content_type = related_body(contents, with_type=with_type)
        return self.http.post(url, data=body, headers={"Content-Type": content_type, "Accept": DICOM_JSON})

    def delete_quietly(self, url):
        self.http.delete(url)

    def dciodvfy_errors(self, path):
        return self.dciodvfy_result(path)[0]

    def dciodvfy_result(self, path):
        """dciodvfy's errors for a file, and whether it could read the file at all (it reads no deflated data set,
        and aborts on 32-bit native pixel data: an assertion in attrothr.cc)."""
        run = subprocess.run([self.dciodvfy, str(path)], capture_output=True, text=True, errors="replace",
                             timeout=120)
        self.dciodvfy_runs += 1
        lines = (run.stdout + run.stderr).splitlines()
        errors = Counter(line.strip() for line in lines if line.startswith("Error"))
        readable = run.returncode >= 0 and "Error - Dicom dataset read failed" not in errors
        return errors, readable

    def explicit_copy(self, content, name):
        """The instance rewritten by pydicom in Explicit VR Little Endian (pixel data as it is), for dciodvfy."""
        ds = read(content)
        if ds.file_meta.TransferSyntaxUID == DEFLATED:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = self.work / name
        ds.save_as(path, enforce_file_format=True)
        return path

    def no_new_dciodvfy_errors(self, original_path, retrieved):
        retrieved_path = self.work / "retrieved.dcm"
        retrieved_path.write_bytes(retrieved)
        note = ""
        retrieved_syntax = read(retrieved).file_meta.TransferSyntaxUID
        if retrieved_syntax == DEFLATED:
            retrieved_path = self.explicit_copy(retrieved, "retrieved-inflated.dcm")
            note = " (deflated: checked as pydicom inflated it)"
        elif retrieved_syntax in HTJ2K_SYNTAXES:
            # Debian's dciodvfy (2022) predates the HTJ2K syntaxes and reads no data set in them; their
            # encapsulation is JPEG 2000's (PS3.5 A.4.11), so the data set is checked labelled as that.
            ds = read(retrieved)
            ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"
            retrieved_path = self.work / "retrieved-as-j2k.dcm"
            ds.save_as(retrieved_path, enforce_file_format=True)
            note = " (HTJ2K: checked labelled as JPEG 2000, which dciodvfy knows)"
        before, readable = self.dciodvfy_result(original_path)
        if not readable:
            before, readable = self.dciodvfy_result(self.explicit_copy(original_path.read_bytes(), "original.dcm"))
            note += " (the original checked as pydicom rewrote it)"
        after, after_readable = self.dciodvfy_result(retrieved_path)
        if not readable:
            return "dciodvfy cannot read the original, nor pydicom's Explicit VR Little Endian copy: not compared"
        expect(after_readable, f"dciodvfy cannot read the retrieved instance: {sorted(after)[:3]}")
        new = after - before
        expect(not new, f"dciodvfy finds new errors in the retrieved instance: {sorted(new)[:5]}")
        return f"{sum(before.values())} error(s) in the original, none new{note}"

    def metadata_matches(self, metadata, original):
        """Every public top-level attribute of the original without a bulk value is in the metadata, equal."""
        expect(isinstance(metadata, dict), "metadata is not a JSON object")
        from_json = Dataset.from_json(metadata)
        compared = 0
        for element in original:
            if element.tag.group == 0x0002 or element.tag.is_private or element.VR in BULK_VRS:
                continue
            if element.tag == 0x7FE00010:
                continue
            key = f"{element.tag:08X}"
            expect(key in metadata, f"{element.keyword or key} is missing from the metadata")
            if element.VR == "SQ" or element.VM == 0:
                continue
            got = from_json[element.tag].value
            want = element.value
            expect(same_value(element.VR, got, want),
                   f"{element.keyword or key}: metadata has {got!r}, the instance {want!r}")
            compared += 1
        return compared

    # ----------------------------------------------------------------------------------------------------------------
    # Checks

    def run(self):
        samples = {name: (DATA / name).read_bytes() for name in SAMPLES}
        sample_ds = {name: read(content) for name, content in samples.items()}
        study = sample_ds["blue-circle.dcm"].StudyInstanceUID
        # A server given by --url may hold these from an earlier run.
        self.delete_quietly(f"{self.root}/studies/{study}")
        for _, path in self.corpus():
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            self.delete_quietly(f"{self.root}/studies/{ds.StudyInstanceUID}")
        latest = self.http.get(f"{self.root}/v2/changefeed/latest")
        start_sequence = latest.json().get("Sequence", 0) if latest.status_code == 200 else 0

        print("STOW-RS", flush=True)
        self.stow(samples, sample_ds)
        print("WADO-RS", flush=True)
        self.wado(samples, sample_ds)
        print("Transfer syntaxes and kinds of objects (store, retrieve, metadata, frames, dciodvfy, delete)",
              flush=True)
        for label, path in self.corpus():
            self.corpus_instance(label, path)
        print("Rendered and thumbnails", flush=True)
        self.rendered()
        print("QIDO-RS", flush=True)
        synthetic = self.synthetic_studies()
        self.qido(synthetic, sample_ds)
        print("DELETE", flush=True)
        self.delete(synthetic, sample_ds)
        print("Change feed", flush=True)
        self.change_feed(start_sequence, sample_ds)
        return self.results.rows

    def stow(self, samples, sample_ds):
        blue, red, green = (sample_ds[n] for n in SAMPLES)

        def client_store():
            stored = self.client.store_instances([read(samples["blue-circle.dcm"])])
            refs = stored.get("ReferencedSOPSequence", [])
            expect([r.ReferencedSOPInstanceUID for r in refs] == [blue.SOPInstanceUID],
                   f"ReferencedSOPSequence is {refs}")
            expect("FailedSOPSequence" not in stored, "FailedSOPSequence in a successful store")
            expect(str(stored.RetrieveURL).endswith(f"/studies/{blue.StudyInstanceUID}"),
                   f"RetrieveURL {stored.get('RetrieveURL')}")
            return "dicomweb-client store_instances (multipart/related; type=application/dicom)"

        self.check(STOW, "multipart/related with type, by dicomweb-client", client_store)

        def without_type():
            r = self.post(f"{self.root}/studies", [samples["red-triangle.dcm"]], with_type=False)
            expect_status(r, 200)
            [item] = value(r.json(), "00081199")
            expect(value(item, "00081155") == [red.SOPInstanceUID], "wrong ReferencedSOPInstanceUID")
            expect(value(item, "00081190") == [self.instance_url(red)], f"RetrieveURL {value(item, '00081190')}")

        self.check(STOW, "multipart/related without type", without_type)

        def single_part():
            r = self.post(f"{self.root}/studies/{green.StudyInstanceUID}", [samples["green-square.dcm"]],
                          single=True)
            expect_status(r, 200)

        self.check(STOW, "single part application/dicom to /studies/{study}", single_part)

        def duplicate():
            r = self.post(f"{self.root}/studies", [samples["blue-circle.dcm"]])
            expect_status(r, 409)
            expect(failure_reasons(r) == [45070], f"FailureReason {failure_reasons(r)}, expected [45070]")

        self.check(STOW, "duplicate instance: 409, FailureReason 45070", duplicate)

        def wrong_study():
            other = generate_uid()
            r = self.post(f"{self.root}/studies/{other}", [samples["blue-circle.dcm"]])
            expect_status(r, 409)
            expect(failure_reasons(r) == [43265], f"FailureReason {failure_reasons(r)}, expected [43265]")

        self.check(STOW, "instance of another study than the URL's: 409, FailureReason 43265", wrong_study)

        def invalid_instance():
            r = self.post(f"{self.root}/studies", [b"this is not a DICOM file"])
            expect_status(r, 409)
            expect(failure_reasons(r) == [272], f"FailureReason {failure_reasons(r)}, expected [272]")

        self.check(STOW, "invalid instance: 409, FailureReason 272", invalid_instance)

        def partly_stored():
            extra = self.synthetic_studies()[0]
            r = self.post(f"{self.root}/studies", [encode(extra), b"not DICOM either"])
            expect_status(r, 202)
            expect(failure_reasons(r) == [272], f"FailureReason {failure_reasons(r)}")
            [item] = value(r.json(), "00081199")
            expect(value(item, "00081155") == [extra.SOPInstanceUID], "the valid part is not referenced")
            expect_status(self.http.get(f"{self.instance_url(extra)}/metadata"), 200)
            self.delete_quietly(f"{self.root}/studies/{extra.StudyInstanceUID}")

        self.check(STOW, "one valid and one invalid part: 202 with both sequences", partly_stored)

        def missing_attribute():
            extra = self.synthetic_studies()[0]
            del extra.SeriesInstanceUID
            r = self.post(f"{self.root}/studies", [encode(extra)])
            expect_status(r, 409)
            expect(failure_reasons(r) == [43264], f"FailureReason {failure_reasons(r)}, expected [43264]")

        self.check(STOW, "instance without SeriesInstanceUID: 409, FailureReason 43264", missing_attribute)

        def unsupported_media_type():
            r = self.http.post(f"{self.root}/studies", data=b"{}", headers={"Content-Type": "application/json"})
            expect_status(r, 415)

        self.check(STOW, "unsupported Content-Type: 415", unsupported_media_type)

        def metadata_and_bulk_data():
            # PS3.18 10.5: a JSON data set (pydicom's to_json_dict) and its bulk data parts, by Content-Location.
            original = read(samples["green-square.dcm"])
            original.SOPInstanceUID = generate_uid()
            parts = {}

            def handler(element):
                uri = f"http://client.invalid/bulk/{element.tag:08X}"
                parts[uri] = bytes(element.value)
                return uri

            document = original.to_json_dict(bulk_data_threshold=0, bulk_data_element_handler=handler)
            boundary = uuid.uuid4().hex
            body = (f"--{boundary}\r\nContent-Type: {DICOM_JSON}\r\n\r\n".encode() + json.dumps([document]).encode()
                    + b"\r\n")
            for uri, content in parts.items():
                body += (f"--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Location: {uri}\r\n\r\n"
                         .encode() + content + b"\r\n")
            body += f"--{boundary}--\r\n".encode()
            r = self.http.post(f"{self.root}/studies", data=body, headers={
                "Content-Type": f'multipart/related; type="{DICOM_JSON}"; boundary={boundary}', "Accept": DICOM_JSON})
            expect_status(r, 200)
            stored = self.client.retrieve_instance(original.StudyInstanceUID, original.SeriesInstanceUID,
                                                   original.SOPInstanceUID)
            expect(stored.PixelData == original.PixelData, "the stored Pixel Data differs from the bulk data part")
            expect(stored.PatientName == original.PatientName, "the stored PatientName differs from the metadata")
            self.delete_quietly(self.instance_url(original))
            return f"{len(parts)} bulk data part(s)"

        self.check(STOW, "metadata and bulk data (application/dicom+json)", metadata_and_bulk_data)

    def wado(self, samples, sample_ds):
        blue, red, green = (sample_ds[n] for n in SAMPLES)
        study = blue.StudyInstanceUID
        by_sop = {ds.SOPInstanceUID: (name, ds) for name, ds in sample_ds.items()}

        def client_study():
            instances = self.client.retrieve_study(study)
            expect(sorted(i.SOPInstanceUID for i in instances) == sorted(by_sop), "wrong instances")
            for ds in instances:
                expect(ds.PixelData == by_sop[ds.SOPInstanceUID][1].PixelData, "pixel data differs")
            return f"{len(instances)} instances read by pydicom"

        self.check(WADO, "study, by dicomweb-client", client_study)

        def raw_study():
            r = self.http.get(f"{self.root}/studies/{study}", headers={"Accept": ANY_DICOM})
            expect_status(r, 200)
            got = {}
            for part in multipart_parts(r):
                expect(part.headers[b"Content-Type"].startswith(b"application/dicom"), "part type")
                got[read(part.content).SOPInstanceUID] = part.content
            for sop, (name, _) in by_sop.items():
                expect(dicom_file_tail(got[sop]) == dicom_file_tail(samples[name]), f"{name} differs")
            return "byte for byte (after the preamble)"

        self.check(WADO, "study, raw multipart: instances as stored", raw_study)

        def client_series():
            instances = self.client.retrieve_series(study, red.SeriesInstanceUID)
            expect(sorted(i.SOPInstanceUID for i in instances) == sorted([red.SOPInstanceUID, green.SOPInstanceUID]),
                   "wrong instances")

        self.check(WADO, "series, by dicomweb-client", client_series)

        def client_instance():
            ds = self.client.retrieve_instance(study, red.SeriesInstanceUID, red.SOPInstanceUID)
            expect(ds.SOPInstanceUID == red.SOPInstanceUID and ds.PixelData == red.PixelData, "wrong instance")

        self.check(WADO, "instance, by dicomweb-client", client_instance)

        def single_part_instance():
            r = self.http.get(self.instance_url(red), headers={"Accept": "application/dicom; transfer-syntax=*"})
            expect_status(r, 200)
            expect(r.headers["Content-Type"].startswith("application/dicom"), r.headers["Content-Type"])
            expect(dicom_file_tail(r.content) == dicom_file_tail(samples["red-triangle.dcm"]), "differs")

        self.check(WADO, "instance, single part application/dicom", single_part_instance)

        def study_metadata():
            metadata = self.client.retrieve_study_metadata(study)
            expect(len(metadata) == 3, f"{len(metadata)} instances")
            compared = 0
            for item in metadata:
                _, original = by_sop[value(item, "00080018")[0]]
                compared += self.metadata_matches(item, original)
            return f"{compared} values equal to the instances'"

        self.check(WADO, "study metadata, by dicomweb-client", study_metadata)

        def series_metadata():
            metadata = self.client.retrieve_series_metadata(study, red.SeriesInstanceUID)
            expect(len(metadata) == 2, f"{len(metadata)} instances")

        self.check(WADO, "series metadata, by dicomweb-client", series_metadata)

        def instance_metadata():
            metadata = self.client.retrieve_instance_metadata(study, red.SeriesInstanceUID, red.SOPInstanceUID)
            self.metadata_matches(metadata, red)

        self.check(WADO, "instance metadata, by dicomweb-client", instance_metadata)

        def etag_304():
            url = f"{self.root}/studies/{study}/metadata"
            r = self.http.get(url, headers={"Accept": DICOM_JSON})
            expect_status(r, 200)
            etag = r.headers.get("ETag")
            expect(etag, "no ETag on metadata")
            again = self.http.get(url, headers={"Accept": DICOM_JSON, "If-None-Match": etag})
            expect_status(again, 304)

        self.check(WADO, "metadata ETag, If-None-Match: 304", etag_304)

        def native_frame():
            [frame] = self.client.retrieve_instance_frames(study, red.SeriesInstanceUID, red.SOPInstanceUID, [1],
                                                           media_types=(("application/octet-stream", "*"),))
            expect(frame == expected_frames(red)[0], "frame 1 differs from the stored pixel data")

        self.check(WADO, "frame of a native instance, by dicomweb-client", native_frame)

        def default_frame():
            # No media types: dicomweb-client asks `multipart/related; type="*/*"`, i.e. the frame as stored.
            [frame] = self.client.retrieve_instance_frames(study, red.SeriesInstanceUID, red.SOPInstanceUID, [1])
            expect(frame == expected_frames(red)[0], "frame 1 differs from the stored pixel data")

        self.check(WADO, "frame with dicomweb-client's default media types", default_frame)

        def not_found():
            r = self.http.get(f"{self.root}/studies/{generate_uid()}", headers={"Accept": ANY_DICOM})
            expect_status(r, 404)

        self.check(WADO, "unknown study: 404", not_found)

        # Known gaps: reported as "not implemented" when the server declines, as a failure if it answers wrongly.
        jpeg_path = DATA / "pydicom" / "JPEG-lossy.dcm"
        jpeg = pydicom.dcmread(jpeg_path)

        def transcoding():
            self.delete_quietly(f"{self.root}/studies/{jpeg.StudyInstanceUID}")
            expect_status(self.post(f"{self.root}/studies", [jpeg_path.read_bytes()]), 200, 202)
            r = self.http.get(self.instance_url(jpeg),
                              headers={"Accept": "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"})
            self.delete_quietly(f"{self.root}/studies/{jpeg.StudyInstanceUID}")
            if r.status_code == 406:
                raise NotImplementedGap("a JPEG instance asked as Explicit VR Little Endian answers 406")
            expect_status(r, 200)
            expect(read(r.content).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1", "not transcoded")

        self.check(WADO, "transcoding to another transfer syntax", transcoding)

        def gap(kind, url, accept):
            def probe():
                r = self.http.get(url, headers={"Accept": accept})
                if r.status_code in (400, 404, 405, 406, 501):
                    raise NotImplementedGap(f"{kind}: {r.status_code}")
                expect_status(r, 200)
            return probe

        instance = self.instance_url(red)
        self.check(WADO, "rendered instance (image/jpeg)", gap("rendered", f"{instance}/rendered", "image/jpeg"))
        self.check(WADO, "rendered frame (image/jpeg)", gap("rendered", f"{instance}/frames/1/rendered", "image/jpeg"))
        self.check(WADO, "thumbnail", gap("thumbnail", f"{instance}/thumbnail", "image/jpeg"))

        def bulkdata():
            # The metadata is read with requests: dicomweb-client sends `Host` without the port (web.py sets
            # headers['Host'] = self.host, the host alone), so the server's URLs would name port 80.
            r = self.http.get(f"{self.instance_url(red)}/metadata", headers={"Accept": DICOM_JSON})
            expect_status(r, 200)
            uri = r.json()[0].get("7FE00010", {}).get("BulkDataURI")
            if not uri:
                raise NotImplementedGap("metadata leaves bulk values out instead of giving BulkDataURIs")
            # dicomweb-client's own bulk data retrieve (multipart/related; type="application/octet-stream").
            [value] = self.client.retrieve_bulkdata(uri)
            expect(value == bytes(red.PixelData), "the Pixel Data bulk value differs from the original's")
            r = self.http.get(uri, headers={"Accept": "application/octet-stream", "Range": "bytes=0-15"})
            expect_status(r, 206)
            expect(r.content == bytes(red.PixelData)[:16], "a range of the bulk value differs from the original's")
            return f"{len(value)} bytes, and a range of them"

        self.check(WADO, "bulk data URIs", bulkdata)

    def rendered(self):
        """Rendered resources and thumbnails (PS3.18 10.4.1.1.3-4, parameters of 8.3.5.1): each image decoded by
        Pillow and compared with what PS3.3's formulas give for pydicom's reading of the stored instance."""
        import numpy
        from PIL import Image

        import data_store

        pydicom_data = Path(data_store.__file__).parent / "data"
        created = []

        def stored_copy(path, change=None):
            ds = pydicom.dcmread(path)
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = (generate_uid() for _ in range(3))
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            if change:
                change(ds)
            # 202: stored with a warning (the ultrasound sample has attributes the server finds invalid).
            expect_status(self.post(f"{self.root}/studies", [encode(ds)]), 200, 202)
            created.append(ds)
            return ds

        def image(r, media_type):
            expect_status(r, 200)
            expect(r.headers.get("Content-Type") == media_type, f"Content-Type {r.headers.get('Content-Type')}")
            picture = Image.open(BytesIO(r.content))
            expect(picture.format == {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF"}[media_type],
                   f"Pillow reads a {picture.format}")
            return numpy.asarray(picture)

        def get(url, accept, **params):
            return self.http.get(url, params=params, headers={"Accept": accept} if accept else {})

        def modality(ds, frame=None):
            pixels = ds.pixel_array if frame is None else ds.pixel_array[frame]
            return pixels.astype(numpy.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))

        def windowed(x, center, width, function):
            # PS3.3 C.11.2.1.2.1 (linear), C.11.2.1.3.1 (linear exact), C.11.2.1.3.2 (sigmoid), to 0..255.
            if function == "linear":
                y = numpy.where(x <= center - 0.5 - (width - 1) / 2, 0.0,
                                numpy.where(x > center - 0.5 + (width - 1) / 2, 1.0,
                                            (x - (center - 0.5)) / max(width - 1, 1e-300) + 0.5))
            elif function == "linear-exact":
                y = (x - center) / width + 0.5
            else:
                y = 1 / (1 + numpy.exp(-4 * (x - center) / width))
            return numpy.round(numpy.clip(y, 0, 1) * 255)

        def close(got, want, tolerance=1):
            expect(got.shape == want.shape, f"{got.shape} pixels, {want.shape} expected")
            worst = int(numpy.abs(got.astype(numpy.int64) - want.astype(numpy.int64)).max())
            expect(worst <= tolerance, f"a pixel differs by {worst} from PS3.3's (at most {tolerance})")
            return worst

        def psnr(got, want):
            error = numpy.mean((got.astype(numpy.float64) - want.astype(numpy.float64)) ** 2)
            return float("inf") if error == 0 else 10 * math.log10(255 ** 2 / error)

        def with_window(ds):
            # CT_small has no window of its own: given one, the default rendering must use it.
            ds.WindowCenter, ds.WindowWidth = 40, 400

        ct = stored_copy(DATA / "pydicom" / "CT_small.dcm", with_window)
        ct_url = f"{self.instance_url(ct)}/rendered"
        ct_window = (float(ct.WindowCenter), float(ct.WindowWidth))
        ct_expected = windowed(modality(ct), *ct_window, "linear")

        def default_jpeg():
            floors = []
            for accept in ["image/jpeg", "*/*", "text/html,application/xhtml+xml,image/avif,image/webp,*/*;q=0.8",
                           None]:
                got = image(get(ct_url, accept), "image/jpeg")
                expect(got.shape == (ct.Rows, ct.Columns), f"{got.shape}")
                floors.append(psnr(got, ct_expected))
            expect(min(floors) >= 30, f"PSNR {min(floors):.1f} dB against the data set's window (floor 30 dB)")
            return f"image/jpeg for image/jpeg, */*, a browser's Accept and none; PSNR {min(floors):.1f} dB"

        self.check(RENDERED, "instance: image/jpeg by default, for */* and a browser's Accept", default_jpeg)

        def png_with_its_window():
            worst = close(image(get(ct_url, "image/png"), "image/png"), ct_expected)
            return f"the data set's window {ct_window[0]:g}/{ct_window[1]:g}, within {worst} of PS3.3's"

        self.check(RENDERED, "instance as image/png: its own window (VOI LUT Function LINEAR)", png_with_its_window)

        for function in ["linear", "linear-exact", "sigmoid"]:
            def window_parameter(function=function):
                center, width = 60.0, 500.0
                got = image(get(ct_url, "image/png", window=f"{center:g},{width:g},{function}"), "image/png")
                return f"within {close(got, windowed(modality(ct), center, width, function))} of PS3.3's"

            self.check(RENDERED, f"window=center,width,{function}", window_parameter)

        def viewport():
            got = image(get(ct_url, "image/png", viewport="64,32"), "image/png")
            expect(got.shape == (32, 32), f"{got.shape[::-1]} for viewport 64,32 of a 128 x 128 image (32 x 32)")
            whole = image(get(ct_url, "image/png"), "image/png")
            got = image(get(ct_url, "image/png", viewport="16,16,8,4,16,16"), "image/png")
            expect(numpy.array_equal(got, whole[4:20, 8:24]), "the source rectangle 8,4,16,16 is not the crop")
            return "scaled to fit keeping the aspect ratio; a source rectangle at its size is the crop"

        self.check(RENDERED, "viewport=vw,vh and vw,vh,sx,sy,sw,sh", viewport)

        def quality():
            low, high = (get(ct_url, "image/jpeg", quality=q) for q in (5, 95))
            low_image, high_image = image(low, "image/jpeg"), image(high, "image/jpeg")
            expect(len(low.content) < len(high.content), f"quality 5: {len(low.content)} bytes, 95: {len(high.content)}")
            low_psnr, high_psnr = psnr(low_image, ct_expected), psnr(high_image, ct_expected)
            expect(low_psnr < high_psnr, f"PSNR {low_psnr:.1f} dB at quality 5, {high_psnr:.1f} at 95")
            return f"quality 5: {len(low.content)} bytes, {low_psnr:.1f} dB; 95: {len(high.content)} bytes, {high_psnr:.1f} dB"

        self.check(RENDERED, "quality=1..100", quality)

        def ignored_parameters():
            for name, given in [("annotation", "patient"), ("iccprofile", "srgb")]:
                r = get(ct_url, "image/jpeg", **{name: given})
                image(r, "image/jpeg")
                expect(name in r.headers.get("Warning", ""), f"{name}: Warning {r.headers.get('Warning')!r}")
            return "rendered, with a Warning for each"

        self.check(RENDERED, "annotation and iccprofile: a Warning that they were ignored", ignored_parameters)

        def monochrome1():
            def monochrome1_with_window(ds):
                with_window(ds)
                ds.PhotometricInterpretation = "MONOCHROME1"

            inverted = stored_copy(DATA / "pydicom" / "CT_small.dcm", monochrome1_with_window)
            got = image(get(f"{self.instance_url(inverted)}/rendered", "image/png"), "image/png")
            return f"within {close(got, 255 - ct_expected)} of the inverted window"

        self.check(RENDERED, "MONOCHROME1 is drawn inverted", monochrome1)

        def colour():
            rgb = stored_copy(DATA / "pydicom" / "SC_rgb_small_odd.dcm")
            got = image(get(f"{self.instance_url(rgb)}/rendered", "image/png"), "image/png")
            expect(numpy.array_equal(got, rgb.pixel_array), "the PNG's colours are not the stored RGB values")
            return f"{rgb.Columns} x {rgb.Rows} RGB, every pixel"

        self.check(RENDERED, "RGB instance as image/png: the stored colours", colour)

        def segmented_palette():
            # An ultrasound image whose palette comes as Segmented Palette Color Lookup Table Data (PS3.3
            # C.7.9.2): pydicom expands the tables; the server draws their entries' high bytes.
            from pydicom.pixels import apply_color_lut

            us = stored_copy(pydicom_data / "gdcm-US-ALOKA-16.dcm")
            expected = (apply_color_lut(us.pixel_array, us) >> 8).astype(numpy.uint8)
            got = image(get(f"{self.instance_url(us)}/rendered", "image/png"), "image/png")
            expect(numpy.array_equal(got, expected), "the PNG is not the palette pydicom expands")
            return f"{us.Columns} x {us.Rows}, every pixel through the expanded tables"

        self.check(RENDERED, "segmented PALETTE COLOR tables", segmented_palette)

        def frame():
            mr = stored_copy(pydicom_data / "emri_small.dcm")
            center, width = 300.0, 600.0
            for n in (1, int(mr.NumberOfFrames)):
                got = image(get(f"{self.instance_url(mr)}/frames/{n}/rendered", "image/png",
                                window=f"{center:g},{width:g},linear-exact"), "image/png")
                close(got, windowed(modality(mr, n - 1), center, width, "linear-exact"))
            return f"frames 1 and {mr.NumberOfFrames} of {mr.NumberOfFrames}"

        self.check(RENDERED, "frame n of a multi-frame instance", frame)

        def thumbnails():
            study = f"{self.root}/studies/{ct.StudyInstanceUID}"
            for url in [f"{study}/thumbnail", f"{study}/series/{ct.SeriesInstanceUID}/thumbnail",
                        f"{self.instance_url(ct)}/thumbnail", f"{self.instance_url(ct)}/frames/1/thumbnail"]:
                # As OHIF asks (thumbnailRendering 'thumbnail'): a multipart Accept and the accept parameter.
                r = self.http.get(url, params={"accept": "image/jpeg"},
                                  headers={"Accept": 'multipart/related; type="image/jpeg"'})
                got = image(r, "image/jpeg")
                expect(got.shape[0] == got.shape[1] and got.shape[0] <= ct.Rows, f"{url}: {got.shape}")
                scaled = numpy.asarray(Image.fromarray(ct_expected.astype(numpy.uint8)).resize(
                    (got.shape[1], got.shape[0]), Image.Resampling.BILINEAR))
                expect(psnr(got, scaled) > 25, f"{url}: PSNR {psnr(got, scaled):.1f} dB against the image scaled")
            got = image(get(f"{study}/thumbnail", "image/png", viewport="64,64"), "image/png")
            expect(got.shape == (64, 64), f"viewport 64,64: {got.shape}")
            expect_status(self.http.get(f"{self.root}/studies/{generate_uid()}/thumbnail"), 404)
            return f"study, series, instance and frame, {r.headers['Content-Type']}; viewport; 404 for no study"

        self.check(RENDERED, "thumbnails of a study, series, instance and frame (as OHIF asks)", thumbnails)

        def study_and_series():
            r = self.http.get(f"{self.root}/studies/{ct.StudyInstanceUID}/rendered",
                              headers={"Accept": 'multipart/related; type="image/png"'})
            expect_status(r, 200)
            parts = multipart_parts(r)
            expect(len(parts) == 1, f"{len(parts)} parts for a study of one image")
            close(numpy.asarray(Image.open(BytesIO(parts[0].content))), ct_expected)
            r = self.http.get(f"{self.root}/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/rendered",
                              headers={"Accept": 'multipart/related; type="image/jpeg"'})
            expect_status(r, 200)
            expect(len(multipart_parts(r)) == 1, "one part for a series of one image")
            return "multipart/related, one image per instance"

        self.check(RENDERED, "study and series rendered: one part per image", study_and_series)

        def refusals():
            expect_status(get(ct_url, "application/dicom"), 406)
            for params, name in [({"quality": "0"}, "quality"), ({"window": "40"}, "window"),
                                 ({"window": "40,400,cubic"}, "window"), ({"viewport": "0,10"}, "viewport")]:
                r = self.http.get(ct_url, params=params, headers={"Accept": "image/jpeg"})
                expect_status(r, 400)
                expect(name in r.text, f"{params}: the 400 does not name {name}: {r.text[:200]}")
            return "406 for application/dicom; 400 naming quality, window, viewport"

        self.check(RENDERED, "a media type that is not an image: 406; malformed parameters: 400", refusals)

        for ds in created:
            self.delete_quietly(f"{self.root}/studies/{ds.StudyInstanceUID}")

    def transcoded(self, path, original, url, target, lossless, bits):
        """A check: the instance asked in `target` decodes (pydicom with pylibjpeg, pyjpegls) to the pixels of the
        original's decode (equal for a lossless target from a lossless original, PSNR floors otherwise), is marked
        lossy when it is, and dciodvfy finds no new error; or, for a pixel format the target cannot hold, a 406 that
        says why."""
        syntax = str(original.file_meta.TransferSyntaxUID)

        def check():
            import numpy

            r = self.http.get(url, headers={"Accept": f"application/dicom; transfer-syntax={target}"})
            samples = int(original.get("SamplesPerPixel", 1))
            refused = (
                syntax in UNDECODED
                or original.BitsAllocated not in bits
                or samples not in (1, 3)
                or (target == "1.2.840.10008.1.2.4.50"
                    and (original.get("PixelRepresentation", 0) == 1
                         or original.get("PhotometricInterpretation") == "PALETTE COLOR"))
            )
            if refused:
                expect_status(r, 406)
                expect(target in r.text or "cannot" in r.text, f"the 406 does not say why: {r.text[:200]}")
                return f"406: {r.json().get('message', r.text)[:160] if r.headers.get('Content-Type', '').startswith('application/json') else r.text[:160]}"
            expect_status(r, 200)
            ds = read(r.content)
            expect(ds.file_meta.TransferSyntaxUID == target, f"sent in {ds.file_meta.TransferSyntaxUID}")
            got = ds.pixel_array
            reference = "the original's decode"
            try:
                want = original.pixel_array
            except RuntimeError:
                # pydicom's plugins cannot decode a few originals (JPEG-lossy.dcm: sequential SOS parameters out of
                # range, which libjpeg-turbo, GDCM and DCMTK accept with a warning): the server's own decode to
                # Explicit VR Little Endian is the reference then, and the detail says so.
                decoded = self.http.get(url, headers={"Accept": "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"})
                expect_status(decoded, 200)
                want = read(decoded.content).pixel_array
                reference = "the server's Explicit VR Little Endian decode (pydicom cannot decode the original)"
            expect(got.shape == want.shape, f"shape {got.shape}, the original's {want.shape}")
            if lossless and syntax not in LOSSY_SYNTAXES:
                stored_bits = int(original.BitsStored)
                if got.dtype.kind in "ui" and stored_bits < original.BitsAllocated:
                    mask = (1 << stored_bits) - 1
                    same = numpy.array_equal(got.astype(numpy.int64) & mask, want.astype(numpy.int64) & mask)
                else:
                    same = numpy.array_equal(got, want)
                expect(same, f"pixels differ from the original's (max difference "
                             f"{numpy.abs(got.astype(numpy.float64) - want).max()})")
                detail = f"pixel-identical to {reference}"
            else:
                error = numpy.mean((got.astype(numpy.float64) - want.astype(numpy.float64)) ** 2)
                peak = float(2 ** int(original.BitsStored) - 1)
                psnr = math.inf if error == 0 else 10 * math.log10(peak ** 2 / error)
                floor = 30 if not lossless else 40
                expect(psnr >= floor, f"PSNR {psnr:.1f} dB, under {floor}")
                detail = f"PSNR {psnr:.1f} dB against {reference}"
            if not lossless:
                expect(ds.get("LossyImageCompression") == "01", "a lossy copy not marked Lossy Image Compression 01")
            return f"{detail}; {self.no_new_dciodvfy_errors(path, r.content)}"

        return check

    def corpus_instance(self, label, path):
        content = path.read_bytes()
        original = pydicom.dcmread(path)
        url = self.instance_url(original)
        syntax = str(original.file_meta.TransferSyntaxUID)
        stored = {"ok": False}

        def store():
            r = self.post(f"{self.root}/studies", [content], single=True)
            expect_status(r, 200, 202)
            stored["ok"] = True
            warnings = [value(i, "00081196") for i in value(r.json(), "00081199") or [] if value(i, "00081196")]
            return f"{r.status_code}, transfer syntax {syntax}" + (f", warnings {warnings}" if warnings else "")

        self.check(STOW, f"{label}: store", store)
        if not stored["ok"]:
            return

        def retrieve():
            r = self.http.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
            expect_status(r, 200)
            expect(dicom_file_tail(r.content) == dicom_file_tail(content), "the retrieved file differs from the stored")
            read(r.content)  # pydicom reads it
            return self.no_new_dciodvfy_errors(path, r.content)

        self.check(WADO, f"{label}: instance as stored, pydicom, dciodvfy", retrieve)

        def client_retrieve():
            ds = self.client.retrieve_instance(original.StudyInstanceUID, original.SeriesInstanceUID,
                                               original.SOPInstanceUID)
            expect(ds.SOPInstanceUID == original.SOPInstanceUID, "wrong instance")
            expect(ds.file_meta.TransferSyntaxUID == syntax, f"transfer syntax {ds.file_meta.TransferSyntaxUID}")

        self.check(WADO, f"{label}: instance, by dicomweb-client", client_retrieve)

        def metadata():
            item = self.client.retrieve_instance_metadata(original.StudyInstanceUID, original.SeriesInstanceUID,
                                                          original.SOPInstanceUID)
            return f"{self.metadata_matches(item, original)} values equal to the instance's"

        self.check(WADO, f"{label}: metadata, by dicomweb-client", metadata)

        if "PixelData" in original and original.get("BitsAllocated", 8) >= 8:
            frames = expected_frames(original)
            count = len(frames)
            numbers = sorted({1, count, (count + 1) // 2})

            def frames_check():
                encapsulated = original.file_meta.TransferSyntaxUID.is_encapsulated
                media_type = FRAME_MEDIA_TYPES.get(syntax) if encapsulated else "application/octet-stream"
                expect(media_type, f"no media type for {syntax}")
                if syntax == DEFLATED:
                    probe = self.http.get(f"{url}/frames/1", headers={"Accept": ANY_OCTET})
                    if probe.status_code in (404, 406):
                        raise NotImplementedGap(
                            f"frames of a deflated instance need it inflated (as transcoding would): "
                            f"{probe.status_code} {probe.text[:160]}")
                got = self.client.retrieve_instance_frames(
                    original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID, numbers,
                    media_types=((media_type, syntax if encapsulated else "*"),))
                expect(len(got) == len(numbers), f"{len(got)} frames for {numbers}")
                for number, frame in zip(numbers, got):
                    want = frames[number - 1]
                    if not encapsulated and len(frame) == len(want) + 1 and frame[:-1] == want:
                        continue  # an odd-length frame, padded
                    expect(frame == want or native_swapped(original, frame) == want,
                           f"frame {number} differs ({len(frame)} bytes, stored {len(want)})")
                return f"frames {numbers} of {count} as {media_type}"

            self.check(WADO, f"{label}: frames", frames_check)

        if "PixelData" in original and original.get("BitsAllocated", 8) >= 8:
            for target, name, lossless, bits in ENCODE_TARGETS:
                if target != syntax:
                    self.check(WADO, f"{label}: transcoded to {name}, decoded by pydicom + pylibjpeg, dciodvfy",
                               self.transcoded(path, original, url, target, lossless, bits))

        def delete():
            r = self.http.delete(url)
            expect_status(r, 204)
            expect_status(self.http.get(f"{url}/metadata", headers={"Accept": DICOM_JSON}), 404)

        self.check(DELETE, f"{label}: delete instance, then 404", delete)

    def qido(self, synthetic, sample_ds):
        def store_synthetic():
            by_study = {}
            for ds in synthetic:
                by_study.setdefault(ds.StudyInstanceUID, []).append(ds)
            for study, instances in by_study.items():
                # As read from Part 10 files (with a complete file meta group, which pydicom writes only when
                # it read one or is asked to enforce the file format).
                stored = self.client.store_instances([read(encode(ds)) for ds in instances],
                                                     study_instance_uid=study)
                expect(len(stored.ReferencedSOPSequence) == len(instances), "not every instance stored")
            return f"{len(synthetic)} instances in {len(by_study)} studies, by dicomweb-client"

        self.check(STOW, "synthetic search data, to /studies/{study}, by dicomweb-client", store_synthetic)
        studies = sorted({ds.StudyInstanceUID for ds in synthetic})
        study_of = {s: ds.StudyInstanceUID for s, ds in ((ds.PatientID, ds) for ds in synthetic)}
        scope = f"CONF{self.run_id}-*"

        def study_uids(results):
            return sorted(value(r, "0020000D")[0] for r in results)

        def expect_studies(results, patients):
            want = sorted(study_of[f"CONF{self.run_id}-{p}"] for p in patients)
            expect(study_uids(results) == want, f"{len(results)} studies, expected patients {patients}")

        def search(filters, patients, **kwargs):
            def run():
                results = self.client.search_for_studies(search_filters=dict(filters, **({} if "PatientID" in filters
                                                                                        else {"PatientID": scope})),
                                                         **kwargs)
                expect_studies(results, patients)
            return run

        cases = [
            ("single value: PatientID", {"PatientID": f"CONF{self.run_id}-1"}, [1]),
            ("universal matching within the run (PatientID wildcard)", {}, [0, 1, 2]),
            ("wildcard *: PatientName=Sm*", {"PatientName": "Sm*"}, [1]),
            ("wildcard ?: PatientID=CONF…-?", {"PatientID": f"CONF{self.run_id}-?"}, [0, 1, 2]),
            ("UID list: StudyInstanceUID=a,b", {"StudyInstanceUID": f"{studies[0]},{studies[1]}"},
             sorted({int(ds.PatientID[-1]) for ds in synthetic if ds.StudyInstanceUID in studies[:2]})),
            ("date range a-b", {"StudyDate": "20210101-20211231"}, [1]),
            ("date range a-", {"StudyDate": "20210101-"}, [1, 2]),
            ("date range -b", {"StudyDate": "-20210615"}, [0, 1]),
            ("time range a-b", {"StudyTime": "110000-180000"}, [1, 2]),
            ("person name, case and accents folded: PatientName=muller*", {"PatientName": "muller*"}, [0]),
            ("ModalitiesInStudy=MR", {"ModalitiesInStudy": "MR"}, [1]),
            ("several keys combined: StudyDate and AccessionNumber",
             {"StudyDate": "20200101-20991231", "AccessionNumber": "ACC0"}, [0]),
            ("attribute by tag: 00100010=Smith*", {"00100010": "Smith*"}, [1]),
        ]
        for name, filters, patients in cases:
            self.check(QIDO, f"studies, {name}", search(filters, patients))
        self.check(QIDO, "studies, fuzzymatching=true: PatientName=jur",
                   search({"PatientName": "jur"}, [0], fuzzymatching=True))

        def includefield():
            [result] = self.client.search_for_studies(search_filters={"PatientID": f"CONF{self.run_id}-2"},
                                                      fields=["StudyDescription", "00080090"])
            expect(value(result, "00081030") == ["Conformance study 2"], "StudyDescription not included")
            expect(value(result, "00080090") == [{"Alphabetic": "Referrer^Rita"}], "ReferringPhysicianName")
            [everything] = self.client.search_for_studies(search_filters={"PatientID": f"CONF{self.run_id}-2"},
                                                          fields=["all"])
            expect(value(everything, "00100030") == ["19900303"], "includefield=all lacks PatientBirthDate")

        self.check(QIDO, "studies, includefield by keyword, tag and all", includefield)

        def counts():
            [result] = self.client.search_for_studies(search_filters={"PatientID": f"CONF{self.run_id}-0"})
            expect(value(result, "00201208") == [4], f"NumberOfStudyRelatedInstances {value(result, '00201208')}")
            expect(value(result, "00201206") == [2], f"NumberOfStudyRelatedSeries {value(result, '00201206')}")
            expect(sorted(value(result, "00080061") or []) == ["CT", "SR"], "ModalitiesInStudy")

        self.check(QIDO, "studies, computed counts and ModalitiesInStudy", counts)

        def paging():
            pages = [self.client.search_for_studies(search_filters={"PatientID": scope}, limit=1, offset=o)
                     for o in range(4)]
            expect([len(p) for p in pages] == [1, 1, 1, 0], f"page sizes {[len(p) for p in pages]}")
            expect(sorted(study_uids(p)[0] for p in pages[:3]) == studies, "pages overlap or miss studies")

        self.check(QIDO, "studies, limit and offset", paging)

        first = [ds for ds in synthetic if ds.PatientID.endswith("-0")]
        study0 = first[0].StudyInstanceUID
        series0 = first[0].SeriesInstanceUID

        def count(results, n, what):
            expect(len(results) == n, f"{len(results)} {what}, expected {n}")

        def levels():
            count(self.client.search_for_series(search_filters={"PatientID": scope, "Modality": "CT"}), 2,
                  "series (all studies)")
            count(self.client.search_for_series(study0), 2, "series of a study")
            count(self.client.search_for_instances(search_filters={"PatientID": scope}), 12, "instances (all)")
            count(self.client.search_for_instances(study0), 4, "instances of a study")
            count(self.client.search_for_instances(study0, series0), 2, "instances of a series")
            count(self.client.search_for_instances(search_filters={"PatientName": "O'Brien*", "Modality": "PR"}),
                  2, "instances by upper-level PatientName and Modality")

        self.check(QIDO, "series and instances at every resource; upper-level attributes", levels)

        def sequence_matching():
            results = self.client.search_for_series(
                search_filters={"PatientID": scope, "RequestAttributesSequence.RequestedProcedureID": "RP2"})
            want = {ds.SeriesInstanceUID for ds in synthetic if ds.PatientID.endswith("-2")}
            expect({value(r, "0020000E")[0] for r in results} == want, f"{len(results)} series, expected {len(want)}")

        self.check(QIDO, "series, sequence matching: RequestAttributesSequence.RequestedProcedureID", sequence_matching)

        def series_counts():
            results = self.client.search_for_series(study0, fields=["NumberOfSeriesRelatedInstances"])
            expect(all(value(r, "00201209") == [2] for r in results), "NumberOfSeriesRelatedInstances")

        self.check(QIDO, "series, NumberOfSeriesRelatedInstances", series_counts)

        def no_match():
            r = self.http.get(f"{self.root}/studies", params={"PatientID": f"NOBODY{self.run_id}"})
            expect_status(r, 204, 200)
            expect(r.status_code == 204 or r.json() == [], "results for nobody")

        self.check(QIDO, "no match: empty answer", no_match)

        def bad_parameter():
            r = self.http.get(f"{self.root}/studies", params={"StudyDate": "not-a-date-range-x"})
            expect_status(r, 400)

        self.check(QIDO, "invalid query: 400", bad_parameter)

    def delete(self, synthetic, sample_ds):
        by_series = {}
        for ds in synthetic:
            by_series.setdefault((ds.StudyInstanceUID, ds.SeriesInstanceUID), []).append(ds)
        (study, series), instances = next(iter(by_series.items()))

        def instance():
            ds = instances[0]
            self.client.delete_instance(study, series, ds.SOPInstanceUID)
            expect_status(self.http.get(f"{self.instance_url(ds)}/metadata"), 404)
            count = len(self.client.search_for_instances(study, series))
            expect(count == len(instances) - 1, f"{count} instances left in the series")

        self.check(DELETE, "instance, by dicomweb-client; then 404 and not searchable", instance)

        def series_():
            self.client.delete_series(study, series)
            expect_status(self.http.get(f"{self.root}/studies/{study}/series/{series}/metadata"), 404)

        self.check(DELETE, "series, by dicomweb-client; then 404", series_)

        def studies():
            for each in sorted({ds.StudyInstanceUID for ds in synthetic}):
                self.client.delete_study(each)
            expect(self.client.search_for_studies(search_filters={"PatientID": f"CONF{self.run_id}-*"}) == [],
                   "deleted studies are still found")
            sample_study = sample_ds["blue-circle.dcm"].StudyInstanceUID
            expect_status(self.http.delete(f"{self.root}/studies/{sample_study}"), 204)
            expect_status(self.http.get(f"{self.root}/studies/{sample_study}", headers={"Accept": ANY_DICOM}), 404)

        self.check(DELETE, "studies, by dicomweb-client and raw; then 404", studies)

        def unknown():
            expect_status(self.http.delete(f"{self.root}/studies/{generate_uid()}"), 404)

        self.check(DELETE, "unknown study: 404", unknown)

    def change_feed(self, start_sequence, sample_ds):
        blue = sample_ds["blue-circle.dcm"]
        feed = {}

        def read_feed(version):
            def run():
                entries = []
                offset = start_sequence
                while True:
                    r = self.http.get(f"{self.root}/{version}/changefeed", params={"offset": offset, "limit": 100})
                    expect_status(r, 200)
                    page = r.json()
                    if not page:
                        break
                    entries += page
                    offset = page[-1]["Sequence"]
                sequences = [e["Sequence"] for e in entries]
                expect(sequences == list(range(start_sequence + 1, start_sequence + 1 + len(entries))),
                       "sequence numbers are not gap-free and increasing")
                actions = [(e["Action"], e["SopInstanceUid"]) for e in entries]
                expect(("create", blue.SOPInstanceUID) in actions and ("delete", blue.SOPInstanceUID) in actions,
                       "the store and delete of blue-circle are missing")
                expect(all(e["Timestamp"].endswith("Z") for e in entries), "timestamps not in UTC")
                latest = self.http.get(f"{self.root}/{version}/changefeed/latest").json()
                expect(latest["Sequence"] == sequences[-1], "latest is not the last entry")
                feed[version] = actions
                return f"{len(entries)} entries"
            return run

        self.check(FEED, "v1: every store and delete, gap-free, latest", read_feed("v1"))
        self.check(FEED, "v2: every store and delete, gap-free, latest", read_feed("v2"))

        def same():
            expect(feed.get("v1") and feed.get("v1") == feed.get("v2"), "v1 and v2 differ")

        self.check(FEED, "v1 and v2 list the same entries", same)

        def paging_rules():
            r = self.http.get(f"{self.root}/v1/changefeed",
                              params={"offset": start_sequence, "limit": 1, "includemetadata": "false"})
            [entry] = r.json()
            expect(entry["Sequence"] == start_sequence + 1 and entry["Metadata"] is None, "v1 offset/limit")
            expect_status(self.http.get(f"{self.root}/v1/changefeed", params={"limit": 101}), 400)
            expect_status(self.http.get(f"{self.root}/v2/changefeed", params={"limit": 201}), 400)
            r = self.http.get(f"{self.root}/v2/changefeed",
                              params={"startTime": "2000-01-01T00:00:00Z", "endTime": "2001-01-01T00:00:00Z"})
            expect_status(r, 200)
            expect(r.json() == [], "entries outside the time window")
            expect_status(self.http.get(f"{self.root}/v2/changefeed", params={"startTime": "yesterday"}), 400)

        self.check(FEED, "v1 and v2 paging rules (offset, limit, startTime, endTime)", paging_rules)


def expected_frames(ds):
    """The frames of an instance as stored: encapsulated frames, or slices of native pixel data."""
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=count))
    size = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
    return [ds.PixelData[i * size:(i + 1) * size] for i in range(count)]


def native_swapped(ds, frame):
    """A big endian instance's frame in little endian byte order (or the frame unchanged)."""
    if ds.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.2" or ds.BitsAllocated <= 8:
        return frame
    width = ds.BitsAllocated // 8
    return b"".join(frame[i:i + width][::-1] for i in range(0, len(frame), width))


def same_value(vr, got, want):
    def flat(v):
        if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
            return list(v)
        return [v]

    got, want = flat(got), flat(want)
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if vr in ("FL", "FD", "DS"):
            if w is None or g is None:
                if (w is None) != (g is None):
                    return False
                continue
            if not math.isclose(float(g), float(w), rel_tol=1e-6, abs_tol=1e-30):
                return False
        elif vr == "PN":
            if str(g) != str(w):
                return False
        elif vr in ("IS", "US", "SS", "UL", "SL", "UV", "SV"):
            if (g is None or g == "") != (w is None or w == ""):
                return False
            if g not in (None, "") and int(g) != int(w):
                return False
        elif str(g).rstrip(" \x00") != str(w).rstrip(" \x00"):
            return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server's root (its routes also under /v1 and /v2)")
    parser.add_argument("--results", required=True, help="write the results here (JSON)")
    parser.add_argument("--dciodvfy", default="dciodvfy", help="dicom3tools' dciodvfy")
    parser.add_argument("--verbose", action="store_true",
                        help="print every check as it passes and the traceback of every failure")
    args = parser.parse_args()
    conformance = Conformance(args)
    try:
        rows = conformance.run()
    finally:
        shutil.rmtree(conformance.work, ignore_errors=True)
    Path(args.results).write_text(json.dumps({"url": args.url, "dciodvfy_runs": conformance.dciodvfy_runs,
                                              "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
