//! Re-encoding a Part 10 instance in another native transfer syntax.

use dicom_core::{DataElement, PrimitiveValue};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

/// Implicit VR Little Endian: the default transfer syntax of DICOM.
pub const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
/// Explicit VR Little Endian: what a DICOMweb retrieve means when it names no transfer syntax.
pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
/// Deflated Explicit VR Little Endian.
pub const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1.99";
/// Explicit VR Big Endian (retired, still found in archives).
pub const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// Why an instance could not be transcoded.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// The pair of transfer syntaxes is not one [`can_transcode`] accepts.
    #[error("transcoding from {from} to {to} is not supported")]
    Unsupported { from: String, to: String },
    /// The stored bytes could not be read as a Part 10 file.
    #[error("the instance could not be read: {0}")]
    Unreadable(String),
    /// The data set could not be written in the target transfer syntax.
    #[error("the instance could not be written in {to}: {reason}")]
    Unwritable { to: String, reason: String },
    /// The pixel data cannot be encoded in the target syntax here (its format, e.g. 16-bit samples for JPEG
    /// baseline, or a codec's refusal).
    #[error("the pixel data cannot be encoded in {to}: {reason}")]
    Unencodable { to: String, reason: String },
    /// The compressed pixel data could not be decoded.
    #[error("the pixel data could not be decoded: {0}")]
    Undecodable(String),
    /// The decoded pixel data would be larger than the caller allows.
    #[error("the decoded pixel data would be {bytes} bytes, over the limit of {limit}")]
    TooLarge { bytes: u64, limit: u64 },
}

/// Whether `uid` is a transfer syntax whose pixel data is not compressed (the data set may be deflated).
pub fn is_native(uid: &str) -> bool {
    matches!(
        uid,
        IMPLICIT_VR_LITTLE_ENDIAN
            | EXPLICIT_VR_LITTLE_ENDIAN
            | DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
            | EXPLICIT_VR_BIG_ENDIAN
    )
}

/// Whether [`transcode`] turns an instance stored in `from` into `to`: the same syntax, or from any native
/// syntax or one whose pixel data is decoded here ([`crate::can_decode`]) into a little-endian native syntax
/// (Explicit, Implicit, Deflated) or one encoded here ([`crate::can_encode`], for the pixel formats
/// [`crate::why_not_encodable`] accepts).
pub fn can_transcode(from: &str, to: &str) -> bool {
    from == to
        || ((is_native(from) || crate::can_decode(from))
            && (matches!(
                to,
                EXPLICIT_VR_LITTLE_ENDIAN
                    | IMPLICIT_VR_LITTLE_ENDIAN
                    | DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
            ) || crate::can_encode(to)))
}

/// Reads a Part 10 file held in memory (128-byte preamble, `DICM`, file meta group, data set), in any
/// transfer syntax the registry knows, deflated included.
pub fn read_part10(part10: &[u8]) -> Result<DefaultDicomObject, TranscodeError> {
    let after_preamble = part10
        .get(128..)
        .ok_or_else(|| TranscodeError::Unreadable("shorter than a preamble".into()))?;
    OpenFileOptions::new()
        .from_reader(after_preamble)
        .map_err(|e| TranscodeError::Unreadable(e.to_string()))
}

/// The transfer syntax of a read instance, without the padding of its UID.
fn stored_syntax(object: &DefaultDicomObject) -> String {
    object
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_owned()
}

/// The Part 10 file `part10` re-encoded in transfer syntax `to` (see [`can_transcode`]); the file meta group
/// is kept but for its Transfer Syntax UID (and group length). Values are carried over as parsed, so a
/// big-endian instance's 16-bit words (OW, US, SS...) come out in little-endian order.
///
/// Compressed pixel data is decoded (see [`crate::decode_frame`] for what comes out) unless it would exceed
/// `max_decoded_bytes`; for a compressed target, the native frames are then encoded one by one
/// ([`crate::encode_frame`]). A deflated target is written as Explicit VR Little Endian in memory and
/// deflated once (dicom-object's deflating writer makes small writes into the deflater, ~20 times slower).
///
/// Memory: the whole instance is parsed into memory (about its size again), plus the decoded pixels and their
/// encoding; callers bound what they pass.
pub fn transcode(
    part10: &[u8],
    to: &str,
    max_decoded_bytes: u64,
) -> Result<Vec<u8>, TranscodeError> {
    let mut object = read_part10(part10)?;
    let from = stored_syntax(&object);
    if !can_transcode(&from, to) {
        return Err(TranscodeError::Unsupported {
            from,
            to: to.to_owned(),
        });
    }
    let target = TransferSyntaxRegistry
        .get(to)
        .ok_or_else(|| TranscodeError::Unsupported {
            from: from.clone(),
            to: to.to_owned(),
        })?;
    if from == EXPLICIT_VR_BIG_ENDIAN {
        wide_words_in_value_order(&mut object);
    }
    if from != to && !is_native(&from) {
        crate::decode::decode_in_place(&mut object, &from, max_decoded_bytes)?;
    }
    if from != to && crate::can_encode(to) {
        crate::encode::encode_in_place(&mut object, to)?;
    }
    object.meta_mut().set_transfer_syntax(target);
    let unwritable = |e: &dyn std::fmt::Display| TranscodeError::Unwritable {
        to: to.to_owned(),
        reason: e.to_string(),
    };
    let mut out = Vec::with_capacity(part10.len() + 1024);
    if to == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN {
        let explicit = TransferSyntaxRegistry
            .get(EXPLICIT_VR_LITTLE_ENDIAN)
            .ok_or_else(|| unwritable(&"Explicit VR Little Endian is not registered"))?;
        out.extend_from_slice(&[0u8; 128]);
        out.extend_from_slice(b"DICM");
        object.write_meta(&mut out).map_err(|e| unwritable(&e))?;
        let mut dataset = Vec::with_capacity(part10.len());
        object
            .write_dataset_with_ts(&mut dataset, explicit)
            .map_err(|e| unwritable(&e))?;
        let mut deflater = flate2::write::DeflateEncoder::new(out, flate2::Compression::fast());
        std::io::Write::write_all(&mut deflater, &dataset).map_err(|e| unwritable(&e))?;
        return deflater.finish().map_err(|e| unwritable(&e));
    }
    object.write_all(&mut out).map_err(|e| unwritable(&e))?;
    Ok(out)
}

/// Frames `numbers` (from 1) of a native instance whose frames cannot be read by byte range (a deflated data
/// set): the instance is read whole and each frame comes out as little-endian native bytes, as in Explicit VR
/// Little Endian. Memory: the instance, inflated, and the frames asked.
pub fn native_frames(part10: &[u8], numbers: &[u32]) -> Result<Vec<Vec<u8>>, TranscodeError> {
    let mut object = read_part10(part10)?;
    let from = stored_syntax(&object);
    if !is_native(&from) {
        return Err(TranscodeError::Unsupported {
            from,
            to: EXPLICIT_VR_LITTLE_ENDIAN.to_owned(),
        });
    }
    if from == EXPLICIT_VR_BIG_ENDIAN {
        wide_words_in_value_order(&mut object);
    }
    let int = |tag| {
        object
            .element(tag)
            .ok()
            .and_then(|e| e.to_int::<u64>().ok())
    };
    let unreadable = |why: &str| TranscodeError::Unreadable(why.to_owned());
    let bits = int(tags::BITS_ALLOCATED).ok_or_else(|| unreadable("no Bits Allocated"))?;
    if bits % 8 != 0 {
        return Err(unreadable(
            "frames of bit-packed pixel data are not byte-aligned",
        ));
    }
    let frame_length = int(tags::ROWS).ok_or_else(|| unreadable("no Rows"))?
        * int(tags::COLUMNS).ok_or_else(|| unreadable("no Columns"))?
        * int(tags::SAMPLES_PER_PIXEL).unwrap_or(1)
        * (bits / 8);
    let pixels = native_pixel_bytes(&object)?;
    numbers
        .iter()
        .map(|&n| {
            let start = u64::from(n.saturating_sub(1)) * frame_length;
            pixels
                .get(start as usize..(start + frame_length) as usize)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| unreadable(&format!("frame {n} is beyond the pixel data")))
        })
        .collect()
}

/// The native Pixel Data of a read instance as little-endian bytes (words as parsed: a big-endian instance's
/// must have been put in value order first, see `wide_words_in_value_order`).
pub(crate) fn native_pixel_bytes(object: &DefaultDicomObject) -> Result<Vec<u8>, TranscodeError> {
    let unreadable = |why: &str| TranscodeError::Unreadable(why.to_owned());
    Ok(
        match object
            .element(tags::PIXEL_DATA)
            .map_err(|_| unreadable("no Pixel Data"))?
            .value()
            .primitive()
        {
            Some(PrimitiveValue::U8(bytes)) => bytes.to_vec(),
            Some(PrimitiveValue::U16(words)) => {
                words.iter().flat_map(|w| w.to_le_bytes()).collect()
            }
            Some(PrimitiveValue::U32(words)) => {
                words.iter().flat_map(|w| w.to_le_bytes()).collect()
            }
            Some(PrimitiveValue::F32(values)) => {
                values.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            Some(PrimitiveValue::F64(values)) => {
                values.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            _ => return Err(unreadable("Pixel Data is not native")),
        },
    )
}

/// The parser reads big-endian OW Pixel Data as 16-bit words, as its VR says; but pixels of 32 or 64 bits
/// are whole big-endian values (PS3.5 8.1.1, and what pydicom and dcmtk write), so each pixel's words come
/// out in the wrong order once written little endian. Reverses the words within each pixel.
fn wide_words_in_value_order(object: &mut DefaultDicomObject) {
    let bits = object
        .element(tags::BITS_ALLOCATED)
        .ok()
        .and_then(|e| e.to_int::<u16>().ok());
    let words_per_pixel = match bits {
        Some(32) => 2,
        Some(64) => 4,
        _ => return,
    };
    let Ok(element) = object.element(tags::PIXEL_DATA) else {
        return;
    };
    let (vr, PrimitiveValue::U16(words)) = (
        element.vr(),
        element
            .value()
            .primitive()
            .cloned()
            .unwrap_or(PrimitiveValue::Empty),
    ) else {
        return;
    };
    let mut words: Vec<u16> = words.into_iter().collect();
    for pixel in words.chunks_exact_mut(words_per_pixel) {
        pixel.reverse();
    }
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::U16(words.into()),
    ));
}

/// Turns a native frame of an Explicit VR Big Endian instance into little endian in place: each word of
/// `bits_allocated` bits (16, 32 or 64) has its bytes reversed; 8-bit (and 1-bit) data is left as it is.
pub fn frame_to_little_endian(frame: &mut [u8], bits_allocated: u16) {
    let width = match bits_allocated {
        16 => 2,
        32 => 4,
        64 => 8,
        _ => return,
    };
    for word in frame.chunks_exact_mut(width) {
        word.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    use proptest::prelude::*;

    fn instance(ts: &str, rows: u16, columns: u16, pixels: &[u16], name: &str) -> Vec<u8> {
        let mut dataset = InMemDicomObject::new_empty();
        let put = |dataset: &mut InMemDicomObject, tag, vr, value: PrimitiveValue| {
            dataset.put(DataElement::new(tag, vr, value));
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
        put(&mut dataset, tags::PATIENT_NAME, VR::PN, name.into());
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
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(pixels.into()),
        );
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
            .media_storage_sop_instance_uid("1.2.3.4.5")
            .transfer_syntax(ts);
        let mut out = Vec::new();
        dataset
            .with_meta(meta)
            .expect("meta")
            .write_all(&mut out)
            .expect("write");
        out
    }

    fn pixels_and_name(part10: &[u8]) -> (String, Vec<u16>, String) {
        let object = read_part10(part10).expect("read back");
        let ts = object
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_owned();
        let pixels = object
            .element(tags::PIXEL_DATA)
            .expect("pixel data")
            .to_multi_int::<u16>()
            .expect("words");
        let name = object
            .element(tags::PATIENT_NAME)
            .expect("name")
            .to_str()
            .expect("text")
            .trim_end()
            .to_owned();
        (ts, pixels, name)
    }

    #[test]
    fn every_native_syntax_becomes_explicit_or_implicit_little_endian_with_the_same_values() {
        let pixels = [0u16, 1, 255, 256, 4095, 40000];
        for from in [
            IMPLICIT_VR_LITTLE_ENDIAN,
            EXPLICIT_VR_LITTLE_ENDIAN,
            DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
            EXPLICIT_VR_BIG_ENDIAN,
        ] {
            let stored = instance(from, 2, 3, &pixels, "Doe^Jane");
            for to in [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN] {
                let out = transcode(&stored, to, u64::MAX)
                    .unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
                let (ts, read, name) = pixels_and_name(&out);
                assert_eq!(ts, to, "{from} -> {to}");
                assert_eq!(read, pixels, "{from} -> {to}");
                assert_eq!(name, "Doe^Jane");
                if to == EXPLICIT_VR_LITTLE_ENDIAN {
                    // The pixel words are little endian in the file itself.
                    let bytes: Vec<u8> = pixels.iter().flat_map(|p| p.to_le_bytes()).collect();
                    assert!(out.windows(bytes.len()).any(|w| w == bytes.as_slice()));
                }
            }
        }
    }

    /// A 32-bit pixel stored big endian is one big-endian value, not two 16-bit words.
    #[test]
    fn big_endian_32_bit_pixels_come_out_as_little_endian_values() {
        let mut dataset = InMemDicomObject::new_empty();
        dataset.put(DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.481.2"),
        ));
        dataset.put(DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3"),
        ));
        dataset.put(DataElement::new(
            tags::BITS_ALLOCATED,
            VR::US,
            PrimitiveValue::from(32u16),
        ));
        // The big-endian file holds the bytes 00 13 0E E8 (the value 0x00130EE8), read as the words 0x0013, 0x0EE8.
        dataset.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16([0x0013, 0x0EE8].into()),
        ));
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.481.2")
            .media_storage_sop_instance_uid("1.2.3")
            .transfer_syntax(EXPLICIT_VR_BIG_ENDIAN);
        let mut stored = Vec::new();
        dataset
            .with_meta(meta)
            .unwrap()
            .write_all(&mut stored)
            .unwrap();
        assert!(stored.windows(4).any(|w| w == [0x00, 0x13, 0x0E, 0xE8]));

        let out = transcode(&stored, EXPLICIT_VR_LITTLE_ENDIAN, u64::MAX).unwrap();
        assert!(
            out.ends_with(&0x0013_0EE8u32.to_le_bytes()),
            "the pixel value in little-endian order"
        );
    }

    #[test]
    fn frames_of_a_deflated_instance_are_its_inflated_pixel_bytes() {
        let pixels: Vec<u16> = (0..12).map(|i| i * 1000).collect();
        // Two frames of 2x3 16-bit pixels.
        let mut stored = instance(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, 2, 3, &pixels, "D");
        let object = read_part10(&stored).unwrap();
        let mut with_frames = object.into_inner();
        with_frames.put(DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            PrimitiveValue::from("2"),
        ));
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
            .media_storage_sop_instance_uid("1.2.3.4.5")
            .transfer_syntax(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN);
        stored.clear();
        with_frames
            .with_meta(meta)
            .unwrap()
            .write_all(&mut stored)
            .unwrap();
        let frames = native_frames(&stored, &[2, 1]).unwrap();
        let bytes = |range: std::ops::Range<usize>| -> Vec<u8> {
            pixels[range].iter().flat_map(|p| p.to_le_bytes()).collect()
        };
        assert_eq!(frames, [bytes(6..12), bytes(0..6)]);
        assert!(native_frames(&stored, &[3]).is_err());
    }

    #[test]
    fn targets_without_an_encoder_are_refused_not_guessed() {
        let stored = instance(EXPLICIT_VR_LITTLE_ENDIAN, 1, 1, &[7], "A");
        // JPEG lossless with another predictor, HTJ2K with RPCL order, JPEG-LS near-lossless, an unknown UID.
        for to in [
            "1.2.840.10008.1.2.4.57",
            "1.2.840.10008.1.2.4.202",
            "1.2.840.10008.1.2.4.81",
            "1.2.3.4",
        ] {
            assert!(!can_transcode(EXPLICIT_VR_LITTLE_ENDIAN, to));
            assert!(matches!(
                transcode(&stored, to, u64::MAX),
                Err(TranscodeError::Unsupported { .. })
            ));
        }
        assert!(can_transcode(
            "1.2.840.10008.1.2.4.50",
            EXPLICIT_VR_LITTLE_ENDIAN
        ));
        assert!(
            can_transcode("1.2.840.10008.1.2.4.51", EXPLICIT_VR_LITTLE_ENDIAN),
            "12-bit JPEG, through libjpeg-turbo"
        );
        assert!(!can_transcode(
            "1.2.840.10008.1.2.4.100",
            EXPLICIT_VR_LITTLE_ENDIAN
        ));
        assert!(can_transcode(
            "1.2.840.10008.1.2.4.80",
            EXPLICIT_VR_LITTLE_ENDIAN
        ));
        assert!(can_transcode(
            "1.2.840.10008.1.2.4.50",
            "1.2.840.10008.1.2.4.50"
        ));
        assert!(can_transcode(
            "1.2.840.10008.1.2.4.50",
            "1.2.840.10008.1.2.4.90"
        ));
    }

    #[test]
    fn big_endian_words_are_swapped_and_bytes_left_alone() {
        let mut frame = vec![0x01, 0x02, 0x03, 0x04];
        frame_to_little_endian(&mut frame, 16);
        assert_eq!(frame, [0x02, 0x01, 0x04, 0x03]);
        frame_to_little_endian(&mut frame, 8);
        assert_eq!(frame, [0x02, 0x01, 0x04, 0x03]);
        let mut frame = vec![1, 2, 3, 4, 5, 6, 7, 8];
        frame_to_little_endian(&mut frame, 32);
        assert_eq!(frame, [4, 3, 2, 1, 8, 7, 6, 5]);
    }

    proptest! {
        /// Whatever the image and the native syntax it is stored in, the little-endian copy holds the same
        /// values.
        #[test]
        fn transcoding_keeps_every_pixel(
            rows in 1u16..8,
            columns in 1u16..8,
            seed in any::<u64>(),
            from in prop::sample::select(vec![
                IMPLICIT_VR_LITTLE_ENDIAN,
                EXPLICIT_VR_LITTLE_ENDIAN,
                DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
                EXPLICIT_VR_BIG_ENDIAN,
            ]),
        ) {
            let count = usize::from(rows) * usize::from(columns);
            let pixels: Vec<u16> = (0..count)
                .map(|i| (seed.rotate_left(i as u32 % 64) as u16) ^ (i as u16).wrapping_mul(7919))
                .collect();
            let stored = instance(from, rows, columns, &pixels, "P");
            let out = transcode(&stored, EXPLICIT_VR_LITTLE_ENDIAN, u64::MAX).unwrap();
            let (_, read, _) = pixels_and_name(&out);
            prop_assert_eq!(read, pixels);
        }

        /// Bytes that are not an instance give an error, never a panic.
        #[test]
        fn arbitrary_bytes_are_refused_without_panicking(
            bytes in prop::collection::vec(any::<u8>(), 0..600),
            dicm in any::<bool>(),
        ) {
            let mut input = vec![0u8; 128];
            if dicm {
                input.extend_from_slice(b"DICM");
            }
            input.extend_from_slice(&bytes);
            let _ = transcode(&input, EXPLICIT_VR_LITTLE_ENDIAN, u64::MAX);
        }
    }
}
