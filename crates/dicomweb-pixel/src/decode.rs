//! Decoding compressed (encapsulated) pixel data to native, through dicom-pixeldata's codecs.

use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, Length, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;

use crate::TranscodeError;

/// Transfer syntaxes whose pixel data [`crate::transcode`] and [`decode_frame`] decode: JPEG baseline, 12-bit
/// JPEG and JPEG lossless (libjpeg-turbo, [`crate::turbo`]), RLE (dicom-rs), JPEG-LS (CharLS), JPEG 2000
/// (OpenJPEG) and HTJ2K (OpenJPH, [`crate::htj2k`]).
pub const DECODED: [&str; 12] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];

/// The JPEG syntaxes, decoded by libjpeg-turbo rather than dicom-pixeldata's jpeg-decoder, which cannot decode
/// 12-bit JPEG and takes 1.6x libjpeg-turbo's time on baseline and 2x on lossless JPEG. Both pick the colour
/// space of a three-component frame the same way (Adobe marker, JFIF marker, component identifiers, else YCbCr).
const TURBO_DECODED: [&str; 4] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
];

/// A decoder of one frame's codestream called directly rather than through dicom-pixeldata: the native
/// samples and the geometry of what came out.
type FrameDecoder = fn(&[u8], &FrameGeometry) -> Result<(Vec<u8>, FrameGeometry), String>;

/// The frame decoder of `transfer_syntax` when it is not dicom-pixeldata's: libjpeg-turbo for JPEG, OpenJPH for
/// HTJ2K (dicom-pixeldata would take OpenJPEG, at 2.7x OpenJPH's time).
fn frame_decoder(transfer_syntax: &str) -> Option<FrameDecoder> {
    if TURBO_DECODED.contains(&transfer_syntax) {
        Some(crate::turbo::decode)
    } else if crate::htj2k::SYNTAXES.contains(&transfer_syntax) {
        Some(crate::htj2k::decode)
    } else {
        None
    }
}

/// Lossy transfer syntaxes among [`DECODED`]: their decoded pixels are not the original's.
pub(crate) const LOSSY: [&str; 5] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.203",
];

/// Whether the pixel data of `uid` can be decoded here.
pub fn can_decode(uid: &str) -> bool {
    DECODED.contains(&uid)
}

/// What a frame of pixel data is, from the instance's attributes (Image Pixel module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameGeometry {
    pub rows: u16,
    pub columns: u16,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub high_bit: u16,
    pub pixel_representation: u16,
    pub photometric_interpretation: String,
    pub planar_configuration: u16,
}

/// The decoded (native, little-endian) bytes of one frame of an instance stored in `transfer_syntax`, from the
/// frame's fragments as stored: what a frame retrieve in Explicit VR Little Endian sends. Colour frames come
/// interleaved (R, G, B per pixel), JPEG's YBR turned into RGB.
pub fn decode_frame(
    transfer_syntax: &str,
    geometry: &FrameGeometry,
    fragments: Vec<Vec<u8>>,
) -> Result<Vec<u8>, TranscodeError> {
    decode_frame_as(transfer_syntax, geometry, fragments).map(|(bytes, _)| bytes)
}

/// [`decode_frame`], and the geometry of what it gave: a codec may change the colour model (JPEG's YBR comes
/// out RGB) and the planar configuration.
pub fn decode_frame_as(
    transfer_syntax: &str,
    geometry: &FrameGeometry,
    fragments: Vec<Vec<u8>>,
) -> Result<(Vec<u8>, FrameGeometry), TranscodeError> {
    if !can_decode(transfer_syntax) {
        return Err(TranscodeError::Unsupported {
            from: transfer_syntax.to_owned(),
            to: crate::EXPLICIT_VR_LITTLE_ENDIAN.to_owned(),
        });
    }
    if let Some(decoder) = frame_decoder(transfer_syntax) {
        let codestream = fragments.concat();
        return guarded(|| decoder(&codestream, geometry).map_err(TranscodeError::Undecodable));
    }
    let mut dataset = InMemDicomObject::new_empty();
    let us = |tag, value: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(value));
    dataset.put(us(tags::ROWS, geometry.rows));
    dataset.put(us(tags::COLUMNS, geometry.columns));
    dataset.put(us(tags::SAMPLES_PER_PIXEL, geometry.samples_per_pixel));
    dataset.put(us(tags::BITS_ALLOCATED, geometry.bits_allocated));
    dataset.put(us(tags::BITS_STORED, geometry.bits_stored));
    dataset.put(us(tags::HIGH_BIT, geometry.high_bit));
    dataset.put(us(
        tags::PIXEL_REPRESENTATION,
        geometry.pixel_representation,
    ));
    if geometry.samples_per_pixel > 1 {
        dataset.put(us(
            tags::PLANAR_CONFIGURATION,
            geometry.planar_configuration,
        ));
    }
    dataset.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from(geometry.photometric_interpretation.as_str()),
    ));
    dataset.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from("1"),
    ));
    dataset.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        VR::OB,
        Length::UNDEFINED,
        PixelFragmentSequence::new(Vec::<u32>::new(), fragments),
    ));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
        .media_storage_sop_instance_uid("1.2.3")
        .transfer_syntax(transfer_syntax);
    let object = dataset
        .with_meta(meta)
        .map_err(|e| TranscodeError::Unreadable(e.to_string()))?;
    check_fragments(transfer_syntax, &object)?;
    guarded(|| {
        let decoded = object
            .decode_pixel_data()
            .map_err(|e| TranscodeError::Undecodable(e.to_string()))?;
        let mut decoded_geometry = geometry.clone();
        decoded_geometry.photometric_interpretation =
            decoded.photometric_interpretation().to_string();
        decoded_geometry.planar_configuration = decoded.planar_configuration() as u16;
        decoded_geometry.bits_allocated = decoded.bits_allocated();
        Ok((native_bytes(&decoded)?, decoded_geometry))
    })
}

use crate::RLE_LOSSLESS;

/// Number of Frames (0028,0008) of a read instance: 1 when absent or unreadable.
pub(crate) fn number_of_frames(object: &DefaultDicomObject) -> usize {
    object
        .element(tags::NUMBER_OF_FRAMES)
        .ok()
        .and_then(|e| e.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()))
        .unwrap_or(1)
        .max(1)
}

/// The compressed bytes of each frame of `object`'s encapsulated Pixel Data (PS3.5 A.4): one fragment per
/// frame, or all fragments for one frame, or the fragments between the Basic Offset Table's offsets.
fn encapsulated_frames(object: &DefaultDicomObject) -> Result<Vec<Vec<u8>>, TranscodeError> {
    let element = object
        .element(tags::PIXEL_DATA)
        .map_err(|e| TranscodeError::Unreadable(e.to_string()))?;
    let value = element.value();
    let fragments = value
        .fragments()
        .ok_or_else(|| TranscodeError::Unreadable("the pixel data is not encapsulated".into()))?;
    let frames = number_of_frames(object);
    if frames == 1 {
        return Ok(vec![fragments.concat()]);
    }
    if fragments.len() == frames {
        return Ok(fragments.to_vec());
    }
    let offsets = value.offset_table().unwrap_or_default();
    if offsets.len() != frames {
        if let Some(split) = frames_by_start_marker(fragments, frames) {
            return Ok(split);
        }
        return Err(TranscodeError::Undecodable(format!(
            "{frames} frames in {} fragments without a Basic Offset Table to tell them apart",
            fragments.len()
        )));
    }
    // Offsets count from the first fragment's item header (8 bytes each).
    let mut starts = Vec::with_capacity(fragments.len());
    let mut at = 0u64;
    for fragment in fragments {
        starts.push(at);
        at += 8 + fragment.len() as u64;
    }
    let mut out = Vec::with_capacity(frames);
    for (n, &offset) in offsets.iter().enumerate() {
        let end = offsets.get(n + 1).map_or(u64::MAX, |&o| u64::from(o));
        let frame: Vec<u8> = starts
            .iter()
            .zip(fragments)
            .filter(|(start, _)| **start >= u64::from(offset) && **start < end)
            .flat_map(|(_, fragment)| fragment.iter().copied())
            .collect();
        if frame.is_empty() {
            return Err(TranscodeError::Undecodable(format!(
                "the Basic Offset Table's offset {offset} of frame {} names no fragment",
                n + 1
            )));
        }
        out.push(frame);
    }
    Ok(out)
}

/// Fragments grouped into `frames` frames where no Basic Offset Table tells them apart, each frame starting at
/// a fragment that starts with the codestream's start marker (JPEG and JPEG-LS SOI `FF D8`, JPEG 2000 SOC `FF
/// 4F`), as pydicom does; `None` when the markers do not give `frames` frames.
fn frames_by_start_marker(fragments: &[Vec<u8>], frames: usize) -> Option<Vec<Vec<u8>>> {
    let starts_frame = |fragment: &Vec<u8>| matches!(fragment.as_slice(), [0xFF, 0xD8 | 0x4F, ..]);
    if !fragments.first().is_some_and(starts_frame) {
        return None;
    }
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(frames);
    for fragment in fragments {
        match out.last_mut() {
            Some(frame) if !starts_frame(fragment) => frame.extend_from_slice(fragment),
            _ => out.push(fragment.clone()),
        }
    }
    (out.len() == frames).then_some(out)
}

/// Refuses what dicom-rs's decoders are known to panic on, before they see it: an RLE frame whose header
/// names segments outside the frame (dicom-transfer-syntax-registry 0.10.1, `rle_lossless.rs`, slices by the
/// header's offsets unchecked: `damaged_fragments_never_panic` found it; to be reported upstream).
fn check_fragments(
    transfer_syntax: &str,
    object: &DefaultDicomObject,
) -> Result<(), TranscodeError> {
    if transfer_syntax != RLE_LOSSLESS {
        return Ok(());
    }
    let Some(fragments) = object
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.value().fragments())
    else {
        return Ok(());
    };
    fragments
        .iter()
        .try_for_each(|fragment| check_rle_header(fragment))
}

/// An RLE frame starts with a 64-byte header: the number of segments (1 to 15), then their offsets, the first
/// 64, each within the frame and none before the previous one (PS3.5 G.5).
fn check_rle_header(frame: &[u8]) -> Result<(), TranscodeError> {
    let damaged = |why: &str| TranscodeError::Undecodable(format!("damaged RLE frame: {why}"));
    if frame.len() < 64 {
        return Err(damaged("shorter than its 64-byte header"));
    }
    let word = |i: usize| {
        u32::from_le_bytes([
            frame[4 * i],
            frame[4 * i + 1],
            frame[4 * i + 2],
            frame[4 * i + 3],
        ])
    };
    let segments = word(0) as usize;
    if !(1..=15).contains(&segments) {
        return Err(damaged(&format!("{segments} segments (1 to 15 allowed)")));
    }
    let mut previous = 64u64;
    for i in 1..=segments {
        let offset = u64::from(word(i));
        if (i == 1 && offset != 64) || offset < previous || offset > frame.len() as u64 {
            return Err(damaged(&format!(
                "segment {i} starts at {offset}, outside the frame"
            )));
        }
        previous = offset;
    }
    Ok(())
}

/// Runs a decoder so that a panic in it (a defect, on damaged data) is an error for this request, not a
/// crash of the thread: decoders are third-party code fed with stored client bytes.
fn guarded<T>(decode: impl FnOnce() -> Result<T, TranscodeError>) -> Result<T, TranscodeError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_owned());
        Err(TranscodeError::Undecodable(format!(
            "the decoder failed: {message}"
        )))
    })
}

/// The decoded samples as the bytes of native little-endian Pixel Data.
fn native_bytes(
    decoded: &dicom_pixeldata::DecodedPixelData<'_>,
) -> Result<Vec<u8>, TranscodeError> {
    match decoded.bits_allocated() {
        8 => Ok(decoded.data().to_vec()),
        16 => Ok(decoded
            .data_ow()
            .into_iter()
            .flat_map(u16::to_le_bytes)
            .collect()),
        bits => Err(TranscodeError::Undecodable(format!(
            "decoded pixel data of {bits} bits allocated is not supported"
        ))),
    }
}

/// Replaces the encapsulated Pixel Data of `object` (stored in `from`) by its decoded native form, and the
/// attributes that describe it: Photometric Interpretation and Planar Configuration as decoded, Lossy Image
/// Compression "01" after a lossy codec; the encapsulation's own attributes are removed. The caller sets the
/// new transfer syntax. `max_bytes` bounds the decoded size (checked from the attributes before decoding).
pub(crate) fn decode_in_place(
    object: &mut DefaultDicomObject,
    from: &str,
    max_bytes: u64,
) -> Result<(), TranscodeError> {
    let attribute = |tag| {
        object
            .element(tag)
            .ok()
            .and_then(|e| e.to_int::<u64>().ok())
            .unwrap_or(1)
    };
    let expected = attribute(tags::ROWS)
        * attribute(tags::COLUMNS)
        * attribute(tags::SAMPLES_PER_PIXEL)
        * attribute(tags::BITS_ALLOCATED).div_ceil(8)
        * object
            .element(tags::NUMBER_OF_FRAMES)
            .ok()
            .and_then(|e| e.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()))
            .unwrap_or(1);
    if expected > max_bytes {
        return Err(TranscodeError::TooLarge {
            bytes: expected,
            limit: max_bytes,
        });
    }
    check_fragments(from, object)?;
    let (mut pixels, bits, photometric, planar, samples) =
        if let Some(decoder) = frame_decoder(from) {
            // Frame by frame.
            let geometry = crate::encode::geometry_of(object)?;
            let mut pixels = Vec::with_capacity(expected as usize);
            let mut decoded = geometry.clone();
            for frame in encapsulated_frames(object)? {
                let (bytes, frame_geometry) =
                    guarded(|| decoder(&frame, &geometry).map_err(TranscodeError::Undecodable))?;
                pixels.extend_from_slice(&bytes);
                decoded = frame_geometry;
            }
            (
                pixels,
                decoded.bits_allocated,
                decoded.photometric_interpretation,
                decoded.planar_configuration,
                decoded.samples_per_pixel,
            )
        } else {
            guarded(|| {
                let decoded = object
                    .decode_pixel_data()
                    .map_err(|e| TranscodeError::Undecodable(e.to_string()))?;
                Ok((
                    native_bytes(&decoded)?,
                    decoded.bits_allocated(),
                    decoded.photometric_interpretation().to_string(),
                    decoded.planar_configuration() as u16,
                    decoded.samples_per_pixel(),
                ))
            })?
        };
    if pixels.len() % 2 == 1 {
        pixels.push(0); // values have even lengths
    }
    let vr = if bits == 8 { VR::OB } else { VR::OW };
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::from(pixels),
    ));
    object.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from(photometric.as_str()),
    ));
    if samples > 1 {
        object.put(DataElement::new(
            tags::PLANAR_CONFIGURATION,
            VR::US,
            PrimitiveValue::from(planar),
        ));
    }
    if LOSSY.contains(&from) {
        object.put(DataElement::new(
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
        object.remove_element(tag);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RLE: &str = "1.2.840.10008.1.2.5";

    fn monochrome(rows: u16, columns: u16) -> FrameGeometry {
        FrameGeometry {
            rows,
            columns,
            samples_per_pixel: 1,
            bits_allocated: 8,
            bits_stored: 8,
            high_bit: 7,
            pixel_representation: 0,
            photometric_interpretation: "MONOCHROME2".into(),
            planar_configuration: 0,
        }
    }

    /// An RLE frame of one 8-bit segment holding `pixels` as literal runs (PS3.5 G.3).
    fn rle_frame(pixels: &[u8]) -> Vec<u8> {
        let mut frame = vec![0u8; 64];
        frame[0..4].copy_from_slice(&1u32.to_le_bytes());
        frame[4..8].copy_from_slice(&64u32.to_le_bytes());
        for run in pixels.chunks(128) {
            frame.push((run.len() - 1) as u8);
            frame.extend_from_slice(run);
        }
        if frame.len() % 2 == 1 {
            frame.push(0);
        }
        frame
    }

    #[test]
    fn a_frame_decodes_from_its_fragment_and_the_image_pixel_attributes_alone() {
        let pixels: Vec<u8> = (0..12).map(|i| i * 20).collect();
        let decoded = decode_frame(RLE, &monochrome(3, 4), vec![rle_frame(&pixels)]).unwrap();
        assert_eq!(decoded, pixels);
    }

    /// dicom-rs 0.10.1's RLE decoder panics on a header whose segment offsets lie outside the frame; such
    /// frames are refused before it sees them.
    #[test]
    fn an_rle_header_naming_segments_outside_the_frame_is_refused() {
        let mut frame = rle_frame(&[1, 2, 3, 4]);
        frame[4..8].copy_from_slice(&0xBD40_0000u32.to_le_bytes());
        let error = decode_frame(RLE, &monochrome(2, 2), vec![frame]).unwrap_err();
        assert!(error.to_string().contains("damaged RLE frame"), "{error}");
        for frame in [vec![0u8; 10], vec![0u8; 64]] {
            assert!(decode_frame(RLE, &monochrome(2, 2), vec![frame]).is_err());
        }
    }

    /// Lossless codecs give back the pixels of the native original, byte for byte (pydicom's MR_small and its
    /// RLE, JPEG-LS and JPEG 2000 lossless encodings).
    #[test]
    fn lossless_samples_decode_to_the_pixels_of_their_native_original() {
        let sample = |name: &str| {
            std::fs::read(format!(
                "{}/../../tests/data/pydicom/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let pixels = |part10: &[u8]| {
            crate::read_part10(part10)
                .unwrap()
                .element(tags::PIXEL_DATA)
                .unwrap()
                .to_bytes()
                .unwrap()
                .into_owned()
        };
        let native = pixels(&sample("MR_small.dcm"));
        for name in [
            "MR_small_RLE.dcm",
            "MR_small_jpeg_ls_lossless.dcm",
            "MR_small_jp2klossless.dcm",
        ] {
            let decoded = crate::transcode(&sample(name), "1.2.840.10008.1.2.1", u64::MAX).unwrap();
            assert_eq!(pixels(&decoded), native, "{name}");
        }
    }

    /// Two frames in three fragments and no Basic Offset Table: the fragment starting with SOI begins a frame.
    #[test]
    fn fragments_without_an_offset_table_are_grouped_by_start_marker() {
        let fragments = vec![vec![0xFF, 0xD8, 1, 2], vec![3, 4], vec![0xFF, 0xD8, 5, 6]];
        let frames = frames_by_start_marker(&fragments, 2).unwrap();
        assert_eq!(
            frames,
            [vec![0xFF, 0xD8, 1, 2, 3, 4], vec![0xFF, 0xD8, 5, 6]]
        );
        assert_eq!(frames_by_start_marker(&fragments, 3), None);
        assert_eq!(frames_by_start_marker(&fragments[1..], 1), None);
    }

    #[test]
    fn syntaxes_without_a_decoder_here_are_refused() {
        // MPEG-2, and a native syntax (nothing to decode).
        for uid in ["1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.1"] {
            assert!(!can_decode(uid));
            assert!(matches!(
                decode_frame(uid, &monochrome(1, 1), vec![vec![0, 0]]),
                Err(TranscodeError::Unsupported { .. })
            ));
        }
    }

    proptest! {
        /// Whatever bytes a stored fragment holds, decoding answers (an error or a frame), never panics.
        #[test]
        fn damaged_fragments_never_panic(
            uid in prop::sample::select(DECODED.to_vec()),
            bytes in prop::collection::vec(any::<u8>(), 0..300),
            rows in 1u16..16,
            columns in 1u16..16,
        ) {
            let _ = decode_frame(uid, &monochrome(rows, columns), vec![bytes]);
        }

        /// RLE frames of random images decode to the image.
        #[test]
        fn rle_frames_decode_exactly(pixels in prop::collection::vec(any::<u8>(), 1..400)) {
            let columns = pixels.len() as u16;
            let decoded = decode_frame(RLE, &monochrome(1, columns), vec![rle_frame(&pixels)]).unwrap();
            prop_assert_eq!(decoded, pixels);
        }
    }
}
