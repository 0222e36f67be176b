//! Test helpers: sample file paths and a tiny explicit VR little endian writer for hand-made instances.
#![allow(dead_code)] // each test binary uses a different subset

pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

pub fn sample(name: &str) -> String {
    format!("{}/../../tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn pydicom_sample(name: &str) -> String {
    sample(&format!("pydicom/{name}"))
}

pub fn local_sample(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// VRs with 2 reserved bytes and a 32-bit length in explicit VR (PS3.5 7.1.2).
fn has_long_length(vr: &str) -> bool {
    matches!(
        vr,
        "OB" | "OD" | "OF" | "OL" | "OV" | "OW" | "SQ" | "UC" | "UR" | "UT" | "UN"
    )
}

/// An element header with an explicit length.
pub fn header(group: u16, element: u16, vr: &str, length: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(vr.as_bytes());
    if has_long_length(vr) {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&length.to_le_bytes());
    } else {
        out.extend_from_slice(&(length as u16).to_le_bytes());
    }
    out
}

/// A whole element; odd values are padded (NUL for UI and binary VRs, space for text).
pub fn element(group: u16, element: u16, vr: &str, value: &[u8]) -> Vec<u8> {
    let mut value = value.to_vec();
    if value.len() % 2 == 1 {
        value.push(if matches!(vr, "UI" | "OB" | "UN") {
            0
        } else {
            b' '
        });
    }
    let mut out = header(group, element, vr, value.len() as u32);
    out.extend_from_slice(&value);
    out
}

pub fn text(group: u16, tag_element: u16, vr: &str, value: &str) -> Vec<u8> {
    element(group, tag_element, vr, value.as_bytes())
}

pub fn us(group: u16, tag_element: u16, value: u16) -> Vec<u8> {
    element(group, tag_element, "US", &value.to_le_bytes())
}

/// A sequence of undefined length whose items (given as encoded elements) have undefined length.
pub fn sequence(group: u16, tag_element: u16, items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = header(group, tag_element, "SQ", u32::MAX);
    for item in items {
        out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        out.extend_from_slice(item);
        out.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
    }
    out.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    out
}

/// Preamble, magic and file meta information for the given transfer syntax; the dataset follows.
pub fn part10_header(transfer_syntax: &str, sop_instance_uid: &str) -> Vec<u8> {
    let mut group = Vec::new();
    group.extend(element(0x0002, 0x0001, "OB", &[0, 1]));
    group.extend(text(0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.7"));
    group.extend(text(0x0002, 0x0003, "UI", sop_instance_uid));
    group.extend(text(0x0002, 0x0010, "UI", transfer_syntax));
    group.extend(text(0x0002, 0x0012, "UI", "1.2.3.4"));
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    out.extend(element(
        0x0002,
        0x0000,
        "UL",
        &(group.len() as u32).to_le_bytes(),
    ));
    out.extend(group);
    out
}

/// The attributes `inspect` requires, valid.
pub fn required_attributes() -> Vec<(u16, u16, &'static str, &'static str)> {
    vec![
        (0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.7"),
        (0x0008, 0x0018, "UI", "1.2.3.4.5.6"),
        (0x0010, 0x0020, "LO", "PATIENT-1"),
        (0x0020, 0x000D, "UI", "1.2.3.4.5"),
        (0x0020, 0x000E, "UI", "1.2.3.4.5.1"),
    ]
}

/// A complete explicit VR little endian instance: the required attributes (minus `without`, with `replace`
/// overriding values) followed by `extra` encoded elements (which must have larger tags), in tag order.
pub fn instance_with(
    without: &[(u16, u16)],
    replace: &[(u16, u16, &str)],
    extra: &[Vec<u8>],
) -> Vec<u8> {
    let mut bytes = part10_header(EXPLICIT_VR_LE, "1.2.3.4.5.6");
    bytes.extend(dataset_with(without, replace, extra));
    bytes
}

/// The dataset part of [`instance_with`].
pub fn dataset_with(
    without: &[(u16, u16)],
    replace: &[(u16, u16, &str)],
    extra: &[Vec<u8>],
) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut elements: Vec<((u16, u16), Vec<u8>)> = Vec::new();
    for (group, elem, vr, value) in required_attributes() {
        if without.contains(&(group, elem)) {
            continue;
        }
        let value = replace
            .iter()
            .find(|(g, e, _)| (*g, *e) == (group, elem))
            .map_or(value, |(_, _, v)| v);
        elements.push(((group, elem), text(group, elem, vr, value)));
    }
    for encoded in extra {
        let tag = (
            u16::from_le_bytes([encoded[0], encoded[1]]),
            u16::from_le_bytes([encoded[2], encoded[3]]),
        );
        elements.push((tag, encoded.clone()));
    }
    elements.sort_by_key(|(tag, _)| *tag);
    for (_, encoded) in elements {
        bytes.extend(encoded);
    }
    bytes
}

pub fn instance(extra: &[Vec<u8>]) -> Vec<u8> {
    instance_with(&[], &[], extra)
}

/// Image Pixel attributes for `frames` frames of `rows` x `columns`, 1 sample, `bits` bits allocated.
pub fn image_attributes(frames: Option<&str>, rows: u16, columns: u16, bits: u16) -> Vec<Vec<u8>> {
    let mut out = vec![
        us(0x0028, 0x0002, 1),
        text(0x0028, 0x0004, "CS", "MONOCHROME2"),
        us(0x0028, 0x0010, rows),
        us(0x0028, 0x0011, columns),
        us(0x0028, 0x0100, bits),
        us(0x0028, 0x0101, bits),
        us(0x0028, 0x0102, bits - 1),
        us(0x0028, 0x0103, 0),
    ];
    if let Some(frames) = frames {
        out.push(text(0x0028, 0x0008, "IS", frames));
    }
    out
}

/// Whether `object` has the attribute `tag` as a bulk placeholder: present, its value not loaded (empty).
pub fn has_placeholder(object: &dicom_object::InMemDicomObject, tag: dicom_core::Tag) -> bool {
    object.get(tag).is_some_and(|element| {
        matches!(
            element.value(),
            dicom_core::value::Value::Primitive(dicom_core::PrimitiveValue::Empty)
        )
    })
}
