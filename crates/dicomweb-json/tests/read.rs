//! How DICOM JSON is read back into data sets, and what is rejected.

mod common;

use dicom_core::{DicomValue, PrimitiveValue, Tag, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicomweb_json::{
    AttributeProblem, BulkDataPolicy, JsonError, JsonOptions, bulk_data_uri, dataset_from_json,
    dataset_from_json_slice, dataset_to_json, retain_tags,
};
use serde_json::{Value, json};

fn all_policies() -> [JsonOptions; 3] {
    [
        JsonOptions::default(),
        JsonOptions {
            bulk_data: BulkDataPolicy::Inline,
            ..JsonOptions::default()
        },
        JsonOptions {
            bulk_data: BulkDataPolicy::Uri {
                base: "http://localhost/studies/1/series/2/instances/3".into(),
            },
            ..JsonOptions::default()
        },
    ]
}

fn primitive(json: Value, tag: Tag) -> PrimitiveValue {
    let obj = dataset_from_json(&json).unwrap();
    obj.get(tag).unwrap().value().primitive().unwrap().clone()
}

fn error_message(json: Value) -> String {
    dataset_from_json(&json).unwrap_err().to_string()
}

/// JSON -> data set -> JSON reproduces the document exactly, for every test file dicom-object
/// can open and every bulk data policy (BulkDataURIs are kept, InlineBinary is decoded and
/// re-encoded, encapsulated pixel data is rebuilt from its items).
#[test]
fn json_round_trips_through_a_dataset_for_every_test_file() {
    let files = common::test_files();
    assert!(files.len() >= 20, "only {} test files opened", files.len());
    for (name, obj) in files {
        for options in all_policies() {
            let first = dataset_to_json(&obj, &options);
            let read =
                dataset_from_json(&first).unwrap_or_else(|e| panic!("{name} ({options:?}): {e}"));
            let second = dataset_to_json(&read, &options);
            assert!(
                first == second,
                "{name} ({options:?}) changed on round trip"
            );
        }
    }
}

#[test]
fn golden_dataset_round_trips() {
    for options in all_policies() {
        let first = dataset_to_json(&common::golden_dataset(), &options);
        let second = dataset_to_json(&dataset_from_json(&first).unwrap(), &options);
        assert_eq!(first, second, "{options:?}");
    }
}

#[test]
fn values_are_read_into_the_shapes_dicom_rs_reads_from_files() {
    let json = json!({
        "00080008": {"vr": "CS", "Value": ["ORIGINAL", null, "AXIAL"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Yamada^Tarou", "Phonetic": "やまだ^たろう"}]},
        "00101001": {"vr": "PN", "Value": ["Doe^John", null, {}]},
        "00104000": {"vr": "LT", "Value": ["C:\\dir"]},
        "00200013": {"vr": "IS", "Value": [12]},
        "00180050": {"vr": "DS", "Value": [512, 1.5, 1e-20, 2.0, "1.2500"]},
        "00280010": {"vr": "US", "Value": [512, "7"]},
        "00280009": {"vr": "AT", "Value": ["00181063", "0054000a"]},
        "00091001": {"vr": "FL", "Value": [0.1, "NaN", "-Infinity"]},
        "00091002": {"vr": "UV", "Value": ["1152921504606846976"]},
        "7FE00010": {"vr": "OW", "InlineBinary": "AgEEAw=="},
        "00091004": {"vr": "OF", "InlineBinary": ["AACAPw=="]},
    });
    let obj = dataset_from_json(&json).unwrap();
    let value = |tag: Tag| obj.get(tag).unwrap().value().primitive().unwrap().clone();
    assert_eq!(
        value(tags::IMAGE_TYPE),
        dicom_value!(Strs, ["ORIGINAL", "", "AXIAL"])
    );
    assert_eq!(
        value(tags::PATIENT_NAME).to_str(),
        "Yamada^Tarou==やまだ^たろう"
    );
    assert_eq!(value(tags::OTHER_PATIENT_NAMES).to_str(), "Doe^John\\\\");
    assert_eq!(
        value(tags::PATIENT_COMMENTS),
        PrimitiveValue::Str("C:\\dir".into())
    );
    assert_eq!(value(tags::INSTANCE_NUMBER).to_str(), "12");
    // DS keeps a float's ".0" so it is written back as the same JSON number.
    assert_eq!(
        value(tags::SLICE_THICKNESS).to_str(),
        "512\\1.5\\1e-20\\2.0\\1.2500"
    );
    assert_eq!(value(tags::ROWS), dicom_value!(U16, [512, 7]));
    assert_eq!(
        value(tags::FRAME_INCREMENT_POINTER),
        dicom_value!(Tags, [tags::FRAME_TIME, Tag(0x0054, 0x000A)])
    );
    let PrimitiveValue::F32(floats) = value(Tag(0x0009, 0x1001)) else {
        panic!()
    };
    assert_eq!(floats[0], 0.1f32);
    assert!(floats[1].is_nan());
    assert_eq!(floats[2], f32::NEG_INFINITY);
    assert_eq!(value(Tag(0x0009, 0x1002)), dicom_value!(U64, [1 << 60]));
    assert_eq!(value(tags::PIXEL_DATA), dicom_value!(U16, [0x0102, 0x0304]));
    assert_eq!(value(Tag(0x0009, 0x1004)), dicom_value!(F32, [1.0]));
}

#[test]
fn empty_attributes_and_sequences() {
    let obj = dataset_from_json(&json!({
        "00080090": {"vr": "PN"},
        "00100020": {"vr": "LO", "Value": []},
        "00100030": {"vr": "DA", "Value": null},
        "00081032": {"vr": "SQ"},
        "00081115": {"vr": "SQ", "Value": [null, {}]},
    }))
    .unwrap();
    for tag in [
        tags::REFERRING_PHYSICIAN_NAME,
        tags::PATIENT_ID,
        tags::PATIENT_BIRTH_DATE,
    ] {
        assert_eq!(
            obj.get(tag).unwrap().value(),
            &DicomValue::Primitive(PrimitiveValue::Empty)
        );
    }
    assert_eq!(
        obj.get(tags::PROCEDURE_CODE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()
            .len(),
        0
    );
    let items = obj
        .get(tags::REFERENCED_SERIES_SEQUENCE)
        .unwrap()
        .items()
        .unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|item| item.iter().next().is_none()));
}

#[test]
fn file_meta_and_group_lengths_are_ignored() {
    let obj = dataset_from_json(&json!({
        "00020010": {"vr": "UI", "Value": ["1.2.840.10008.1.2.1"]},
        "00080000": {"vr": "UL", "Value": [12]},
        "00080060": {"vr": "CS", "Value": ["CT"]},
    }))
    .unwrap();
    assert_eq!(obj.tags().collect::<Vec<_>>(), [tags::MODALITY]);
}

#[test]
fn bulk_data_uri_is_kept_and_written_back() {
    let uri = "http://elsewhere/bulk/abc";
    let json = json!({
        "00081115": {"vr": "SQ", "Value": [{"00091010": {"vr": "OB", "BulkDataURI": uri}}]},
        "7FE00010": {"vr": "OW", "BulkDataURI": [uri]},
    });
    let obj = dataset_from_json(&json).unwrap();
    assert_eq!(bulk_data_uri(obj.get(tags::PIXEL_DATA).unwrap()), Some(uri));
    let item = &obj
        .get(tags::REFERENCED_SERIES_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0];
    assert_eq!(
        bulk_data_uri(item.get(Tag(0x0009, 0x1010)).unwrap()),
        Some(uri)
    );
    // Ordinary values are not URIs.
    assert_eq!(
        bulk_data_uri(common::golden_dataset().get(tags::PIXEL_DATA).unwrap()),
        None
    );

    // Without bytes there is nothing to inline: the original URI is written, whatever the
    // policy, unless bulk data is omitted.
    for options in &all_policies()[1..] {
        let written = dataset_to_json(&obj, options);
        assert_eq!(written["7FE00010"], json!({"vr": "OW", "BulkDataURI": uri}));
    }
    let omitted = dataset_to_json(&obj, &JsonOptions::default());
    assert!(omitted.get("7FE00010").is_none());
}

#[test]
fn encapsulated_inline_pixel_data_is_read_back_into_fragments() {
    let obj = common::open("JPEG2000");
    let options = JsonOptions {
        bulk_data: BulkDataPolicy::Inline,
        ..JsonOptions::default()
    };
    let read = dataset_from_json(&dataset_to_json(&obj, &options)).unwrap();
    let (DicomValue::PixelSequence(original), DicomValue::PixelSequence(decoded)) = (
        obj.get(tags::PIXEL_DATA).unwrap().value(),
        read.get(tags::PIXEL_DATA).unwrap().value(),
    ) else {
        panic!("expected encapsulated pixel data on both sides");
    };
    assert_eq!(original.offset_table(), decoded.offset_table());
    assert_eq!(original.fragments(), decoded.fragments());
    assert_eq!(read.get(tags::PIXEL_DATA).unwrap().vr(), VR::OB);
}

#[test]
fn base64_without_padding_or_with_line_breaks_is_accepted() {
    let tag = Tag(0x0009, 0x1010);
    for encoded in ["yv4", "yv4=", "y\r\nv4="] {
        let value = primitive(
            json!({"00091010": {"vr": "OB", "InlineBinary": encoded}}),
            tag,
        );
        assert_eq!(value, dicom_value!(U8, [0xCA, 0xFE]), "{encoded:?}");
    }
}

#[test]
fn errors_name_the_attribute_and_the_problem() {
    assert_eq!(
        error_message(json!({"00280010": {"vr": "US", "Value": [70000]}})),
        "attribute (0028,0010): Value[0] is not valid for VR US: expected an integer within the VR's range"
    );
    assert_eq!(
        error_message(
            json!({"00081115": {"vr": "SQ", "Value": [{}, {"0020000E": {"Value": ["1.2"]}}]}})
        ),
        "attribute (0008,1115)[1].(0020,000E): missing \"vr\""
    );
    assert_eq!(
        error_message(json!({"00100010": {"vr": "XX"}})),
        "attribute (0010,0010): unknown VR \"XX\""
    );
    assert_eq!(
        error_message(json!({"PatientName": {"vr": "PN"}})),
        "invalid attribute key \"PatientName\" at the top level: expected a tag as 8 hexadecimal digits (\"GGGGEEEE\")"
    );
    assert_eq!(
        error_message(json!({"00081115": {"vr": "SQ", "Value": [{"0020000": {"vr": "UI"}}]}})),
        "invalid attribute key \"0020000\" in sequence item (0008,1115)[0]: expected a tag as 8 hexadecimal digits (\"GGGGEEEE\")"
    );
    assert_eq!(
        error_message(json!({"00081115": {"vr": "SQ", "Value": [1]}})),
        "expected a DICOM JSON object (attributes keyed by tag) in sequence item (0008,1115)[0]"
    );
    assert_eq!(
        error_message(json!([])),
        "expected a DICOM JSON object (attributes keyed by tag) at the top level"
    );
    assert_eq!(
        error_message(json!({"7FE00010": {"vr": "OB", "Value": [1], "InlineBinary": "AA=="}})),
        "attribute (7FE0,0010): has more than one of \"Value\", \"InlineBinary\" and \"BulkDataURI\""
    );
    assert_eq!(
        error_message(json!({"00104000": {"vr": "LT", "BulkDataURI": "http://x"}})),
        "attribute (0010,4000): \"BulkDataURI\" is not supported for VR LT"
    );
    assert_eq!(
        error_message(json!({"00100010": {"vr": "PN", "InlineBinary": "AA=="}})),
        "attribute (0010,0010): \"InlineBinary\" is not supported for VR PN"
    );
    assert_eq!(
        error_message(json!({"00091004": {"vr": "OW", "InlineBinary": "AAAA"}})),
        "attribute (0009,1004): \"InlineBinary\" has 3 bytes, not a multiple of 2 as VR OW requires"
    );
    assert!(
        error_message(json!({"00091004": {"vr": "OB", "InlineBinary": "**"}}))
            .starts_with("attribute (0009,1004): \"InlineBinary\" is not valid base64")
    );
    assert_eq!(
        error_message(json!({"00104000": {"vr": "LT", "Value": ["a", "b"]}})),
        "attribute (0010,4000): VR LT holds a single value but \"Value\" has 2"
    );
    assert_eq!(
        error_message(json!({"00080060": {"vr": "CS", "Value": "CT"}})),
        "attribute (0008,0060): \"Value\" must be an array"
    );
    assert_eq!(
        error_message(json!({"00200013": {"vr": "IS", "Value": [1.5]}})),
        "attribute (0020,0013): Value[0] is not valid for VR IS: expected a number"
    );
    assert_eq!(
        error_message(json!({"00280009": {"vr": "AT", "Value": ["(0018,1063)"]}})),
        "attribute (0028,0009): Value[0] is not valid for VR AT: expected a tag string \"GGGGEEEE\""
    );
    assert!(matches!(
        dataset_from_json(&json!({"00091005": {"vr": "UN", "Value": [1]}})),
        Err(JsonError::Attribute {
            problem: AttributeProblem::FieldNotAllowed {
                field: "Value",
                vr: VR::UN
            },
            ..
        })
    ));
}

#[test]
fn invalid_json_bytes_are_a_syntax_error() {
    let err = dataset_from_json_slice(b"{\"00100010\": ").unwrap_err();
    assert!(matches!(err, JsonError::Syntax(_)), "{err:?}");
    assert!(err.to_string().starts_with("invalid JSON"));
}

#[test]
fn slice_and_value_readers_agree() {
    let bytes =
        dicomweb_json::dataset_to_json_bytes(&common::golden_dataset(), &JsonOptions::default());
    let from_slice = dataset_from_json_slice(&bytes).unwrap();
    let from_value = dataset_from_json(&serde_json::from_slice(&bytes).unwrap()).unwrap();
    // Compared through JSON: NaN values make the data sets themselves unequal to each other.
    let options = JsonOptions::default();
    assert_eq!(
        dataset_to_json(&from_slice, &options),
        dataset_to_json(&from_value, &options)
    );
}

#[test]
fn retain_tags_filters_the_top_level_only_and_keeps_order() {
    let mut json = dataset_to_json(&common::golden_dataset(), &JsonOptions::default());
    let object = json.as_object_mut().unwrap();
    object.insert("not-a-tag".into(), json!(1));
    let keep = |tag: u32| matches!(tag, 0x0010_0010 | 0x0008_1115 | 0x0020_0013 | 0x0008_0020);
    retain_tags(object, &keep);
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(keys, ["00080020", "00081115", "00100010", "00200013"]);
    // Items of a kept sequence are untouched.
    assert!(object["00081115"]["Value"][0].get("0020000E").is_some());
}
