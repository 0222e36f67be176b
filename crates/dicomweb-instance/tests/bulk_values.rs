//! Bulk values: `inspect` lists every bulk attribute without its bytes, and `locate_value` finds each of them
//! at its path in the file, with the bytes dicom-object reads there.

mod common;

use common::pydicom_sample;
use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicomweb_instance::{AttributePath, LocatedValue, byte_swap_width, inspect, locate_value};
use proptest::prelude::*;

/// Paths of the empty bulk placeholders of an inspected dataset, in the order of the dataset.
fn bulk_paths(object: &InMemDicomObject, items: &mut Vec<(Tag, u32)>, out: &mut Vec<String>) {
    for element in object {
        match element.value() {
            Value::Sequence(sequence) => {
                for (index, item) in sequence.items().iter().enumerate() {
                    items.push((element.tag(), index as u32));
                    bulk_paths(item, items, out);
                    items.pop();
                }
            }
            Value::Primitive(PrimitiveValue::Empty)
                if element.tag() == tags::PIXEL_DATA
                    || matches!(
                        element.vr(),
                        VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::UN
                    ) =>
            {
                let mut path = String::new();
                for (Tag(g, e), i) in items.iter() {
                    path.push_str(&format!("{g:04X}{e:04X}.{i}."));
                }
                path.push_str(&format!("{:04X}{:04X}", element.tag().0, element.tag().1));
                out.push(path);
            }
            _ => {}
        }
    }
}

/// The value dicom-object reads at `path`, as little-endian bytes.
fn dicom_object_bytes(file: &InMemDicomObject, path: &AttributePath) -> Vec<u8> {
    let mut object = file;
    for (sequence, index) in path.items() {
        object = &object.element(*sequence).unwrap().items().unwrap()[*index as usize];
    }
    object
        .element(path.tag())
        .unwrap()
        .value()
        .primitive()
        .unwrap()
        .to_bytes()
        .into_owned()
}

/// The bytes `locate_value` points to, little endian.
fn located_bytes(file: &[u8], located: LocatedValue) -> Vec<u8> {
    let LocatedValue::Value {
        vr,
        offset,
        length,
        big_endian,
        inflated,
    } = located
    else {
        panic!("not a value: {located:?}");
    };
    let mut bytes = match inflated {
        Some(bytes) => bytes,
        None => file[offset as usize..(offset + length) as usize].to_vec(),
    };
    assert_eq!(bytes.len() as u64, length);
    if big_endian && let Some(width) = byte_swap_width(vr) {
        for word in bytes.chunks_exact_mut(width) {
            word.reverse();
        }
    }
    bytes
}

fn check_every_bulk_value(name: &str, expected_paths: &[&str]) {
    let path = pydicom_sample(name);
    let file = std::fs::read(&path).unwrap();
    let info = inspect(file.as_slice()).unwrap();
    let mut paths = Vec::new();
    bulk_paths(&info.dataset, &mut Vec::new(), &mut paths);
    assert_eq!(paths, expected_paths, "bulk attributes of {name}");
    let read = dicom_object::open_file(&path).unwrap();
    for text in paths {
        let attribute: AttributePath = text.parse().unwrap();
        let located = locate_value(file.as_slice(), &attribute, 1 << 20)
            .unwrap()
            .unwrap_or_else(|| panic!("{text} of {name} not found"));
        assert_eq!(
            located_bytes(&file, located),
            dicom_object_bytes(&read, &attribute),
            "{text} of {name}"
        );
    }
}

#[test]
fn private_ob_values_and_native_pixel_data_and_trailing_padding_are_found() {
    check_every_bulk_value(
        "CT_small.dcm",
        &["00431028", "00431029", "0043102A", "7FE00010", "FFFCFFFC"],
    );
}

#[test]
fn values_nested_in_sequence_items_are_found() {
    check_every_bulk_value(
        "waveform_ecg.dcm",
        &[
            "14551000",
            "14551001",
            "14551009",
            "1455100A",
            "1455100B",
            "1455100C",
            "1455100E",
            "54000100.0.54001010",
            "54000100.1.54001010",
        ],
    );
}

#[test]
fn big_endian_words_are_reported_big_endian_and_swap_to_what_dicom_object_reads() {
    check_every_bulk_value("MR_small_bigendian.dcm", &["7FE00010"]);
}

#[test]
fn a_deflated_file_gives_the_inflated_value_itself() {
    // dicom-object is built without deflate here: the value is checked against the inflated dataset.
    let file = std::fs::read(pydicom_sample("image_dfl.dcm")).unwrap();
    let info = inspect(file.as_slice()).unwrap();
    let mut paths = Vec::new();
    bulk_paths(&info.dataset, &mut Vec::new(), &mut paths);
    assert_eq!(paths, ["7FE00010"]);
    let Some(LocatedValue::Value {
        offset,
        length,
        inflated: Some(value),
        ..
    }) = locate_value(
        file.as_slice(),
        &AttributePath::top_level(tags::PIXEL_DATA),
        1 << 20,
    )
    .unwrap()
    else {
        panic!("the Pixel Data of a deflated file is returned inflated");
    };
    // The dataset starts after the file meta group, whose length is in (0002,0000) at bytes 140..144.
    let meta_length = u32::from_le_bytes(file[140..144].try_into().unwrap()) as usize;
    let mut dataset = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::DeflateDecoder::new(&file[144 + meta_length..]),
        &mut dataset,
    )
    .unwrap();
    assert_eq!(length, 512 * 512);
    assert_eq!(value, dataset[offset as usize..(offset + length) as usize]);
}

#[test]
fn a_deflated_value_longer_than_the_limit_is_refused() {
    let file = std::fs::read(pydicom_sample("image_dfl.dcm")).unwrap();
    let error = locate_value(
        file.as_slice(),
        &AttributePath::top_level(tags::PIXEL_DATA),
        1000,
    )
    .unwrap_err();
    assert!(error.to_string().contains("deflated"), "{error}");
}

#[test]
fn encapsulated_pixel_data_is_reported_as_such() {
    let file = std::fs::read(pydicom_sample("JPEG2000.dcm")).unwrap();
    let info = inspect(file.as_slice()).unwrap();
    let placeholder = info.dataset.element(tags::PIXEL_DATA).unwrap();
    assert_eq!(placeholder.vr(), VR::OB);
    assert_eq!(
        locate_value(
            file.as_slice(),
            &AttributePath::top_level(tags::PIXEL_DATA),
            0
        )
        .unwrap(),
        Some(LocatedValue::Encapsulated)
    );
}

#[test]
fn absent_attributes_and_items_are_not_found() {
    let file = std::fs::read(pydicom_sample("waveform_ecg.dcm")).unwrap();
    for absent in [
        "00091010",
        "54000100.2.54001010",
        "54000100.0.54001011",
        "00081110.0.00100020",
    ] {
        assert_eq!(
            locate_value(file.as_slice(), &absent.parse().unwrap(), 0).unwrap(),
            None,
            "{absent}"
        );
    }
}

#[test]
fn attribute_paths_read_and_write_the_bulk_data_uri_form() {
    for (text, written) in [
        ("7fe00010", "7FE00010"),
        ("54000100.0.54001010", "54000100.0.54001010"),
        ("54000100/3/54001010", "54000100.3.54001010"),
    ] {
        assert_eq!(text.parse::<AttributePath>().unwrap().to_string(), written);
    }
    for bad in [
        "",
        "7FE0001",
        "7FE000100",
        "54000100.0",
        "54000100.x.54001010",
        "5400010G",
        "54000100.+1.54001010",
    ] {
        assert!(bad.parse::<AttributePath>().is_err(), "{bad:?}");
    }
}

proptest! {
    /// Attribute paths come from request URLs: any text parses or is refused, never panics, and a parsed path
    /// writes back the text it was read from (tags in upper case, `.` separators).
    #[test]
    fn any_text_is_a_path_or_refused_and_paths_write_back_as_read(
        text in "[0-9a-fA-F./x+-]{0,40}",
        items in prop::collection::vec((any::<u32>(), 0u32..100_000), 0..4),
        tag in any::<u32>(),
    ) {
        let _ = text.parse::<AttributePath>();
        let mut written: String = items.iter().map(|(s, i)| format!("{s:08x}.{i}.")).collect();
        written.push_str(&format!("{tag:08x}"));
        let path: AttributePath = written.parse().unwrap();
        prop_assert_eq!(path.to_string(), written.to_uppercase());
        prop_assert_eq!(path.items().len(), items.len());
    }

    /// A damaged or truncated file is an error or an answer, never a panic, whatever path is asked.
    #[test]
    fn damaged_files_never_make_locating_panic(
        flips in prop::collection::vec((0usize..600, any::<u8>()), 1..8),
        cut in 200usize..2000,
        path in prop::sample::select(vec!["14551001", "54000100.1.54001010", "FFFCFFFC", "00100010"]),
    ) {
        let mut file = std::fs::read(pydicom_sample("waveform_ecg.dcm")).unwrap();
        for (at, byte) in flips {
            let at = 128 + at % (file.len() - 128);
            file[at] = byte;
        }
        file.truncate(cut.min(file.len()));
        let _ = locate_value(file.as_slice(), &path.parse().unwrap(), 1 << 20);
    }
}
