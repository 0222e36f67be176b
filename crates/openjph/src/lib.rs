//! HTJ2K (High-Throughput JPEG 2000, ITU-T T.814 / ISO 15444-15) encoding and decoding of one image in memory,
//! through OpenJPH, the reference codec (C++, vendored in `vendor/` and built from source by `build.rs` with
//! cmake: no system library needed).
//!
//! Bound by hand because no crate does it: OpenJPEG decodes HTJ2K but cannot encode it (and decodes it at about
//! 2.7x OpenJPH's time on a CT slice, `cargo xtask bench-codecs`), and openjph-core 0.1, the one Rust encoder,
//! writes codestreams that OpenJPH and OpenJPEG reject. Samples go in and come out as the native bytes a DICOM
//! data set holds (1 or 2 bytes per sample, little endian, colour by pixel or by plane), so a caller converts
//! nothing.
//!
//! ```
//! use openjph::{Image, decode, encode_lossless};
//!
//! // A 4 x 2 greyscale image of 12-bit samples, 2 bytes each.
//! let image = Image { width: 4, height: 2, components: 1, bytes_per_sample: 2, bits: 12, signed: false, planar: false };
//! let samples: Vec<u8> = (0..8u16).flat_map(|v| (v * 500).to_le_bytes()).collect();
//! let codestream = encode_lossless(&image, &samples, false).unwrap();
//! assert_eq!(&codestream[..2], &[0xFF, 0x4F]); // SOC
//! let decoded = decode(&codestream, &image).unwrap();
//! assert_eq!(decoded.samples, samples);
//! assert_eq!(decoded.bit_depth, 12);
//! ```

use std::ffi::{CStr, c_char, c_int};

/// The shape of an image as native samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Samples per pixel: 1 (grey) or 3 (colour).
    pub components: u32,
    /// Bytes per sample: 1 or 2 (little endian).
    pub bytes_per_sample: u32,
    /// Bits of each sample that hold its value (the low ones): at most `8 * bytes_per_sample`. Encoding codes
    /// exactly these bits; decoding accepts a codestream of at most these.
    pub bits: u32,
    /// Whether values are two's complement (encoding; a decoded image is as signed as its codestream says).
    pub signed: bool,
    /// Encoding: whether colour comes by plane (`RRR...GGG...BBB...`) rather than by pixel. Decoded colour
    /// always comes by pixel.
    pub planar: bool,
}

/// An image [`decode`]d.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// `width * height * components` samples of `bytes_per_sample` bytes, little endian, colour by pixel.
    pub samples: Vec<u8>,
    /// The largest bit depth of the codestream's components.
    pub bit_depth: u32,
}

/// Why OpenJPH could not do it, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The image's shape is not one this binding takes.
    #[error("unsupported image: {0}")]
    Unsupported(String),
    /// OpenJPH refused the codestream or the image.
    #[error("{0}")]
    Codec(String),
}

#[repr(C)]
struct ShimImage {
    width: u32,
    height: u32,
    components: u32,
    bytes: u32,
    bits: u32,
    is_signed: c_int,
    planar: c_int,
}

unsafe extern "C" {
    fn ojph_shim_encode(
        image: *const ShimImage,
        samples: *const u8,
        colour_transform: c_int,
        decompositions: u32,
        out: *mut *mut u8,
        out_size: *mut usize,
        error: *mut c_char,
        error_capacity: usize,
    ) -> c_int;
    fn ojph_shim_free(bytes: *mut u8);
    fn ojph_shim_decode(
        data: *const u8,
        length: usize,
        image: *const ShimImage,
        out: *mut u8,
        out_capacity: usize,
        bit_depth: *mut u32,
        error: *mut c_char,
        error_capacity: usize,
    ) -> c_int;
}

impl Image {
    /// Bytes of native samples the image takes, or why it is not an image this binding takes.
    fn byte_length(&self) -> Result<usize, Error> {
        let unsupported = |why: String| Err(Error::Unsupported(why));
        if self.width == 0 || self.height == 0 {
            return unsupported(format!("{} x {} pixels", self.width, self.height));
        }
        if !matches!(self.components, 1 | 3) {
            return unsupported(format!("{} components (1 or 3)", self.components));
        }
        if !matches!(self.bytes_per_sample, 1 | 2) {
            return unsupported(format!(
                "{} bytes per sample (1 or 2)",
                self.bytes_per_sample
            ));
        }
        if self.bits == 0 || self.bits > 8 * self.bytes_per_sample {
            return unsupported(format!(
                "{} bits in {} byte(s)",
                self.bits, self.bytes_per_sample
            ));
        }
        Ok(self.width as usize
            * self.height as usize
            * self.components as usize
            * self.bytes_per_sample as usize)
    }

    fn shim(&self) -> ShimImage {
        ShimImage {
            width: self.width,
            height: self.height,
            components: self.components,
            bytes: self.bytes_per_sample,
            bits: self.bits,
            is_signed: c_int::from(self.signed),
            planar: c_int::from(self.planar),
        }
    }
}

/// The wavelet levels for an image: 5 (what OpenJPH and most encoders use), fewer for an image whose smaller
/// side cannot be halved that often, but at least 1: OpenJPH 0.31 codes images with none wrongly (its own decoder
/// and OpenJPEG read other samples back; `dicomweb-pixel`'s test `openjph_codes_images_without_decomposition_wrongly`
/// shows it), and one level is valid for any image, even one pixel wide.
pub fn default_decompositions(image: &Image) -> u32 {
    let smaller = image.width.min(image.height).max(1);
    (31 - smaller.leading_zeros()).clamp(1, 5)
}

/// The message the shim wrote.
fn message(buffer: &[c_char]) -> String {
    // SAFETY: the shim writes a NUL-terminated message within the buffer (snprintf), or leaves it zeroed.
    unsafe { CStr::from_ptr(buffer.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Encodes `samples` (the native bytes of `image`) as a lossless HTJ2K codestream: reversible 5/3 wavelet,
/// 64 x 64 code blocks, one tile, and for colour with `colour_transform` the reversible colour transform (the
/// decoder undoes it; DICOM then calls the image YBR_RCT). Only the low `image.bits` bits of each sample are
/// coded, sign-extended when `image.signed`.
pub fn encode_lossless(
    image: &Image,
    samples: &[u8],
    colour_transform: bool,
) -> Result<Vec<u8>, Error> {
    encode_lossless_with(
        image,
        samples,
        colour_transform,
        default_decompositions(image),
    )
}

/// [`encode_lossless`] with `decompositions` wavelet levels (0 to 32).
pub fn encode_lossless_with(
    image: &Image,
    samples: &[u8],
    colour_transform: bool,
    decompositions: u32,
) -> Result<Vec<u8>, Error> {
    if decompositions > 32 {
        return Err(Error::Unsupported(format!(
            "{decompositions} decompositions (at most 32)"
        )));
    }
    let length = image.byte_length()?;
    if samples.len() < length {
        return Err(Error::Unsupported(format!(
            "{} bytes of samples, {length} expected",
            samples.len()
        )));
    }
    let shim = image.shim();
    let mut out: *mut u8 = std::ptr::null_mut();
    let mut size = 0usize;
    let mut error: [c_char; 512] = [0; 512];
    // SAFETY: `samples` holds the `length` bytes the shim reads for this shape (checked above); `out` and
    // `size` are written by the shim, which owns no pointer past the call; `error` is writable for its length.
    let status = unsafe {
        ojph_shim_encode(
            &shim,
            samples.as_ptr(),
            c_int::from(colour_transform),
            decompositions,
            &mut out,
            &mut size,
            error.as_mut_ptr(),
            error.len(),
        )
    };
    if status != 0 || out.is_null() {
        return Err(Error::Codec(message(&error)));
    }
    // SAFETY: on success the shim returned a malloc'd buffer of `size` bytes, copied here and freed once.
    let bytes = unsafe {
        let bytes = std::slice::from_raw_parts(out, size).to_vec();
        ojph_shim_free(out);
        bytes
    };
    Ok(bytes)
}

/// Decodes an HTJ2K (or JPEG 2000 Part 1) codestream that must hold exactly `image`'s size and components, at
/// most `image.bits` bits deep, checked from its header before the image is allocated: what a stored frame
/// claims cannot make the decoder allocate more than the data set describes. Lossy codestreams come back
/// clamped to their bit depth.
pub fn decode(codestream: &[u8], image: &Image) -> Result<Decoded, Error> {
    let length = image.byte_length()?;
    let mut samples = vec![0u8; length];
    let mut bit_depth = 0u32;
    let mut error: [c_char; 512] = [0; 512];
    let shim = image.shim();
    // SAFETY: `codestream` is read within its length; `samples` is writable for `length` bytes, passed as the
    // capacity; `bit_depth` and `error` are written within their sizes.
    let status = unsafe {
        ojph_shim_decode(
            codestream.as_ptr(),
            codestream.len(),
            &shim,
            samples.as_mut_ptr(),
            samples.len(),
            &mut bit_depth,
            error.as_mut_ptr(),
            error.len(),
        )
    };
    if status != 0 {
        return Err(Error::Codec(message(&error)));
    }
    Ok(Decoded { samples, bit_depth })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grey(width: u32, height: u32, bits: u32, signed: bool) -> Image {
        Image {
            width,
            height,
            components: 1,
            bytes_per_sample: if bits > 8 { 2 } else { 1 },
            bits,
            signed,
            planar: false,
        }
    }

    #[test]
    fn signed_samples_round_trip_sign_extended() {
        let image = grey(16, 8, 12, true);
        let values: Vec<i16> = (0..128).map(|i| (i * 37 % 4096 - 2048) as i16).collect();
        let samples: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let codestream = encode_lossless(&image, &samples, false).unwrap();
        assert_eq!(decode(&codestream, &image).unwrap().samples, samples);
    }

    #[test]
    fn colour_by_plane_comes_back_by_pixel_through_the_colour_transform() {
        let planar = Image {
            width: 5,
            height: 3,
            components: 3,
            bytes_per_sample: 1,
            bits: 8,
            signed: false,
            planar: true,
        };
        let by_pixel: Vec<u8> = (0..45).map(|i| (i * 53 % 256) as u8).collect();
        let by_plane: Vec<u8> = (0..3)
            .flat_map(|c| (0..15).map(move |p| (c, p)))
            .map(|(c, p)| by_pixel[p * 3 + c])
            .collect();
        for transform in [false, true] {
            let codestream = encode_lossless(&planar, &by_plane, transform).unwrap();
            let decoded = decode(&codestream, &planar).unwrap();
            assert_eq!(decoded.samples, by_pixel, "colour transform {transform}");
        }
    }

    #[test]
    fn a_codestream_of_another_shape_than_described_is_refused_before_decoding() {
        let image = grey(64, 64, 8, false);
        let codestream = encode_lossless(&image, &vec![9u8; 64 * 64], false).unwrap();
        let error = decode(&codestream, &grey(32, 64, 8, false)).unwrap_err();
        assert!(error.to_string().contains("64 x 64"), "{error}");
        let deeper = encode_lossless(&grey(8, 8, 12, false), &[1u8; 128], false).unwrap();
        let error = decode(&deeper, &grey(8, 8, 8, false)).unwrap_err();
        assert!(error.to_string().contains("12-bit"), "{error}");
    }

    /// A codestream whose header claims tiles of one pixel is refused before OpenJPH builds 10,000 tiles.
    #[test]
    fn a_codestream_of_countless_tiles_is_refused() {
        let image = grey(100, 100, 8, false);
        let mut codestream = encode_lossless(&image, &[7u8; 100 * 100], false).unwrap();
        // SOC, then SIZ: marker, Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, then XTsiz and YTsiz at bytes 24..32.
        assert_eq!(&codestream[2..4], &[0xFF, 0x51]);
        codestream[24..32].copy_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        let error = decode(&codestream, &image).unwrap_err();
        assert!(error.to_string().contains("tiles"), "{error}");
    }

    #[test]
    fn shapes_outside_the_binding_are_refused() {
        for image in [
            grey(0, 4, 8, false),
            Image {
                components: 2,
                ..grey(4, 4, 8, false)
            },
            Image {
                bits: 9,
                ..grey(4, 4, 8, false)
            },
        ] {
            assert!(matches!(
                encode_lossless(&image, &[0; 64], false),
                Err(Error::Unsupported(_))
            ));
        }
        assert!(matches!(
            encode_lossless(&grey(4, 4, 8, false), &[0; 15], false),
            Err(Error::Unsupported(_))
        ));
    }

    #[test]
    fn a_one_pixel_image_round_trips() {
        let image = grey(1, 1, 16, false);
        let codestream = encode_lossless(&image, &[0xFF, 0xFF], false).unwrap();
        assert_eq!(decode(&codestream, &image).unwrap().samples, [0xFF, 0xFF]);
    }

    proptest! {
        /// Any image of any shape the binding takes comes back exactly.
        #[test]
        fn any_image_round_trips(
            width in 1u32..40,
            height in 1u32..40,
            colour in any::<bool>(),
            bits in 1u32..=16,
            signed in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let image = Image {
                width,
                height,
                components: if colour { 3 } else { 1 },
                bytes_per_sample: if bits > 8 { 2 } else { 1 },
                bits,
                signed,
                planar: false,
            };
            let count = (width * height * image.components) as usize;
            let mut state = seed | 1;
            let mut samples = Vec::new();
            for _ in 0..count {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let low = (state as u32) & ((1u32 << bits) - 1);
                let value = if signed && low & (1 << (bits - 1)) != 0 {
                    (low as i32 - (1 << bits)) as u32
                } else {
                    low
                };
                if image.bytes_per_sample == 2 {
                    samples.extend_from_slice(&(value as u16).to_le_bytes());
                } else {
                    samples.push(value as u8);
                }
            }
            let codestream = encode_lossless(&image, &samples, colour).unwrap();
            prop_assert_eq!(decode(&codestream, &image).unwrap().samples, samples);
        }

        /// Whatever bytes a codestream holds (damaged copies of a real one, or noise), decoding answers: a
        /// frame or an error, never a crash.
        #[test]
        fn damaged_codestreams_never_crash(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..12),
            cut in any::<prop::sample::Index>(),
            noise in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let image = grey(48, 40, 12, false);
            let samples: Vec<u8> = (0..48 * 40u32).flat_map(|i| (((i * 71) % 4096) as u16).to_le_bytes()).collect();
            let mut codestream = encode_lossless(&image, &samples, false).unwrap();
            for (at, value) in flips {
                let at = at.index(codestream.len());
                codestream[at] = value;
            }
            codestream.truncate(cut.index(codestream.len() + 1));
            let _ = decode(&codestream, &image);
            let _ = decode(&noise, &image);
        }
    }
}
