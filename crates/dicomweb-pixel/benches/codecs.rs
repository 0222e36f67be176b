//! Each codec of dicomweb-pixel beside the C library it wraps, on the same frames in the same run: what our
//! decode and encode of one frame (from and to the native little-endian bytes a retrieve sends, with every
//! conversion and check on the way) cost against the library's own call on the same data. The bar is
//! 1.3x. `cargo xtask bench-codecs` runs this and writes the ratios to docs/benchmarks.md.
//!
//! References are called through the thinnest binding there is: libjpeg-turbo 3.1 through `turbojpeg-sys`'s raw
//! TurboJPEG 3 functions, CharLS through `charls`, OpenJPEG through `jpeg2k` (whose encoder writes files only:
//! the reference encode writes to a temporary file, which costs it a little), OpenJPH (the HTJ2K reference,
//! vendored by the `openjph` crate) through that crate's functions, which dicomweb-pixel calls too (its rows
//! measure what dicomweb-pixel adds). RLE has no C library linked here: its rows have no reference.
//!
//! The frames: a 512 x 512 CT-like slice of 12 bits stored in 16 (a body with organs, bone and noise), the same
//! windowed to 8 bits, and a 512 x 512 RGB image (gradients, shapes and noise).

use criterion::{Criterion, criterion_group, criterion_main};
use dicomweb_pixel::{FrameGeometry, decode_frame, encode_frame};
use std::hint::black_box;

const SIZE: u16 = 512;

const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
const JPEG_LOSSLESS_SV1: &str = "1.2.840.10008.1.2.4.70";
const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
const JPEG_2000_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
const HTJ2K_LOSSLESS: &str = "1.2.840.10008.1.2.4.201";

/// Deterministic noise in [-0.5, 0.5) (xorshift64*).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f64 / f64::from(1u32 << 24) - 0.5
    }
}

fn geometry(bits_allocated: u16, bits_stored: u16, photometric: &str) -> FrameGeometry {
    FrameGeometry {
        rows: SIZE,
        columns: SIZE,
        samples_per_pixel: if photometric.starts_with("MONO") {
            1
        } else {
            3
        },
        bits_allocated,
        bits_stored,
        high_bit: bits_stored - 1,
        pixel_representation: 0,
        photometric_interpretation: photometric.into(),
        planar_configuration: 0,
    }
}

/// The CT-like slice as 12-bit stored values (HU + 1024).
fn ct_values() -> Vec<u16> {
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let size = f64::from(SIZE);
    let mut out = Vec::with_capacity(usize::from(SIZE) * usize::from(SIZE));
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (fx, fy) = (f64::from(x) / size - 0.5, f64::from(y) / size - 0.5);
            let within = |cx: f64, cy: f64, r: f64| (fx - cx).powi(2) + (fy - cy).powi(2) <= r * r;
            let hu = if (fx / 0.42).powi(2) + (fy / 0.33).powi(2) > 1.0 {
                -1000.0 + noise.next() * 10.0
            } else if within(0.0, 0.2, 0.05) {
                700.0 + noise.next() * 120.0
            } else if within(-0.18, -0.05, 0.11) {
                -850.0 + noise.next() * 80.0
            } else if within(0.17, -0.04, 0.1) {
                60.0 + noise.next() * 40.0
            } else {
                40.0 + noise.next() * 40.0
            };
            out.push((hu + 1024.0).clamp(0.0, 4095.0) as u16);
        }
    }
    out
}

fn little_endian(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The slice windowed (center 40, width 400) to 8 bits.
fn grey8(values: &[u16]) -> Vec<u8> {
    values
        .iter()
        .map(|&v| ((f64::from(v) - 1024.0 - 40.0 + 200.0) / 400.0 * 255.0).clamp(0.0, 255.0) as u8)
        .collect()
}

/// An RGB image, by pixel: smooth gradients, two discs and some noise.
fn rgb8() -> Vec<u8> {
    let mut noise = Noise(0x0123_4567_89AB_CDEF);
    let mut out = Vec::with_capacity(usize::from(SIZE) * usize::from(SIZE) * 3);
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (fx, fy) = (f64::from(x), f64::from(y));
            let disc = (fx - 180.0).powi(2) + (fy - 200.0).powi(2) < 90.0f64.powi(2);
            let ring = ((fx - 350.0).powi(2) + (fy - 330.0).powi(2)).sqrt();
            let base = [fx / 2.0, fy / 2.0, (fx + fy) / 4.0];
            for (channel, level) in base.iter().enumerate() {
                let mut v = *level + noise.next() * 12.0;
                if disc {
                    v = 220.0 - v / 3.0;
                }
                if (60.0..75.0).contains(&ring) && channel != 1 {
                    v = 30.0;
                }
                out.push(v.clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// libjpeg-turbo's TurboJPEG 3 functions, called as plainly as the library allows (one handle per call, as our
/// code does).
mod turbo {
    use std::os::raw::c_int;
    use turbojpeg_sys as tj;

    struct Handle(tj::tjhandle);

    impl Handle {
        fn new(kind: tj::TJINIT) -> Handle {
            // SAFETY: no preconditions; checked for null below.
            let handle = Handle(unsafe { tj::tj3Init(kind as c_int) });
            assert!(!handle.0.is_null());
            handle
        }

        fn set(&self, param: tj::TJPARAM, value: i32) {
            // SAFETY: valid handle.
            assert_eq!(unsafe { tj::tj3Set(self.0, param as c_int, value) }, 0);
        }
    }

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: from tj3Init, destroyed once.
            unsafe { tj::tj3Destroy(self.0) }
        }
    }

    fn format(channels: usize) -> c_int {
        (if channels == 1 {
            tj::TJPF_TJPF_GRAY
        } else {
            tj::TJPF_TJPF_RGB
        }) as c_int
    }

    /// A JPEG of 8-bit samples decoded.
    pub fn decompress8(jpeg: &[u8], pixels: usize, channels: usize) -> Vec<u8> {
        let handle = Handle::new(tj::TJINIT_TJINIT_DECOMPRESS);
        let mut out = vec![0u8; pixels * channels];
        // SAFETY: `out` holds the image; `jpeg` is valid for the call.
        let status = unsafe {
            tj::tj3DecompressHeader(handle.0, jpeg.as_ptr(), jpeg.len() as tj::size_t);
            tj::tj3Decompress8(
                handle.0,
                jpeg.as_ptr(),
                jpeg.len() as tj::size_t,
                out.as_mut_ptr(),
                0,
                format(channels),
            )
        };
        assert_eq!(status, 0);
        out
    }

    /// A JPEG of 12-bit samples (lossy or lossless) decoded.
    pub fn decompress12(jpeg: &[u8], pixels: usize) -> Vec<i16> {
        let handle = Handle::new(tj::TJINIT_TJINIT_DECOMPRESS);
        let mut out = vec![0i16; pixels];
        // SAFETY: as above.
        let status = unsafe {
            tj::tj3DecompressHeader(handle.0, jpeg.as_ptr(), jpeg.len() as tj::size_t);
            tj::tj3Decompress12(
                handle.0,
                jpeg.as_ptr(),
                jpeg.len() as tj::size_t,
                out.as_mut_ptr(),
                0,
                format(1),
            )
        };
        assert_eq!(status, 0);
        out
    }

    fn take(jpeg: *mut u8, size: tj::size_t) -> Vec<u8> {
        assert!(!jpeg.is_null());
        // SAFETY: TurboJPEG wrote `size` bytes at `jpeg`, which it allocated.
        let out = unsafe { std::slice::from_raw_parts(jpeg, size as usize) }.to_vec();
        unsafe { tj::tj3Free(jpeg.cast()) };
        out
    }

    /// 8-bit samples as baseline JPEG at quality 90, colour 4:2:2.
    pub fn compress8(pixels: &[u8], width: usize, height: usize, channels: usize) -> Vec<u8> {
        let handle = Handle::new(tj::TJINIT_TJINIT_COMPRESS);
        handle.set(tj::TJPARAM_TJPARAM_QUALITY, 90);
        handle.set(
            tj::TJPARAM_TJPARAM_SUBSAMP,
            if channels == 1 {
                tj::TJSAMP_TJSAMP_GRAY
            } else {
                tj::TJSAMP_TJSAMP_422
            },
        );
        let (mut jpeg, mut size) = (std::ptr::null_mut(), 0);
        // SAFETY: `pixels` holds the image; TurboJPEG allocates the output.
        let status = unsafe {
            tj::tj3Compress8(
                handle.0,
                pixels.as_ptr(),
                width as c_int,
                0,
                height as c_int,
                format(channels),
                &mut jpeg,
                &mut size,
            )
        };
        assert_eq!(status, 0);
        take(jpeg, size)
    }

    /// 12-bit grey samples as JPEG: lossless (selection value 1) or lossy at quality 90.
    pub fn compress12(samples: &[i16], width: usize, height: usize, lossless: bool) -> Vec<u8> {
        let handle = Handle::new(tj::TJINIT_TJINIT_COMPRESS);
        if lossless {
            handle.set(tj::TJPARAM_TJPARAM_LOSSLESS, 1);
            handle.set(tj::TJPARAM_TJPARAM_LOSSLESSPSV, 1);
        } else {
            handle.set(tj::TJPARAM_TJPARAM_QUALITY, 90);
        }
        handle.set(tj::TJPARAM_TJPARAM_PRECISION, 12);
        handle.set(tj::TJPARAM_TJPARAM_SUBSAMP, tj::TJSAMP_TJSAMP_GRAY);
        let (mut jpeg, mut size) = (std::ptr::null_mut(), 0);
        // SAFETY: as above.
        let status = unsafe {
            tj::tj3Compress12(
                handle.0,
                samples.as_ptr(),
                width as c_int,
                0,
                height as c_int,
                format(1),
                &mut jpeg,
                &mut size,
            )
        };
        assert_eq!(status, 0);
        take(jpeg, size)
    }
}

/// One benchmark group: our call and the reference's, under names `cargo xtask bench-codecs` reads back.
fn pair(
    c: &mut Criterion,
    group: &str,
    ours: &mut dyn FnMut() -> Vec<u8>,
    reference: Option<&mut dyn FnMut() -> usize>,
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(20);
    g.bench_function("dicomweb-pixel", |b| b.iter(|| black_box(ours())));
    if let Some(reference) = reference {
        g.bench_function("C reference", |b| b.iter(|| black_box(reference())));
    }
    g.finish();
}

fn codecs(c: &mut Criterion) {
    let side = usize::from(SIZE);
    let pixels = side * side;
    let ct = ct_values();
    let ct_bytes = little_endian(&ct);
    let ct_i16: Vec<i16> = ct.iter().map(|&v| v as i16).collect();
    let ct_geometry = geometry(16, 12, "MONOCHROME2");
    let grey = grey8(&ct);
    let grey_geometry = geometry(8, 8, "MONOCHROME2");
    let rgb = rgb8();
    let rgb_geometry = geometry(8, 8, "RGB");
    let ybr_geometry = geometry(8, 8, "YBR_FULL_422");
    let encoded =
        |to: &str, g: &FrameGeometry, frame: &[u8]| encode_frame(to, g, frame).unwrap().bytes;

    // JPEG baseline (.50), grey and colour.
    for (name, frame, channels, ours_geometry, stored_geometry) in [
        ("grey 8-bit", &grey, 1, &grey_geometry, &grey_geometry),
        ("RGB 8-bit", &rgb, 3, &rgb_geometry, &ybr_geometry),
    ] {
        let jpeg = encoded(JPEG_BASELINE, ours_geometry, frame);
        pair(
            c,
            &format!("JPEG baseline decode, {name}"),
            &mut || decode_frame(JPEG_BASELINE, stored_geometry, vec![jpeg.clone()]).unwrap(),
            Some(&mut || turbo::decompress8(&jpeg, pixels, channels).len()),
        );
        pair(
            c,
            &format!("JPEG baseline encode, {name}"),
            &mut || encoded(JPEG_BASELINE, ours_geometry, frame),
            Some(&mut || turbo::compress8(frame, side, side, channels).len()),
        );
    }

    // JPEG extended (.51), 12-bit lossy: decode only (nothing here encodes it).
    let jpeg12 = turbo::compress12(&ct_i16, side, side, false);
    pair(
        c,
        "JPEG extended 12-bit decode, CT",
        &mut || decode_frame(JPEG_EXTENDED, &ct_geometry, vec![jpeg12.clone()]).unwrap(),
        Some(&mut || turbo::decompress12(&jpeg12, pixels).len()),
    );

    // JPEG lossless SV1 (.70).
    let lossless = encoded(JPEG_LOSSLESS_SV1, &ct_geometry, &ct_bytes);
    pair(
        c,
        "JPEG lossless decode, CT",
        &mut || decode_frame(JPEG_LOSSLESS_SV1, &ct_geometry, vec![lossless.clone()]).unwrap(),
        Some(&mut || turbo::decompress12(&lossless, pixels).len()),
    );
    pair(
        c,
        "JPEG lossless encode, CT",
        &mut || encoded(JPEG_LOSSLESS_SV1, &ct_geometry, &ct_bytes),
        Some(&mut || turbo::compress12(&ct_i16, side, side, true).len()),
    );

    // JPEG-LS lossless (.80) through CharLS.
    let jls = encoded(JPEG_LS_LOSSLESS, &ct_geometry, &ct_bytes);
    let frame_info = charls::FrameInfo {
        width: u32::from(SIZE),
        height: u32::from(SIZE),
        bits_per_sample: 12,
        component_count: 1,
    };
    pair(
        c,
        "JPEG-LS decode, CT",
        &mut || decode_frame(JPEG_LS_LOSSLESS, &ct_geometry, vec![jls.clone()]).unwrap(),
        Some(&mut || charls::CharLS::default().decode(&jls).unwrap().len()),
    );
    pair(
        c,
        "JPEG-LS encode, CT",
        &mut || encoded(JPEG_LS_LOSSLESS, &ct_geometry, &ct_bytes),
        Some(&mut || {
            charls::CharLS::default()
                .encode(frame_info.clone(), 0, &ct_bytes)
                .unwrap()
                .len()
        }),
    );

    // JPEG 2000 lossless (.90) through OpenJPEG.
    let j2k = encoded(JPEG_2000_LOSSLESS, &ct_geometry, &ct_bytes);
    let j2k_file = std::env::temp_dir().join(format!("codecs-bench-{}.j2k", std::process::id()));
    pair(
        c,
        "JPEG 2000 decode, CT",
        &mut || decode_frame(JPEG_2000_LOSSLESS, &ct_geometry, vec![j2k.clone()]).unwrap(),
        Some(&mut || {
            jpeg2k::Image::from_bytes(&j2k).unwrap().components()[0]
                .data()
                .len()
        }),
    );
    {
        // OpenJPEG's encoder takes over the image's sample buffers (a second encode of one image crashes), so
        // the reference encodes a fresh image each time, decoded outside the timing. jpeg2k encodes to files
        // only: the reference's time includes writing ~100 KiB to the temporary directory.
        let mut g = c.benchmark_group("JPEG 2000 encode, CT");
        g.sample_size(20);
        g.bench_function("dicomweb-pixel", |b| {
            b.iter(|| black_box(encoded(JPEG_2000_LOSSLESS, &ct_geometry, &ct_bytes)))
        });
        g.bench_function("C reference", |b| {
            b.iter_batched(
                || jpeg2k::Image::from_bytes(&j2k).unwrap(),
                |image| {
                    image
                        .save_as_file_with(&j2k_file, jpeg2k::EncodeParameters::default())
                        .unwrap();
                    image
                },
                criterion::BatchSize::LargeInput,
            )
        });
        g.finish();
    }
    let _ = std::fs::remove_file(&j2k_file);

    // HTJ2K lossless (.201) through OpenJPH; the reference calls it directly, on native samples.
    let ct_image = openjph::Image {
        width: u32::from(SIZE),
        height: u32::from(SIZE),
        components: 1,
        bytes_per_sample: 2,
        bits: 12,
        signed: false,
        planar: false,
    };
    let htj2k = encoded(HTJ2K_LOSSLESS, &ct_geometry, &ct_bytes);
    pair(
        c,
        "HTJ2K decode, CT",
        &mut || decode_frame(HTJ2K_LOSSLESS, &ct_geometry, vec![htj2k.clone()]).unwrap(),
        Some(&mut || openjph::decode(&htj2k, &ct_image).unwrap().samples.len()),
    );
    pair(
        c,
        "HTJ2K encode, CT",
        &mut || encoded(HTJ2K_LOSSLESS, &ct_geometry, &ct_bytes),
        Some(&mut || {
            openjph::encode_lossless(&ct_image, &ct_bytes, false)
                .unwrap()
                .len()
        }),
    );

    // RLE lossless (.5): no C library linked to compare with.
    let rle = encoded(RLE_LOSSLESS, &ct_geometry, &ct_bytes);

    // The lossless codecs give the slice back (the work measured is the real one).
    for (to, bytes) in [
        (JPEG_LOSSLESS_SV1, &lossless),
        (JPEG_LS_LOSSLESS, &jls),
        (JPEG_2000_LOSSLESS, &j2k),
        (HTJ2K_LOSSLESS, &htj2k),
        (RLE_LOSSLESS, &rle),
    ] {
        assert_eq!(
            decode_frame(to, &ct_geometry, vec![bytes.clone()]).unwrap(),
            ct_bytes,
            "{to}"
        );
    }
    pair(
        c,
        "RLE decode, CT",
        &mut || decode_frame(RLE_LOSSLESS, &ct_geometry, vec![rle.clone()]).unwrap(),
        None,
    );
    pair(
        c,
        "RLE encode, CT",
        &mut || encoded(RLE_LOSSLESS, &ct_geometry, &ct_bytes),
        None,
    );
}

criterion_group!(benches, codecs);
criterion_main!(benches);
