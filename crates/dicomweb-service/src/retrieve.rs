//! WADO-RS: instances, metadata and frames.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use dicomweb_catalogue::{Catalogue, InstancePath};
use dicomweb_index::{InstanceRecord, Scope};
use dicomweb_instance::PixelDataLayout;
use dicomweb_storage::ByteStream;
use futures::{Stream, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::{Result, ServiceError, StudiesService, check_scope, describe_scope};

/// Explicit VR Little Endian: the transfer syntax meant when a client names none.
pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1.99";
pub(crate) const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

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

/// One acceptable form of frames, from a client's `Accept`: a transfer syntax (or as stored), and the media
/// type the frames must have, if one was named (`image/jp2`, `image/jls`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRequest {
    pub transfer_syntax: TransferSyntaxRequest,
    pub media_type: Option<String>,
}

impl From<TransferSyntaxRequest> for FrameRequest {
    fn from(transfer_syntax: TransferSyntaxRequest) -> Self {
        FrameRequest {
            transfer_syntax,
            media_type: None,
        }
    }
}

/// The transfer syntax frames of `media_type` are sent in when a request names none (PS3.18 Table 8.7.3-2).
pub fn default_transfer_syntax_of_media_type(media_type: &str) -> Option<&'static str> {
    match media_type.to_ascii_lowercase().as_str() {
        "application/octet-stream" => Some(EXPLICIT_VR_LITTLE_ENDIAN),
        "image/jpeg" => Some(dicomweb_pixel::JPEG_BASELINE),
        "image/jls" => Some(dicomweb_pixel::JPEG_LS_LOSSLESS),
        "image/jp2" => Some(dicomweb_pixel::JPEG_2000_LOSSLESS),
        "image/dicom-rle" => Some(dicomweb_pixel::RLE_LOSSLESS),
        "image/jphc" => Some(dicomweb_pixel::HTJ2K_LOSSLESS),
        _ => None,
    }
}

/// One instance file, ready to stream.
pub struct InstanceContent {
    /// What the catalogue knows of it; `transfer_syntax_uid` is that of the body, and `size` its length when
    /// `length_known`.
    pub record: InstanceRecord,
    /// The Part 10 bytes.
    pub body: ByteStream,
    /// Whether the body's length is known before it is sent (it is not for an instance transcoded frame by
    /// frame to a compressed syntax).
    pub length_known: bool,
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

/// Every transfer syntax an instance may be transcoded to, in the order a 406 lists them.
const TRANSCODING_TARGETS: [&str; 9] = [
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    dicomweb_pixel::JPEG_2000_LOSSLESS,
    dicomweb_pixel::HTJ2K_LOSSLESS,
    dicomweb_pixel::JPEG_LS_LOSSLESS,
    dicomweb_pixel::JPEG_LOSSLESS_SV1,
    dicomweb_pixel::RLE_LOSSLESS,
    dicomweb_pixel::JPEG_BASELINE,
];

/// The largest instance a retrieve transcodes: it is read and re-encoded whole in memory (about twice its
/// size), so this bounds one transcode's memory; at most one transcode per core runs at once.
pub const MAX_TRANSCODE_BYTES: u64 = 256 * 1024 * 1024;

/// Transcodes running at once: one per core (CPU work, off the async workers); others wait their turn.
fn transcode_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from))
    })
}

/// The largest decoded pixel data a transcode produces (a compressed instance decodes to many times its size).
pub const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;

/// Runs CPU-heavy pixel work on the blocking pool, at most one per core at a time. The outer error is the
/// pool's (an internal failure); the inner result is the work's own.
pub(crate) async fn on_codec_pool<T: Send + 'static, E: Send + 'static>(
    work: impl FnOnce() -> std::result::Result<T, E> + Send + 'static,
) -> Result<std::result::Result<T, E>> {
    let pool_failed = |e: String| ServiceError::Internal(format!("the codec pool failed: {e}"));
    let _permit = transcode_permits()
        .acquire()
        .await
        .map_err(|e| pool_failed(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| pool_failed(e.to_string()))
}

/// What a failed transcode of `record` tells the client: what could not be produced is a 406 (nothing was
/// sent yet), anything else a 500.
pub(crate) fn transcode_failure(
    record: &InstanceRecord,
    wanted: &str,
    error: dicomweb_pixel::TranscodeError,
) -> ServiceError {
    use dicomweb_pixel::TranscodeError::{TooLarge, Undecodable, Unencodable, Unsupported};
    let message = format!(
        "instance {} could not be transcoded from {} to {wanted}: {error}; ask for transfer-syntax=* to \
         receive it as stored",
        record.sop_instance_uid, record.transfer_syntax_uid
    );
    match error {
        Unsupported { .. } | TooLarge { .. } | Undecodable(_) | Unencodable { .. } => {
            ServiceError::NotAcceptable(message)
        }
        _ => ServiceError::Internal(message),
    }
}

/// A metadata response reads the catalogue a few instances at a time, up to this many bytes of metadata per
/// read (and at least one instance, itself at most [`crate::MAX_INSTANCE_METADATA_BYTES`]): what one response
/// holds in memory, however large the study. A series of 600 ordinary instances (about 5 KiB each) is one read.
pub const METADATA_READ_BUDGET: usize = 4 * 1024 * 1024;

/// A metadata response body and its entity tag.
pub struct MetadataDocument {
    /// A JSON array of DICOM JSON datasets.
    pub body: MetadataBody,
    /// Strong entity tag, quoted, e.g. `"3f2a…"`, of the instances listed when the response began.
    pub etag: String,
}

/// The body of a [`MetadataDocument`].
pub enum MetadataBody {
    /// The whole array, read in one go (the usual case: up to [`METADATA_READ_BUDGET`] bytes).
    Complete(Bytes),
    /// The array in pieces, read from the catalogue as the body is sent ([`METADATA_READ_BUDGET`] bytes at a
    /// time). An instance deleted while the body is sent is left out; one stored again meanwhile is sent as
    /// it is now.
    Streamed(futures::stream::BoxStream<'static, Result<Bytes>>),
}

impl std::fmt::Debug for MetadataDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = match &self.body {
            MetadataBody::Complete(bytes) => format!("{} bytes", bytes.len()),
            MetadataBody::Streamed(_) => "streamed".to_owned(),
        };
        f.debug_struct("MetadataDocument")
            .field("etag", &self.etag)
            .field("body", &body)
            .finish()
    }
}

impl MetadataDocument {
    /// The whole body in memory (for callers that know the scope is small, and tests).
    pub async fn into_bytes(self) -> Result<Bytes> {
        match self.body {
            MetadataBody::Complete(bytes) => Ok(bytes),
            MetadataBody::Streamed(pieces) => {
                let pieces: Vec<Bytes> = pieces.try_collect().await?;
                Ok(Bytes::from(pieces.concat()))
            }
        }
    }
}

/// Responses whose frames total at most this many bytes are read in one call to storage before the answer
/// starts, as one body with a length (the common case of one frame or a few); larger ones are streamed.
pub const FRAMES_READ_AT_ONCE_MAX_BYTES: u64 = 2 * 1024 * 1024;

/// A streamed frame response reads storage in pieces of at most this many bytes: consecutive frames up to
/// this size share one read, a larger frame is read in ranges of this size. With [`READ_AHEAD`], a response
/// holds a few of them in memory, however many frames it sends and however large they are.
pub(crate) const FRAME_READ_CHUNK: u64 = 1024 * 1024;

/// Frames of one instance.
#[derive(Debug)]
pub struct FrameData {
    /// Transfer syntax the frame bytes are in.
    pub transfer_syntax_uid: String,
    /// Media type that labels each frame (PS3.18 Table 8.7.3-2), e.g. `application/octet-stream`, `image/jpeg`.
    pub media_type: &'static str,
    /// The frames in the order requested.
    pub frames: FrameBodies,
}

/// The bytes of one frame of a streamed response.
pub struct FrameBody {
    /// Its length in bytes.
    pub len: u64,
    /// Its bytes, read from storage as the stream is polled.
    pub body: ByteStream,
}

/// The frames of a response, in the order requested.
pub enum FrameBodies {
    /// At most [`FRAMES_READ_AT_ONCE_MAX_BYTES`] in all: already read, in one call to storage.
    Read(Vec<Bytes>),
    /// More than that: each frame is read when its turn comes (memory bounded by [`FRAME_READ_CHUNK`] and
    /// [`READ_AHEAD`], not by the number or size of the frames).
    Streamed(futures::stream::BoxStream<'static, Result<FrameBody>>),
}

impl std::fmt::Debug for FrameBodies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameBodies::Read(frames) => f.debug_tuple("Read").field(&frames.len()).finish(),
            FrameBodies::Streamed(_) => f.write_str("Streamed"),
        }
    }
}

impl FrameData {
    /// Every frame in memory, in order: for callers that know the frames are few and small (tests).
    pub async fn into_frames(self) -> Result<Vec<Bytes>> {
        match self.frames {
            FrameBodies::Read(frames) => Ok(frames),
            FrameBodies::Streamed(stream) => {
                stream
                    .then(|frame| async move {
                        dicomweb_storage::read_to_bytes(frame?.body)
                            .await
                            .map_err(ServiceError::Storage)
                    })
                    .try_collect()
                    .await
            }
        }
    }
}

/// How a streamed frame response reads storage: several whole small frames in one call, or one large frame
/// in ranges of at most [`FRAME_READ_CHUNK`] bytes.
enum FrameRead {
    Together(Vec<Vec<Range<u64>>>),
    InPieces(Vec<Range<u64>>),
}

fn frame_len(ranges: &[Range<u64>]) -> u64 {
    ranges.iter().map(|r| r.end - r.start).sum()
}

/// Groups consecutive frames into reads of at most [`FRAME_READ_CHUNK`] bytes (a larger frame on its own).
fn plan_frame_reads(frames: Vec<Vec<Range<u64>>>) -> Vec<FrameRead> {
    let mut reads: Vec<FrameRead> = Vec::new();
    let mut pending: Vec<Vec<Range<u64>>> = Vec::new();
    let mut pending_len = 0;
    for ranges in frames {
        let len = frame_len(&ranges);
        if len > FRAME_READ_CHUNK {
            if !pending.is_empty() {
                reads.push(FrameRead::Together(std::mem::take(&mut pending)));
                pending_len = 0;
            }
            let pieces = ranges
                .iter()
                .flat_map(|r| {
                    (r.start..r.end)
                        .step_by(FRAME_READ_CHUNK as usize)
                        .map(move |s| s..(s + FRAME_READ_CHUNK).min(r.end))
                })
                .collect();
            reads.push(FrameRead::InPieces(pieces));
            continue;
        }
        if pending_len + len > FRAME_READ_CHUNK && !pending.is_empty() {
            reads.push(FrameRead::Together(std::mem::take(&mut pending)));
            pending_len = 0;
        }
        pending_len += len;
        pending.push(ranges);
    }
    if !pending.is_empty() {
        reads.push(FrameRead::Together(pending));
    }
    reads
}

/// One frame from the pieces `get_ranges` returned for its ranges.
fn join_pieces(parts: Vec<Bytes>) -> Bytes {
    match parts.len() {
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => Bytes::from(parts.concat()),
    }
}

/// Reads whole frames (each given by its byte ranges) of one blob in one call to storage.
pub(crate) async fn read_frames_together(
    blobs: &dyn dicomweb_storage::BlobStore,
    key: &str,
    frames: &[Vec<Range<u64>>],
) -> std::result::Result<Vec<Bytes>, dicomweb_storage::StorageError> {
    let flat: Vec<Range<u64>> = frames.iter().flatten().cloned().collect();
    let mut pieces = blobs.get_ranges(key, &flat).await?.into_iter();
    Ok(frames
        .iter()
        .map(|ranges| join_pieces(pieces.by_ref().take(ranges.len()).collect()))
        .collect())
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
pub(crate) fn instance_storage_error(
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
    /// The catalogued instances of `scope`, in a stable order, without their metadata (a retrieve reads files;
    /// [`StudiesService::metadata`] reads metadata a few instances at a time); `NotFound` when there are none.
    pub async fn instances_in(&self, scope: &Scope) -> Result<Vec<InstanceRecord>> {
        check_scope(scope)?;
        let records = self.catalogue.instance_listing(scope).await?;
        if records.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "{} not found",
                describe_scope(scope)
            )));
        }
        Ok(records)
    }

    /// For each instance, the first of the transfer syntaxes `acceptable` (the client's, best first) it can be
    /// sent in whole: as stored, or transcoded ([`dicomweb_pixel::why_not_transcodable`]: decoded where a codec
    /// is at hand, encoded for the pixel formats an encoder takes; instances up to [`MAX_TRANSCODE_BYTES`]).
    /// `NotAcceptable` names the first instance that can be sent in none of them, why, and what it can be sent
    /// in. Encoding needs the instance's Image Pixel attributes, read from its stored metadata.
    pub async fn choose_transfer_syntaxes(
        &self,
        records: Vec<InstanceRecord>,
        acceptable: &[TransferSyntaxRequest],
    ) -> Result<Vec<(InstanceRecord, TransferSyntaxRequest)>> {
        let mut chosen = Vec::with_capacity(records.len());
        for record in records {
            let mut refusals = Vec::new();
            let mut choice = None;
            for request in acceptable {
                match self.why_not_sendable(&record, request).await? {
                    None => {
                        choice = Some(request.clone());
                        break;
                    }
                    Some(reason) => refusals.push(reason),
                }
            }
            match choice {
                Some(request) => chosen.push((record, request)),
                None => {
                    let available = self.available_syntaxes(&record).await?;
                    return Err(ServiceError::NotAcceptable(format!(
                        "instance {} (stored in {}) cannot be sent in the transfer syntax asked: {}; it is                          available in {}, or as stored with transfer-syntax=*",
                        record.sop_instance_uid,
                        record.transfer_syntax_uid,
                        refusals.join("; "),
                        available.join(", ")
                    )));
                }
            }
        }
        Ok(chosen)
    }

    /// Why `record` cannot be sent whole in `request`, or `None` when it can.
    async fn why_not_sendable(
        &self,
        record: &InstanceRecord,
        request: &TransferSyntaxRequest,
    ) -> Result<Option<String>> {
        let TransferSyntaxRequest::Uid(wanted) = request else {
            return Ok(None);
        };
        let stored = record.transfer_syntax_uid.as_str();
        if stored == wanted {
            return Ok(None);
        }
        if !dicomweb_pixel::can_transcode(stored, wanted) {
            return Ok(dicomweb_pixel::why_not_transcodable(stored, wanted, None)
                .map(|reason| format!("{wanted}: {reason}")));
        }
        if record.size > MAX_TRANSCODE_BYTES && !self.streams_transcode(record, wanted) {
            return Ok(Some(format!(
                "{wanted}: the instance ({} bytes) is larger than the {MAX_TRANSCODE_BYTES} bytes this server \
                 transcodes in memory, and cannot be transcoded frame by frame ({})",
                record.size,
                dicomweb_pixel::why_not_streamable(&record.transfer_syntax_uid, wanted)
                    .unwrap_or_else(|| "its frames' byte ranges are not known".into())
            )));
        }
        if !dicomweb_pixel::can_encode(wanted) {
            return Ok(None);
        }
        let geometry = self.stored_geometry(record).await?;
        Ok(
            dicomweb_pixel::why_not_transcodable(stored, wanted, geometry.as_ref())
                .map(|reason| format!("{wanted}: {reason}")),
        )
    }

    /// The Image Pixel attributes of an instance from its stored metadata; `None` if it has none (no image).
    async fn stored_geometry(
        &self,
        record: &InstanceRecord,
    ) -> Result<Option<dicomweb_pixel::FrameGeometry>> {
        let metadata = self.stored_metadata(record).await?;
        Ok(frame_geometry(&metadata, &record.sop_instance_uid).ok())
    }

    /// The transfer syntaxes an instance can be sent in whole: as stored, then what it transcodes to.
    async fn available_syntaxes(&self, record: &InstanceRecord) -> Result<Vec<String>> {
        let stored = record.transfer_syntax_uid.as_str();
        let mut available = vec![format!("{stored} (as stored)")];
        let geometry = self.stored_geometry(record).await?;
        for to in TRANSCODING_TARGETS {
            if to != stored
                && (record.size <= MAX_TRANSCODE_BYTES || self.streams_transcode(record, to))
                && dicomweb_pixel::why_not_transcodable(stored, to, geometry.as_ref()).is_none()
            {
                available.push(to.to_owned());
            }
        }
        Ok(available)
    }

    /// Opens the stored file of an instance, in transfer syntax `requested` (checked before with
    /// [`StudiesService::choose_transfer_syntaxes`]). The content's record says what is sent: its
    /// `transfer_syntax_uid` and `size` are those of the body. An instance up to
    /// [`crate::ServiceConfig::transcode_whole_max_bytes`] (or one that cannot be streamed) is read and
    /// re-encoded whole first, on a bounded pool; a larger one is transcoded frame by frame as it is sent
    /// (see `streamed_transcode.rs`).
    pub async fn open_instance_as(
        &self,
        record: InstanceRecord,
        requested: &TransferSyntaxRequest,
    ) -> Result<InstanceContent> {
        match requested {
            TransferSyntaxRequest::Uid(wanted)
                if *wanted != record.transfer_syntax_uid
                    && self.streams_transcode(&record, wanted) =>
            {
                self.open_streamed_transcode(record, wanted.clone()).await
            }
            TransferSyntaxRequest::Uid(wanted) if *wanted != record.transfer_syntax_uid => {
                let wanted = wanted.clone();
                let stored = self.read_whole(&record).await?;
                let target = wanted.clone();
                let transcoded = on_codec_pool(move || {
                    dicomweb_pixel::transcode(&stored, &target, MAX_DECODED_BYTES).map(Bytes::from)
                })
                .await?
                .map_err(|e| transcode_failure(&record, &wanted, e))?;
                let mut record = record;
                record.transfer_syntax_uid = wanted;
                record.size = transcoded.len() as u64;
                Ok(InstanceContent {
                    record,
                    body: dicomweb_storage::body_from_bytes(transcoded),
                    length_known: true,
                })
            }
            _ => self.open_instance(record).await,
        }
    }

    /// Opens the stored file of an instance, as stored.
    pub async fn open_instance(&self, record: InstanceRecord) -> Result<InstanceContent> {
        let (_meta, body) = self
            .blobs
            .get(&record.blob_key)
            .await
            .map_err(|e| instance_storage_error(&record, e))?;
        Ok(InstanceContent {
            record,
            body,
            length_known: true,
        })
    }

    /// The stored files of `records`, in order, each in the transfer syntax chosen for it
    /// ([`StudiesService::choose_transfer_syntaxes`]), for a multi-instance retrieve: small ones sent as
    /// stored are read whole in batches of [`READ_BATCH`], up to [`READ_AHEAD`] batches ahead of the one being
    /// sent; a large one is opened when its turn comes and streamed; one to transcode is read and re-encoded
    /// when its turn comes.
    pub fn open_instances(
        self: &Arc<Self>,
        records: Vec<(InstanceRecord, TransferSyntaxRequest)>,
    ) -> impl Stream<Item = Result<InstanceContent>> + Send + 'static {
        // The syntax an instance must be transcoded to, if it is not stored in it.
        let transcode_to =
            |(record, requested): &(InstanceRecord, TransferSyntaxRequest)| match requested {
                TransferSyntaxRequest::Uid(wanted) if *wanted != record.transfer_syntax_uid => {
                    Some(requested.clone())
                }
                _ => None,
            };
        // An instance to transcode is read whole and re-encoded when its turn comes, alone in its batch.
        let small = move |entry: &(InstanceRecord, TransferSyntaxRequest)| {
            entry.0.size <= READ_AHEAD_MAX_BYTES && transcode_to(entry).is_none()
        };
        let mut batches: Vec<Vec<(InstanceRecord, TransferSyntaxRequest)>> = Vec::new();
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
                        let entry = batch.remove(0);
                        return vec![match transcode_to(&entry) {
                            Some(wanted) => service.open_instance_as(entry.0, &wanted).await,
                            None => service.open_instance(entry.0).await,
                        }];
                    }
                    let asked = batch
                        .iter()
                        .map(|(record, _)| (record.blob_key.clone(), record.size))
                        .collect();
                    let read = service.blobs.get_whole_many(asked).await;
                    batch
                        .into_iter()
                        .map(|(record, _)| record)
                        .zip(read)
                        .map(|(record, bytes)| match bytes {
                            Ok(bytes) => Ok(InstanceContent {
                                record,
                                body: dicomweb_storage::body_from_bytes(bytes),
                                length_known: true,
                            }),
                            Err(e) => Err(instance_storage_error(&record, e)),
                        })
                        .collect()
                }
            })
            .buffered(READ_AHEAD)
            .flat_map(futures::stream::iter)
    }

    /// Metadata of every instance in `scope`, precomputed at store time, as one JSON array: whole if one read
    /// of [`METADATA_READ_BUDGET`] bytes holds it, otherwise streamed from the catalogue
    /// ([`MetadataBody`]). `NotFound` when the scope has no instance.
    ///
    /// `base_url` is the service root as the client addressed it (e.g. `https://host/v2`): the `BulkDataURI`s of
    /// the documents are under it (see [`served_metadata`]), and so the entity tag depends on it.
    pub async fn metadata(&self, scope: &Scope, base_url: &str) -> Result<MetadataDocument> {
        let records = self.instances_in(scope).await?;
        let etag = metadata_etag(&records, base_url);
        let paths: Vec<InstancePath> = records.iter().map(InstancePath::of).collect();
        drop(records);
        let mut reader = MetadataReader {
            catalogue: self.catalogue.clone(),
            paths,
            next: 0,
            any_written: false,
            closed: false,
            budget: METADATA_READ_BUDGET,
            base_url: base_url.to_owned(),
        };
        let first = reader.next_piece().await?;
        let body = if reader.closed {
            MetadataBody::Complete(first)
        } else {
            let rest = futures::stream::unfold(reader, |mut reader| async move {
                if reader.closed {
                    return None;
                }
                let piece = reader.next_piece().await;
                if piece.is_err() {
                    reader.closed = true;
                }
                Some((piece, reader))
            });
            MetadataBody::Streamed(
                futures::stream::once(async { Ok(first) })
                    .chain(rest)
                    .boxed(),
            )
        };
        Ok(MetadataDocument { body, etag })
    }

    /// The entity tag the metadata of `scope` would have, without building the body (for `If-None-Match`).
    pub async fn metadata_etag(&self, scope: &Scope, base_url: &str) -> Result<String> {
        Ok(metadata_etag(&self.instances_in(scope).await?, base_url))
    }

    /// Frames (1-based numbers) of one instance, read by byte ranges through the layout recorded at store time,
    /// in the first of the forms `acceptable` (the client's, best first) they can be given in: as stored (native
    /// frames in little endian unless stored big endian), decoded, encoded, or both (see
    /// [`StudiesService::frame_target`]).
    pub async fn frames(
        &self,
        scope: &Scope,
        numbers: &[u32],
        acceptable: &[FrameRequest],
    ) -> Result<FrameData> {
        let record = self
            .the_instance(scope, "frames are addressed within one instance")
            .await?;
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
        let deflated = matches!(layout, PixelDataLayout::NotRangeReadable)
            && record.transfer_syntax_uid == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN;
        let count = if deflated {
            // No byte ranges were recorded: the frames are counted from the metadata.
            let metadata = self.stored_metadata(&record).await?;
            metadata["00280008"]["Value"][0]
                .as_u64()
                .or_else(|| {
                    metadata["00280008"]["Value"][0]
                        .as_str()
                        .and_then(|s| s.trim().parse().ok())
                })
                .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX))
        } else {
            layout.number_of_frames().unwrap_or(0)
        };
        if numbers.is_empty() {
            return Err(ServiceError::InvalidInput("no frame number given".into()));
        }
        if let Some(bad) = numbers.iter().find(|&&n| n == 0 || n > count) {
            return Err(ServiceError::NotFound(format!(
                "frame {bad} does not exist: instance {} has {count} frame(s), numbered from 1",
                record.sop_instance_uid
            )));
        }
        // Each frame may be asked once (PS3.18 lists "non-duplicate frame numbers"), so a response holds at
        // most the instance's frames: a short URL repeating one large frame cannot ask for gigabytes.
        if numbers.len() > 1 {
            let mut sorted = numbers.to_vec();
            sorted.sort_unstable();
            if let Some(twice) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(ServiceError::InvalidInput(format!(
                    "frame list asks for {} frames and names frame {} more than once: each frame may be \
                     asked once, so at most the {count} frame(s) of instance {} per request",
                    numbers.len(),
                    twice[0],
                    record.sop_instance_uid
                )));
            }
        }

        let stored = record.transfer_syntax_uid.clone();
        // What the frames are as read from storage: native frames are little endian unless stored big endian.
        let as_read = match &layout {
            PixelDataLayout::Native { .. } if stored == EXPLICIT_VR_BIG_ENDIAN => {
                EXPLICIT_VR_BIG_ENDIAN
            }
            PixelDataLayout::Native { .. } => EXPLICIT_VR_LITTLE_ENDIAN,
            PixelDataLayout::Encapsulated { .. } => stored.as_str(),
            PixelDataLayout::NotRangeReadable if deflated => EXPLICIT_VR_LITTLE_ENDIAN,
            PixelDataLayout::NotRangeReadable => {
                return Err(ServiceError::NotAcceptable(format!(
                    "frames of instance {} cannot be extracted yet because its frames are not byte-aligned; \
                     retrieve the whole instance",
                    record.sop_instance_uid
                )));
            }
        }
        .to_owned();
        let (target, geometry) = self.frame_target(&record, &as_read, acceptable).await?;
        let ranges_per_frame: Vec<Vec<Range<u64>>> = match &layout {
            PixelDataLayout::Native {
                offset,
                frame_length,
                ..
            } => numbers
                .iter()
                .map(|&n| {
                    let start = offset + u64::from(n - 1) * frame_length;
                    // One frame of native pixel data is one contiguous range.
                    #[allow(clippy::single_range_in_vec_init)]
                    let ranges = vec![start..start + frame_length];
                    ranges
                })
                .collect(),
            PixelDataLayout::Encapsulated { frames } => numbers
                .iter()
                .map(|&n| {
                    frames
                        .get((n - 1) as usize)
                        .map(|fragments| fragments.iter().map(|&(s, e)| s..e).collect())
                        .unwrap_or_default()
                })
                .collect(),
            PixelDataLayout::NotRangeReadable => Vec::new(),
        };
        let native = dicomweb_pixel::is_native(&as_read);
        let little = target == EXPLICIT_VR_LITTLE_ENDIAN || target == IMPLICIT_VR_LITTLE_ENDIAN;
        // Bits Allocated of big-endian frames sent little endian (or encoded, from little endian).
        let swap_bits = match (
            &geometry,
            as_read == EXPLICIT_VR_BIG_ENDIAN && target != as_read,
        ) {
            (Some(geometry), true) => Some(geometry.bits_allocated),
            (None, true) => {
                return Err(ServiceError::NotAcceptable(format!(
                    "instance {} has no Bits Allocated, so its big-endian frames cannot be sent little endian",
                    record.sop_instance_uid
                )));
            }
            _ => None,
        };
        if deflated {
            return self
                .inflated_frames(record, numbers.to_vec(), target, geometry)
                .await;
        }
        let as_read_is_sent = target == as_read || (native && little);
        if !as_read_is_sent {
            let Some(geometry) = geometry else {
                return Err(ServiceError::Internal(
                    "frames to transcode lack their geometry".into(),
                ));
            };
            let from = if native {
                EXPLICIT_VR_LITTLE_ENDIAN.to_owned()
            } else {
                as_read
            };
            return self
                .transcoded_frames(record, geometry, ranges_per_frame, from, swap_bits, target)
                .await;
        }
        // Native frames keep their label: little-endian bytes are the same in Implicit VR Little Endian.
        let transfer_syntax_uid = if native && swap_bits.is_none() {
            as_read
        } else if native {
            EXPLICIT_VR_LITTLE_ENDIAN.to_owned()
        } else {
            target
        };
        let media_type = media_type_of_transfer_syntax(&transfer_syntax_uid);
        let total: u64 = ranges_per_frame.iter().map(|r| frame_len(r)).sum();
        if total <= FRAMES_READ_AT_ONCE_MAX_BYTES {
            let frames = read_frames_together(&*self.blobs, &record.blob_key, &ranges_per_frame)
                .await
                .map_err(|e| instance_storage_error(&record, e))?;
            let frames = match swap_bits {
                Some(bits) => frames.into_iter().map(|f| little_endian(f, bits)).collect(),
                None => frames,
            };
            return Ok(FrameData {
                transfer_syntax_uid,
                media_type,
                frames: FrameBodies::Read(frames),
            });
        }
        // Nothing is read before the answer starts: a missing file must still be a 404, not a cut-off 200.
        self.blobs
            .head(&record.blob_key)
            .await
            .map_err(|e| instance_storage_error(&record, e))?;
        Ok(FrameData {
            transfer_syntax_uid,
            media_type,
            frames: FrameBodies::Streamed(self.stream_frames(record, ranges_per_frame, swap_bits)),
        })
    }

    /// The transfer syntax frames read as `as_read` are sent in: the first of `acceptable` that can be produced
    /// (as read; little endian from big endian; decoded where a codec is at hand; encoded for the pixel formats
    /// an encoder takes), with the instance's Image Pixel attributes when the frames are to be changed.
    /// A media type without a transfer syntax means the frames as stored if they are of that type, else the
    /// type's default syntax (PS3.18 Table 8.7.3-2). `NotAcceptable` says what the frames are available in.
    async fn frame_target(
        &self,
        record: &InstanceRecord,
        as_read: &str,
        acceptable: &[FrameRequest],
    ) -> Result<(String, Option<dicomweb_pixel::FrameGeometry>)> {
        let mut geometry: Option<Option<dicomweb_pixel::FrameGeometry>> = None;
        let mut refusals = Vec::new();
        for request in acceptable {
            let target = match (&request.transfer_syntax, request.media_type.as_deref()) {
                (TransferSyntaxRequest::AsStored, None) => as_read.to_owned(),
                (TransferSyntaxRequest::AsStored, Some(media)) => {
                    if media_type_of_transfer_syntax(as_read).eq_ignore_ascii_case(media) {
                        as_read.to_owned()
                    } else if let Some(default) = default_transfer_syntax_of_media_type(media) {
                        default.to_owned()
                    } else {
                        refusals.push(format!("{media}: not a media type frames are sent in"));
                        continue;
                    }
                }
                (TransferSyntaxRequest::Uid(wanted), media) => {
                    if let Some(media) = media
                        && !media_type_of_transfer_syntax(wanted).eq_ignore_ascii_case(media)
                    {
                        refusals.push(format!("{media} does not hold transfer syntax {wanted}"));
                        continue;
                    }
                    wanted.clone()
                }
            };
            let little = target == EXPLICIT_VR_LITTLE_ENDIAN || target == IMPLICIT_VR_LITTLE_ENDIAN;
            let changed = target != as_read && !(as_read == EXPLICIT_VR_LITTLE_ENDIAN && little);
            if !changed && (as_read != EXPLICIT_VR_BIG_ENDIAN || target == as_read) {
                return Ok((target, None));
            }
            if geometry.is_none() {
                geometry = Some(self.stored_geometry(record).await?);
            }
            let known = geometry.clone().flatten();
            if !changed {
                return Ok((target, known));
            }
            let from = if as_read == EXPLICIT_VR_BIG_ENDIAN {
                EXPLICIT_VR_LITTLE_ENDIAN
            } else {
                as_read
            };
            match dicomweb_pixel::why_not_transcodable(from, &target, known.as_ref()) {
                None if little || known.is_some() => return Ok((target, known)),
                None => refusals.push(format!(
                    "{target}: the instance lacks Image Pixel attributes"
                )),
                Some(reason) => refusals.push(format!("{target}: {reason}")),
            }
        }
        let known = match geometry {
            Some(known) => known,
            None => self.stored_geometry(record).await?,
        };
        let mut available = vec![format!("{as_read} (as stored)")];
        let from = if as_read == EXPLICIT_VR_BIG_ENDIAN {
            EXPLICIT_VR_LITTLE_ENDIAN
        } else {
            as_read
        };
        for to in TRANSCODING_TARGETS {
            if to != as_read
                && to != DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
                && dicomweb_pixel::why_not_transcodable(from, to, known.as_ref()).is_none()
            {
                available.push(to.to_owned());
            }
        }
        Err(ServiceError::NotAcceptable(format!(
            "frames of instance {} cannot be sent as asked: {}; they are available in {}",
            record.sop_instance_uid,
            refusals.join("; "),
            available.join(", ")
        )))
    }

    /// Frames read as `from` (stored fragments, or native little-endian bytes once `swap_bits` has put
    /// big-endian ones in order) and transcoded to `to`, one at a time on the codec pool as the answer is sent
    /// (one frame: before the answer starts, so that it has a length and a failure is a 406).
    async fn transcoded_frames(
        &self,
        record: InstanceRecord,
        geometry: dicomweb_pixel::FrameGeometry,
        frames: Vec<Vec<Range<u64>>>,
        from: String,
        swap_bits: Option<u16>,
        to: String,
    ) -> Result<FrameData> {
        let blobs = self.blobs.clone();
        let cache = self.frame_cache.clone();
        let record = Arc::new(record);
        let geometry = Arc::new(geometry);
        let single = frames.len() == 1;
        let target = to.clone();
        let transcode = move |ranges: Vec<Range<u64>>| {
            let blobs = blobs.clone();
            let cache = cache.clone();
            let record = record.clone();
            let geometry = geometry.clone();
            let from = from.clone();
            let to = to.clone();
            async move {
                // The catalogue has named the stored file (`record`): a frame transcoded from it before, by its
                // byte ranges in that file, can be sent again (render_cache.rs states the invariant).
                let key = crate::render_cache::FrameCache::key(
                    &record.blob_key,
                    0,
                    &(&ranges, &from, &to, swap_bits),
                );
                if let Some(bytes) = cache.get(&key) {
                    return Ok(bytes);
                }
                let fragments =
                    read_frames_together(&*blobs, &record.blob_key, std::slice::from_ref(&ranges))
                        .await
                        .map_err(|e| instance_storage_error(&record, e))?;
                let fragments = fragments
                    .into_iter()
                    .map(|f| match swap_bits {
                        Some(bits) => little_endian(f, bits).to_vec(),
                        None => f.to_vec(),
                    })
                    .collect();
                let wanted = to.clone();
                let bytes = on_codec_pool(move || {
                    dicomweb_pixel::transcode_frame(&from, &wanted, &geometry, fragments)
                })
                .await?
                .map(Bytes::from)
                .map_err(|e| transcode_failure(&record, &to, e))?;
                cache.insert(key, bytes.clone());
                Ok(bytes)
            }
        };
        let frames = if single {
            let mut done = Vec::new();
            for ranges in frames {
                done.push(transcode(ranges).await?);
            }
            FrameBodies::Read(done)
        } else {
            FrameBodies::Streamed(
                futures::stream::iter(frames)
                    .map(transcode)
                    .buffered(2)
                    .map_ok(|bytes| FrameBody {
                        len: bytes.len() as u64,
                        body: dicomweb_storage::body_from_bytes(bytes),
                    })
                    .boxed(),
            )
        };
        Ok(FrameData {
            media_type: media_type_of_transfer_syntax(&target),
            transfer_syntax_uid: target,
            frames,
        })
    }

    /// Frames of a deflated instance: its file is read whole (up to [`MAX_TRANSCODE_BYTES`]) and inflated on
    /// the codec pool; the frames come out as Explicit VR Little Endian native bytes, or encoded in `to`.
    async fn inflated_frames(
        &self,
        record: InstanceRecord,
        numbers: Vec<u32>,
        to: String,
        geometry: Option<dicomweb_pixel::FrameGeometry>,
    ) -> Result<FrameData> {
        if record.size > MAX_TRANSCODE_BYTES {
            return Err(ServiceError::NotAcceptable(format!(
                "frames of instance {} ({} bytes, deflated) are read by inflating it whole, which this server \
                 does up to {MAX_TRANSCODE_BYTES} bytes; retrieve the whole instance",
                record.sop_instance_uid, record.size
            )));
        }
        let stored = self.read_whole(&record).await?;
        let encode_to = dicomweb_pixel::can_encode(&to).then(|| to.clone());
        let frames = on_codec_pool(move || {
            let frames = dicomweb_pixel::native_frames(&stored, &numbers)?;
            match (encode_to, geometry) {
                (Some(to), Some(geometry)) => frames
                    .into_iter()
                    .map(|frame| {
                        dicomweb_pixel::transcode_frame(
                            EXPLICIT_VR_LITTLE_ENDIAN,
                            &to,
                            &geometry,
                            vec![frame],
                        )
                    })
                    .collect(),
                _ => Ok(frames),
            }
        })
        .await?
        .map_err(|e| transcode_failure(&record, &to, e))?;
        let transfer_syntax_uid = if dicomweb_pixel::can_encode(&to) {
            to
        } else {
            EXPLICIT_VR_LITTLE_ENDIAN.to_owned()
        };
        Ok(FrameData {
            media_type: media_type_of_transfer_syntax(&transfer_syntax_uid),
            transfer_syntax_uid,
            frames: FrameBodies::Read(frames.into_iter().map(Bytes::from).collect()),
        })
    }

    /// The listed record of the one instance `scope` names; `InvalidInput` with `not_an_instance` for a study
    /// or series scope.
    pub(crate) async fn the_instance(
        &self,
        scope: &Scope,
        not_an_instance: &str,
    ) -> Result<InstanceRecord> {
        let Scope::Instance(..) = scope else {
            return Err(ServiceError::InvalidInput(not_an_instance.to_owned()));
        };
        self.instances_in(scope)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ServiceError::NotFound(format!("{} not found", describe_scope(scope))))
    }

    /// The whole file of an instance, in memory (callers bound its size).
    pub(crate) async fn read_whole(&self, record: &InstanceRecord) -> Result<Bytes> {
        self.blobs
            .get_whole_many(vec![(record.blob_key.clone(), record.size)])
            .await
            .pop()
            .unwrap_or_else(|| {
                Err(dicomweb_storage::StorageError::Other {
                    message: "storage answered no read".into(),
                    source: None,
                })
            })
            .map_err(|e| instance_storage_error(record, e))
    }

    /// The stored metadata of a listed instance, parsed.
    pub(crate) async fn stored_metadata(
        &self,
        listed: &InstanceRecord,
    ) -> Result<serde_json::Value> {
        let record = self
            .catalogue
            .instance(
                &listed.study_instance_uid,
                &listed.series_instance_uid,
                &listed.sop_instance_uid,
            )
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!("instance {} not found", listed.sop_instance_uid))
            })?;
        serde_json::from_slice(&record.metadata)
            .map_err(|e| ServiceError::Internal(format!("stored metadata is not JSON: {e}")))
    }
}

/// A US value of an instance's stored DICOM JSON (e.g. `00280100`, Bits Allocated).
pub(crate) fn metadata_u16(metadata: &serde_json::Value, key: &str) -> Option<u16> {
    metadata[key]["Value"][0]
        .as_u64()
        .and_then(|v| u16::try_from(v).ok())
}

/// The Image Pixel attributes of instance `sop`, from its stored metadata: what decoding or drawing a frame
/// needs.
pub(crate) fn frame_geometry(
    metadata: &serde_json::Value,
    sop: &str,
) -> Result<dicomweb_pixel::FrameGeometry> {
    let missing = |name: &str| {
        ServiceError::NotAcceptable(format!(
            "instance {sop} lacks {name}, so its frames cannot be decoded; ask for transfer-syntax=*"
        ))
    };
    let number = |key: &str, name: &str| metadata_u16(metadata, key).ok_or_else(|| missing(name));
    Ok(dicomweb_pixel::FrameGeometry {
        rows: number("00280010", "Rows")?,
        columns: number("00280011", "Columns")?,
        samples_per_pixel: number("00280002", "Samples per Pixel")?,
        bits_allocated: number("00280100", "Bits Allocated")?,
        bits_stored: number("00280101", "Bits Stored")?,
        high_bit: number("00280102", "High Bit")?,
        pixel_representation: number("00280103", "Pixel Representation")?,
        photometric_interpretation: metadata["00280004"]["Value"][0]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| missing("Photometric Interpretation"))?,
        planar_configuration: metadata_u16(metadata, "00280006").unwrap_or(0),
    })
}

impl StudiesService {
    /// The frames given by their byte ranges, read in order as the stream is polled (see [`plan_frame_reads`]),
    /// up to [`READ_AHEAD`] reads ahead of the frame being sent.
    fn stream_frames(
        &self,
        record: InstanceRecord,
        frames: Vec<Vec<Range<u64>>>,
        swap_bits: Option<u16>,
    ) -> futures::stream::BoxStream<'static, Result<FrameBody>> {
        // Reads start at a frame's start and are multiples of 8 bytes long but for a frame's last, so a
        // word never spans two reads.
        let swapped = move |bytes: Bytes| match swap_bits {
            Some(bits) => little_endian(bytes, bits),
            None => bytes,
        };
        let blobs = self.blobs.clone();
        let record = Arc::new(record);
        futures::stream::iter(plan_frame_reads(frames))
            .map(move |read| {
                let blobs = blobs.clone();
                let record = record.clone();
                async move {
                    match read {
                        FrameRead::Together(frames) => {
                            match read_frames_together(&*blobs, &record.blob_key, &frames).await {
                                Ok(read) => read
                                    .into_iter()
                                    .map(|bytes| {
                                        Ok(FrameBody {
                                            len: bytes.len() as u64,
                                            body: dicomweb_storage::body_from_bytes(swapped(bytes)),
                                        })
                                    })
                                    .collect(),
                                Err(e) => vec![Err(instance_storage_error(&record, e))],
                            }
                        }
                        FrameRead::InPieces(pieces) => {
                            let len = frame_len(&pieces);
                            let key = record.blob_key.clone();
                            let body = futures::stream::iter(pieces)
                                .map(move |piece| {
                                    let blobs = blobs.clone();
                                    let key = key.clone();
                                    async move { blobs.get_range(&key, piece).await.map(swapped) }
                                })
                                .buffered(READ_AHEAD)
                                .boxed();
                            vec![Ok(FrameBody { len, body })]
                        }
                    }
                }
            })
            .buffered(READ_AHEAD)
            .flat_map(futures::stream::iter)
            .boxed()
    }
}

/// A big-endian native frame (or piece of one) in little-endian order.
pub(crate) fn little_endian(bytes: Bytes, bits_allocated: u16) -> Bytes {
    let mut swapped = bytes.to_vec();
    dicomweb_pixel::frame_to_little_endian(&mut swapped, bits_allocated);
    Bytes::from(swapped)
}

/// Reads the JSON array of the metadata of `paths`, `budget` bytes at a time: `[` comes with the first read's
/// objects and `]` with the last. Instances no longer catalogued are left out.
struct MetadataReader {
    catalogue: Arc<dyn Catalogue>,
    paths: Vec<InstancePath>,
    next: usize,
    any_written: bool,
    /// The last piece was read.
    closed: bool,
    budget: usize,
    /// What the documents' relative `BulkDataURI`s are resolved against (see [`served_metadata`]).
    base_url: String,
}

impl MetadataReader {
    async fn next_piece(&mut self) -> Result<Bytes> {
        let mut piece = Vec::new();
        if self.next == 0 {
            piece.push(b'[');
        }
        if self.next < self.paths.len() {
            let records = self
                .catalogue
                .instances_at(&self.paths[self.next..], self.budget)
                .await?;
            if records.is_empty() {
                // A catalogue must answer at least one of a non-empty list; end rather than loop.
                return Err(ServiceError::Internal(
                    "the catalogue read no instance of a metadata response".into(),
                ));
            }
            self.next += records.len();
            piece.reserve(records.iter().flatten().map(|r| r.metadata.len() + 1).sum());
            for record in records.iter().flatten() {
                if self.any_written {
                    piece.push(b',');
                }
                piece.extend_from_slice(&served_metadata(
                    &record.metadata,
                    &self.base_url,
                    &record.study_instance_uid,
                    &record.series_instance_uid,
                    &record.sop_instance_uid,
                ));
                self.any_written = true;
            }
        }
        if self.next >= self.paths.len() {
            piece.push(b']');
            self.closed = true;
        }
        Ok(Bytes::from(piece))
    }
}

/// The URL of an instance under a service root such as `https://host/v2`.
pub fn instance_url(base_url: &str, study: &str, series: &str, sop: &str) -> String {
    format!(
        "{}/studies/{study}/series/{series}/instances/{sop}",
        base_url.trim_end_matches('/')
    )
}

/// An instance's stored metadata as it is served under the service root `base_url` (e.g. `https://host/v2`):
/// the relative `BulkDataURI`s it was stored with (the same document serves every root a client may use)
/// become URLs of the instance's bulk data resources. Borrowed when it has none.
pub fn served_metadata<'a>(
    stored: &'a [u8],
    base_url: &str,
    study: &str,
    series: &str,
    sop: &str,
) -> std::borrow::Cow<'a, [u8]> {
    if !dicomweb_json::has_relative_bulk_data_uri(stored) {
        return std::borrow::Cow::Borrowed(stored);
    }
    dicomweb_json::resolve_bulk_data_uris(stored, &instance_url(base_url, study, series, sop))
}

/// Entity tag of a metadata response: stored instances are immutable, so their identities and store times
/// determine the content.
fn metadata_etag(records: &[InstanceRecord], base_url: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(base_url.as_bytes());
    hasher.update([0]);
    for r in records {
        hasher.update(r.sop_instance_uid.as_bytes());
        hasher.update([0]);
        hasher.update(r.stored_at.unix_timestamp_nanos().to_le_bytes());
    }
    let digest = hasher.finalize();
    format!("\"{}\"", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    /// A metadata body read one instance at a time is the same JSON array as one read whole; an instance
    /// deleted between two reads is left out, and the array stays valid JSON.
    #[tokio::test]
    async fn a_metadata_body_read_in_pieces_is_one_json_array() {
        use dicomweb_catalogue::conformance::{record, store};
        let dir = tempfile::tempdir().unwrap();
        let catalogue: Arc<dyn Catalogue> =
            Arc::new(dicomweb_catalogue::EmbeddedCatalogue::open(dir.path()).unwrap());
        let mut paths = Vec::new();
        for (sop, number) in [("9.1.1.1", 1), ("9.1.1.2", 2), ("9.1.1.3", 3)] {
            let (_, stored) =
                store(catalogue.as_ref(), record("9.1", "9.1.1", sop, number, "P")).await;
            paths.push(InstancePath::of(&stored));
        }
        let reader = |budget| MetadataReader {
            catalogue: catalogue.clone(),
            paths: paths.clone(),
            next: 0,
            any_written: false,
            closed: false,
            budget,
            base_url: "http://host".into(),
        };
        let mut whole = reader(usize::MAX);
        let all = whole.next_piece().await.unwrap();
        assert!(whole.closed);
        let names = |body: &[u8]| -> usize {
            serde_json::from_slice::<Vec<serde_json::Value>>(body)
                .expect("a JSON array")
                .len()
        };
        assert_eq!(names(&all), 3);

        let mut pieces = reader(1);
        let mut body = pieces.next_piece().await.unwrap().to_vec();
        assert!(!pieces.closed, "one instance a read");
        catalogue
            .commit_delete(&Scope::Instance(
                "9.1".into(),
                "9.1.1".into(),
                "9.1.1.2".into(),
            ))
            .await
            .unwrap();
        let mut reads = 1;
        while !pieces.closed {
            body.extend_from_slice(&pieces.next_piece().await.unwrap());
            reads += 1;
        }
        assert_eq!(
            reads, 2,
            "the deleted one costs nothing of the budget: read with the next"
        );
        assert_eq!(names(&body), 2, "the deleted instance is left out");
    }

    fn shape(reads: &[FrameRead]) -> Vec<(char, Vec<u64>)> {
        reads
            .iter()
            .map(|read| match read {
                FrameRead::Together(frames) => ('T', frames.iter().map(|f| frame_len(f)).collect()),
                FrameRead::InPieces(pieces) => {
                    ('P', pieces.iter().map(|p| p.end - p.start).collect())
                }
            })
            .collect()
    }

    #[test]
    fn small_frames_share_reads_of_at_most_a_chunk_and_large_ones_are_read_in_pieces() {
        // One frame of native pixel data is one range.
        #[allow(clippy::single_range_in_vec_init)]
        let frame = |start: u64, len: u64| vec![start..start + len];
        let reads = plan_frame_reads(vec![
            frame(0, 400 * 1024),
            frame(0, 400 * 1024),
            frame(0, 400 * 1024),
            frame(10, 2 * MIB + 5),
            frame(0, 100),
            // Two fragments of one encapsulated frame, together over a chunk.
            vec![0..MIB / 2, MIB..2 * MIB],
        ]);
        assert_eq!(
            shape(&reads),
            vec![
                ('T', vec![400 * 1024, 400 * 1024]),
                ('T', vec![400 * 1024]),
                ('P', vec![MIB, MIB, 5]),
                ('T', vec![100]),
                ('P', vec![MIB / 2, MIB]),
            ]
        );
        let FrameRead::InPieces(pieces) = &reads[2] else {
            unreachable!()
        };
        assert_eq!(
            pieces[0].start, 10,
            "pieces follow each other from the frame's start"
        );
        assert_eq!(pieces[2].end, 10 + 2 * MIB + 5);
    }
}
