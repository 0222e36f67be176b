"""QIDO-RS matching against the real server, checked by an independent brute-force matcher.

One server receives the sample files and small instances generated here with chosen names, dates
and modalities (some studies get instances with conflicting study attributes: the most recently
stored wins). Every search is sent with `requests` (which percent-encodes `*`, `^`, spaces as `+`)
and its hits, in order, are compared with what the matcher below computes from the pydicom
datasets that the server accepted.
"""

import io
import re
import shutil
import tempfile
import unicodedata
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from conftest import Server
from dicomweb_helpers import DATA, related_body, value

# ---------------------------------------------------------------- data

GENERATED = [
    # (study key, series key, PatientName, PatientID, StudyDate, StudyTime, Modality, extra)
    ("A", "A1", "Doe^John", "PID-1", "20240115", "083000", "CT", {"AccessionNumber": "ACC1", "SeriesDescription": "Head",
                                                                  "AcquisitionDateTime": "20240115083012.5"}),
    ("A", "A1", "Doe^John", "PID-1", "20240115", "083000", "CT", {"AccessionNumber": "ACC1", "InstanceNumber": "2",
                                                                  "AcquisitionDateTime": "20240115091500+0100"}),
    ("A", "A2", "Doe^John", "PID-1", "20240115", "083000", "MR", {"BodyPartExamined": "HEAD", "AccessionNumber": "ACC1",
                                                                  "AcquisitionDateTime": "202401"}),
    ("B", "B1", "DOE^JANE", "pid-2", "20231231", "235959.5", "CT", {"ReferringPhysicianName": "House^Gregory",
                                                                    "AcquisitionDateTime": "2023"}),
    ("C", "C1", "Müller^Jürgen", "PID-3", "20240301", "120000", "US", {"PatientSex": "M", "PatientBirthDate": "19700101"}),
    ("D", "D1", "Yamada^Tarou=山田^太郎=やまだ^たろう", "PID-4", "20220606", "0600", "MR", {"StudyDescription": "Brain MRI",
                                                                                          "AcquisitionDateTime": "20220606060000-0500"}),
    ("E", "E1", "Smith^Anna^Maria", "PID+5", "20240102", "1015", "CR", {"StudyID": "S5", "ManufacturerModelName": "X-1000"}),
    # Study F: stored first as "Old^Name", then "New^Name": only the latter may match.
    ("F", "F1", "Old^Name", "PID-6", "20200101", "101010", "DX", {}),
    ("F", "F2", "New^Name", "PID-6b", "20210101", "111111", "DX", {"SeriesNumber": "7"}),
    ("G", "G1", "", "PID-7", "", "", "OT", {"RequestedStep": "STEP-42"}),
    ("H", "H1", "O'Brien^Seán", "PID-8", "19991231", "235959", "CT", {"RequestedStep": "STEP-7", "SeriesNumber": "3"}),
    # Two request items: keys of one sequence must match in the same item.
    ("I", "I1", "Two^Items", "PID-9", "20240601", "0900", "MR",
     {"RequestItems": [("STEP-1", "RP-A"), ("STEP-2", "RP-B")]}),
]


def generated_instance(study_uid, series_uid, name, pid, date, tm, modality, extra):
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = name
    ds.PatientID = pid
    if date:
        ds.StudyDate = date
    if tm:
        ds.StudyTime = tm
    ds.Modality = modality
    for keyword, v in extra.items():
        if keyword == "RequestItems":
            items = []
            for step, procedure in v:
                item = Dataset()
                item.ScheduledProcedureStepID = step
                item.RequestedProcedureID = procedure
                items.append(item)
            ds.RequestAttributesSequence = items
        elif keyword == "RequestedStep":
            item = Dataset()
            item.ScheduledProcedureStepID = v
            item.RequestedProcedureID = "RP-" + v
            ds.RequestAttributesSequence = [item]
        else:
            setattr(ds, keyword, v)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture(scope="module")
def archive():
    """A server holding every accepted instance; returns (root, accepted datasets in store order)."""
    temp = Path(tempfile.mkdtemp(prefix="dicomweb-qido-"))
    data_dir = temp / "data"
    data_dir.mkdir()
    server = Server(data_dir).start()
    contents = [p.read_bytes() for p in sorted(DATA.glob("*.dcm"))]
    contents += [p.read_bytes() for p in sorted((DATA / "pydicom").glob("*.dcm"))]
    studies, series = {}, {}
    for study_key, series_key, *fields in GENERATED:
        study_uid = studies.setdefault(study_key, generate_uid())
        series_uid = series.setdefault(series_key, generate_uid())
        contents.append(generated_instance(study_uid, series_uid, *fields))
    accepted = []
    try:
        for content in contents:
            body, content_type = related_body([content])
            r = requests.post(server.root + "/studies", data=body,
                              headers={"Content-Type": content_type, "Accept": "application/dicom+json"})
            if r.status_code not in (200, 202):
                continue
            stored = {value(item, "00081155")[0] for item in (value(r.json(), "00081199") or [])}
            ds = pydicom.dcmread(io.BytesIO(content), force=True)
            if str(ds.SOPInstanceUID) in stored:
                accepted.append(ds)
        yield server.root, accepted
    finally:
        server.stop()
        server.log.close()
        shutil.rmtree(temp, ignore_errors=True)


# ---------------------------------------------------------------- the independent matcher

STUDY_KEYS = {"StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "PatientName", "PatientID",
              "StudyInstanceUID", "StudyID", "PatientBirthDate", "PatientSex", "StudyDescription", "ModalitiesInStudy"}
SERIES_KEYS = {"Modality", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "BodyPartExamined",
               "ManufacturerModelName", "RequestAttributesSequence.ScheduledProcedureStepID",
               "RequestAttributesSequence.RequestedProcedureID"}
UIDS = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"}
NAMES = {"PatientName", "ReferringPhysicianName"}
DATES = {"StudyDate", "PatientBirthDate"}
TIMES = {"StudyTime"}
DATETIMES = {"AcquisitionDateTime"}


def raw_values(ds, keyword):
    if "." in keyword:
        sequence, inner = keyword.split(".")
        return [v for item in ds.get(sequence, []) for v in raw_values(item, inner)]
    element = ds.data_element(keyword) if keyword in ds else None
    if element is None or element.value is None:
        return []
    items = list(element.value) if isinstance(element.value, (MultiValue, list)) else [element.value]
    out = []
    for item in items:
        text = getattr(item, "original_string", None)
        text = text if isinstance(text, str) else str(item)
        text = text.strip(" \0")
        if text:
            out.append(text)
    return out


def keyword_path(attribute_id):
    """'00400275.00401001' -> 'RequestAttributesSequence.RequestedProcedureID'."""
    parts = []
    for part in attribute_id.split("."):
        if re.fullmatch(r"[0-9A-Fa-f]{8}", part):
            part = keyword_for_tag(int(part, 16))
        parts.append(part)
    return ".".join(parts)


def fold(name):
    text = "".join(c for c in unicodedata.normalize("NFD", name) if not unicodedata.combining(c)).lower()
    groups = ["^".join(p.strip() for p in g.split("^")).rstrip("^") for g in text.split("=")]
    return "=".join(groups).rstrip("=")


def wildcard(pattern, text):
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.S) is not None


def time_bound(text, upper):
    whole, _, fraction = text.partition(".")
    filler = "9" if upper else "0"
    whole = whole + ("5959" if upper else "0000")[: 6 - len(whole)]
    return whole + "." + fraction.ljust(6, filler)


def datetime_bound(text, upper):
    """A DT value as a comparable key: missing components filled (day 31 for every month as an upper
    bound, which orders the same), the UTC offset ignored."""
    if len(text) > 5 and re.fullmatch(r".*[+-]\d{4}", text):
        text = text[:-5]
    whole, _, fraction = text.partition(".")
    fill = "1231235959" if upper else "0101000000"
    return whole + fill[len(whole) - 4:] + "." + fraction.ljust(6, "9" if upper else "0")


def matches_value(keyword, query, stored, fuzzy):
    """Does one stored value match one (non-empty) query value?"""
    if keyword in NAMES:
        name = fold(stored)
        candidates = [name] + [g for g in name.split("=") if g]
        q = fold(query)
        if "*" in q or "?" in q:
            return any(wildcard(q, c) for c in candidates)
        if fuzzy:
            parts = [p for p in re.split(r"[\^=,\s]+", name) if p]
            words = [w for w in re.split(r"[\^=,\s]+", q) if w]
            return bool(words) and all(any(p.startswith(w) for p in parts) for w in words)
        return q in candidates
    if keyword in DATES or keyword in TIMES or keyword in DATETIMES:
        key = time_bound if keyword in TIMES else datetime_bound if keyword in DATETIMES else (lambda t, up: t)
        if keyword in DATETIMES and len(stored) > 5 and re.fullmatch(r".*[+-]\d{4}", stored):
            stored = stored[:-5]  # the UTC offset is ignored
        if len(stored) < 2 or not stored.replace(".", "").isdigit():
            return False
        s = key(stored, False)
        lower, sep, upper = query.partition("-")
        if not sep:
            upper = lower
        return (not lower or key(lower, False) <= s) and (not upper or s <= key(upper, True))
    if keyword in UIDS:
        return stored in re.split(r"[,\\]", query)
    return wildcard(query, stored)


class Catalogue:
    def __init__(self, accepted):
        self.instances = accepted
        self.latest_of_study, self.latest_of_series, self.modalities = {}, {}, {}
        for ds in accepted:  # store order: later wins
            self.latest_of_study[ds.StudyInstanceUID] = ds
            self.latest_of_series[ds.SeriesInstanceUID] = ds
            self.modalities.setdefault(ds.StudyInstanceUID, set()).update(raw_values(ds, "Modality"))

    def values(self, ds, keyword):
        if keyword == "ModalitiesInStudy":
            return sorted(self.modalities[ds.StudyInstanceUID])
        if keyword in STUDY_KEYS:
            return raw_values(self.latest_of_study[ds.StudyInstanceUID], keyword)
        if keyword in SERIES_KEYS:
            return raw_values(self.latest_of_series[ds.SeriesInstanceUID], keyword)
        return raw_values(ds, keyword)

    def matches(self, ds, params):
        params = {keyword_path(k): v for k, v in params.items()}
        fuzzy = params.get("fuzzymatching") == "true"
        empty = params.get("emptyvaluematching") == "true"
        for keyword, query in params.items():
            if keyword in ("fuzzymatching", "emptyvaluematching", "multiplevaluematching", "limit", "offset",
                           "includefield") or query == "":
                continue
            stored = self.values(ds, keyword)
            if empty and not stored and keyword not in UIDS:
                continue
            alternatives = [query] if keyword in UIDS else query.split("\\")
            if not any(matches_value(keyword, q, s, fuzzy) for q in alternatives for s in stored):
                return False
        # Keys inside one sequence must all match in one item (PS3.4 C.2.2.2.6).
        by_sequence = {}
        for keyword, query in params.items():
            if "." in keyword and query != "":
                by_sequence.setdefault(keyword.split(".")[0], []).append((keyword.split(".")[1], query))
        for sequence, keys in by_sequence.items():
            if len(keys) < 2:
                continue
            items = self.latest_of_series[ds.SeriesInstanceUID].get(sequence, [])
            def item_matches(item):
                for inner, query in keys:
                    stored = raw_values(item, inner)
                    if empty and not stored:
                        continue
                    if not any(matches_value(inner, q, v, fuzzy) for q in query.split("\\") for v in stored):
                        return False
                return True
            if not any(item_matches(item) for item in items) and not (empty and not items):
                return False
        return True

    def expected(self, level, params, study=None, series=None):
        hits = {}
        for ds in self.instances:
            if study and ds.StudyInstanceUID != study or series and ds.SeriesInstanceUID != series:
                continue
            if level == "study":
                representative, key = self.latest_of_study[ds.StudyInstanceUID], (ds.StudyInstanceUID,)
            elif level == "series":
                representative = self.latest_of_series[ds.SeriesInstanceUID]
                key = (ds.StudyInstanceUID, ds.SeriesInstanceUID)
            else:
                representative, key = ds, (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            if self.matches(representative, params):
                hits[key] = True
        return sorted(hits)


def found(root, url, params):
    """Every hit of a search, following pages of 7, as UID tuples."""
    hits, offset = [], 0
    while True:
        r = requests.get(root + url, params=dict(params, limit="7", offset=str(offset)),
                         headers={"Accept": "application/dicom+json"})
        assert r.status_code in (200, 204), (url, params, r.status_code, r.text)
        if r.status_code == 204:
            return hits
        page = r.json()
        assert 1 <= len(page) <= 7
        for item in page:
            key = tuple(value(item, tag)[0] for tag in ("0020000D", "0020000E", "00080018") if value(item, tag))
            hits.append(key)
        offset += 7


def check(archive, level, params, study=None, series=None):
    root, accepted = archive
    catalogue = Catalogue(accepted)
    url = {"study": "/studies", "series": "/series", "instance": "/instances"}[level]
    if study:
        url = f"/studies/{study}" + (f"/series/{series}" if series else "") + url
    expected = catalogue.expected(level, params, study, series)
    got = found(root, url, params)
    width = {"study": 1, "series": 2, "instance": 3}[level]
    assert [g[:width] for g in got] == expected, (url, params)
    return expected


# ---------------------------------------------------------------- tests

SEARCHES = [
    # single values, universal matching, UID lists
    ("study", {"PatientID": "PID-1"}),
    ("study", {"PatientID": ""}),
    ("study", {"PatientID": "PID+5"}),
    ("study", {"AccessionNumber": "ACC1"}),
    ("study", {"StudyID": "S5"}),
    ("study", {"PatientSex": "M"}),
    ("study", {"StudyDescription": "Brain MRI"}),
    ("study", {"ModalitiesInStudy": "MR"}),
    ("study", {"ModalitiesInStudy": "C?"}),
    ("series", {"Modality": "CT"}),
    ("series", {"SeriesNumber": "7"}),
    ("series", {"BodyPartExamined": "HEAD"}),
    ("series", {"ManufacturerModelName": "X-*"}),
    ("series", {"SeriesDescription": "Head"}),
    ("instance", {"InstanceNumber": "2"}),
    ("instance", {"SOPClassUID": SecondaryCaptureImageStorage}),
    # wildcards (case-sensitive) on strings
    ("study", {"PatientID": "PID-*"}),
    ("study", {"PatientID": "pid-?"}),
    ("study", {"PatientID": "*"}),
    ("study", {"AccessionNumber": "*1"}),
    # person names: case, accents, groups, wildcards, fuzzy
    ("study", {"PatientName": "doe^john"}),
    ("study", {"PatientName": "DOE*"}),
    ("study", {"PatientName": "muller^jurgen"}),
    ("study", {"PatientName": "Müller*"}),
    ("study", {"PatientName": "山田^太郎"}),
    ("study", {"PatientName": "o'brien^sean"}),
    ("study", {"PatientName": "Old^Name"}),
    ("study", {"PatientName": "New^Name"}),
    ("study", {"PatientName": "?oe^J*"}),
    ("study", {"PatientName": "joh", "fuzzymatching": "true"}),
    ("study", {"PatientName": "do", "fuzzymatching": "true"}),
    ("study", {"PatientName": "jo do", "fuzzymatching": "true"}),
    ("study", {"PatientName": "ohn", "fuzzymatching": "true"}),
    ("study", {"PatientName": "ann mar", "fuzzymatching": "true"}),
    ("study", {"ReferringPhysicianName": "house^gregory"}),
    # ranges
    ("study", {"StudyDate": "20240101-20241231"}),
    ("study", {"StudyDate": "20240101-"}),
    ("study", {"StudyDate": "-20231231"}),
    ("study", {"StudyDate": "20240115"}),
    ("study", {"PatientBirthDate": "19000101-19991231"}),
    ("study", {"StudyTime": "08-12"}),
    ("study", {"StudyTime": "2359-"}),
    ("study", {"StudyTime": "-0600"}),
    ("study", {"StudyTime": "10"}),
    ("instance", {"AcquisitionDateTime": "2024-"}),
    ("instance", {"AcquisitionDateTime": "20240115083000-20240115090000"}),
    ("instance", {"AcquisitionDateTime": "202401"}),
    ("instance", {"AcquisitionDateTime": "-20231231235959.999999"}),
    ("instance", {"AcquisitionDateTime": "20220606060000"}),
    ("instance", {"AcquisitionDateTime": "2023\\2022", "multiplevaluematching": "true"}),
    ("study", {"StudyTime": "08\\12", "multiplevaluematching": "true"}),
    ("study", {"StudyDate": "20240115\\-20000101", "multiplevaluematching": "true"}),
    # multiple values and empty values
    ("study", {"PatientID": "PID-1\\pid-2", "multiplevaluematching": "true"}),
    ("study", {"PatientName": "doe^john\\yamada*", "multiplevaluematching": "true"}),
    ("study", {"PatientName": "doe*", "emptyvaluematching": "true"}),
    ("study", {"StudyDate": "20240101-", "emptyvaluematching": "true"}),
    # sequences
    ("series", {"RequestAttributesSequence.ScheduledProcedureStepID": "STEP-42"}),
    ("series", {"RequestAttributesSequence.ScheduledProcedureStepID": "STEP-*"}),
    ("series", {"00400275.00401001": "RP-STEP-7"}),
    ("series", {"RequestAttributesSequence.ScheduledProcedureStepID": "STEP-1",
                "RequestAttributesSequence.RequestedProcedureID": "RP-A"}),
    ("series", {"RequestAttributesSequence.ScheduledProcedureStepID": "STEP-1",
                "RequestAttributesSequence.RequestedProcedureID": "RP-B"}),
    ("series", {"RequestAttributesSequence.ScheduledProcedureStepID": "STEP-?",
                "RequestAttributesSequence.RequestedProcedureID": "RP-B"}),
    ("instance", {"RequestAttributesSequence.ScheduledProcedureStepID": "STEP-2\\STEP-42",
                  "RequestAttributesSequence.RequestedProcedureID": "RP-*", "multiplevaluematching": "true"}),
    # upper-level attributes at lower levels, combined filters
    ("series", {"PatientName": "doe*", "Modality": "MR"}),
    ("instance", {"PatientID": "PID-1"}),
    ("instance", {"PatientName": "new^name"}),
    ("instance", {"Modality": "CT", "StudyDate": "20240101-"}),
    ("instance", {"00100020": "PID-6b", "SeriesNumber": "7"}),
    ("instance", {}),
    ("series", {}),
    ("study", {}),
]


@pytest.mark.parametrize("level,params", SEARCHES, ids=[f"{lvl}:{p}" for lvl, p in SEARCHES])
def test_search_matches_the_brute_force_matcher(archive, level, params):
    check(archive, level, params)


def test_searches_within_a_study_or_series_follow_the_path(archive):
    root, accepted = archive
    doe = next(ds for ds in accepted if str(ds.PatientName) == "Doe^John")
    study, series = doe.StudyInstanceUID, doe.SeriesInstanceUID
    assert check(archive, "series", {}, study=study)
    assert check(archive, "series", {"Modality": "MR"}, study=study)
    assert check(archive, "instance", {}, study=study)
    assert check(archive, "instance", {"InstanceNumber": "2"}, study=study, series=series)


def test_the_fixture_covers_every_kind(archive):
    _, accepted = archive
    # Not a vacuous comparison: the sample files and every generated instance were stored.
    assert len(accepted) >= len(GENERATED) + 3
    catalogue = Catalogue(accepted)
    assert catalogue.expected("study", {"PatientName": "jo do", "fuzzymatching": "true"})
    assert not catalogue.expected("study", {"PatientName": "ohn", "fuzzymatching": "true"})
    assert not catalogue.expected("study", {"PatientName": "Old^Name"}), "the later instance wins"
    # Most searches find something, so matching nothing everywhere could not pass.
    non_empty = [p for level, p in SEARCHES if catalogue.expected(level, p)]
    assert len(non_empty) >= len(SEARCHES) - 6, [p for level, p in SEARCHES if not catalogue.expected(level, p)]


def test_returned_values_are_those_of_the_latest_instance(archive):
    root, accepted = archive
    r = requests.get(root + "/studies", params={"PatientID": "PID-6b", "includefield": "00100020,StudyDate"})
    assert r.status_code == 200
    (study,) = r.json()
    assert value(study, "00100010")[0]["Alphabetic"] == "New^Name"
    assert value(study, "00080020") == ["20210101"]
    assert value(study, "00080061") == ["DX"]
    assert value(study, "00201206") == [2] and value(study, "00201208") == [2]
    # At the instance level the study's attributes also come from its latest instance.
    r = requests.get(root + "/instances", params={"PatientID": "PID-6b"})
    assert {value(item, "00100020")[0] for item in r.json()} == {"PID-6b"}
    assert len(r.json()) == 2


def test_percent_encoding_and_plus(archive):
    root, _ = archive
    # requests encodes '*' and '^' as %2A/%5E; a raw query string proves both forms arrive the same.
    for query in ["PatientName=Doe%5EJo%2A", "PatientName=Doe^Jo*"]:
        r = requests.get(root + "/studies?" + query)
        assert r.status_code == 200 and len(r.json()) == 1, query
    # Person names ignore case: DOE^JANE matches too.
    assert len(requests.get(root + "/studies?PatientName=Doe%5EJ%2A").json()) == 2
    # '+' is a space (form encoding); a literal '+' must be %2B.
    assert requests.get(root + "/studies?PatientID=PID%2B5").status_code == 200
    assert requests.get(root + "/studies?PatientID=PID+5").status_code == 204
    r = requests.get(root + "/studies?PatientName=jo+do&fuzzymatching=true")
    assert r.status_code == 200 and len(r.json()) == 1


def test_includefield_all_and_repeated(archive):
    root, _ = archive
    r = requests.get(root + "/series", params=[("PatientID", "PID-1"), ("includefield", "BodyPartExamined"),
                                               ("includefield", "00080050,StudyDescription")])
    assert r.status_code == 200
    mr = [s for s in r.json() if value(s, "00080060") == ["MR"]]
    assert value(mr[0], "00180015") == ["HEAD"]
    assert value(mr[0], "00080050") == ["ACC1"]
    r = requests.get(root + "/instances", params={"PatientID": "PID-1", "includefield": "all"})
    assert all("00080016" in item and "00100010" in item for item in r.json())


def test_offset_past_the_end_is_204(archive):
    root, _ = archive
    assert requests.get(root + "/studies", params={"offset": "100000"}).status_code == 204


ERRORS = [
    ("/studies", {"NoSuchAttribute": "x"}, "NoSuchAttribute"),
    ("/studies", {"SOPInstanceUID": "1.2"}, "SOPInstanceUID"),
    ("/series", {"InstanceNumber": "1"}, "InstanceNumber"),
    ("/studies", {"Modality": "CT"}, "Modality"),
    ("/studies", {"StudyDate": "-"}, "StudyDate"),
    ("/studies", {"StudyDate": "2024"}, "StudyDate"),
    ("/studies", {"StudyDate": "20241301-"}, "StudyDate"),
    ("/series", {"StudyTime": "2500"}, "StudyTime"),
    ("/instances", {"AcquisitionDateTime": "2024-13"}, "AcquisitionDateTime"),
    ("/instances", {"AcquisitionDateTime": "20241301"}, "AcquisitionDateTime"),
    ("/studies", {"limit": "0"}, "limit"),
    ("/studies", {"limit": "201"}, "limit"),
    ("/studies", {"offset": "-1"}, "offset"),
    ("/studies", {"StudyInstanceUID": "1.2.*"}, "StudyInstanceUID"),
    ("/instances", {"SOPClassUID": "1.2.840?"}, "SOPClassUID"),
    ("/series", {"SeriesInstanceUID": "*"}, "SeriesInstanceUID"),
    ("/studies", {"PatientID": "A\\B"}, "multiplevaluematching"),
    ("/studies", {"fuzzymatching": "perhaps"}, "fuzzymatching"),
    ("/studies", {"includefield": "NotAnAttribute"}, "NotAnAttribute"),
    ("/series", {"RequestAttributesSequence.Nope": "1"}, "RequestAttributesSequence.Nope"),
    # Values that used to answer 500 "index is corrupt" (tantivy's regex size limit), or to hold a thread for
    # seconds: refused by the bounds on values, or by the engine's limit, as the client's error.
    ("/studies", {"PatientName": "*a" * 53 + "b"}, "53 wildcards"),
    ("/studies", {"fuzzymatching": "true", "PatientName": "q" * 973}, "973 characters"),
    ("/studies", {"PatientID": "q" * 973 + "*"}, "PatientID"),
    ("/studies", {"multiplevaluematching": "true", "PatientName": "\\".join(["*a" * 8 + "b"] * 120)}, "120 values"),
    ("/studies", {"StudyDescription": "\u4e2d" * 14 + ("*" + "\u4e2d" * 14) * 16}, "too complex"),
]


@pytest.mark.parametrize("url,params,needle", ERRORS, ids=[f"{u}:{p}" for u, p, _ in ERRORS])
def test_bad_searches_are_400_naming_the_parameter(archive, url, params, needle):
    root, _ = archive
    r = requests.get(root + url, params=params)
    assert r.status_code == 400, r.text
    assert needle in r.text
