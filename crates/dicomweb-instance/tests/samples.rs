//! `inspect` on real sample files, cross-checked against what dicom-object reads from the same files.

mod common;

use common::{local_sample, pydicom_sample, sample};
use dicom_core::header::Header;
use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicomweb_instance::{InspectError, PixelDataLayout, inspect};

fn inspect_path(path: &str) -> Result<dicomweb_instance::InstanceInfo, InspectError> {
    inspect(std::fs::File::open(path).unwrap())
}

fn trimmed_str(object: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    object
        .element(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// Instances with file meta that dicom-object reads and that have all required attributes.
const READABLE: &[&str] = &[
    "red-triangle.dcm",
    "green-square.dcm",
    "blue-circle.dcm",
    "pydicom/CT_small.dcm",
    "pydicom/JPEG-lossy.dcm",
    "pydicom/JPGExtended.dcm",
    "pydicom/JPEG2000.dcm",
    "pydicom/MR_small.dcm",
    "pydicom/MR_small_RLE.dcm",
    "pydicom/MR_small_bigendian.dcm",
    "pydicom/MR_small_implicit.dcm",
    "pydicom/MR_small_jp2klossless.dcm",
    "pydicom/MR_small_jpeg_ls_lossless.dcm",
    "pydicom/SC_rgb_jpeg_dcmtk.dcm",
    "pydicom/SC_rgb_rle_2frame.dcm",
    "pydicom/SC_rgb_small_odd.dcm",
    "pydicom/SC_rgb_small_odd_jpeg.dcm",
    "pydicom/badVR.dcm",
    "pydicom/liver_1frame.dcm",
    "pydicom/reportsi.dcm",
    "pydicom/rtdose.dcm",
    "pydicom/rtplan.dcm",
    "pydicom/test-SR.dcm",
    "pydicom/waveform_ecg.dcm",
];

/// Instances `inspect` rejects (each has its own test below saying why).
const REJECTED: &[&str] = &[
    "pydicom/no_meta.dcm",
    "pydicom/rtstruct.dcm",
    "pydicom/MR_truncated.dcm",
    "pydicom/UN_sequence.dcm",
    "pydicom/priv_SQ.dcm",
    "pydicom/nested_priv_SQ.dcm",
];

/// Deflated: dicom-object (without its deflate feature) cannot read it, so it is checked against pydicom.
const DEFLATED: &str = "pydicom/image_dfl.dcm";

#[test]
fn every_sample_file_is_accounted_for() {
    for directory in ["", "pydicom/"] {
        for entry in std::fs::read_dir(sample(directory)).unwrap() {
            let file_name = entry.unwrap().file_name().into_string().unwrap();
            if !file_name.ends_with(".dcm") {
                continue;
            }
            let name = format!("{directory}{file_name}");
            let listed = READABLE.contains(&name.as_str())
                || REJECTED.contains(&name.as_str())
                || name == DEFLATED;
            assert!(
                listed,
                "{name}: new sample file, add it to one of the lists"
            );
        }
    }
    for name in REJECTED {
        assert!(inspect_path(&sample(name)).is_err(), "{name}");
    }
}

#[test]
fn uids_and_transfer_syntax_match_dicom_object() {
    for name in READABLE {
        let path = sample(name);
        let info = inspect_path(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let object = dicom_object::open_file(&path).unwrap();
        assert_eq!(
            info.transfer_syntax_uid,
            object
                .meta()
                .transfer_syntax()
                .trim_end_matches(['\0', ' ']),
            "{name}"
        );
        for (ours, tag) in [
            (&info.study_instance_uid, tags::STUDY_INSTANCE_UID),
            (&info.series_instance_uid, tags::SERIES_INSTANCE_UID),
            (&info.sop_instance_uid, tags::SOP_INSTANCE_UID),
            (&info.sop_class_uid, tags::SOP_CLASS_UID),
        ] {
            assert_eq!(*ours, trimmed_str(&object, tag), "{name} {tag}");
        }
        assert_eq!(
            trimmed_str(&info.dataset, tags::PATIENT_ID),
            trimmed_str(&object, tags::PATIENT_ID),
            "{name}"
        );
    }
}

/// Every element of `reference` that is not bulk is in `ours` with the same value, recursively.
fn assert_same_non_bulk(ours: &InMemDicomObject, reference: &InMemDicomObject, context: &str) {
    use dicom_core::VR;
    use dicom_core::header::Header;
    for element in reference.iter() {
        let bulk = element.tag() == tags::PIXEL_DATA
            || matches!(
                element.vr(),
                VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::UN
            );
        let found = ours.get(element.tag());
        if bulk {
            assert!(
                common::has_placeholder(ours, element.tag()),
                "{context}: bulk {} was loaded, or is missing",
                element.tag()
            );
            continue;
        }
        let found = found.unwrap_or_else(|| panic!("{context}: {} missing", element.tag()));
        match (element.value(), found.value()) {
            (Value::Sequence(expected), Value::Sequence(actual)) => {
                assert_eq!(expected.items().len(), actual.items().len(), "{context}");
                for (expected, actual) in expected.items().iter().zip(actual.items()) {
                    assert_same_non_bulk(actual, expected, context);
                }
            }
            (expected, actual) => assert_eq!(expected, actual, "{context}: {}", element.tag()),
        }
    }
    assert!(ours.iter().count() <= reference.iter().count(), "{context}");
}

#[test]
fn dataset_has_every_non_bulk_attribute_and_bulk_ones_without_their_values() {
    for name in READABLE {
        let path = sample(name);
        let info = inspect_path(&path).unwrap();
        let object = dicom_object::open_file(&path).unwrap();
        assert_same_non_bulk(&info.dataset, &object, name);
    }
    // The ECG waveform samples are OW inside Waveform Sequence: the sequence is kept, the samples are not.
    let info = inspect_path(&pydicom_sample("waveform_ecg.dcm")).unwrap();
    let waveforms = info.dataset.element(tags::WAVEFORM_SEQUENCE).unwrap();
    let first = &waveforms.items().unwrap()[0];
    assert!(first.get(tags::NUMBER_OF_WAVEFORM_SAMPLES).is_some());
    assert!(common::has_placeholder(first, tags::WAVEFORM_DATA));
}

#[test]
fn native_frames_are_the_bytes_dicom_object_decodes() {
    let mut checked = 0;
    for name in READABLE {
        let path = sample(name);
        let info = inspect_path(&path).unwrap();
        let Some(PixelDataLayout::Native {
            offset,
            length,
            frame_length,
            number_of_frames,
        }) = info.pixel_data
        else {
            continue;
        };
        let file = std::fs::read(&path).unwrap();
        let object = dicom_object::open_file(&path).unwrap();
        let decoded = object
            .element(tags::PIXEL_DATA)
            .unwrap()
            .value()
            .to_bytes()
            .unwrap();
        assert_eq!(length, decoded.len() as u64, "{name}");
        for frame in 0..u64::from(number_of_frames) {
            let start = (offset + frame * frame_length) as usize;
            let mut from_file = file[start..start + frame_length as usize].to_vec();
            if info.transfer_syntax_uid == "1.2.840.10008.1.2.2" {
                // dicom-object holds 16-bit samples in native (little endian) order; the file is big endian.
                from_file
                    .chunks_exact_mut(2)
                    .for_each(|pair| pair.swap(0, 1));
            }
            let expected = &decoded[(frame * frame_length) as usize..][..frame_length as usize];
            assert!(from_file == expected, "{name} frame {frame}");
        }
        checked += 1;
    }
    // 3 RGB samples, CT_small, MR_small in 3 encodings, SC_rgb_small_odd, liver_1frame, rtdose (badVR is not
    // range-readable).
    assert_eq!(checked, 10, "native samples checked");
}

#[test]
fn rtdose_has_fifteen_native_frames() {
    let info = inspect_path(&pydicom_sample("rtdose.dcm")).unwrap();
    // 10 x 10, 32 bits allocated.
    assert!(matches!(
        info.pixel_data,
        Some(PixelDataLayout::Native {
            frame_length: 400,
            number_of_frames: 15,
            length: 6000,
            ..
        })
    ));
    assert_eq!(info.pixel_data.unwrap().number_of_frames(), Some(15));
}

/// The bytes of each frame's fragment ranges, one Vec per fragment.
fn frame_fragments(file: &[u8], frames: &[Vec<(u64, u64)>]) -> Vec<Vec<Vec<u8>>> {
    frames
        .iter()
        .map(|ranges| {
            ranges
                .iter()
                .map(|(start, end)| file[*start as usize..*end as usize].to_vec())
                .collect()
        })
        .collect()
}

fn encapsulated_frames(path: &str) -> (Vec<Vec<Vec<u8>>>, Vec<Vec<u8>>) {
    let info = inspect_path(path).unwrap();
    let Some(PixelDataLayout::Encapsulated { frames }) = &info.pixel_data else {
        panic!("{path}: {:?}", info.pixel_data);
    };
    let ours = frame_fragments(&std::fs::read(path).unwrap(), frames);
    let object = dicom_object::open_file(path).unwrap();
    let Value::PixelSequence(sequence) = object.element(tags::PIXEL_DATA).unwrap().value() else {
        panic!("{path}: not encapsulated for dicom-object");
    };
    (ours, sequence.fragments().to_vec())
}

#[test]
fn encapsulated_fragment_ranges_are_dicom_objects_fragments() {
    for (name, expected_frames) in [
        ("JPEG-lossy.dcm", 1),
        ("JPEG2000.dcm", 1),
        ("MR_small_RLE.dcm", 1),
        ("MR_small_jp2klossless.dcm", 1),
        ("MR_small_jpeg_ls_lossless.dcm", 1),
        ("SC_rgb_jpeg_dcmtk.dcm", 1),
        ("SC_rgb_small_odd_jpeg.dcm", 1),
        ("SC_rgb_rle_2frame.dcm", 2),
    ] {
        let (frames, fragments) = encapsulated_frames(&pydicom_sample(name));
        assert_eq!(frames.len(), expected_frames, "{name}");
        let ours: Vec<Vec<u8>> = frames.into_iter().flatten().collect();
        assert!(ours == fragments, "{name}: fragment bytes differ");
    }
}

#[test]
fn multi_frame_encapsulated_uses_basic_offset_table_then_extended_then_markers() {
    // Generated by tests/data/generate.py: 3 frames of 2 fragments each. With a table, the second fragment of each
    // frame also starts with FFD8, so start markers alone would find 6 frames: only the table gives 3.
    for name in [
        "multiframe_jpeg_bot.dcm",
        "multiframe_jpeg_eot.dcm",
        "multiframe_jpeg_no_table.dcm",
    ] {
        let (frames, fragments) = encapsulated_frames(&local_sample(name));
        assert_eq!(frames.len(), 3, "{name}");
        for (index, frame) in frames.iter().enumerate() {
            assert_eq!(frame.len(), 2, "{name} frame {index}");
            assert_eq!(frame[0], fragments[2 * index], "{name} frame {index}");
            assert_eq!(frame[1], fragments[2 * index + 1], "{name} frame {index}");
            let label = format!("FRAME{index}-A");
            assert!(
                frame[0].windows(label.len()).any(|w| w == label.as_bytes()),
                "{name}"
            );
        }
    }
}

#[test]
fn deflated_instance_is_parsed_but_not_range_readable() {
    let info = inspect_path(&pydicom_sample("image_dfl.dcm")).unwrap();
    assert_eq!(info.transfer_syntax_uid, "1.2.840.10008.1.2.1.99");
    // Values cross-checked with pydicom (dicom-object is built without deflate support here).
    assert_eq!(
        info.sop_instance_uid,
        "1.3.6.1.4.1.5962.1.1.0.0.0.977067309.6001.0"
    );
    assert_eq!(info.sop_class_uid, "1.2.840.10008.5.1.4.1.1.7");
    assert_eq!(info.pixel_data, Some(PixelDataLayout::NotRangeReadable));
    assert_eq!(
        info.dataset
            .element(tags::ROWS)
            .unwrap()
            .to_int::<u16>()
            .unwrap(),
        512
    );
    assert!(common::has_placeholder(&info.dataset, tags::PIXEL_DATA));
}

#[test]
fn bad_vr_becomes_a_warning_and_the_instance_is_accepted() {
    let info = inspect_path(&pydicom_sample("badVR.dcm")).unwrap();
    assert!(
        info.warnings.contains(
            &"DICOM100: (0028,0008) - Content \"1A\" does not validate VR IS: value is not an integer string"
                .to_string()
        ),
        "{:?}",
        info.warnings
    );
    // Number of Frames "1A" cannot say how many frames there are.
    assert_eq!(info.pixel_data, Some(PixelDataLayout::NotRangeReadable));
    assert!(info.warnings.iter().any(|w| w.contains("Number of Frames")));
}

#[test]
fn clean_samples_have_no_warnings() {
    for name in [
        "red-triangle.dcm",
        "pydicom/CT_small.dcm",
        "pydicom/MR_small.dcm",
        "pydicom/test-SR.dcm",
    ] {
        let info = inspect_path(&sample(name)).unwrap();
        assert!(info.warnings.is_empty(), "{name}: {:?}", info.warnings);
    }
}

#[test]
fn files_without_file_meta_are_not_dicom() {
    for name in ["no_meta.dcm", "rtstruct.dcm"] {
        let error = inspect_path(&pydicom_sample(name)).unwrap_err();
        assert!(
            matches!(error, InspectError::NotDicom(_)),
            "{name}: {error}"
        );
        assert!(!error.is_validation());
    }
}

#[test]
fn truncated_file_is_not_dicom_with_a_message() {
    let error = inspect_path(&pydicom_sample("MR_truncated.dcm")).unwrap_err();
    let InspectError::NotDicom(message) = &error else {
        panic!("{error}");
    };
    assert!(message.contains("truncated"), "{message}");
}

#[test]
fn missing_study_instance_uid_is_a_validation_error() {
    for name in ["priv_SQ.dcm", "nested_priv_SQ.dcm"] {
        let error = inspect_path(&pydicom_sample(name)).unwrap_err();
        assert!(error.is_validation());
        assert!(
            matches!(&error, InspectError::MissingAttribute { keyword: "StudyInstanceUID", tag } if tag == "(0020,000D)"),
            "{name}: {error}"
        );
    }
}

#[test]
fn undefined_length_un_sequence_is_read_as_implicit_vr_like_pydicom() {
    // Its private UN element of undefined length holds implicit VR data (PS3.5 6.2.2), read as a sequence as
    // pydicom reads it. The file is still refused, but only because its Study Instance UID is inside that
    // sequence and not at the top level.
    let error = inspect_path(&pydicom_sample("UN_sequence.dcm")).unwrap_err();
    assert!(
        matches!(
            &error,
            InspectError::MissingAttribute {
                keyword: "StudyInstanceUID",
                ..
            }
        ),
        "{error}"
    );
}

/// The file without its File Meta Information Group Length (0002,0000), as some writers produce it.
fn without_group_length(file: &[u8]) -> Vec<u8> {
    assert_eq!(
        &file[132..140],
        &[0x02, 0x00, 0x00, 0x00, b'U', b'L', 0x04, 0x00]
    );
    [&file[..132], &file[144..]].concat()
}

#[test]
fn a_file_without_file_meta_group_length_is_read_as_pydicom_and_dcmtk_read_it() {
    for name in [
        "red-triangle.dcm",
        "pydicom/CT_small.dcm",
        "pydicom/MR_small_implicit.dcm",
        "pydicom/SC_rgb_rle_2frame.dcm",
    ] {
        let file = std::fs::read(sample(name)).unwrap();
        let with = inspect(&file[..]).unwrap();
        let without = inspect(&without_group_length(&file)[..])
            .unwrap_or_else(|e| panic!("{name} without group length: {e}"));
        assert_eq!(without.sop_instance_uid, with.sop_instance_uid, "{name}");
        assert_eq!(
            without.transfer_syntax_uid, with.transfer_syntax_uid,
            "{name}"
        );
        for element in with.dataset.iter() {
            let other = without.dataset.element(element.tag()).ok();
            assert!(
                other.is_some_and(|o| o.value() == element.value()),
                "{name}: {:?} differs",
                element.tag()
            );
        }
        assert_eq!(
            without.dataset.iter().count(),
            with.dataset.iter().count(),
            "{name}"
        );
        // Frame ranges are file offsets: 12 bytes earlier in the shorter file.
        let shifted = |layout: PixelDataLayout| match layout {
            PixelDataLayout::Native {
                offset,
                length,
                frame_length,
                number_of_frames,
            } => PixelDataLayout::Native {
                offset: offset - 12,
                length,
                frame_length,
                number_of_frames,
            },
            PixelDataLayout::Encapsulated { frames } => PixelDataLayout::Encapsulated {
                frames: frames
                    .into_iter()
                    .map(|ranges| ranges.into_iter().map(|(a, b)| (a - 12, b - 12)).collect())
                    .collect(),
            },
            other => other,
        };
        assert_eq!(without.pixel_data, with.pixel_data.map(shifted), "{name}");
    }
}

#[test]
fn a_meta_group_without_length_that_breaks_off_is_refused_not_misread() {
    let file = without_group_length(&std::fs::read(sample("red-triangle.dcm")).unwrap());
    // Cut inside the meta group: every prefix is a clear error, never a panic or a success.
    for cut in 133..200 {
        assert!(inspect(&file[..cut]).is_err(), "cut at {cut}");
    }
}
