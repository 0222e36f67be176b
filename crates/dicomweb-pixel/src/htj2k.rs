//! HTJ2K lossless encoding (High-Throughput JPEG 2000, ISO/IEC 15444-15; DICOM transfer syntax
//! 1.2.840.10008.1.2.4.201) through `openjph-core`, a Rust port of OpenJPH, the reference HTJ2K codec.
//! OpenJPEG decodes HTJ2K (that is how this crate decodes it) but has no HTJ2K encoder, and no binding of
//! OpenJPH's C++ exists as a crate.

use openjph_core::codestream::Codestream;
use openjph_core::file::MemOutfile;
use openjph_core::types::{Point, Size};

use crate::FrameGeometry;

/// Wavelet decomposition levels at most (OpenJPH's default, as for the JPEG 2000 encoder's 6 resolutions).
const MAX_DECOMPOSITIONS: u32 = 5;

/// Why a frame cannot be HTJ2K-encoded here, or `None` when it can: what the JPEG 2000 encoder takes (1 or 3
/// samples of 8 or 16 bits allocated, Bits Stored at most 16 and High Bit at its top).
pub(crate) fn unsupported(geometry: &FrameGeometry) -> Option<String> {
    crate::j2k::unsupported(geometry).map(|reason| reason.replace("JPEG 2000", "HTJ2K"))
}

/// One native little-endian frame as an HTJ2K codestream (no JPH box: what PS3.5 A.4.4 carries), reversible
/// 5/3 wavelet, and with `colour_transform` the reversible colour transform of three components, so the
/// decoded samples equal the stored bits exactly. The caller checked [`unsupported`].
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
    let planes = crate::j2k::components(geometry, frame);
    let count = planes.len() as u32;
    let failed = |what: &str, e: &dyn std::fmt::Display| format!("OpenJPH {what}: {e}");
    let mut codestream = Codestream::new();
    {
        let siz = codestream.access_siz_mut();
        siz.set_image_extent(Point::new(width, height));
        siz.set_tile_size(Size::new(width, height));
        siz.set_num_components(count);
        for component in 0..count {
            siz.set_comp_info(
                component,
                Point::new(1, 1),
                u32::from(geometry.bits_stored),
                geometry.pixel_representation == 1,
            );
        }
    }
    {
        let cod = codestream.access_cod_mut();
        cod.set_reversible(true);
        cod.set_color_transform(colour_transform && count == 3);
        // Each level halves the image: no more than the smaller side allows.
        let smaller = width.min(height);
        cod.set_num_decomposition((31 - smaller.leading_zeros()).min(MAX_DECOMPOSITIONS));
    }
    let mut out = MemOutfile::new();
    codestream
        .write_headers(&mut out, &[])
        .map_err(|e| failed("refused the parameters", &e))?;
    let row_length = width as usize;
    for row in 0..height as usize {
        for (component, plane) in planes.iter().enumerate() {
            let line = &plane[row * row_length..(row + 1) * row_length];
            codestream
                .exchange(line, component as u32)
                .map_err(|e| failed("could not take a row", &e))?;
        }
    }
    codestream
        .flush(&mut out)
        .map_err(|e| failed("could not finish the codestream", &e))?;
    Ok(out.get_data().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openjph_core::file::MemInfile;

    fn rgb(rows: u16, columns: u16) -> FrameGeometry {
        FrameGeometry {
            rows,
            columns,
            samples_per_pixel: 3,
            bits_allocated: 8,
            bits_stored: 8,
            high_bit: 7,
            pixel_representation: 0,
            photometric_interpretation: "RGB".into(),
            planar_configuration: 0,
        }
    }

    /// Decodes with openjph-core itself, component by component.
    fn own_decode(codestream: &[u8], width: usize, height: usize, count: usize) -> Vec<Vec<i32>> {
        let mut decoder = Codestream::new();
        let mut input = MemInfile::new(codestream);
        decoder.read_headers(&mut input).unwrap();
        decoder.create(&mut input).unwrap();
        let mut planes = vec![Vec::with_capacity(width * height); count];
        for _ in 0..height {
            for (c, plane) in planes.iter_mut().enumerate() {
                plane.extend_from_slice(&decoder.pull(c as u32).unwrap()[..width]);
            }
        }
        planes
    }

    /// The defect worked around by encoding colour without the colour transform (Photometric Interpretation
    /// RGB, which PS3.5 8.2.4 allows): with it, openjph-core 0.1.0 reads its own codestream back exactly, but
    /// OpenJPEG (this crate's HTJ2K decoder, and pylibjpeg's) decodes other colours. To report upstream; when
    /// this test fails, the two agree again and the transform can be used (it compresses colour better).
    #[test]
    fn openjph_cores_colour_transform_is_not_what_openjpeg_reads() {
        let geometry = rgb(4, 5);
        let frame: Vec<u8> = (0..60).map(|i| (i * 37 % 251) as u8).collect();
        let planes = crate::j2k::components(&geometry, &frame);
        let by_pixel: Vec<i32> = (0..60).map(|i| planes[i % 3][i / 3]).collect();
        for transform in [false, true] {
            let bytes = encode(&geometry, &frame, transform).unwrap();
            let own = own_decode(&bytes, 5, 4, 3);
            let own: Vec<i32> = (0..60).map(|i| own[i % 3][i / 3]).collect();
            assert_eq!(own, by_pixel, "openjph-core reads its own codestream back");
            let described = FrameGeometry {
                photometric_interpretation: if transform { "YBR_RCT" } else { "RGB" }.into(),
                ..geometry.clone()
            };
            let (decoded, _) =
                crate::decode_frame_as(crate::HTJ2K_LOSSLESS, &described, vec![bytes]).unwrap();
            let decoded: Vec<i32> = decoded.iter().map(|&b| i32::from(b)).collect();
            assert_eq!(
                decoded == by_pixel,
                !transform,
                "colour transform {transform}"
            );
        }
    }

    #[test]
    fn colour_is_encoded_without_the_colour_transform() {
        let geometry = rgb(3, 3);
        let frame: Vec<u8> = (0..27).collect();
        let encoded = crate::encode_frame(crate::HTJ2K_LOSSLESS, &geometry, &frame).unwrap();
        assert_eq!(encoded.photometric_interpretation, "RGB");
        let decoded = crate::decode_frame(crate::HTJ2K_LOSSLESS, &geometry, vec![encoded.bytes]);
        assert_eq!(decoded.unwrap(), frame);
    }
}
