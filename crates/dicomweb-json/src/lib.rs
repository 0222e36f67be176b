//! The DICOM JSON model (PS3.18 Annex F.2) as used by DICOMweb: WADO-RS metadata, QIDO-RS
//! results and STOW-RS requests and responses.
//!
//! This crate owns the mapping between an [`InMemDicomObject`] and its DICOM JSON form, in both
//! directions, and the policy for bulk data (binary VRs and Pixel Data) in that form. It knows
//! nothing about HTTP, storage or indexing and must never depend on them: callers decide the
//! bulk data base URI and what to do with the bytes.
//!
//! # Format
//!
//! * The document is an object keyed by upper-case `"GGGGEEEE"` tags in ascending order;
//!   attributes are `{"vr": "XX", "Value": [...]}`. File meta (group 0002) and group length
//!   (gggg,0000) attributes are never written, and ignored when read.
//! * Empty (zero-length) attributes and sequences without items have no `"Value"`; an empty
//!   value inside a multi-valued attribute is `null` (F.2.5).
//! * Text is trimmed of its padding (trailing spaces and NULs; leading spaces too for VRs where
//!   they are insignificant) and multi-valued text is split on backslash, except LT, ST, UT and
//!   UR which are single-valued (PS3.5 6.4).
//! * PN values are `{"Alphabetic", "Ideographic", "Phonetic"}` objects without empty groups.
//! * IS and DS are JSON numbers (an IS written `"1.0"` becomes `1`). Non-finite DS values
//!   (`"NaN"`, `"Infinity"`, `"-Infinity"`) and integers beyond 2^53 are JSON strings, which F.2.3
//!   allows and pydicom's `Dataset.from_json` accepts. Values that are not numbers at all (such
//!   as the IS `"1A"` in pydicom's `badVR.dcm`) are written as empty values (`null`, or no
//!   `"Value"` if it is the only one): pydicom rejects the whole document when an IS or DS string
//!   does not parse, and a metadata response must stay readable. A DS read from a JSON number is
//!   stored with at most 16 characters.
//! * US, SS, UL, SL, FL, FD, UV and SV are numbers; 64-bit integers beyond 2^53 are strings
//!   (F.2.3.1); non-finite floats are the strings `"NaN"`, `"Infinity"` and `"-Infinity"`.
//! * AT values are `"GGGGEEEE"` strings.
//! * Specific Character Set (0008,0005) is kept as is: dicom-rs has already decoded text to
//!   UTF-8, and the attribute documents the source encoding (F.2.2 note 3).
//!
//! # Bulk data
//!
//! Attributes with VR OB, OD, OF, OL, OV, OW or UN, and Pixel Data (7FE0,0010) whatever its VR,
//! are written according to [`BulkDataPolicy`]: left out, as a `"BulkDataURI"`, or as
//! `"InlineBinary"` base64 of their little-endian value field. Encapsulated Pixel Data is inlined
//! as its items (offset table item, then one item per fragment), like pydicom's `PixelData`,
//! and read back into fragments.
//!
//! Values of other VRs longer than [`JsonOptions::large_value_bytes`] (a 100 MiB UT, a list of
//! a million FD) follow the same policy, so that a document's size is bounded by the number of
//! its attributes rather than by what a client put in them.
//!
//! A `"BulkDataURI"` read from JSON (for example in STOW-RS metadata) is kept in the data set as
//! the binary element with the URI as its string value: no file read by dicom-rs has a string
//! value in a binary VR, so the two cannot be confused. [`bulk_data_uri`] reports it, and the
//! writer writes it back as the same `"BulkDataURI"` (unless the policy is
//! [`BulkDataPolicy::Omit`]). Such an element must be resolved (its value replaced with the
//! referenced bytes) before the data set is written as Part 10. `"BulkDataURI"` on other VRs
//! (allowed by F.2.2 for e.g. UT or FD) is rejected, since the URI could not be told apart from
//! a value.
//!
//! # Why not `dicom-json` alone
//!
//! `dicom-json` 0.10.1 was evaluated and is not used: it always inlines binary values, drops
//! `"BulkDataURI"` when reading, writes IS/DS read from files as strings, keeps padding, writes
//! no `null` for empty values, can panic on values of an unexpected type, reports errors without
//! the attribute and enables serde_json's `preserve_order` for every crate in the build. Its
//! building blocks are private, so the mapping is implemented here directly with serde: the
//! writer streams into serde_json (no intermediate strings for tags, text or base64), and the
//! same code produces [`dataset_to_json`] and [`dataset_to_json_bytes`].
//!
//! # Example
//!
//! ```
//! use dicom_core::{DataElement, PrimitiveValue, VR};
//! use dicom_dictionary_std::tags;
//! use dicom_object::InMemDicomObject;
//! use dicomweb_json::{BulkDataPolicy, JsonOptions, dataset_from_json_slice, dataset_to_json_bytes};
//!
//! let obj = InMemDicomObject::from_element_iter([
//!     DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("Doe^John ")),
//!     DataElement::new(tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from("7 ")),
//!     DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(vec![0u8, 1, 2, 3])),
//! ]);
//! let options = JsonOptions {
//!     bulk_data: BulkDataPolicy::Uri { base: "http://host/studies/1.2/series/3.4/instances/5.6".into() },
//!     large_value_bytes: None,
//! };
//! let json = dataset_to_json_bytes(&obj, &options);
//! assert_eq!(
//!     std::str::from_utf8(&json).unwrap(),
//!     concat!(
//!         r#"{"00100010":{"vr":"PN","Value":[{"Alphabetic":"Doe^John"}]},"#,
//!         r#""00200013":{"vr":"IS","Value":[7]},"#,
//!         r#""7FE00010":{"vr":"OB","BulkDataURI":"http://host/studies/1.2/series/3.4/instances/5.6/bulkdata/7FE00010"}}"#,
//!     )
//! );
//!
//! // Reading it back keeps the URI, and writing again reproduces the same document.
//! let read = dataset_from_json_slice(&json)?;
//! let pixel_data = read.get(tags::PIXEL_DATA).unwrap();
//! assert_eq!(
//!     dicomweb_json::bulk_data_uri(pixel_data),
//!     Some("http://host/studies/1.2/series/3.4/instances/5.6/bulkdata/7FE00010")
//! );
//! assert_eq!(dataset_to_json_bytes(&read, &options), json);
//! # Ok::<(), dicomweb_json::JsonError>(())
//! ```

#![warn(missing_docs)]

use std::borrow::Cow;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use dicom_core::header::Header;
use dicom_core::{DicomValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

mod de;
mod error;
mod ser;

pub use error::{AttributeProblem, JsonError};

/// What to do with bulk values: VRs OB, OD, OF, OL, OV, OW, UN, and Pixel Data (7FE0,0010)
/// whatever its VR. Empty bulk attributes are written as `{"vr": ..}` unless omitted.
#[derive(Debug, Clone, Default)]
pub enum BulkDataPolicy {
    /// Leave the attribute out entirely (the default).
    #[default]
    Omit,
    /// `"BulkDataURI": "{base}/bulkdata/{tag path}"`, where the tag path is `7FE00010` at the
    /// top level and `00081110.0.00100020` inside item 0 of (0008,1110). A trailing `/` on
    /// `base` is ignored.
    Uri {
        /// URI of the instance, e.g. `https://host/dicomweb/studies/{s}/series/{se}/instances/{i}`.
        base: String,
    },
    /// `"InlineBinary"`: base64 of the little-endian value field.
    Inline,
    /// `"BulkDataURI": "bulkdata/{tag path}"`, a URI relative to the instance's own, for every bulk attribute
    /// (also those whose value is empty: a data set read without its bulk values, as `dicomweb-instance` reads
    /// one, keeps them as empty values) and every large value. For documents stored once and served under
    /// several base URIs: [`resolve_bulk_data_uris`] makes them absolute when the document is served.
    RelativeUri,
}

/// The text every URI written under [`BulkDataPolicy::RelativeUri`] starts with, as it appears in the document.
const RELATIVE_BULK_DATA_URI: &[u8] = b"\"BulkDataURI\":\"bulkdata/";

/// Makes the `BulkDataURI`s written under [`BulkDataPolicy::RelativeUri`] in `document` (DICOM JSON written by
/// this crate, or a JSON array of such documents, or any part of one) absolute: `bulkdata/...` becomes
/// `{instance_uri}/bulkdata/...`. A document without any is returned as is, borrowed.
///
/// Found by their text, which cannot occur anywhere else in JSON: inside a string, a `"` is escaped.
///
/// ```
/// use dicomweb_json::resolve_bulk_data_uris;
///
/// let stored = br#"{"7FE00010":{"vr":"OW","BulkDataURI":"bulkdata/7FE00010"}}"#;
/// let served = resolve_bulk_data_uris(stored, "http://host/studies/1/series/2/instances/3");
/// assert_eq!(
///     std::str::from_utf8(&served).unwrap(),
///     r#"{"7FE00010":{"vr":"OW","BulkDataURI":"http://host/studies/1/series/2/instances/3/bulkdata/7FE00010"}}"#
/// );
/// ```
pub fn resolve_bulk_data_uris<'a>(document: &'a [u8], instance_uri: &str) -> Cow<'a, [u8]> {
    let finder = memchr::memmem::Finder::new(RELATIVE_BULK_DATA_URI);
    let mut found = finder.find_iter(document).peekable();
    if found.peek().is_none() {
        return Cow::Borrowed(document);
    }
    // The URI as JSON string content (a URI has nothing to escape, but its UIDs came from clients).
    let quoted = serde_json::to_string(instance_uri.trim_end_matches('/')).unwrap_or_default();
    let escaped = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .as_bytes();
    let uri_start = RELATIVE_BULK_DATA_URI.len() - b"bulkdata/".len();
    let mut out = Vec::with_capacity(document.len() + 4 * (escaped.len() + 1));
    let mut copied = 0;
    for at in found {
        let insert_at = at + uri_start;
        out.extend_from_slice(&document[copied..insert_at]);
        out.extend_from_slice(escaped);
        out.push(b'/');
        copied = insert_at;
    }
    out.extend_from_slice(&document[copied..]);
    Cow::Owned(out)
}

/// Whether `document` has a `BulkDataURI` written under [`BulkDataPolicy::RelativeUri`] (see
/// [`resolve_bulk_data_uris`]).
pub fn has_relative_bulk_data_uri(document: &[u8]) -> bool {
    memchr::memmem::find(document, RELATIVE_BULK_DATA_URI).is_some()
}

/// Options for writing DICOM JSON.
#[derive(Debug, Clone, Default)]
pub struct JsonOptions {
    /// How bulk values are written.
    pub bulk_data: BulkDataPolicy,
    /// A value of any other VR (text such as UT, or a long list of numbers) whose value field is
    /// longer than this many bytes (as `PrimitiveValue::calculate_byte_len` counts it) is written
    /// as bulk data too: left out under [`BulkDataPolicy::Omit`], a `"BulkDataURI"` under
    /// [`BulkDataPolicy::Uri`] and [`BulkDataPolicy::RelativeUri`]. Under [`BulkDataPolicy::Inline`] it stays a `"Value"`, since
    /// `"InlineBinary"` is only defined for binary VRs (F.2.7). `None`: no limit.
    ///
    /// This crate's reader refuses a `"BulkDataURI"` on a text VR (see the crate docs), so a
    /// document written with `Uri` and such a limit does not read back.
    pub large_value_bytes: Option<usize>,
}

impl JsonOptions {
    /// Whether `value` (of a non-bulk element) is written as bulk data under these options.
    pub(crate) fn is_large(&self, value: &dicom_core::PrimitiveValue) -> bool {
        self.large_value_bytes
            .is_some_and(|limit| value.calculate_byte_len() > limit)
    }
}

/// Converts a data set to a DICOM JSON object keyed `"GGGGEEEE"` (upper-case hex), in ascending
/// tag order (whether or not serde_json's `preserve_order` is enabled).
pub fn dataset_to_json(obj: &InMemDicomObject, options: &JsonOptions) -> serde_json::Value {
    // Our Serialize impls never fail and all map keys are strings, so this cannot error.
    serde_json::to_value(ser::DatasetJson::root(obj, options))
        .unwrap_or_else(|_| serde_json::Value::Object(serde_json::Map::new()))
}

/// The same document as [`dataset_to_json`], as compact UTF-8 JSON, written directly without
/// building a `serde_json::Value`.
pub fn dataset_to_json_bytes(obj: &InMemDicomObject, options: &JsonOptions) -> Vec<u8> {
    // As above: writing into a Vec cannot fail.
    serde_json::to_vec(&ser::DatasetJson::root(obj, options)).unwrap_or_else(|_| b"{}".to_vec())
}

/// The document of [`dataset_to_json_bytes`] was longer than the limit it was written within.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the DICOM JSON of the data set exceeds {limit} bytes")]
pub struct TooLarge {
    /// The limit, in bytes.
    pub limit: usize,
}

/// [`dataset_to_json_bytes`], keeping at most `limit` bytes of it: a data set whose JSON is too large never
/// occupies more than `limit` bytes of memory here.
///
/// # Errors
/// [`TooLarge`] when the document is longer than `limit`.
pub fn dataset_to_json_bytes_within(
    obj: &InMemDicomObject,
    options: &JsonOptions,
    limit: usize,
) -> Result<Vec<u8>, TooLarge> {
    let mut out = Bounded {
        // As serde_json::to_vec starts.
        bytes: Vec::with_capacity(128),
        limit,
        over: false,
    };
    // Writing into `Bounded` cannot fail, as into a Vec.
    let written = serde_json::to_writer(&mut out, &ser::DatasetJson::root(obj, options));
    if written.is_err() || out.over {
        return Err(TooLarge { limit });
    }
    Ok(out.bytes)
}

/// A `Vec` that stops growing at `limit` and remembers that it was asked to grow past it. Its writes never fail:
/// a writer that may fail makes serde_json check every one of its many small writes, which made writing half
/// again as slow; the traversal that goes on past the limit costs CPU but no memory.
struct Bounded {
    bytes: Vec<u8>,
    limit: usize,
    over: bool,
}

impl std::io::Write for Bounded {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.bytes.len() + buf.len() <= self.limit {
            self.bytes.extend_from_slice(buf);
        } else {
            self.over = true;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes the same document as [`dataset_to_json_bytes`] into `writer`, e.g. to build the
/// array of a series' metadata in one buffer without a copy per instance.
///
/// # Errors
/// Only those of `writer`.
pub fn write_dataset_json<W: std::io::Write>(
    writer: W,
    obj: &InMemDicomObject,
    options: &JsonOptions,
) -> std::io::Result<()> {
    serde_json::to_writer(writer, &ser::DatasetJson::root(obj, options))
        .map_err(std::io::Error::from)
}

/// Reads a DICOM JSON object into a data set.
///
/// Accepts everything the writer produces plus common variants: numbers given as strings,
/// PN given as a plain string, `"InlineBinary"`/`"BulkDataURI"` wrapped in a one-element array,
/// `null` sequence items (read as empty items), `"Value": null`. Unknown fields in an attribute
/// object are ignored. See the crate docs for how `"BulkDataURI"` is kept.
///
/// # Errors
/// [`JsonError`] naming the attribute (with its sequence path) when the document is not a DICOM
/// JSON object, a key is not a tag, a VR is missing or unknown, or a value does not fit its VR.
pub fn dataset_from_json(value: &serde_json::Value) -> Result<InMemDicomObject, JsonError> {
    match value {
        serde_json::Value::Object(map) => de::read_dataset(map),
        _ => Err(JsonError::NotAnObject {
            location: String::new(),
        }),
    }
}

/// Parses bytes as JSON, then reads them like [`dataset_from_json`].
///
/// # Errors
/// [`JsonError::Syntax`] for invalid JSON, otherwise as [`dataset_from_json`].
pub fn dataset_from_json_slice(bytes: &[u8]) -> Result<InMemDicomObject, JsonError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)?;
    dataset_from_json(&value)
}

/// Filters an already-serialized DICOM JSON object to the tags `keep` accepts (top level only):
/// used by QIDO-RS to return requested/default attributes from precomputed metadata without
/// re-parsing it into a data set. Keys that are not tags are removed. The order of the kept
/// attributes is preserved.
pub fn retain_tags(
    object: &mut serde_json::Map<String, serde_json::Value>,
    keep: &dyn Fn(u32) -> bool,
) {
    object.retain(|key, _| {
        parse_tag_key(key).is_some_and(|Tag(g, e)| keep(u32::from(g) << 16 | u32::from(e)))
    });
}

/// The `"BulkDataURI"` an element carried when it was read from DICOM JSON, if any: the element
/// has a bulk VR (or is Pixel Data) and no bytes yet.
pub fn bulk_data_uri(element: &InMemElement) -> Option<&str> {
    match element.value() {
        DicomValue::Primitive(value) if is_bulk(element.tag(), element.vr()) => {
            ser::stored_bulk_data_uri(value)
        }
        _ => None,
    }
}

/// Whether an attribute's value is bulk data for the purpose of [`BulkDataPolicy`].
pub fn is_bulk(tag: Tag, vr: VR) -> bool {
    matches!(
        vr,
        VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::UN
    ) || tag == tags::PIXEL_DATA
}

/// Standard base64 with padding when writing; padding optional when reading, since some
/// encoders leave it out.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `"GGGGEEEE"` in upper-case hex, without allocating.
pub(crate) fn tag_key(Tag(group, element): Tag) -> [u8; 8] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let value = u32::from(group) << 16 | u32::from(element);
    let mut key = [0u8; 8];
    for (i, digit) in key.iter_mut().enumerate() {
        *digit = HEX[((value >> (28 - 4 * i)) & 0xF) as usize];
    }
    key
}

/// Parses a `"GGGGEEEE"` key (either case); anything else is not a tag.
pub(crate) fn parse_tag_key(key: &str) -> Option<Tag> {
    if key.len() != 8 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let value = u32::from_str_radix(key, 16).ok()?;
    Some(Tag((value >> 16) as u16, (value & 0xFFFF) as u16))
}
