//! JPEG through libjpeg-turbo's TurboJPEG 3 API (`turbojpeg-sys`, which builds the libjpeg-turbo 3.1 it bundles
//! with cmake and nasm): every JPEG the archive decodes or encodes. Lossless JPEG (process 14, PS3.5 A.4.1)
//! encoded and decoded at 2 to 16 bits, 8- and 12-bit lossy JPEG (processes 1, 2 and 4: .50, .51) decoded, 8-bit
//! baseline JPEG (.50, and rendered images) encoded.
//!
//! Bound directly because no crate does all of these at this speed: jpeg-decoder decodes baseline at 1.6x and
//! lossless at 2x libjpeg-turbo's time and 12-bit not at all, jpeg-encoder encodes baseline at 3.3x and lossless
//! not at all, dicom-rs has neither, and the `turbojpeg` crate's safe API covers 8-bit lossy images only
//! (`../shared/reference/pixel-codecs.md`; `cargo bench -p dicomweb-pixel --bench codecs` measures ours).

use std::ffi::CStr;
use std::os::raw::c_int;

use turbojpeg_sys as tj;

use crate::FrameGeometry;

/// One TurboJPEG instance (compressor or decompressor), destroyed when dropped.
struct Handle(tj::tjhandle);

impl Handle {
    fn new(kind: tj::TJINIT) -> Result<Handle, String> {
        // SAFETY: tj3Init has no preconditions; a null handle is an error.
        let handle = unsafe { tj::tj3Init(kind as c_int) };
        if handle.is_null() {
            return Err("libjpeg-turbo could not be initialised".into());
        }
        Ok(Handle(handle))
    }

    fn set(&self, param: tj::TJPARAM, value: i32) -> Result<(), String> {
        // SAFETY: the handle is valid for the life of `self`.
        if unsafe { tj::tj3Set(self.0, param as c_int, value) } != 0 {
            return Err(self.error());
        }
        Ok(())
    }

    fn get(&self, param: tj::TJPARAM) -> i32 {
        // SAFETY: as above.
        unsafe { tj::tj3Get(self.0, param as c_int) }
    }

    /// Whether the call that just failed only warned: libjpeg-turbo then has decoded the whole image, and says
    /// something about the stream (pydicom's JPEG-lossy.dcm, from NEMA's WG04 set, has sequential SOS
    /// parameters out of range; GDCM and DCMTK read it with the same warning).
    fn only_warned(&self) -> bool {
        // SAFETY: the handle is valid for the life of `self`.
        unsafe { tj::tj3GetErrorCode(self.0) == tj::TJERR_TJERR_WARNING as c_int }
    }

    /// The message of the last error on this handle.
    fn error(&self) -> String {
        // SAFETY: tj3GetErrorStr returns a NUL-terminated string owned by the handle (or a static one).
        unsafe {
            let text = tj::tj3GetErrorStr(self.0);
            if text.is_null() {
                "libjpeg-turbo failed".into()
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

/// What [`decode`] tells of a JPEG image before decoding it.
fn header(handle: &Handle, jpeg: &[u8]) -> Result<(usize, usize, i32), String> {
    // SAFETY: `jpeg` is a valid slice for the call.
    if unsafe { tj::tj3DecompressHeader(handle.0, jpeg.as_ptr(), jpeg.len() as tj::size_t) } != 0
        && !handle.only_warned()
    {
        return Err(handle.error());
    }
    let width = handle.get(tj::TJPARAM_TJPARAM_JPEGWIDTH);
    let height = handle.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT);
    let precision = handle.get(tj::TJPARAM_TJPARAM_PRECISION);
    if width <= 0 || height <= 0 {
        return Err("the JPEG image has no size".into());
    }
    Ok((width as usize, height as usize, precision))
}

/// A JPEG image to decompress and the shape of its output: `count` samples of pixel format `format`, rows
/// `pitch` samples apart.
struct Image<'a> {
    jpeg: &'a [u8],
    count: usize,
    pitch: c_int,
    format: c_int,
}

/// The signature shared by tj3Decompress8, tj3Decompress12 and tj3Decompress16, for samples of type `T`.
type Decompress<T> =
    unsafe extern "C" fn(tj::tjhandle, *const u8, tj::size_t, *mut T, c_int, c_int) -> c_int;

/// Decompresses `image` with `function`, the variant for samples of type `T`; a call that only warned is a
/// success (see [`Handle::only_warned`]).
fn decompress<T: Copy + Default>(
    handle: &Handle,
    image: &Image<'_>,
    function: Decompress<T>,
) -> Result<Vec<T>, String> {
    let mut out = vec![T::default(); image.count];
    // SAFETY: `out` holds `count` samples of the format asked, rows `pitch` samples apart, as the caller derived
    // them from the image's header; `jpeg` is a valid slice for the call.
    let status = unsafe {
        function(
            handle.0,
            image.jpeg.as_ptr(),
            image.jpeg.len() as tj::size_t,
            out.as_mut_ptr(),
            image.pitch,
            image.format,
        )
    };
    if status != 0 && !handle.only_warned() {
        return Err(handle.error());
    }
    Ok(out)
}

/// The signature shared by tj3Compress8, tj3Compress12 and tj3Compress16, for samples of type `T`.
type Compress<T> = unsafe extern "C" fn(
    tj::tjhandle,
    *const T,
    c_int,
    c_int,
    c_int,
    c_int,
    *mut *mut u8,
    *mut tj::size_t,
) -> c_int;

/// Compresses `source` (`width` x `height` pixels of `format`, rows `pitch` samples apart) with `function`, the
/// variant for samples of type `T`, under the handle's parameters; the JPEG bytes.
fn compress<T>(
    handle: &Handle,
    source: &[T],
    (width, height, pitch, format): (usize, usize, usize, c_int),
    function: Compress<T>,
) -> Result<Vec<u8>, String> {
    if source.len() < pitch * height {
        return Err(format!(
            "{} samples for a {width}x{height} image",
            source.len()
        ));
    }
    let mut jpeg: *mut u8 = std::ptr::null_mut();
    let mut size: tj::size_t = 0;
    // SAFETY: `source` holds `height` rows of `pitch` samples; TurboJPEG allocates `jpeg` (freed below with
    // tj3Free) and sets `size`.
    let status = unsafe {
        function(
            handle.0,
            source.as_ptr(),
            width as c_int,
            pitch as c_int,
            height as c_int,
            format,
            &mut jpeg,
            &mut size,
        )
    };
    let result = if status != 0 || jpeg.is_null() {
        Err(handle.error())
    } else {
        // SAFETY: TurboJPEG wrote `size` bytes at `jpeg`.
        Ok(unsafe { std::slice::from_raw_parts(jpeg, size as usize) }.to_vec())
    };
    if !jpeg.is_null() {
        // SAFETY: allocated by TurboJPEG for this call.
        unsafe { tj::tj3Free(jpeg.cast()) };
    }
    result
}

/// One JPEG frame (lossless at any precision, or lossy at 8 or 12 bits) decoded to native little-endian
/// samples, colour by pixel (YCbCr turned into RGB), as `geometry` (the instance's attributes) describes them;
/// and the geometry of what it gave.
pub(crate) fn decode(
    jpeg: &[u8],
    geometry: &FrameGeometry,
) -> Result<(Vec<u8>, FrameGeometry), String> {
    let handle = Handle::new(tj::TJINIT_TJINIT_DECOMPRESS)?;
    let (width, height, precision) = header(&handle, jpeg)?;
    if (width, height) != (usize::from(geometry.columns), usize::from(geometry.rows)) {
        return Err(format!(
            "the JPEG image is {width}x{height}, the instance's frames {}x{}",
            geometry.columns, geometry.rows
        ));
    }
    let samples = usize::from(geometry.samples_per_pixel);
    let format = match samples {
        1 => tj::TJPF_TJPF_GRAY,
        3 => tj::TJPF_TJPF_RGB,
        n => return Err(format!("{n} samples per pixel")),
    } as c_int;
    let count = width * height * samples;
    let pitch = (width * samples) as c_int;
    let mut decoded = geometry.clone();
    decoded.planar_configuration = 0;
    if samples == 3
        && geometry
            .photometric_interpretation
            .trim()
            .starts_with("YBR")
    {
        decoded.photometric_interpretation = "RGB".into();
    }
    let image = Image {
        jpeg,
        count,
        pitch,
        format,
    };
    let bytes = match precision {
        2..=8 => {
            let out = decompress(&handle, &image, tj::tj3Decompress8)?;
            if geometry.bits_allocated == 16 {
                out.iter()
                    .flat_map(|&v| u16::from(v).to_le_bytes())
                    .collect()
            } else {
                decoded.bits_allocated = 8;
                out
            }
        }
        9..=12 => {
            decoded.bits_allocated = 16;
            decompress(&handle, &image, tj::tj3Decompress12)?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()
        }
        13..=16 => {
            decoded.bits_allocated = 16;
            decompress(&handle, &image, tj::tj3Decompress16)?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()
        }
        other => return Err(format!("a JPEG data precision of {other} bits")),
    };
    Ok((bytes, decoded))
}

/// Why frames of `geometry` cannot be encoded as lossless JPEG here, or `None`.
pub(crate) fn lossless_unsupported(geometry: &FrameGeometry) -> Option<String> {
    let fits = match geometry.bits_allocated {
        8 => (2..=8).contains(&geometry.bits_stored),
        16 => (2..=16).contains(&geometry.bits_stored),
        _ => false,
    };
    (!fits).then(|| {
        format!(
            "JPEG lossless encoding here takes 2 to 8 bits stored in 8 allocated, or 2 to 16 in 16; not {} in {}",
            geometry.bits_stored, geometry.bits_allocated
        )
    })
}

/// One native little-endian frame, colour by pixel, as lossless JPEG, first-order prediction (selection value
/// 1, no point transform: the JPEG Lossless SV1 transfer syntax, .70) at the precision of Bits Stored. Samples
/// are taken to their Bits Stored low bits (those above are not pixel data); colour is coded as it is (no colour
/// transform: the photometric interpretation stays).
pub(crate) fn encode_lossless(geometry: &FrameGeometry, frame: &[u8]) -> Result<Vec<u8>, String> {
    if let Some(why) = lossless_unsupported(geometry) {
        return Err(why);
    }
    let handle = Handle::new(tj::TJINIT_TJINIT_COMPRESS)?;
    let samples = usize::from(geometry.samples_per_pixel);
    let (format, colour_space, subsampling) = match samples {
        1 => (
            tj::TJPF_TJPF_GRAY,
            tj::TJCS_TJCS_GRAY,
            tj::TJSAMP_TJSAMP_GRAY,
        ),
        3 => (tj::TJPF_TJPF_RGB, tj::TJCS_TJCS_RGB, tj::TJSAMP_TJSAMP_444),
        n => return Err(format!("{n} samples per pixel")),
    };
    let precision = i32::from(geometry.bits_stored);
    handle.set(tj::TJPARAM_TJPARAM_LOSSLESS, 1)?;
    handle.set(tj::TJPARAM_TJPARAM_LOSSLESSPSV, 1)?;
    handle.set(tj::TJPARAM_TJPARAM_LOSSLESSPT, 0)?;
    handle.set(tj::TJPARAM_TJPARAM_PRECISION, precision)?;
    handle.set(tj::TJPARAM_TJPARAM_COLORSPACE, colour_space as i32)?;
    handle.set(tj::TJPARAM_TJPARAM_SUBSAMP, subsampling)?;
    let (width, height) = (usize::from(geometry.columns), usize::from(geometry.rows));
    let shape = (width, height, width * samples, format as c_int);
    let mask = ((1u32 << geometry.bits_stored) - 1) as u16;
    match precision {
        2..=8 => {
            let source: Vec<u8> = if geometry.bits_allocated == 8 {
                frame.iter().map(|&v| v & mask as u8).collect()
            } else {
                samples_16(frame).map(|v| (v & mask) as u8).collect()
            };
            compress(&handle, &source, shape, tj::tj3Compress8)
        }
        9..=12 => {
            let source: Vec<i16> = samples_16(frame).map(|v| (v & mask) as i16).collect();
            compress(&handle, &source, shape, tj::tj3Compress12)
        }
        _ => {
            let source: Vec<u16> = samples_16(frame).map(|v| v & mask).collect();
            compress(&handle, &source, shape, tj::tj3Compress16)
        }
    }
}

fn samples_16(frame: &[u8]) -> impl Iterator<Item = u16> + '_ {
    frame
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
}

/// How much of the chrominance of a colour baseline JPEG is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chroma {
    /// Halved horizontally (4:2:2): what DICOM's YBR_FULL_422 describes (PS3.5 8.2.1).
    HalfWidth,
    /// Halved both ways (4:2:0): what browsers and viewers expect of a rendered image.
    Quarter,
}

/// An 8-bit grey (`channels` 1) or RGB (3, by pixel) image as baseline JPEG at `quality` (1 to 100), colour as
/// YCbCr subsampled as `chroma` says, with a JFIF header.
pub(crate) fn encode_baseline(
    pixels: &[u8],
    (width, height, channels): (usize, usize, usize),
    quality: u8,
    chroma: Chroma,
) -> Result<Vec<u8>, String> {
    let colour_subsampling = match chroma {
        Chroma::HalfWidth => tj::TJSAMP_TJSAMP_422,
        Chroma::Quarter => tj::TJSAMP_TJSAMP_420,
    };
    let (format, subsampling) = match channels {
        1 => (tj::TJPF_TJPF_GRAY, tj::TJSAMP_TJSAMP_GRAY),
        3 => (tj::TJPF_TJPF_RGB, colour_subsampling),
        n => return Err(format!("{n} channels")),
    };
    let handle = Handle::new(tj::TJINIT_TJINIT_COMPRESS)?;
    handle.set(
        tj::TJPARAM_TJPARAM_QUALITY,
        i32::from(quality.clamp(1, 100)),
    )?;
    handle.set(tj::TJPARAM_TJPARAM_SUBSAMP, subsampling)?;
    compress(
        &handle,
        pixels,
        (width, height, width * channels, format as c_int),
        tj::tj3Compress8,
    )
}
