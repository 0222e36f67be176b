"""The acceptance story of the studies service, step by step, against /, /v1 and /v2.

A user with only requests, urllib3, requests-toolbelt and pydicom stores the three sample instances, retrieves them
in every form, searches for them at the six QIDO resources, deletes them and reads the change feed; once against a
server without authentication (on 127.0.0.1) and once with `Authorization: Bearer` against a server that requires
tokens from a real OpenID Connect issuer.
"""

import requests

from oidc_issuer import request_token
from dicomweb_helpers import (
    CT_SOP_CLASS,
    SERIES_BLUE,
    SERIES_RED_GREEN,
    SOP_BLUE,
    SOP_GREEN,
    SOP_RED,
    STUDY,
    failure_reasons,
    form_data_body,
    parts,
    read_dicom,
    related_body,
    sample,
    value,
)

DICOM_JSON = "application/dicom+json"


def test_acceptance_story(server, prefix):
    acceptance_story(server.root + prefix, requests.Session())


def test_acceptance_story_with_a_bearer_token(make_auth_server, issuer, prefix):
    server = make_auth_server()
    s = requests.Session()
    assert s.get(f"{server.root}{prefix}/changefeed").status_code == 401, "the server must require a token"
    token = request_token(issuer.url, audience="dicomweb", roles="DicomDataOwner")
    s.headers["Authorization"] = f"Bearer {token}"
    acceptance_story(server.root + prefix, s)


def acceptance_story(base, s):

    # 1. The change feed answers: the client is connected and authorised.
    r = s.get(f"{base}/changefeed")
    assert r.status_code == 200, r.text
    assert r.json() == []

    # 2. Store blue with urllib3's form-data body labelled multipart/related, no `type` parameter.
    body, content_type = form_data_body([sample("blue-circle.dcm")])
    r = s.post(f"{base}/studies", data=body, headers={"Content-Type": content_type, "Accept": DICOM_JSON})
    assert r.status_code == 200, r.text
    stored = r.json()
    assert value(stored, "00081190") == [f"{base}/studies/{STUDY}"]
    [item] = value(stored, "00081199")
    assert value(item, "00081150") == [CT_SOP_CLASS]
    assert value(item, "00081155") == [SOP_BLUE]
    assert value(item, "00081190") == [f"{base}/studies/{STUDY}/series/{SERIES_BLUE}/instances/{SOP_BLUE}"]
    assert "00081198" not in stored

    # 3. Store red and green in one standard request to /studies/{study}.
    body, content_type = related_body([sample("red-triangle.dcm"), sample("green-square.dcm")])
    r = s.post(f"{base}/studies/{STUDY}", data=body, headers={"Content-Type": content_type, "Accept": DICOM_JSON})
    assert r.status_code == 200, r.text
    assert sorted(value(i, "00081155")[0] for i in value(r.json(), "00081199")) == sorted([SOP_RED, SOP_GREEN])

    # 4. Blue again, single part application/dicom: it exists already.
    r = s.post(f"{base}/studies", data=sample("blue-circle.dcm"), headers={"Content-Type": "application/dicom"})
    assert r.status_code == 409, r.text
    assert failure_reasons(r.json()) == [45070]

    # 5. Retrieve the study, its metadata, the series, its metadata, one instance, its metadata, and frame 1.
    r = s.get(f"{base}/studies/{STUDY}", headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    assert r.status_code == 200, r.text
    instances = [read_dicom(p.content) for p in parts(r)]
    assert sorted(ds.SOPInstanceUID for ds in instances) == sorted([SOP_RED, SOP_GREEN, SOP_BLUE])

    r = s.get(f"{base}/studies/{STUDY}/metadata", headers={"Accept": DICOM_JSON})
    assert r.status_code == 200, r.text
    metadata = r.json()
    assert len(metadata) == 3
    assert all(value(m, "0020000D") == [STUDY] for m in metadata)
    # Pixel data is never inlined in metadata: it is a BulkDataURI under the root the client used.
    assert all("InlineBinary" not in m["7FE00010"] and m["7FE00010"]["BulkDataURI"].startswith(f"{base}/studies/{STUDY}/")
               for m in metadata)
    assert value(metadata[0], "00100010") == [{"Alphabetic": "Anony Mous"}]

    r = s.get(f"{base}/studies/{STUDY}/series/{SERIES_RED_GREEN}", headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    assert r.status_code == 200, r.text
    assert sorted(read_dicom(p.content).SOPInstanceUID for p in parts(r)) == sorted([SOP_RED, SOP_GREEN])

    r = s.get(f"{base}/studies/{STUDY}/series/{SERIES_RED_GREEN}/metadata", headers={"Accept": DICOM_JSON})
    assert r.status_code == 200, r.text
    assert len(r.json()) == 2

    instance_url = f"{base}/studies/{STUDY}/series/{SERIES_RED_GREEN}/instances/{SOP_RED}"
    r = s.get(instance_url, headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/dicom")
    original = read_dicom(sample("red-triangle.dcm"))
    retrieved = read_dicom(r.content)
    assert retrieved.PixelData == original.PixelData
    assert r.content[:128] == bytes(128), "the preamble is stored as zeros"
    assert r.content[128:] == sample("red-triangle.dcm")[128:], "otherwise stored byte for byte"

    r = s.get(f"{instance_url}/metadata", headers={"Accept": DICOM_JSON})
    assert r.status_code == 200, r.text
    [instance_metadata] = r.json()
    assert value(instance_metadata, "00080018") == [SOP_RED]
    assert value(instance_metadata, "00280010") == [original.Rows]

    r = s.get(f"{instance_url}/frames/1", headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'})
    assert r.status_code == 200, r.text
    [frame] = parts(r)
    frame_length = original.Rows * original.Columns * original.SamplesPerPixel * original.BitsAllocated // 8
    assert frame_length % 2 == 1, "this sample's pixel data carries a padding byte that is not part of the frame"
    assert frame.content == original.PixelData[:frame_length]

    # 6. QIDO by UID at all six resources: one result each.
    searches = [
        (f"{base}/studies", {"StudyInstanceUID": STUDY}),
        (f"{base}/series", {"SeriesInstanceUID": SERIES_BLUE}),
        (f"{base}/studies/{STUDY}/series", {"SeriesInstanceUID": SERIES_RED_GREEN}),
        (f"{base}/instances", {"SOPInstanceUID": SOP_GREEN}),
        (f"{base}/studies/{STUDY}/instances", {"SOPInstanceUID": SOP_RED}),
        (f"{base}/studies/{STUDY}/series/{SERIES_RED_GREEN}/instances", {"SOPInstanceUID": SOP_GREEN}),
    ]
    for url, params in searches:
        r = s.get(url, params=params, headers={"Accept": DICOM_JSON})
        assert r.status_code == 200, (url, r.text)
        assert len(r.json()) == 1, (url, r.json())
    r = s.get(f"{base}/studies", params={"StudyInstanceUID": STUDY}, headers={"Accept": DICOM_JSON})
    [study] = r.json()
    assert value(study, "00100020") == ["ID1"]
    assert value(study, "00201208") == [3]  # NumberOfStudyRelatedInstances
    assert value(study, "00201206") == [2]  # NumberOfStudyRelatedSeries
    assert value(study, "00080061") == ["OT"]  # ModalitiesInStudy

    # 7. Delete the red instance, the red/green series, the study; again: 404; retrieving: 404.
    assert s.delete(instance_url).status_code == 204
    assert s.delete(f"{base}/studies/{STUDY}/series/{SERIES_RED_GREEN}").status_code == 204
    assert s.delete(f"{base}/studies/{STUDY}").status_code == 204
    assert s.delete(f"{base}/studies/{STUDY}").status_code == 404
    assert s.delete(instance_url).status_code == 404
    assert s.get(f"{base}/studies/{STUDY}", headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}).status_code == 404
    assert s.get(f"{instance_url}/metadata", headers={"Accept": DICOM_JSON}).status_code == 404
    assert s.get(f"{base}/studies", params={"StudyInstanceUID": STUDY}, headers={"Accept": DICOM_JSON}).status_code == 204

    r = s.get(f"{base}/changefeed")
    assert r.status_code == 200, r.text
    feed = r.json()
    assert [e["Sequence"] for e in feed] == [1, 2, 3, 4, 5, 6]
    changes = [(e["Action"], e["SopInstanceUid"]) for e in feed]
    # Red and green came in one request, whose parts are stored concurrently: either may be committed first.
    assert sorted(changes[1:3]) == sorted([("create", SOP_RED), ("create", SOP_GREEN)])
    assert changes[:1] + changes[3:] == [
        ("create", SOP_BLUE),
        ("delete", SOP_RED),
        ("delete", SOP_GREEN),
        ("delete", SOP_BLUE),
    ]
    assert all(e["State"] == "deleted" for e in feed)
    assert all(e["Timestamp"].endswith("Z") for e in feed)
    r = s.get(f"{base}/changefeed/latest")
    assert r.status_code == 200 and r.json()["Sequence"] == 6
