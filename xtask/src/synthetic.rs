//! A synthetic DICOM Part 10 instance of any size, generated on the fly as a [`Read`]: nothing but the few hundred
//! bytes of header and one frame of pattern is ever held in memory, and nothing touches the disk.
//!
//! Layout: 128-byte zero preamble, `DICM`, the file meta group and the dataset in explicit VR little endian, then
//! Pixel Data (7FE0,0010) OW with a 32-bit length. Pixels are 16-bit MONOCHROME2; every frame is the same cheap
//! pattern except its first 8 bytes, which hold the frame number (1-based, u64 little endian), so that a frame
//! read back at the wrong offset is noticed.

use anyhow::{Result, bail, ensure};
use std::io::{self, Read};
use std::time::{SystemTime, UNIX_EPOCH};

pub const MIB: u64 = 1024 * 1024;

const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
/// Multi-frame Grayscale Word Secondary Capture Image Storage: 16-bit MONOCHROME2, any number of frames.
pub const SOP_CLASS_UID: &str = "1.2.840.10008.5.1.4.1.1.7.3";
/// Implementation Class UID of this generator (a 2.25 UID: a fixed random 128-bit number).
const IMPLEMENTATION_CLASS_UID: &str = "2.25.270838225329574305613479917468613862301";
/// Pixel Data's length is a 32-bit value and 0xFFFFFFFF means "undefined".
const MAX_PIXEL_BYTES: u64 = 0xFFFF_FFFE;
/// Columns of a frame when the size allows (1024 x 1024 x 2 bytes = 2 MiB per frame).
const PREFERRED_COLUMNS: u64 = 1024;

/// Rows, columns and frames of the pixel data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub rows: u16,
    pub columns: u16,
    pub frames: u32,
}

impl Layout {
    /// A layout whose pixel data is about `size_bytes` (rounded down to whole pixels and frames): `frames` frames
    /// when given, else frames of 2 MiB (1024 x 1024) or one smaller frame.
    pub fn for_size(size_bytes: u64, frames: Option<u32>) -> Result<Layout> {
        let frames = match frames {
            Some(0) => bail!("--frames must be at least 1"),
            Some(n) => u64::from(n),
            None => (size_bytes / (PREFERRED_COLUMNS * PREFERRED_COLUMNS * 2)).max(1),
        };
        let pixels = size_bytes / frames / 2;
        ensure!(
            pixels >= 1,
            "{size_bytes} bytes is too small for {frames} frames of 16-bit pixels"
        );
        // At least 1024 columns, more if the frame would otherwise need over 65535 rows.
        let columns = PREFERRED_COLUMNS
            .max(pixels.div_ceil(u64::from(u16::MAX)))
            .min(pixels);
        let rows = pixels / columns;
        let layout = Layout {
            rows: u16::try_from(rows)?,
            columns: u16::try_from(columns)?,
            frames: u32::try_from(frames)?,
        };
        ensure!(
            layout.pixel_bytes() <= MAX_PIXEL_BYTES,
            "pixel data of {} bytes does not fit Pixel Data's 32-bit length (keep --size-mib under 4096)",
            layout.pixel_bytes()
        );
        Ok(layout)
    }

    pub fn frame_bytes(&self) -> u64 {
        u64::from(self.rows) * u64::from(self.columns) * 2
    }

    pub fn pixel_bytes(&self) -> u64 {
        self.frame_bytes() * u64::from(self.frames)
    }
}

/// The identities of the generated instance.
#[derive(Clone, Debug)]
pub struct Uids {
    pub study: String,
    pub series: String,
    pub sop: String,
}

impl Uids {
    /// New 2.25 UIDs, unique per run (clock and process id).
    pub fn unique() -> Uids {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let n = nanos * 100_000 + u128::from(std::process::id() % 100_000) + 1;
        Uids {
            study: format!("2.25.{n}1"),
            series: format!("2.25.{n}2"),
            sop: format!("2.25.{n}3"),
        }
    }
}

/// The searchable attributes of a generated instance.
#[derive(Clone, Debug)]
pub struct Description {
    pub patient_name: String,
    pub patient_id: String,
    /// StudyDate (YYYYMMDD), left out when `None`.
    pub study_date: Option<String>,
    pub modality: String,
    pub instance_number: u32,
}

impl Default for Description {
    fn default() -> Description {
        Description {
            patient_name: "Bench^StowLarge".into(),
            patient_id: "BENCH-STOW-LARGE".into(),
            study_date: None,
            modality: "OT".into(),
            instance_number: 1,
        }
    }
}

/// The instance as a stream of bytes.
pub struct SyntheticInstance {
    header: Vec<u8>,
    layout: Layout,
    base_frame: Vec<u8>,
    pos: u64,
}

impl SyntheticInstance {
    pub fn new(layout: Layout, uids: &Uids) -> SyntheticInstance {
        SyntheticInstance::described(layout, uids, &Description::default())
    }

    pub fn described(layout: Layout, uids: &Uids, description: &Description) -> SyntheticInstance {
        SyntheticInstance {
            header: header(layout, uids, description),
            layout,
            base_frame: base_frame(layout.frame_bytes()),
            pos: 0,
        }
    }

    /// Total length of the Part 10 file in bytes.
    pub fn len(&self) -> u64 {
        self.header.len() as u64 + self.layout.pixel_bytes()
    }

    /// The whole Part 10 file in memory (for small instances).
    pub fn into_bytes(mut self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(usize::try_from(self.len()).unwrap_or(0));
        // Reading from memory cannot fail.
        let _ = self.read_to_end(&mut bytes);
        bytes
    }

    /// The bytes of frame `number` (1-based), as they are in the stream.
    pub fn frame(&self, number: u32) -> Vec<u8> {
        let mut frame = self.base_frame.clone();
        stamp(&mut frame, 0, number);
        frame
    }
}

/// Writes the frame number into `chunk`, a slice of a frame starting at byte `within` of it.
fn stamp(chunk: &mut [u8], within: u64, number: u32) {
    let stamp = u64::from(number).to_le_bytes();
    for (i, byte) in chunk.iter_mut().enumerate() {
        let at = within + i as u64;
        if at >= stamp.len() as u64 {
            break;
        }
        *byte = stamp[at as usize];
    }
}

impl Read for SyntheticInstance {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let header_len = self.header.len() as u64;
        if self.pos < header_len {
            let start = self.pos as usize;
            let n = buf.len().min(self.header.len() - start);
            buf[..n].copy_from_slice(&self.header[start..start + n]);
            self.pos += n as u64;
            return Ok(n);
        }
        let offset = self.pos - header_len;
        if offset >= self.layout.pixel_bytes() || buf.is_empty() {
            return Ok(0);
        }
        let frame_bytes = self.layout.frame_bytes();
        let index = offset / frame_bytes;
        let within = offset % frame_bytes;
        let n = (buf.len() as u64).min(frame_bytes - within) as usize;
        let start = within as usize;
        buf[..n].copy_from_slice(&self.base_frame[start..start + n]);
        // `index` < frames, which is a u32.
        stamp(&mut buf[..n], within, index as u32 + 1);
        self.pos += n as u64;
        Ok(n)
    }
}

/// One frame of a cheap pattern of 16-bit words.
fn base_frame(frame_bytes: u64) -> Vec<u8> {
    (0..frame_bytes / 2)
        .flat_map(|k| ((k as u16).wrapping_mul(31) ^ ((k >> 10) as u16)).to_le_bytes())
        .collect()
}

/// Everything before the pixel values: preamble, `DICM`, file meta group, dataset and Pixel Data's header.
fn header(layout: Layout, uids: &Uids, description: &Description) -> Vec<u8> {
    let mut meta = Vec::new();
    element(&mut meta, 0x0002, 0x0001, b"OB", &[0x00, 0x01]);
    element(&mut meta, 0x0002, 0x0002, b"UI", &uid(SOP_CLASS_UID));
    element(&mut meta, 0x0002, 0x0003, b"UI", &uid(&uids.sop));
    element(
        &mut meta,
        0x0002,
        0x0010,
        b"UI",
        &uid(EXPLICIT_VR_LITTLE_ENDIAN),
    );
    element(
        &mut meta,
        0x0002,
        0x0012,
        b"UI",
        &uid(IMPLEMENTATION_CLASS_UID),
    );

    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    let group_length = u32::try_from(meta.len()).unwrap_or(u32::MAX);
    element(&mut out, 0x0002, 0x0000, b"UL", &group_length.to_le_bytes());
    out.extend_from_slice(&meta);

    element(&mut out, 0x0008, 0x0016, b"UI", &uid(SOP_CLASS_UID));
    element(&mut out, 0x0008, 0x0018, b"UI", &uid(&uids.sop));
    if let Some(date) = &description.study_date {
        element(&mut out, 0x0008, 0x0020, b"DA", &text(date));
    }
    element(
        &mut out,
        0x0008,
        0x0060,
        b"CS",
        &text(&description.modality),
    );
    element(
        &mut out,
        0x0010,
        0x0010,
        b"PN",
        &text(&description.patient_name),
    );
    element(
        &mut out,
        0x0010,
        0x0020,
        b"LO",
        &text(&description.patient_id),
    );
    element(&mut out, 0x0020, 0x000D, b"UI", &uid(&uids.study));
    element(&mut out, 0x0020, 0x000E, b"UI", &uid(&uids.series));
    element(
        &mut out,
        0x0020,
        0x0013,
        b"IS",
        &text(&description.instance_number.to_string()),
    );
    element(&mut out, 0x0028, 0x0002, b"US", &1u16.to_le_bytes());
    element(&mut out, 0x0028, 0x0004, b"CS", &text("MONOCHROME2"));
    element(
        &mut out,
        0x0028,
        0x0008,
        b"IS",
        &text(&layout.frames.to_string()),
    );
    element(&mut out, 0x0028, 0x0010, b"US", &layout.rows.to_le_bytes());
    element(
        &mut out,
        0x0028,
        0x0011,
        b"US",
        &layout.columns.to_le_bytes(),
    );
    element(&mut out, 0x0028, 0x0100, b"US", &16u16.to_le_bytes());
    element(&mut out, 0x0028, 0x0101, b"US", &16u16.to_le_bytes());
    element(&mut out, 0x0028, 0x0102, b"US", &15u16.to_le_bytes());
    element(&mut out, 0x0028, 0x0103, b"US", &0u16.to_le_bytes());
    // Pixel Data: only the header; the value is streamed by `read`. `for_size` keeps the length under 2^32 - 1.
    let pixel_len = u32::try_from(layout.pixel_bytes()).unwrap_or(u32::MAX);
    element_header(&mut out, 0x7FE0, 0x0010, b"OW", pixel_len);
    out
}

/// An explicit VR little endian element.
fn element(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) {
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    element_header(out, group, elem, vr, len);
    out.extend_from_slice(value);
}

fn element_header(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], len: u32) {
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(vr);
    if long_length(vr) {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&len.to_le_bytes());
    } else {
        // Only short values reach here.
        out.extend_from_slice(&(len as u16).to_le_bytes());
    }
}

/// VRs with 2 reserved bytes and a 32-bit length in explicit VR.
fn long_length(vr: &[u8; 2]) -> bool {
    matches!(
        vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"SV"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"UV"
    )
}

/// A UID value, padded to even length with a NUL.
fn uid(value: &str) -> Vec<u8> {
    let mut bytes = value.as_bytes().to_vec();
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    bytes
}

/// A string value, padded to even length with a space.
fn text(value: &str) -> Vec<u8> {
    let mut bytes = value.as_bytes().to_vec();
    if bytes.len() % 2 == 1 {
        bytes.push(b' ');
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uids() -> Uids {
        Uids {
            study: "1.2.3".into(),
            series: "1.2.3.4".into(),
            sop: "1.2.3.4.5".into(),
        }
    }

    /// (tag, VR, offset of the value, length of the value)
    type Element = ((u16, u16), [u8; 2], usize, usize);

    /// Walks the explicit VR little endian elements after the preamble: (tag, vr, value offset, value length).
    fn elements(bytes: &[u8]) -> Vec<Element> {
        let mut out = Vec::new();
        let mut at = 132;
        while at < bytes.len() {
            let group = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
            let elem = u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]);
            let vr = [bytes[at + 4], bytes[at + 5]];
            let (len, value_at) = if long_length(&vr) {
                let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
                (len as usize, at + 12)
            } else {
                (
                    u16::from_le_bytes([bytes[at + 6], bytes[at + 7]]) as usize,
                    at + 8,
                )
            };
            out.push(((group, elem), vr, value_at, len));
            at = value_at + len;
        }
        out
    }

    #[test]
    fn layout_for_two_gib_is_1024_frames_of_2_mib() {
        let layout = Layout::for_size(2048 * MIB, None).unwrap();
        assert_eq!(
            layout,
            Layout {
                rows: 1024,
                columns: 1024,
                frames: 1024
            }
        );
        assert_eq!(layout.pixel_bytes(), 2048 * MIB);
    }

    #[test]
    fn layout_honours_frames_and_limits() {
        let layout = Layout::for_size(2048 * MIB, Some(8)).unwrap();
        assert_eq!(layout.frames, 8);
        assert!(layout.pixel_bytes() <= 2048 * MIB);
        assert!(layout.pixel_bytes() > 2040 * MIB);
        assert!(Layout::for_size(4096 * MIB, None).is_err());
        assert!(Layout::for_size(MIB, Some(0)).is_err());
        let small = Layout::for_size(MIB, None).unwrap();
        assert_eq!((small.frames, small.pixel_bytes()), (1, MIB));
    }

    #[test]
    fn stream_is_a_well_formed_part10_file() {
        let layout = Layout::for_size(3 * MIB, Some(3)).unwrap();
        let mut instance = SyntheticInstance::new(layout, &uids());
        let len = instance.len();
        let mut bytes = Vec::new();
        instance.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, len);
        assert!(bytes[..128].iter().all(|&b| b == 0));
        assert_eq!(&bytes[128..132], b"DICM");

        let elements = elements(&bytes);
        let tags: Vec<_> = elements.iter().map(|e| e.0).collect();
        let mut sorted = tags.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(tags, sorted, "tags ascending and unique");
        for (tag, _, _, len) in &elements {
            assert_eq!(len % 2, 0, "{tag:04X?} has an odd length");
        }
        let value = |tag: (u16, u16)| {
            let (_, _, at, len) = elements.iter().find(|e| e.0 == tag).unwrap();
            &bytes[*at..*at + *len]
        };
        // Group length counts the meta elements after it.
        let meta_end = elements
            .iter()
            .filter(|e| e.0.0 == 2)
            .map(|e| e.2 + e.3)
            .max()
            .unwrap();
        let group_length = u32::from_le_bytes(value((2, 0)).try_into().unwrap()) as usize;
        assert_eq!(group_length, meta_end - (132 + 12));
        assert_eq!(value((2, 0x10)), b"1.2.840.10008.1.2.1\0");
        assert_eq!(value((0x20, 0x0E)), b"1.2.3.4\0");
        assert_eq!(value((0x28, 0x04)), b"MONOCHROME2 ");
        assert_eq!(value((0x28, 0x08)), b"3 ");
        let pixel = elements.last().unwrap();
        assert_eq!((pixel.0, &pixel.1), ((0x7FE0, 0x10), b"OW"));
        assert_eq!(pixel.3 as u64, layout.pixel_bytes());
        assert_eq!(pixel.2 + pixel.3, bytes.len());
    }

    #[test]
    fn reads_of_any_size_give_the_same_bytes_and_frames_match() {
        let layout = Layout::for_size(MIB / 2, Some(4)).unwrap();
        let mut whole = Vec::new();
        SyntheticInstance::new(layout, &uids())
            .read_to_end(&mut whole)
            .unwrap();

        let mut instance = SyntheticInstance::new(layout, &uids());
        let mut pieces = Vec::new();
        let mut buf = [0u8; 4099];
        for size in (1..).map(|i| (i * 7) % 4099 + 1) {
            let n = instance.read(&mut buf[..size]).unwrap();
            if n == 0 {
                break;
            }
            pieces.extend_from_slice(&buf[..n]);
        }
        assert_eq!(pieces, whole);

        let frame_bytes = layout.frame_bytes() as usize;
        let pixels_at = whole.len() - layout.pixel_bytes() as usize;
        for number in 1..=layout.frames {
            let start = pixels_at + (number as usize - 1) * frame_bytes;
            let expected = SyntheticInstance::new(layout, &uids()).frame(number);
            assert_eq!(&whole[start..start + frame_bytes], &expected[..]);
            assert_eq!(&expected[..8], &u64::from(number).to_le_bytes());
        }
    }
}
