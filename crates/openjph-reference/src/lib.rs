//! A benchmark-only binding of OpenJPH, the C++ reference HTJ2K codec (Debian's `libopenjph-dev`), for one
//! frame: what `dicomweb-pixel`'s codec benchmark compares its HTJ2K decoder (OpenJPEG) with, and what writes the
//! codestream it decodes. Not published; no other crate depends on it at run time.

use std::os::raw::c_int;

unsafe extern "C" {
    fn ojph_reference_encode(
        samples: *const i32,
        width: u32,
        height: u32,
        bits: u32,
        is_signed: c_int,
        decompositions: u32,
        out: *mut u8,
        capacity: usize,
    ) -> usize;
    fn ojph_reference_decode(
        data: *const u8,
        length: usize,
        width: u32,
        height: u32,
        components: u32,
        out: *mut i32,
    ) -> c_int;
}

/// Encodes `samples` (`width` x `height`, row by row) as a lossless HTJ2K codestream of `bits`-bit samples
/// with `decompositions` wavelet levels; `None` when OpenJPH fails.
pub fn encode(
    samples: &[i32],
    width: u32,
    height: u32,
    bits: u32,
    signed: bool,
    decompositions: u32,
) -> Option<Vec<u8>> {
    if samples.len() != width as usize * height as usize {
        return None;
    }
    let mut out = vec![0u8; samples.len() * 4 + 4096];
    // SAFETY: `samples` holds width * height values, as the shim reads; `out` is writable for its length,
    // which is passed as the capacity.
    let size = unsafe {
        ojph_reference_encode(
            samples.as_ptr(),
            width,
            height,
            bits,
            c_int::from(signed),
            decompositions,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    (size > 0 && size <= out.len()).then(|| {
        out.truncate(size);
        out
    })
}

/// Decodes a codestream of `components` components of `width` x `height` samples (component after
/// component, each row by row); `None` when OpenJPH fails.
pub fn decode(codestream: &[u8], width: u32, height: u32, components: u32) -> Option<Vec<i32>> {
    let mut out = vec![0i32; width as usize * height as usize * components as usize];
    // SAFETY: `out` holds width * height * components values, as the shim writes; `codestream` is read within
    // its length.
    let status = unsafe {
        ojph_reference_decode(
            codestream.as_ptr(),
            codestream.len(),
            width,
            height,
            components,
            out.as_mut_ptr(),
        )
    };
    (status == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_frame_round_trips() {
        let samples: Vec<i32> = (0..64 * 48).map(|i: i32| i * 37 % 4096).collect();
        let codestream = super::encode(&samples, 64, 48, 12, false, 5).unwrap();
        assert_eq!(super::decode(&codestream, 64, 48, 1).unwrap(), samples);
    }
}
