//! Finding one attribute's value in a stored file, by its path, without loading anything else: what a WADO-RS
//! bulk data request needs (the metadata gives a `BulkDataURI` per bulk value, [`crate::InstanceInfo::dataset`]
//! keeps none of their bytes).

use std::fmt;
use std::io::{BufReader, Read};
use std::str::FromStr;

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::{Codec, Endianness, TransferSyntaxIndex};
use dicom_parser::dataset::LazyDataToken;
use dicom_parser::dataset::lazy_read::LazyDataSetReader;
use dicom_parser::stateful::decode::{DynStatefulDecoder, StatefulDecode};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::{InspectError, MAX_SEQUENCE_DEPTH, error_chain, meta, parse};

/// Implicit VR Little Endian: the only transfer syntax without VRs.
const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";

/// The path of an attribute from the top-level dataset: the items it is nested in (each a sequence tag and a
/// 0-based item index), then its tag.
///
/// Its text form is the one of `dicomweb-json`'s `BulkDataURI`s: `7FE00010` at the top level,
/// `00081110.0.00100020` for (0010,0020) in the first item of (0008,1110); tags are 8 hexadecimal digits
/// (either case), and `/` is accepted in place of `.`.
///
/// ```
/// use dicomweb_instance::AttributePath;
///
/// let path: AttributePath = "00880200.0.7fe00010".parse()?;
/// assert_eq!(path.to_string(), "00880200.0.7FE00010");
/// assert_eq!(path.items().len(), 1);
/// assert!("7FE0001".parse::<AttributePath>().is_err());
/// # Ok::<(), dicomweb_instance::AttributePathError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttributePath {
    items: Vec<(Tag, u32)>,
    tag: Tag,
}

/// Why a text is not an [`AttributePath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{text}\" is not an attribute path ({reason}): expected GGGGEEEE, or SSSSSSSS.i.GGGGEEEE inside item i of sequence SSSSSSSS"
)]
pub struct AttributePathError {
    text: String,
    reason: &'static str,
}

impl AttributePath {
    /// A top-level attribute.
    pub fn top_level(tag: Tag) -> Self {
        AttributePath {
            items: Vec::new(),
            tag,
        }
    }

    /// The items the attribute is nested in, outermost first: (sequence tag, 0-based item index).
    pub fn items(&self) -> &[(Tag, u32)] {
        &self.items
    }

    /// The attribute's own tag.
    pub fn tag(&self) -> Tag {
        self.tag
    }
}

impl FromStr for AttributePath {
    type Err = AttributePathError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| AttributePathError {
            text: text.chars().take(200).collect(),
            reason,
        };
        let parse_tag = |part: &str| {
            if part.len() != 8 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(error("a tag is not 8 hexadecimal digits"));
            }
            let number = u32::from_str_radix(part, 16).map_err(|_| error("bad tag"))?;
            Ok(Tag((number >> 16) as u16, (number & 0xFFFF) as u16))
        };
        let parts: Vec<&str> = text.split(['.', '/']).collect();
        if parts.len().is_multiple_of(2) {
            return Err(error(
                "a sequence is not followed by an item index and a tag",
            ));
        }
        if parts.len() / 2 > MAX_SEQUENCE_DEPTH {
            return Err(error("nested too deep"));
        }
        let mut items = Vec::with_capacity(parts.len() / 2);
        for pair in parts[..parts.len() - 1].chunks_exact(2) {
            let index = pair[1]
                .parse::<u32>()
                .ok()
                .filter(|_| pair[1].bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| error("an item index is not a number"))?;
            items.push((parse_tag(pair[0])?, index));
        }
        Ok(AttributePath {
            items,
            tag: parse_tag(parts[parts.len() - 1])?,
        })
    }
}

impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (Tag(group, element), index) in &self.items {
            write!(f, "{group:04X}{element:04X}.{index}.")?;
        }
        let Tag(group, element) = self.tag;
        write!(f, "{group:04X}{element:04X}")
    }
}

/// Where an attribute's value is in a file, as [`locate_value`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocatedValue {
    /// The value field is the bytes `[offset, offset + length)` of the file (absolute, from byte 0), or, when
    /// `inflated` is `Some`, those bytes of the inflated dataset (a deflated transfer syntax: offsets in the file
    /// mean nothing), which are then `inflated` itself.
    Value {
        /// The VR the file gives the attribute (for Implicit VR files, the dictionary's; UN if unknown).
        vr: VR,
        offset: u64,
        length: u64,
        /// The file is big endian: multi-byte numbers in the value (see [`byte_swap_width`]) are big endian.
        big_endian: bool,
        inflated: Option<Vec<u8>>,
    },
    /// Encapsulated Pixel Data (fragments, not one value).
    Encapsulated,
}

/// The width of the numbers of a value of `vr` whose bytes a big-endian file stores reversed (2 for OW, US,
/// SS, AT; 4 for OF, OL, FL, UL, SL; 8 for OD, OV, FD, SV, UV), or `None` for a VR of bytes or text.
pub fn byte_swap_width(vr: VR) -> Option<usize> {
    match vr {
        VR::OW | VR::US | VR::SS | VR::AT => Some(2),
        VR::OF | VR::OL | VR::FL | VR::UL | VR::SL => Some(4),
        VR::OD | VR::OV | VR::FD | VR::SV | VR::UV => Some(8),
        _ => None,
    }
}

/// Finds the value of the attribute at `path` in a Part 10 file read from byte 0, reading the file only up to
/// the end of that value's header (values before it are skipped, not kept). `Ok(None)` when the file has no
/// such attribute. Items are counted as [`crate::inspect`] reads them, UN sequences of undefined length
/// included, so the paths of the `BulkDataURI`s of an instance's metadata find their values.
///
/// For a deflated transfer syntax the value itself is read and returned (at most `max_inflated_bytes` of it:
/// a longer one is [`InspectError::NotDicom`] saying so).
///
/// # Errors
/// [`InspectError::NotDicom`] when the file cannot be read up to the attribute.
pub fn locate_value<R: Read>(
    source: R,
    path: &AttributePath,
    max_inflated_bytes: u64,
) -> Result<Option<LocatedValue>, InspectError> {
    let mut source = BufReader::new(source);
    let meta = meta::read_file_meta(&mut source)?;
    let source = std::io::Cursor::new(meta.dataset_prefix).chain(source);
    let transfer_syntax_uid = meta.table.transfer_syntax().trim_end_matches(['\0', ' ']);
    let Some(transfer_syntax) = TransferSyntaxRegistry.get(transfer_syntax_uid) else {
        return Err(InspectError::NotDicom(format!(
            "unsupported transfer syntax {transfer_syntax_uid:?}"
        )));
    };
    let big_endian = transfer_syntax.endianness() == Endianness::Big;
    let explicit_vr = transfer_syntax.uid() != IMPLICIT_VR_LITTLE_ENDIAN;
    let walk = Walk {
        path,
        big_endian,
        max_inflated_bytes,
    };
    if matches!(transfer_syntax.codec(), Codec::Dataset(_)) {
        let inflated = BufReader::new(flate2::bufread::DeflateDecoder::new(source));
        walk.run(inflated, transfer_syntax, 0, explicit_vr, true)
    } else {
        walk.run(
            source,
            transfer_syntax,
            meta.dataset_offset,
            explicit_vr,
            false,
        )
    }
}

fn not_dicom(message: impl Into<String>) -> InspectError {
    InspectError::NotDicom(message.into())
}

/// A sequence or item open at the reader's position.
enum Open {
    Sequence { tag: Tag, items_seen: u32 },
    Item { sequence: Tag, index: u32 },
    PixelSequence,
    PixelItem,
}

struct Walk<'p> {
    path: &'p AttributePath,
    big_endian: bool,
    max_inflated_bytes: u64,
}

impl Walk<'_> {
    fn run<S: Read>(
        &self,
        source: S,
        transfer_syntax: &dicom_encoding::TransferSyntax,
        position: u64,
        explicit_vr: bool,
        inflated: bool,
    ) -> Result<Option<LocatedValue>, InspectError> {
        let decoder = DynStatefulDecoder::new_with(
            source,
            transfer_syntax,
            dicom_encoding::text::SpecificCharacterSet::default(),
            position,
        )
        .map_err(|e| not_dicom(format!("cannot decode the dataset: {}", error_chain(&e))))?;
        let decoder = crate::un::UnAwareDecoder::new(decoder, explicit_vr);
        let mut reader = LazyDataSetReader::new(decoder);
        let mut open: Vec<Open> = Vec::new();
        while let Some(token) = reader.advance() {
            let token =
                token.map_err(|e| not_dicom(format!("malformed dataset: {}", error_chain(&e))))?;
            match token {
                LazyDataToken::ElementHeader(_) => {}
                LazyDataToken::LazyValue {
                    header,
                    mut decoder,
                } => {
                    if open.is_empty()
                        && header.tag > self.path.items.first().map_or(self.path.tag, |i| i.0)
                    {
                        // Top-level attributes come in ascending order: the one asked for is not there.
                        return Ok(None);
                    }
                    let Some(length) = header.len.get() else {
                        return Err(not_dicom(format!(
                            "element {} has an undefined length",
                            header.tag
                        )));
                    };
                    if self.is_target(&open, header.tag) {
                        let offset = decoder.position();
                        let inflated = if inflated {
                            if u64::from(length) > self.max_inflated_bytes {
                                return Err(not_dicom(format!(
                                    "the value of {} is {length} bytes, more than the {} read from a deflated \
                                     dataset",
                                    header.tag, self.max_inflated_bytes
                                )));
                            }
                            Some(parse::consume(&mut decoder, length, length as usize)?)
                        } else {
                            None
                        };
                        return Ok(Some(LocatedValue::Value {
                            vr: header.vr,
                            offset,
                            length: u64::from(length),
                            big_endian: self.big_endian,
                            inflated,
                        }));
                    }
                    parse::consume(&mut decoder, length, 0)?;
                }
                LazyDataToken::SequenceStart { tag, .. } => {
                    if open.is_empty()
                        && self.path.items.first().map_or(self.path.tag, |i| i.0) < tag
                    {
                        return Ok(None);
                    }
                    if open.len() / 2 >= MAX_SEQUENCE_DEPTH {
                        return Err(not_dicom(format!(
                            "sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels"
                        )));
                    }
                    open.push(Open::Sequence { tag, items_seen: 0 });
                }
                LazyDataToken::ItemStart { .. } => match open.last_mut() {
                    Some(Open::Sequence { tag, items_seen }) => {
                        let item = Open::Item {
                            sequence: *tag,
                            index: *items_seen,
                        };
                        *items_seen = items_seen.saturating_add(1);
                        open.push(item);
                    }
                    Some(Open::PixelSequence) => open.push(Open::PixelItem),
                    _ => return Err(not_dicom("item found outside a sequence")),
                },
                LazyDataToken::ItemEnd => match open.last() {
                    Some(Open::Item { .. } | Open::PixelItem) => {
                        open.pop();
                    }
                    _ => return Err(not_dicom("item delimiter found outside an item")),
                },
                LazyDataToken::SequenceEnd => match open.last() {
                    Some(Open::Sequence { .. } | Open::PixelSequence) => {
                        open.pop();
                    }
                    _ => return Err(not_dicom("sequence delimiter found outside a sequence")),
                },
                LazyDataToken::PixelSequenceStart => {
                    if matches!(
                        open.last(),
                        Some(Open::Sequence { .. } | Open::PixelSequence)
                    ) {
                        return Err(not_dicom("pixel data found directly inside a sequence"));
                    }
                    if self.is_target(&open, tags::PIXEL_DATA) {
                        return Ok(Some(LocatedValue::Encapsulated));
                    }
                    open.push(Open::PixelSequence);
                }
                LazyDataToken::LazyItemValue { len, mut decoder } => {
                    if !matches!(open.last(), Some(Open::PixelItem)) {
                        return Err(not_dicom("pixel data fragment found outside Pixel Data"));
                    }
                    parse::consume(&mut decoder, len, 0)?;
                }
                other => {
                    return Err(not_dicom(format!(
                        "unexpected token in dataset: {:?}",
                        other.repr()
                    )));
                }
            }
        }
        Ok(None)
    }

    /// Whether an element `tag` read inside the `open` items is the one asked for.
    fn is_target(&self, open: &[Open], tag: Tag) -> bool {
        if tag != self.path.tag {
            return false;
        }
        let mut items = open.iter().filter_map(|o| match o {
            Open::Item { sequence, index } => Some((*sequence, *index)),
            _ => None,
        });
        // Elements are only read directly inside items (the reader rejects others), so the open items are the
        // element's whole path.
        let mut wanted = self.path.items.iter();
        loop {
            match (items.next(), wanted.next()) {
                (None, None) => return true,
                (Some(a), Some(b)) if a == *b => {}
                _ => return false,
            }
        }
    }
}
