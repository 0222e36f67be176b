"""Small helpers shared by the end-to-end tests: reading sample files and DICOM JSON values."""

from io import BytesIO
from pathlib import Path

import pydicom
from requests_toolbelt.multipart.decoder import MultipartDecoder
from urllib3 import encode_multipart_formdata

DATA = Path(__file__).resolve().parents[1] / "data"
STUDY = "1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420"
SERIES_RED_GREEN = "1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652"
SERIES_BLUE = "1.2.826.0.1.3680043.8.498.77033797676425927098669402985243398207"
SOP_RED = "1.2.826.0.1.3680043.8.498.47359123102728459884412887463296905395"
SOP_GREEN = "1.2.826.0.1.3680043.8.498.12714725698140337137334606354172323212"
SOP_BLUE = "1.2.826.0.1.3680043.8.498.13273713909719068980354078852867170114"
CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def form_data_body(files):
    """The body most Python DICOMweb tutorials send: urllib3 form-data fields, re-labelled multipart/related."""
    fields = [("file", ("dicomfile", content, "application/dicom")) for content in files]
    body, content_type = encode_multipart_formdata(fields)
    boundary = content_type.split("boundary=")[1]
    return body, f"multipart/related; boundary={boundary}"


def related_body(files, boundary="DICOMwebBoundary", quote=True):
    """A standard multipart/related body with type=application/dicom."""
    out = BytesIO()
    for content in files:
        out.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        out.write(content)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    b = f'"{boundary}"' if quote else boundary
    return out.getvalue(), f'multipart/related; type="application/dicom"; boundary={b}'


def parts(response):
    return MultipartDecoder.from_response(response).parts


def read_dicom(content: bytes):
    return pydicom.dcmread(BytesIO(content))


def value(dataset_json: dict, tag: str):
    element = dataset_json.get(tag)
    if not element or "Value" not in element:
        return None
    return element["Value"]


def failure_reasons(response_json: dict):
    return [value(item, "00081197")[0] for item in (value(response_json, "00081198") or [])]


def process_memory(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of a process from /proc/<pid>/status (VmRSS, VmHWM...), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def secondary_capture(study: str, series: str):
    """An empty Secondary Capture instance of `study`/`series` in explicit VR little endian, with a new
    SOPInstanceUID and its file meta: tests add the attributes they need."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    return ds


def store_under_new_uid(server, ds: pydicom.Dataset) -> pydicom.Dataset:
    """Stores `ds` (pixel data untouched) under a new SOPInstanceUID: several of pydicom's files are one image in
    several syntaxes with one UID, and a retrieved copy must not collide with its original."""
    import requests
    from pydicom.uid import generate_uid

    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = BytesIO()
    ds.save_as(out)
    r = requests.post(f"{server.root}/studies", data=out.getvalue(), headers={"Content-Type": "application/dicom"})
    assert r.status_code in (200, 202), r.text[:300]
    return ds


def mpeg2_instance(server) -> pydicom.Dataset:
    """Stores a one-frame MPEG-2 instance (Video Photographic, 1.2.840.10008.1.2.4.100), a syntax the server keeps
    as stored but does not decode, and returns it."""
    import requests
    from pydicom.encaps import encapsulate
    from pydicom.uid import generate_uid

    ds = secondary_capture(generate_uid(), generate_uid())
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
    ds.PatientID = "MPEG2"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.NumberOfFrames = 16, 16, 3, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "YBR_PARTIAL_420", 0
    # An MPEG-2 sequence header start code and filler: never decoded here, only kept.
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    r = requests.post(f"{server.root}/studies", data=out.getvalue(), headers={"Content-Type": "application/dicom"})
    assert r.status_code in (200, 202), r.text[:300]
    return ds
