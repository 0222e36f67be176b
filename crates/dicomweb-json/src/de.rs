//! Reading: DICOM JSON -> `InMemDicomObject`, producing the same value shapes dicom-rs
//! produces when it reads a file (text as strings, binary numbers typed), so a data set read from
//! JSON behaves like one read from Part 10.

use std::str::FromStr;

use base64::Engine;
use dicom_core::value::{C, DataSetSequence, PixelFragmentSequence};
use dicom_core::{DataElement, DicomValue, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;
use serde_json::{Map, Value};

use crate::error::{AttributeProblem, JsonError};
use crate::{BASE64, is_bulk, parse_tag_key};

pub(crate) fn read_dataset(map: &Map<String, Value>) -> Result<InMemDicomObject, JsonError> {
    let mut obj = InMemDicomObject::new_empty();
    for (key, json) in map {
        let tag = parse_tag_key(key).ok_or_else(|| JsonError::InvalidTagKey {
            key: key.clone(),
            location: String::new(),
        })?;
        // File meta and group lengths are not part of the model; the server derives them.
        if tag.group() == 0x0002 || tag.element() == 0x0000 {
            continue;
        }
        obj.put(read_element(tag, json)?);
    }
    Ok(obj)
}

/// `"Value"`, `"InlineBinary"` and `"BulkDataURI"`: at most one may be present.
enum ValueField<'a> {
    None,
    Values(&'a Value),
    InlineBinary(&'a Value),
    BulkDataUri(&'a Value),
}

fn read_element(tag: Tag, json: &Value) -> Result<InMemElement, JsonError> {
    let fail = |problem| JsonError::attribute(tag, problem);
    let attr = json
        .as_object()
        .ok_or_else(|| fail(AttributeProblem::NotAnObject))?;
    let vr = match attr.get("vr") {
        Some(Value::String(vr)) => {
            VR::from_str(vr).map_err(|_| fail(AttributeProblem::UnknownVr(vr.clone())))?
        }
        Some(other) => return Err(fail(AttributeProblem::UnknownVr(other.to_string()))),
        None => return Err(fail(AttributeProblem::MissingVr)),
    };

    // null is treated as absent: some writers emit `"Value": null` for empty attributes.
    let present = |name: &str| attr.get(name).filter(|v| !v.is_null());
    let fields = [
        present("Value").map(ValueField::Values),
        present("InlineBinary").map(ValueField::InlineBinary),
        present("BulkDataURI").map(ValueField::BulkDataUri),
    ];
    let mut field = ValueField::None;
    for candidate in fields.into_iter().flatten() {
        if !matches!(field, ValueField::None) {
            return Err(fail(AttributeProblem::ConflictingValueFields));
        }
        field = candidate;
    }

    match field {
        ValueField::None if vr == VR::SQ => Ok(DataElement::new(
            tag,
            vr,
            DicomValue::Sequence(DataSetSequence::empty()),
        )),
        ValueField::None => Ok(DataElement::new(tag, vr, PrimitiveValue::Empty)),
        ValueField::BulkDataUri(uri) => {
            // Only binary VRs can carry the URI in their value without ambiguity; see crate docs.
            if !is_bulk(tag, vr) {
                return Err(fail(AttributeProblem::FieldNotAllowed {
                    field: "BulkDataURI",
                    vr,
                }));
            }
            let uri = single_string(uri, "BulkDataURI").map_err(fail)?;
            Ok(DataElement::new(
                tag,
                vr,
                PrimitiveValue::Str(uri.to_owned()),
            ))
        }
        ValueField::InlineBinary(data) => {
            if !is_bulk(tag, vr) {
                return Err(fail(AttributeProblem::FieldNotAllowed {
                    field: "InlineBinary",
                    vr,
                }));
            }
            let text = single_string(data, "InlineBinary").map_err(fail)?;
            let bytes = decode_base64(text).map_err(fail)?;
            if tag == tags::PIXEL_DATA
                && let Some(pixels) = parse_encapsulated(&bytes)
            {
                return Ok(DataElement::new(tag, vr, DicomValue::PixelSequence(pixels)));
            }
            let value = bytes_to_value(vr, bytes).map_err(fail)?;
            Ok(DataElement::new(tag, vr, value))
        }
        ValueField::Values(values) => {
            let Value::Array(items) = values else {
                return Err(fail(AttributeProblem::ValueNotArray));
            };
            if vr == VR::SQ {
                return read_sequence(tag, items);
            }
            if items.is_empty() {
                return Ok(DataElement::new(tag, vr, PrimitiveValue::Empty));
            }
            let value = read_values(vr, items).map_err(fail)?;
            Ok(DataElement::new(tag, vr, value))
        }
    }
}

fn read_sequence(tag: Tag, items: &[Value]) -> Result<InMemElement, JsonError> {
    let mut datasets = C::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let dataset = match item {
            Value::Object(map) => read_dataset(map).map_err(|e| e.nested_in(tag, index))?,
            // pydicom reads a null item as an empty one; so do we.
            Value::Null => InMemDicomObject::new_empty(),
            _ => {
                return Err(JsonError::NotAnObject {
                    location: format!("{tag}[{index}]"),
                });
            }
        };
        datasets.push(dataset);
    }
    Ok(DataElement::new(
        tag,
        VR::SQ,
        DicomValue::Sequence(DataSetSequence::new(datasets, Length::UNDEFINED)),
    ))
}

/// F.4 shows InlineBinary/BulkDataURI wrapped in a one-element array; pydicom accepts both.
fn single_string<'a>(value: &'a Value, field: &'static str) -> Result<&'a str, AttributeProblem> {
    match value {
        Value::String(s) => Ok(s),
        Value::Array(items) => match items.as_slice() {
            [Value::String(s)] => Ok(s),
            _ => Err(AttributeProblem::NotAString { field }),
        },
        _ => Err(AttributeProblem::NotAString { field }),
    }
}

fn decode_base64(text: &str) -> Result<Vec<u8>, AttributeProblem> {
    // Tolerate MIME-style line breaks, which some encoders insert.
    if text.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        Ok(BASE64.decode(compact)?)
    } else {
        Ok(BASE64.decode(text)?)
    }
}

/// Interprets little-endian value field bytes as the VR's values, the inverse of the writer.
fn bytes_to_value(vr: VR, bytes: Vec<u8>) -> Result<PrimitiveValue, AttributeProblem> {
    fn split<T, const N: usize>(
        vr: VR,
        bytes: &[u8],
        from_le: fn([u8; N]) -> T,
    ) -> Result<C<T>, AttributeProblem> {
        let chunks = bytes.chunks_exact(N);
        if !chunks.remainder().is_empty() {
            return Err(AttributeProblem::BinaryLength {
                len: bytes.len(),
                unit: N,
                vr,
            });
        }
        Ok(chunks
            .map(|chunk| {
                let mut array = [0; N];
                array.copy_from_slice(chunk);
                from_le(array)
            })
            .collect())
    }
    if bytes.is_empty() {
        return Ok(PrimitiveValue::Empty);
    }
    Ok(match vr {
        VR::OW | VR::US => PrimitiveValue::U16(split(vr, &bytes, u16::from_le_bytes)?),
        VR::SS => PrimitiveValue::I16(split(vr, &bytes, i16::from_le_bytes)?),
        VR::OL | VR::UL => PrimitiveValue::U32(split(vr, &bytes, u32::from_le_bytes)?),
        VR::SL => PrimitiveValue::I32(split(vr, &bytes, i32::from_le_bytes)?),
        VR::OV | VR::UV => PrimitiveValue::U64(split(vr, &bytes, u64::from_le_bytes)?),
        VR::SV => PrimitiveValue::I64(split(vr, &bytes, i64::from_le_bytes)?),
        VR::OF | VR::FL => PrimitiveValue::F32(split(vr, &bytes, f32::from_le_bytes)?),
        VR::OD | VR::FD => PrimitiveValue::F64(split(vr, &bytes, f64::from_le_bytes)?),
        _ => PrimitiveValue::U8(bytes.into()),
    })
}

/// Recognises encapsulated pixel data written by the writer (or pydicom): a Basic Offset
/// Table item followed by fragment items, optionally ended by a sequence delimiter. Anything
/// that does not parse completely is left as plain bytes.
fn parse_encapsulated(bytes: &[u8]) -> Option<PixelFragmentSequence<Vec<u8>>> {
    const ITEM: [u8; 4] = [0xFE, 0xFF, 0x00, 0xE0];
    const SEQUENCE_DELIMITER: [u8; 4] = [0xFE, 0xFF, 0xDD, 0xE0];
    let mut rest = bytes;
    let mut items: Vec<&[u8]> = Vec::new();
    while !rest.is_empty() {
        let (header, after) = rest.split_at_checked(8)?;
        let (item_tag, len) = header.split_at(4);
        let len = usize::try_from(u32::from_le_bytes(len.try_into().ok()?)).ok()?;
        if item_tag == SEQUENCE_DELIMITER && len == 0 && after.is_empty() {
            break;
        }
        if item_tag != ITEM {
            return None;
        }
        let (content, after) = after.split_at_checked(len)?;
        items.push(content);
        rest = after;
    }
    let (table, fragments) = items.split_first()?;
    if table.len() % 4 != 0 {
        return None;
    }
    let offsets: C<u32> = table
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let fragments: C<Vec<u8>> = fragments.iter().map(|f| f.to_vec()).collect();
    Some(PixelFragmentSequence::new(offsets, fragments))
}

fn invalid(index: usize, vr: VR, expected: &'static str) -> AttributeProblem {
    AttributeProblem::InvalidValue {
        index,
        vr,
        expected,
    }
}

fn read_values(vr: VR, items: &[Value]) -> Result<PrimitiveValue, AttributeProblem> {
    Ok(match vr {
        VR::AE | VR::AS | VR::CS | VR::DA | VR::DT | VR::LO | VR::SH | VR::TM | VR::UC | VR::UI => {
            PrimitiveValue::Strs(read_strings(vr, items)?)
        }
        VR::LT | VR::ST | VR::UT | VR::UR => {
            let mut strings = read_strings(vr, items)?;
            if strings.len() > 1 {
                return Err(AttributeProblem::TooManyValues {
                    vr,
                    count: strings.len(),
                });
            }
            // dicom-rs keeps single-valued text as one Str, so mirror it.
            PrimitiveValue::Str(strings.pop().unwrap_or_default())
        }
        VR::PN => PrimitiveValue::Strs(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    read_person_name(item).ok_or_else(|| invalid(index, vr, "a person name object"))
                })
                .collect::<Result<_, _>>()?,
        ),
        VR::IS | VR::DS => PrimitiveValue::Strs(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    read_numeric_text(vr, item).ok_or_else(|| invalid(index, vr, "a number"))
                })
                .collect::<Result<_, _>>()?,
        ),
        VR::AT => PrimitiveValue::Tags(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    item.as_str()
                        .and_then(parse_tag_key)
                        .ok_or_else(|| invalid(index, vr, "a tag string \"GGGGEEEE\""))
                })
                .collect::<Result<_, _>>()?,
        ),
        VR::US | VR::OW => PrimitiveValue::U16(read_integers(vr, items)?),
        VR::SS => PrimitiveValue::I16(read_integers(vr, items)?),
        VR::UL | VR::OL => PrimitiveValue::U32(read_integers(vr, items)?),
        VR::SL => PrimitiveValue::I32(read_integers(vr, items)?),
        VR::UV | VR::OV => PrimitiveValue::U64(read_integers(vr, items)?),
        VR::SV => PrimitiveValue::I64(read_integers(vr, items)?),
        VR::OB => PrimitiveValue::U8(read_integers(vr, items)?),
        // Narrowing to f32 is the VR's precision.
        VR::FL | VR::OF => PrimitiveValue::F32(
            read_floats(vr, items)?
                .into_iter()
                .map(|x| x as f32)
                .collect(),
        ),
        VR::FD | VR::OD => PrimitiveValue::F64(read_floats(vr, items)?),
        VR::UN | VR::SQ => {
            return Err(AttributeProblem::FieldNotAllowed { field: "Value", vr });
        }
    })
}

/// Text values; null (an empty value in a multi-valued attribute) becomes "".
fn read_strings(vr: VR, items: &[Value]) -> Result<C<String>, AttributeProblem> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(s) => Ok(s.clone()),
            Value::Null => Ok(String::new()),
            _ => Err(invalid(index, vr, "a string or null")),
        })
        .collect()
}

/// `{"Alphabetic", "Ideographic", "Phonetic"}` -> `A=I=P` without trailing empty groups.
/// A bare string is accepted too, as pydicom does, since some services send PN that way.
fn read_person_name(item: &Value) -> Option<String> {
    let groups = match item {
        Value::Null => return Some(String::new()),
        Value::String(s) => return Some(s.clone()),
        Value::Object(groups) => groups,
        _ => return None,
    };
    let group = |name: &str| -> Option<&str> {
        match groups.get(name) {
            None | Some(Value::Null) => Some(""),
            Some(Value::String(s)) => Some(s),
            Some(_) => None,
        }
    };
    let (alphabetic, ideographic, phonetic) = (
        group("Alphabetic")?,
        group("Ideographic")?,
        group("Phonetic")?,
    );
    Some(if !phonetic.is_empty() {
        format!("{alphabetic}={ideographic}={phonetic}")
    } else if !ideographic.is_empty() {
        format!("{alphabetic}={ideographic}")
    } else {
        alphabetic.to_owned()
    })
}

/// IS and DS are kept as text (as dicom-rs does for files); numbers become their DICOM text.
fn read_numeric_text(vr: VR, item: &Value) -> Option<String> {
    match item {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i.to_string())
            } else if let Some(u) = n.as_u64() {
                Some(u.to_string())
            } else {
                let x = n.as_f64()?;
                if vr == VR::IS {
                    // IS holds integers only; 5.0 is accepted as 5, 5.5 is not.
                    (x.fract() == 0.0 && x.abs() < 1e15).then(|| format!("{x:.0}"))
                } else {
                    Some(format_ds(x))
                }
            }
        }
        _ => None,
    }
}

/// Formats a finite double as a DS value (at most 16 characters). A float that happens to be
/// integral keeps its `.0` so that it is written back as the same JSON number.
pub(crate) fn format_ds(x: f64) -> String {
    let plain = x.to_string();
    if plain.len() <= 16 {
        if x.fract() == 0.0 && !plain.contains(['.', 'e', 'E', 'N', 'i']) && plain.len() <= 14 {
            return format!("{plain}.0");
        }
        return plain;
    }
    let exponent = format!("{x:e}");
    if exponent.len() <= 16 {
        return exponent;
    }
    // More significant digits than DS can hold: round, in whichever notation keeps the value
    // closest (fixed for ordinary magnitudes, exponent for tiny or huge ones).
    let fixed = (0..16)
        .rev()
        .map(|precision| format!("{x:.precision$}"))
        .find(|s| s.len() <= 16);
    let scientific = (0..16)
        .rev()
        .map(|precision| format!("{x:.precision$e}"))
        .find(|s| s.len() <= 16);
    let error = |s: &String| s.parse::<f64>().map_or(f64::INFINITY, |y| (y - x).abs());
    match (fixed, scientific) {
        (Some(fixed), Some(scientific)) if error(&fixed) <= error(&scientific) => fixed,
        (_, Some(scientific)) => scientific,
        (Some(fixed), None) => fixed,
        (None, None) => exponent,
    }
}

fn json_integer(item: &Value) -> Option<i128> {
    match item {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                // 5.0 is an integer written by a float-minded encoder.
                let x = n.as_f64()?;
                (x.fract() == 0.0 && x.abs() < 1.8e19).then_some(x as i128)
            }),
        // Integers beyond 2^53 arrive as strings (F.2.3.1).
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn read_integers<T: TryFrom<i128>>(vr: VR, items: &[Value]) -> Result<C<T>, AttributeProblem> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            json_integer(item)
                .and_then(|n| T::try_from(n).ok())
                .ok_or_else(|| invalid(index, vr, "an integer within the VR's range"))
        })
        .collect()
}

/// Numbers, or strings holding numbers including "NaN", "Infinity" and "-Infinity".
fn read_floats(vr: VR, items: &[Value]) -> Result<C<f64>, AttributeProblem> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            match item {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(|| invalid(index, vr, "a number"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_fit_in_16_characters() {
        assert_eq!(format_ds(1.5), "1.5");
        assert_eq!(format_ds(512.0), "512.0");
        assert_eq!(format_ds(-0.0), "-0.0");
        assert_eq!(format_ds(1e-20), "1e-20");
        assert_eq!(format_ds(1e20), "1e20");
        assert_eq!(format_ds(0.1 + 0.2), "0.30000000000000");
        assert_eq!(format_ds(1.0 / 3.0), "0.33333333333333");
        assert_eq!(format_ds(1.234_567_890_123_456e-10), "1.2345678901e-10");
        for x in [0.1 + 0.2, 1.0 / 3.0, -123456.789012345, 6.02214076e23] {
            let text = format_ds(x);
            assert!(text.len() <= 16, "{text}");
            let back: f64 = text.parse().unwrap();
            assert!((back - x).abs() <= x.abs() * 1e-9, "{text} vs {x}");
        }
    }

    #[test]
    fn bytes_that_are_not_complete_items_stay_native_pixel_data() {
        // Starts like an item but its length runs past the end.
        assert!(parse_encapsulated(&[0xFE, 0xFF, 0x00, 0xE0, 0x10, 0, 0, 0, 1, 2]).is_none());
        // An offset table whose length is not a multiple of 4.
        assert!(parse_encapsulated(&[0xFE, 0xFF, 0x00, 0xE0, 2, 0, 0, 0, 1, 2]).is_none());
        // Not an item at all.
        assert!(parse_encapsulated(&[0, 1, 2, 3, 4, 5, 6, 7]).is_none());
        // Offset table, one fragment and the sequence delimiter.
        let pixels = parse_encapsulated(&[
            0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0, 0, 0, 0, 0, //
            0xFE, 0xFF, 0x00, 0xE0, 2, 0, 0, 0, 0xAB, 0xCD, //
            0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0,
        ])
        .unwrap();
        assert_eq!(pixels.offset_table(), [0]);
        assert_eq!(pixels.fragments(), [vec![0xAB, 0xCD]]);
    }

    #[test]
    fn tag_keys_parse_in_either_case_and_nothing_else() {
        assert_eq!(parse_tag_key("7FE00010"), Some(Tag(0x7FE0, 0x0010)));
        assert_eq!(parse_tag_key("0054000a"), Some(Tag(0x0054, 0x000A)));
        for bad in ["+0100010", "0010001", "001000100", "0010001G", ""] {
            assert_eq!(parse_tag_key(bad), None, "{bad:?}");
        }
        assert_eq!(&crate::tag_key(Tag(0x7FE0, 0x000A)), b"7FE0000A");
    }
}
