//! `inspect` on hand-made instances: required attributes, VR warnings, frame layout edge cases, hostile input.

mod common;

use common::*;
use dicom_dictionary_std::tags;
use dicomweb_instance::{InspectError, PixelDataLayout, inspect};

fn pixel_data(length: u32) -> Vec<u8> {
    let mut out = header(0x7FE0, 0x0010, "OW", length);
    out.extend((0..length).map(|i| i as u8));
    out
}

#[test]
fn minimal_valid_instance_is_accepted_without_warnings() {
    let info = inspect(instance(&[]).as_slice()).unwrap();
    assert_eq!(info.study_instance_uid, "1.2.3.4.5");
    assert_eq!(info.series_instance_uid, "1.2.3.4.5.1");
    assert_eq!(info.sop_instance_uid, "1.2.3.4.5.6");
    assert_eq!(info.sop_class_uid, "1.2.840.10008.5.1.4.1.1.7");
    assert_eq!(info.transfer_syntax_uid, EXPLICIT_VR_LE);
    assert_eq!(info.pixel_data, None);
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
}

#[test]
fn each_missing_required_attribute_is_named_with_its_tag() {
    for (group, element, keyword, tag) in [
        (0x0020, 0x000D, "StudyInstanceUID", "(0020,000D)"),
        (0x0020, 0x000E, "SeriesInstanceUID", "(0020,000E)"),
        (0x0008, 0x0018, "SOPInstanceUID", "(0008,0018)"),
        (0x0008, 0x0016, "SOPClassUID", "(0008,0016)"),
        (0x0010, 0x0020, "PatientID", "(0010,0020)"),
    ] {
        let error = inspect(instance_with(&[(group, element)], &[], &[]).as_slice()).unwrap_err();
        assert!(error.is_validation(), "{error}");
        match error {
            InspectError::MissingAttribute { keyword: k, tag: t } => {
                assert_eq!((k, t.as_str()), (keyword, tag));
            }
            other => panic!("{keyword}: {other}"),
        }
    }
}

#[test]
fn required_uids_must_be_non_empty_and_valid() {
    for bad in ["", "1.2.3 4", "1.2\\3.4", "1.2.3_4", &"1".repeat(65)] {
        let bytes = instance_with(&[], &[(0x0020, 0x000D, bad)], &[]);
        match inspect(bytes.as_slice()).unwrap_err() {
            InspectError::InvalidUid { keyword, .. } => {
                assert_eq!(keyword, "StudyInstanceUID", "{bad:?}")
            }
            other => panic!("{bad:?}: {other}"),
        }
    }
    // Microsoft's lenient rule: letters and '-' pass; NUL/space padding is trimmed.
    let bytes = instance_with(&[], &[(0x0020, 0x000D, "2.25.abc-DEF\0")], &[]);
    assert_eq!(
        inspect(bytes.as_slice()).unwrap().study_instance_uid,
        "2.25.abc-DEF"
    );
}

#[test]
fn lenient_uids_are_accepted_in_the_file_meta_too() {
    // The meta group repeats the SOP Instance UID: it must not be held to the digits-and-dots rule either.
    let mut bytes = part10_header(EXPLICIT_VR_LE, "2.25.abc-DEF");
    bytes.extend(dataset_with(&[], &[(0x0008, 0x0018, "2.25.abc-DEF")], &[]));
    assert_eq!(
        inspect(bytes.as_slice()).unwrap().sop_instance_uid,
        "2.25.abc-DEF"
    );
}

#[test]
fn patient_id_may_be_empty_but_must_be_a_valid_lo() {
    let empty = instance_with(&[], &[(0x0010, 0x0020, "")], &[]);
    assert!(inspect(empty.as_slice()).is_ok());
    let padded = instance_with(
        &[],
        &[(0x0010, 0x0020, &format!("{} ", "x".repeat(63)))],
        &[],
    );
    assert!(
        inspect(padded.as_slice()).is_ok(),
        "64 characters with padding"
    );
    for bad in ["x".repeat(65), "a\\b".into(), "a\rb".into()] {
        let bytes = instance_with(&[], &[(0x0010, 0x0020, &bad)], &[]);
        let error = inspect(bytes.as_slice()).unwrap_err();
        assert!(
            matches!(
                error,
                InspectError::InvalidAttribute {
                    keyword: "PatientID",
                    ..
                }
            ),
            "{bad:?}: {error}"
        );
        assert!(error.is_validation());
    }
}

#[test]
fn invalid_values_become_microsoft_style_warnings() {
    let bytes = instance(&[
        text(0x0008, 0x0020, "DA", "NotAValidDate"),
        text(0x0008, 0x002A, "DT", "NotAValidDate"),
        text(0x0008, 0x0030, "TM", "071259"),
    ]);
    let info = inspect(bytes.as_slice()).unwrap();
    assert_eq!(
        info.warnings,
        [
            "DICOM100: (0008,0020) - Content \"NotAValidDate\" does not validate VR DA: one of the date values does not match the pattern YYYYMMDD",
            "DICOM100: (0008,002a) - Content \"NotAValidDate\" does not validate VR DT: value does not mach pattern YYYY[MM[DD[HH[MM[SS[.F{1-6}]]]]]]",
        ]
    );
    // The invalid values stay in the dataset.
    assert!(info.dataset.get(tags::STUDY_DATE).is_some());
}

#[test]
fn padding_is_not_a_warning() {
    let bytes = instance(&[
        element(0x0008, 0x0020, "DA", b"20240101\0\0"),
        element(0x0008, 0x0060, "CS", b"CT\0\0"),
        element(0x0020, 0x0013, "IS", b" 12 "),
        element(0x0028, 0x0030, "DS", b"0.5\\0.5 "),
    ]);
    let info = inspect(bytes.as_slice()).unwrap();
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
}

#[test]
fn nested_failures_are_reported_once_under_the_top_level_attribute() {
    let item = |date: &str, time: &str| {
        let mut item = text(0x0008, 0x0020, "DA", date);
        item.extend(text(0x0008, 0x0030, "TM", time));
        item
    };
    let bytes = instance(&[
        text(0x0008, 0x0060, "CS", "lowercase"),
        text(
            0x0018,
            0x1020,
            "LO",
            "ok\\second value too long: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\third\x01",
        ),
        sequence(
            0x0040,
            0x0275,
            &[
                item("20240101", "1200"),
                item("2024", "99"),
                item("BAD", "BAD"),
            ],
        ),
    ]);
    let info = inspect(bytes.as_slice()).unwrap();
    assert_eq!(
        info.warnings,
        [
            "DICOM100: (0008,0060) - Content \"lowercase\" does not validate VR CS: value contains invalid character. Only uppercase character, digits, space and underscore alre allowed",
            "DICOM100: (0018,1020) - Content \"second value too long: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\" does not validate VR LO: value exceeds maximum length of 64 characters",
            "DICOM100: (0040,0275) - Content \"2024\" does not validate VR DA: one of the date values does not match the pattern YYYYMMDD",
        ]
    );
}

#[test]
fn bulk_values_are_skipped_at_any_depth_and_their_attributes_kept_empty() {
    let item = {
        let mut item = element(0x0028, 0x1201, "OW", &[1, 2, 3, 4]);
        item.extend(text(0x0028, 0x3003, "LO", "kept"));
        item
    };
    let bytes = instance(&[
        element(0x0009, 0x1001, "UN", b"private"),
        element(0x0042, 0x0011, "OB", b"%PDF-1.4"),
        sequence(0x0088, 0x0200, &[item]),
    ]);
    let info = inspect(bytes.as_slice()).unwrap();
    assert!(common::has_placeholder(
        &info.dataset,
        dicom_core::Tag(0x0009, 0x1001)
    ));
    assert!(common::has_placeholder(
        &info.dataset,
        tags::ENCAPSULATED_DOCUMENT
    ));
    let icon = &info
        .dataset
        .element(tags::ICON_IMAGE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0];
    assert!(common::has_placeholder(
        icon,
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA
    ));
    assert!(icon.get(tags::LUT_EXPLANATION).is_some());
}

#[test]
fn native_layout_uses_number_of_frames_and_image_size() {
    let mut extra = image_attributes(Some("3 "), 4, 5, 16);
    extra.push(pixel_data(3 * 4 * 5 * 2));
    let bytes = instance(&extra);
    let info = inspect(bytes.as_slice()).unwrap();
    let pixel_value_offset = bytes.len() as u64 - 120;
    assert_eq!(
        info.pixel_data,
        Some(PixelDataLayout::Native {
            offset: pixel_value_offset,
            length: 120,
            frame_length: 40,
            number_of_frames: 3
        })
    );
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
}

#[test]
fn frames_that_do_not_fit_are_not_range_readable_with_a_warning() {
    let mut extra = image_attributes(Some("4"), 4, 5, 16);
    extra.push(pixel_data(3 * 4 * 5 * 2));
    let info = inspect(instance(&extra).as_slice()).unwrap();
    assert_eq!(info.pixel_data, Some(PixelDataLayout::NotRangeReadable));
    assert_eq!(info.warnings.len(), 1, "{:?}", info.warnings);
    assert!(
        info.warnings[0].contains("do not fit"),
        "{:?}",
        info.warnings
    );
}

#[test]
fn one_bit_pixel_data_is_ranged_only_when_single_frame() {
    // 3 x 3 x 1 bit = 9 bits: 2 bytes per frame, rounded up.
    let mut single = image_attributes(None, 3, 3, 1);
    single.push(pixel_data(2));
    let info = inspect(instance(&single).as_slice()).unwrap();
    assert!(matches!(
        info.pixel_data,
        Some(PixelDataLayout::Native {
            frame_length: 2,
            number_of_frames: 1,
            ..
        })
    ));

    let mut multi = image_attributes(Some("2"), 4, 4, 1);
    multi.push(pixel_data(4));
    let info = inspect(instance(&multi).as_slice()).unwrap();
    assert_eq!(info.pixel_data, Some(PixelDataLayout::NotRangeReadable));
    assert!(info.warnings.iter().any(|w| w.contains("bit-packed")));
}

#[test]
fn pixel_data_without_image_attributes_is_not_range_readable() {
    let info = inspect(instance(&[pixel_data(16)]).as_slice()).unwrap();
    assert_eq!(info.pixel_data, Some(PixelDataLayout::NotRangeReadable));
    assert!(
        info.warnings.iter().any(|w| w.contains("Rows")),
        "{:?}",
        info.warnings
    );
}

#[test]
fn encapsulated_layout_from_hand_made_items() {
    let item = |value: &[u8]| {
        let mut out = vec![0xFE, 0xFF, 0x00, 0xE0];
        out.extend((value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
        out
    };
    let mut pixel = header(0x7FE0, 0x0010, "OB", u32::MAX);
    pixel.extend(item(&[]));
    pixel.extend(item(&[0xFF, 0xD8, 1, 2]));
    pixel.extend(item(&[0xFF, 0xD8, 3, 4, 5, 6]));
    pixel.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    let mut extra = image_attributes(Some("2"), 2, 2, 8);
    extra.push(pixel);
    let mut bytes = instance(&extra);
    // Switch to RLE Lossless, an encapsulated transfer syntax whose UID has the same length.
    let ts_at = bytes
        .windows(19)
        .position(|w| w == EXPLICIT_VR_LE.as_bytes())
        .unwrap();
    bytes.splice(ts_at..ts_at + 20, *b"1.2.840.10008.1.2.5\0");
    let info = inspect(bytes.as_slice()).unwrap();
    let end = bytes.len() as u64 - 8;
    assert_eq!(
        info.pixel_data,
        Some(PixelDataLayout::Encapsulated {
            frames: vec![vec![(end - 6 - 8 - 4, end - 6 - 8)], vec![(end - 6, end)]]
        })
    );
    assert_eq!(info.pixel_data.unwrap().number_of_frames(), Some(2));
}

fn assert_not_dicom(bytes: &[u8], expected_in_message: &str) {
    match inspect(bytes) {
        Err(InspectError::NotDicom(message)) => {
            assert!(message.contains(expected_in_message), "{message}")
        }
        other => panic!("expected NotDicom({expected_in_message}), got {other:?}"),
    }
}

#[test]
fn missing_magic_or_meta_is_not_dicom() {
    assert_not_dicom(b"", "truncated");
    assert_not_dicom(&[0u8; 200], "DICM");
    let mut no_meta = vec![0u8; 128];
    no_meta.extend_from_slice(b"DICM");
    no_meta.extend(text(0x0008, 0x0016, "UI", "1.2.3"));
    assert_not_dicom(&no_meta, "missing DICOM file meta information");
}

#[test]
fn unknown_transfer_syntax_is_not_dicom() {
    let mut bytes = part10_header("1.2.3.4.5.6.7", "1.2.3");
    bytes.extend(text(0x0008, 0x0016, "UI", "1.2.3"));
    assert_not_dicom(&bytes, "unsupported transfer syntax");
}

#[test]
fn hostile_lengths_fail_fast_without_allocating_them() {
    let started = std::time::Instant::now();
    // A meta element claiming 4 GiB.
    let mut meta = vec![0u8; 128];
    meta.extend_from_slice(b"DICM");
    meta.extend(element(0x0002, 0x0000, "UL", &20u32.to_le_bytes()));
    meta.extend(header(0x0002, 0x0001, "OB", 0xFFFF_FFF0));
    meta.extend([0u8; 8]);
    assert_not_dicom(&meta, "meta");
    // A text element claiming 200 MB in a 1 KB file.
    let mut bytes = instance(&[]);
    bytes.extend(header(0x0040, 0xA160, "UT", 200_000_000));
    bytes.extend(b"short");
    assert_not_dicom(&bytes, "truncated");
    // More than the metadata budget.
    let mut bytes = instance(&[]);
    bytes.extend(header(0x0040, 0xA160, "UT", 0xFFFF_FFF0));
    assert_not_dicom(&bytes, "limit");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn badly_nested_delimiters_are_not_dicom() {
    // An item delimiter or item at the top level, a sequence delimiter with no sequence.
    for stray in [
        [
            0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0,
        ],
        [
            0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0,
        ],
        [
            0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0,
        ],
    ] {
        let mut bytes = instance(&[]);
        bytes.extend(stray);
        assert!(matches!(
            inspect(bytes.as_slice()),
            Err(InspectError::NotDicom(_))
        ));
    }
    // An unterminated sequence at the end of the input.
    let mut bytes = instance(&[]);
    bytes.extend(header(0x0040, 0x0275, "SQ", u32::MAX));
    bytes.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert_not_dicom(&bytes, "unterminated");
}

#[test]
fn absurd_nesting_is_not_dicom() {
    let mut nested = text(0x0008, 0x0100, "SH", "LEAF");
    for _ in 0..100 {
        nested = sequence(0x0040, 0xA730, &[nested]);
    }
    assert_not_dicom(&instance(&[nested]), "nested");
}

#[test]
fn layout_round_trips_through_json_for_storage() {
    for layout in [
        PixelDataLayout::Native {
            offset: 1076,
            length: 2_892_946,
            frame_length: 2_892_945,
            number_of_frames: 1,
        },
        PixelDataLayout::Encapsulated {
            frames: vec![vec![(10, 20), (28, 40)], vec![(48, 50)]],
        },
        PixelDataLayout::NotRangeReadable,
    ] {
        let json = serde_json::to_string(&layout).unwrap();
        assert_eq!(
            serde_json::from_str::<PixelDataLayout>(&json).unwrap(),
            layout,
            "{json}"
        );
    }
}
