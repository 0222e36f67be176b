//! WADO-RS retrieve bulk data (PS3.18 10.4, the Bulkdata resources): one bulk value of an instance, by the
//! attribute path its metadata's `BulkDataURI` names.
//!
//! Nothing about bulk values is recorded at store time beyond the placeholders of the metadata: the stored
//! file is read from its start up to the attribute's header ([`dicomweb_instance::locate_value`], streamed,
//! so a value before gigabytes of pixel data costs the bytes before it), and the value is then read by byte
//! ranges, as frames are. Bulk values are rare requests next to frames and metadata, so this keeps the catalogue
//! record as it is.

use std::ops::Range;

use bytes::Bytes;
use dicom_dictionary_std::tags;
use dicomweb_catalogue::InstanceRecord;
use dicomweb_instance::{
    AttributePath, LocatedValue, PixelDataLayout, byte_swap_width, locate_value,
};
use dicomweb_storage::BlobStore;
use futures::StreamExt;
use futures::stream::BoxStream;
use std::sync::Arc;

use crate::retrieve::{EXPLICIT_VR_BIG_ENDIAN, MAX_TRANSCODE_BYTES, instance_storage_error};
use crate::{Result, Scope, ServiceError, StudiesService};

/// Files up to this size are read whole (one call to storage) to find a value; larger ones are streamed from
/// their start until the value's header.
const LOCATE_READ_WHOLE_BYTES: u64 = 1024 * 1024;

/// A value is read from storage in pieces of at most this many bytes, two ahead of the one being sent.
const VALUE_READ_CHUNK: u64 = 1024 * 1024;

/// The bytes of a value a client asks for with an HTTP `Range` (RFC 9110 14.1.2), one range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRangeRequest {
    /// `first-` : from byte `first` to the end.
    From(u64),
    /// `first-last`, both included.
    FromTo(u64, u64),
    /// `-n`: the last `n` bytes.
    Last(u64),
}

impl ByteRangeRequest {
    /// The bytes of a value of `length` this asks for, or `None` when none of them exist (416).
    pub fn within(self, length: u64) -> Option<Range<u64>> {
        let range = match self {
            ByteRangeRequest::From(first) => first..length,
            ByteRangeRequest::FromTo(first, last) => first..last.saturating_add(1).min(length),
            ByteRangeRequest::Last(n) => length.saturating_sub(n)..length,
        };
        (range.start < range.end).then_some(range)
    }
}

/// One bulk value, as sent.
pub struct BulkValue {
    /// Length of the whole value, in bytes.
    pub length: u64,
    /// The bytes of the value the body holds: all of them, or those of the range asked for.
    pub range: Range<u64>,
    /// Whether a range was asked for (and `range` is it).
    pub partial: bool,
    /// The bytes, little endian (values of a big-endian file are byte-swapped per number, see
    /// [`dicomweb_instance::byte_swap_width`]).
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl std::fmt::Debug for BulkValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkValue")
            .field("length", &self.length)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// What a bulk data URI leads to.
#[derive(Debug)]
pub enum BulkData {
    /// A value's bytes.
    Value(BulkValue),
    /// The instance's encapsulated Pixel Data: fragments, not one value. It is served as its frames
    /// ([`StudiesService::frames`], all of them), which is what the Pixel Data URI leads to.
    EncapsulatedPixelData {
        /// The frames, numbered from 1.
        number_of_frames: u32,
    },
}

impl StudiesService {
    /// The bulk value at `attribute_path` (`7FE00010`, `54000100.0.54001010`: the path of a `BulkDataURI` of
    /// the instance's metadata) of the instance `scope`, all of it or the bytes `range` asks for.
    ///
    /// Errors: `InvalidInput` for a malformed path, `NotFound` when the instance or the attribute does not
    /// exist, [`ServiceError::RangeNotSatisfiable`] for a range past the value's end.
    pub async fn bulk_data(
        &self,
        scope: &Scope,
        attribute_path: &str,
        range: Option<ByteRangeRequest>,
    ) -> Result<BulkData> {
        let path: AttributePath =
            attribute_path
                .parse()
                .map_err(|e: dicomweb_instance::AttributePathError| {
                    ServiceError::InvalidInput(e.to_string())
                })?;
        let record = self
            .the_instance(scope, "bulk data is addressed within one instance")
            .await?;
        self.bulk_data_of_record(record, &path, range).await
    }

    /// [`StudiesService::bulk_data`] of an instance already looked up in the catalogue.
    pub(crate) async fn bulk_data_of_record(
        &self,
        record: InstanceRecord,
        path: &AttributePath,
        range: Option<ByteRangeRequest>,
    ) -> Result<BulkData> {
        // The top-level Pixel Data (the URI clients follow most) is where the layout recorded at store time says:
        // the file need not be read to find it, unless its words must be swapped (the VR says how) or it is
        // deflated.
        let layout = match (path, record.pixel_layout.as_deref()) {
            (path, Some(json)) if *path == AttributePath::top_level(tags::PIXEL_DATA) => {
                serde_json::from_str::<PixelDataLayout>(json).ok()
            }
            _ => None,
        };
        let located = match layout {
            Some(PixelDataLayout::Encapsulated { frames }) => {
                let number_of_frames = u32::try_from(frames.len()).unwrap_or(u32::MAX);
                return Ok(BulkData::EncapsulatedPixelData { number_of_frames });
            }
            Some(PixelDataLayout::Native { offset, length, .. })
                if record.transfer_syntax_uid != EXPLICIT_VR_BIG_ENDIAN =>
            {
                Some(LocatedValue::Value {
                    // Little endian: nothing is swapped, so the VR does not matter.
                    vr: dicom_core::VR::OB,
                    offset,
                    length,
                    big_endian: false,
                    inflated: None,
                })
            }
            _ => self.locate(&record, path).await?,
        };
        let located = located.ok_or_else(|| {
            ServiceError::NotFound(format!(
                "instance {} has no attribute {path}",
                record.sop_instance_uid
            ))
        })?;
        let (vr, offset, length, big_endian, inflated) = match located {
            LocatedValue::Encapsulated if path.items().is_empty() => {
                // A layout that could not map the fragments to frames: as many frames as it knows (none).
                let number_of_frames = record
                    .pixel_layout
                    .as_deref()
                    .and_then(|json| serde_json::from_str::<PixelDataLayout>(json).ok())
                    .and_then(|layout| layout.number_of_frames())
                    .unwrap_or(0);
                return Ok(BulkData::EncapsulatedPixelData { number_of_frames });
            }
            LocatedValue::Encapsulated => {
                return Err(ServiceError::NotAcceptable(format!(
                    "{path} of instance {} is encapsulated pixel data inside a sequence (an icon image), which \
                     is only served with the whole instance",
                    record.sop_instance_uid
                )));
            }
            LocatedValue::Value {
                vr,
                offset,
                length,
                big_endian,
                inflated,
            } => (vr, offset, length, big_endian, inflated),
        };
        let (range, partial) = match range {
            None => (0..length, false),
            Some(asked) => (
                asked
                    .within(length)
                    .ok_or(ServiceError::RangeNotSatisfiable { length })?,
                true,
            ),
        };
        let swap = if big_endian {
            byte_swap_width(vr)
        } else {
            None
        };
        let body = match inflated {
            Some(mut bytes) => {
                if let Some(width) = swap {
                    swap_words(&mut bytes, width);
                }
                let bytes = Bytes::from(bytes).slice(range.start as usize..range.end as usize);
                futures::stream::once(async { Ok(bytes) }).boxed()
            }
            None => value_pieces(
                self.blobs.clone(),
                record,
                offset,
                length,
                range.clone(),
                swap,
            ),
        };
        Ok(BulkData::Value(BulkValue {
            length,
            range,
            partial,
            body,
        }))
    }

    /// Where the attribute at `path` is in the instance's file (off the async workers: it parses).
    async fn locate(
        &self,
        record: &InstanceRecord,
        path: &AttributePath,
    ) -> Result<Option<LocatedValue>> {
        let path = path.clone();
        let unreadable = |e: dicomweb_instance::InspectError| {
            ServiceError::Internal(format!(
                "the stored file of instance {} cannot be read: {e}",
                record.sop_instance_uid
            ))
        };
        let joined = |e: tokio::task::JoinError| {
            ServiceError::Internal(format!("reading the stored file failed: {e}"))
        };
        if record.size <= LOCATE_READ_WHOLE_BYTES {
            let file = self.read_whole(record).await?;
            return tokio::task::spawn_blocking(move || {
                locate_value(file.as_ref(), &path, MAX_TRANSCODE_BYTES)
            })
            .await
            .map_err(joined)?
            .map_err(unreadable);
        }
        let (_, stream) = self
            .blobs
            .get(&record.blob_key)
            .await
            .map_err(|e| instance_storage_error(record, e))?;
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(
            stream.map(|piece| piece.map_err(std::io::Error::other)),
        ));
        // The stream is dropped where the value's header was found: the rest of the file is not read.
        tokio::task::spawn_blocking(move || locate_value(reader, &path, MAX_TRANSCODE_BYTES))
            .await
            .map_err(joined)?
            .map_err(unreadable)
    }
}

fn swap_words(bytes: &mut [u8], width: usize) {
    for word in bytes.chunks_exact_mut(width) {
        word.reverse();
    }
}

/// The bytes `range` of the value of `length` bytes at `offset` in the instance's file, read in pieces of
/// [`VALUE_READ_CHUNK`], numbers of `swap` bytes reversed (the pieces are read aligned to them).
fn value_pieces(
    blobs: Arc<dyn BlobStore>,
    record: InstanceRecord,
    offset: u64,
    length: u64,
    range: Range<u64>,
    swap: Option<usize>,
) -> BoxStream<'static, Result<Bytes>> {
    let width = swap.unwrap_or(1) as u64;
    let aligned_start = range.start - range.start % width;
    let aligned_end = range.end.div_ceil(width).saturating_mul(width).min(length);
    let pieces: Vec<Range<u64>> = (aligned_start..aligned_end)
        .step_by(VALUE_READ_CHUNK as usize)
        .map(|start| start..(start + VALUE_READ_CHUNK).min(aligned_end))
        .collect();
    let record = Arc::new(record);
    futures::stream::iter(pieces)
        .map(move |piece| {
            let blobs = blobs.clone();
            let record = record.clone();
            let range = range.clone();
            async move {
                let bytes = blobs
                    .get_range(&record.blob_key, offset + piece.start..offset + piece.end)
                    .await
                    .map_err(|e| instance_storage_error(&record, e))?;
                if bytes.len() as u64 != piece.end - piece.start {
                    return Err(ServiceError::Internal(format!(
                        "the stored file of instance {} is shorter than its bulk value",
                        record.sop_instance_uid
                    )));
                }
                let mut bytes = match swap {
                    Some(width) => {
                        let mut owned = bytes.to_vec();
                        swap_words(&mut owned, width);
                        Bytes::from(owned)
                    }
                    None => bytes,
                };
                // Trim what alignment added before the range's start and after its end.
                let head = range.start.saturating_sub(piece.start) as usize;
                let tail = piece.end.saturating_sub(range.end) as usize;
                bytes = bytes.slice(head..bytes.len() - tail);
                Ok(bytes)
            }
        })
        .buffered(2)
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::ByteRangeRequest::{From, FromTo, Last};

    #[test]
    fn ranges_are_clipped_to_the_value_and_empty_ones_are_unsatisfiable() {
        assert_eq!(From(2).within(10), Some(2..10));
        assert_eq!(FromTo(2, 4).within(10), Some(2..5));
        assert_eq!(FromTo(2, 400).within(10), Some(2..10));
        assert_eq!(Last(3).within(10), Some(7..10));
        assert_eq!(Last(30).within(10), Some(0..10));
        assert_eq!(From(10).within(10), None);
        assert_eq!(Last(0).within(10), None);
        assert_eq!(From(0).within(0), None);
        assert_eq!(FromTo(u64::MAX, u64::MAX).within(10), None);
    }
}
