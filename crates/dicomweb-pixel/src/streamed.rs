//! Transcoding an instance frame by frame, as it is sent, with memory bounded by a few frames whatever the
//! instance's size ([`crate::transcode`] holds the whole instance).
//!
//! The caller reads the stored file by byte ranges (it knows where the frames are): the bytes before the
//! first frame (file meta, data set, Pixel Data header), then each frame, then what follows the Pixel Data.
//! [`StreamedTranscode::start`] gives the new file's head with its first frame, [`FrameWriter::frame`] each
//! frame after, and [`FrameWriter::end`] what closes the file. Concatenated, they are the Part 10 file in the
//! target syntax: the same data set as [`crate::transcode`] writes, but for the Basic Offset Table of an
//! encapsulated target, left empty (PS3.5 A.4 allows it; frames are one fragment each), since the frames'
//! sizes are not known when the head is sent.
//!
//! Not streamed ([`why_not_streamable`]): a deflated source or target (a deflated data set cannot be read or
//! written by frame), and a lossy target (its Lossy Image Compression Ratio, in the head, depends on every
//! frame's size).

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use crate::{
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN,
    FrameGeometry, IMPLICIT_VR_LITTLE_ENDIAN, TranscodeError,
};

/// The largest native Pixel Data value a streamed transcode writes: a defined length must fit in 32 bits
/// (0xFFFFFFFF means undefined).
const MAX_NATIVE_VALUE_BYTES: u64 = 0xFFFF_FFFE;

/// Why an instance stored in `from` cannot be transcoded to `to` frame by frame, or `None` when it can
/// (any pair [`crate::can_transcode`] accepts, but for those listed in the module documentation).
pub fn why_not_streamable(from: &str, to: &str) -> Option<String> {
    if !crate::can_transcode(from, to) {
        return Some(format!("transcoding from {from} to {to} is not supported"));
    }
    if from == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN || to == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN {
        return Some("a deflated data set is inflated or deflated whole".into());
    }
    if crate::is_lossy(to) {
        return Some(
            "a lossy target's compression ratio is known only once every frame is encoded".into(),
        );
    }
    None
}

/// A transcode of one instance, frame by frame, before its first frame: the stored data set up to its Pixel
/// Data, read.
pub struct StreamedTranscode {
    head: DefaultDicomObject,
    from: String,
    to: String,
    geometry: FrameGeometry,
    frames: u32,
}

impl StreamedTranscode {
    /// Reads `head`, the stored file from its first byte (preamble) to at least the end of its Pixel Data
    /// element's header (bytes past it are ignored), for a transcode to `to` of its `frames` frames.
    pub fn new(head: &[u8], to: &str, frames: u32) -> Result<Self, TranscodeError> {
        let unreadable = |why: String| TranscodeError::Unreadable(why);
        let after_preamble = head
            .get(128..)
            .ok_or_else(|| unreadable("shorter than a preamble".into()))?;
        let object = OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .from_reader(after_preamble)
            .map_err(|e| unreadable(e.to_string()))?;
        let from = object
            .meta()
            .transfer_syntax()
            .trim_end_matches(['\0', ' '])
            .to_owned();
        if let Some(reason) = why_not_streamable(&from, to) {
            return Err(TranscodeError::Unsupported {
                from: format!("{from} ({reason})"),
                to: to.to_owned(),
            });
        }
        if frames == 0 {
            return Err(unreadable("the instance has no frame".into()));
        }
        let geometry = crate::encode::geometry_of(&object)?;
        Ok(StreamedTranscode {
            head: object,
            from,
            to: to.to_owned(),
            geometry,
            frames,
        })
    }

    /// The transfer syntax the instance is stored in.
    pub fn stored_syntax(&self) -> &str {
        &self.from
    }

    /// Transcodes the first frame (its stored bytes: the fragments of an encapsulated frame, the native
    /// frame's bytes as stored, big endian included) and gives the head of the new file with that frame, and
    /// the writer of the frames after it. `trailing` is what the stored file holds after its Pixel Data
    /// element (usually nothing): it is re-encoded into what [`FrameWriter::end`] gives.
    pub fn start(
        self,
        first: Vec<Vec<u8>>,
        trailing: &[u8],
    ) -> Result<(Vec<u8>, FrameWriter), TranscodeError> {
        let StreamedTranscode {
            mut head,
            from,
            to,
            geometry,
            frames,
        } = self;
        let unwritable = |e: &dyn std::fmt::Display| TranscodeError::Unwritable {
            to: to.clone(),
            reason: e.to_string(),
        };
        let writer = FrameWriter {
            frames_from: if crate::is_native(&from) {
                EXPLICIT_VR_LITTLE_ENDIAN.to_owned()
            } else {
                from.clone()
            },
            swap_bits: (from == EXPLICIT_VR_BIG_ENDIAN).then_some(geometry.bits_allocated),
            encapsulated: !crate::is_native(&to),
            to: to.clone(),
            geometry,
            frame_length: 0,
            photometric_interpretation: String::new(),
            planar_configuration: 0,
            end: Vec::new(),
            length: None,
        };
        let first = writer.transcoded(first)?;
        let target = TransferSyntaxRegistry
            .get(&to)
            .ok_or_else(|| unwritable(&"the target transfer syntax is not registered"))?;

        // The attributes that describe the pixels, as the whole-instance transcode sets them.
        head.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(first.photometric_interpretation.as_str()),
        ));
        if writer.geometry.samples_per_pixel > 1 {
            head.put(DataElement::new(
                tags::PLANAR_CONFIGURATION,
                VR::US,
                PrimitiveValue::from(first.planar_configuration),
            ));
        }
        if from != to && crate::decode::LOSSY.contains(&from.as_str()) {
            head.put(DataElement::new(
                tags::LOSSY_IMAGE_COMPRESSION,
                VR::CS,
                PrimitiveValue::from("01"),
            ));
        }
        for tag in [
            tags::EXTENDED_OFFSET_TABLE,
            tags::EXTENDED_OFFSET_TABLE_LENGTHS,
            tags::ENCAPSULATED_PIXEL_DATA_VALUE_TOTAL_LENGTH,
        ] {
            head.remove_element(tag);
        }
        head.meta_mut().set_transfer_syntax(target);
        let mut out = Vec::with_capacity(64 * 1024 + first.bytes.len());
        head.write_all(&mut out).map_err(|e| unwritable(&e))?;

        // What follows the Pixel Data, in the target syntax.
        let mut end = Vec::new();
        if writer.encapsulated {
            end.extend_from_slice(&SEQUENCE_DELIMITATION_ITEM);
        } else if (first.bytes.len() as u64 * u64::from(frames)) % 2 == 1 {
            end.push(0); // values have even lengths
        }
        if !trailing.is_empty() {
            let stored = TransferSyntaxRegistry
                .get(&from)
                .ok_or_else(|| unwritable(&"the stored transfer syntax is not registered"))?;
            let after = InMemDicomObject::read_dataset_with_ts(trailing, stored).map_err(|e| {
                TranscodeError::Unreadable(format!("what follows the Pixel Data: {e}"))
            })?;
            after
                .write_dataset_with_ts(&mut end, target)
                .map_err(|e| unwritable(&e))?;
        }

        // The Pixel Data element's header, then the first frame.
        let mut writer = FrameWriter {
            frame_length: first.bytes.len() as u64,
            photometric_interpretation: first.photometric_interpretation,
            planar_configuration: first.planar_configuration,
            end,
            ..writer
        };
        out.extend_from_slice(&PIXEL_DATA_TAG);
        if writer.encapsulated {
            out.extend_from_slice(b"OB\0\0");
            out.extend_from_slice(&u32::MAX.to_le_bytes());
            out.extend_from_slice(&ITEM_TAG);
            out.extend_from_slice(&0u32.to_le_bytes()); // an empty Basic Offset Table
            writer.item_header(&mut out, first.bytes.len())?;
            out.extend_from_slice(&first.bytes);
        } else {
            // The frames, and the pad byte `end` starts with when they add up to an odd length.
            let frames_length = writer.frame_length * u64::from(frames);
            let value = frames_length + frames_length % 2;
            if value > MAX_NATIVE_VALUE_BYTES {
                return Err(TranscodeError::TooLarge {
                    bytes: value,
                    limit: MAX_NATIVE_VALUE_BYTES,
                });
            }
            if to != IMPLICIT_VR_LITTLE_ENDIAN {
                out.extend_from_slice(if writer.geometry.bits_allocated > 8 {
                    b"OW\0\0"
                } else {
                    b"OB\0\0"
                });
            }
            out.extend_from_slice(&(value as u32).to_le_bytes());
            out.extend_from_slice(&first.bytes);
            writer.length = Some(
                out.len() as u64
                    + writer.frame_length * u64::from(frames - 1)
                    + writer.end.len() as u64,
            );
        }
        Ok((out, writer))
    }
}

/// (7FE0,0010) in little endian.
const PIXEL_DATA_TAG: [u8; 4] = [0xE0, 0x7F, 0x10, 0x00];
/// (FFFE,E000), an item.
const ITEM_TAG: [u8; 4] = [0xFE, 0xFF, 0x00, 0xE0];
/// (FFFE,E0DD) with length 0, closing the encapsulated Pixel Data.
const SEQUENCE_DELIMITATION_ITEM: [u8; 8] = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];

/// Gives the frames after the first of a streamed transcode ([`StreamedTranscode::start`]), each as the
/// bytes it adds to the new file, and what ends the file. Shareable: frames can be transcoded on several
/// threads, and their bytes sent in order.
#[derive(Debug, Clone)]
pub struct FrameWriter {
    /// What the frames are once read (native frames after a byte swap are little endian).
    frames_from: String,
    to: String,
    geometry: FrameGeometry,
    /// Bits Allocated of big-endian native frames, swapped to little endian before anything else.
    swap_bits: Option<u16>,
    encapsulated: bool,
    /// The first frame's size in the new file: every native frame has it.
    frame_length: u64,
    photometric_interpretation: String,
    planar_configuration: u16,
    end: Vec<u8>,
    length: Option<u64>,
}

impl FrameWriter {
    /// The size of the whole new file when it is known before its frames are transcoded (a native target).
    pub fn length(&self) -> Option<u64> {
        self.length
    }

    /// A frame after the first, from its stored bytes (as [`StreamedTranscode::start`] takes them): for an
    /// encapsulated target its item (header and fragment), for a native one its bytes.
    pub fn frame(&self, stored: Vec<Vec<u8>>) -> Result<Vec<u8>, TranscodeError> {
        let frame = self.transcoded(stored)?;
        // Every frame must be described as the head describes the first.
        if frame.photometric_interpretation != self.photometric_interpretation
            || frame.planar_configuration != self.planar_configuration
        {
            return Err(self.unwritable(format!(
                "a frame came out as {} (planar configuration {}), unlike the first ({}, {})",
                frame.photometric_interpretation,
                frame.planar_configuration,
                self.photometric_interpretation,
                self.planar_configuration
            )));
        }
        if !self.encapsulated {
            if frame.bytes.len() as u64 != self.frame_length {
                return Err(self.unwritable(format!(
                    "a frame came out of {} bytes, the first of {}",
                    frame.bytes.len(),
                    self.frame_length
                )));
            }
            return Ok(frame.bytes);
        }
        let mut out = Vec::with_capacity(8 + frame.bytes.len());
        self.item_header(&mut out, frame.bytes.len())?;
        out.extend_from_slice(&frame.bytes);
        Ok(out)
    }

    /// What closes the new file after its last frame.
    pub fn end(&self) -> &[u8] {
        &self.end
    }

    fn transcoded(&self, stored: Vec<Vec<u8>>) -> Result<crate::EncodedFrame, TranscodeError> {
        let stored = match self.swap_bits {
            Some(bits) => stored
                .into_iter()
                .map(|mut piece| {
                    crate::frame_to_little_endian(&mut piece, bits);
                    piece
                })
                .collect(),
            None => stored,
        };
        crate::encode::transcode_frame_described(
            &self.frames_from,
            &self.to,
            &self.geometry,
            stored,
        )
    }

    fn item_header(&self, out: &mut Vec<u8>, length: usize) -> Result<(), TranscodeError> {
        let length = u32::try_from(length)
            .ok()
            .filter(|&l| l < u32::MAX)
            .ok_or_else(|| {
                self.unwritable("a frame of 4 GiB or more cannot be one fragment".into())
            })?;
        out.extend_from_slice(&ITEM_TAG);
        out.extend_from_slice(&length.to_le_bytes());
        Ok(())
    }

    fn unwritable(&self, reason: String) -> TranscodeError {
        TranscodeError::Unwritable {
            to: self.to.clone(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::header::Header;
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    use proptest::prelude::*;

    /// A multi-frame instance of `frames` frames of `rows` x `columns` 16-bit samples, stored in `ts`, with
    /// a trailing padding element after its Pixel Data when `trailing`.
    fn multi_frame(ts: &str, rows: u16, columns: u16, frames: u32, trailing: bool) -> Vec<u8> {
        let mut dataset = InMemDicomObject::new_empty();
        let put = |d: &mut InMemDicomObject, tag, vr, value: PrimitiveValue| {
            d.put(DataElement::new(tag, vr, value));
        };
        put(
            &mut dataset,
            tags::SOP_CLASS_UID,
            VR::UI,
            "1.2.840.10008.5.1.4.1.1.7".into(),
        );
        put(
            &mut dataset,
            tags::SOP_INSTANCE_UID,
            VR::UI,
            "1.2.3.4.5".into(),
        );
        put(
            &mut dataset,
            tags::PATIENT_NAME,
            VR::PN,
            "Streamed^Frames".into(),
        );
        put(
            &mut dataset,
            tags::SAMPLES_PER_PIXEL,
            VR::US,
            PrimitiveValue::from(1u16),
        );
        put(
            &mut dataset,
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2".into(),
        );
        put(
            &mut dataset,
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            frames.to_string().as_str().into(),
        );
        put(&mut dataset, tags::ROWS, VR::US, PrimitiveValue::from(rows));
        put(
            &mut dataset,
            tags::COLUMNS,
            VR::US,
            PrimitiveValue::from(columns),
        );
        put(
            &mut dataset,
            tags::BITS_ALLOCATED,
            VR::US,
            PrimitiveValue::from(16u16),
        );
        put(
            &mut dataset,
            tags::BITS_STORED,
            VR::US,
            PrimitiveValue::from(12u16),
        );
        put(
            &mut dataset,
            tags::HIGH_BIT,
            VR::US,
            PrimitiveValue::from(11u16),
        );
        put(
            &mut dataset,
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(0u16),
        );
        let samples = usize::from(rows) * usize::from(columns) * frames as usize;
        let pixels: Vec<u16> = (0..samples)
            .map(|i| ((i * 37 + i / 7) % 4096) as u16)
            .collect();
        put(
            &mut dataset,
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(pixels.into()),
        );
        if trailing {
            put(
                &mut dataset,
                tags::DATA_SET_TRAILING_PADDING,
                VR::OB,
                PrimitiveValue::from(vec![0u8; 6]),
            );
        }
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
            .media_storage_sop_instance_uid("1.2.3.4.5")
            .transfer_syntax(ts);
        let mut out = Vec::new();
        dataset
            .with_meta(meta)
            .unwrap()
            .write_all(&mut out)
            .unwrap();
        out
    }

    /// Where the frames of `part10` are, as dicomweb-instance records them: (each frame's byte ranges, the
    /// first frame's start, the end of the Pixel Data element).
    fn frame_ranges(part10: &[u8]) -> (Vec<Vec<(usize, usize)>>, usize, usize) {
        let object = crate::read_part10(part10).unwrap();
        let frames: usize = object
            .element(tags::NUMBER_OF_FRAMES)
            .unwrap()
            .to_str()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let ts = object.meta().transfer_syntax().trim_end_matches('\0');
        // Finds the Pixel Data tag from the end: the test data sets hold no value that looks like one.
        let tag_at = part10
            .windows(4)
            .rposition(|w| w == PIXEL_DATA_TAG || w == [0x7F, 0xE0, 0x00, 0x10])
            .unwrap();
        if crate::is_native(ts) {
            let header = if ts == IMPLICIT_VR_LITTLE_ENDIAN {
                8
            } else {
                12
            };
            let length_at = tag_at + header - 4;
            let bytes: [u8; 4] = part10[length_at..length_at + 4].try_into().unwrap();
            let length = if ts == EXPLICIT_VR_BIG_ENDIAN {
                u32::from_be_bytes(bytes)
            } else {
                u32::from_le_bytes(bytes)
            } as usize;
            let start = tag_at + header;
            let frame = length / frames;
            let ranges = (0..frames)
                .map(|i| vec![(start + i * frame, start + (i + 1) * frame)])
                .collect();
            return (ranges, start, start + length);
        }
        // Encapsulated: the items after the Basic Offset Table, one fragment per frame.
        let mut at = tag_at + 12;
        let bot = u32::from_le_bytes(part10[at + 4..at + 8].try_into().unwrap()) as usize;
        at += 8 + bot;
        let first = at;
        let mut ranges = Vec::new();
        while part10[at..at + 4] == ITEM_TAG {
            let length = u32::from_le_bytes(part10[at + 4..at + 8].try_into().unwrap()) as usize;
            ranges.push(vec![(at + 8, at + 8 + length)]);
            at += 8 + length;
        }
        (ranges, first, at + 8)
    }

    /// Transcodes `part10` to `to` frame by frame, as the service does from byte ranges.
    fn streamed(part10: &[u8], to: &str) -> (Vec<u8>, Option<u64>) {
        let (frames, first_at, end) = frame_ranges(part10);
        let read = |ranges: &Vec<(usize, usize)>| {
            ranges
                .iter()
                .map(|&(s, e)| part10[s..e].to_vec())
                .collect::<Vec<_>>()
        };
        let plan = StreamedTranscode::new(&part10[..first_at], to, frames.len() as u32).unwrap();
        let (mut out, writer) = plan.start(read(&frames[0]), &part10[end..]).unwrap();
        for frame in &frames[1..] {
            out.extend(writer.frame(read(frame)).unwrap());
        }
        out.extend_from_slice(writer.end());
        (out, writer.length())
    }

    fn pixels_of(part10: &[u8]) -> Vec<u8> {
        let decoded = crate::transcode(part10, EXPLICIT_VR_LITTLE_ENDIAN, u64::MAX).unwrap();
        crate::transcode::native_pixel_bytes(&crate::read_part10(&decoded).unwrap()).unwrap()
    }

    #[test]
    fn a_streamed_transcode_is_the_whole_instance_transcode_but_for_the_offset_table() {
        for from in [
            EXPLICIT_VR_LITTLE_ENDIAN,
            IMPLICIT_VR_LITTLE_ENDIAN,
            EXPLICIT_VR_BIG_ENDIAN,
        ] {
            let original = multi_frame(from, 24, 20, 5, true);
            for to in [
                EXPLICIT_VR_LITTLE_ENDIAN,
                IMPLICIT_VR_LITTLE_ENDIAN,
                crate::RLE_LOSSLESS,
                crate::JPEG_LS_LOSSLESS,
                crate::JPEG_2000_LOSSLESS,
                crate::JPEG_LOSSLESS_SV1,
            ] {
                let (out, length) = streamed(&original, to);
                let read = crate::read_part10(&out)
                    .unwrap_or_else(|e| panic!("{from} to {to} is unreadable: {e}"));
                assert_eq!(read.meta().transfer_syntax().trim_end_matches('\0'), to);
                assert_eq!(pixels_of(&out), pixels_of(&original), "{from} to {to}");
                assert_eq!(
                    read.element(tags::PATIENT_NAME).unwrap().to_str().unwrap(),
                    "Streamed^Frames"
                );
                assert!(
                    read.element(tags::DATA_SET_TRAILING_PADDING).is_ok(),
                    "{from} to {to}"
                );
                match length {
                    Some(length) => assert_eq!(length, out.len() as u64, "{from} to {to}"),
                    None => assert!(!crate::is_native(to)),
                }
                // The data set the whole-instance transcode writes, element for element but Pixel Data.
                let whole = crate::read_part10(&crate::transcode(&original, to, u64::MAX).unwrap())
                    .unwrap();
                let tags_of = |o: &DefaultDicomObject| {
                    o.iter()
                        .filter(|e| e.tag() != tags::PIXEL_DATA)
                        .map(|e| (e.tag(), e.to_str().map(|s| s.to_string()).ok()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(tags_of(&read), tags_of(&whole), "{from} to {to}");
            }
        }
    }

    #[test]
    fn compressed_instances_are_decoded_frame_by_frame() {
        let original = multi_frame(EXPLICIT_VR_LITTLE_ENDIAN, 16, 12, 4, false);
        for stored in [
            crate::RLE_LOSSLESS,
            crate::JPEG_LS_LOSSLESS,
            crate::JPEG_2000_LOSSLESS,
        ] {
            let compressed = crate::transcode(&original, stored, u64::MAX).unwrap();
            for to in [EXPLICIT_VR_LITTLE_ENDIAN, crate::JPEG_LOSSLESS_SV1] {
                let (out, _) = streamed(&compressed, to);
                assert_eq!(pixels_of(&out), pixels_of(&original), "{stored} to {to}");
            }
        }
    }

    #[test]
    fn deflate_and_lossy_targets_are_not_streamed() {
        assert!(why_not_streamable(EXPLICIT_VR_LITTLE_ENDIAN, crate::JPEG_BASELINE).is_some());
        assert!(
            why_not_streamable(
                EXPLICIT_VR_LITTLE_ENDIAN,
                DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
            )
            .is_some()
        );
        assert!(
            why_not_streamable(
                DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
                EXPLICIT_VR_LITTLE_ENDIAN
            )
            .is_some()
        );
        assert!(why_not_streamable(crate::RLE_LOSSLESS, EXPLICIT_VR_LITTLE_ENDIAN).is_none());
        let original = multi_frame(EXPLICIT_VR_LITTLE_ENDIAN, 8, 8, 2, false);
        let (_, first_at, _) = frame_ranges(&original);
        assert!(matches!(
            StreamedTranscode::new(&original[..first_at], crate::JPEG_BASELINE, 2),
            Err(TranscodeError::Unsupported { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// A head cut anywhere (a short read, a truncated file) is refused or read, never a panic.
        ///
        /// Arbitrary bytes are not tried: heads come from files inspected when they were stored
        /// (dicomweb-instance, fuzzed), and dicom-object allocates and zeroes each element's declared length,
        /// up to 4 GiB, before finding that the bytes are not there.
        #[test]
        fn truncated_heads_never_panic(cut in 0usize..600, frames in 0u32..4) {
            let original = multi_frame(EXPLICIT_VR_LITTLE_ENDIAN, 4, 4, 2, false);
            let (ranges, first_at, _) = frame_ranges(&original);
            let head = &original[..first_at.min(cut)];
            if let Ok(plan) = StreamedTranscode::new(head, crate::RLE_LOSSLESS, frames) {
                let first = vec![original[ranges[0][0].0..ranges[0][0].1].to_vec()];
                prop_assert!(plan.start(first, &[]).is_ok());
            }
        }
    }
}
