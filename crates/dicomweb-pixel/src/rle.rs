//! RLE Lossless encoding (PS3.5 Annex G), by hand: dicom-rs 0.10.1 decodes RLE but has no encoder, and the
//! format is small (a 64-byte header, then one PackBits segment per byte of each sample).

use crate::FrameGeometry;

/// The most segments an RLE frame holds (its header has room for 15 offsets).
const MAX_SEGMENTS: usize = 15;

/// Why a frame cannot be RLE-encoded, or `None` when it can: 8, 16 or 32 bits allocated, at most 15 segments
/// (samples times bytes per sample).
pub(crate) fn unsupported(geometry: &FrameGeometry) -> Option<String> {
    if !matches!(geometry.bits_allocated, 8 | 16 | 32) {
        return Some(format!(
            "RLE Lossless takes 8, 16 or 32 bits allocated, not {}",
            geometry.bits_allocated
        ));
    }
    let segments =
        usize::from(geometry.samples_per_pixel) * usize::from(geometry.bits_allocated / 8);
    if segments == 0 || segments > MAX_SEGMENTS {
        return Some(format!(
            "RLE Lossless holds at most {MAX_SEGMENTS} segments; {} samples of {} bits need {segments}",
            geometry.samples_per_pixel, geometry.bits_allocated
        ));
    }
    None
}

/// One frame of native little-endian pixel bytes (`frame`, laid out as `geometry.planar_configuration` says)
/// as an RLE Lossless frame: the header, then for each sample its bytes from the most significant (PS3.5 G.2),
/// each row run-length encoded on its own (G.3.1), each segment of even length.
pub(crate) fn encode(geometry: &FrameGeometry, frame: &[u8]) -> Vec<u8> {
    let bytes_per_sample = usize::from(geometry.bits_allocated / 8);
    let samples = usize::from(geometry.samples_per_pixel);
    let columns = usize::from(geometry.columns);
    let rows = usize::from(geometry.rows);
    let pixels = rows * columns;
    let planar = geometry.planar_configuration == 1 && samples > 1;
    // Where byte `byte` (0 = least significant) of sample `sample` of pixel `pixel` is in `frame`.
    let at = |pixel: usize, sample: usize, byte: usize| {
        let index = if planar {
            sample * pixels + pixel
        } else {
            pixel * samples + sample
        };
        index * bytes_per_sample + byte
    };
    let segments = samples * bytes_per_sample;
    let mut out = vec![0u8; 64];
    out[0..4].copy_from_slice(&(segments as u32).to_le_bytes());
    let mut row = Vec::with_capacity(columns);
    for segment in 0..segments {
        let offset = out.len() as u32;
        let header = 4 + 4 * segment;
        out[header..header + 4].copy_from_slice(&offset.to_le_bytes());
        let sample = segment / bytes_per_sample;
        let byte = bytes_per_sample - 1 - segment % bytes_per_sample;
        for r in 0..rows {
            row.clear();
            row.extend(
                (r * columns..(r + 1) * columns)
                    .map(|pixel| frame.get(at(pixel, sample, byte)).copied().unwrap_or(0)),
            );
            pack_bits(&row, &mut out);
        }
        if out.len() % 2 == 1 {
            out.push(0);
        }
    }
    out
}

/// PackBits (PS3.5 G.3.1): runs of 2 to 128 equal bytes as `257 - n, byte`; other bytes as literal runs of
/// at most 128, `n - 1, bytes...`. A pair of equal bytes inside a literal run stays literal (a replicate run
/// of 2 saves nothing there).
fn pack_bits(input: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    let mut literal_start = 0;
    let flush_literal = |out: &mut Vec<u8>, literal: &[u8]| {
        for chunk in literal.chunks(128) {
            out.push((chunk.len() - 1) as u8);
            out.extend_from_slice(chunk);
        }
    };
    while i < input.len() {
        let mut run = 1;
        while i + run < input.len() && run < 128 && input[i + run] == input[i] {
            run += 1;
        }
        let starts_literal = i == literal_start;
        if run >= 3 || (run == 2 && starts_literal) {
            flush_literal(out, &input[literal_start..i]);
            out.push((257 - run) as u8);
            out.push(input[i]);
            i += run;
            literal_start = i;
        } else {
            i += run;
        }
    }
    flush_literal(out, &input[literal_start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// PackBits decoding, as PS3.5 G.3.2 gives it.
    fn unpack_bits(mut input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some((&n, rest)) = input.split_first() {
            input = rest;
            match n {
                0..=127 => {
                    let count = usize::from(n) + 1;
                    out.extend_from_slice(&input[..count]);
                    input = &input[count..];
                }
                129..=255 => {
                    out.extend(std::iter::repeat_n(input[0], 257 - usize::from(n)));
                    input = &input[1..];
                }
                128 => {}
            }
        }
        out
    }

    #[test]
    fn runs_and_literals_follow_packbits() {
        let mut out = Vec::new();
        pack_bits(&[7, 7, 7, 7, 1, 2, 3, 3, 4], &mut out);
        assert_eq!(out, [253, 7, 4, 1, 2, 3, 3, 4]);
        let mut long = Vec::new();
        pack_bits(&[9; 300], &mut long);
        assert_eq!(long, [129, 9, 129, 9, 213, 9]);
        assert_eq!(unpack_bits(&long), [9; 300]);
    }

    #[test]
    fn a_16_bit_frame_has_its_high_bytes_first() {
        let geometry = FrameGeometry {
            rows: 1,
            columns: 2,
            samples_per_pixel: 1,
            bits_allocated: 16,
            bits_stored: 16,
            high_bit: 15,
            pixel_representation: 0,
            photometric_interpretation: "MONOCHROME2".into(),
            planar_configuration: 0,
        };
        let frame = encode(&geometry, &[0x34, 0x12, 0x78, 0x56]);
        assert_eq!(&frame[0..4], &2u32.to_le_bytes());
        assert_eq!(&frame[4..8], &64u32.to_le_bytes());
        assert_eq!(&frame[8..12], &68u32.to_le_bytes());
        assert_eq!(&frame[64..68], &[1, 0x12, 0x56, 0]);
        assert_eq!(&frame[68..72], &[1, 0x34, 0x78, 0]);
    }

    proptest! {
        /// Whatever the bytes, PackBits gives them back, and never grows them by more than one byte in 128.
        #[test]
        fn packbits_round_trips(input in prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 255]), 0..700)) {
            let mut out = Vec::new();
            pack_bits(&input, &mut out);
            prop_assert_eq!(unpack_bits(&out), input.clone());
            prop_assert!(out.len() <= input.len() + input.len().div_ceil(128));
        }
    }
}
