//! WADO-RS: instances, metadata and frames.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use dicomweb_index::{InstanceRecord, Scope};
use dicomweb_instance::PixelDataLayout;
use dicomweb_storage::ByteStream;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::{Result, ServiceError, StudiesService, check_scope, describe_scope};

/// Explicit VR Little Endian: the transfer syntax meant when a client names none.
pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1.99";
const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// The transfer syntax a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferSyntaxRequest {
    /// `transfer-syntax=*`: whatever is stored.
    AsStored,
    /// A named transfer syntax (the default, when none is named, is Explicit VR Little Endian).
    Uid(String),
}

impl Default for TransferSyntaxRequest {
    fn default() -> Self {
        TransferSyntaxRequest::Uid(EXPLICIT_VR_LITTLE_ENDIAN.to_owned())
    }
}

/// One instance file, ready to stream.
pub struct InstanceContent {
    /// What the catalogue knows of it.
    pub record: InstanceRecord,
    /// The Part 10 bytes.
    pub body: ByteStream,
}

/// How many batches of a multi-instance retrieve are read ahead of the one being sent: a series of small files
/// is bound by one file open and read after another, not by the bytes.
const READ_AHEAD: usize = 2;

/// Consecutive small instances are read in batches of this many, one call to storage each
/// ([`BlobStore::get_whole_many`](dicomweb_storage::BlobStore::get_whole_many): on local disk one trip to the
/// blocking pool for the batch, whose hand-offs cost more than reading 10 KiB).
const READ_BATCH: usize = 16;

/// Instances up to this size are read whole while they wait their turn (at most [`READ_AHEAD`] batches per
/// retrieve, so 8 MiB); larger ones are streamed when their turn comes.
const READ_AHEAD_MAX_BYTES: u64 = 256 * 1024;

/// A metadata response body and its entity tag.
#[derive(Debug, Clone)]
pub struct MetadataDocument {
    /// A JSON array of DICOM JSON datasets.
    pub body: Bytes,
    /// Strong entity tag, quoted, e.g. `"3f2a…"`.
    pub etag: String,
}

/// Frames of one instance.
#[derive(Debug, Clone)]
pub struct FrameData {
    /// Transfer syntax the frame bytes are in.
    pub transfer_syntax_uid: String,
    /// Media type that labels each frame (PS3.18 Table 8.7.3-2), e.g. `application/octet-stream`, `image/jpeg`.
    pub media_type: &'static str,
    /// The frames in the order requested.
    pub frames: Vec<Bytes>,
}

/// The media type of a frame (bulk data) encoded in `transfer_syntax_uid` (PS3.18 Table 8.7.3-2/-3).
pub fn media_type_of_transfer_syntax(transfer_syntax_uid: &str) -> &'static str {
    match transfer_syntax_uid {
        "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.57"
        | "1.2.840.10008.1.2.4.70" => "image/jpeg",
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "image/jls",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "image/jp2",
        "1.2.840.10008.1.2.4.92" | "1.2.840.10008.1.2.4.93" => "image/jpx",
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => {
            "image/jphc"
        }
        "1.2.840.10008.1.2.5" => "image/dicom-rle",
        "1.2.840.10008.1.2.4.100" | "1.2.840.10008.1.2.4.101" => "video/mpeg",
        "1.2.840.10008.1.2.4.102"
        | "1.2.840.10008.1.2.4.103"
        | "1.2.840.10008.1.2.4.104"
        | "1.2.840.10008.1.2.4.105"
        | "1.2.840.10008.1.2.4.106" => "video/mp4",
        "1.2.840.10008.1.2.4.107" | "1.2.840.10008.1.2.4.108" => "video/H265",
        _ => "application/octet-stream",
    }
}

/// A failed read of an instance's file: a missing file is a missing instance.
fn instance_storage_error(
    record: &InstanceRecord,
    error: dicomweb_storage::StorageError,
) -> ServiceError {
    match error {
        dicomweb_storage::StorageError::NotFound { .. } => {
            ServiceError::NotFound(format!("instance {} not found", record.sop_instance_uid))
        }
        other => ServiceError::Storage(other),
    }
}

impl StudiesService {
    /// The catalogued instances of `scope`, in a stable order; `NotFound` when there are none.
    pub async fn instances_in(&self, scope: &Scope) -> Result<Vec<InstanceRecord>> {
        check_scope(scope)?;
        let records = self.catalogue.instances(scope).await?;
        if records.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "{} not found",
                describe_scope(scope)
            )));
        }
        Ok(records)
    }

    /// Checks that every instance can be served whole in the requested transfer syntax (no transcoding yet).
    pub fn check_instances_transfer_syntax(
        &self,
        records: &[InstanceRecord],
        requested: &TransferSyntaxRequest,
    ) -> Result<()> {
        let TransferSyntaxRequest::Uid(wanted) = requested else {
            return Ok(());
        };
        match records.iter().find(|r| r.transfer_syntax_uid != *wanted) {
            None => Ok(()),
            Some(r) => Err(ServiceError::NotAcceptable(format!(
                "instance {} is stored in transfer syntax {} and transcoding to {} is not supported; \
                 ask for transfer-syntax=* to receive it as stored",
                r.sop_instance_uid, r.transfer_syntax_uid, wanted
            ))),
        }
    }

    /// Opens the stored file of an instance.
    pub async fn open_instance(&self, record: InstanceRecord) -> Result<InstanceContent> {
        let (_meta, body) = self
            .blobs
            .get(&record.blob_key)
            .await
            .map_err(|e| instance_storage_error(&record, e))?;
        Ok(InstanceContent { record, body })
    }

    /// The stored files of `records`, in order, for a multi-instance retrieve: small ones are read whole in
    /// batches of [`READ_BATCH`], up to [`READ_AHEAD`] batches ahead of the one being sent; a large one is
    /// opened when its turn comes and streamed.
    pub fn open_instances(
        self: &Arc<Self>,
        records: Vec<InstanceRecord>,
    ) -> impl Stream<Item = Result<InstanceContent>> + Send + 'static {
        let small = |record: &InstanceRecord| record.size <= READ_AHEAD_MAX_BYTES;
        let mut batches: Vec<Vec<InstanceRecord>> = Vec::new();
        for record in records {
            match batches.last_mut() {
                Some(batch) if small(&record) && small(&batch[0]) && batch.len() < READ_BATCH => {
                    batch.push(record)
                }
                _ => batches.push(vec![record]),
            }
        }
        let service = self.clone();
        futures::stream::iter(batches)
            .map(move |mut batch| {
                let service = service.clone();
                async move {
                    if !small(&batch[0]) {
                        return vec![service.open_instance(batch.remove(0)).await];
                    }
                    let asked = batch
                        .iter()
                        .map(|record| (record.blob_key.clone(), record.size))
                        .collect();
                    let read = service.blobs.get_whole_many(asked).await;
                    batch
                        .into_iter()
                        .zip(read)
                        .map(|(record, bytes)| match bytes {
                            Ok(bytes) => Ok(InstanceContent {
                                record,
                                body: dicomweb_storage::body_from_bytes(bytes),
                            }),
                            Err(e) => Err(instance_storage_error(&record, e)),
                        })
                        .collect()
                }
            })
            .buffered(READ_AHEAD)
            .flat_map(futures::stream::iter)
    }

    /// Metadata of every instance in `scope`, precomputed at store time, as one JSON array.
    pub async fn metadata(&self, scope: &Scope) -> Result<MetadataDocument> {
        let records = self.instances_in(scope).await?;
        let etag = metadata_etag(&records);
        let total: usize = records.iter().map(|r| r.metadata.len() + 1).sum();
        let mut body = Vec::with_capacity(total + 2);
        body.push(b'[');
        for (i, record) in records.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&record.metadata);
        }
        body.push(b']');
        Ok(MetadataDocument {
            body: Bytes::from(body),
            etag,
        })
    }

    /// The entity tag the metadata of `scope` would have, without building the body (for `If-None-Match`).
    pub async fn metadata_etag(&self, scope: &Scope) -> Result<String> {
        Ok(metadata_etag(&self.instances_in(scope).await?))
    }

    /// Frames (1-based numbers) of one instance, read by byte ranges through the layout recorded at store time.
    pub async fn frames(
        &self,
        scope: &Scope,
        numbers: &[u32],
        requested: &TransferSyntaxRequest,
    ) -> Result<FrameData> {
        let Scope::Instance(..) = scope else {
            return Err(ServiceError::InvalidInput(
                "frames are addressed within one instance".into(),
            ));
        };
        let record = self
            .instances_in(scope)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                ServiceError::NotFound(format!("{} not found", describe_scope(scope)))
            })?;
        let layout: PixelDataLayout = match &record.pixel_layout {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                ServiceError::Internal(format!("stored frame layout is unreadable: {e}"))
            })?,
            None => {
                return Err(ServiceError::NotFound(format!(
                    "instance {} has no pixel data, so it has no frames",
                    record.sop_instance_uid
                )));
            }
        };
        let count = layout.number_of_frames().unwrap_or(0);
        if numbers.is_empty() {
            return Err(ServiceError::InvalidInput("no frame number given".into()));
        }
        if let Some(bad) = numbers.iter().find(|&&n| n == 0 || n > count) {
            return Err(ServiceError::NotFound(format!(
                "frame {bad} does not exist: instance {} has {count} frame(s), numbered from 1",
                record.sop_instance_uid
            )));
        }

        let stored = record.transfer_syntax_uid.as_str();
        let (ranges_per_frame, transfer_syntax_uid): (Vec<Vec<Range<u64>>>, String) = match &layout
        {
            PixelDataLayout::Native {
                offset,
                frame_length,
                ..
            } => {
                // Native pixel bytes do not depend on how the dataset around them is encoded, except byte order.
                let native_ts = if stored == EXPLICIT_VR_BIG_ENDIAN {
                    EXPLICIT_VR_BIG_ENDIAN
                } else {
                    EXPLICIT_VR_LITTLE_ENDIAN
                };
                if let TransferSyntaxRequest::Uid(wanted) = requested
                    && wanted != native_ts
                    && !(wanted == IMPLICIT_VR_LITTLE_ENDIAN
                        && native_ts == EXPLICIT_VR_LITTLE_ENDIAN)
                {
                    return Err(not_acceptable_frames(&record, native_ts, wanted));
                }
                let ranges = numbers
                    .iter()
                    .map(|&n| {
                        let start = offset + u64::from(n - 1) * frame_length;
                        // One frame of native pixel data is one contiguous range.
                        #[allow(clippy::single_range_in_vec_init)]
                        let ranges = vec![start..start + frame_length];
                        ranges
                    })
                    .collect();
                (ranges, native_ts.to_owned())
            }
            PixelDataLayout::Encapsulated { frames } => {
                if let TransferSyntaxRequest::Uid(wanted) = requested
                    && wanted != stored
                {
                    return Err(not_acceptable_frames(&record, stored, wanted));
                }
                let ranges = numbers
                    .iter()
                    .map(|&n| {
                        frames
                            .get((n - 1) as usize)
                            .map(|fragments| fragments.iter().map(|&(s, e)| s..e).collect())
                            .unwrap_or_default()
                    })
                    .collect();
                (ranges, stored.to_owned())
            }
            PixelDataLayout::NotRangeReadable => {
                let reason = if stored == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN {
                    "its data set is deflated"
                } else {
                    "its frames are not byte-aligned"
                };
                return Err(ServiceError::NotAcceptable(format!(
                    "frames of instance {} cannot be extracted yet because {reason}; retrieve the whole instance",
                    record.sop_instance_uid
                )));
            }
        };

        let flat: Vec<Range<u64>> = ranges_per_frame.iter().flatten().cloned().collect();
        let mut pieces = self
            .blobs
            .get_ranges(&record.blob_key, &flat)
            .await?
            .into_iter();
        let mut frames = Vec::with_capacity(ranges_per_frame.len());
        for ranges in &ranges_per_frame {
            let parts: Vec<Bytes> = pieces.by_ref().take(ranges.len()).collect();
            frames.push(match parts.len() {
                1 => parts.into_iter().next().unwrap_or_default(),
                _ => Bytes::from(parts.concat()),
            });
        }
        Ok(FrameData {
            media_type: media_type_of_transfer_syntax(&transfer_syntax_uid),
            transfer_syntax_uid,
            frames,
        })
    }
}

fn not_acceptable_frames(record: &InstanceRecord, available: &str, wanted: &str) -> ServiceError {
    ServiceError::NotAcceptable(format!(
        "frames of instance {} are available in transfer syntax {available}; transcoding to {wanted} is not \
         supported; ask for transfer-syntax=* to receive them as stored",
        record.sop_instance_uid
    ))
}

/// Entity tag of a metadata response: stored instances are immutable, so their identities and store times
/// determine the content.
fn metadata_etag(records: &[InstanceRecord]) -> String {
    let mut hasher = Sha256::new();
    for r in records {
        hasher.update(r.sop_instance_uid.as_bytes());
        hasher.update([0]);
        hasher.update(r.stored_at.unix_timestamp_nanos().to_le_bytes());
    }
    let digest = hasher.finalize();
    format!("\"{}\"", hex::encode(&digest[..16]))
}
