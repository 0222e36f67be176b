//! Shared test fixtures.
#![allow(dead_code)]

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, DicomValue, Length, PrimitiveValue, Tag, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// A small data set exercising every JSON mapping rule: padding, empty values inside
/// multi-valued text, PN groups, IS/DS numbers, binary numbers, 64-bit and non-finite values,
/// AT, nested sequences, bulk VRs, group length and file meta elements (which must not appear).
pub fn golden_dataset() -> InMemDicomObject {
    let instance_item = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3.4.5\0"),
        ),
        DataElement::new(Tag(0x0009, 0x0010), VR::LO, PrimitiveValue::from("ACME")),
        DataElement::new(
            Tag(0x0009, 0x1010),
            VR::OB,
            PrimitiveValue::from(vec![0xCAu8, 0xFE]),
        ),
    ]);
    let series_item = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3.4"),
        ),
        DataElement::new(
            tags::REFERENCED_INSTANCE_SEQUENCE,
            VR::SQ,
            DicomValue::Sequence(DataSetSequence::new(vec![instance_item], Length::UNDEFINED)),
        ),
    ]);
    InMemDicomObject::from_element_iter([
        DataElement::new(
            Tag(0x0002, 0x0010),
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.1.2.1\0"),
        ),
        DataElement::new(Tag(0x0008, 0x0000), VR::UL, dicom_value!(U32, [1234])),
        DataElement::new(
            tags::SPECIFIC_CHARACTER_SET,
            VR::CS,
            PrimitiveValue::from("ISO_IR 192"),
        ),
        DataElement::new(
            tags::IMAGE_TYPE,
            VR::CS,
            dicom_value!(Strs, ["ORIGINAL", "PRIMARY", "", "AXIAL "]),
        ),
        DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.7\0"),
        ),
        DataElement::new(tags::STUDY_DATE, VR::DA, PrimitiveValue::from("20240102")),
        DataElement::new(
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            PrimitiveValue::Empty,
        ),
        DataElement::new(
            tags::PROCEDURE_CODE_SEQUENCE,
            VR::SQ,
            DicomValue::Sequence(DataSetSequence::empty()),
        ),
        DataElement::new(
            tags::REFERENCED_SERIES_SEQUENCE,
            VR::SQ,
            DicomValue::Sequence(DataSetSequence::new(vec![series_item], Length::UNDEFINED)),
        ),
        DataElement::new(
            tags::DERIVATION_DESCRIPTION,
            VR::LT,
            PrimitiveValue::from("left\\right "),
        ),
        DataElement::new(
            tags::PATIENT_NAME,
            VR::PN,
            PrimitiveValue::from("Yamada^Tarou=山田^太郎=やまだ^たろう "),
        ),
        DataElement::new(Tag(0x0009, 0x0010), VR::LO, PrimitiveValue::from("ACME ")),
        DataElement::new(
            Tag(0x0009, 0x1001),
            VR::FL,
            dicom_value!(F32, [0.1, f32::NAN]),
        ),
        DataElement::new(Tag(0x0009, 0x1002), VR::UV, dicom_value!(U64, [7, 1 << 60])),
        DataElement::new(Tag(0x0009, 0x1003), VR::SV, dicom_value!(I64, [-5])),
        DataElement::new(
            Tag(0x0009, 0x1004),
            VR::OW,
            dicom_value!(U16, [0x0102, 0x0304]),
        ),
        DataElement::new(Tag(0x0009, 0x1005), VR::UN, dicom_value!(U8, [1, 2, 3])),
        DataElement::new(
            tags::OTHER_PATIENT_NAMES,
            VR::PN,
            dicom_value!(Strs, ["Doe^John", "", "Roe^Jane="]),
        ),
        DataElement::new(tags::PATIENT_AGE, VR::AS, PrimitiveValue::from("030Y")),
        DataElement::new(tags::PATIENT_WEIGHT, VR::DS, PrimitiveValue::from("72.5 ")),
        DataElement::new(
            tags::SLICE_THICKNESS,
            VR::DS,
            dicom_value!(Strs, ["0.5", "1e3", " -2 "]),
        ),
        DataElement::new(tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from("12 ")),
        DataElement::new(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            dicom_value!(Strs, ["-125.0", "-125.0", "0"]),
        ),
        DataElement::new(
            tags::FRAME_INCREMENT_POINTER,
            VR::AT,
            dicom_value!(Tags, [tags::FRAME_TIME]),
        ),
        DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [2])),
        DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [1])),
        DataElement::new(tags::PIXEL_PADDING_VALUE, VR::SS, dicom_value!(I16, [-3])),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            dicom_value!(U16, [0x0102, 0x0304]),
        ),
    ])
}

/// Every test file dicom-object can open (in reasonable time), by name.
pub fn test_files() -> Vec<(String, InMemDicomObject)> {
    let dirs = [
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/pydicom"),
    ];
    let mut files = Vec::new();
    for dir in dirs {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "dcm"))
            .collect();
        paths.sort();
        for path in paths {
            // dicom-object 0.10.1 allocates ~3.7 GB and spends ~30 s before failing on this one.
            if path.ends_with("UN_sequence.dcm") {
                continue;
            }
            if let Ok(obj) = dicom_object::open_file(&path) {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                files.push((name, obj.into_inner()));
            }
        }
    }
    files
}

pub fn open(name: &str) -> InMemDicomObject {
    let path = format!(
        "{}/../../tests/data/pydicom/{name}.dcm",
        env!("CARGO_MANIFEST_DIR")
    );
    dicom_object::open_file(path).unwrap().into_inner()
}
