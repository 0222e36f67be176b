//! Encoding native frames to compressed transfer syntaxes: RLE Lossless (by hand, [`crate::rle`]), JPEG 2000
//! lossless (OpenJPEG, [`crate::j2k`]), HTJ2K lossless (OpenJPH, [`crate::htj2k`]), JPEG-LS lossless
//! (CharLS), JPEG lossless SV1 (libjpeg-turbo, [`crate::turbo`]) and, for 8-bit data, JPEG baseline (libjpeg-turbo, lossy).
//!
//! dicom-rs 0.10.1 has encoders for JPEG baseline and JPEG-LS only, and its JPEG-LS writer does not set the
//! interleave mode, so colour images it writes are not decoded correctly by CharLS or other decoders
//! (`../shared/reference/pixel-codecs.md`); the codecs are called directly here instead.

use crate::FrameGeometry;

/// RLE Lossless.
pub const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
/// JPEG 2000 Image Compression (Lossless Only).
pub const JPEG_2000_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";
/// JPEG-LS Lossless Image Compression.
pub const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
/// JPEG Baseline (Process 1): lossy, 8-bit samples only.
pub const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
/// JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, Selection Value 1).
pub const JPEG_LOSSLESS_SV1: &str = "1.2.840.10008.1.2.4.70";
/// High-Throughput JPEG 2000 Image Compression (Lossless Only).
pub const HTJ2K_LOSSLESS: &str = "1.2.840.10008.1.2.4.201";

/// Compressed transfer syntaxes whose pixel data is encoded here ([`encode_frame`]).
pub const ENCODED: [&str; 6] = [
    JPEG_2000_LOSSLESS,
    HTJ2K_LOSSLESS,
    RLE_LOSSLESS,
    JPEG_LS_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    JPEG_BASELINE,
];

/// The JPEG baseline quality used (libjpeg's scale, 1 to 100).
const JPEG_QUALITY: u8 = 90;

/// Whether pixel data can be encoded in `uid` here (for some pixel formats: see [`why_not_encodable`]).
pub fn can_encode(uid: &str) -> bool {
    ENCODED.contains(&uid)
}

/// Whether `uid` is a transfer syntax whose pixel data loses information (PS3.5 8 and Annex A: JPEG
/// baseline and extended, JPEG-LS near-lossless, JPEG 2000 and HTJ2K with irreversible coding, the video
/// syntaxes).
pub fn is_lossy(uid: &str) -> bool {
    matches!(
        uid,
        "1.2.840.10008.1.2.4.50"
            | "1.2.840.10008.1.2.4.51"
            | "1.2.840.10008.1.2.4.81"
            | "1.2.840.10008.1.2.4.91"
            | "1.2.840.10008.1.2.4.93"
            | "1.2.840.10008.1.2.4.203"
    ) || uid.starts_with("1.2.840.10008.1.2.4.10")
}

/// Why frames of `geometry` cannot be encoded in `to` here, or `None` when they can.
pub fn why_not_encodable(to: &str, geometry: &FrameGeometry) -> Option<String> {
    let colour_ok = match geometry.samples_per_pixel {
        1 => true,
        3 => matches!(
            geometry.photometric_interpretation.trim(),
            "RGB" | "YBR_FULL"
        ),
        _ => false,
    };
    if !colour_ok {
        return Some(format!(
            "{} samples per pixel in {} cannot be encoded here",
            geometry.samples_per_pixel,
            geometry.photometric_interpretation.trim()
        ));
    }
    match to {
        RLE_LOSSLESS => crate::rle::unsupported(geometry),
        JPEG_2000_LOSSLESS => crate::j2k::unsupported("JPEG 2000", geometry),
        HTJ2K_LOSSLESS => crate::j2k::unsupported("HTJ2K", geometry),
        JPEG_LS_LOSSLESS => {
            let bytes_fit = match geometry.bits_allocated {
                8 => (2..=8).contains(&geometry.bits_stored),
                16 => (9..=16).contains(&geometry.bits_stored),
                _ => false,
            };
            if !bytes_fit {
                return Some(format!(
                    "JPEG-LS encoding here takes 2 to 8 bits stored in 8 allocated, or 9 to 16 in 16; not {} in {}",
                    geometry.bits_stored, geometry.bits_allocated
                ));
            }
            crate::j2k::stored_bits_fit(geometry)
        }
        JPEG_LOSSLESS_SV1 => crate::turbo::lossless_unsupported(geometry)
            .or_else(|| crate::j2k::stored_bits_fit(geometry)),
        JPEG_BASELINE => {
            if geometry.bits_allocated != 8 || geometry.pixel_representation != 0 {
                return Some(format!(
                    "JPEG baseline takes unsigned 8-bit samples; these are {} {}-bit",
                    if geometry.pixel_representation == 1 {
                        "signed"
                    } else {
                        "unsigned"
                    },
                    geometry.bits_allocated
                ));
            }
            if geometry.photometric_interpretation.trim() == "PALETTE COLOR" {
                return Some("palette indices cannot be compressed lossily".into());
            }
            None
        }
        other => Some(format!("no encoder for transfer syntax {other}")),
    }
}

/// A frame encoded by [`encode_frame`], and how its decoded pixels are to be described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The frame's compressed bytes (one fragment), of even length.
    pub bytes: Vec<u8>,
    /// Photometric Interpretation of the encoded frame (JPEG baseline turns colour into YBR_FULL_422, JPEG 2000
    /// RGB into YBR_RCT).
    pub photometric_interpretation: String,
    /// Planar Configuration for the instance (PS3.5 G.2: 1 for RLE; CP-1843: 0 for the JPEG family).
    pub planar_configuration: u16,
}

/// One native little-endian frame (laid out as `geometry.planar_configuration` says) encoded in `to`; check
/// [`why_not_encodable`] first (it is checked again here).
pub fn encode_frame(
    to: &str,
    geometry: &FrameGeometry,
    frame: &[u8],
) -> Result<EncodedFrame, crate::TranscodeError> {
    let unencodable = |reason: String| crate::TranscodeError::Unencodable {
        to: to.to_owned(),
        reason,
    };
    if let Some(reason) = why_not_encodable(to, geometry) {
        return Err(unencodable(reason));
    }
    let samples = usize::from(geometry.samples_per_pixel);
    let expected = usize::from(geometry.rows)
        * usize::from(geometry.columns)
        * samples
        * usize::from(geometry.bits_allocated / 8);
    if frame.len() < expected {
        return Err(unencodable(format!(
            "the frame holds {} bytes, {expected} expected",
            frame.len()
        )));
    }
    let frame = &frame[..expected];
    let photometric = geometry.photometric_interpretation.trim().to_owned();
    let (mut bytes, photometric_interpretation, planar_configuration) = match to {
        RLE_LOSSLESS => (crate::rle::encode(geometry, frame), photometric, 1),
        JPEG_2000_LOSSLESS | HTJ2K_LOSSLESS => {
            // RGB goes through the reversible colour transform (PS3.5 A.4.4 and A.4.11: Photometric
            // Interpretation YBR_RCT), as dcmtk and gdcm write it and as the ultrasound IODs require; it also
            // compresses better.
            let transform = samples == 3 && photometric == "RGB";
            let bytes = if to == HTJ2K_LOSSLESS {
                crate::htj2k::encode(geometry, frame, transform)
            } else {
                crate::j2k::encode(geometry, frame, transform)
            }
            .map_err(unencodable)?;
            let photometric = if transform {
                "YBR_RCT".to_owned()
            } else {
                photometric
            };
            (bytes, photometric, 0)
        }
        JPEG_LS_LOSSLESS => (
            jpeg_ls(geometry, frame).map_err(unencodable)?,
            photometric,
            0,
        ),
        JPEG_LOSSLESS_SV1 => {
            // Colour by pixel (CP-1843: Planar Configuration 0 for the JPEG family), coded as it is.
            let by_pixel;
            let frame = if samples == 3 && geometry.planar_configuration == 1 {
                by_pixel = interleaved(frame, usize::from(geometry.bits_allocated / 8));
                &by_pixel[..]
            } else {
                frame
            };
            (
                crate::turbo::encode_lossless(geometry, frame).map_err(unencodable)?,
                photometric,
                0,
            )
        }
        JPEG_BASELINE => {
            let (bytes, photometric) = jpeg_baseline(geometry, frame).map_err(unencodable)?;
            (bytes, photometric, 0)
        }
        other => return Err(unencodable(format!("no encoder for {other}"))),
    };
    if bytes.len() % 2 == 1 {
        bytes.push(0); // fragments have even lengths (PS3.5 A.4); decoders stop at the end-of-image marker
    }
    Ok(EncodedFrame {
        bytes,
        photometric_interpretation,
        planar_configuration: if samples > 1 { planar_configuration } else { 0 },
    })
}

/// Colour by plane (`RRR...GGG...BBB...`) to colour by pixel, samples of `width` bytes.
fn interleaved(frame: &[u8], width: usize) -> Vec<u8> {
    let samples = frame.len() / width;
    let pixels = samples / 3;
    let mut out = Vec::with_capacity(frame.len());
    for pixel in 0..pixels {
        for plane in 0..3 {
            let at = (plane * pixels + pixel) * width;
            out.extend_from_slice(&frame[at..at + width]);
        }
    }
    out
}

/// JPEG-LS lossless through CharLS: samples held in their low Bits Stored bits (a signed value's two's
/// complement, masked, as PS3.5 A.4.3 expects), colour sample-interleaved (a frame stored by plane is
/// interleaved first: decoders give back the interleave they find, and CP-1843 has JPEG-LS colour described
/// as Planar Configuration 0).
fn jpeg_ls(geometry: &FrameGeometry, frame: &[u8]) -> Result<Vec<u8>, String> {
    let width = usize::from(geometry.bits_allocated / 8);
    let by_pixel;
    let frame = if geometry.samples_per_pixel == 3 && geometry.planar_configuration == 1 {
        by_pixel = interleaved(frame, width);
        by_pixel.as_slice()
    } else {
        frame
    };
    let mask: u16 = if geometry.bits_stored >= 16 {
        u16::MAX
    } else {
        (1 << geometry.bits_stored) - 1
    };
    let samples: Vec<u8> = if geometry.bits_allocated == 16 {
        frame
            .chunks_exact(2)
            .flat_map(|word| (u16::from_le_bytes([word[0], word[1]]) & mask).to_ne_bytes())
            .collect()
    } else {
        frame.iter().map(|&b| b & (mask as u8)).collect()
    };
    // A codec object per frame: charls 0.4.2's cannot be used twice (the second call fails).
    let mut codec = charls::CharLS::default();
    if geometry.samples_per_pixel > 1 {
        // dicom-rs 0.10.1's JPEG-LS writer leaves this unset, which makes colour it writes undecodable by
        // CharLS and others (../shared/reference/pixel-codecs.md).
        codec
            .set_interleave_mode(charls::InterleaveMode::Sample)
            .map_err(|e| format!("CharLS refused the interleave mode: {e}"))?;
    }
    codec
        .encode(
            charls::FrameInfo {
                width: u32::from(geometry.columns),
                height: u32::from(geometry.rows),
                bits_per_sample: i32::from(geometry.bits_stored),
                component_count: i32::from(geometry.samples_per_pixel),
            },
            0,
            &samples,
        )
        .map_err(|e| format!("CharLS could not encode the frame: {e}"))
}

/// JPEG baseline of 8-bit samples (libjpeg-turbo): greyscale as is; colour turned into YCbCr with its
/// chrominance subsampled horizontally, Photometric Interpretation YBR_FULL_422 (PS3.5 8.2.1, what dcmtk
/// writes; dciodvfy rejects YBR_FULL for JPEG baseline). YBR_FULL samples are taken back to RGB first (TurboJPEG
/// takes RGB in): the round trip costs at most one level per sample, under what the lossy coding loses.
fn jpeg_baseline(geometry: &FrameGeometry, frame: &[u8]) -> Result<(Vec<u8>, String), String> {
    let colour = geometry.samples_per_pixel == 3;
    let by_pixel;
    let frame = if colour && geometry.planar_configuration == 1 {
        by_pixel = interleaved(frame, 1);
        by_pixel.as_slice()
    } else {
        frame
    };
    let photometric = geometry.photometric_interpretation.trim();
    let rgb;
    let frame = if colour && photometric == "YBR_FULL" {
        rgb = ybr_full_to_rgb(frame);
        rgb.as_slice()
    } else {
        frame
    };
    let described = if colour {
        "YBR_FULL_422".to_owned()
    } else {
        photometric.to_owned()
    };
    let shape = (
        usize::from(geometry.columns),
        usize::from(geometry.rows),
        usize::from(geometry.samples_per_pixel),
    );
    let bytes =
        crate::turbo::encode_baseline(frame, shape, JPEG_QUALITY, crate::turbo::Chroma::HalfWidth)?;
    Ok((bytes, described))
}

/// YBR_FULL samples (by pixel) as RGB (PS3.3 C.7.6.3.1.2, the JFIF equations), rounded and clamped.
fn ybr_full_to_rgb(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len());
    for pixel in frame.chunks_exact(3) {
        let y = f32::from(pixel[0]);
        let cb = f32::from(pixel[1]) - 128.0;
        let cr = f32::from(pixel[2]) - 128.0;
        let level = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        out.push(level(y + 1.402 * cr));
        out.push(level(y - 0.344_136 * cb - 0.714_136 * cr));
        out.push(level(y + 1.772 * cb));
    }
    out
}

/// Lossy Image Compression Method (0028,2114) of a lossy target (PS3.3 C.7.6.1.1.5.1 defined terms).
fn lossy_method(to: &str) -> &'static str {
    match to {
        JPEG_BASELINE => "ISO_10918_1",
        _ => "",
    }
}

/// The Image Pixel attributes of a read instance.
pub(crate) fn geometry_of(
    object: &dicom_object::DefaultDicomObject,
) -> Result<FrameGeometry, crate::TranscodeError> {
    use dicom_dictionary_std::tags;
    let number = |tag, name: &str| {
        object
            .element(tag)
            .ok()
            .and_then(|e| e.to_int::<u16>().ok())
            .ok_or_else(|| crate::TranscodeError::Unreadable(format!("no {name}")))
    };
    Ok(FrameGeometry {
        rows: number(tags::ROWS, "Rows")?,
        columns: number(tags::COLUMNS, "Columns")?,
        samples_per_pixel: number(tags::SAMPLES_PER_PIXEL, "Samples per Pixel").unwrap_or(1),
        bits_allocated: number(tags::BITS_ALLOCATED, "Bits Allocated")?,
        bits_stored: number(tags::BITS_STORED, "Bits Stored")?,
        high_bit: number(tags::HIGH_BIT, "High Bit")?,
        pixel_representation: number(tags::PIXEL_REPRESENTATION, "Pixel Representation")
            .unwrap_or(0),
        photometric_interpretation: object
            .element(tags::PHOTOMETRIC_INTERPRETATION)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "MONOCHROME2".to_owned()),
        planar_configuration: number(tags::PLANAR_CONFIGURATION, "Planar Configuration")
            .unwrap_or(0),
    })
}

/// Replaces the native Pixel Data of `object` (little-endian words, as parsed) by its frames encoded in `to`,
/// with a Basic Offset Table, and updates the attributes that describe it: Photometric Interpretation, Planar
/// Configuration, and for a lossy target Lossy Image Compression "01" with its ratio and method (appended to
/// those of earlier lossy steps, PS3.3 C.7.6.1.1.5). The caller sets the new transfer syntax.
pub(crate) fn encode_in_place(
    object: &mut dicom_object::DefaultDicomObject,
    to: &str,
) -> Result<(), crate::TranscodeError> {
    use dicom_core::value::PixelFragmentSequence;
    use dicom_core::{DataElement, Length, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;

    let geometry = geometry_of(object)?;
    if let Some(reason) = why_not_encodable(to, &geometry) {
        return Err(crate::TranscodeError::Unencodable {
            to: to.to_owned(),
            reason,
        });
    }
    let pixels = crate::transcode::native_pixel_bytes(object)?;
    let frame_length = usize::from(geometry.rows)
        * usize::from(geometry.columns)
        * usize::from(geometry.samples_per_pixel)
        * usize::from(geometry.bits_allocated / 8);
    let frames = crate::decode::number_of_frames(object);
    if frame_length == 0 || pixels.len() < frames * frame_length {
        return Err(crate::TranscodeError::Unreadable(format!(
            "Pixel Data holds {} bytes, {frames} frame(s) of {frame_length} expected",
            pixels.len()
        )));
    }
    let mut fragments = Vec::with_capacity(frames);
    let mut described = None;
    for frame in pixels.chunks_exact(frame_length).take(frames) {
        let encoded = encode_frame(to, &geometry, frame)?;
        described.get_or_insert((
            encoded.photometric_interpretation,
            encoded.planar_configuration,
        ));
        fragments.push(encoded.bytes);
    }
    let compressed: usize = fragments.iter().map(Vec::len).sum();
    // Offsets of each frame's item from the first item (8 bytes of item header each); none past 4 GiB.
    let mut offsets = Vec::with_capacity(fragments.len());
    let mut offset = 0u64;
    for fragment in &fragments {
        offsets.push(offset);
        offset += 8 + fragment.len() as u64;
    }
    let offsets: Vec<u32> = if offset <= u64::from(u32::MAX) {
        offsets.into_iter().map(|o| o as u32).collect()
    } else {
        Vec::new()
    };
    object.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        VR::OB,
        Length::UNDEFINED,
        PixelFragmentSequence::new(offsets, fragments),
    ));
    if let Some((photometric, planar)) = described {
        object.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(photometric.as_str()),
        ));
        if geometry.samples_per_pixel > 1 {
            object.put(DataElement::new(
                tags::PLANAR_CONFIGURATION,
                VR::US,
                PrimitiveValue::from(planar),
            ));
        }
    }
    if is_lossy(to) {
        let ratio = pixels.len().min(frames * frame_length) as f64 / compressed.max(1) as f64;
        let appended = |object: &dicom_object::DefaultDicomObject, tag, value: String| {
            let mut values: Vec<String> = object
                .element(tag)
                .ok()
                .and_then(|e| e.to_multi_str().ok().map(|v| v.to_vec()))
                .unwrap_or_default()
                .into_iter()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            values.push(value);
            values
        };
        let ratios = appended(
            object,
            tags::LOSSY_IMAGE_COMPRESSION_RATIO,
            format!("{ratio:.2}"),
        );
        let methods = appended(
            object,
            tags::LOSSY_IMAGE_COMPRESSION_METHOD,
            lossy_method(to).to_owned(),
        );
        object.put(DataElement::new(
            tags::LOSSY_IMAGE_COMPRESSION,
            VR::CS,
            PrimitiveValue::from("01"),
        ));
        object.put(DataElement::new(
            tags::LOSSY_IMAGE_COMPRESSION_RATIO,
            VR::DS,
            PrimitiveValue::Strs(ratios.into()),
        ));
        object.put(DataElement::new(
            tags::LOSSY_IMAGE_COMPRESSION_METHOD,
            VR::CS,
            PrimitiveValue::Strs(methods.into()),
        ));
    }
    Ok(())
}

/// The Image Pixel attributes frames of `geometry` stored in `from` have once decoded, as far as they can be
/// told before decoding: the JPEG and JPEG 2000 decoders give YBR colour back as RGB, and every decoder gives
/// colour by pixel.
fn decoded_geometry(from: &str, geometry: &FrameGeometry) -> FrameGeometry {
    let mut decoded = geometry.clone();
    if crate::is_native(from) {
        return decoded;
    }
    if geometry.samples_per_pixel == 3 {
        if from != RLE_LOSSLESS
            && geometry
                .photometric_interpretation
                .trim()
                .starts_with("YBR")
        {
            decoded.photometric_interpretation = "RGB".into();
        }
        decoded.planar_configuration = 0;
    }
    decoded
}

/// Why an instance (or its frames) of `geometry` stored in `from` cannot be given in `to`, or `None` when it
/// can ([`crate::can_transcode`], and for a compressed target [`why_not_encodable`] of the decoded frames).
pub fn why_not_transcodable(
    from: &str,
    to: &str,
    geometry: Option<&FrameGeometry>,
) -> Option<String> {
    if from == to {
        return None;
    }
    if !crate::can_transcode(from, to) {
        return Some(if crate::is_native(from) || crate::can_decode(from) {
            format!("no encoder for transfer syntax {to}")
        } else {
            format!("pixel data stored in {from} cannot be decoded here")
        });
    }
    if !can_encode(to) {
        return None;
    }
    match geometry {
        Some(geometry) => why_not_encodable(to, &decoded_geometry(from, geometry)),
        None => Some("the instance has no Image Pixel attributes to encode".into()),
    }
}

/// One frame of an instance stored in `from`, given in `to` (a little-endian native syntax or one of
/// [`ENCODED`]): `fragments` are the frame's native little-endian bytes (one piece) when `from` is native, its
/// stored fragments otherwise; the frame is decoded, encoded, or both.
pub fn transcode_frame(
    from: &str,
    to: &str,
    geometry: &FrameGeometry,
    fragments: Vec<Vec<u8>>,
) -> Result<Vec<u8>, crate::TranscodeError> {
    transcode_frame_described(from, to, geometry, fragments).map(|frame| frame.bytes)
}

/// [`transcode_frame`], with how the frame it gives is to be described (Photometric Interpretation and
/// Planar Configuration after decoding, encoding or both): what a transcoded instance's attributes say.
pub fn transcode_frame_described(
    from: &str,
    to: &str,
    geometry: &FrameGeometry,
    fragments: Vec<Vec<u8>>,
) -> Result<EncodedFrame, crate::TranscodeError> {
    let (native, geometry) = if crate::is_native(from) {
        (fragments.concat(), geometry.clone())
    } else {
        crate::decode_frame_as(from, geometry, fragments)?
    };
    match to {
        crate::EXPLICIT_VR_LITTLE_ENDIAN | crate::IMPLICIT_VR_LITTLE_ENDIAN => Ok(EncodedFrame {
            bytes: native,
            photometric_interpretation: geometry.photometric_interpretation.trim().to_owned(),
            planar_configuration: geometry.planar_configuration,
        }),
        to if can_encode(to) => encode_frame(to, &geometry, &native),
        to => Err(crate::TranscodeError::Unsupported {
            from: from.to_owned(),
            to: to.to_owned(),
        }),
    }
}
