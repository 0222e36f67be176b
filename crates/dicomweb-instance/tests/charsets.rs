//! Text values come out as Unicode whatever the Specific Character Set (0008,0005), ISO 2022 code extensions
//! included (PS3.5 6.1.2.5, Annexes H, I, J), cross-checked against pydicom on its charset test files.

mod common;

use common::*;
use dicom_core::Tag;
use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicomweb_instance::inspect;

/// The value of `tag` as one string (values joined by `\`), each value's padding trimmed.
fn decoded(object: &InMemDicomObject, tag: Tag) -> String {
    let value = object
        .element(tag)
        .unwrap_or_else(|_| panic!("{tag} is missing"))
        .to_str()
        .unwrap();
    value
        .split('\\')
        .map(|v| v.trim_matches(['\0', ' ']))
        .collect::<Vec<_>>()
        .join("\\")
}

/// "(0010,0010)" or "(0032,1064)/0/(0010,0010)": an element, possibly inside sequence items.
fn at_path(root: &InMemDicomObject, path: &str) -> String {
    let parse_tag = |s: &str| {
        let s = s.trim_matches(['(', ')']);
        let (group, element) = s.split_once(',').unwrap();
        Tag(
            u16::from_str_radix(group, 16).unwrap(),
            u16::from_str_radix(element, 16).unwrap(),
        )
    };
    let parts: Vec<&str> = path.split('/').collect();
    let mut object = root;
    for step in parts.chunks(2) {
        let tag = parse_tag(step[0]);
        let [_, index] = step else {
            return decoded(object, tag);
        };
        let Value::Sequence(sequence) = object.element(tag).unwrap().value() else {
            panic!("{path}: {tag} is not a sequence");
        };
        object = &sequence.items()[index.parse::<usize>().unwrap()];
    }
    unreachable!("{path} ends with an item")
}

/// Every file of pydicom's charset test set: Latin-1, Arabic, Greek, Hebrew, Cyrillic, UTF-8, GB18030 without
/// code extensions; Japanese (IR 13, 87), Korean (IR 149) with them; and items with their own character set.
#[test]
fn every_text_value_of_pydicoms_charset_files_decodes_as_pydicom_decodes_it() {
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(local_sample("charset/expected.json")).unwrap(),
    )
    .unwrap();
    let files = expected.as_object().unwrap();
    assert_eq!(files.len(), 17);
    for (file, values) in files {
        let bytes = std::fs::read(local_sample(&format!("charset/{file}"))).unwrap();
        let info = inspect(bytes.as_slice()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(info.warnings.is_empty(), "{file}: {:?}", info.warnings);
        for entry in values.as_array().unwrap() {
            let path = entry[0].as_str().unwrap();
            let pydicom: Vec<&str> = entry[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().trim_matches(['\0', ' ']))
                .collect();
            // pydicom shows person names without their empty trailing component groups.
            let ours = at_path(&info.dataset, path);
            let ours: Vec<&str> = ours.split('\\').map(|v| v.trim_end_matches('=')).collect();
            assert_eq!(ours, pydicom, "{file} {path}");
        }
    }
}

fn inspect_name(charset: &str, name: &[u8]) -> dicomweb_instance::InstanceInfo {
    let bytes = instance(&[
        text(0x0008, 0x0005, "CS", charset),
        element(0x0010, 0x0010, "PN", name),
    ]);
    inspect(bytes.as_slice()).unwrap()
}

#[test]
fn japanese_person_name_of_annex_h_is_unicode() {
    // PS3.5 H.3.1, byte for byte: each ideographic and phonetic component is switched to JIS X 0208 with
    // ESC $ B and back to ASCII with ESC ( B before the next delimiter.
    let info = inspect_name(
        "\\ISO 2022 IR 87",
        b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B",
    );
    assert_eq!(
        decoded(&info.dataset, tags::PATIENT_NAME),
        "Yamada^Tarou=山田^太郎=やまだ^たろう"
    );
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
}

#[test]
fn japanese_half_width_katakana_and_jis_x_0212() {
    // PS3.5 H.3.2: G1 is JIS X 0201 Katakana from value 1 (ISO 2022 IR 13); ESC ( J returns G0 to Romaji.
    let info = inspect_name(
        "ISO 2022 IR 13\\ISO 2022 IR 87",
        b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J=\x1b$B$d$^$@\x1b(J^\x1b$B$?$m$&\x1b(J",
    );
    assert_eq!(
        decoded(&info.dataset, tags::PATIENT_NAME),
        "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"
    );
    // JIS X 0212 (ISO 2022 IR 159, ESC $ ( D): 0x2B21 is "á" (U+00E1), 0x3021 is 丂 (U+4E02).
    let info = inspect_name(
        "\\ISO 2022 IR 87\\ISO 2022 IR 159",
        b"\x1b$(D+!0!\x1b(B^\x1b$B;3\x1b(B",
    );
    assert_eq!(decoded(&info.dataset, tags::PATIENT_NAME), "á丂^山");
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
}

#[test]
fn korean_person_name_of_annex_i_is_unicode() {
    // PS3.5 I.2: KS X 1001 is designated to G1 (ESC $ ) C) at the start of each component that uses it.
    let info = inspect_name(
        "\\ISO 2022 IR 149",
        b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf",
    );
    assert_eq!(
        decoded(&info.dataset, tags::PATIENT_NAME),
        "Hong^Gildong=洪^吉洞=홍^길동"
    );
}

#[test]
fn chinese_person_name_of_annex_j_is_unicode() {
    // PS3.5 J.3: GB 2312 designated to G1 (ESC $ ) A), value 2 of "\ISO 2022 IR 58".
    let info = inspect_name(
        "\\ISO 2022 IR 58",
        b"Zhang^XiaoDong=\x1b$)A\xd5\xc5^\x1b$)A\xd0\xa1\xb6\xab=",
    );
    assert_eq!(
        decoded(&info.dataset, tags::PATIENT_NAME),
        "Zhang^XiaoDong=张^小东="
    );
}

#[test]
fn single_byte_sets_with_code_extensions_switch_per_component() {
    // Value 1 gives G1 at the start of every component; ESC - x designates another right half.
    for (charset, bytes, expected) in [
        (
            "ISO 2022 IR 100\\ISO 2022 IR 144",
            &b"Buc^J\xe9r\xf4me=\x1b-L\xbb\xee\xdace"[..],
            "Buc^Jérôme=Люкce",
        ),
        ("ISO 2022 IR 101", b"\xb1\xe6", "ąć"),
        ("ISO 2022 IR 109", b"\xa1", "Ħ"),
        ("ISO 2022 IR 110", b"\xa1", "Ą"),
        ("ISO 2022 IR 126", b"\xc4\xe9", "Δι"),
        ("ISO 2022 IR 127", b"\xe2\xc8", "قب"),
        ("ISO 2022 IR 138", b"\xf9\xf8", "שר"),
        ("ISO 2022 IR 148", b"\xdd\xfe", "İş"),
        ("ISO 2022 IR 166", b"\xa1\xa2", "กข"),
        ("ISO 2022 IR 13", b"\xb1", "ｱ"),
        ("ISO 2022 IR 6\\ISO 2022 IR 126", b"A\x1b-F\xc4", "AΔ"),
        ("\\ISO 2022 IR 100", b"\x1b-A\xe9^\xe9", "é^\u{FFFD}"),
    ] {
        let bytes = instance(&[
            text(0x0008, 0x0005, "CS", charset),
            element(0x0010, 0x0010, "PN", bytes),
        ]);
        let info = inspect(bytes.as_slice()).unwrap();
        assert_eq!(
            decoded(&info.dataset, tags::PATIENT_NAME),
            expected,
            "{charset}"
        );
    }
}

#[test]
fn values_are_split_and_other_text_vrs_are_decoded_too() {
    let bytes = instance(&[
        text(0x0008, 0x0005, "CS", "\\ISO 2022 IR 87"),
        element(0x0008, 0x1030, "LO", b"\x1b$B;3\x1b(B\\\x1b$BED\x1b(B"),
        element(0x0010, 0x1001, "PN", b"\x1b$B;3\x1b(B\\\x1b$BED\x1b(B"),
        element(0x0010, 0x21B0, "LT", b"\x1b$B;3\x1b(B\r\n\\"),
        // Not affected by the character set: read as ASCII.
        text(0x0020, 0x0010, "SH", "ID-1"),
    ]);
    let info = inspect(bytes.as_slice()).unwrap();
    let dataset = &info.dataset;
    let values = |tag| {
        dataset
            .element(tag)
            .unwrap()
            .value()
            .to_multi_str()
            .unwrap()
            .into_owned()
    };
    assert_eq!(values(tags::STUDY_DESCRIPTION), ["山", "田"]);
    assert_eq!(values(tags::OTHER_PATIENT_NAMES), ["山", "田"]);
    // LT is one value: '\' is text there.
    assert_eq!(values(tags::ADDITIONAL_PATIENT_HISTORY), ["山\r\n\\"]);
    assert_eq!(decoded(dataset, tags::STUDY_ID), "ID-1");
}

#[test]
fn an_item_may_declare_its_own_character_set_for_itself_only() {
    let item = [
        text(0x0008, 0x0005, "CS", "\\ISO 2022 IR 87"),
        element(0x0010, 0x0010, "PN", b"\x1b$B;3ED\x1b(B"),
    ]
    .concat();
    let bytes = instance(&[
        text(0x0008, 0x0005, "CS", "ISO_IR 100"),
        sequence(0x0032, 0x1064, &[item]),
        element(0x0040, 0x0254, "LO", b"J\xe9r\xf4me"),
    ]);
    let info = inspect(bytes.as_slice()).unwrap();
    assert_eq!(at_path(&info.dataset, "(0032,1064)/0/(0010,0010)"), "山田");
    // After the item, Latin-1 again.
    assert_eq!(
        decoded(&info.dataset, tags::PERFORMED_PROCEDURE_STEP_DESCRIPTION),
        "Jérôme"
    );
}

#[test]
fn undecodable_text_is_replaced_and_warned_about_never_rejected() {
    for (name, expected) in [
        // Unknown escape sequence: replaced, the rest decoded.
        (&b"A\x1b%GB^\x1b$B;3\x1b(B"[..], "A\u{FFFD}B^山"),
        // Escape sequence cut off by the end of the value.
        (b"Yamada\x1b$", "Yamada\u{FFFD}"),
        // A byte with the high bit set and no G1 set designated.
        (b"Caf\xe9", "Caf\u{FFFD}"),
        // Half a JIS X 0208 character.
        (b"\x1b$B;\x1b(B", "\u{FFFD}"),
    ] {
        let info = inspect_name("\\ISO 2022 IR 87", name);
        assert_eq!(decoded(&info.dataset, tags::PATIENT_NAME), expected);
        assert_eq!(info.warnings.len(), 1, "{:?}", info.warnings);
        assert!(
            info.warnings[0].starts_with("DICOM100: (0010,0010) - Content \"")
                && info.warnings[0].contains("ISO 2022 IR 87"),
            "{}",
            info.warnings[0]
        );
    }
    assert_eq!(
        inspect_name("\\ISO 2022 IR 87", b"A\x1b%GB").warnings,
        [
            "DICOM100: (0010,0010) - Content \"A\u{FFFD}B\" could not be fully decoded with Specific Character \
          Set \"\\ISO 2022 IR 87\": unknown escape sequence (replaced by U+FFFD)"
        ]
    );
    let info = inspect_name("ISO_IR 999", b"Doe^John");
    assert_eq!(decoded(&info.dataset, tags::PATIENT_NAME), "Doe^John");
    assert!(
        info.warnings
            .iter()
            .any(|w| w.starts_with("DICOM100: (0008,0005)") && w.contains("ISO_IR 999")),
        "{:?}",
        info.warnings
    );
}

#[test]
fn character_sets_without_code_extensions_keep_decoding_as_before() {
    for (charset, bytes, expected) in [
        ("", &b"Doe^John"[..], "Doe^John"),
        ("ISO_IR 100", b"Buc^J\xe9r\xf4me", "Buc^Jérôme"),
        ("ISO_IR 144", b"\xbb\xee\xdace", "Люкce"),
        (
            "ISO_IR 192",
            "Wang^XiaoDong=王^小東".as_bytes(),
            "Wang^XiaoDong=王^小東",
        ),
        (
            "GB18030",
            b"Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab",
            "Wang^XiaoDong=王^小东",
        ),
    ] {
        let info = inspect_name(charset, bytes);
        assert_eq!(
            decoded(&info.dataset, tags::PATIENT_NAME),
            expected,
            "{charset}"
        );
        assert!(info.warnings.is_empty(), "{charset}: {:?}", info.warnings);
    }
}
