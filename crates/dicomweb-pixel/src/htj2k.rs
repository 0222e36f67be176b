//! HTJ2K (.201, .202, .203) through OpenJPH, the reference codec (the `openjph` crate, which vendors and builds
//! it): frames decoded to native samples, and lossless encoding (.201). OpenJPEG, which decodes the other JPEG
//! 2000 syntaxes here, decodes HTJ2K at 2.7x OpenJPH's time and cannot encode it.

use crate::FrameGeometry;

/// The HTJ2K transfer syntaxes: lossless only, lossless with RPCL order, lossy or lossless.
pub(crate) const SYNTAXES: [&str; 3] = [
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];

fn image_of(geometry: &FrameGeometry, bits: u32) -> openjph::Image {
    openjph::Image {
        width: u32::from(geometry.columns),
        height: u32::from(geometry.rows),
        components: u32::from(geometry.samples_per_pixel),
        bytes_per_sample: u32::from(geometry.bits_allocated / 8),
        bits,
        signed: geometry.pixel_representation == 1,
        planar: geometry.samples_per_pixel > 1 && geometry.planar_configuration == 1,
    }
}

/// One native little-endian frame as a lossless HTJ2K codestream (reversible 5/3 wavelet; with
/// `colour_transform`, three components through the reversible colour transform, which decoders undo). The
/// caller checked `j2k::unsupported`.
pub(crate) fn encode(
    geometry: &FrameGeometry,
    frame: &[u8],
    colour_transform: bool,
) -> Result<Vec<u8>, String> {
    let image = image_of(geometry, u32::from(geometry.bits_stored));
    openjph::encode_lossless(&image, frame, colour_transform).map_err(|e| e.to_string())
}

/// One frame's codestream decoded to native little-endian samples, colour by pixel, and the geometry of what
/// came out: a colour transform in the codestream is undone, so YBR_RCT and YBR_ICT frames come out RGB.
pub(crate) fn decode(
    codestream: &[u8],
    geometry: &FrameGeometry,
) -> Result<(Vec<u8>, FrameGeometry), String> {
    if !matches!(geometry.bits_allocated, 8 | 16) {
        return Err(format!(
            "HTJ2K frames of {} bits allocated are not decoded here (8 or 16)",
            geometry.bits_allocated
        ));
    }
    let image = image_of(geometry, u32::from(geometry.bits_allocated));
    let decoded = openjph::decode(codestream, &image).map_err(|e| e.to_string())?;
    let mut described = geometry.clone();
    described.planar_configuration = 0;
    if geometry.samples_per_pixel == 3
        && matches!(
            geometry.photometric_interpretation.trim(),
            "YBR_RCT" | "YBR_ICT"
        )
    {
        described.photometric_interpretation = "RGB".into();
    }
    Ok((decoded.samples, described))
}
