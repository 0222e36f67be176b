"""Generates the multi-frame encapsulated test instances (run by hand; tests do not need Python).

Three frames of fake JPEG code streams, each split in two fragments. In the files with an offset table, the second
fragment of each frame ALSO starts with FFD8 (a decoy), so only the table gives the right mapping; in the file
without one, only the first fragment of each frame starts with a marker.

    /tmp/pyenv/bin/python generate.py
"""
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import JPEGBaseline8Bit, ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from pydicom.encaps import encapsulate, encapsulate_extended


def fragments_of(frame, decoy):
    first = b"\xff\xd8" + f"FRAME{frame}-A".encode() + bytes(range(frame, frame + 20))
    second = (b"\xff\xd8" if decoy else b"\x00\x00") + f"FRAME{frame}-B".encode() + b"\xff\xd9"
    return [f + (b"\x00" if len(f) % 2 else b"") for f in (first, second)]


def item(value):
    return b"\xfe\xff\x00\xe0" + len(value).to_bytes(4, "little") + value


def dataset(number):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.1.{number}"
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    ds.PatientID = "MF-ENCAPS"
    ds.Modality = "OT"
    ds.NumberOfFrames = 3
    ds.Rows = 4
    ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    return ds


def write(name, number, decoy, table):
    ds = dataset(number)
    frames = [fragments_of(i, decoy) for i in range(3)]
    items = [item(f) for frame in frames for f in frame]
    offsets, position = [], 0
    for frame in frames:
        offsets.append(position)
        position += sum(8 + len(f) for f in frame)
    if table == "basic":
        bot = b"".join(o.to_bytes(4, "little") for o in offsets)
        ds.PixelData = item(bot) + b"".join(items)
    else:
        ds.PixelData = item(b"") + b"".join(items)
    if table == "extended":
        ds.ExtendedOffsetTable = b"".join(o.to_bytes(8, "little") for o in offsets)
        ds.ExtendedOffsetTableLengths = b"".join(
            sum(len(f) for f in frame).to_bytes(8, "little") for frame in frames)
    ds["PixelData"].is_undefined_length = True
    ds["PixelData"].VR = "OB"
    ds.save_as(f"{name}.dcm", enforce_file_format=True)


write("multiframe_jpeg_bot", 1, decoy=True, table="basic")
write("multiframe_jpeg_eot", 2, decoy=True, table="extended")
write("multiframe_jpeg_no_table", 3, decoy=False, table=None)
