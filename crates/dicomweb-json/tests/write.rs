//! How data sets are written as DICOM JSON (PS3.18 F.2).

mod common;

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, DicomValue, PrimitiveValue, Tag, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicomweb_json::{BulkDataPolicy, JsonOptions, dataset_to_json, dataset_to_json_bytes};
use serde_json::{Value, json};

fn inline() -> JsonOptions {
    JsonOptions {
        bulk_data: BulkDataPolicy::Inline,
        ..JsonOptions::default()
    }
}

fn to_string(obj: &InMemDicomObject, options: &JsonOptions) -> String {
    String::from_utf8(dataset_to_json_bytes(obj, options)).unwrap()
}

fn attribute(json: &Value, path: &[&str]) -> Value {
    let mut current = json;
    for step in path {
        current = match step.strip_prefix('#') {
            Some(index) => &current["Value"][index.parse::<usize>().unwrap()],
            None => &current[*step],
        };
    }
    current.clone()
}

/// This exact document was checked by hand with pydicom 3 (`Dataset.from_json`): every value
/// parses back to the original (empty CS value, PN groups, DS/IS numbers, FL NaN, UV beyond 2^53
/// as a string, AT, nested sequences, InlineBinary in little endian). Any change to the format
/// must be re-verified the same way.
#[test]
fn golden_document_verified_with_pydicom() {
    let expected = concat!(
        r#"{"00080005":{"vr":"CS","Value":["ISO_IR 192"]},"#,
        r#""00080008":{"vr":"CS","Value":["ORIGINAL","PRIMARY",null,"AXIAL"]},"#,
        r#""00080016":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.7"]},"#,
        r#""00080020":{"vr":"DA","Value":["20240102"]},"#,
        r#""00080090":{"vr":"PN"},"#,
        r#""00081032":{"vr":"SQ"},"#,
        r#""00081115":{"vr":"SQ","Value":[{"0008114A":{"vr":"SQ","Value":[{"#,
        r#""00081155":{"vr":"UI","Value":["1.2.3.4.5"]},"#,
        r#""00090010":{"vr":"LO","Value":["ACME"]},"#,
        r#""00091010":{"vr":"OB","InlineBinary":"yv4="}}]},"#,
        r#""0020000E":{"vr":"UI","Value":["1.2.3.4"]}}]},"#,
        r#""00082111":{"vr":"LT","Value":["left\\right"]},"#,
        r#""00090010":{"vr":"LO","Value":["ACME"]},"#,
        r#""00091001":{"vr":"FL","Value":[0.1,"NaN"]},"#,
        r#""00091002":{"vr":"UV","Value":[7,"1152921504606846976"]},"#,
        r#""00091003":{"vr":"SV","Value":[-5]},"#,
        r#""00091004":{"vr":"OW","InlineBinary":"AgEEAw=="},"#,
        r#""00091005":{"vr":"UN","InlineBinary":"AQID"},"#,
        r#""00100010":{"vr":"PN","Value":[{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎","Phonetic":"やまだ^たろう"}]},"#,
        r#""00101001":{"vr":"PN","Value":[{"Alphabetic":"Doe^John"},null,{"Alphabetic":"Roe^Jane"}]},"#,
        r#""00101010":{"vr":"AS","Value":["030Y"]},"#,
        r#""00101030":{"vr":"DS","Value":[72.5]},"#,
        r#""00180050":{"vr":"DS","Value":[0.5,1000.0,-2]},"#,
        r#""00200013":{"vr":"IS","Value":[12]},"#,
        r#""00200032":{"vr":"DS","Value":[-125.0,-125.0,0]},"#,
        r#""00280009":{"vr":"AT","Value":["00181063"]},"#,
        r#""00280010":{"vr":"US","Value":[2]},"#,
        r#""00280011":{"vr":"US","Value":[1]},"#,
        r#""00280120":{"vr":"SS","Value":[-3]},"#,
        r#""7FE00010":{"vr":"OW","InlineBinary":"AgEEAw=="}}"#,
    );
    assert_eq!(to_string(&common::golden_dataset(), &inline()), expected);
}

#[test]
fn value_and_bytes_forms_are_the_same_document() {
    for options in [JsonOptions::default(), inline()] {
        let obj = common::golden_dataset();
        let bytes = dataset_to_json_bytes(&obj, &options);
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(dataset_to_json(&obj, &options), parsed);
    }
}

#[test]
fn attributes_are_in_ascending_tag_order_without_file_meta_or_group_length() {
    let json = dataset_to_json(&common::golden_dataset(), &inline());
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("0002") || k.ends_with("0000"))
    );
}

#[test]
fn uri_policy_points_at_the_bulkdata_path_including_sequence_items() {
    let options = JsonOptions {
        bulk_data: BulkDataPolicy::Uri {
            // A trailing slash must not produce "//bulkdata".
            base: "https://pacs/studies/1/series/2/instances/3/".into(),
        },
        ..JsonOptions::default()
    };
    let json = dataset_to_json(&common::golden_dataset(), &options);
    let base = "https://pacs/studies/1/series/2/instances/3/bulkdata";
    assert_eq!(
        json["7FE00010"],
        json!({"vr": "OW", "BulkDataURI": format!("{base}/7FE00010")})
    );
    assert_eq!(
        json["00091005"],
        json!({"vr": "UN", "BulkDataURI": format!("{base}/00091005")})
    );
    assert_eq!(
        attribute(&json, &["00081115", "#0", "0008114A", "#0", "00091010"]),
        json!({"vr": "OB", "BulkDataURI": format!("{base}/00081115.0.0008114A.0.00091010")})
    );
}

/// What an archive stores once and serves under any base URI: relative URIs, which
/// `resolve_bulk_data_uris` makes absolute, the same as the `Uri` policy would have written them.
#[test]
fn relative_uri_policy_resolves_to_the_documents_of_the_uri_policy() {
    let relative = JsonOptions {
        bulk_data: BulkDataPolicy::RelativeUri,
        large_value_bytes: Some(16),
    };
    let mut dataset = common::golden_dataset();
    // A bulk attribute whose value was not read (as dicomweb-instance leaves them) and a long text.
    dataset.put(DataElement::new(
        Tag(0x0009, 0x1099),
        VR::OB,
        PrimitiveValue::Empty,
    ));
    dataset.put(DataElement::new(
        tags::IMAGE_COMMENTS,
        VR::LT,
        PrimitiveValue::from("a comment longer than sixteen bytes"),
    ));
    let stored = dataset_to_json_bytes(&dataset, &relative);
    let json: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(
        json["7FE00010"],
        json!({"vr": "OW", "BulkDataURI": "bulkdata/7FE00010"})
    );
    assert_eq!(
        json["00091099"],
        json!({"vr": "OB", "BulkDataURI": "bulkdata/00091099"})
    );
    assert_eq!(
        json["00204000"],
        json!({"vr": "LT", "BulkDataURI": "bulkdata/00204000"})
    );
    assert_eq!(
        attribute(&json, &["00081115", "#0", "0008114A", "#0", "00091010"]),
        json!({"vr": "OB", "BulkDataURI": "bulkdata/00081115.0.0008114A.0.00091010"})
    );
    assert!(dicomweb_json::has_relative_bulk_data_uri(&stored));

    let base = "https://pacs/v2/studies/1/series/2/instances/3";
    let absolute = JsonOptions {
        bulk_data: BulkDataPolicy::Uri { base: base.into() },
        large_value_bytes: Some(16),
    };
    let mut expected = dataset.clone();
    // Under Uri an empty bulk value has no URI; it is the one difference.
    expected.put(DataElement::new(
        Tag(0x0009, 0x1099),
        VR::OB,
        PrimitiveValue::from(vec![1u8, 2]),
    ));
    let mut expected: Value =
        serde_json::from_slice(&dataset_to_json_bytes(&expected, &absolute)).unwrap();
    let resolved: Value =
        serde_json::from_slice(&dicomweb_json::resolve_bulk_data_uris(&stored, base)).unwrap();
    expected["00091099"] = json!({"vr": "OB", "BulkDataURI": format!("{base}/bulkdata/00091099")});
    assert_eq!(resolved, expected);
}

#[test]
fn resolving_leaves_a_document_without_relative_uris_as_it_is_and_escapes_the_base() {
    let plain =
        br#"[{"00100010":{"vr":"PN","Value":[{"Alphabetic":"\"BulkDataURI\":\"bulkdata/"}]}}]"#;
    assert!(matches!(
        dicomweb_json::resolve_bulk_data_uris(plain, "http://h"),
        std::borrow::Cow::Borrowed(_)
    ));
    let two = br#"[{"7FE00010":{"vr":"OB","BulkDataURI":"bulkdata/7FE00010"}},{"7FE00010":{"vr":"OB","BulkDataURI":"bulkdata/7FE00010"}}]"#;
    let resolved = dicomweb_json::resolve_bulk_data_uris(two, "http://h/\"x\"/");
    let resolved: Value = serde_json::from_slice(&resolved).unwrap();
    assert_eq!(
        resolved[1]["7FE00010"]["BulkDataURI"],
        "http://h/\"x\"/bulkdata/7FE00010"
    );
}

#[test]
fn omit_policy_leaves_bulk_attributes_out_everywhere() {
    let json = dataset_to_json(&common::golden_dataset(), &JsonOptions::default());
    for tag in ["7FE00010", "00091004", "00091005"] {
        assert!(json.get(tag).is_none(), "{tag} should be omitted");
    }
    let nested = attribute(&json, &["00081115", "#0", "0008114A", "#0"]);
    assert!(nested.get("00091010").is_none());
    assert!(nested.get("00081155").is_some(), "non-bulk siblings stay");
    // Non-bulk binary numbers are ordinary values.
    assert_eq!(json["00280010"], json!({"vr": "US", "Value": [2]}));
}

#[test]
fn ct_small_values() {
    let json = dataset_to_json(&common::open("CT_small"), &JsonOptions::default());
    assert_eq!(
        json["00100010"],
        json!({"vr": "PN", "Value": [{"Alphabetic": "CompressedSamples^CT1"}]})
    );
    assert_eq!(
        json["00080008"],
        json!({"vr": "CS", "Value": ["ORIGINAL", "PRIMARY", "AXIAL"]})
    );
    assert_eq!(json["00200013"], json!({"vr": "IS", "Value": [1]}));
    assert_eq!(json["00280010"], json!({"vr": "US", "Value": [128]}));
    assert_eq!(
        json["00280030"],
        json!({"vr": "DS", "Value": [0.661468, 0.661468]})
    );
    assert_eq!(
        json["00200032"],
        json!({"vr": "DS", "Value": [-158.135803, -179.035797, -75.699997]})
    );
    // Zero-length attributes have no "Value".
    assert_eq!(json["00080050"], json!({"vr": "SH"}));
    assert_eq!(json["00080090"], json!({"vr": "PN"}));
    // Other Patient IDs Sequence: two items.
    assert_eq!(
        attribute(&json, &["00101002", "#1", "00100020"]),
        json!({"vr": "LO", "Value": ["1234ABCD"]})
    );
    assert!(json.get("7FE00010").is_none());
    assert!(json.get("00020010").is_none(), "file meta is not written");
}

#[test]
fn rtplan_nested_sequences() {
    let json = dataset_to_json(&common::open("rtplan"), &JsonOptions::default());
    let beam = attribute(&json, &["300A00B0", "#0"]);
    assert_eq!(beam["300A00C2"], json!({"vr": "LO", "Value": ["Field 1"]}));
    let control_point = attribute(&beam, &["300A0111", "#0"]);
    // "6.00000000000000" in the file: a number, not a string.
    assert_eq!(
        control_point["300A0114"],
        json!({"vr": "DS", "Value": [6.0]})
    );
    assert_eq!(
        attribute(&control_point, &["300A011A", "#0", "300A011C"]),
        json!({"vr": "DS", "Value": [-100.0, 100.0]})
    );
}

#[test]
fn attribute_tags_are_hex_strings() {
    let json = dataset_to_json(&common::open("JPEG2000"), &JsonOptions::default());
    assert_eq!(
        json["00280009"],
        json!({"vr": "AT", "Value": ["00540010", "00540020"]})
    );
}

#[test]
fn invalid_integer_string_is_written_as_empty_so_pydicom_can_read_the_document() {
    // badVR.dcm has Number of Frames (IS) "1A".
    let json = dataset_to_json(&common::open("badVR"), &JsonOptions::default());
    assert_eq!(json["00280008"], json!({"vr": "IS"}));

    let obj = InMemDicomObject::from_element_iter([DataElement::new(
        tags::REFERENCED_FRAME_NUMBER,
        VR::IS,
        dicom_value!(Strs, ["1", "x", "3.0"]),
    )]);
    let json = dataset_to_json(&obj, &JsonOptions::default());
    assert_eq!(json["00081160"], json!({"vr": "IS", "Value": [1, null, 3]}));
}

#[test]
fn decimal_strings_keep_non_finite_and_huge_integers_as_strings() {
    let obj = InMemDicomObject::from_element_iter([DataElement::new(
        tags::SLICE_THICKNESS,
        VR::DS,
        dicom_value!(Strs, ["NaN", "-inf", "9007199254740993", "1e-20"]),
    )]);
    let json = dataset_to_json(&obj, &JsonOptions::default());
    assert_eq!(
        json["00180050"],
        json!({"vr": "DS", "Value": ["NaN", "-Infinity", "9007199254740993", 1e-20]})
    );
}

#[test]
fn text_is_split_on_backslash_except_single_valued_vrs() {
    let obj = InMemDicomObject::from_element_iter([
        // Built in code as one string: still three values.
        DataElement::new(
            tags::IMAGE_TYPE,
            VR::CS,
            PrimitiveValue::from("DERIVED\\\\SECONDARY "),
        ),
        DataElement::new(
            tags::PATIENT_COMMENTS,
            VR::LT,
            PrimitiveValue::from("C:\\dir "),
        ),
        DataElement::new(tags::STUDY_DESCRIPTION, VR::LO, PrimitiveValue::from("   ")),
        DataElement::new(tags::ACCESSION_NUMBER, VR::SH, dicom_value!(Strs, ["\\"])),
    ]);
    let json = dataset_to_json(&obj, &JsonOptions::default());
    assert_eq!(
        json["00080008"],
        json!({"vr": "CS", "Value": ["DERIVED", null, "SECONDARY"]})
    );
    assert_eq!(json["00104000"], json!({"vr": "LT", "Value": ["C:\\dir"]}));
    // Only padding: an empty attribute.
    assert_eq!(json["00081030"], json!({"vr": "LO"}));
    // Two empty values are still two values.
    assert_eq!(json["00080050"], json!({"vr": "SH", "Value": [null, null]}));
}

#[test]
fn big_endian_binary_values_are_inlined_in_little_endian() {
    let little = dataset_to_json(&common::open("MR_small"), &inline());
    let big = dataset_to_json(&common::open("MR_small_bigendian"), &inline());
    assert!(little["7FE00010"]["InlineBinary"].is_string());
    assert_eq!(
        little["7FE00010"]["InlineBinary"],
        big["7FE00010"]["InlineBinary"]
    );
}

#[test]
fn encapsulated_pixel_data_is_inlined_as_its_items() {
    use base64::Engine;
    let obj = common::open("SC_rgb_rle_2frame");
    let json = dataset_to_json(&obj, &inline());
    assert_eq!(json["7FE00010"]["vr"], "OB");
    let encoded = json["7FE00010"]["InlineBinary"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let DicomValue::PixelSequence(pixels) = obj.get(tags::PIXEL_DATA).unwrap().value() else {
        panic!("expected encapsulated pixel data");
    };
    // First item: the Basic Offset Table (two frames: two offsets).
    assert_eq!(pixels.offset_table().len(), 2);
    assert_eq!(bytes[..8], [0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0]);
    assert_eq!(bytes[8..12], pixels.offset_table()[0].to_le_bytes());
    assert_eq!(bytes[12..16], pixels.offset_table()[1].to_le_bytes());
    // Then one item per fragment.
    let first = &pixels.fragments()[0];
    assert_eq!(bytes[16..20], [0xFE, 0xFF, 0x00, 0xE0]);
    assert_eq!(bytes[20..24], (first.len() as u32).to_le_bytes());
    assert_eq!(&bytes[24..24 + first.len()], &first[..]);
    let expected_len: usize = 16
        + pixels
            .fragments()
            .iter()
            .map(|f| 8 + f.len())
            .sum::<usize>();
    assert_eq!(bytes.len(), expected_len, "no sequence delimiter");
}

#[test]
fn a_sequence_read_under_vr_un_is_written_as_sq() {
    let item = InMemDicomObject::from_element_iter([DataElement::new(
        tags::CODE_VALUE,
        VR::SH,
        PrimitiveValue::from("123"),
    )]);
    let obj = InMemDicomObject::from_element_iter([DataElement::new(
        Tag(0x0011, 0x1010),
        VR::UN,
        DicomValue::Sequence(DataSetSequence::from(vec![item])),
    )]);
    let json = dataset_to_json(&obj, &JsonOptions::default());
    assert_eq!(
        json["00111010"],
        json!({"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["123"]}}]})
    );
}

#[test]
fn sample_instances_have_their_pixel_data_only_by_policy() {
    for name in ["red-triangle", "green-square", "blue-circle"] {
        let path = format!("{}/../../tests/data/{name}.dcm", env!("CARGO_MANIFEST_DIR"));
        let obj = dicom_object::open_file(path).unwrap();
        let omitted = dataset_to_json_bytes(&obj, &JsonOptions::default());
        // ~2.9 MB of pixels must not leak into metadata.
        assert!(omitted.len() < 20_000, "{name}: {} bytes", omitted.len());
        let json: Value = serde_json::from_slice(&omitted).unwrap();
        assert_eq!(
            json["00280002"],
            json!({"vr": "US", "Value": [3]}),
            "{name}: RGB"
        );
        let pixel_vr = obj.get(tags::PIXEL_DATA).unwrap().vr();
        assert!(matches!(pixel_vr, VR::OB | VR::OW));
    }
}

#[test]
fn writer_output_matches_bytes() {
    let obj = common::golden_dataset();
    let mut buffer = b"[".to_vec();
    dicomweb_json::write_dataset_json(&mut buffer, &obj, &inline()).unwrap();
    buffer.push(b']');
    let array: Value = serde_json::from_slice(&buffer).unwrap();
    assert_eq!(array[0], dataset_to_json(&obj, &inline()));
}

/// A data set with a `len`-byte UT value, a short LO, and a long LO list inside an item.
fn with_large_values(len: usize) -> InMemDicomObject {
    let item = InMemDicomObject::from_element_iter([DataElement::new(
        tags::OTHER_PATIENT_NAMES,
        VR::PN,
        PrimitiveValue::Strs(std::iter::repeat_n("Doe^John".to_owned(), len / 8).collect()),
    )]);
    InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::STUDY_DESCRIPTION,
            VR::LO,
            PrimitiveValue::from("short"),
        ),
        DataElement::new(
            tags::REFERENCED_PATIENT_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![item]),
        ),
        DataElement::new(
            tags::TEXT_VALUE,
            VR::UT,
            PrimitiveValue::from("x".repeat(len)),
        ),
    ])
}

#[test]
fn values_over_the_large_value_limit_are_left_out_under_omit() {
    let options = JsonOptions {
        large_value_bytes: Some(1024),
        ..JsonOptions::default()
    };
    let json = dataset_to_json(&with_large_values(4096), &options);
    assert_eq!(json["00081030"], json!({"vr": "LO", "Value": ["short"]}));
    assert!(json.get("0040A160").is_none(), "{json}");
    assert_eq!(attribute(&json, &["00081120", "#0"]), json!({}));
}

#[test]
fn values_at_the_large_value_limit_are_written_whole() {
    let options = JsonOptions {
        large_value_bytes: Some(4096),
        ..JsonOptions::default()
    };
    let json = dataset_to_json(&with_large_values(4096), &options);
    assert_eq!(json["0040A160"]["Value"][0].as_str().unwrap().len(), 4096);
}

#[test]
fn values_over_the_large_value_limit_get_a_bulk_data_uri_under_uri() {
    let options = JsonOptions {
        bulk_data: BulkDataPolicy::Uri {
            base: "https://pacs/studies/1/series/2/instances/3".into(),
        },
        large_value_bytes: Some(1024),
    };
    let json = dataset_to_json(&with_large_values(4096), &options);
    let base = "https://pacs/studies/1/series/2/instances/3/bulkdata";
    assert_eq!(
        json["0040A160"],
        json!({"vr": "UT", "BulkDataURI": format!("{base}/0040A160")})
    );
    assert_eq!(
        attribute(&json, &["00081120", "#0", "00101001"]),
        json!({"vr": "PN", "BulkDataURI": format!("{base}/00081120.0.00101001")})
    );
    assert_eq!(json["00081030"], json!({"vr": "LO", "Value": ["short"]}));
}

#[test]
fn inline_keeps_large_text_values_since_inline_binary_is_for_binary_vrs() {
    let options = JsonOptions {
        large_value_bytes: Some(1024),
        ..inline()
    };
    let json = dataset_to_json(&with_large_values(4096), &options);
    assert_eq!(json["0040A160"]["Value"][0].as_str().unwrap().len(), 4096);
}

#[test]
fn writing_within_a_limit_stops_past_it_and_otherwise_writes_the_same_document() {
    let obj = with_large_values(4096);
    let options = JsonOptions::default();
    let whole = dataset_to_json_bytes(&obj, &options);
    assert_eq!(
        dicomweb_json::dataset_to_json_bytes_within(&obj, &options, whole.len()),
        Ok(whole.clone())
    );
    assert_eq!(
        dicomweb_json::dataset_to_json_bytes_within(&obj, &options, whole.len() - 1),
        Err(dicomweb_json::TooLarge {
            limit: whole.len() - 1
        })
    );
}
