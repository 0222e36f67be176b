//! Single pass over the main dataset: builds the [`InMemDicomObject`] of its attributes, bulk ones without their
//! values, and records where the pixel data is.

use std::io::Read;

use dicom_core::dictionary::{DataDictionary, VirtualVr};
use dicom_core::header::{DataElementHeader, Length};
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_encoding::TransferSyntax;
use dicom_encoding::text::SpecificCharacterSet;
use dicom_object::InMemDicomObject;
use dicom_parser::dataset::LazyDataToken;
use dicom_parser::dataset::lazy_read::LazyDataSetReader;
use dicom_parser::stateful::decode::{DynStatefulDecoder, StatefulDecode};

use crate::charset::TextDecoding;
use crate::un::UnAwareDecoder;
use crate::{InspectError, MAX_FRAGMENTS, MAX_METADATA_BYTES, MAX_SEQUENCE_DEPTH, error_chain};

/// Implicit VR Little Endian: the only transfer syntax without VRs, where no element is marked UN.
const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";

/// Most character set warnings kept for one instance (one per top-level attribute at most).
const MAX_CHARSET_WARNINGS: usize = 64;

/// Memory charged per element, item or fragment on top of its value bytes, so that millions of tiny elements
/// also hit [`MAX_METADATA_BYTES`].
const PER_NODE_OVERHEAD: u64 = 64;

/// Where the top-level Pixel Data value is, as positions in the decoded stream.
#[derive(Debug)]
pub(crate) enum RawPixelData {
    Native {
        offset: u64,
        length: u64,
    },
    Encapsulated {
        /// Basic Offset Table entries (empty when the first item is empty).
        basic_offset_table: Vec<u32>,
        fragments: Vec<Fragment>,
    },
}

/// One encapsulated pixel data fragment (an item after the Basic Offset Table).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fragment {
    /// Position of the first value byte (the item header is the 8 bytes before).
    pub start: u64,
    /// Position one past the last value byte.
    pub end: u64,
    /// The value starts with a JPEG/JPEG-LS SOI (FFD8) or JPEG 2000 SOC (FF4F) marker, i.e. likely starts a frame.
    pub starts_with_frame_marker: bool,
}

#[derive(Debug)]
pub(crate) struct ParsedDataset {
    pub dataset: InMemDicomObject,
    pub pixel_data: Option<RawPixelData>,
    /// Extended Offset Table (7FE0,0001) values, when present at the top level.
    pub extended_offset_table: Option<Vec<u64>>,
    /// Text that could not be fully decoded with its Specific Character Set (the value keeps U+FFFD there).
    pub warnings: Vec<String>,
}

fn not_dicom(message: impl Into<String>) -> InspectError {
    InspectError::NotDicom(message.into())
}

/// Parses the main dataset from `source`, which must be positioned at its first byte; `position` is that byte's
/// offset in the stream (so that the recorded pixel data positions are absolute).
pub(crate) fn parse_dataset<S: Read>(
    source: S,
    transfer_syntax: &TransferSyntax,
    position: u64,
) -> Result<ParsedDataset, InspectError> {
    let decoder = DynStatefulDecoder::new_with(
        source,
        transfer_syntax,
        SpecificCharacterSet::default(),
        position,
    )
    .map_err(|e| not_dicom(format!("cannot decode the dataset: {}", error_chain(&e))))?;
    let decoder = UnAwareDecoder::new(decoder, transfer_syntax.uid() != IMPLICIT_VR_LITTLE_ENDIAN);
    let mut reader = LazyDataSetReader::new(decoder);
    let mut builder = DatasetBuilder::new(transfer_syntax);
    while let Some(token) = reader.advance() {
        let token =
            token.map_err(|e| not_dicom(format!("malformed dataset: {}", error_chain(&e))))?;
        // Any error stops the loop before the reader is advanced again: the reader assumes well-formed nesting
        // (it panics on an item header outside any sequence), and `accept` rejects badly nested tokens first.
        builder.accept(token)?;
    }
    builder.finish()
}

/// A sequence or item that has started and not yet ended.
enum Open {
    Item(InMemDicomObject),
    Sequence {
        tag: Tag,
        items: Vec<InMemDicomObject>,
    },
    PixelSequence {
        /// Only the top-level Pixel Data is recorded; icons inside sequences are skipped.
        top_level: bool,
        in_item: bool,
        /// Items completed so far (the first one is the Basic Offset Table).
        items_done: u32,
    },
}

struct DatasetBuilder<'ts> {
    transfer_syntax: &'ts TransferSyntax,
    /// How text values are decoded: from the Specific Character Set (0008,0005) of the dataset, or of the
    /// innermost item that has one (PS3.5 6.1.2.5: an item may declare its own).
    charset: TextDecoding,
    /// The decodings of the enclosing items, restored when an item ends.
    outer_charsets: Vec<TextDecoding>,
    /// Top-level attributes already warned about for their character set.
    charset_warned: Vec<Tag>,
    warnings: Vec<String>,
    /// Pixel Representation (0028,0103) is 1: "US or SS" attributes are SS.
    signed_pixel_data: bool,
    root: InMemDicomObject,
    open: Vec<Open>,
    sequence_depth: usize,
    metadata_bytes: u64,
    pixel_data: Option<RawPixelData>,
    extended_offset_table: Option<Vec<u64>>,
}

/// Bulk values are never loaded: binary "other" VRs, UN, and Pixel Data whatever its VR.
fn is_bulk(header: &DataElementHeader) -> bool {
    header.tag == tags::PIXEL_DATA
        || matches!(
            header.vr,
            VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::UN
        )
}

/// Counts what it is given, so a short read (truncated file) can be told apart from a complete one: the
/// decoder's `read_to`/`skip_bytes` stop silently at end of input.
#[derive(Default)]
struct CountingSink {
    written: u64,
    kept: Vec<u8>,
    keep_up_to: usize,
}

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written += buf.len() as u64;
        let room = self.keep_up_to.saturating_sub(self.kept.len());
        self.kept
            .extend_from_slice(buf.get(..room.min(buf.len())).unwrap_or_default());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Consumes exactly `length` value bytes, keeping the first `keep` of them; fails if the input ends first.
pub(crate) fn consume<D: StatefulDecode>(
    decoder: &mut D,
    length: u32,
    keep: usize,
) -> Result<Vec<u8>, InspectError> {
    let start = decoder.position();
    let mut sink = CountingSink {
        keep_up_to: keep,
        ..CountingSink::default()
    };
    decoder
        .read_to(length, &mut sink)
        .map_err(|e| not_dicom(format!("could not read value: {}", error_chain(&e))))?;
    if sink.written != u64::from(length) {
        return Err(not_dicom(format!(
            "truncated file: value at byte {start} declares {length} bytes but only {} are present",
            sink.written
        )));
    }
    Ok(sink.kept)
}

impl<'ts> DatasetBuilder<'ts> {
    fn new(transfer_syntax: &'ts TransferSyntax) -> Self {
        DatasetBuilder {
            transfer_syntax,
            charset: TextDecoding::default(),
            outer_charsets: Vec::new(),
            charset_warned: Vec::new(),
            warnings: Vec::new(),
            signed_pixel_data: false,
            root: InMemDicomObject::new_empty(),
            open: Vec::new(),
            sequence_depth: 0,
            metadata_bytes: 0,
            pixel_data: None,
            extended_offset_table: None,
        }
    }
}

impl DatasetBuilder<'_> {
    fn charge(&mut self, value_bytes: u64) -> Result<(), InspectError> {
        self.metadata_bytes = self
            .metadata_bytes
            .saturating_add(value_bytes)
            .saturating_add(PER_NODE_OVERHEAD);
        if self.metadata_bytes > MAX_METADATA_BYTES {
            return Err(not_dicom(format!(
                "non-bulk attributes exceed the limit of {MAX_METADATA_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// Puts a bulk attribute into the dataset without its value (see [`crate::InstanceInfo::dataset`]): its
    /// bytes are never loaded, but the attribute is listed, so that metadata can point to it.
    fn put_bulk_placeholder(&mut self, tag: Tag, vr: VR) -> Result<(), InspectError> {
        self.charge(0)?;
        self.current_object()?
            .put(DataElement::new(tag, vr, PrimitiveValue::Empty));
        Ok(())
    }

    /// The object new elements go into: the innermost open item, or the root.
    fn current_object(&mut self) -> Result<&mut InMemDicomObject, InspectError> {
        match self.open.last_mut() {
            None => Ok(&mut self.root),
            Some(Open::Item(object)) => Ok(object),
            Some(_) => Err(not_dicom("data element found directly inside a sequence")),
        }
    }

    fn accept<D: StatefulDecode>(&mut self, token: LazyDataToken<D>) -> Result<(), InspectError> {
        match token {
            // The value follows as `LazyValue`, which carries the header again.
            LazyDataToken::ElementHeader(_) => Ok(()),
            LazyDataToken::LazyValue {
                header,
                mut decoder,
            } => self.accept_value(header, &mut decoder),
            LazyDataToken::SequenceStart { tag, .. } => {
                self.current_object()?;
                self.sequence_depth += 1;
                if self.sequence_depth > MAX_SEQUENCE_DEPTH {
                    return Err(not_dicom(format!(
                        "sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels"
                    )));
                }
                self.charge(0)?;
                self.open.push(Open::Sequence {
                    tag,
                    items: Vec::new(),
                });
                Ok(())
            }
            LazyDataToken::ItemStart { .. } => {
                self.charge(0)?;
                match self.open.last_mut() {
                    Some(Open::Sequence { .. }) => {
                        self.open.push(Open::Item(InMemDicomObject::new_empty()));
                        self.outer_charsets.push(self.charset.clone());
                        Ok(())
                    }
                    Some(Open::PixelSequence { in_item, .. }) if !*in_item => {
                        *in_item = true;
                        Ok(())
                    }
                    _ => Err(not_dicom("item found outside a sequence")),
                }
            }
            LazyDataToken::ItemEnd => match self.open.last_mut() {
                Some(Open::Item(_)) => {
                    if let (Some(Open::Item(item)), Some(Open::Sequence { items, .. })) =
                        (self.open.pop(), self.open.last_mut())
                    {
                        items.push(item);
                    }
                    if let Some(charset) = self.outer_charsets.pop() {
                        self.charset = charset;
                    }
                    Ok(())
                }
                Some(Open::PixelSequence {
                    in_item,
                    items_done,
                    ..
                }) if *in_item => {
                    *in_item = false;
                    *items_done = items_done.saturating_add(1);
                    Ok(())
                }
                _ => Err(not_dicom("item delimiter found outside an item")),
            },
            LazyDataToken::SequenceEnd => match self.open.last() {
                Some(Open::Sequence { .. }) => {
                    if let Some(Open::Sequence { tag, items }) = self.open.pop() {
                        self.sequence_depth = self.sequence_depth.saturating_sub(1);
                        // Undefined length: items may have lost their bulk elements, so the original length
                        // would be wrong if the dataset is ever re-encoded.
                        let sequence = DataSetSequence::new(items, Length::UNDEFINED);
                        self.current_object()?
                            .put(DataElement::new(tag, VR::SQ, sequence));
                    }
                    Ok(())
                }
                Some(Open::PixelSequence { in_item: false, .. }) => {
                    self.open.pop();
                    // Only Pixel Data is ever encapsulated (PS3.5 A.4).
                    self.put_bulk_placeholder(tags::PIXEL_DATA, VR::OB)
                }
                _ => Err(not_dicom("sequence delimiter found outside a sequence")),
            },
            LazyDataToken::PixelSequenceStart => {
                self.current_object()?;
                let top_level = self.open.is_empty();
                if top_level {
                    self.pixel_data = Some(RawPixelData::Encapsulated {
                        basic_offset_table: Vec::new(),
                        fragments: Vec::new(),
                    });
                }
                self.open.push(Open::PixelSequence {
                    top_level,
                    in_item: false,
                    items_done: 0,
                });
                Ok(())
            }
            LazyDataToken::LazyItemValue { len, mut decoder } => {
                self.accept_fragment(len, &mut decoder)
            }
            other => Err(not_dicom(format!(
                "unexpected token in dataset: {:?}",
                other.repr()
            ))),
        }
    }

    fn accept_value<D: StatefulDecode>(
        &mut self,
        header: DataElementHeader,
        decoder: &mut D,
    ) -> Result<(), InspectError> {
        let top_level = self.open.is_empty();
        self.current_object()?;
        if header.tag.group() == 0xFFFE {
            // Item and delimiter tags are only meaningful inside sequences, where they never reach here.
            return Err(not_dicom(format!(
                "item or delimiter tag {} found outside a sequence",
                header.tag
            )));
        }
        let Some(length) = header.len.get() else {
            return Err(not_dicom(format!(
                "element {} has an undefined length",
                header.tag
            )));
        };
        if header.tag == tags::PIXEL_DATA {
            if top_level {
                self.pixel_data = Some(RawPixelData::Native {
                    offset: decoder.position(),
                    length: u64::from(length),
                });
            }
            consume(decoder, length, 0)?;
            return self.put_bulk_placeholder(header.tag, header.vr);
        }
        if top_level && header.tag == tags::EXTENDED_OFFSET_TABLE {
            self.charge(u64::from(length))?;
            let bytes = consume(decoder, length, length as usize)?;
            // Only encapsulated transfer syntaxes use it, and they are all little endian.
            self.extended_offset_table = Some(
                bytes
                    .chunks_exact(8)
                    .map(|chunk| {
                        let mut word = [0u8; 8];
                        word.copy_from_slice(chunk);
                        u64::from_le_bytes(word)
                    })
                    .collect(),
            );
            return self.put_bulk_placeholder(header.tag, header.vr);
        }
        if is_bulk(&header) {
            consume(decoder, length, 0)?;
            return self.put_bulk_placeholder(header.tag, header.vr);
        }
        self.charge(u64::from(length))?;
        // The value bytes are collected first and decoded from memory: the decoder would allocate the declared
        // length up front, so a small hostile file could claim 4 GiB; collected bytes grow only as they arrive.
        let bytes = consume(decoder, length, length as usize)?;
        let mut header = header;
        if self.signed_pixel_data
            && StandardDataDictionary
                .by_tag(header.tag)
                .map(|entry| entry.vr)
                == Some(VirtualVr::Xs)
        {
            // As dicom-object does: "US or SS" attributes follow Pixel Representation.
            header.vr = VR::SS;
        }
        let value = if let Some(value) = self.decode_extended_text(&header, &bytes) {
            value
        } else {
            let mut value_decoder = DynStatefulDecoder::new_with(
                bytes.as_slice(),
                self.transfer_syntax,
                self.charset.dicom_rs(),
                0,
            )
            .map_err(|e| not_dicom(format!("cannot decode the dataset: {}", error_chain(&e))))?;
            value_decoder.read_value_preserved(&header).map_err(|e| {
                not_dicom(format!(
                    "could not read the value of {}: {}",
                    header.tag,
                    error_chain(&e)
                ))
            })?
        };
        // The decoder of the whole stream used to track these two; it no longer sees values, so this does.
        if header.tag == tags::SPECIFIC_CHARACTER_SET {
            let code = value.to_str();
            let (decoding, problem) = TextDecoding::from_specific_character_set(&code);
            if let Some(decoding) = decoding {
                self.charset = decoding;
            }
            if let Some(problem) = problem {
                self.warn_charset(
                    header.tag,
                    format!("Content \"{code}\" of Specific Character Set: {problem}"),
                );
            }
        } else if header.tag == tags::PIXEL_REPRESENTATION {
            self.signed_pixel_data = value.to_int::<u16>().is_ok_and(|r| r != 0);
        }
        self.current_object()?
            .put(DataElement::new(header.tag, header.vr, value));
        Ok(())
    }

    /// The value of a text element whose character set uses code extensions, decoded here (dicom-rs cannot);
    /// `None` for every other value, which dicom-rs decodes.
    fn decode_extended_text(
        &mut self,
        header: &DataElementHeader,
        bytes: &[u8],
    ) -> Option<PrimitiveValue> {
        // The VRs whose values the Specific Character Set applies to (PS3.5 6.1.2.3).
        let multi_valued = match header.vr {
            VR::SH | VR::LO | VR::PN | VR::UC => true,
            VR::ST | VR::LT | VR::UT => false,
            _ => return None,
        };
        let code = self.charset.iso2022_code()?;
        if bytes.is_empty() {
            return Some(PrimitiveValue::Empty);
        }
        let (text, problem) = self.charset.decode(bytes, header.vr == VR::PN);
        if let Some(problem) = problem {
            // As long as validation warnings quote at most (MAX_QUOTED_CHARS in validate.rs).
            let unpadded = text.trim_end_matches(['\0', ' ']);
            let mut quoted: String = unpadded.chars().take(1024).collect();
            if quoted.len() < unpadded.len() {
                quoted.push_str("...");
            }
            let message = format!(
                "Content \"{quoted}\" could not be fully decoded with Specific Character Set \"{code}\": {} \
                 (replaced by U+FFFD)",
                problem.describe()
            );
            self.warn_charset(header.tag, message);
        }
        Some(if multi_valued {
            // Decoding resets to the initial sets at each '\' and never produces one from another byte, so
            // splitting the text is splitting the values.
            PrimitiveValue::Strs(text.split('\\').map(str::to_owned).collect())
        } else {
            PrimitiveValue::Str(text)
        })
    }

    /// Records a character set warning, once per top-level attribute (a nested value is reported under its
    /// top-level sequence, as validation warnings are).
    fn warn_charset(&mut self, tag: Tag, message: String) {
        let top_level_tag = self
            .open
            .iter()
            .find_map(|open| match open {
                Open::Sequence { tag, .. } => Some(*tag),
                _ => None,
            })
            .unwrap_or(tag);
        if self.charset_warned.contains(&top_level_tag)
            || self.charset_warned.len() >= MAX_CHARSET_WARNINGS
        {
            return;
        }
        self.charset_warned.push(top_level_tag);
        self.warnings.push(format!(
            "DICOM100: ({:04x},{:04x}) - {message}",
            top_level_tag.group(),
            top_level_tag.element()
        ));
    }

    fn accept_fragment<D: StatefulDecode>(
        &mut self,
        length: u32,
        decoder: &mut D,
    ) -> Result<(), InspectError> {
        let (top_level, item_index) = match self.open.last() {
            Some(Open::PixelSequence {
                top_level,
                in_item: true,
                items_done,
            }) => (*top_level, *items_done),
            _ => return Err(not_dicom("pixel data fragment found outside Pixel Data")),
        };
        if !top_level {
            consume(decoder, length, 0)?;
            return Ok(());
        }
        let start = decoder.position();
        if item_index == 0 {
            self.charge(u64::from(length))?;
            let bytes = consume(decoder, length, length as usize)?;
            if let Some(RawPixelData::Encapsulated {
                basic_offset_table, ..
            }) = &mut self.pixel_data
            {
                // Encapsulated transfer syntaxes are all little endian.
                *basic_offset_table = bytes
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
            }
            return Ok(());
        }
        self.charge(0)?;
        // Reading the first two bytes is enough to recognise a frame start marker.
        let head = consume(decoder, length, 2)?;
        if let Some(RawPixelData::Encapsulated { fragments, .. }) = &mut self.pixel_data {
            if fragments.len() >= MAX_FRAGMENTS {
                return Err(not_dicom(format!(
                    "more than {MAX_FRAGMENTS} pixel data fragments"
                )));
            }
            fragments.push(Fragment {
                start,
                end: start + u64::from(length),
                starts_with_frame_marker: matches!(head.as_slice(), [0xFF, 0xD8] | [0xFF, 0x4F]),
            });
        }
        Ok(())
    }

    fn finish(self) -> Result<ParsedDataset, InspectError> {
        if !self.open.is_empty() {
            return Err(not_dicom(
                "truncated file: the dataset ends inside an unterminated sequence",
            ));
        }
        Ok(ParsedDataset {
            dataset: self.root,
            pixel_data: self.pixel_data,
            extended_offset_table: self.extended_offset_table,
            warnings: self.warnings,
        })
    }
}
