//! `inspect` never panics on damaged input, and streams huge instances with bounded memory.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::*;
use dicom_dictionary_std::tags;
use dicomweb_instance::{PixelDataLayout, inspect};

/// Small deterministic PRNG (xorshift64*), so failures are reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that tend to hit edge cases when written over lengths, tags and VRs.
const INTERESTING: &[&[u8]] = &[
    &[0xFF, 0xFF, 0xFF, 0xFF],
    &[0xFE, 0xFF, 0x00, 0xE0],
    &[0xFE, 0xFF, 0x0D, 0xE0],
    &[0xFE, 0xFF, 0xDD, 0xE0],
    &[0xE0, 0x7F, 0x10, 0x00],
    b"SQ",
    b"UN",
    b"OB",
    &[0x00, 0x00, 0x00, 0x80],
    &[0x01, 0x00],
    &[0x00],
];

fn mutate(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    if bytes.is_empty() {
        return bytes;
    }
    match rng.below(4) {
        0 => bytes.truncate(rng.below(bytes.len())),
        1 => {
            for _ in 0..=rng.below(8) {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
        }
        2 => {
            let value = INTERESTING[rng.below(INTERESTING.len())];
            if bytes.len() >= value.len() {
                let at = rng.below(bytes.len() - value.len());
                bytes[at..at + value.len()].copy_from_slice(value);
            }
        }
        _ => {
            let at = rng.below(bytes.len());
            let length = rng.below(64).min(bytes.len() - at);
            let chunk: Vec<u8> = bytes[at..at + length].to_vec();
            let to = rng.below(bytes.len());
            bytes.splice(to..to, chunk);
        }
    }
    bytes
}

#[test]
fn random_mutations_and_truncations_never_panic() {
    let samples: Vec<Vec<u8>> = [
        pydicom_sample("MR_small.dcm"),
        pydicom_sample("MR_small_implicit.dcm"),
        pydicom_sample("MR_small_bigendian.dcm"),
        pydicom_sample("SC_rgb_rle_2frame.dcm"),
        pydicom_sample("image_dfl.dcm"),
        pydicom_sample("rtplan.dcm"),
        pydicom_sample("test-SR.dcm"),
        local_sample("multiframe_jpeg_bot.dcm"),
        local_sample("multiframe_jpeg_eot.dcm"),
        local_sample("un-undefined-length.dcm"),
        local_sample("charset/chrH32.dcm"),
        local_sample("charset/chrSQEncoding.dcm"),
    ]
    .iter()
    .map(|path| std::fs::read(path).unwrap())
    .collect();
    let started = Instant::now();
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let (mut accepted, mut rejected) = (0, 0);
    for sample in &samples {
        for _ in 0..500 {
            let mut damaged = mutate(&mut rng, sample);
            if rng.below(3) == 0 {
                damaged = mutate(&mut rng, &damaged);
            }
            match inspect(damaged.as_slice()) {
                Ok(_) => accepted += 1,
                Err(_) => rejected += 1,
            }
        }
    }
    // Both outcomes occur: the mutations are neither all harmless nor all fatal.
    assert!(
        accepted > 100 && rejected > 100,
        "accepted {accepted}, rejected {rejected}"
    );
    // Hostile lengths must not turn into big allocations or long reads (this took seconds and GBs of memory
    // when the file meta reader trusted declared lengths).
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// Specific Character Set values: without and with code extensions, unknown ones, and non-conformant mixes.
const CHARSETS: &[&str] = &[
    "",
    "ISO_IR 100",
    "ISO_IR 192",
    "GB18030",
    "ISO_IR 13",
    "ISO 2022 IR 6",
    "\\ISO 2022 IR 87",
    "ISO 2022 IR 13\\ISO 2022 IR 87",
    "\\ISO 2022 IR 87\\ISO 2022 IR 159",
    "\\ISO 2022 IR 149",
    "\\ISO 2022 IR 58",
    "ISO 2022 IR 100\\ISO 2022 IR 144\\ISO 2022 IR 126\\ISO 2022 IR 166",
    "ISO 2022 IR 100\\ISO 2022 IR 999",
    "ISO_IR 192\\ISO 2022 IR 87",
    "ISO_IR 999",
];

/// Escape sequences (known, unknown, cut off) and the bytes that reset the sets.
const ESCAPES: &[&[u8]] = &[
    b"\x1b(B", b"\x1b(J", b"\x1b$B", b"\x1b$@", b"\x1b$(D", b"\x1b)I", b"\x1b$)C", b"\x1b$)A",
    b"\x1b-A", b"\x1b-L", b"\x1b-T", b"\x1b-Z", b"\x1b$", b"\x1b", b"\x1b%G", b"\x1b(", b"^", b"=",
    b"\\", b"\r\n",
];

/// A text value of random bytes and escape sequences.
fn random_text(rng: &mut Rng) -> Vec<u8> {
    let mut value = Vec::new();
    for _ in 0..rng.below(24) {
        if rng.below(3) == 0 {
            value.extend_from_slice(ESCAPES[rng.below(ESCAPES.len())]);
        } else {
            for _ in 0..=rng.below(4) {
                value.push(rng.next() as u8);
            }
        }
    }
    value
}

#[test]
fn random_text_in_any_character_set_always_decodes_to_a_value() {
    let mut rng = Rng(0xC0DE_2022_0087_0149);
    for round in 0..3000 {
        let charset = CHARSETS[rng.below(CHARSETS.len())];
        let charset_bytes = if rng.below(20) == 0 {
            random_text(&mut rng)
        } else {
            charset.as_bytes().to_vec()
        };
        let vr = ["PN", "LO", "SH", "UC", "ST", "LT", "UT"][rng.below(7)];
        let value = random_text(&mut rng);
        let elements = [
            element(0x0008, 0x0005, "CS", &charset_bytes),
            element(0x0010, 0x21B0, vr, &value),
        ];
        // Half of the time in an item, with the character set declared in the item.
        let extra = if rng.below(2) == 0 {
            vec![sequence(0x0040, 0x0275, &[elements.concat()])]
        } else {
            elements.to_vec()
        };
        let info = inspect(instance(&extra).as_slice())
            .unwrap_or_else(|e| panic!("round {round}: {charset:?} {value:?}: {e}"));
        let object = match info.dataset.element(tags::REQUEST_ATTRIBUTES_SEQUENCE) {
            Ok(sequence) => &sequence.items().unwrap()[0],
            Err(_) => &info.dataset,
        };
        let text = object
            .element(tags::ADDITIONAL_PATIENT_HISTORY)
            .unwrap_or_else(|e| panic!("round {round}: {e}"))
            .to_str()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        // With code extensions, escape sequences are consumed or replaced, never shown.
        let decoded_here = charset.contains("ISO 2022") && !charset.starts_with("ISO_IR 192");
        if decoded_here && charset_bytes == charset.as_bytes() {
            assert!(
                !text.contains('\x1b'),
                "round {round}: {charset:?} {value:?} gave {text:?}"
            );
        }
    }
}

/// A Part 10 instance generated on the fly: `header` bytes, then `pixel_length` bytes of pixel data.
struct GeneratedInstance {
    header: Vec<u8>,
    pixel_length: u64,
    position: u64,
}

impl Read for GeneratedInstance {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let header_length = self.header.len() as u64;
        if self.position < header_length {
            let from = &self.header[self.position as usize..];
            let n = from.len().min(buf.len());
            buf[..n].copy_from_slice(&from[..n]);
            self.position += n as u64;
            return Ok(n);
        }
        let left = header_length + self.pixel_length - self.position;
        let n = (left.min(buf.len() as u64)) as usize;
        buf[..n].fill(0x5A);
        self.position += n as u64;
        Ok(n)
    }
}

#[test]
fn a_300_mb_instance_is_streamed_without_loading_pixel_data() {
    // 300 frames of 1000 x 1000 8-bit samples.
    let (frames, rows, columns) = (300u32, 1000u16, 1000u16);
    let frame_length = u64::from(rows) * u64::from(columns);
    let pixel_length = frame_length * u64::from(frames);
    let mut extra = image_attributes(Some(&frames.to_string()), rows, columns, 8);
    extra.push(header(0x7FE0, 0x0010, "OB", pixel_length as u32));
    let header_bytes = instance(&extra);
    let pixel_offset = header_bytes.len() as u64;
    let mut source = GeneratedInstance {
        header: header_bytes,
        pixel_length,
        position: 0,
    };

    let started = Instant::now();
    let info = inspect(&mut source).unwrap();
    let elapsed = started.elapsed();

    assert_eq!(
        source.position,
        pixel_offset + pixel_length,
        "read to the end"
    );
    assert!(common::has_placeholder(&info.dataset, tags::PIXEL_DATA));
    assert_eq!(
        info.pixel_data,
        Some(PixelDataLayout::Native {
            offset: pixel_offset,
            length: pixel_length,
            frame_length,
            number_of_frames: frames,
        })
    );
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}
