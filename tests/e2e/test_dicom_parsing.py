"""DICOM parsing findings of the hostile-input issue, against the real binary: files other readers accept are
accepted, and failure texts quoting a client's values stay one value."""

import io

import pydicom
import requests
from pydicom.uid import generate_uid

from dicomweb_helpers import related_body, sample, value

JSON = "application/dicom+json"


def store(root, content):
    body, content_type = related_body([content])
    return requests.post(root + "/studies", data=body, headers={"Content-Type": content_type, "Accept": JSON})


def test_a_file_without_file_meta_group_length_is_stored_and_served_as_pydicom_reads_it(server):
    original = pydicom.dcmread(io.BytesIO(sample("red-triangle.dcm")))
    original.SOPInstanceUID = generate_uid()
    original.file_meta.MediaStorageSOPInstanceUID = original.SOPInstanceUID
    buffer = io.BytesIO()
    original.save_as(buffer, enforce_file_format=True)
    content = buffer.getvalue()
    assert content[132:136] == b"\x02\x00\x00\x00", "pydicom wrote (0002,0000) first"
    without = content[:132] + content[144:]
    # pydicom reads the file without the group length element.
    assert pydicom.dcmread(io.BytesIO(without)).SOPInstanceUID == original.SOPInstanceUID

    r = store(server.root, without)
    assert r.status_code == 200, r.text
    url = value(value(r.json(), "00081199")[0], "00081190")[0]
    retrieved = requests.get(url, headers={"Accept": "application/dicom"})
    assert retrieved.status_code == 200
    assert retrieved.content == without
    metadata = requests.get(url + "/metadata", headers={"Accept": JSON}).json()
    assert value(metadata[0], "00080018") == [original.SOPInstanceUID]


def test_a_failure_text_quoting_a_backslash_is_one_error_comment(server):
    ds = pydicom.dcmread(io.BytesIO(sample("red-triangle.dcm")))
    ds.SOPInstanceUID = "1.2\\3.4"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    r = store(server.root, buffer.getvalue())
    assert r.status_code in (400, 409, 202), r.text
    failures = value(r.json(), "00081198")
    assert failures, r.text
    comments = [value(item, "00000902") for failure in failures for item in value(failure, "00741048") or []]
    assert comments and all(len(comment) == 1 and comment[0] for comment in comments), comments
