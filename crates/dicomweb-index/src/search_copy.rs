//! The search copy of an instance's metadata: the bounded part of its DICOM JSON that the index
//! keeps, and that search hits carry, instead of the whole metadata.
//!
//! An instance's metadata ([`InstanceRecord::metadata`](crate::InstanceRecord)) may be up to a
//! few MiB of DICOM JSON (the service allows 4 MiB). A search hit carries up to three instances'
//! metadata (its own, its series' latest, its study's latest) and a page holds up to a few
//! hundred hits, so whole metadata would let one page hold gigabytes, copied again into the
//! response by `includefield=all`; and the index would grow with every large instance stored.
//! The index therefore keeps [`search_copy`] of each instance's metadata, at most
//! [`SEARCH_COPY_BYTES`]: a page of 200 hits holds at most 200 x 3 x 64 KiB. The whole metadata
//! stays with the catalogue of record (WADO-RS metadata reads it there, not here).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Largest search copy, in bytes of JSON: metadata up to this size is kept whole.
pub const SEARCH_COPY_BYTES: usize = 64 * 1024;

/// Largest attribute value (its raw JSON, the `{"vr":...}` object) kept in a trimmed copy.
pub const SEARCH_COPY_VALUE_BYTES: usize = 4 * 1024;

/// The part of `metadata` (an instance's DICOM JSON object) that the index keeps and search hits
/// carry; never longer than [`SEARCH_COPY_BYTES`] unless it is `metadata` itself, which is then
/// at most that long.
///
/// - Metadata of at most [`SEARCH_COPY_BYTES`] is returned as is, borrowed, without being parsed
///   (the common case: this runs for every stored instance).
/// - Larger metadata is trimmed: of its top-level attributes, in their order, are kept those
///   whose key is the tag of a standard attribute (8 hex digits, even group) and whose value's
///   raw JSON is at most [`SEARCH_COPY_VALUE_BYTES`], as long as the copy stays within
///   [`SEARCH_COPY_BYTES`] (an attribute that would overflow it is left out, and smaller ones
///   after it may still be kept). Private attributes (odd group) and any other key are left out.
///   Kept values are copied byte for byte; the copy is compact JSON (`{"key":value,...}`).
/// - Large metadata that is not a JSON object gives an empty object, `{}`.
///
/// So a search (QIDO-RS, `includefield=all` included) of a large instance returns its small
/// standard attributes but not its large values or private attributes; what it matches on is
/// unaffected (matching uses the record's attributes, not its metadata). Applying it to a copy
/// changes nothing: the copy is returned as is.
///
/// The index applies it wherever metadata enters it (instance documents, the latest instance's
/// metadata on study and series summaries, the in-memory documents of changes not yet
/// committed, which thus answer as they will once committed) and to what it reads back: the
/// records of [`Index::instances`](crate::Index::instances), [`Index::instance`](crate::Index::instance)
/// and [`Index::delete`](crate::Index::delete) carry the search copy as their metadata, not the
/// whole metadata. An index written before keeps the whole metadata it stored (no rebuild is
/// needed); reads trim it the same way.
pub fn search_copy(metadata: &[u8]) -> Cow<'_, [u8]> {
    if metadata.len() <= SEARCH_COPY_BYTES {
        return Cow::Borrowed(metadata);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(metadata);
    let trimmed = (&mut deserializer)
        .deserialize_map(Trim)
        .and_then(|copy| deserializer.end().map(|()| copy));
    Cow::Owned(trimmed.unwrap_or_else(|_| b"{}".to_vec()))
}

/// Whether `key` is the tag of a standard attribute: 8 hex digits, the group's (the first 4)
/// even.
fn is_standard_tag(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 8
        && bytes.iter().all(u8::is_ascii_hexdigit)
        && char::from(bytes[3])
            .to_digit(16)
            .is_some_and(|d| d % 2 == 0)
}

/// A top-level key as it appears in the JSON text: `None` if it has escapes (no tag has).
struct Key<'a>(Option<&'a str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an attribute key")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Some(key)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Key<'de>, E> {
                Ok(Key(None))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Builds the trimmed copy while reading the object, values left unparsed (borrowed raw JSON).
struct Trim;

impl<'de> Visitor<'de> for Trim {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a DICOM JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<u8>, A::Error> {
        let mut copy = Vec::with_capacity(SEARCH_COPY_BYTES);
        copy.push(b'{');
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            let Some(key) = key.filter(|key| is_standard_tag(key)) else {
                continue;
            };
            let value = value.get();
            if value.len() > SEARCH_COPY_VALUE_BYTES {
                continue;
            }
            let first = copy.len() == 1;
            // [,]"key":value, and the closing brace still to come.
            let needed = usize::from(!first) + key.len() + 3 + value.len() + 1;
            if copy.len() + needed > SEARCH_COPY_BYTES {
                continue;
            }
            if !first {
                copy.push(b',');
            }
            copy.push(b'"');
            copy.extend_from_slice(key.as_bytes());
            copy.extend_from_slice(b"\":");
            copy.extend_from_slice(value.as_bytes());
        }
        copy.push(b'}');
        Ok(copy)
    }
}

#[cfg(test)]
mod tests {
    //! What the search copy keeps of an instance's metadata.

    use proptest::prelude::*;

    use super::*;

    /// `"key":value` with a text value whose raw JSON is exactly `value_bytes` long (at least 32).
    fn attribute(key: &str, value_bytes: usize) -> String {
        let frame = r#"{"vr":"LT","Value":[""]}"#.len();
        format!(
            r#""{key}":{{"vr":"LT","Value":["{}"]}}"#,
            "x".repeat(value_bytes - frame)
        )
    }

    fn object(attributes: &[String]) -> Vec<u8> {
        format!("{{{}}}", attributes.join(",")).into_bytes()
    }

    /// The top-level entries of a JSON object, values as raw JSON text.
    fn entries(json: &[u8]) -> Vec<(String, String)> {
        raw_entries(json)
            .expect("a JSON object")
            .into_iter()
            .map(|(key, value)| (key, value.get().to_owned()))
            .collect()
    }

    /// Every entry, duplicates included, in order (a `Map` would merge duplicate keys).
    fn raw_entries(json: &[u8]) -> serde_json::Result<Vec<(String, Box<RawValue>)>> {
        struct All;
        impl<'de> Visitor<'de> for All {
            type Value = Vec<(String, Box<RawValue>)>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut all = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    all.push(entry);
                }
                Ok(all)
            }
        }
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let all = (&mut deserializer).deserialize_map(All)?;
        deserializer.end()?;
        Ok(all)
    }

    #[test]
    fn small_metadata_is_kept_borrowed_and_byte_identical() {
        // Private attributes, odd spacing, even invalid JSON: small metadata is not looked at.
        for metadata in [
            &br#"{"00100010":{"vr":"PN","Value":[{"Alphabetic":"Doe^John"}]}}"#[..],
            br#"{ "00091001" : {"vr":"LO","Value":["private"]} }"#,
            b"not json",
            b"",
        ] {
            let copy = search_copy(metadata);
            assert!(matches!(copy, Cow::Borrowed(_)));
            assert_eq!(&*copy, metadata);
        }
        let at_the_bound = object(&[attribute("7FE00010", SEARCH_COPY_BYTES - 13)]);
        assert_eq!(at_the_bound.len(), SEARCH_COPY_BYTES);
        assert!(matches!(search_copy(&at_the_bound), Cow::Borrowed(_)));
    }

    #[test]
    fn a_large_object_keeps_its_small_standard_attributes_only() {
        let name = r#""00100010":{"vr":"PN","Value":[{"Alphabetic":"Doe^John"}]}"#;
        let study = r#""0020000D":{"vr":"UI","Value":["1.2.3"]}"#;
        let empty = r#""00081030":{"vr":"LO"}"#;
        let metadata = object(&[
            name.to_owned(),
            attribute("00204000", 10 * 1024),
            attribute("00091010", 100),
            r#""0009,1011":{"vr":"LO"}"#.to_owned(),
            r#""PatientID":{"vr":"LO"}"#.to_owned(),
            attribute("00081040", SEARCH_COPY_VALUE_BYTES + 1),
            attribute("00081041", SEARCH_COPY_VALUE_BYTES),
            study.to_owned(),
            attribute("7FE00010", 100 * 1024),
            empty.to_owned(),
        ]);
        let copy = search_copy(&metadata);
        let expected = object(&[
            name.to_owned(),
            attribute("00081041", SEARCH_COPY_VALUE_BYTES),
            study.to_owned(),
            empty.to_owned(),
        ]);
        assert_eq!(
            String::from_utf8_lossy(&copy),
            String::from_utf8_lossy(&expected)
        );
        serde_json::from_slice::<serde_json::Value>(&copy).expect("valid JSON");
    }

    #[test]
    fn a_trimmed_copy_stays_within_the_bound_and_keeps_later_smaller_attributes() {
        let mut attributes: Vec<String> = (0..100)
            .map(|i| attribute(&format!("0018{i:04X}"), 3 * 1024))
            .collect();
        attributes.push(r#""00100020":{"vr":"LO","Value":["ID1"]}"#.to_owned());
        let metadata = object(&attributes);
        let copy = search_copy(&metadata);
        assert!(copy.len() <= SEARCH_COPY_BYTES, "{} bytes", copy.len());
        let kept = entries(&copy);
        // As many 3 KiB attributes as fit (the first 21), then the small one after them still fits.
        assert_eq!(kept.len(), 22);
        assert_eq!(kept[0].0, "00180000");
        assert_eq!(kept[20].0, "00180014");
        assert_eq!(kept[21].0, "00100020");
        assert!(SEARCH_COPY_BYTES - copy.len() < 3 * 1024);
    }

    #[test]
    fn a_large_input_that_is_not_a_json_object_gives_an_empty_object() {
        let big = "x".repeat(SEARCH_COPY_BYTES + 1);
        let valid = object(&[attribute("00100010", 100), attribute("7FE00010", 70_000)]);
        let mut trailing = valid.clone();
        trailing.extend_from_slice(b" {}");
        let mut truncated = valid.clone();
        truncated.truncate(valid.len() - 1);
        for metadata in [
            big.clone().into_bytes(),
            format!("[\"{big}\"]").into_bytes(),
            format!("\"{big}\"").into_bytes(),
            trailing,
            truncated,
            vec![0xFF; SEARCH_COPY_BYTES + 1],
        ] {
            let copy = search_copy(&metadata);
            assert!(
                &*copy == b"{}",
                "{:?}",
                String::from_utf8_lossy(&copy[..copy.len().min(40)])
            );
        }
        // Whitespace around the object is fine.
        let mut spaced = b"\n ".to_vec();
        spaced.extend_from_slice(&valid);
        spaced.extend_from_slice(b" \n");
        assert_eq!(
            &*search_copy(&spaced),
            &object(&[attribute("00100010", 100)])[..]
        );
    }

    #[test]
    fn keys_that_are_not_standard_tags_are_left_out_of_a_trimmed_copy() {
        for (key, standard) in [
            ("00100010", true),
            ("0008103e", true),
            ("FFFEE000", true),
            ("0002000A", true),
            ("00090010", false),
            ("0011000B", false),
            ("000B0010", false),
            ("000A0010", true),
            ("7FE1", false),
            ("001000100", false),
            ("0010001G", false),
            ("", false),
            ("00１00010", false),
        ] {
            assert_eq!(is_standard_tag(key), standard, "{key}");
        }
        // A key with an escape is never a tag (and is not unescaped to look like one).
        let metadata = object(&[
            r#""\u0030\u0030\u0031\u0030\u0030\u0030\u0031\u0030":{"vr":"PN"}"#.to_owned(),
            attribute("00100020", 100),
            attribute("7FE00010", SEARCH_COPY_BYTES),
        ]);
        assert_eq!(
            &*search_copy(&metadata),
            &object(&[attribute("00100020", 100)])[..]
        );
    }

    /// A key: mostly standard tags, some private, some not tags at all.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => (0u32..0x8000, any::<u16>())
                .prop_map(|(group, element)| format!("{:04X}{element:04X}", group * 2)),
            2 => (0u32..0x8000, any::<u16>())
                .prop_map(|(group, element)| format!("{:04x}{element:04x}", group * 2 + 1)),
            1 => "[0-9A-Fa-f,\\\\\"]{0,10}",
        ]
    }

    /// A value: a DICOM JSON attribute of roughly `size` bytes (as compact or pretty JSON), or
    /// any small JSON value.
    fn value() -> impl Strategy<Value = String> {
        let size = prop_oneof![2 => 0usize..200, 3 => 1000usize..4200, 1 => 4000usize..12_000];
        let text = (
            size,
            prop::sample::select(vec!["a", "é", "\"", "\\", "\n", "山", "\u{1F600}"]),
        )
            .prop_map(|(size, piece)| piece.repeat(size / piece.len().max(1)));
        prop_oneof![
            8 => (text, any::<bool>()).prop_map(|(text, pretty)| {
                let value = serde_json::json!({ "vr": "LT", "Value": [text] });
                if pretty {
                    serde_json::to_string_pretty(&value)
                } else {
                    serde_json::to_string(&value)
                }
                .expect("JSON")
            }),
            1 => prop_oneof![
                Just("null".to_owned()),
                Just("[ 1 , 2 ]".to_owned()),
                Just("{}".to_owned()),
                Just("-1.5e3".to_owned()),
            ],
        ]
    }

    fn metadata() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::collection::vec((key(), value()), 0..160),
            prop::sample::select(vec!["", " ", "\n\t"]),
        )
            .prop_map(|(entries, space)| {
                let entries: Vec<String> = entries
                    .iter()
                    .map(|(key, value)| {
                        let key = serde_json::to_string(key).expect("JSON");
                        format!("{space}{key}{space}:{space}{value}")
                    })
                    .collect();
                format!("{{{}{space}}}", entries.join(",")).into_bytes()
            })
    }

    proptest! {
        #[test]
        fn a_search_copy_is_a_bounded_json_object_of_the_input_s_own_attributes(
            metadata in metadata(),
        ) {
            let copy = search_copy(&metadata);
            if metadata.len() <= SEARCH_COPY_BYTES {
                prop_assert!(matches!(copy, Cow::Borrowed(_)));
                prop_assert_eq!(&*copy, &metadata[..]);
                return Ok(());
            }
            prop_assert!(copy.len() <= SEARCH_COPY_BYTES, "{} bytes", copy.len());
            let input = entries(&metadata);
            let kept = entries(&copy);
            // Kept entries are standard, small and verbatim, in the input's order.
            let mut rest = input.iter();
            for (key, value) in &kept {
                prop_assert!(is_standard_tag(key), "{}", key);
                prop_assert!(value.len() <= SEARCH_COPY_VALUE_BYTES);
                prop_assert!(
                    rest.any(|(k, v)| k == key && v == value),
                    "{} is not an entry of the input (in order)", key
                );
            }
            // What is left out was private, too large, or would not have fitted.
            for (key, value) in &input {
                if is_standard_tag(key)
                    && value.len() <= SEARCH_COPY_VALUE_BYTES
                    && !kept.iter().any(|(k, v)| k == key && v == value)
                {
                    let comma = usize::from(!kept.is_empty());
                    prop_assert!(copy.len() + comma + key.len() + 3 + value.len() > SEARCH_COPY_BYTES);
                }
            }
            // A copy's copy is the copy.
            prop_assert!(matches!(search_copy(&copy), Cow::Borrowed(_)));
        }
    }
}
