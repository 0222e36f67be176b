//! Rendering a decoded frame as a consumer image (PS3.18 8.3.5, 9.5.1.2.1): the Modality LUT (rescale), a VOI
//! window (asked, or the instance's, or the frame's range), MONOCHROME1 inversion, colour to RGB, a viewport
//! (source rectangle and output size), then JPEG or PNG.
//!
//! Written here rather than through dicom-pixeldata's `image` feature: that pulls about twenty image-format
//! crates for the two encoders and one resize this needs, and its 16-bit windowing path fails on some inputs.
//! JPEG goes through libjpeg-turbo ([`crate::turbo`]), three times as fast as jpeg-encoder on a 512x512 frame.

use crate::FrameGeometry;

/// The image format of a rendered answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
}

impl ImageFormat {
    /// The media type of the format.
    pub fn media_type(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
        }
    }
}

/// The VOI LUT function of a window (PS3.3 C.11.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

/// A VOI window: center and width in modality values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub center: f64,
    pub width: f64,
    pub function: VoiFunction,
}

/// The part of the frame shown, and the size it is shown at (PS3.18 8.3.5.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    /// Output width and height: the image is scaled to fit within them, keeping its aspect ratio.
    pub width: u32,
    pub height: u32,
    /// Source rectangle (x, y, width, height) in frame pixels; the whole frame if `None`.
    pub source: Option<(u32, u32, u32, u32)>,
}

/// What a render needs to know of the instance beyond its frame geometry.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderAttributes {
    pub geometry: FrameGeometry,
    /// Rescale Slope and Intercept (0028,1053 / 0028,1052): 1 and 0 when absent.
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    /// The instance's first Window Center / Width (0028,1050 / 0028,1051) and VOI LUT Function, if any.
    pub window: Option<Window>,
    /// The red, green and blue Palette Color Lookup Tables of a PALETTE COLOR image (0028,1101-1103 and
    /// 0028,1201-1203).
    pub palette: Option<[PaletteLut; 3]>,
}

/// One Palette Color Lookup Table (PS3.3 C.7.6.3.1.5-6): the stored values from `first_mapped` on map to its
/// entries in turn; values below map to the first entry, values above to the last.
#[derive(Debug, Clone, PartialEq)]
pub struct PaletteLut {
    pub first_mapped: i64,
    /// Bits per entry (8 or 16).
    pub bits: u16,
    pub entries: Vec<u16>,
}

impl PaletteLut {
    /// A table from its descriptor (entries, where 0 means 65536; first stored value mapped; bits per entry) and
    /// its data as stored (16-bit words, little endian; 8-bit entries are also found packed two per word).
    pub fn from_descriptor(descriptor: [i64; 3], data: &[u8]) -> Result<PaletteLut, RenderError> {
        let [count, first_mapped, bits] = descriptor;
        let count = if count == 0 { 65536 } else { count };
        let bad = |why: String| RenderError::Unsupported(format!("a palette colour table {why}"));
        if !(1..=65536).contains(&count) {
            return Err(bad(format!("of {count} entries")));
        }
        let count = count as usize;
        let bits = match bits {
            8 => 8,
            16 => 16,
            other => return Err(bad(format!("of {other}-bit entries"))),
        };
        let entries: Vec<u16> = if bits == 8 && data.len() == count {
            data.iter().map(|&b| u16::from(b)).collect()
        } else if data.len() >= count * 2 {
            data.chunks_exact(2)
                .take(count)
                .map(|w| u16::from_le_bytes([w[0], w[1]]))
                .collect()
        } else {
            return Err(bad(format!(
                "of {count} entries with only {} bytes of data",
                data.len()
            )));
        };
        Ok(PaletteLut {
            first_mapped,
            bits,
            entries,
        })
    }

    /// A table from its descriptor and Segmented Palette Color Lookup Table Data (0028,1221-1223; PS3.3
    /// C.7.9.2) as stored, little endian: 16-bit words for 16-bit entries, bytes for 8-bit ones. Discrete,
    /// linear and indirect segments are expanded (linear ramps rounded half to even, as pydicom does); the
    /// expansion stops at the descriptor's number of entries, and an indirect segment may not lead to another
    /// one, so damaged data cannot make it grow or loop.
    pub fn from_segmented(descriptor: [i64; 3], data: &[u8]) -> Result<PaletteLut, RenderError> {
        let [count, first_mapped, bits] = descriptor;
        let count = if count == 0 { 65536 } else { count };
        let bad = |why: String| {
            RenderError::Unsupported(format!("a segmented palette colour table {why}"))
        };
        if !(1..=65536).contains(&count) {
            return Err(bad(format!("of {count} entries")));
        }
        let words: Vec<u16> = match bits {
            16 => data
                .chunks_exact(2)
                .map(|w| u16::from_le_bytes([w[0], w[1]]))
                .collect(),
            8 => data.iter().map(|&b| u16::from(b)).collect(),
            other => return Err(bad(format!("of {other}-bit entries"))),
        };
        let mut entries = Vec::with_capacity(count as usize);
        expand_segments(&words, bits == 8, None, false, count as usize, &mut entries)
            .map_err(|why| bad(why.to_owned()))?;
        if entries.len() < count as usize {
            return Err(bad(format!(
                "expands to {} entries, not the {count} of its descriptor",
                entries.len()
            )));
        }
        Ok(PaletteLut {
            first_mapped,
            bits: bits as u16,
            entries,
        })
    }

    /// The 8-bit output of stored value `value`.
    fn map(&self, value: i64) -> u8 {
        let last = self.entries.len() as i64 - 1;
        let entry = self.entries[(value - self.first_mapped).clamp(0, last) as usize];
        if self.bits == 16 {
            (entry >> 8) as u8
        } else {
            entry as u8
        }
    }
}

/// Expands the segments of `words` (at most `limit` of them when an indirect segment names a count) into
/// `entries`, up to `capacity` entries. `bytes` says that offsets are made of four bytes (8-bit tables) rather
/// than two words; `nested` that this is an indirect segment's expansion, which may not hold another.
fn expand_segments(
    words: &[u16],
    bytes: bool,
    limit: Option<usize>,
    nested: bool,
    capacity: usize,
    entries: &mut Vec<u16>,
) -> Result<(), &'static str> {
    let mut at = 0usize;
    let mut segments = 0usize;
    // `at + 1`: a trailing padding word is not a segment (every segment is longer than two words).
    while at + 1 < words.len() && entries.len() < capacity && limit.is_none_or(|l| segments < l) {
        let (opcode, length) = (words[at], usize::from(words[at + 1]));
        at += 2;
        match opcode {
            0 => {
                let values = words
                    .get(at..at + length)
                    .ok_or("has a discrete segment past its end")?;
                let room = capacity - entries.len();
                entries.extend_from_slice(&values[..length.min(room)]);
                at += length;
            }
            1 => {
                let &from = entries.last().ok_or("starts with a linear segment")?;
                let &to = words.get(at).ok_or("has a linear segment past its end")?;
                at += 1;
                let (from, to) = (f64::from(from), f64::from(to));
                for i in 1..=length.min(capacity - entries.len()) {
                    let value = from + (to - from) * i as f64 / length as f64;
                    entries.push(value.round_ties_even().clamp(0.0, 65535.0) as u16);
                }
            }
            2 => {
                if nested {
                    return Err("has an indirect segment within an indirect one");
                }
                if entries.is_empty() {
                    return Err("starts with an indirect segment");
                }
                // PS3.3 C.7.9.2.3: a 32-bit byte offset from the start of the data, least significant word
                // (or, for 8-bit tables, bytes in little-endian order) first.
                let (offset, used) = if bytes {
                    let b = words
                        .get(at..at + 4)
                        .ok_or("has an indirect segment past its end")?;
                    let offset = u32::from(b[0])
                        | u32::from(b[1]) << 8
                        | u32::from(b[2]) << 16
                        | u32::from(b[3]) << 24;
                    (offset as usize, 4)
                } else {
                    let w = words
                        .get(at..at + 2)
                        .ok_or("has an indirect segment past its end")?;
                    let offset = u32::from(w[0]) | u32::from(w[1]) << 16;
                    (offset as usize / 2, 2)
                };
                at += used;
                let from = words
                    .get(offset..)
                    .ok_or("has an indirect segment past its end")?;
                expand_segments(from, bytes, Some(length), true, capacity, entries)?;
            }
            _ => return Err("has a segment of an unknown type"),
        }
        segments += 1;
    }
    Ok(())
}

/// How to render.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderOptions {
    pub format: ImageFormat,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
    /// A window that overrides the instance's.
    pub window: Option<Window>,
    pub viewport: Option<Viewport>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            format: ImageFormat::Jpeg,
            quality: 90,
            window: None,
            viewport: None,
        }
    }
}

/// Why a frame could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("rendering {0} is not supported")]
    Unsupported(String),
    #[error("the frame holds {actual} bytes where its attributes call for {expected}")]
    WrongLength { actual: usize, expected: usize },
    #[error("{0}")]
    BadOption(String),
    #[error("the image could not be encoded: {0}")]
    Encoding(String),
}

/// An 8-bit image: `channels` 1 (grey) or 3 (RGB, interleaved).
struct Image {
    width: u32,
    height: u32,
    channels: u32,
    pixels: Vec<u8>,
}

/// Renders one decoded native frame (little endian, as [`crate::decode_frame`] gives or as stored natively).
pub fn render_frame(
    frame: &[u8],
    attributes: &RenderAttributes,
    options: &RenderOptions,
) -> Result<Vec<u8>, RenderError> {
    if let Some(image) = grey_reduced(frame, attributes, options) {
        return encode(&image, options);
    }
    let image = to_8_bit(frame, attributes, options.window)?;
    let image = apply_viewport(image, options.viewport)?;
    encode(&image, options)
}

/// The common case of thumbnails, drawn in one pass: a grey frame of 8 or 16 bits reduced by whole factors
/// (512 x 512 to 128 x 128), each source sample windowed through the table and added to its output pixel's sum,
/// with no full-size 8-bit image in between. The same pixels as [`to_8_bit`] then [`apply_viewport`] (a test
/// compares them); `None` for anything else, which takes that way.
fn grey_reduced(
    frame: &[u8],
    attributes: &RenderAttributes,
    options: &RenderOptions,
) -> Option<Image> {
    let g = &attributes.geometry;
    let viewport = options.viewport?;
    let photometric = g.photometric_interpretation.trim();
    let bytes = match g.bits_allocated {
        8 => 1,
        16 => 2,
        _ => return None,
    };
    if g.samples_per_pixel != 1
        || !matches!(photometric, "MONOCHROME1" | "MONOCHROME2")
        || viewport.source.is_some()
        || viewport.width == 0
        || viewport.height == 0
    {
        return None;
    }
    let (sw, sh) = (u32::from(g.columns), u32::from(g.rows));
    let pixels = sw as usize * sh as usize;
    if sw == 0 || sh == 0 || frame.len() < pixels * bytes {
        return None;
    }
    let (width, height) = fitted_size(sw, sh, &viewport);
    if width >= sw || height >= sh || sw % width != 0 || sh % height != 0 {
        return None;
    }
    let (kx, ky) = ((sw / width) as usize, (sh / height) as usize);
    let table = GreyTable::new(attributes, options.window, frame, bytes, pixels);
    let (width, sw) = (width as usize, sw as usize);
    let count = (kx * ky) as u32;
    let mut sums = vec![0u32; width];
    let mut grey_row = Vec::with_capacity(sw);
    let mut out = Vec::with_capacity(width * height as usize);
    for band in frame[..pixels * bytes].chunks_exact(sw * bytes * ky) {
        sums.iter_mut().for_each(|s| *s = 0);
        for row in band.chunks_exact(sw * bytes) {
            grey_row.clear();
            table.map_into(row, &mut grey_row);
            for (sum, block) in sums.iter_mut().zip(grey_row.chunks_exact(kx)) {
                *sum += block.iter().map(|&v| u32::from(v)).sum::<u32>();
            }
        }
        out.extend(sums.iter().map(|&sum| ((sum + count / 2) / count) as u8));
    }
    Some(Image {
        width: width as u32,
        height,
        channels: 1,
        pixels: out,
    })
}

fn to_8_bit(
    frame: &[u8],
    attributes: &RenderAttributes,
    window: Option<Window>,
) -> Result<Image, RenderError> {
    let g = &attributes.geometry;
    let (width, height) = (u32::from(g.columns), u32::from(g.rows));
    let pixels = width as usize * height as usize;
    let bytes_per_sample = match g.bits_allocated {
        8 => 1,
        16 => 2,
        32 => 4,
        bits => return Err(RenderError::Unsupported(format!("{bits}-bit samples"))),
    };
    let samples = usize::from(g.samples_per_pixel);
    let expected = pixels * samples * bytes_per_sample;
    if frame.len() < expected {
        return Err(RenderError::WrongLength {
            actual: frame.len(),
            expected,
        });
    }
    let photometric = g.photometric_interpretation.trim();
    match (samples, photometric) {
        (1, "MONOCHROME1" | "MONOCHROME2") if bytes_per_sample == 4 => {
            // 32-bit samples (RT Dose, some parametric maps): too many values for a table; each pixel's modality
            // value goes through the window.
            let modality = |raw: u32| -> f64 {
                let bits = u32::from(g.bits_stored.clamp(1, 32));
                let raw = if bits < 32 {
                    raw & ((1u32 << bits) - 1)
                } else {
                    raw
                };
                let stored = if g.pixel_representation == 1 && raw & (1 << (bits - 1)) != 0 {
                    i64::from(raw) - (1i64 << bits)
                } else {
                    i64::from(raw)
                };
                stored as f64 * attributes.rescale_slope + attributes.rescale_intercept
            };
            let values: Vec<f64> = (0..pixels)
                .map(|i| modality(raw_sample(frame, i, 4)))
                .collect();
            let window = window
                .or(attributes.window)
                .unwrap_or_else(|| range_window(&values));
            let invert = photometric == "MONOCHROME1";
            let out = values
                .iter()
                .map(|&v| {
                    let value = voi(v, &window);
                    if invert { 255 - value } else { value }
                })
                .collect();
            Ok(Image {
                width,
                height,
                channels: 1,
                pixels: out,
            })
        }
        (1, "MONOCHROME1" | "MONOCHROME2") => {
            // The hot loop of every rendering: a table lookup per pixel, by the raw sample itself.
            let table = GreyTable::new(attributes, window, frame, bytes_per_sample, pixels);
            let mut out = Vec::with_capacity(pixels);
            table.map_into(&frame[..pixels * bytes_per_sample], &mut out);
            Ok(Image {
                width,
                height,
                channels: 1,
                pixels: out,
            })
        }
        (1, "PALETTE COLOR") => {
            let palette = attributes.palette.as_ref().ok_or_else(|| {
                RenderError::Unsupported(
                    "PALETTE COLOR without its red, green and blue lookup tables".into(),
                )
            })?;
            // One table of RGB triples by masked stored value: each pixel is then a lookup.
            let mask = lut_mask(g);
            let bits = g.bits_stored.clamp(1, 16);
            let signed = g.pixel_representation == 1;
            let table: Vec<[u8; 3]> = (0..=mask)
                .map(|raw| {
                    let value = if signed && raw & (1 << (bits - 1)) != 0 {
                        i64::from(raw) - (1i64 << bits)
                    } else {
                        i64::from(raw)
                    };
                    [
                        palette[0].map(value),
                        palette[1].map(value),
                        palette[2].map(value),
                    ]
                })
                .collect();
            let mut out = Vec::with_capacity(pixels * 3);
            for i in 0..pixels {
                let raw = raw_sample(frame, i, bytes_per_sample) & mask;
                out.extend_from_slice(&table[raw as usize]);
            }
            Ok(Image {
                width,
                height,
                channels: 3,
                pixels: out,
            })
        }
        (3, "RGB" | "YBR_FULL") => {
            let shift = u32::from(g.bits_stored.saturating_sub(8).min(24));
            let planar = g.planar_configuration == 1;
            let mut out = Vec::with_capacity(pixels * 3);
            for i in 0..pixels {
                let sample = |c: usize| {
                    let index = if planar { c * pixels + i } else { i * 3 + c };
                    (raw_sample(frame, index, bytes_per_sample) >> shift).min(255) as u8
                };
                let (a, b, c) = (sample(0), sample(1), sample(2));
                if photometric == "YBR_FULL" {
                    out.extend_from_slice(&ybr_to_rgb(a, b, c));
                } else {
                    out.extend_from_slice(&[a, b, c]);
                }
            }
            Ok(Image {
                width,
                height,
                channels: 3,
                pixels: out,
            })
        }
        _ => Err(RenderError::Unsupported(format!(
            "{samples} sample(s) per pixel in {photometric}"
        ))),
    }
}

/// Raw sample `i` (little endian).
#[inline]
fn raw_sample(frame: &[u8], i: usize, bytes: usize) -> u32 {
    match bytes {
        1 => u32::from(frame[i]),
        2 => u32::from(u16::from_le_bytes([frame[2 * i], frame[2 * i + 1]])),
        _ => u32::from_le_bytes([
            frame[4 * i],
            frame[4 * i + 1],
            frame[4 * i + 2],
            frame[4 * i + 3],
        ]),
    }
}

/// The window that shows the whole range of `values` (modality values of a frame).
fn range_window(values: &[f64]) -> Window {
    let (low, high) = values.iter().fold((f64::MAX, f64::MIN), |(low, high), &v| {
        (low.min(v), high.max(v))
    });
    Window {
        center: (low + high) / 2.0,
        width: (high - low).max(1.0),
        function: VoiFunction::LinearExact,
    }
}

/// The 8-bit output of every value a grey sample's bytes can hold: [`grey_lut`] (indexed by a sample's low Bits
/// Stored bits), inverted for MONOCHROME1, repeated over the 256 or 65536 values of 1 or 2 bytes, so that looking
/// a raw sample up needs neither a mask nor a bounds check.
enum GreyTable {
    Byte(Box<[u8; 256]>),
    Word(Box<[u8; 65536]>),
}

impl GreyTable {
    /// The table of a frame of 1- or 2-byte samples (`bytes`).
    fn new(
        attributes: &RenderAttributes,
        window: Option<Window>,
        frame: &[u8],
        bytes: usize,
        pixels: usize,
    ) -> GreyTable {
        let mut lut = grey_lut(attributes, window, frame, bytes, pixels);
        if attributes.geometry.photometric_interpretation.trim() == "MONOCHROME1" {
            lut.iter_mut().for_each(|v| *v = 255 - *v);
        }
        if bytes == 1 {
            GreyTable::Byte(repeated(&lut))
        } else {
            GreyTable::Word(repeated(&lut))
        }
    }

    /// Each raw sample of `samples` (little endian, of the table's width) through the table, appended to `out`.
    fn map_into(&self, samples: &[u8], out: &mut Vec<u8>) {
        match self {
            GreyTable::Byte(table) => out.extend(samples.iter().map(|&v| table[usize::from(v)])),
            GreyTable::Word(table) => out.extend(
                samples
                    .chunks_exact(2)
                    .map(|w| table[usize::from(u16::from_le_bytes([w[0], w[1]]))]),
            ),
        }
    }
}

/// `lut` repeated to `N` entries; a table longer than `N` (Bits Stored above the bits allocated) is cut, which
/// keeps each entry at the index of its low bits.
fn repeated<const N: usize>(lut: &[u8]) -> Box<[u8; N]> {
    let mut table = Box::new([0u8; N]);
    if !lut.is_empty() {
        for chunk in table.chunks_mut(lut.len().min(N)) {
            chunk.copy_from_slice(&lut[..chunk.len()]);
        }
    }
    table
}

/// Raw samples keep their Bits Stored low bits: the LUT is indexed by them.
fn lut_mask(g: &FrameGeometry) -> u32 {
    let bits = g.bits_stored.clamp(1, 16);
    (1u32 << bits) - 1
}

/// The 8-bit output of every raw sample value: rescale, then the window (asked, else the instance's, else
/// the frame's range of modality values).
fn grey_lut(
    attributes: &RenderAttributes,
    window: Option<Window>,
    frame: &[u8],
    bytes: usize,
    pixels: usize,
) -> Vec<u8> {
    let g = &attributes.geometry;
    let bits = g.bits_stored.clamp(1, 16);
    let mask = lut_mask(g);
    let signed = g.pixel_representation == 1;
    let modality = |raw: u32| -> f64 {
        let stored = if signed && raw & (1 << (bits - 1)) != 0 {
            i64::from(raw) - (1i64 << bits)
        } else {
            i64::from(raw)
        };
        stored as f64 * attributes.rescale_slope + attributes.rescale_intercept
    };
    let window = window.or(attributes.window).unwrap_or_else(|| {
        let values: Vec<f64> = (0..pixels)
            .map(|i| modality(raw_sample(frame, i, bytes) & mask))
            .collect();
        range_window(&values)
    });
    (0..=mask).map(|raw| voi(modality(raw), &window)).collect()
}

/// PS3.3 C.11.2.1.2.1 (linear), C.11.2.1.3.1 (linear exact), C.11.2.1.3.2 (sigmoid), to 0..255.
fn voi(x: f64, w: &Window) -> u8 {
    let y = match w.function {
        VoiFunction::Linear => {
            let (c, width) = (w.center, w.width.max(1.0));
            if x <= c - 0.5 - (width - 1.0) / 2.0 {
                0.0
            } else if x > c - 0.5 + (width - 1.0) / 2.0 {
                1.0
            } else {
                ((x - (c - 0.5)) / (width - 1.0).max(f64::MIN_POSITIVE) + 0.5).clamp(0.0, 1.0)
            }
        }
        VoiFunction::LinearExact => {
            let width = w.width.max(f64::MIN_POSITIVE);
            ((x - w.center) / width + 0.5).clamp(0.0, 1.0)
        }
        VoiFunction::Sigmoid => {
            1.0 / (1.0 + (-4.0 * (x - w.center) / w.width.max(f64::MIN_POSITIVE)).exp())
        }
    };
    (y * 255.0).round() as u8
}

/// YCbCr (full range, PS3.3 C.7.6.3.1.2) to RGB.
fn ybr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (f32::from(y), f32::from(cb) - 128.0, f32::from(cr) - 128.0);
    let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    [
        clamp(y + 1.402 * cr),
        clamp(y - 0.344_136 * cb - 0.714_136 * cr),
        clamp(y + 1.772 * cb),
    ]
}

/// Crops to the source rectangle, then scales to fit the viewport, keeping the aspect ratio.
fn apply_viewport(image: Image, viewport: Option<Viewport>) -> Result<Image, RenderError> {
    let Some(viewport) = viewport else {
        return Ok(image);
    };
    let image = match viewport.source {
        Some((x, y, w, h)) => crop(image, x, y, w, h)?,
        None => image,
    };
    if viewport.width == 0 || viewport.height == 0 {
        return Err(RenderError::BadOption(
            "viewport sizes must be at least 1".into(),
        ));
    }
    let (width, height) = fitted_size(image.width, image.height, &viewport);
    if (width, height) == (image.width, image.height) {
        return Ok(image);
    }
    Ok(resize(&image, width, height))
}

/// The size an image of `width` x `height` is shown at in `viewport`: scaled to fit, keeping its aspect ratio.
fn fitted_size(width: u32, height: u32, viewport: &Viewport) -> (u32, u32) {
    let scale = f64::min(
        f64::from(viewport.width) / f64::from(width),
        f64::from(viewport.height) / f64::from(height),
    );
    (
        ((f64::from(width) * scale).round() as u32).max(1),
        ((f64::from(height) * scale).round() as u32).max(1),
    )
}

fn crop(image: Image, x: u32, y: u32, w: u32, h: u32) -> Result<Image, RenderError> {
    if w == 0 || h == 0 || x.saturating_add(w) > image.width || y.saturating_add(h) > image.height {
        return Err(RenderError::BadOption(format!(
            "viewport source rectangle {x},{y},{w},{h} is not within the {}x{} frame",
            image.width, image.height
        )));
    }
    let c = image.channels as usize;
    let mut pixels = Vec::with_capacity(w as usize * h as usize * c);
    for row in y..y + h {
        let start = (row as usize * image.width as usize + x as usize) * c;
        pixels.extend_from_slice(&image.pixels[start..start + w as usize * c]);
    }
    Ok(Image {
        width: w,
        height: h,
        channels: image.channels,
        pixels,
    })
}

/// Area-averaging resize (each output pixel the mean of the source pixels under it; bilinear when
/// enlarging): good thumbnails without a resampling crate.
fn resize(image: &Image, width: u32, height: u32) -> Image {
    let c = image.channels as usize;
    let (sw, sh) = (image.width as usize, image.height as usize);
    let sx = sw as f64 / f64::from(width);
    let sy = sh as f64 / f64::from(height);
    let mut pixels = Vec::with_capacity(width as usize * height as usize * c);
    for oy in 0..height as usize {
        let (y0, y1) = span(oy, sy, sh);
        for ox in 0..width as usize {
            let (x0, x1) = span(ox, sx, sw);
            for channel in 0..c {
                let mut sum = 0u64;
                for y in y0..y1 {
                    let row = y * sw;
                    for x in x0..x1 {
                        sum += u64::from(image.pixels[(row + x) * c + channel]);
                    }
                }
                let count = ((y1 - y0) * (x1 - x0)) as u64;
                pixels.push(((sum + count / 2) / count) as u8);
            }
        }
    }
    Image {
        width,
        height,
        channels: image.channels,
        pixels,
    }
}

/// The source pixels `[start, end)` under output pixel `o` at scale `s` (at least one).
fn span(o: usize, s: f64, limit: usize) -> (usize, usize) {
    let start = ((o as f64 * s).floor() as usize).min(limit - 1);
    let end = (((o + 1) as f64 * s).ceil() as usize).clamp(start + 1, limit);
    (start, end)
}

fn encode(image: &Image, options: &RenderOptions) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::new();
    match options.format {
        ImageFormat::Jpeg => {
            if image.width > 65535 || image.height > 65535 {
                return Err(RenderError::BadOption("image too large for JPEG".into()));
            }
            out = crate::turbo::encode_baseline(
                &image.pixels,
                (
                    image.width as usize,
                    image.height as usize,
                    image.channels as usize,
                ),
                options.quality.clamp(1, 100),
                crate::turbo::Chroma::Quarter,
            )
            .map_err(RenderError::Encoding)?;
        }
        ImageFormat::Png => {
            let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
            encoder.set_color(if image.channels == 1 {
                png::ColorType::Grayscale
            } else {
                png::ColorType::Rgb
            });
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_compression(png::Compression::Fast);
            let mut writer = encoder
                .write_header()
                .map_err(|e| RenderError::Encoding(e.to_string()))?;
            writer
                .write_image_data(&image.pixels)
                .map_err(|e| RenderError::Encoding(e.to_string()))?;
            writer
                .finish()
                .map_err(|e| RenderError::Encoding(e.to_string()))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(rows: u16, columns: u16, bits: u16, signed: bool) -> RenderAttributes {
        RenderAttributes {
            geometry: FrameGeometry {
                rows,
                columns,
                samples_per_pixel: 1,
                bits_allocated: if bits > 8 { 16 } else { 8 },
                bits_stored: bits,
                high_bit: bits - 1,
                pixel_representation: u16::from(signed),
                photometric_interpretation: "MONOCHROME2".into(),
                planar_configuration: 0,
            },
            rescale_slope: 1.0,
            rescale_intercept: 0.0,
            window: None,
            palette: None,
        }
    }

    fn words(values: &[i16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn a_window_maps_modality_values_to_grey_levels() {
        let mut attributes = grey(1, 4, 16, true);
        attributes.rescale_intercept = -1024.0;
        // Raw 0, 1024, 1064, 2048: modality -1024, 0, 40, 1024 HU; window 40/400 (soft tissue).
        let frame = words(&[0, 1024, 1064, 2048]);
        let window = Window {
            center: 40.0,
            width: 400.0,
            function: VoiFunction::LinearExact,
        };
        let image = to_8_bit(&frame, &attributes, Some(window)).unwrap();
        assert_eq!(image.pixels, [0, 102, 128, 255]);
    }

    #[test]
    fn palette_colour_maps_stored_values_through_its_tables_clamped_at_both_ends() {
        let mut attributes = grey(1, 5, 8, false);
        attributes.geometry.photometric_interpretation = "PALETTE COLOR".into();
        // 16-bit entries from stored value 10: red rises, green falls, blue is constant.
        let table = |entries: [u16; 3]| {
            let data: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
            PaletteLut::from_descriptor([3, 10, 16], &data).unwrap()
        };
        attributes.palette = Some([
            table([0x0000, 0x8000, 0xFFFF]),
            table([0xFFFF, 0x8000, 0x0000]),
            table([0x4000, 0x4000, 0x4000]),
        ]);
        let frame = [0u8, 10, 11, 12, 200];
        let image = to_8_bit(&frame, &attributes, None).unwrap();
        assert_eq!(image.channels, 3);
        assert_eq!(
            image.pixels,
            [0, 255, 64, 0, 255, 64, 128, 128, 64, 255, 0, 64, 255, 0, 64]
        );
        attributes.palette = None;
        assert!(to_8_bit(&frame, &attributes, None).is_err());
    }

    #[test]
    fn palette_tables_read_8_bit_entries_packed_or_one_per_word_and_refuse_short_data() {
        let packed = PaletteLut::from_descriptor([4, 0, 8], &[1, 2, 3, 4]).unwrap();
        assert_eq!(packed.entries, [1, 2, 3, 4]);
        let words = PaletteLut::from_descriptor([2, 0, 8], &[7, 0, 9, 0]).unwrap();
        assert_eq!(words.entries, [7, 9]);
        // 0 entries in a descriptor means 65536.
        assert!(PaletteLut::from_descriptor([0, 0, 16], &[0; 10]).is_err());
        assert_eq!(
            PaletteLut::from_descriptor([0, 0, 16], &vec![0; 131072])
                .unwrap()
                .entries
                .len(),
            65536
        );
        assert!(PaletteLut::from_descriptor([256, 0, 12], &[0; 512]).is_err());
    }

    /// Thumbnails drawn in one pass are the pixels of the general way (window, then area-averaging resize),
    /// for 8- and 16-bit frames, MONOCHROME1 and 2, signed or not, by whole factors in each direction.
    #[test]
    fn a_frame_reduced_in_one_pass_is_the_frame_windowed_then_resized() {
        let mut seed = 7u64;
        for (columns, rows, viewport, bits_allocated, bits_stored, signed, photometric) in [
            (
                512u16,
                512u16,
                (128u32, 128u32),
                16u16,
                12u16,
                false,
                "MONOCHROME2",
            ),
            (64, 32, (16, 16), 16, 16, true, "MONOCHROME1"),
            (60, 90, (20, 40), 8, 8, false, "MONOCHROME2"),
            (10, 10, (5, 5), 8, 6, true, "MONOCHROME2"),
        ] {
            let mut attributes = grey(rows, columns, bits_stored, signed);
            attributes.geometry.bits_allocated = bits_allocated;
            attributes.geometry.photometric_interpretation = photometric.into();
            attributes.rescale_slope = 1.5;
            attributes.rescale_intercept = -100.0;
            attributes.window = Some(Window {
                center: 40.0,
                width: 300.0,
                function: VoiFunction::Linear,
            });
            let length = usize::from(rows) * usize::from(columns) * usize::from(bits_allocated / 8);
            let frame: Vec<u8> = (0..length)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 24) as u8
                })
                .collect();
            let options = RenderOptions {
                format: ImageFormat::Png,
                viewport: Some(Viewport {
                    width: viewport.0,
                    height: viewport.1,
                    source: None,
                }),
                ..RenderOptions::default()
            };
            let reduced =
                grey_reduced(&frame, &attributes, &options).expect("a whole-factor reduction");
            let general = apply_viewport(
                to_8_bit(&frame, &attributes, options.window).unwrap(),
                options.viewport,
            )
            .unwrap();
            assert_eq!(
                (reduced.width, reduced.height, &reduced.pixels),
                (general.width, general.height, &general.pixels),
                "{columns}x{rows} to {viewport:?}"
            );
        }
        // Not a whole factor, or no reduction: the general way.
        let attributes = grey(100, 100, 8, false);
        for size in [30, 100, 200] {
            let options = RenderOptions {
                viewport: Some(Viewport {
                    width: size,
                    height: size,
                    source: None,
                }),
                ..RenderOptions::default()
            };
            assert!(
                grey_reduced(&[0; 10000], &attributes, &options).is_none(),
                "{size}"
            );
        }
    }

    fn le_words(values: &[u16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// PS3.3 C.7.9.2: a discrete segment, a linear ramp from its last value, and an indirect segment that
    /// repeats the first two segments (byte offset 0).
    #[test]
    fn segmented_tables_expand_discrete_linear_and_indirect_segments() {
        let data = le_words(&[0, 3, 10, 20, 30, 1, 4, 70, 2, 2, 0, 0]);
        let table = PaletteLut::from_segmented([14, 0, 16], &data).unwrap();
        assert_eq!(
            table.entries,
            [10, 20, 30, 40, 50, 60, 70, 10, 20, 30, 40, 50, 60, 70]
        );
        // 8-bit tables are made of bytes.
        let table = PaletteLut::from_segmented([5, 0, 8], &[0, 2, 1, 2, 1, 3, 4]).unwrap();
        assert_eq!(table.entries, [1, 2, 3, 3, 4]);
    }

    #[test]
    fn damaged_segmented_tables_are_refused_or_bounded() {
        for (data, why) in [
            (le_words(&[1, 4, 9]), "starts with a linear"),
            (le_words(&[0, 9, 1, 2]), "past its end"),
            (le_words(&[0, 1, 5, 7, 1]), "unknown type"),
            (le_words(&[0, 1, 5, 2, 1, 6, 0]), "indirect segment within"),
            (le_words(&[0, 2, 1, 2]), "expands to 2 entries"),
        ] {
            let error = PaletteLut::from_segmented([4, 0, 16], &data).unwrap_err();
            assert!(error.to_string().contains(why), "{why}: {error}");
        }
        // A ramp far longer than the table stops at the descriptor's count.
        let table =
            PaletteLut::from_segmented([3, 0, 16], &le_words(&[0, 1, 0, 1, 65535, 65535])).unwrap();
        assert_eq!(table.entries, [0, 1, 2]);
    }

    proptest::proptest! {
        /// Whatever a stored segmented table holds, expanding it answers (a table of the descriptor's size or
        /// an error) and never panics.
        #[test]
        fn any_segmented_data_expands_or_is_refused(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            count in 1i64..300,
            wide in proptest::prelude::any::<bool>(),
        ) {
            let bits = if wide { 16 } else { 8 };
            if let Ok(table) = PaletteLut::from_segmented([count, 0, bits], &data) {
                proptest::prop_assert_eq!(table.entries.len(), count as usize);
            }
        }
    }

    #[test]
    fn thirty_two_bit_samples_are_rescaled_and_windowed_per_pixel() {
        let mut attributes = grey(1, 4, 8, false);
        attributes.geometry.bits_allocated = 32;
        attributes.geometry.bits_stored = 32;
        attributes.geometry.high_bit = 31;
        attributes.rescale_slope = 0.001; // as RT Dose Grid Scaling would
        let frame: Vec<u8> = [0u32, 1_000_000, 2_000_000, 4_000_000_000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let window = Window {
            center: 1000.0,
            width: 2000.0,
            function: VoiFunction::LinearExact,
        };
        let image = to_8_bit(&frame, &attributes, Some(window)).unwrap();
        assert_eq!(image.pixels, [0, 128, 255, 255]);
        // Without a window: the frame's range.
        let image = to_8_bit(&frame, &attributes, None).unwrap();
        assert_eq!(image.pixels[0], 0);
        assert_eq!(image.pixels[3], 255);
    }

    #[test]
    fn signed_samples_use_their_bits_stored_and_monochrome1_is_inverted() {
        let mut attributes = grey(1, 3, 12, true);
        // 12-bit two's complement: 0xFFF is -1, 0x800 is -2048, 0x7FF is 2047 (upper bits are not pixel data).
        let frame = words(&[0x0FFF, 0x0800, 0x07FF | 0x7000]);
        let window = Window {
            center: 0.0,
            width: 4096.0,
            function: VoiFunction::LinearExact,
        };
        let image = to_8_bit(&frame, &attributes, Some(window)).unwrap();
        assert_eq!(image.pixels, [127, 0, 255]);
        attributes.geometry.photometric_interpretation = "MONOCHROME1".into();
        let image = to_8_bit(&frame, &attributes, Some(window)).unwrap();
        assert_eq!(image.pixels, [128, 255, 0]);
    }

    #[test]
    fn without_a_window_the_frame_range_is_shown() {
        let attributes = grey(1, 3, 16, false);
        let frame = words(&[100, 150, 200]);
        let image = to_8_bit(&frame, &attributes, None).unwrap();
        assert_eq!(image.pixels, [0, 128, 255]);
    }

    #[test]
    fn a_viewport_crops_then_fits_keeping_the_aspect_ratio() {
        let image = Image {
            width: 4,
            height: 2,
            channels: 1,
            pixels: vec![0, 0, 200, 200, 0, 0, 200, 200],
        };
        let fitted = apply_viewport(
            image,
            Some(Viewport {
                width: 2,
                height: 2,
                source: None,
            }),
        )
        .unwrap();
        assert_eq!((fitted.width, fitted.height), (2, 1));
        assert_eq!(fitted.pixels, [0, 200]);
        let image = Image {
            width: 4,
            height: 2,
            channels: 1,
            pixels: vec![1, 2, 3, 4, 5, 6, 7, 8],
        };
        let cropped = apply_viewport(
            image,
            Some(Viewport {
                width: 2,
                height: 2,
                source: Some((2, 0, 2, 2)),
            }),
        )
        .unwrap();
        assert_eq!(cropped.pixels, [3, 4, 7, 8]);
        let image = Image {
            width: 4,
            height: 2,
            channels: 1,
            pixels: vec![0; 8],
        };
        assert!(
            apply_viewport(
                image,
                Some(Viewport {
                    width: 2,
                    height: 2,
                    source: Some((3, 0, 2, 2))
                })
            )
            .is_err()
        );
    }

    #[test]
    fn jpeg_and_png_come_out_with_their_signatures() {
        let attributes = grey(8, 8, 8, false);
        let frame: Vec<u8> = (0..64).map(|i| i * 4).collect();
        let jpeg = render_frame(&frame, &attributes, &RenderOptions::default()).unwrap();
        assert_eq!(&jpeg[..2], [0xFF, 0xD8]);
        let png = render_frame(
            &frame,
            &attributes,
            &RenderOptions {
                format: ImageFormat::Png,
                ..RenderOptions::default()
            },
        )
        .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn a_short_frame_or_an_unknown_colour_model_is_an_error() {
        let attributes = grey(8, 8, 8, false);
        assert!(matches!(
            render_frame(&[0; 10], &attributes, &RenderOptions::default()),
            Err(RenderError::WrongLength { .. })
        ));
        let mut palette = grey(1, 1, 8, false);
        palette.geometry.photometric_interpretation = "PALETTE COLOR".into();
        assert!(matches!(
            render_frame(&[0; 2], &palette, &RenderOptions::default()),
            Err(RenderError::Unsupported(_))
        ));
    }
}
