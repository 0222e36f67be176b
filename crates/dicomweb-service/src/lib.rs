//! The DICOMweb studies service: store (STOW-RS), retrieve (WADO-RS), search (QIDO-RS), delete and the change
//! feed, as use cases over a [`BlobStore`] (the files), a [`Catalogue`] (the catalogue of record) and an
//! [`Index`] (search, derived from the catalogue), with no HTTP.
//!
//! # The write path
//! A store spools and inspects the instance, writes its file under a key that names a fresh version, then
//! commits the record to the catalogue: that commit is the commit point, and a 200 follows it. On local disk a
//! small instance's commit carries a copy of its file, which is flushed later with others (see `copies.rs`). A delete commits
//! the removal (with the files as pending deletion) to the catalogue, removes the files, then records that they
//! are gone. The search index follows the catalogue in the background; searches wait for it to reflect every
//! commit made before they arrived. [`StudiesService::recover`] and [`StudiesService::sweep_storage`] remove
//! what a crash left behind.
//!
//! The server crate maps HTTP to these calls and their results back to HTTP; everything a client can observe apart
//! from status codes, headers and framing is decided here.
//!
//! This crate must never depend on an HTTP framework. Media types appear only as DICOM concepts (the media type that
//! labels a transfer syntax), not as header parsing.
//!
//! # Example
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use dicomweb_service::{ServiceConfig, StudiesService, InstanceOutcome};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let blobs = dicomweb_storage::open_store("memory://").unwrap();
//! let catalogue = std::sync::Arc::new(dicomweb_catalogue::EmbeddedCatalogue::open(&dir.path().join("catalogue")).unwrap());
//! let index = dicomweb_index::Index::open_in_ram().unwrap();
//! let service = StudiesService::new(blobs, catalogue, index, ServiceConfig::new(dir.path().join("spool")));
//!
//! let file = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/blue-circle.dcm")).unwrap();
//! let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(file))]);
//! let outcome = service.store_instance(None, body).await.unwrap();
//! assert!(matches!(outcome, InstanceOutcome::Stored { .. }));
//! # });
//! ```

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dicomweb_catalogue::Catalogue;
use dicomweb_index::Index;
use dicomweb_json::{BulkDataPolicy, JsonOptions};
use dicomweb_storage::BlobStore;
use futures::StreamExt;

pub mod attributes;
mod bulk;
mod bulk_all;
mod copies;
mod error;
mod follower;
mod ingest_pool;
pub mod keys;
mod rebuild;
mod recovery;
mod render;
mod render_cache;
mod retrieve;
pub mod search;
mod search_lanes;
mod spool;
mod store;
mod store_json;
mod streamed_transcode;
mod uid;

pub use bulk::{BulkData, BulkValue, ByteRangeRequest};
pub use bulk_all::BulkPart;
pub use dicomweb_pixel::{ImageFormat, RenderOptions, Viewport, VoiFunction, Window};
pub use error::{Result, ServiceError};
pub use ingest_pool::INGEST_NICENESS;
pub use rebuild::RebuildProgress;
pub use recovery::{RecoveryReport, SweepReport};
pub use render::{RenderedImage, THUMBNAIL_SIZE};
pub use retrieve::{
    FRAMES_READ_AT_ONCE_MAX_BYTES, FrameBodies, FrameBody, FrameData, FrameRequest,
    InstanceContent, MetadataBody, MetadataDocument, TransferSyntaxRequest, instance_url,
    media_type_of_transfer_syntax, served_metadata,
};
pub use search::{
    MAX_QUERY_UIDS, MAX_QUERY_VALUE_CHARS, MAX_QUERY_VALUES, MAX_QUERY_WILDCARDS, SearchResource,
    SearchResult,
};
pub use search_lanes::{QUEUE_BUDGET as SEARCH_QUEUE_BUDGET, RUN_BUDGET as SEARCH_RUN_BUDGET};
pub use spool::SpoolMemory;
pub use store::{
    FailureReason, InstanceOutcome, LARGE_VALUE_BYTES, MAX_INSTANCE_METADATA_BYTES,
    ReceivedInstance, SMALLEST_LARGE_VALUE_BYTES, StoreRequestError, StoreStatus,
    WARNING_VALIDATION, store_response, store_status,
};
pub use store_json::{BulkDataPart, MAX_JSON_STORE_BYTES};
pub use uid::check_uid;

pub use dicomweb_catalogue::{
    Catalogue as CatalogueOfRecord, CatalogueError, ChangeAction, ChangeFeedEntry, ChangeQuery,
    ChangeState, EmbeddedCatalogue, EmbeddedOptions, Scope,
};
pub use dicomweb_index::Level;

/// Files of a delete removed at once.
const BLOB_DELETIONS_AT_ONCE: usize = 16;

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where instances larger than `memory_spool_limit` are spooled while they are received and inspected.
    pub spool_dir: PathBuf,
    /// Instances up to this size are spooled in memory.
    pub memory_spool_limit: usize,
    /// The memory all instances being received may hold at once (shared by clones of this config); past it,
    /// they are spooled to disk whatever their size.
    pub spool_memory: SpoolMemory,
    /// How precomputed instance metadata is serialized: by default bulk values, and values over
    /// [`LARGE_VALUE_BYTES`] (which are not indexed), are relative `BulkDataURI`s, resolved when served
    /// ([`served_metadata`]). Whatever the options, an instance's
    /// metadata is kept within [`MAX_INSTANCE_METADATA_BYTES`].
    pub metadata_json: JsonOptions,
    /// On storage whose writes need a flush (local disk), instances up to this size are committed with a copy
    /// of their file, so that their 200 waits for the catalogue's flush only; storage is flushed in the
    /// background for many stores at once. 0 turns it off (every store flushes storage before its commit).
    pub durable_copy_limit: usize,
    /// How long the background flush that releases those copies waits after the store that scheduled it, so
    /// that the stores of this interval share one flush of storage.
    pub copy_flush_delay: std::time::Duration,
    /// How long the background update of the search index waits after the write that scheduled it, so that the
    /// writes of this interval share one index commit. Searches never wait for it: they lay what the index
    /// has not applied yet over it in memory.
    pub index_commit_delay: std::time::Duration,
    /// The memory rendered images and thumbnails may hold in their cache (0 turns it off).
    pub rendered_cache_bytes: usize,
    /// The memory transcoded frames (a compressed frame decoded, a native one encoded) may hold in their cache
    /// (0 turns it off): a viewer scrolling back to a slice gets it without a second decode.
    pub transcoded_frame_cache_bytes: usize,
    /// A retrieve transcodes instances up to this size whole in memory (its answer has a length, and an
    /// encapsulated target a Basic Offset Table); larger ones are transcoded frame by frame as they are sent,
    /// holding a few frames ([`dicomweb_pixel::StreamedTranscode`]), except to the targets that cannot be
    /// streamed ([`dicomweb_pixel::why_not_streamable`]: deflated and lossy), which stay whole up to 256 MiB.
    pub transcode_whole_max_bytes: u64,
}

impl ServiceConfig {
    /// Defaults: 16 MiB in memory per instance and 256 MiB for all of them, bulk values as URIs in metadata,
    /// copies in the catalogue for instances up to 256 KiB flushed within 100 ms, the search index updated 250 ms
    /// after a write, 64 MiB of rendered images and thumbnails cached, instances over 32 MiB transcoded frame by
    /// frame.
    pub fn new(spool_dir: PathBuf) -> Self {
        ServiceConfig {
            spool_dir,
            memory_spool_limit: 16 * 1024 * 1024,
            spool_memory: SpoolMemory::new(256 * 1024 * 1024),
            durable_copy_limit: 256 * 1024,
            copy_flush_delay: std::time::Duration::from_millis(100),
            index_commit_delay: std::time::Duration::from_millis(250),
            rendered_cache_bytes: 64 * 1024 * 1024,
            transcoded_frame_cache_bytes: 64 * 1024 * 1024,
            transcode_whole_max_bytes: 32 * 1024 * 1024,
            metadata_json: JsonOptions {
                bulk_data: BulkDataPolicy::RelativeUri,
                large_value_bytes: Some(LARGE_VALUE_BYTES),
            },
        }
    }
}

/// The studies service. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct StudiesService {
    blobs: Arc<dyn BlobStore>,
    catalogue: Arc<dyn Catalogue>,
    search_index: Arc<follower::SearchIndex>,
    copies: Arc<copies::CopyPublisher>,
    /// Where a store's instance is parsed: below the priority of searches.
    ingest: ingest_pool::IngestPool,
    /// Where searches run their index work: a cheap and an expensive lane, each bounded.
    search_lanes: search_lanes::SearchLanes,
    config: ServiceConfig,
    /// Versions whose files are being written by stores of this process and are not committed yet: the orphan
    /// sweep leaves their files alone.
    in_flight: Arc<Mutex<HashSet<u64>>>,
    /// Rendered images and thumbnails already drawn, by stored file, frame and options.
    rendered_cache: Arc<render_cache::RenderedCache>,
    frame_cache: Arc<render_cache::FrameCache>,
}

impl std::fmt::Debug for StudiesService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudiesService")
            .field("blobs", &self.blobs)
            .field("config", &self.config)
            .finish()
    }
}

impl StudiesService {
    /// Assembles the service from its storage, catalogue of record and search index. The index may lag the
    /// catalogue (after a crash, or when it is new): it catches up in the background, and searches lay what it has not applied yet over it.
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        catalogue: Arc<dyn Catalogue>,
        index: Index,
        config: ServiceConfig,
    ) -> Self {
        StudiesService {
            search_index: Arc::new(follower::SearchIndex::new(
                catalogue.clone(),
                index,
                config.index_commit_delay,
            )),
            copies: Arc::new(copies::CopyPublisher::new(
                blobs.clone(),
                catalogue.clone(),
                config.copy_flush_delay,
            )),
            ingest: ingest_pool::IngestPool::for_this_machine(),
            search_lanes: search_lanes::SearchLanes::for_this_machine(),
            rendered_cache: Arc::new(render_cache::RenderedCache::new(
                config.rendered_cache_bytes,
            )),
            frame_cache: Arc::new(render_cache::FrameCache::new(
                config.transcoded_frame_cache_bytes,
            )),
            blobs,
            catalogue,
            config,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// The search index (for administration tasks such as closing it on shutdown).
    pub fn index(&self) -> &Index {
        &self.search_index.index
    }

    /// The catalogue of record.
    pub fn catalogue(&self) -> &dyn Catalogue {
        &*self.catalogue
    }

    /// Brings the search index up to date with every change the catalogue has committed; returns the sequence it
    /// reflects then. Searches do this themselves; `dicomweb reindex` and shutdown call it.
    pub async fn sync_search_index(&self) -> Result<u64> {
        self.search_index
            .catch_up(self.catalogue.last_sequence())
            .await
    }

    /// Flushes storage for every store acknowledged through a catalogue copy and releases the copies; the
    /// background does this within 100 ms of a store, and shutdown calls it so that the next start has nothing
    /// to check.
    pub async fn flush_stores(&self) -> Result<()> {
        self.copies.flush_now().await
    }

    /// Deletes every instance in `scope`: one catalogue commit removes them, appends their `delete` entries and
    /// records their files as pending deletion (from then on nothing of it is visible, and a crash cannot bring
    /// it back); then the files are removed and the catalogue told so. Returns how many instances were deleted;
    /// `NotFound` when nothing matched. A file that cannot be removed now stays pending and is removed by the
    /// next [`StudiesService::sweep_storage`].
    pub async fn delete(&self, scope: Scope) -> Result<usize> {
        check_scope(&scope)?;
        let removed = self.catalogue.commit_delete(&scope).await?;
        if removed.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "{} not found",
                describe_scope(&scope)
            )));
        }
        self.search_index.schedule();
        let keys = removed
            .iter()
            .map(|record| record.blob_key.clone())
            .collect();
        self.delete_blobs(keys).await?;
        Ok(removed.len())
    }

    /// Removes files of removed instances and records the ones that are gone; returns how many.
    pub(crate) async fn delete_blobs(&self, keys: Vec<String>) -> Result<usize> {
        let deleted: Vec<String> = futures::stream::iter(keys)
            .map(|key| async move {
                match self.blobs.delete(&key).await {
                    Ok(()) => Some(key),
                    Err(e) => {
                        tracing::warn!(%key, error = %e, "deleting the file of a deleted instance failed; it stays pending");
                        None
                    }
                }
            })
            .buffer_unordered(BLOB_DELETIONS_AT_ONCE)
            .filter_map(futures::future::ready)
            .collect()
            .await;
        let count = deleted.len();
        self.catalogue.blob_deletions_done(deleted).await?;
        Ok(count)
    }

    /// Change feed entries matching `query`, oldest first.
    pub async fn changes(&self, query: &ChangeQuery) -> Result<Vec<ChangeFeedEntry>> {
        Ok(self.catalogue.changes(query).await?)
    }

    /// [`StudiesService::changes`] read as the response is sent: with metadata, [`CHANGE_FEED_READ`] entries
    /// at a time (each entry's metadata is up to [`MAX_INSTANCE_METADATA_BYTES`], so a page of 200 is never
    /// held whole); without, the page in one read. The pieces, in order, make the page.
    pub fn changes_streamed(
        &self,
        query: ChangeQuery,
    ) -> futures::stream::BoxStream<'static, Result<Vec<ChangeFeedEntry>>> {
        use futures::StreamExt;
        let chunk = if query.include_metadata {
            CHANGE_FEED_READ
        } else {
            query.limit.max(1)
        };
        let catalogue = self.catalogue.clone();
        // (next query, entries still wanted); `None` once the page is complete.
        let start = Some((query.clone(), query.limit));
        futures::stream::unfold(start, move |state| {
            let catalogue = catalogue.clone();
            async move {
                let (mut query, remaining) = state?;
                if remaining == 0 {
                    return None;
                }
                query.limit = remaining.min(chunk);
                let entries = match catalogue.changes(&query).await {
                    Ok(entries) => entries,
                    Err(e) => return Some((Err(e.into()), None)),
                };
                let next = match entries.last() {
                    // Sequences after the last one read are within the start time already (timestamps never
                    // decrease along the feed), and the skip was spent.
                    Some(last) if entries.len() == query.limit => Some((
                        ChangeQuery {
                            after_sequence: last.sequence,
                            start_time: None,
                            skip: 0,
                            ..query.clone()
                        },
                        remaining - entries.len(),
                    )),
                    _ => None,
                };
                Some((Ok(entries), next))
            }
        })
        .boxed()
    }

    /// The newest change feed entry, if any.
    pub async fn latest_change(&self, include_metadata: bool) -> Result<Option<ChangeFeedEntry>> {
        Ok(self.catalogue.latest_change(include_metadata).await?)
    }
}

/// A change feed page with metadata is read this many entries at a time ([`StudiesService::changes_streamed`]).
pub const CHANGE_FEED_READ: usize = 4;

/// Validates the UIDs of a resource path.
pub fn check_scope(scope: &Scope) -> Result<()> {
    match scope {
        Scope::Study(study) => check_uid("StudyInstanceUID", study),
        Scope::Series(study, series) => {
            check_uid("StudyInstanceUID", study)?;
            check_uid("SeriesInstanceUID", series)
        }
        Scope::Instance(study, series, sop) => {
            check_uid("StudyInstanceUID", study)?;
            check_uid("SeriesInstanceUID", series)?;
            check_uid("SOPInstanceUID", sop)
        }
    }
}

pub(crate) fn describe_scope(scope: &Scope) -> String {
    match scope {
        Scope::Study(study) => format!("study {study}"),
        Scope::Series(study, series) => format!("series {series} of study {study}"),
        Scope::Instance(study, series, sop) => {
            format!("instance {sop} of series {series} of study {study}")
        }
    }
}
