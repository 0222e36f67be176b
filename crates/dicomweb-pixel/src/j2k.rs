//! JPEG 2000 lossless encoding through OpenJPEG, the C reference codec (already built for decoding by
//! dicom-pixeldata's `openjpeg-sys` feature). dicom-rs has no JPEG 2000 encoder, and the `jpeg2k` crate only
//! encodes to files, so this is a small binding of OpenJPEG's encoder writing to memory.

use std::ffi::{CStr, c_char, c_void};

use openjpeg_sys as opj;

use crate::FrameGeometry;

/// Why a frame cannot be encoded here by `codec` (JPEG 2000 or HTJ2K, which take the same pixel formats), or
/// `None` when it can: 1 or 3 samples of 8 or 16 bits allocated, Bits Stored at most 16 and High Bit at its top.
pub(crate) fn unsupported(codec: &str, geometry: &FrameGeometry) -> Option<String> {
    if !matches!(geometry.samples_per_pixel, 1 | 3) {
        return Some(format!(
            "{codec} encoding here takes 1 or 3 samples per pixel, not {}",
            geometry.samples_per_pixel
        ));
    }
    if !matches!(geometry.bits_allocated, 8 | 16) {
        return Some(format!(
            "{codec} encoding here takes 8 or 16 bits allocated, not {}",
            geometry.bits_allocated
        ));
    }
    stored_bits_fit(geometry)
}

/// Bits Stored between 1 and Bits Allocated, with High Bit = Bits Stored - 1 (PS3.5 8.2 asks this of
/// compressed pixel data).
pub(crate) fn stored_bits_fit(geometry: &FrameGeometry) -> Option<String> {
    if geometry.bits_stored == 0
        || geometry.bits_stored > geometry.bits_allocated
        || geometry.high_bit + 1 != geometry.bits_stored
    {
        return Some(format!(
            "Bits Stored {} and High Bit {} do not describe samples held in the low bits of {} bits",
            geometry.bits_stored, geometry.high_bit, geometry.bits_allocated
        ));
    }
    None
}

/// The sample values of a native little-endian frame, component by component (`[component][pixel]`), taken
/// from the low `bits_stored` bits, sign-extended when Pixel Representation is 1.
pub(crate) fn components(geometry: &FrameGeometry, frame: &[u8]) -> Vec<Vec<i32>> {
    let samples = usize::from(geometry.samples_per_pixel);
    let pixels = usize::from(geometry.rows) * usize::from(geometry.columns);
    let wide = geometry.bits_allocated == 16;
    let bits = u32::from(geometry.bits_stored);
    let signed = geometry.pixel_representation == 1;
    let planar = geometry.planar_configuration == 1 && samples > 1;
    let value = |index: usize| -> i32 {
        let raw = if wide {
            u32::from(u16::from_le_bytes([
                frame.get(2 * index).copied().unwrap_or(0),
                frame.get(2 * index + 1).copied().unwrap_or(0),
            ]))
        } else {
            u32::from(frame.get(index).copied().unwrap_or(0))
        };
        let low = if bits >= 32 {
            raw
        } else {
            raw & ((1 << bits) - 1)
        };
        if signed && bits < 32 && low & (1 << (bits - 1)) != 0 {
            (low as i32) - (1 << bits)
        } else {
            low as i32
        }
    };
    (0..samples)
        .map(|sample| {
            (0..pixels)
                .map(|pixel| {
                    value(if planar {
                        sample * pixels + pixel
                    } else {
                        pixel * samples + sample
                    })
                })
                .collect()
        })
        .collect()
}

/// Where the encoder writes: a growing buffer and a position (OpenJPEG may skip and seek back).
struct Output {
    bytes: Vec<u8>,
    position: usize,
}

unsafe extern "C" fn write_output(buffer: *mut c_void, length: usize, user: *mut c_void) -> usize {
    // SAFETY: `user` is the `Output` given to `opj_stream_set_user_data`, alive for the stream's life; `buffer`
    // holds `length` bytes (OpenJPEG's contract for write functions).
    let output = unsafe { &mut *(user as *mut Output) };
    let data = unsafe { std::slice::from_raw_parts(buffer as *const u8, length) };
    let end = output.position + length;
    if output.bytes.len() < end {
        output.bytes.resize(end, 0);
    }
    output.bytes[output.position..end].copy_from_slice(data);
    output.position = end;
    length
}

unsafe extern "C" fn skip_output(length: i64, user: *mut c_void) -> i64 {
    // SAFETY: as in `write_output`.
    let output = unsafe { &mut *(user as *mut Output) };
    let Some(position) = output.position.checked_add_signed(length as isize) else {
        return -1;
    };
    output.position = position;
    if output.bytes.len() < position {
        output.bytes.resize(position, 0);
    }
    length
}

unsafe extern "C" fn seek_output(position: i64, user: *mut c_void) -> i32 {
    // SAFETY: as in `write_output`.
    let output = unsafe { &mut *(user as *mut Output) };
    let Ok(position) = usize::try_from(position) else {
        return 0;
    };
    output.position = position;
    if output.bytes.len() < position {
        output.bytes.resize(position, 0);
    }
    1
}

/// Collects OpenJPEG's error messages (it reports through callbacks, not return values).
unsafe extern "C" fn record_error(message: *const c_char, user: *mut c_void) {
    // SAFETY: `user` is the `String` given to `opj_set_error_handler`, alive while the codec is; OpenJPEG
    // passes a NUL-terminated message.
    let errors = unsafe { &mut *(user as *mut String) };
    if !message.is_null() {
        let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
        errors.push_str(text.trim_end());
        errors.push_str("; ");
    }
}

/// Owns what OpenJPEG allocated, so that every exit frees it.
struct Resources {
    image: *mut opj::opj_image_t,
    codec: *mut opj::opj_codec_t,
    stream: *mut opj::opj_stream_t,
}

impl Drop for Resources {
    fn drop(&mut self) {
        // SAFETY: each pointer is null or was returned by its OpenJPEG constructor and is freed once, here.
        unsafe {
            if !self.stream.is_null() {
                opj::opj_stream_destroy(self.stream);
            }
            if !self.codec.is_null() {
                opj::opj_destroy_codec(self.codec);
            }
            if !self.image.is_null() {
                opj::opj_image_destroy(self.image);
            }
        }
    }
}

/// One native little-endian frame as a JPEG 2000 codestream (no JP2 box: what PS3.5 A.4.4 carries),
/// reversible 5/3 wavelet, one quality layer, and with `colour_transform` the reversible colour transform of
/// three components (decoders undo it), so the decoded samples equal the stored bits exactly. The caller
/// checked [`unsupported`].
pub(crate) fn encode(
    geometry: &FrameGeometry,
    frame: &[u8],
    colour_transform: bool,
) -> Result<Vec<u8>, String> {
    let width = u32::from(geometry.columns);
    let height = u32::from(geometry.rows);
    if width == 0 || height == 0 {
        return Err("the frame has no pixels".into());
    }
    let planes = components(geometry, frame);
    let precision = u32::from(geometry.bits_stored);
    let signed = u32::from(geometry.pixel_representation == 1);
    let mut parameters: Vec<opj::opj_image_cmptparm_t> = planes
        .iter()
        .map(|_| opj::opj_image_cmptparm_t {
            dx: 1,
            dy: 1,
            w: width,
            h: height,
            x0: 0,
            y0: 0,
            prec: precision,
            bpp: precision,
            sgnd: signed,
        })
        .collect();
    let colour_space = if planes.len() == 3 {
        opj::OPJ_COLOR_SPACE::OPJ_CLRSPC_SRGB
    } else {
        opj::OPJ_COLOR_SPACE::OPJ_CLRSPC_GRAY
    };
    let mut output = Output {
        bytes: Vec::with_capacity(frame.len() / 2 + 1024),
        position: 0,
    };
    let mut errors = String::new();
    // SAFETY: the calls follow OpenJPEG's documented encoding sequence (image, parameters, codec, stream,
    // start/encode/end); component buffers are written within their `w * h` samples; `output` and `errors`
    // outlive the codec and the stream, which `Resources` destroys before they go out of scope.
    unsafe {
        let mut resources = Resources {
            image: opj::opj_image_create(
                parameters.len() as u32,
                parameters.as_mut_ptr(),
                colour_space,
            ),
            codec: std::ptr::null_mut(),
            stream: std::ptr::null_mut(),
        };
        if resources.image.is_null() {
            return Err("OpenJPEG could not create the image".into());
        }
        let image = &mut *resources.image;
        image.x0 = 0;
        image.y0 = 0;
        image.x1 = width;
        image.y1 = height;
        for (index, plane) in planes.iter().enumerate() {
            let component = &mut *image.comps.add(index);
            let data = std::slice::from_raw_parts_mut(component.data, plane.len());
            data.copy_from_slice(plane);
        }

        let mut encoding: opj::opj_cparameters_t = std::mem::zeroed();
        opj::opj_set_default_encoder_parameters(&mut encoding);
        encoding.tcp_numlayers = 1;
        encoding.tcp_rates[0] = 0.0; // 0: lossless
        encoding.cp_disto_alloc = 1;
        encoding.irreversible = 0;
        encoding.tcp_mct = if colour_transform && planes.len() == 3 {
            1
        } else {
            0
        };
        // Each resolution halves the image: no more than the smaller side allows (OpenJPEG refuses more).
        let smaller = width.min(height);
        encoding.numresolution = (32 - smaller.leading_zeros()).clamp(1, 6) as i32;

        resources.codec = opj::opj_create_compress(opj::OPJ_CODEC_FORMAT::OPJ_CODEC_J2K);
        if resources.codec.is_null() {
            return Err("OpenJPEG could not create an encoder".into());
        }
        let errors_ptr = &mut errors as *mut String as *mut c_void;
        opj::opj_set_error_handler(resources.codec, Some(record_error), errors_ptr);
        if opj::opj_setup_encoder(resources.codec, &mut encoding, resources.image) == 0 {
            return Err(format!("OpenJPEG refused the parameters: {errors}"));
        }
        resources.stream = opj::opj_stream_create(1 << 20, 0);
        if resources.stream.is_null() {
            return Err("OpenJPEG could not create an output stream".into());
        }
        opj::opj_stream_set_write_function(resources.stream, Some(write_output));
        opj::opj_stream_set_skip_function(resources.stream, Some(skip_output));
        opj::opj_stream_set_seek_function(resources.stream, Some(seek_output));
        opj::opj_stream_set_user_data(
            resources.stream,
            &mut output as *mut Output as *mut c_void,
            None,
        );
        let encoded = opj::opj_start_compress(resources.codec, resources.image, resources.stream)
            != 0
            && opj::opj_encode(resources.codec, resources.stream) != 0
            && opj::opj_end_compress(resources.codec, resources.stream) != 0;
        drop(resources);
        if !encoded {
            return Err(format!("OpenJPEG could not encode the frame: {errors}"));
        }
    }
    Ok(output.bytes)
}
