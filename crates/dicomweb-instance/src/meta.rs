//! Preamble, "DICM" magic and file meta information group.

use std::io::Read;

use dicom_core::VR;
use dicom_object::{FileMetaTable, FileMetaTableBuilder};

use crate::InspectError;

/// Offset of the "DICM" magic: it follows the 128-byte preamble.
const PREAMBLE_LENGTH: u64 = 128;

/// The file meta group is a handful of short UIDs and AE titles; a group claiming more than this is hostile or
/// garbage, and refusing it keeps the up-front allocation small.
const MAX_META_GROUP_LENGTH: u32 = 1 << 20;

/// What the dataset parser needs from the file meta information.
pub(crate) struct FileMeta {
    pub table: FileMetaTable,
    /// Absolute byte offset (from byte 0 of the file) of the first byte of the main dataset.
    pub dataset_offset: u64,
    /// The first bytes of the main dataset, already read from the source (up to one tag): a group without
    /// its length element ends only where the next tag is not in group 0002. The dataset parser reads them
    /// before the rest of the source.
    pub dataset_prefix: Vec<u8>,
}

fn not_dicom(message: impl Into<String>) -> InspectError {
    InspectError::NotDicom(message.into())
}

fn read_exactly<R: Read>(source: &mut R, buf: &mut [u8], what: &str) -> Result<(), InspectError> {
    source.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            not_dicom(format!("truncated file: {what} is incomplete"))
        }
        _ => not_dicom(format!("could not read {what}: {e}")),
    })
}

/// Reads the preamble, the magic and the file meta group from `source`, leaving `source` positioned at the first
/// byte of the main dataset.
///
/// The group is read by hand (its length comes from (0002,0000)), its elements are checked against that length,
/// and the [`FileMetaTable`] is built from them with dicom-object's builder, rather than with
/// `FileMetaTable::from_reader`, for two reasons: `from_reader` allocates each element's declared length (up to
/// 4 GiB) before reading it, so a hostile length would cost memory even though the file is tiny; and it rejects
/// UIDs that are not digits and dots, while [`crate::is_valid_uid`] deliberately accepts letters and '-' (the
/// meta group repeats the SOP Instance UID, so such instances would otherwise never get to that rule).
pub(crate) fn read_file_meta<R: Read>(source: &mut R) -> Result<FileMeta, InspectError> {
    let mut preamble_and_magic = [0u8; PREAMBLE_LENGTH as usize + 4];
    read_exactly(
        source,
        &mut preamble_and_magic,
        "the 128-byte preamble and \"DICM\" magic",
    )?;
    if preamble_and_magic[PREAMBLE_LENGTH as usize..] != *b"DICM" {
        return Err(not_dicom(
            "no \"DICM\" magic at byte 128: not a DICOM Part 10 file",
        ));
    }

    // (0002,0000) UL, length 4, value: the number of bytes of the rest of the group.
    let mut group_length_element = [0u8; 12];
    read_exactly(
        source,
        &mut group_length_element,
        "the file meta information",
    )?;
    if group_length_element[..2] != [0x02, 0x00] {
        return Err(not_dicom("missing DICOM file meta information"));
    }
    let (group, dataset_offset, dataset_prefix) = if group_length_element[..8]
        == [0x02, 0x00, 0x00, 0x00, b'U', b'L', 0x04, 0x00]
    {
        let group_length = u32::from_le_bytes([
            group_length_element[8],
            group_length_element[9],
            group_length_element[10],
            group_length_element[11],
        ]);
        if group_length > MAX_META_GROUP_LENGTH {
            return Err(not_dicom(format!(
                "file meta information group length {group_length} exceeds {MAX_META_GROUP_LENGTH} bytes"
            )));
        }
        let mut group = vec![0u8; group_length as usize];
        read_exactly(source, &mut group, "the file meta information")?;
        let offset = PREAMBLE_LENGTH + 4 + 12 + u64::from(group_length);
        (group, offset, Vec::new())
    } else {
        // No File Meta Information Group Length (0002,0000), which PS3.10 requires but pydicom and dcmtk
        // do without: the group runs while tags are in group 0002.
        let (group, prefix) = read_group_without_length(source, group_length_element)?;
        let offset = PREAMBLE_LENGTH + 4 + group.len() as u64;
        (group, offset, prefix)
    };
    let group_length = u32::try_from(group.len()).unwrap_or(u32::MAX);

    let mut builder = FileMetaTableBuilder::new().group_length(group_length);
    for (element, value) in meta_elements(&group)? {
        builder = match element {
            0x0001 => match value {
                [major, minor] => builder.information_version([*major, *minor]),
                _ => builder,
            },
            0x0002 => builder.media_storage_sop_class_uid(meta_text(value)),
            0x0003 => builder.media_storage_sop_instance_uid(meta_text(value)),
            0x0010 => builder.transfer_syntax(meta_text(value)),
            0x0012 => builder.implementation_class_uid(meta_text(value)),
            0x0013 => builder.implementation_version_name(meta_text(value)),
            0x0016 => builder.source_application_entity_title(meta_text(value)),
            0x0017 => builder.sending_application_entity_title(meta_text(value)),
            0x0018 => builder.receiving_application_entity_title(meta_text(value)),
            0x0100 => builder.private_information_creator_uid(meta_text(value)),
            0x0102 => builder.private_information(value),
            // Unknown meta elements carry nothing this crate needs.
            _ => builder,
        };
    }
    let table = builder.build().map_err(|e| {
        not_dicom(format!(
            "invalid file meta information: {}",
            crate::error_chain(&e)
        ))
    })?;

    Ok(FileMeta {
        table,
        dataset_offset,
        dataset_prefix,
    })
}

/// Reads the elements of a meta group that has no group length element, `first` being the first 12
/// bytes after the magic (already read). Returns the group's bytes and the bytes read past it (the start
/// of the dataset, whose first tag is not in group 0002, or what the file had before its end).
fn read_group_without_length<R: Read>(
    source: &mut R,
    first: [u8; 12],
) -> Result<(Vec<u8>, Vec<u8>), InspectError> {
    let mut group = Vec::new();
    // Bytes read and not yet part of an element of the group.
    let mut pending = first.to_vec();
    loop {
        fill(source, &mut pending, 8)?;
        if pending.len() < 8 || pending[..2] != [0x02, 0x00] {
            return Ok((group, pending));
        }
        let vr = VR::from_binary([pending[4], pending[5]]).unwrap_or(VR::UN);
        let (header_length, value_length) = if has_short_length(vr) {
            (
                8usize,
                u64::from(u16::from_le_bytes([pending[6], pending[7]])),
            )
        } else {
            fill(source, &mut pending, 12)?;
            let length = pending
                .get(8..12)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| {
                    not_dicom("truncated file: the file meta information is incomplete")
                })?;
            if length == u32::MAX {
                return Err(not_dicom(
                    "file meta information element has an undefined length",
                ));
            }
            (12usize, u64::from(length))
        };
        let element_length = header_length as u64 + value_length;
        if group.len() as u64 + element_length > u64::from(MAX_META_GROUP_LENGTH) {
            return Err(not_dicom(format!(
                "file meta information (without group length) exceeds {MAX_META_GROUP_LENGTH} bytes"
            )));
        }
        let element_length = element_length as usize;
        fill(source, &mut pending, element_length)?;
        if pending.len() < element_length {
            return Err(not_dicom(
                "truncated file: the file meta information is incomplete",
            ));
        }
        group.extend(pending.drain(..element_length));
    }
}

/// Reads from `source` until `pending` holds `wanted` bytes or the source ends.
fn fill<R: Read>(source: &mut R, pending: &mut Vec<u8>, wanted: usize) -> Result<(), InspectError> {
    if pending.len() < wanted {
        let missing = (wanted - pending.len()) as u64;
        source
            .by_ref()
            .take(missing)
            .read_to_end(pending)
            .map_err(|e| not_dicom(format!("could not read the file meta information: {e}")))?;
    }
    Ok(())
}

/// PS3.5 7.1.2: these VRs have a 16-bit length; all others (and unknown VR codes, which dicom-rs reads as
/// UN) have 2 reserved bytes and a 32-bit length.
fn has_short_length(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE
            | VR::AS
            | VR::AT
            | VR::CS
            | VR::DA
            | VR::DS
            | VR::DT
            | VR::FL
            | VR::FD
            | VR::IS
            | VR::LO
            | VR::LT
            | VR::PN
            | VR::SH
            | VR::SL
            | VR::SS
            | VR::ST
            | VR::TM
            | VR::UI
            | VR::UL
            | VR::US
    )
}

/// Text of a meta element (default character repertoire), without its NUL/space padding.
fn meta_text(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// Splits the explicit VR little endian elements of the meta group (after the group length element) into
/// (element number, value), checking that each one is in group 0002, has a defined length, and fits in the group.
fn meta_elements(group: &[u8]) -> Result<Vec<(u16, &[u8])>, InspectError> {
    let mismatch = || not_dicom("file meta information group length does not match its elements");
    let mut elements = Vec::new();
    let mut position = 0usize;
    while position < group.len() {
        let header = group.get(position..position + 8).ok_or_else(mismatch)?;
        if header[..2] != [0x02, 0x00] {
            return Err(not_dicom(format!(
                "element ({:02X}{:02X},{:02X}{:02X}) found inside the file meta information group",
                header[1], header[0], header[3], header[2]
            )));
        }
        let element = u16::from_le_bytes([header[2], header[3]]);
        let vr = VR::from_binary([header[4], header[5]]).unwrap_or(VR::UN);
        let (header_length, value_length) = if has_short_length(vr) {
            (
                8usize,
                usize::from(u16::from_le_bytes([header[6], header[7]])),
            )
        } else {
            let length = group
                .get(position + 8..position + 12)
                .ok_or_else(mismatch)?;
            let length = u32::from_le_bytes([length[0], length[1], length[2], length[3]]);
            if length == u32::MAX {
                return Err(not_dicom(
                    "file meta information element has an undefined length",
                ));
            }
            (12usize, usize::try_from(length).unwrap_or(usize::MAX))
        };
        let value_start = position + header_length;
        let value = value_start
            .checked_add(value_length)
            .and_then(|value_end| group.get(value_start..value_end))
            .ok_or_else(|| {
                not_dicom("file meta information element length exceeds the meta group")
            })?;
        elements.push((element, value));
        position = value_start + value_length;
    }
    Ok(elements)
}
