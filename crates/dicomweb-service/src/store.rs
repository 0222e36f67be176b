//! STOW-RS: storing instances and building the store response.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicomweb_catalogue::{CatalogueError, IndexChange, InstanceRecord};
use dicomweb_instance::InstanceInfo;
use dicomweb_storage::{BlockingCreate, StorageError};
use futures::{Stream, StreamExt, TryStreamExt};

use crate::ingest_pool::IngestPool;
use crate::spool::{Spool, SpoolError, spool};
use crate::{StudiesService, attributes, keys};

/// DICOM FailureReason (0008,1197) codes used by the store transaction (PS3.18, Microsoft v2 conformance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// 272: general failure in processing the operation.
    ProcessingFailure,
    /// 43264 (0xA900): the instance failed validation.
    ValidationFailed,
    /// 43265 (0xA901): the instance's StudyInstanceUID does not match the one in the URL.
    StudyMismatch,
    /// 45070 (0xB00E): an instance with this SOPInstanceUID is already stored.
    AlreadyStored,
    /// 42752 (0xA700, Refused: Out of Resources): the instance's metadata is over a limit of the server
    /// ([`MAX_INSTANCE_METADATA_BYTES`]).
    OutOfResources,
}

impl FailureReason {
    /// The numeric code written into FailureReason.
    pub fn code(self) -> u16 {
        match self {
            FailureReason::ProcessingFailure => 272,
            FailureReason::ValidationFailed => 43264,
            FailureReason::StudyMismatch => 43265,
            FailureReason::AlreadyStored => 45070,
            FailureReason::OutOfResources => 0xA700,
        }
    }
}

/// A non-bulk value (text such as UT or LT, a long LO or DS list, a long list of numbers) longer than this many
/// bytes is treated like bulk data: a BulkDataURI in the instance's metadata (WADO metadata, the change feed;
/// QIDO results leave it out), as binary values are, and never indexed, so no search matches it (neither whole
/// nor by a prefix). The file keeps it; retrieving the instance or its bulk data returns it. The default of
/// `ServiceConfig::metadata_json`'s `large_value_bytes`; searchable attributes use the same limit as the metadata
/// of their instance.
pub const LARGE_VALUE_BYTES: usize = 64 * 1024;

/// The most bytes of DICOM JSON kept per instance (in its catalogue record, the search index, and every metadata,
/// QIDO and change feed response that shows it). An instance whose metadata is longer with values up to
/// [`LARGE_VALUE_BYTES`] is written again with a lower limit (a quarter each time, down to
/// [`SMALLEST_LARGE_VALUE_BYTES`]), leaving its largest values out until it fits; if it still does not fit, the
/// store fails with [`FailureReason::OutOfResources`] naming the limit. A response therefore holds at most this
/// many bytes per instance it shows.
pub const MAX_INSTANCE_METADATA_BYTES: usize = 4 * 1024 * 1024;

/// The lowest limit on a value's size [`MAX_INSTANCE_METADATA_BYTES`] may lead to: searchable attributes are far
/// shorter (64 characters for most VRs), so an instance keeps them, in its metadata and in the index, whatever
/// else is left out.
pub const SMALLEST_LARGE_VALUE_BYTES: usize = 1024;

/// WarningReason (0008,1196) when some non-required attributes failed validation but the instance was stored.
pub const WARNING_VALIDATION: u16 = 1;

/// The outcome of storing one instance (one part of a STOW-RS request).
#[derive(Debug, Clone, PartialEq)]
pub enum InstanceOutcome {
    /// Stored; `warnings` are the validation comments of non-required attributes.
    Stored {
        study_instance_uid: String,
        series_instance_uid: String,
        sop_instance_uid: String,
        sop_class_uid: String,
        warnings: Vec<String>,
    },
    /// Not stored. The UIDs are known when the instance could be read.
    Failed {
        sop_class_uid: Option<String>,
        sop_instance_uid: Option<String>,
        reason: FailureReason,
        /// Why, for the log and for the client (ErrorComment).
        message: String,
        /// The storage backend was unavailable: retrying later may succeed.
        transient: bool,
    },
}

/// Why a whole store request must be abandoned (as opposed to one part failing).
#[derive(Debug, thiserror::Error)]
pub enum StoreRequestError {
    /// The request body itself is broken (malformed multipart, client disconnect): 400.
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    /// The storage backend is unavailable (after retries): nothing of the failed instance is visible, and the
    /// client should retry the request later (503).
    #[error("storage is unavailable, retry later: {0}")]
    StorageUnavailable(String),
}

/// HTTP-agnostic status of a whole store transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreStatus {
    /// Everything stored without warnings (200).
    AllStored,
    /// Some stored, or stored with warnings (202).
    Partial,
    /// Nothing stored (409).
    NoneStored,
    /// The request carried no instance (204).
    Empty,
}

/// Removes a version from the in-flight set when its store ends, whatever the path.
pub(crate) struct InFlightGuard {
    set: Arc<Mutex<HashSet<u64>>>,
    version: u64,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.version);
        }
    }
}

/// An instance's bytes, read whole and ready to store (or the reason they cannot be).
pub struct ReceivedInstance(Result<Spool, InstanceOutcome>);

impl StudiesService {
    /// Stores one instance received as a stream of bytes (one multipart part or a single-part body).
    ///
    /// `expected_study` is the StudyInstanceUID of the URL (`POST /studies/{study}`), if any. A part that is not
    /// DICOM fails that part only; a broken body stream fails the request (`StoreRequestError`). The same as
    /// [`StudiesService::receive_instance`] then [`StudiesService::store_received`].
    pub async fn store_instance<S, E>(
        &self,
        expected_study: Option<&str>,
        body: S,
    ) -> Result<InstanceOutcome, StoreRequestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let received = self.receive_instance(body).await?;
        self.store_received(expected_study, received).await
    }

    /// Reads one instance's bytes to their end (into memory or a temporary file), so that the caller can read the
    /// next part of a request while this one is stored: the parts of one request then share index commits.
    pub async fn receive_instance<S, E>(
        &self,
        body: S,
    ) -> Result<ReceivedInstance, StoreRequestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        match spool(
            body,
            &self.config.spool_dir,
            self.config.memory_spool_limit,
            &self.config.spool_memory,
        )
        .await
        {
            Ok(s) => Ok(ReceivedInstance(Ok(s))),
            Err(SpoolError::Body(message)) => Err(StoreRequestError::MalformedBody(message)),
            Err(SpoolError::NotDicom(message)) => Ok(ReceivedInstance(Err(failed(
                None,
                FailureReason::ProcessingFailure,
                message,
            )))),
            Err(SpoolError::Io(e)) => {
                tracing::error!(error = %e, "spooling an instance failed");
                Ok(ReceivedInstance(Err(failed(
                    None,
                    FailureReason::ProcessingFailure,
                    format!("spooling failed: {e}"),
                ))))
            }
        }
    }

    /// Stores an instance read by [`StudiesService::receive_instance`]; see [`StudiesService::store_instance`].
    pub async fn store_received(
        &self,
        expected_study: Option<&str>,
        received: ReceivedInstance,
    ) -> Result<InstanceOutcome, StoreRequestError> {
        let spooled = match received.0 {
            Ok(spooled) => spooled,
            Err(outcome) => return Ok(outcome),
        };
        match self.store_spooled(expected_study, spooled).await {
            InstanceOutcome::Failed {
                transient: true,
                message,
                ..
            } => Err(StoreRequestError::StorageUnavailable(message)),
            outcome => Ok(outcome),
        }
    }

    async fn store_spooled(&self, expected_study: Option<&str>, spooled: Spool) -> InstanceOutcome {
        if let Some((bytes, creator)) = self.small_local_create(&spooled) {
            return self.store_small_local(expected_study, bytes, creator).await;
        }
        let (info, derived) =
            match inspect_spool(&self.ingest, &spooled, &self.config.metadata_json).await {
                Ok(inspected) => inspected,
                Err((reason, message)) => return failed(None, reason, message),
            };
        let ids = Some((info.sop_class_uid.clone(), info.sop_instance_uid.clone()));
        if let Err((reason, message)) = validate(&info, expected_study) {
            return failed(ids, reason, message);
        }

        // The catalogue's commit decides between stores of one instance. A duplicate larger than a catalogue copy
        // is refused before its file is written; for a smaller one that early look costs more (a read of the
        // catalogue on every store) than the rare duplicate's file, written and removed.
        if spooled.len() > self.config.durable_copy_limit as u64 {
            match self.catalogue.blob_key_of(&info.sop_instance_uid).await {
                Ok(None) => {}
                Ok(Some(_)) => {
                    return failed(ids, FailureReason::AlreadyStored, already_stored(&info));
                }
                Err(e) => return failed(ids, FailureReason::ProcessingFailure, e.to_string()),
            }
        }
        let version = match self.catalogue.allocate_version().await {
            Ok(version) => version,
            Err(e) => return failed(ids, FailureReason::ProcessingFailure, e.to_string()),
        };
        let _in_flight = self.register_in_flight(version);
        let blob_key = blob_key_of(&info, version);
        let size = spooled.len();
        let copy = match self.upload(&blob_key, &spooled).await {
            Ok(copy) => copy,
            // Whatever an interrupted upload left is an orphan of a version nobody will commit: the sweep removes it.
            Err(e) => return storage_failure(ids, &blob_key, e),
        };
        drop(spooled);
        self.commit(info, derived, version, blob_key, size, copy)
            .await
    }

    /// The bytes and the creator of a store whose file can be written on the ingest thread that parses it: a
    /// small instance (kept in memory, made durable by the catalogue's copy) on local disk.
    fn small_local_create(&self, spooled: &Spool) -> Option<(Bytes, Arc<dyn BlockingCreate>)> {
        let bytes = self.durable_by_copy(spooled)?;
        Some((bytes.clone(), self.blobs.blocking_creator()?))
    }

    /// The bytes of a store that the catalogue commit makes durable with a copy of them, its file being flushed
    /// later with others: a small instance kept in memory, on storage whose writes need a flush.
    fn durable_by_copy<'s>(&self, spooled: &'s Spool) -> Option<&'s Bytes> {
        match spooled {
            Spool::Memory(bytes)
                if bytes.len() <= self.config.durable_copy_limit
                    && self.blobs.writes_need_sync() =>
            {
                Some(bytes)
            }
            _ => None,
        }
    }

    /// [`StudiesService::store_spooled`] of a small local instance: one trip to the ingest pool parses it, checks
    /// it and writes its file, instead of one trip to parse and another to write. Its version is allocated
    /// first, since the file's key names it (a version left unused by a failure is only a number skipped).
    async fn store_small_local(
        &self,
        expected_study: Option<&str>,
        bytes: Bytes,
        creator: Arc<dyn BlockingCreate>,
    ) -> InstanceOutcome {
        let version = match self.catalogue.allocate_version().await {
            Ok(version) => version,
            Err(e) => return failed(None, FailureReason::ProcessingFailure, e.to_string()),
        };
        // Registered before the file can exist, so the orphan sweep leaves it alone until the commit.
        let _in_flight = self.register_in_flight(version);
        let json = self.config.metadata_json.clone();
        let expected = expected_study.map(str::to_owned);
        let copy = bytes.clone();
        let parsed = self
            .ingest
            .run(move || {
                let (info, derived) = inspect_bytes(std::io::Cursor::new(&bytes[..]), &json)
                    .map_err(|(reason, message)| (None, reason, message))?;
                let ids = Some((info.sop_class_uid.clone(), info.sop_instance_uid.clone()));
                validate(&info, expected.as_deref())
                    .map_err(|(reason, message)| (ids, reason, message))?;
                let blob_key = blob_key_of(&info, version);
                let written = creator.create_blocking(&blob_key, &bytes);
                Ok((info, derived, blob_key, written))
            })
            .await;
        let (info, derived, blob_key, written) = match parsed {
            Ok(Ok(parsed)) => parsed,
            Ok(Err((ids, reason, message))) => return failed(ids, reason, message),
            Err(failure) => {
                return failed(
                    None,
                    FailureReason::ProcessingFailure,
                    format!("inspecting the instance failed: {failure}"),
                );
            }
        };
        let ids = Some((info.sop_class_uid.clone(), info.sop_instance_uid.clone()));
        let size = copy.len() as u64;
        let copy = match written {
            Ok(Some(_)) => Some(copy),
            // The file system refused an unnamed file after all: the store's own way writes it.
            Ok(None) => match self.upload(&blob_key, &Spool::Memory(copy)).await {
                Ok(copy) => copy,
                Err(e) => return storage_failure(ids, &blob_key, e),
            },
            Err(e) => return storage_failure(ids, &blob_key, e),
        };
        self.commit(info, derived, version, blob_key, size, copy)
            .await
    }

    /// Commits a store whose file is written (durable, or made durable by `copy` in the commit) and answers it.
    async fn commit(
        &self,
        info: InstanceInfo,
        derived: Derived,
        version: u64,
        blob_key: String,
        size: u64,
        copy: Option<Bytes>,
    ) -> InstanceOutcome {
        let ids = Some((info.sop_class_uid.clone(), info.sop_instance_uid.clone()));
        let record = record_for(&info, derived, blob_key.clone(), size);
        // Kept to hand to the search index once committed: searches then need not read it back.
        let indexed = record.clone();
        let committing = self.search_index.committing();
        let committed = match copy.clone() {
            Some(copy) => {
                self.catalogue
                    .commit_store_with_copy(version, record, copy)
                    .await
            }
            None => self.catalogue.commit_store(version, record).await,
        };
        match committed {
            Ok(sequence) => {
                if copy.is_some() {
                    self.copies.committed(blob_key);
                }
                self.search_index.announce(IndexChange::Insert {
                    sequence,
                    record: indexed,
                });
                drop(committing);
                self.search_index.schedule();
                InstanceOutcome::Stored {
                    study_instance_uid: info.study_instance_uid,
                    series_instance_uid: info.series_instance_uid,
                    sop_instance_uid: info.sop_instance_uid,
                    sop_class_uid: info.sop_class_uid,
                    warnings: info.warnings,
                }
            }
            Err(CatalogueError::AlreadyExists { .. }) => {
                drop(committing);
                // A concurrent store of the same instance committed first; this version's file is nobody's.
                self.remove_uncommitted(&blob_key).await;
                failed(ids, FailureReason::AlreadyStored, already_stored(&info))
            }
            Err(CatalogueError::Closed) => {
                drop(committing);
                // Whether the commit happened is unknown: leave the file to the sweep, which keeps it if it did.
                failed(
                    ids,
                    FailureReason::ProcessingFailure,
                    "cataloguing failed: the catalogue is closed".into(),
                )
            }
            Err(e) => {
                drop(committing);
                tracing::error!(error = %e, "cataloguing an instance failed; removing its file");
                self.remove_uncommitted(&blob_key).await;
                failed(
                    ids,
                    FailureReason::ProcessingFailure,
                    format!("cataloguing failed: {e}"),
                )
            }
        }
    }

    async fn remove_uncommitted(&self, blob_key: &str) {
        if let Err(cleanup) = self.blobs.delete(blob_key).await {
            tracing::error!(key = %blob_key, error = %cleanup, "removing the file of a failed store failed; the sweep will");
        }
    }
}

impl StudiesService {
    /// Marks `version` as being written until the guard drops, so that the orphan sweep leaves its file alone.
    pub(crate) fn register_in_flight(&self, version: u64) -> InFlightGuard {
        let mut set = match self.in_flight.lock() {
            Ok(set) => set,
            Err(poisoned) => poisoned.into_inner(),
        };
        set.insert(version);
        InFlightGuard {
            set: self.in_flight.clone(),
            version,
        }
    }

    /// Is a store of this process writing `version` now?
    pub(crate) fn is_in_flight(&self, version: u64) -> bool {
        match self.in_flight.lock() {
            Ok(set) => set.contains(&version),
            Err(poisoned) => poisoned.into_inner().contains(&version),
        }
    }

    /// Writes the file of a store. Returns the copy of its bytes that the catalogue commit must carry when the
    /// file is not flushed yet (a small instance on local disk); otherwise the file is durable on return.
    async fn upload(&self, key: &str, spooled: &Spool) -> Result<Option<Bytes>, StorageError> {
        if let Spool::File { file, .. } = spooled {
            // A large instance is written once: on local disk the spool file itself becomes the blob.
            self.blobs.create_from_file(key, file.path()).await?;
            self.blobs.sync_writes().await?;
            return Ok(None);
        }
        if let Some(bytes) = self.durable_by_copy(spooled) {
            // Durable through the catalogue's copy: the flush comes later, shared (copies.rs).
            self.blobs
                .create(key, dicomweb_storage::body_from_bytes(bytes.clone()))
                .await?;
            return Ok(Some(bytes.clone()));
        }
        let stream = spooled.stream().map_err(|e| StorageError::Other {
            message: format!("reading the spooled instance: {e}"),
            source: Some(Box::new(e)),
        })?;
        let upload = stream.map_err(|e| StorageError::Other {
            message: format!("reading the spooled instance: {e}"),
            source: Some(Box::new(e)),
        });
        self.blobs.create(key, upload.boxed()).await?;
        // Durable before the catalogue commit names it (concurrent stores share the flush).
        self.blobs.sync_writes().await?;
        Ok(None)
    }
}

fn storage_failure(ids: Option<(String, String)>, key: &str, e: StorageError) -> InstanceOutcome {
    tracing::error!(key = %key, error = %e, "uploading an instance failed");
    let mut outcome = failed(
        ids,
        FailureReason::ProcessingFailure,
        format!("storing the file failed: {e}"),
    );
    if let InstanceOutcome::Failed { transient, .. } = &mut outcome {
        *transient = e.is_transient();
    }
    outcome
}

pub(crate) fn failed(
    ids: Option<(String, String)>,
    reason: FailureReason,
    message: String,
) -> InstanceOutcome {
    let (sop_class_uid, sop_instance_uid) = match ids {
        Some((class, instance)) => (Some(class), Some(instance)),
        None => (None, None),
    };
    InstanceOutcome::Failed {
        sop_class_uid,
        sop_instance_uid,
        reason,
        message,
        transient: false,
    }
}

fn already_stored(info: &InstanceInfo) -> String {
    format!(
        "the instance {} is already stored; delete it first to replace it",
        info.sop_instance_uid
    )
}

/// What the catalogue record of an instance derives from its dataset, worked out with the inspection on the
/// blocking pool rather than on the request's worker thread (writing DICOM JSON is the larger half of the CPU a
/// small store costs there).
pub(crate) struct Derived {
    metadata: Vec<u8>,
    pixel_layout: Option<String>,
    attributes: Vec<(u32, Vec<String>)>,
}

/// The catalogue record of an inspected instance stored at `blob_key`.
pub(crate) fn record_for(
    info: &InstanceInfo,
    derived: Derived,
    blob_key: String,
    size: u64,
) -> InstanceRecord {
    InstanceRecord {
        study_instance_uid: info.study_instance_uid.clone(),
        series_instance_uid: info.series_instance_uid.clone(),
        sop_instance_uid: info.sop_instance_uid.clone(),
        sop_class_uid: info.sop_class_uid.clone(),
        transfer_syntax_uid: info.transfer_syntax_uid.clone(),
        blob_key,
        size,
        stored_at: time::OffsetDateTime::now_utc(),
        metadata: derived.metadata,
        pixel_layout: derived.pixel_layout,
        attributes: derived.attributes,
    }
}

/// Inspects a spooled instance on the ingest pool (parsing is CPU and I/O bound), and works out what its
/// catalogue record derives from the dataset (DICOM JSON written with `json`).
pub(crate) async fn inspect_spool(
    pool: &IngestPool,
    spooled: &Spool,
    json: &dicomweb_json::JsonOptions,
) -> Result<(InstanceInfo, Derived), (FailureReason, String)> {
    let reader = spooled.reader().map_err(|e| {
        (
            FailureReason::ProcessingFailure,
            format!("reading the spooled instance: {e}"),
        )
    })?;
    let json = json.clone();
    match pool.run(move || inspect_bytes(reader, &json)).await {
        Ok(result) => result,
        Err(failed) => Err((
            FailureReason::ProcessingFailure,
            format!("inspecting the instance failed: {failed}"),
        )),
    }
}

/// Parses an instance and works out what its catalogue record derives from it (on a thread that may block).
fn inspect_bytes(
    source: impl std::io::Read,
    json: &dicomweb_json::JsonOptions,
) -> Result<(InstanceInfo, Derived), (FailureReason, String)> {
    let mut info =
        dicomweb_instance::inspect(source).map_err(|e| (inspect_failure(&e), e.to_string()))?;
    // The metadata says in which transfer syntax the instance is stored, in Available Transfer Syntax UID, as
    // dcm4chee's does (OHIF reads it to tell video from images). The file keeps what it had.
    info.dataset.put(DataElement::new(
        tags::AVAILABLE_TRANSFER_SYNTAX_UID,
        VR::UI,
        PrimitiveValue::from(info.transfer_syntax_uid.as_str()),
    ));
    let (metadata, limit) = bounded_metadata(&info, json)?;
    let derived = Derived {
        metadata,
        pixel_layout: info
            .pixel_data
            .as_ref()
            .and_then(|layout| serde_json::to_string(layout).ok()),
        attributes: attributes::searchable_attributes_up_to(&info.dataset, limit),
    };
    Ok((info, derived))
}

/// The instance's DICOM JSON within [`MAX_INSTANCE_METADATA_BYTES`], and the limit on a value's size it was
/// written with (which the searchable attributes follow). Written once in the common case; only an instance
/// over the limit is written again, with ever lower limits on its values.
fn bounded_metadata(
    info: &InstanceInfo,
    json: &dicomweb_json::JsonOptions,
) -> Result<(Vec<u8>, Option<usize>), (FailureReason, String)> {
    let mut options = std::borrow::Cow::Borrowed(json);
    loop {
        let limit = options.large_value_bytes;
        match dicomweb_json::dataset_to_json_bytes_within(
            &info.dataset,
            &options,
            MAX_INSTANCE_METADATA_BYTES,
        ) {
            Ok(metadata) => {
                if limit != json.large_value_bytes {
                    tracing::info!(
                        sop_instance_uid = %info.sop_instance_uid,
                        value_limit = limit,
                        "the metadata of the instance leaves out its values over the limit, to fit {MAX_INSTANCE_METADATA_BYTES} bytes"
                    );
                }
                return Ok((metadata, limit));
            }
            Err(_) => {
                let lower = match limit {
                    None => LARGE_VALUE_BYTES,
                    Some(limit) if limit > SMALLEST_LARGE_VALUE_BYTES => {
                        (limit / 4).max(SMALLEST_LARGE_VALUE_BYTES)
                    }
                    Some(last) => {
                        return Err((
                            FailureReason::OutOfResources,
                            format!(
                                "the metadata of the instance {} exceeds the limit of {MAX_INSTANCE_METADATA_BYTES} \
                                 bytes of DICOM JSON per instance, even without its values over {} bytes",
                                info.sop_instance_uid, last
                            ),
                        ));
                    }
                };
                options.to_mut().large_value_bytes = Some(lower);
            }
        }
    }
}

/// The failure reason of an instance that could not be parsed.
fn inspect_failure(error: &dicomweb_instance::InspectError) -> FailureReason {
    if error.is_validation() {
        FailureReason::ValidationFailed
    } else {
        FailureReason::ProcessingFailure
    }
}

/// Refuses an instance whose UIDs could not name a storage key, or that belongs to another study than the
/// request URL's.
fn validate(
    info: &InstanceInfo,
    expected_study: Option<&str>,
) -> Result<(), (FailureReason, String)> {
    for (kind, uid) in [
        ("StudyInstanceUID", &info.study_instance_uid),
        ("SeriesInstanceUID", &info.series_instance_uid),
        ("SOPInstanceUID", &info.sop_instance_uid),
    ] {
        crate::uid::check_uid(kind, uid)
            .map_err(|e| (FailureReason::ValidationFailed, e.to_string()))?;
    }
    if let Some(expected) = expected_study
        && expected != info.study_instance_uid
    {
        let message = format!(
            "the instance's StudyInstanceUID {} does not match the study {} of the request URL",
            info.study_instance_uid, expected
        );
        return Err((FailureReason::StudyMismatch, message));
    }
    Ok(())
}

/// The storage key of `version` of an instance.
fn blob_key_of(info: &InstanceInfo, version: u64) -> String {
    keys::instance_key(
        &info.study_instance_uid,
        &info.series_instance_uid,
        &info.sop_instance_uid,
        version,
    )
}

/// Overall status of a transaction from its per-instance outcomes.
pub fn store_status(outcomes: &[InstanceOutcome]) -> StoreStatus {
    if outcomes.is_empty() {
        return StoreStatus::Empty;
    }
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, InstanceOutcome::Stored { .. }))
        .count();
    let warned = outcomes
        .iter()
        .any(|o| matches!(o, InstanceOutcome::Stored { warnings, .. } if !warnings.is_empty()));
    if stored == 0 {
        StoreStatus::NoneStored
    } else if stored == outcomes.len() && !warned {
        StoreStatus::AllStored
    } else {
        StoreStatus::Partial
    }
}

/// Builds the store response dataset (PS3.18 10.5.3, Microsoft v2): RetrieveURL of the study, ReferencedSOPSequence
/// and FailedSOPSequence. `base_url` is the service root as the client addressed it (e.g. `http://host/v2`).
pub fn store_response(
    outcomes: &[InstanceOutcome],
    base_url: &str,
    url_study: Option<&str>,
) -> InMemDicomObject {
    let mut response = InMemDicomObject::new_empty();
    let mut referenced = Vec::new();
    let mut failures = Vec::new();
    let mut study_of_stored: Option<&str> = None;
    for outcome in outcomes {
        match outcome {
            InstanceOutcome::Stored {
                study_instance_uid,
                series_instance_uid,
                sop_instance_uid,
                sop_class_uid,
                warnings,
            } => {
                study_of_stored.get_or_insert(study_instance_uid);
                let mut item = InMemDicomObject::new_empty();
                item.put(DataElement::new(
                    tags::REFERENCED_SOP_CLASS_UID,
                    VR::UI,
                    PrimitiveValue::from(sop_class_uid.as_str()),
                ));
                item.put(DataElement::new(
                    tags::REFERENCED_SOP_INSTANCE_UID,
                    VR::UI,
                    PrimitiveValue::from(sop_instance_uid.as_str()),
                ));
                item.put(DataElement::new(
                    tags::RETRIEVE_URL,
                    VR::UR,
                    PrimitiveValue::from(format!(
                        "{base_url}/studies/{study_instance_uid}/series/{series_instance_uid}/instances/{sop_instance_uid}"
                    )),
                ));
                if !warnings.is_empty() {
                    item.put(DataElement::new(
                        tags::WARNING_REASON,
                        VR::US,
                        PrimitiveValue::from(WARNING_VALIDATION),
                    ));
                    item.put(DataElement::new(
                        tags::FAILED_ATTRIBUTES_SEQUENCE,
                        VR::SQ,
                        error_comment_items(warnings),
                    ));
                }
                referenced.push(item);
            }
            InstanceOutcome::Failed {
                sop_class_uid,
                sop_instance_uid,
                reason,
                message,
                ..
            } => {
                let mut item = InMemDicomObject::new_empty();
                if let Some(class) = sop_class_uid {
                    item.put(DataElement::new(
                        tags::REFERENCED_SOP_CLASS_UID,
                        VR::UI,
                        PrimitiveValue::from(class.as_str()),
                    ));
                }
                if let Some(instance) = sop_instance_uid {
                    item.put(DataElement::new(
                        tags::REFERENCED_SOP_INSTANCE_UID,
                        VR::UI,
                        PrimitiveValue::from(instance.as_str()),
                    ));
                }
                item.put(DataElement::new(
                    tags::FAILURE_REASON,
                    VR::US,
                    PrimitiveValue::from(reason.code()),
                ));
                item.put(DataElement::new(
                    tags::FAILED_ATTRIBUTES_SEQUENCE,
                    VR::SQ,
                    error_comment_items(std::slice::from_ref(message)),
                ));
                failures.push(item);
            }
        }
    }
    if let Some(study) = url_study.or(study_of_stored)
        && !referenced.is_empty()
    {
        response.put(DataElement::new(
            tags::RETRIEVE_URL,
            VR::UR,
            PrimitiveValue::from(format!("{base_url}/studies/{study}")),
        ));
    }
    if !failures.is_empty() {
        response.put(DataElement::new(
            tags::FAILED_SOP_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(failures),
        ));
    }
    if !referenced.is_empty() {
        response.put(DataElement::new(
            tags::REFERENCED_SOP_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(referenced),
        ));
    }
    response
}

/// `text` as one value of a multi-valued text VR such as LO, where a backslash separates values: a
/// message quoting a client's value (a UID `1.2\3.4`) would otherwise come back as several values.
/// Each backslash becomes U+29F5 REVERSE SOLIDUS OPERATOR, which reads the same.
fn one_text_value(text: &str) -> String {
    text.replace('\\', "\u{29F5}")
}

fn error_comment_items(
    comments: &[String],
) -> dicom_core::value::DataSetSequence<InMemDicomObject> {
    comments
        .iter()
        .map(|comment| {
            let mut item = InMemDicomObject::new_empty();
            // ErrorComment is LO (64 chars) in the standard; Microsoft sends longer texts in it, and so do we:
            // the text is for people, and truncating it would hide the attribute and the reason.
            item.put(DataElement::new(
                Tag(0x0000, 0x0902),
                VR::LO,
                PrimitiveValue::from(one_text_value(comment)),
            ));
            item
        })
        .collect::<Vec<_>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_message_quoting_a_backslash_is_one_error_comment() {
        let outcomes = [InstanceOutcome::Failed {
            sop_class_uid: None,
            sop_instance_uid: Some("1.2\\3.4".into()),
            reason: FailureReason::ValidationFailed,
            message: "SOPInstanceUID \"1.2\\3.4\" has 2 values".into(),
            transient: false,
        }];
        let response = store_response(&outcomes, "http://h", None);
        let json =
            dicomweb_json::dataset_to_json(&response, &dicomweb_json::JsonOptions::default());
        let comment = &json["00081198"]["Value"][0]["00741048"]["Value"][0]["00000902"]["Value"];
        assert_eq!(
            comment,
            &serde_json::json!(["SOPInstanceUID \"1.2\u{29F5}3.4\" has 2 values"]),
            "{json}"
        );
    }
}
