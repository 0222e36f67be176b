"""Character sets and UN sequences of the hostile-input issue, against the real binary: person names in ISO 2022
code extensions are stored as Unicode and searchable, and a private UN element of undefined length is stored and
served as a sequence, as pydicom reads it."""

import io
from pathlib import Path

import pydicom
import requests

from dicomweb_helpers import related_body, value

JSON = "application/dicom+json"
CRATE_DATA = Path(__file__).resolve().parents[2] / "crates" / "dicomweb-instance" / "tests" / "data"


def store(root, content):
    body, content_type = related_body([content])
    return requests.post(root + "/studies", data=body, headers={"Content-Type": content_type, "Accept": JSON})


def stored_url(response):
    assert response.status_code == 200, response.text
    return value(value(response.json(), "00081199")[0], "00081190")[0]


def test_a_japanese_name_in_iso_2022_ir_87_is_unicode_in_metadata_and_searchable(server):
    # pydicom's chrH31.dcm: PS3.5 H.3.1, Specific Character Set "\ISO 2022 IR 87", escape sequences per component.
    content = (CRATE_DATA / "charset" / "chrH31.dcm").read_bytes()
    assert b"\x1b$B;3ED\x1b(B" in content
    ds = pydicom.dcmread(io.BytesIO(content))
    url = stored_url(store(server.root, content))

    metadata = requests.get(url + "/metadata", headers={"Accept": JSON}).json()
    assert value(metadata[0], "00100010") == [
        {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
    ]

    for query in ("山田*", "やまだ*", "Yamada*"):
        r = requests.get(server.root + "/studies", params={"PatientName": query}, headers={"Accept": JSON})
        assert r.status_code == 200, r.text
        found = [value(study, "0020000D")[0] for study in r.json()]
        assert found == [ds.StudyInstanceUID], query
    r = requests.get(server.root + "/studies", params={"PatientName": "山本*"}, headers={"Accept": JSON})
    assert r.status_code in (200, 204) and (r.status_code == 204 or r.json() == [])


def test_a_korean_name_in_iso_2022_ir_149_is_unicode(server):
    content = (CRATE_DATA / "charset" / "chrI2.dcm").read_bytes()
    url = stored_url(store(server.root, content))
    metadata = requests.get(url + "/metadata", headers={"Accept": JSON}).json()
    assert value(metadata[0], "00100010") == [
        {"Alphabetic": "Hong^Gildong", "Ideographic": "洪^吉洞", "Phonetic": "홍^길동"}
    ]


def test_a_private_un_element_of_undefined_length_is_stored_and_served_as_a_sequence(server):
    content = (CRATE_DATA / "un-undefined-length.dcm").read_bytes()
    ds = pydicom.dcmread(io.BytesIO(content))
    assert ds[0x00091001].VR == "SQ", "pydicom reads it as a sequence"
    url = stored_url(store(server.root, content))

    retrieved = requests.get(url, headers={"Accept": "application/dicom"})
    assert retrieved.status_code == 200
    assert retrieved.content == content
    metadata = requests.get(url + "/metadata", headers={"Accept": JSON}).json()[0]
    assert value(metadata, "00100010") == [{"Alphabetic": "Unknown^Vr"}]
    private = metadata["00091001"]
    assert private["vr"] == "SQ"
    [item] = private["Value"]
    assert value(item, "00080100") == ["T-01"]
    assert value(value(item, "0040A043")[0], "00080100") == ["X1"]
