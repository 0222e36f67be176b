"""Generates the character set and UN test data (run by hand; tests do not need Python).

- charset/*.dcm: pydicom's charset test files (MIT licence, see tests/data/pydicom/LICENSE), copied byte for
  byte, except chrSQEncoding*.dcm which lack the attributes `inspect` requires and get them added (their text
  elements are written back as they were read, undecoded).
- charset/expected.json: every SH, LO, ST, LT, PN, UC and UT value of those files (also inside sequences), as
  pydicom decodes it: {"file": [["(0010,0010)" or "(0032,1064)/0/(0010,0010)", [values]], ...]}.
- un-undefined-length.dcm: a small explicit VR little endian instance with a private UN element of undefined
  length (PS3.5 6.2.2: its content is implicit VR little endian), which pydicom reads as a sequence.

    $CARGO_TARGET_DIR/e2e-venv/bin/python charsets.py
"""
import json
import shutil
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.data import get_charset_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

HERE = Path(__file__).resolve().parent
CHARSET = HERE / "charset"
TEXT_VRS = {"SH", "LO", "ST", "LT", "PN", "UC", "UT"}


def with_required_attributes(path: Path, number: int) -> bytes:
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.2.{number}"
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.3.{number}"
    ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.4.{number}"
    ds.PatientID = f"CHARSET-{number}"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def text_values(ds, prefix=""):
    out = []
    # Stored as UN, typed by pydicom's private dictionary: bulk for `inspect`, which omits it.
    stored_as_un = {tag for tag in ds.keys() if ds.get_item(tag).VR == "UN"}
    for element in ds:
        tag = f"({element.tag.group:04X},{element.tag.element:04X})"
        if element.tag in stored_as_un:
            continue
        if element.VR == "SQ":
            for index, item in enumerate(element.value):
                out += text_values(item, f"{prefix}{tag}/{index}/")
        elif element.VR in TEXT_VRS and element.value is not None:
            values = element.value if element.VM > 1 else [element.value]
            out.append([prefix + tag, [str(v) for v in values]])
    return out


def charset_files():
    CHARSET.mkdir(exist_ok=True)
    expected = {}
    for number, source in enumerate(sorted(Path(p) for p in get_charset_files("*.dcm"))):
        target = CHARSET / source.name
        if source.name.startswith("chrSQEncoding"):
            target.write_bytes(with_required_attributes(source, number))
        else:
            shutil.copyfile(source, target)
        ds = pydicom.dcmread(target)
        expected[source.name] = text_values(ds)
    # One value per line, so that a diff says which one changed.
    files = []
    for name, values in expected.items():
        lines = ",\n".join("  " + json.dumps(entry, ensure_ascii=False) for entry in values)
        files.append(f" {json.dumps(name)}: [\n{lines}\n ]")
    (CHARSET / "expected.json").write_text("{\n" + ",\n".join(files) + "\n}\n")


def implicit(group, element, value: bytes) -> bytes:
    return group.to_bytes(2, "little") + element.to_bytes(2, "little") + len(value).to_bytes(4, "little") + value


ITEM = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def un_undefined_length():
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.5.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.5.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.5.3"
    ds.PatientName = "Unknown^Vr"
    ds.PatientID = "UN-UNDEFINED"
    ds.Modality = "OT"
    ds.add_new(0x00090010, "LO", "ACME PRIVATE")
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    plain = out.getvalue()
    # (0009,1001) UN, undefined length: one undefined-length item holding implicit VR elements, one of them a
    # nested undefined-length sequence; then the delimiters.
    nested = implicit(0x0040, 0xA043, b"")[:4] + b"\xff\xff\xff\xff" + ITEM + implicit(0x0008, 0x0100, b"X1") + ITEM_END + SEQUENCE_END
    content = ITEM + implicit(0x0008, 0x0100, b"T-01") + implicit(0x0008, 0x0104, b"Hostile but valid ") + nested + ITEM_END
    un = b"\x09\x00\x01\x10UN\x00\x00\xff\xff\xff\xff" + content + SEQUENCE_END
    at = plain.index(b"\x10\x00\x10\x00PN")  # PatientName: the first element after group 0009
    data = plain[:at] + un + plain[at:]
    (HERE / "un-undefined-length.dcm").write_bytes(data)
    check = pydicom.dcmread(BytesIO(data))
    sequence = check[0x00091001]
    assert sequence.VR == "SQ", sequence.VR
    assert sequence.value[0].CodeValue == "T-01"
    assert sequence.value[0].ConceptNameCodeSequence[0].CodeValue == "X1"
    assert check.PatientName == "Unknown^Vr"


if __name__ == "__main__":
    charset_files()
    un_undefined_length()
