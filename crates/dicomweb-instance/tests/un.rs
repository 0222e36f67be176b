//! UN elements of undefined length (PS3.5 6.2.2): a sequence whose content is implicit VR little endian whatever
//! the transfer syntax. `inspect` reads it as a sequence (VR SQ in the dataset, as pydicom reads it), with the
//! same bounds as any sequence.

mod common;

use common::*;
use dicom_core::Tag;
use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicomweb_instance::{InspectError, inspect};

const ITEM: [u8; 8] = [0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF];
const ITEM_END: [u8; 8] = [0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0];
const SEQUENCE_END: [u8; 8] = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];

/// An implicit VR little endian element.
fn implicit(group: u16, element: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(group.to_le_bytes());
    out.extend(element.to_le_bytes());
    out.extend((value.len() as u32).to_le_bytes());
    out.extend(value);
    out
}

/// An implicit VR element header of undefined length (a sequence, or a nested UN one).
fn implicit_undefined(group: u16, element: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(group.to_le_bytes());
    out.extend(element.to_le_bytes());
    out.extend([0xFF; 4]);
    out
}

/// (0009,0010) private creator, then (0009,1001) UN of undefined length with `content`, which must end with
/// the sequence delimiter when the element is to be complete.
fn private_un(content: &[u8]) -> Vec<Vec<u8>> {
    let mut un = header(0x0009, 0x1001, "UN", u32::MAX);
    un.extend(content);
    vec![text(0x0009, 0x0010, "LO", "ACME PRIVATE"), un]
}

fn items_of(object: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    match object.element(tag).unwrap().value() {
        Value::Sequence(sequence) => sequence.items(),
        other => panic!("{tag} is not a sequence: {other:?}"),
    }
}

fn str_of(object: &InMemDicomObject, tag: Tag) -> String {
    object
        .element(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn undefined_length_un_is_read_as_a_sequence_of_implicit_vr_items() {
    // Made by tests/data/charsets.py; pydicom reads (0009,1001) as SQ with these values.
    let info =
        inspect(std::fs::File::open(local_sample("un-undefined-length.dcm")).unwrap()).unwrap();
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    let private = Tag(0x0009, 0x1001);
    assert_eq!(
        info.dataset.element(private).unwrap().vr(),
        dicom_core::VR::SQ
    );
    let [item] = items_of(&info.dataset, private) else {
        panic!("one item expected");
    };
    assert_eq!(str_of(item, tags::CODE_VALUE), "T-01");
    assert_eq!(str_of(item, tags::CODE_MEANING), "Hostile but valid");
    let [nested] = items_of(item, tags::CONCEPT_NAME_CODE_SEQUENCE) else {
        panic!("one nested item expected");
    };
    assert_eq!(str_of(nested, tags::CODE_VALUE), "X1");
    // The explicit VR elements after it are read as explicit VR again.
    assert_eq!(str_of(&info.dataset, tags::PATIENT_NAME), "Unknown^Vr");
    assert_eq!(info.sop_instance_uid, "1.2.826.0.1.3680043.8.498.5.1");
}

#[test]
fn empty_and_nested_undefined_length_un_elements_are_accepted() {
    let mut content = Vec::new();
    content.extend(ITEM);
    // A nested private element of undefined length: UN again, its own delimiter.
    content.extend(implicit_undefined(0x0009, 0x1002));
    content.extend(ITEM);
    content.extend(implicit(0x0008, 0x0100, b"IN"));
    content.extend(ITEM_END);
    content.extend(SEQUENCE_END);
    // A private element with a defined length: unknown VR, so bulk, its value skipped.
    content.extend(implicit(0x0009, 0x1003, b"ABCD"));
    content.extend(ITEM_END);
    content.extend(SEQUENCE_END);
    let mut extra = private_un(&content);
    // An empty one, in its own private block.
    let mut empty = header(0x0011, 0x1001, "UN", u32::MAX);
    empty.extend(SEQUENCE_END);
    extra.push(text(0x0011, 0x0010, "LO", "ACME EMPTY"));
    extra.push(empty);
    extra.push(text(0x0020, 0x0010, "SH", "AFTER"));
    let info = inspect(instance(&extra).as_slice()).unwrap();
    let [item] = items_of(&info.dataset, Tag(0x0009, 0x1001)) else {
        panic!("one item expected");
    };
    let [inner] = items_of(item, Tag(0x0009, 0x1002)) else {
        panic!("one nested item expected");
    };
    assert_eq!(str_of(inner, tags::CODE_VALUE), "IN");
    assert!(common::has_placeholder(item, Tag(0x0009, 0x1003)));
    assert!(items_of(&info.dataset, Tag(0x0011, 0x1001)).is_empty());
    assert_eq!(str_of(&info.dataset, tags::STUDY_ID), "AFTER");
}

#[test]
fn undefined_length_un_inside_an_explicit_sequence_hands_back_to_explicit_vr() {
    let mut un = header(0x0009, 0x1001, "UN", u32::MAX);
    un.extend(ITEM);
    un.extend(implicit(0x0008, 0x0100, b"IN"));
    un.extend(ITEM_END);
    un.extend(SEQUENCE_END);
    let item = [
        text(0x0009, 0x0010, "LO", "ACME PRIVATE"),
        un,
        text(0x0010, 0x0010, "PN", "Explicit^Again"),
    ]
    .concat();
    let extra = vec![
        sequence(0x0040, 0x0275, &[item]),
        text(0x0040, 0x0280, "ST", "TOP"),
    ];
    let info = inspect(instance(&extra).as_slice()).unwrap();
    let [item] = items_of(&info.dataset, tags::REQUEST_ATTRIBUTES_SEQUENCE) else {
        panic!("one item expected");
    };
    assert_eq!(str_of(item, tags::PATIENT_NAME), "Explicit^Again");
    assert_eq!(
        str_of(
            &info.dataset,
            tags::COMMENTS_ON_THE_PERFORMED_PROCEDURE_STEP
        ),
        "TOP"
    );
}

fn assert_not_dicom(bytes: &[u8], expected_in_message: &str) {
    match inspect(bytes) {
        Err(InspectError::NotDicom(message)) => {
            assert!(message.contains(expected_in_message), "{message}")
        }
        other => panic!("expected NotDicom, got {other:?}"),
    }
}

#[test]
fn hostile_undefined_length_un_elements_are_refused_quickly() {
    let started = std::time::Instant::now();
    // No delimiters at all: the input ends inside the sequence.
    let mut content = ITEM.to_vec();
    content.extend(implicit(0x0008, 0x0100, b"IN"));
    assert_not_dicom(&instance(&private_un(&content)), "truncated");
    // Nested deeper than any sequence may be.
    let mut content = Vec::new();
    for _ in 0..100 {
        content.extend(ITEM);
        content.extend(implicit_undefined(0x0009, 0x1002));
    }
    assert_not_dicom(&instance(&private_un(&content)), "nested");
    // A length beyond the input inside the region.
    let mut content = ITEM.to_vec();
    content.extend(implicit(0x0008, 0x0100, b"IN")[..4].iter());
    content.extend(0xFFFF_FFF0_u32.to_le_bytes());
    assert_not_dicom(&instance(&private_un(&content)), "");
    // Half a header at the end.
    let mut content = ITEM.to_vec();
    content.extend([0x08, 0x00, 0x00]);
    assert_not_dicom(&instance(&private_un(&content)), "");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
