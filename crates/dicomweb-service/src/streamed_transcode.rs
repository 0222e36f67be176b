//! Transcoding a large instance frame by frame as it is sent ([`dicomweb_pixel::StreamedTranscode`]): the
//! stored file is read by byte ranges through the frame layout recorded at store time, so a retrieve holds a
//! few frames in memory whatever the instance's size.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use dicomweb_index::InstanceRecord;
use dicomweb_instance::PixelDataLayout;
use dicomweb_storage::StorageError;
use futures::StreamExt;

use crate::retrieve::{
    FRAME_READ_CHUNK, InstanceContent, instance_storage_error, on_codec_pool, read_frames_together,
    transcode_failure,
};
use crate::{Result, ServiceError, StudiesService};

/// Frames transcoded at once for one streamed retrieve (each on the codec pool, sent in order).
const FRAMES_IN_FLIGHT: usize = 2;

/// The most bytes a stored file may hold after its Pixel Data for a streamed transcode: they are read and
/// re-encoded whole (usually there are none, or a few bytes of trailing padding).
const MAX_TRAILING_BYTES: u64 = 16 * 1024 * 1024;

/// (FFFE,E0DD) with length 0: what ends encapsulated Pixel Data.
const SEQUENCE_DELIMITATION_ITEM: [u8; 8] = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];

/// Where the frames of a stored file are, for a streamed transcode.
struct FramePlan {
    /// Each frame's byte ranges, in order.
    frames: Vec<Vec<Range<u64>>>,
    /// Where the first frame's bytes start: everything before is the head (data set and Pixel Data header).
    first_frame_at: u64,
    /// Where the Pixel Data element ends (after its sequence delimiter, when encapsulated).
    pixel_data_end: u64,
    /// Encapsulated: the 8 bytes before `pixel_data_end` must be the sequence delimiter.
    encapsulated: bool,
}

impl FramePlan {
    fn of(layout: &PixelDataLayout) -> Option<FramePlan> {
        match layout {
            PixelDataLayout::Native {
                offset,
                length,
                frame_length,
                number_of_frames,
            } if *number_of_frames > 0 && *frame_length > 0 => Some(FramePlan {
                frames: (0..u64::from(*number_of_frames))
                    .map(|i| {
                        let start = offset + i * frame_length;
                        // One frame of native pixel data is one contiguous range.
                        #[allow(clippy::single_range_in_vec_init)]
                        let ranges = vec![start..start + frame_length];
                        ranges
                    })
                    .collect(),
                first_frame_at: *offset,
                pixel_data_end: offset + length,
                encapsulated: false,
            }),
            PixelDataLayout::Encapsulated { frames } => {
                let first_frame_at = frames.first()?.first()?.0;
                let last_end = frames.iter().flatten().map(|&(_, end)| end).max()?;
                Some(FramePlan {
                    frames: frames
                        .iter()
                        .map(|fragments| fragments.iter().map(|&(s, e)| s..e).collect())
                        .collect(),
                    first_frame_at,
                    pixel_data_end: last_end + SEQUENCE_DELIMITATION_ITEM.len() as u64,
                    encapsulated: true,
                })
            }
            _ => None,
        }
    }
}

impl StudiesService {
    /// Whether `record` is transcoded to `to` frame by frame as it is sent rather than whole in memory: it is
    /// larger than [`crate::ServiceConfig::transcode_whole_max_bytes`], its frames' byte ranges are known, and
    /// the pair of syntaxes allows it ([`dicomweb_pixel::why_not_streamable`]).
    pub(crate) fn streams_transcode(&self, record: &InstanceRecord, to: &str) -> bool {
        record.size > self.config.transcode_whole_max_bytes
            && dicomweb_pixel::why_not_streamable(&record.transfer_syntax_uid, to).is_none()
            && stored_layout(record)
                .as_ref()
                .and_then(FramePlan::of)
                .is_some()
    }

    /// Opens `record` transcoded to `to` frame by frame (check [`StudiesService::streams_transcode`] first).
    /// The head and first frame are transcoded before this returns, so what cannot be produced is still an
    /// error before the answer starts; a failure after that cuts the body short. The content's record has
    /// `transfer_syntax_uid` set to `to`, and `size` to the new file's length when it is known in advance (a
    /// native target); [`InstanceContent::length_known`] says which.
    pub(crate) async fn open_streamed_transcode(
        &self,
        record: InstanceRecord,
        to: String,
    ) -> Result<InstanceContent> {
        let plan = stored_layout(&record)
            .as_ref()
            .and_then(FramePlan::of)
            .ok_or_else(|| {
                ServiceError::Internal(format!(
                    "instance {} has no frame layout to transcode by",
                    record.sop_instance_uid
                ))
            })?;
        let layout_mismatch = |what: &str| {
            ServiceError::Internal(format!(
                "the recorded frame layout of instance {} does not match its file: {what}",
                record.sop_instance_uid
            ))
        };
        if plan.pixel_data_end > record.size {
            return Err(layout_mismatch("the Pixel Data ends past the file"));
        }
        let trailing_length = record.size - plan.pixel_data_end;
        if trailing_length > MAX_TRAILING_BYTES {
            return Err(ServiceError::NotAcceptable(format!(
                "instance {} holds {trailing_length} bytes after its Pixel Data, more than the \
                 {MAX_TRAILING_BYTES} a frame-by-frame transcode takes; ask for transfer-syntax=*",
                record.sop_instance_uid
            )));
        }
        let storage_error = |e| instance_storage_error(&record, e);
        let head = self
            .blobs
            .get_range(&record.blob_key, 0..plan.first_frame_at)
            .await
            .map_err(storage_error)?;
        // The sequence delimiter of encapsulated Pixel Data is read with what follows, and checked.
        let after_start = if plan.encapsulated {
            plan.pixel_data_end - SEQUENCE_DELIMITATION_ITEM.len() as u64
        } else {
            plan.pixel_data_end
        };
        let mut after = if after_start < record.size {
            self.blobs
                .get_range(&record.blob_key, after_start..record.size)
                .await
                .map_err(storage_error)?
        } else {
            Bytes::new()
        };
        if plan.encapsulated {
            if !after.starts_with(&SEQUENCE_DELIMITATION_ITEM) {
                return Err(layout_mismatch(
                    "no sequence delimiter after the last fragment",
                ));
            }
            after = after.slice(SEQUENCE_DELIMITATION_ITEM.len()..);
        }
        let number_of_frames = u32::try_from(plan.frames.len())
            .map_err(|_| layout_mismatch("more than 2^32 frames"))?;
        let mut frames = plan.frames.into_iter();
        let first = frames.next().ok_or_else(|| layout_mismatch("no frame"))?;
        let first = read_frames_together(&*self.blobs, &record.blob_key, &[first])
            .await
            .map_err(storage_error)?;
        let target = to.clone();
        let (head, writer) = on_codec_pool(move || {
            let transcode =
                dicomweb_pixel::StreamedTranscode::new(&head, &target, number_of_frames)?;
            let first = first.into_iter().map(|frame| frame.to_vec()).collect();
            transcode.start(first, &after)
        })
        .await?
        .map_err(|e| transcode_failure(&record, &to, e))?;

        let writer = Arc::new(writer);
        let length = writer.length();
        let blobs = self.blobs.clone();
        let key = record.blob_key.clone();
        let end = Bytes::copy_from_slice(writer.end());
        let frame_writer = writer.clone();
        let failed = |e: String| StorageError::other(e);
        let rest = futures::stream::iter(read_groups(frames.collect()))
            .map(move |group| {
                let blobs = blobs.clone();
                let key = key.clone();
                async move { read_frames_together(&*blobs, &key, &group).await }
            })
            .buffered(1)
            .flat_map(|read| {
                futures::stream::iter(match read {
                    Ok(frames) => frames.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                })
            })
            .map(move |frame| {
                let writer = frame_writer.clone();
                async move {
                    let frame = frame?;
                    on_codec_pool(move || writer.frame(vec![frame.to_vec()]))
                        .await
                        .map_err(|e| failed(e.to_string()))?
                        .map(Bytes::from)
                        .map_err(|e| failed(format!("a frame could not be transcoded: {e}")))
                }
            })
            .buffered(FRAMES_IN_FLIGHT);
        let body = futures::stream::once(async move { Ok(Bytes::from(head)) })
            .chain(rest)
            .chain(futures::stream::once(async move { Ok(end) }))
            .boxed();
        let mut record = record;
        record.transfer_syntax_uid = to;
        if let Some(length) = length {
            record.size = length;
        }
        Ok(InstanceContent {
            record,
            body,
            length_known: length.is_some(),
        })
    }
}

/// The frame layout recorded for `record` at store time, if any and readable.
pub(crate) fn stored_layout(record: &InstanceRecord) -> Option<PixelDataLayout> {
    record
        .pixel_layout
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
}

/// Consecutive frames grouped into reads of at most [`FRAME_READ_CHUNK`] bytes (a larger frame alone): a
/// many-frame instance of small frames is not one storage request per frame.
fn read_groups(frames: Vec<Vec<Range<u64>>>) -> Vec<Vec<Vec<Range<u64>>>> {
    let mut groups: Vec<Vec<Vec<Range<u64>>>> = Vec::new();
    let mut group_bytes = 0;
    for frame in frames {
        let bytes: u64 = frame.iter().map(|r| r.end - r.start).sum();
        match groups.last_mut() {
            Some(group) if group_bytes + bytes <= FRAME_READ_CHUNK => {
                group.push(frame);
                group_bytes += bytes;
            }
            _ => {
                groups.push(vec![frame]);
                group_bytes = bytes;
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frames_are_read_together_and_large_ones_alone() {
        // A native frame: one contiguous range.
        #[allow(clippy::single_range_in_vec_init)]
        let frame = |start: u64, len: u64| vec![start..start + len];
        let half = FRAME_READ_CHUNK / 2;
        let groups = read_groups(vec![
            frame(0, half),
            frame(half, half),
            frame(2 * half, 3 * half),
            frame(5 * half, 1),
        ]);
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1, 1]);
    }
}
