//! From recorded pixel data positions to per-frame byte ranges.

use dicom_core::Tag;
use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use crate::PixelDataLayout;
use crate::parse::{Fragment, RawPixelData};

/// Number of Frames (0028,0008) as found in the dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FrameCount {
    /// Absent: single-frame instance.
    Absent,
    Valid(u32),
    /// Present but not a positive integer (e.g. "1A", "0"): the original text.
    Invalid(String),
}

fn frame_count(dataset: &InMemDicomObject) -> FrameCount {
    let Some(element) = dataset.get(tags::NUMBER_OF_FRAMES) else {
        return FrameCount::Absent;
    };
    let text = match element.value() {
        Value::Primitive(value) => value.to_str().into_owned(),
        _ => return FrameCount::Invalid("(sequence)".into()),
    };
    // IS values may be padded with spaces (or NULs, in the wild) on either side.
    match text.trim_matches(['\0', ' ']).parse::<u32>() {
        Ok(count) if count > 0 => FrameCount::Valid(count),
        Ok(_) | Err(_) => FrameCount::Invalid(text),
    }
}

fn unsigned_attribute(dataset: &InMemDicomObject, tag: Tag) -> Option<u64> {
    dataset.get(tag)?.value().to_int::<u64>().ok()
}

fn not_range_readable(warnings: &mut Vec<String>, why: String) -> PixelDataLayout {
    warnings.push(format!(
        "Pixel Data frames cannot be served by byte ranges: {why}"
    ));
    PixelDataLayout::NotRangeReadable
}

/// Computes the frame layout; every case that falls back to [`PixelDataLayout::NotRangeReadable`] adds a warning
/// saying why.
pub(crate) fn frame_layout(
    raw: RawPixelData,
    extended_offset_table: Option<&[u64]>,
    dataset: &InMemDicomObject,
    warnings: &mut Vec<String>,
) -> PixelDataLayout {
    let count = frame_count(dataset);
    match raw {
        RawPixelData::Native { offset, length } => {
            native_layout(offset, length, &count, dataset, warnings)
        }
        RawPixelData::Encapsulated {
            basic_offset_table,
            fragments,
        } => encapsulated_layout(
            &basic_offset_table,
            extended_offset_table,
            &fragments,
            &count,
            warnings,
        ),
    }
}

fn native_layout(
    offset: u64,
    length: u64,
    count: &FrameCount,
    dataset: &InMemDicomObject,
    warnings: &mut Vec<String>,
) -> PixelDataLayout {
    let number_of_frames = match count {
        FrameCount::Absent => 1,
        FrameCount::Valid(n) => *n,
        FrameCount::Invalid(text) => {
            return not_range_readable(
                warnings,
                format!("Number of Frames {text:?} is not a positive integer"),
            );
        }
    };
    let dimensions = [
        (tags::ROWS, "Rows"),
        (tags::COLUMNS, "Columns"),
        (tags::SAMPLES_PER_PIXEL, "Samples per Pixel"),
        (tags::BITS_ALLOCATED, "Bits Allocated"),
    ]
    .map(|(tag, name)| (unsigned_attribute(dataset, tag).filter(|v| *v > 0), name));
    if let Some((_, name)) = dimensions.iter().find(|(value, _)| value.is_none()) {
        return not_range_readable(warnings, format!("{name} is missing or invalid"));
    }
    let [rows, columns, samples, bits] = dimensions.map(|(value, _)| value.unwrap_or_default());
    if bits == 1 && number_of_frames > 1 {
        // Bit-packed frames follow each other without padding, so a frame generally starts mid-byte.
        return not_range_readable(
            warnings,
            "multi-frame 1-bit pixel data is bit-packed and frames are not byte-aligned".into(),
        );
    }
    let Some(frame_bits) = rows
        .checked_mul(columns)
        .and_then(|v| v.checked_mul(samples))
        .and_then(|v| v.checked_mul(bits))
    else {
        return not_range_readable(warnings, "frame size overflows".into());
    };
    if frame_bits % 8 != 0 && number_of_frames > 1 {
        return not_range_readable(warnings, "frames are not byte-aligned".into());
    }
    let frame_length = frame_bits.div_ceil(8);
    let needed = frame_length.checked_mul(u64::from(number_of_frames));
    if needed.is_none_or(|needed| needed > length) {
        return not_range_readable(
            warnings,
            format!(
                "{number_of_frames} frame(s) of {frame_length} bytes do not fit in the {length} bytes of Pixel Data"
            ),
        );
    }
    PixelDataLayout::Native {
        offset,
        length,
        frame_length,
        number_of_frames,
    }
}

fn ranges(fragments: &[Fragment]) -> Vec<(u64, u64)> {
    fragments.iter().map(|f| (f.start, f.end)).collect()
}

/// Splits the fragments into frames at the given offsets, which are relative to the first fragment's item header
/// (as in the Basic and Extended Offset Tables). `None` when the table does not fit the fragments: it must start
/// at 0, increase strictly and point at fragment starts only.
fn split_by_offsets(fragments: &[Fragment], offsets: &[u64]) -> Option<Vec<Vec<(u64, u64)>>> {
    if offsets.is_empty() {
        return None;
    }
    let first = fragments.first()?.start;
    let mut starts = Vec::with_capacity(offsets.len());
    let mut next_fragment = 0usize;
    for (frame, offset) in offsets.iter().enumerate() {
        // Every item header is 8 bytes before its value, so offsets between value starts equal offsets between
        // item headers.
        let index = fragments
            .iter()
            .enumerate()
            .skip(next_fragment)
            .find(|(_, f)| f.start - first == *offset)
            .map(|(index, _)| index)?;
        // Searching from `next_fragment` on makes the offsets strictly increasing; the first must be 0.
        if frame == 0 && index != 0 {
            return None;
        }
        starts.push(index);
        next_fragment = index + 1;
    }
    let mut frames = Vec::with_capacity(starts.len());
    for (i, start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(fragments.len());
        frames.push(ranges(fragments.get(*start..end)?));
    }
    Some(frames)
}

fn encapsulated_layout(
    basic_offset_table: &[u32],
    extended_offset_table: Option<&[u64]>,
    fragments: &[Fragment],
    count: &FrameCount,
    warnings: &mut Vec<String>,
) -> PixelDataLayout {
    if fragments.is_empty() {
        return not_range_readable(warnings, "encapsulated Pixel Data has no fragments".into());
    }
    let expected_frames = match count {
        FrameCount::Absent => Some(1),
        FrameCount::Valid(n) => Some(*n as usize),
        FrameCount::Invalid(_) => None,
    };
    let fits_count =
        |frames: &Vec<Vec<(u64, u64)>>| expected_frames.is_none_or(|n| n == frames.len());

    if !basic_offset_table.is_empty() {
        let offsets: Vec<u64> = basic_offset_table.iter().map(|o| u64::from(*o)).collect();
        match split_by_offsets(fragments, &offsets).filter(fits_count) {
            Some(frames) => return PixelDataLayout::Encapsulated { frames },
            None => warnings
                .push("Basic Offset Table does not match the pixel data fragments; ignored".into()),
        }
    }
    if let Some(offsets) = extended_offset_table.filter(|t| !t.is_empty()) {
        match split_by_offsets(fragments, offsets).filter(fits_count) {
            Some(frames) => return PixelDataLayout::Encapsulated { frames },
            None => warnings.push(
                "Extended Offset Table does not match the pixel data fragments; ignored".into(),
            ),
        }
    }
    if let Some(expected) = expected_frames {
        if expected == fragments.len() {
            let frames = fragments.iter().map(|f| vec![(f.start, f.end)]).collect();
            return PixelDataLayout::Encapsulated { frames };
        }
        if expected == 1 {
            return PixelDataLayout::Encapsulated {
                frames: vec![ranges(fragments)],
            };
        }
    }
    // No table: JPEG, JPEG-LS and JPEG 2000 code streams start with a marker, so fragments that start with one
    // start a new frame (`split_by_offsets` also requires the first fragment to be one of them).
    let first_start = fragments.first().map_or(0, |f| f.start);
    let marker_starts: Vec<u64> = fragments
        .iter()
        .filter(|f| f.starts_with_frame_marker)
        .map(|f| f.start - first_start)
        .collect();
    if let Some(frames) = split_by_offsets(fragments, &marker_starts).filter(fits_count) {
        return PixelDataLayout::Encapsulated { frames };
    }
    not_range_readable(
        warnings,
        format!(
            "cannot map {} fragments to {} frames without an offset table",
            fragments.len(),
            match count {
                FrameCount::Invalid(text) => format!("{text:?}"),
                _ => expected_frames.unwrap_or(1).to_string(),
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fragments of the given value lengths, laid out as in a file: 8-byte item header before each value.
    fn fragments(lengths_and_markers: &[(u64, bool)]) -> Vec<Fragment> {
        let mut position = 1000;
        lengths_and_markers
            .iter()
            .map(|(length, marker)| {
                position += 8;
                let fragment = Fragment {
                    start: position,
                    end: position + length,
                    starts_with_frame_marker: *marker,
                };
                position += length;
                fragment
            })
            .collect()
    }

    fn frame_count_of(layout: &PixelDataLayout) -> Option<usize> {
        match layout {
            PixelDataLayout::Encapsulated { frames } => Some(frames.len()),
            _ => None,
        }
    }

    #[test]
    fn basic_offset_table_wins_over_markers() {
        // Frames of two fragments each; the second fragment of each frame starts with a marker too (a decoy).
        let fragments = fragments(&[(10, true), (20, true), (30, true), (40, true)]);
        let bot = [0u32, (8 + 10 + 8 + 20) as u32];
        let mut warnings = Vec::new();
        let layout =
            encapsulated_layout(&bot, None, &fragments, &FrameCount::Valid(2), &mut warnings);
        assert_eq!(
            layout,
            PixelDataLayout::Encapsulated {
                frames: vec![
                    vec![(1008, 1018), (1026, 1046)],
                    vec![(1054, 1084), (1092, 1132)]
                ]
            }
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn inconsistent_basic_offset_table_is_ignored_with_a_warning() {
        let fragments = fragments(&[(10, true), (20, false), (30, true), (40, false)]);
        let mut warnings = Vec::new();
        let layout = encapsulated_layout(
            &[0, 17],
            None,
            &fragments,
            &FrameCount::Valid(2),
            &mut warnings,
        );
        assert_eq!(frame_count_of(&layout), Some(2), "fell back to markers");
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn extended_offset_table_used_when_basic_is_empty() {
        let fragments = fragments(&[(10, true), (20, true), (30, true)]);
        let eot = [0u64, 8 + 10 + 8 + 20];
        let mut warnings = Vec::new();
        let layout = encapsulated_layout(
            &[],
            Some(&eot),
            &fragments,
            &FrameCount::Valid(2),
            &mut warnings,
        );
        assert_eq!(
            layout,
            PixelDataLayout::Encapsulated {
                frames: vec![vec![(1008, 1018), (1026, 1046)], vec![(1054, 1084)]]
            }
        );
    }

    #[test]
    fn without_tables_fragment_count_then_single_frame_then_markers() {
        let mut warnings = Vec::new();
        let three = fragments(&[(10, false), (20, false), (30, false)]);
        let layout = encapsulated_layout(&[], None, &three, &FrameCount::Valid(3), &mut warnings);
        assert_eq!(frame_count_of(&layout), Some(3));
        let layout = encapsulated_layout(&[], None, &three, &FrameCount::Absent, &mut warnings);
        assert_eq!(
            layout,
            PixelDataLayout::Encapsulated {
                frames: vec![vec![(1008, 1018), (1026, 1046), (1054, 1084)]]
            }
        );
        let marked = fragments(&[(10, true), (20, false), (30, true), (40, false), (50, true)]);
        let layout = encapsulated_layout(&[], None, &marked, &FrameCount::Valid(3), &mut warnings);
        assert_eq!(frame_count_of(&layout), Some(3));
        assert!(warnings.is_empty());
    }

    #[test]
    fn unmappable_fragments_are_not_range_readable() {
        let mut warnings = Vec::new();
        let unmarked = fragments(&[(10, false), (20, false), (30, false)]);
        let layout =
            encapsulated_layout(&[], None, &unmarked, &FrameCount::Valid(2), &mut warnings);
        assert_eq!(layout, PixelDataLayout::NotRangeReadable);
        assert_eq!(warnings.len(), 1);
        let layout = encapsulated_layout(&[], None, &[], &FrameCount::Absent, &mut warnings);
        assert_eq!(layout, PixelDataLayout::NotRangeReadable);
        let invalid_count = FrameCount::Invalid("1A".into());
        let layout = encapsulated_layout(&[], None, &unmarked, &invalid_count, &mut warnings);
        assert_eq!(
            layout,
            PixelDataLayout::NotRangeReadable,
            "no markers: no frames"
        );
    }
}
