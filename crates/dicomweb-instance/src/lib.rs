//! Inspection of one DICOM Part 10 instance as received by STOW-RS.
//!
//! [`inspect`] reads the instance once, front to back, from any [`std::io::Read`], with memory bounded by the
//! size of its non-bulk attributes (an instance may be gigabytes of pixel data):
//!
//! - every attribute goes into an [`InMemDicomObject`], but bulk ones (OB, OD, OF, OL, OV, OW, UN and Pixel Data,
//!   also inside sequences) without their values, which are skipped without being loaded; text decoded to Unicode with the Specific
//!   Character Set, ISO 2022 code extensions included; a UN element of undefined length is a sequence of implicit
//!   VR items (PS3.5 6.2.2) and goes in as a sequence (VR SQ), as pydicom reads it;
//! - the position of the Pixel Data frames in the file is recorded as absolute byte ranges
//!   ([`PixelDataLayout`]), so that WADO-RS can later serve frame N with a byte-range read of the stored file;
//! - the attributes an archive requires are checked (errors: the instance is rejected);
//! - the other attributes are validated against their VR (warnings in Microsoft's `ErrorComment` format: the
//!   instance is still accepted).
//!
//! This crate owns the parsing and validation rules only. It must never depend on HTTP, storage, indexing or any
//! async runtime: callers hand it bytes and get facts back.
//!
//! ```
//! use dicomweb_instance::{PixelDataLayout, inspect};
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/pydicom/CT_small.dcm");
//! let info = inspect(std::fs::File::open(path)?)?;
//! assert_eq!(info.transfer_syntax_uid, "1.2.840.10008.1.2.1");
//! assert!(info.warnings.is_empty());
//! // 128 x 128, 16 bits: one frame of 32 KiB, readable with a byte-range request.
//! let Some(PixelDataLayout::Native { offset, frame_length, number_of_frames, .. }) = info.pixel_data else {
//!     panic!("CT_small has native pixel data");
//! };
//! assert_eq!((frame_length, number_of_frames), (32768, 1));
//! assert!(offset > 132);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod charset;
mod layout;
mod locate;
mod meta;
mod parse;
mod un;
mod validate;

use std::io::{BufReader, Read};

use dicom_encoding::transfer_syntax::{Codec, TransferSyntaxIndex};
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

pub use locate::{AttributePath, AttributePathError, LocatedValue, byte_swap_width, locate_value};
pub use validate::is_valid_uid;

/// Upper bound on the memory taken by non-bulk attributes (value bytes plus a fixed cost per element, item and
/// fragment). Larger instances are rejected as [`InspectError::NotDicom`]; real instances stay far below it
/// (large RT Structure Sets reach tens of MB).
pub const MAX_METADATA_BYTES: u64 = 256 << 20;

/// Deepest sequence nesting accepted. Real instances nest a handful of levels; the bound keeps recursive
/// processing of the dataset (dropping it, serializing it) from exhausting the stack.
pub const MAX_SEQUENCE_DEPTH: usize = 64;

/// Most encapsulated pixel data fragments recorded for one instance.
pub const MAX_FRAGMENTS: usize = 1 << 20;

/// What [`inspect`] learned about an accepted instance.
#[derive(Debug, Clone)]
pub struct InstanceInfo {
    /// Study Instance UID (0020,000D), padding trimmed, valid per [`is_valid_uid`].
    pub study_instance_uid: String,
    /// Series Instance UID (0020,000E), padding trimmed, valid per [`is_valid_uid`].
    pub series_instance_uid: String,
    /// SOP Instance UID (0008,0018), padding trimmed, valid per [`is_valid_uid`].
    pub sop_instance_uid: String,
    /// SOP Class UID (0008,0016), padding trimmed, valid per [`is_valid_uid`].
    pub sop_class_uid: String,
    /// Transfer Syntax UID (0002,0010) from the file meta information, trimmed.
    pub transfer_syntax_uid: String,
    /// The main dataset WITHOUT bulk values: elements of VR OB, OD, OF, OL, OV, OW, UN and Pixel Data (also
    /// inside sequences) are there with their tag and VR but an empty value ([`dicom_core::PrimitiveValue::Empty`]: their
    /// bytes are never loaded; [`locate_value`] finds them in the file), except that a UN element of undefined
    /// length is read as the sequence it is (VR SQ). Encapsulated Pixel Data is there as an empty OB. String values are decoded with the Specific Character Set of their dataset or item (ISO 2022
    /// code extensions included; undecodable bytes are U+FFFD, with a warning) and otherwise kept as read (padding
    /// included). Sequences have undefined length.
    pub dataset: InMemDicomObject,
    /// Where the frames of the top-level Pixel Data (7FE0,0010) are; `None` when there is no Pixel Data.
    pub pixel_data: Option<PixelDataLayout>,
    /// One `ErrorComment`-style text per non-required top-level attribute whose value (or, for a sequence, one of
    /// its nested values) fails VR validation, in Microsoft's format:
    /// `DICOM100: (0008,0020) - Content "NotAValidDate" does not validate VR DA: ...`; plus one warning saying why
    /// when [`PixelDataLayout::NotRangeReadable`] is reported for a transfer syntax that could have been ranged;
    /// plus one per top-level attribute whose text could not be fully decoded with its Specific Character Set
    /// (`DICOM100: (0010,0010) - Content "..." could not be fully decoded with Specific Character Set ...`), or
    /// whose Specific Character Set is not understood.
    pub warnings: Vec<String>,
}

/// Where the frames of the Pixel Data are in the file, as absolute byte offsets from byte 0 (the preamble).
///
/// Ranges are raw file bytes in the instance's transfer syntax: for Explicit VR Big Endian, 16-bit samples are
/// big endian and must be swapped by whoever serves them as little endian.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PixelDataLayout {
    /// Native pixel data: frame i (0-based) is bytes [offset + i*frame_length, offset + (i+1)*frame_length).
    ///
    /// `length` is the whole Pixel Data value (it may exceed `number_of_frames * frame_length`, e.g. by a pad
    /// byte). For Bits Allocated 1, `frame_length` is `ceil(rows*columns*samples/8)`; such instances are only
    /// reported as `Native` when single-frame, since packed frames after the first are not byte-aligned.
    Native {
        offset: u64,
        length: u64,
        frame_length: u64,
        number_of_frames: u32,
    },
    /// Encapsulated: for each frame, the absolute byte ranges (start, end exclusive) of the fragment VALUES
    /// (without item headers) that make up the frame, in order.
    ///
    /// Fragments are mapped to frames using, in order of preference: the Basic Offset Table if non-empty, the
    /// Extended Offset Table, one fragment per frame when the counts match, all fragments to a single frame, and
    /// finally JPEG/JPEG-LS (FFD8) and JPEG 2000 (FF4F) start markers at fragment starts.
    Encapsulated { frames: Vec<Vec<(u64, u64)>> },
    /// Pixel data exists but cannot be served by byte ranges, so frames need a full decode: the dataset is
    /// deflated (offsets in the file mean nothing), or the frames could not be located (the instance's
    /// `warnings` then say why: missing Rows/Columns, frames larger than the value, multi-frame 1-bit data,
    /// fragments that cannot be mapped to frames...).
    NotRangeReadable,
}

impl PixelDataLayout {
    /// The number of frames whose location is known; `None` for [`PixelDataLayout::NotRangeReadable`].
    pub fn number_of_frames(&self) -> Option<u32> {
        match self {
            PixelDataLayout::Native {
                number_of_frames, ..
            } => Some(*number_of_frames),
            PixelDataLayout::Encapsulated { frames } => u32::try_from(frames.len()).ok(),
            PixelDataLayout::NotRangeReadable => None,
        }
    }
}

/// Why an instance was rejected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Not a readable DICOM Part 10 instance: no "DICM" magic at byte 128, no or unreadable file meta information,
    /// unsupported transfer syntax, truncated or malformed dataset, or resource limits exceeded. The message says
    /// what.
    #[error("not a valid DICOM Part 10 instance: {0}")]
    NotDicom(String),
    /// A required attribute is absent. `tag` is formatted as "(0020,000D)".
    #[error("required attribute {keyword} {tag} is missing")]
    MissingAttribute { keyword: &'static str, tag: String },
    /// A required UID attribute is empty or not valid per [`is_valid_uid`].
    #[error("required attribute {keyword} has an invalid UID {value:?}: {reason}")]
    InvalidUid {
        keyword: &'static str,
        value: String,
        reason: String,
    },
    /// A required non-UID attribute has an invalid value (e.g. PatientID longer than 64 characters).
    #[error("required attribute {keyword} is invalid: {reason}")]
    InvalidAttribute {
        keyword: &'static str,
        reason: String,
    },
}

impl InspectError {
    /// True for failures of the instance's content (missing or invalid required attributes), false when the bytes
    /// are not a readable DICOM instance ([`InspectError::NotDicom`]).
    pub fn is_validation(&self) -> bool {
        !matches!(self, InspectError::NotDicom(_))
    }
}

/// Renders an error with its chain of causes ("a: b: c"): the parser's top-level messages alone ("could not read
/// value") do not say what went wrong.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Inspects one Part 10 instance: `source` is the whole file from byte 0 (128-byte preamble + "DICM" + file meta
/// information + dataset). The source is read once, sequentially, through an internal buffer (no need to wrap it
/// in a `BufReader`).
///
/// Supports implicit and explicit VR little endian, explicit VR big endian, deflated explicit VR little endian
/// (pixel data then reported as [`PixelDataLayout::NotRangeReadable`]) and the encapsulated transfer syntaxes
/// known to dicom-rs; other transfer syntax UIDs are rejected as [`InspectError::NotDicom`].
///
/// # Errors
/// [`InspectError::NotDicom`] when the bytes are not a readable instance (never a panic, whatever the input);
/// the other variants when a required attribute (StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID,
/// SOPClassUID: present and valid per [`is_valid_uid`] after trimming padding; PatientID: present, may be empty,
/// valid LO) is missing or invalid.
pub fn inspect<R: Read>(source: R) -> Result<InstanceInfo, InspectError> {
    // The parser reads headers a few bytes at a time: buffer, whatever the source.
    let mut source = BufReader::new(source);
    let meta = meta::read_file_meta(&mut source)?;
    let source = std::io::Cursor::new(meta.dataset_prefix).chain(source);
    let transfer_syntax_uid = meta
        .table
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_string();
    let Some(transfer_syntax) = TransferSyntaxRegistry.get(&transfer_syntax_uid) else {
        return Err(InspectError::NotDicom(format!(
            "unsupported transfer syntax {transfer_syntax_uid:?}"
        )));
    };
    // Deflated transfer syntaxes compress the whole dataset: parse the inflated stream. Its positions are not file
    // offsets, hence NotRangeReadable below.
    let deflated = matches!(transfer_syntax.codec(), Codec::Dataset(_));
    let parsed = if deflated {
        let inflated = BufReader::new(flate2::bufread::DeflateDecoder::new(source));
        parse::parse_dataset(inflated, transfer_syntax, 0)?
    } else {
        parse::parse_dataset(source, transfer_syntax, meta.dataset_offset)?
    };

    let (study_instance_uid, series_instance_uid, sop_instance_uid, sop_class_uid) =
        validate::check_required(&parsed.dataset)?;
    let mut warnings = parsed.warnings;
    validate::validate_dataset(&parsed.dataset, &mut warnings);
    let pixel_data = parsed.pixel_data.map(|raw| {
        if deflated {
            PixelDataLayout::NotRangeReadable
        } else {
            layout::frame_layout(
                raw,
                parsed.extended_offset_table.as_deref(),
                &parsed.dataset,
                &mut warnings,
            )
        }
    });

    Ok(InstanceInfo {
        study_instance_uid,
        series_instance_uid,
        sop_instance_uid,
        sop_class_uid,
        transfer_syntax_uid,
        dataset: parsed.dataset,
        pixel_data,
        warnings,
    })
}
