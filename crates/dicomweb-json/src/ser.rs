//! Writing: `InMemDicomObject` -> DICOM JSON, streamed through serde so the same code produces
//! both a `serde_json::Value` and bytes without an intermediate tree.

use std::borrow::Cow;
use std::fmt;

use base64::display::Base64Display;
use dicom_core::header::Header;
use dicom_core::value::{C, PixelFragmentSequence};
use dicom_core::{DicomValue, PrimitiveValue, Tag, VR};
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::{BASE64, BulkDataPolicy, JsonOptions, is_bulk, tag_key};

/// Largest integer magnitude a JSON number can carry without loss in IEEE doubles (F.2.3.1).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// One step from the root data set down to a nested item; only used to build BulkDataURIs,
/// so nothing is allocated unless a URI is actually written.
struct ItemPath<'a> {
    parent: Option<&'a ItemPath<'a>>,
    sequence: Tag,
    index: usize,
}

/// A data set (root or sequence item) as a DICOM JSON object.
pub(crate) struct DatasetJson<'a> {
    obj: &'a InMemDicomObject,
    options: &'a JsonOptions,
    path: Option<&'a ItemPath<'a>>,
}

impl<'a> DatasetJson<'a> {
    pub(crate) fn root(obj: &'a InMemDicomObject, options: &'a JsonOptions) -> Self {
        Self {
            obj,
            options,
            path: None,
        }
    }
}

impl Serialize for DatasetJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        // InMemDicomObject iterates in ascending tag order, which is the order F.2.2 requires.
        for element in self.obj.iter() {
            let tag = element.tag();
            if !is_written(element, self.options) {
                continue;
            }
            let key = tag_key(tag);
            // tag_key only produces ASCII hex digits
            let key = std::str::from_utf8(&key).unwrap_or("00000000");
            map.serialize_entry(
                key,
                &ElementJson {
                    element,
                    options: self.options,
                    path: self.path,
                },
            )?;
        }
        map.end()
    }
}

/// Whether an element appears in the output at all.
fn is_written(element: &InMemElement, options: &JsonOptions) -> bool {
    let tag = element.tag();
    // File meta and group lengths are never part of the DICOM JSON model (F.2.2).
    if tag.group() == 0x0002 || tag.element() == 0x0000 {
        return false;
    }
    if !matches!(options.bulk_data, BulkDataPolicy::Omit) {
        return true;
    }
    match element.value() {
        DicomValue::Sequence(_) => true,
        DicomValue::PixelSequence(_) => !is_bulk(tag, element.vr()),
        DicomValue::Primitive(value) => !is_bulk(tag, element.vr()) && !options.is_large(value),
    }
}

struct ElementJson<'a> {
    element: &'a InMemElement,
    options: &'a JsonOptions,
    path: Option<&'a ItemPath<'a>>,
}

impl Serialize for ElementJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let element = self.element;
        let tag = element.tag();
        let mut map = serializer.serialize_map(None)?;
        match element.value() {
            DicomValue::Sequence(seq) => {
                // A UN element of undefined length parsed as a sequence is written as what it is.
                map.serialize_entry("vr", "SQ")?;
                if !seq.items().is_empty() {
                    map.serialize_entry(
                        "Value",
                        &ItemsJson {
                            items: seq.items(),
                            sequence: tag,
                            options: self.options,
                            path: self.path,
                        },
                    )?;
                }
            }
            DicomValue::PixelSequence(pixels) => {
                map.serialize_entry("vr", element.vr().to_string())?;
                match &self.options.bulk_data {
                    BulkDataPolicy::Omit => {}
                    BulkDataPolicy::Uri { base } => {
                        map.serialize_entry("BulkDataURI", &self.bulk_uri(Some(base)))?;
                    }
                    BulkDataPolicy::RelativeUri => {
                        map.serialize_entry("BulkDataURI", &self.bulk_uri(None))?;
                    }
                    BulkDataPolicy::Inline => {
                        let bytes = encapsulated_bytes(pixels);
                        map.serialize_entry("InlineBinary", &InlineBinary(&bytes))?;
                    }
                }
            }
            DicomValue::Primitive(value) => {
                let vr = element.vr();
                map.serialize_entry("vr", vr.to_string())?;
                if is_bulk(tag, vr) {
                    self.serialize_bulk(&mut map, value)?;
                } else if let Some(base) = self.uri_base()
                    && self.options.is_large(value)
                {
                    // Not `serialize_bulk`: a text value is never a URI read from JSON.
                    map.serialize_entry("BulkDataURI", &self.bulk_uri(base))?;
                } else {
                    serialize_value(&mut map, vr, value)?;
                }
            }
        }
        map.end()
    }
}

impl ElementJson<'_> {
    /// The base of the URIs written under the options (`Some(None)`: relative), if they write URIs.
    fn uri_base(&self) -> Option<Option<&str>> {
        match &self.options.bulk_data {
            BulkDataPolicy::Uri { base } => Some(Some(base)),
            BulkDataPolicy::RelativeUri => Some(None),
            BulkDataPolicy::Omit | BulkDataPolicy::Inline => None,
        }
    }

    fn bulk_uri<'b>(&'b self, base: Option<&'b str>) -> BulkUri<'b> {
        BulkUri {
            base: base.map(|base| base.trim_end_matches('/')),
            path: self.path,
            tag: self.element.tag(),
        }
    }

    fn serialize_bulk<M: SerializeMap>(
        &self,
        map: &mut M,
        value: &PrimitiveValue,
    ) -> Result<(), M::Error> {
        if value.multiplicity() == 0 {
            // Under RelativeUri an empty value may be one that was not read: it gets its URI all the same.
            if let BulkDataPolicy::RelativeUri = self.options.bulk_data {
                return map.serialize_entry("BulkDataURI", &self.bulk_uri(None));
            }
            return Ok(());
        }
        // A BulkDataURI read from JSON is kept as the (string) value of the binary element:
        // we have no bytes to inline or serve, so the URI is written back as received.
        if let Some(uri) = stored_bulk_data_uri(value) {
            return map.serialize_entry("BulkDataURI", uri);
        }
        match &self.options.bulk_data {
            BulkDataPolicy::Omit => Ok(()),
            BulkDataPolicy::Uri { base } => {
                map.serialize_entry("BulkDataURI", &self.bulk_uri(Some(base)))
            }
            BulkDataPolicy::RelativeUri => map.serialize_entry("BulkDataURI", &self.bulk_uri(None)),
            BulkDataPolicy::Inline => {
                let bytes = le_bytes(value);
                map.serialize_entry("InlineBinary", &InlineBinary(&bytes))
            }
        }
    }
}

/// The URI stored by the reader for a binary element, if `value` is one.
pub(crate) fn stored_bulk_data_uri(value: &PrimitiveValue) -> Option<&str> {
    match value {
        PrimitiveValue::Str(uri) => Some(uri),
        PrimitiveValue::Strs(uris) => uris.first().map(String::as_str),
        _ => None,
    }
}

/// Base64 streamed straight into the output.
struct InlineBinary<'a>(&'a [u8]);

impl Serialize for InlineBinary<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&Base64Display::new(self.0, &BASE64))
    }
}

/// `{base}/bulkdata/{path}` (without a base: `bulkdata/{path}`) where path is `GGGGEEEE` for a top-level
/// attribute and `SSSSSSSS.i.GGGGEEEE` (repeated) inside sequence items.
struct BulkUri<'a> {
    base: Option<&'a str>,
    path: Option<&'a ItemPath<'a>>,
    tag: Tag,
}

impl fmt::Display for BulkUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn write_path(f: &mut fmt::Formatter<'_>, path: Option<&ItemPath<'_>>) -> fmt::Result {
            let Some(step) = path else { return Ok(()) };
            write_path(f, step.parent)?;
            let Tag(group, element) = step.sequence;
            write!(f, "{group:04X}{element:04X}.{}.", step.index)
        }
        if let Some(base) = self.base {
            f.write_str(base)?;
            f.write_str("/")?;
        }
        f.write_str("bulkdata/")?;
        write_path(f, self.path)?;
        let Tag(group, element) = self.tag;
        write!(f, "{group:04X}{element:04X}")
    }
}

impl Serialize for BulkUri<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct ItemsJson<'a> {
    items: &'a [InMemDicomObject],
    sequence: Tag,
    options: &'a JsonOptions,
    path: Option<&'a ItemPath<'a>>,
}

impl Serialize for ItemsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.items.len()))?;
        for (index, item) in self.items.iter().enumerate() {
            let step = ItemPath {
                parent: self.path,
                sequence: self.sequence,
                index,
            };
            seq.serialize_element(&DatasetJson {
                obj: item,
                options: self.options,
                path: Some(&step),
            })?;
        }
        seq.end()
    }
}

/// Value field bytes in little endian, as they would appear in an explicit VR LE file.
fn le_bytes(value: &PrimitiveValue) -> Cow<'_, [u8]> {
    fn collect<T: Copy, const N: usize>(values: &[T], to_le: fn(T) -> [u8; N]) -> Vec<u8> {
        values.iter().flat_map(|v| to_le(*v)).collect()
    }
    match value {
        PrimitiveValue::U8(bytes) => Cow::Borrowed(&bytes[..]),
        PrimitiveValue::U16(v) => Cow::Owned(collect(v, u16::to_le_bytes)),
        PrimitiveValue::I16(v) => Cow::Owned(collect(v, i16::to_le_bytes)),
        PrimitiveValue::U32(v) => Cow::Owned(collect(v, u32::to_le_bytes)),
        PrimitiveValue::I32(v) => Cow::Owned(collect(v, i32::to_le_bytes)),
        PrimitiveValue::U64(v) => Cow::Owned(collect(v, u64::to_le_bytes)),
        PrimitiveValue::I64(v) => Cow::Owned(collect(v, i64::to_le_bytes)),
        PrimitiveValue::F32(v) => Cow::Owned(collect(v, f32::to_le_bytes)),
        PrimitiveValue::F64(v) => Cow::Owned(collect(v, f64::to_le_bytes)),
        // Text or date values in a binary VR: their encoded text is the value field.
        other => other.to_bytes(),
    }
}

/// Encapsulated pixel data as the items of its value field (Basic Offset Table item, then one
/// item per fragment, without the sequence delimiter), the same bytes pydicom keeps as
/// `PixelData` for encapsulated transfer syntaxes.
fn encapsulated_bytes(pixels: &PixelFragmentSequence<Vec<u8>>) -> Vec<u8> {
    fn item_header(out: &mut Vec<u8>, len: usize) {
        out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
        // Fragments come from DICOM items whose length field is 32 bits.
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    }
    let table = pixels.offset_table();
    let total = 8
        + table.len() * 4
        + pixels
            .fragments()
            .iter()
            .map(|f| f.len() + 8)
            .sum::<usize>();
    let mut out = Vec::with_capacity(total);
    item_header(&mut out, table.len() * 4);
    for offset in table {
        out.extend_from_slice(&offset.to_le_bytes());
    }
    for fragment in pixels.fragments() {
        item_header(&mut out, fragment.len());
        out.extend_from_slice(fragment);
    }
    out
}

/// VRs whose value field holds a single value even if it contains backslashes (PS3.5 6.4).
fn is_single_valued_text(vr: VR) -> bool {
    matches!(vr, VR::LT | VR::ST | VR::UT | VR::UR)
}

/// Removes padding and insignificant spaces: trailing spaces (and NULs, the UI padding) from
/// every text value; leading spaces too where PS3.5 says they are insignificant.
fn trim_text(vr: VR, text: &str) -> &str {
    let text = text.trim_end_matches([' ', '\0']);
    match vr {
        VR::AE | VR::CS | VR::DS | VR::IS | VR::AS | VR::DA | VR::TM | VR::DT | VR::UI => {
            text.trim_start_matches(' ')
        }
        _ => text,
    }
}

/// Splits stored strings into DICOM values (the parser already splits on backslash, values
/// built in code may not have) and trims them.
fn text_values<'v>(vr: VR, strings: impl Iterator<Item = &'v str>) -> C<&'v str> {
    let mut values = C::new();
    for s in strings {
        if is_single_valued_text(vr) {
            values.push(trim_text(vr, s));
        } else {
            values.extend(s.split('\\').map(|v| trim_text(vr, v)));
        }
    }
    values
}

/// Writes the `"Value"` entry of a non-bulk, non-sequence element (nothing when empty).
fn serialize_value<M: SerializeMap>(
    map: &mut M,
    vr: VR,
    value: &PrimitiveValue,
) -> Result<(), M::Error> {
    match value {
        PrimitiveValue::Empty => Ok(()),
        PrimitiveValue::Str(s) => serialize_text(map, vr, text_values(vr, std::iter::once(&**s))),
        PrimitiveValue::Strs(strings) => {
            serialize_text(map, vr, text_values(vr, strings.iter().map(String::as_str)))
        }
        PrimitiveValue::Tags(tags) => map.serialize_entry("Value", &TagsJson(tags)),
        PrimitiveValue::U8(v) if !is_text_vr(vr) => map.serialize_entry("Value", &v[..]),
        PrimitiveValue::U16(v) if !is_text_vr(vr) => map.serialize_entry("Value", &v[..]),
        PrimitiveValue::I16(v) if !is_text_vr(vr) => map.serialize_entry("Value", &v[..]),
        PrimitiveValue::U32(v) if !is_text_vr(vr) => map.serialize_entry("Value", &v[..]),
        PrimitiveValue::I32(v) if !is_text_vr(vr) || vr == VR::IS => {
            map.serialize_entry("Value", &v[..])
        }
        PrimitiveValue::U64(v) if !is_text_vr(vr) => map.serialize_entry("Value", &U64Json(v)),
        PrimitiveValue::I64(v) if !is_text_vr(vr) => map.serialize_entry("Value", &I64Json(v)),
        PrimitiveValue::F32(v) if !is_text_vr(vr) => map.serialize_entry("Value", &F32Json(v)),
        PrimitiveValue::F64(v) if !is_text_vr(vr) || vr == VR::DS => {
            map.serialize_entry("Value", &F64Json(v))
        }
        // Dates, times and numbers stored under a text VR: their DICOM text form.
        other => {
            let strings = other.to_multi_str();
            serialize_text(map, vr, text_values(vr, strings.iter().map(String::as_str)))
        }
    }
}

fn is_text_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE
            | VR::AS
            | VR::CS
            | VR::DA
            | VR::DS
            | VR::DT
            | VR::IS
            | VR::LO
            | VR::LT
            | VR::PN
            | VR::SH
            | VR::ST
            | VR::TM
            | VR::UC
            | VR::UI
            | VR::UR
            | VR::UT
    )
}

fn serialize_text<M: SerializeMap>(map: &mut M, vr: VR, values: C<&str>) -> Result<(), M::Error> {
    let items: C<TextItem<'_>> = values
        .iter()
        .map(|text| TextItem::classify(vr, text))
        .collect();
    // A single empty value is a zero-length attribute: no "Value" (F.2.5).
    if matches!(&items[..], [] | [TextItem::Null]) {
        return Ok(());
    }
    map.serialize_entry("Value", &TextJson(items))
}

/// One value of a text-encoded attribute, as it will be written.
enum TextItem<'a> {
    /// Empty values within a multi-valued attribute are null (F.2.5).
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(&'a str),
    PersonName(&'a str),
}

impl<'a> TextItem<'a> {
    fn classify(vr: VR, text: &'a str) -> Self {
        match vr {
            VR::PN
                if text
                    .split('=')
                    .all(|group| group.trim_end_matches(' ').is_empty()) =>
            {
                TextItem::Null
            }
            _ if text.is_empty() => TextItem::Null,
            VR::PN => TextItem::PersonName(text),
            VR::IS | VR::SS | VR::US | VR::SL | VR::UL | VR::SV => match text.parse::<i64>() {
                Ok(n) => integer_item(n, text),
                // "1.0" is not a valid IS but its meaning is clear.
                Err(_) => match text.parse::<f64>() {
                    Ok(x) if x.fract() == 0.0 && x.abs() <= MAX_SAFE_INTEGER as f64 => {
                        TextItem::Int(x as i64)
                    }
                    // Not a number: written as an empty value, because pydicom's from_json
                    // rejects the whole document when an IS string is not an integer.
                    _ => TextItem::Null,
                },
            },
            VR::UV => match text.parse::<u64>() {
                Ok(n) if n <= MAX_SAFE_INTEGER => TextItem::UInt(n),
                Ok(_) => TextItem::Text(text),
                Err(_) => TextItem::Null,
            },
            VR::DS | VR::FL | VR::FD => match text.parse::<i64>() {
                Ok(n) => integer_item(n, text),
                Err(_) => match text.parse::<f64>() {
                    Ok(x) if x.is_finite() => TextItem::Float(x),
                    Ok(x) => TextItem::Text(non_finite_text(x)),
                    // As for IS: pydicom rejects DS strings that are not numbers.
                    Err(_) => TextItem::Null,
                },
            },
            _ => TextItem::Text(text),
        }
    }
}

/// Integers beyond 2^53 keep their text so JavaScript clients do not lose precision (F.2.3).
fn integer_item(n: i64, text: &str) -> TextItem<'_> {
    if n.unsigned_abs() <= MAX_SAFE_INTEGER {
        TextItem::Int(n)
    } else {
        TextItem::Text(text)
    }
}

struct TextJson<'a>(C<TextItem<'a>>);

impl Serialize for TextJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for item in &self.0 {
            match *item {
                TextItem::Null => seq.serialize_element(&())?,
                TextItem::Int(n) => seq.serialize_element(&n)?,
                TextItem::UInt(n) => seq.serialize_element(&n)?,
                TextItem::Float(x) => seq.serialize_element(&x)?,
                TextItem::Text(text) => seq.serialize_element(text)?,
                TextItem::PersonName(name) => seq.serialize_element(&PersonNameJson(name))?,
            }
        }
        seq.end()
    }
}

/// A PN value as `{"Alphabetic", "Ideographic", "Phonetic"}`, leaving out empty groups.
struct PersonNameJson<'a>(&'a str);

impl Serialize for PersonNameJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let mut groups = self.0.splitn(3, '=');
        for name in ["Alphabetic", "Ideographic", "Phonetic"] {
            let group = groups.next().unwrap_or("").trim_end_matches(' ');
            if !group.is_empty() {
                map.serialize_entry(name, group)?;
            }
        }
        map.end()
    }
}

struct TagsJson<'a>(&'a [Tag]);

impl Serialize for TagsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for &tag in self.0 {
            let key = tag_key(tag);
            seq.serialize_element(std::str::from_utf8(&key).unwrap_or("00000000"))?;
        }
        seq.end()
    }
}

/// 64-bit integers beyond 2^53 are written as strings so JavaScript clients do not lose
/// precision (F.2.3.1).
struct U64Json<'a>(&'a [u64]);

impl Serialize for U64Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for &n in self.0 {
            if n <= MAX_SAFE_INTEGER {
                seq.serialize_element(&n)?;
            } else {
                seq.serialize_element(&n.to_string())?;
            }
        }
        seq.end()
    }
}

struct I64Json<'a>(&'a [i64]);

impl Serialize for I64Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for &n in self.0 {
            if n.unsigned_abs() <= MAX_SAFE_INTEGER {
                seq.serialize_element(&n)?;
            } else {
                seq.serialize_element(&n.to_string())?;
            }
        }
        seq.end()
    }
}

/// JSON has no NaN or infinities: they are written as the strings "NaN", "Infinity" and
/// "-Infinity", which Python's `float()`, JavaScript's `Number()` and our reader all accept.
fn non_finite_text(x: f64) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

struct F32Json<'a>(&'a [f32]);

impl Serialize for F32Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        let mut buffer = ryu::Buffer::new();
        for &x in self.0 {
            if x.is_finite() {
                // Widen through the shortest decimal form so 0.1f32 is written as 0.1, not
                // 0.10000000149011612 (serde_json's Value widens f32 bit-for-bit).
                let shortest = buffer.format_finite(x);
                let widened = shortest.parse::<f64>().unwrap_or(f64::from(x));
                seq.serialize_element(&widened)?;
            } else {
                seq.serialize_element(non_finite_text(f64::from(x)))?;
            }
        }
        seq.end()
    }
}

struct F64Json<'a>(&'a [f64]);

impl Serialize for F64Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for &x in self.0 {
            if x.is_finite() {
                seq.serialize_element(&x)?;
            } else {
                seq.serialize_element(non_finite_text(x))?;
            }
        }
        seq.end()
    }
}
