//! The DICOMweb studies service: store (STOW-RS), retrieve (WADO-RS), search (QIDO-RS), delete and the change
//! feed, as use cases over a [`BlobStore`] and an [`Index`], with no HTTP.
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
//! let index = dicomweb_index::Index::open_in_ram().unwrap();
//! let service = StudiesService::new(blobs, index, ServiceConfig::new(dir.path().join("spool")));
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

use dicomweb_index::{ChangeFeedEntry, ChangeQuery, Index, Scope};
use dicomweb_json::{BulkDataPolicy, JsonOptions};
use dicomweb_storage::BlobStore;

pub mod attributes;
mod error;
pub mod keys;
mod rebuild;
mod retrieve;
pub mod search;
mod spool;
mod store;
mod uid;

pub use error::{Result, ServiceError};
pub use rebuild::RebuildProgress;
pub use retrieve::{
    FrameData, InstanceContent, MetadataDocument, TransferSyntaxRequest,
    media_type_of_transfer_syntax,
};
pub use search::{SearchResource, SearchResult};
pub use store::{
    FailureReason, InstanceOutcome, ReceivedInstance, StoreRequestError, StoreStatus,
    WARNING_VALIDATION, store_response, store_status,
};
pub use uid::check_uid;

pub use dicomweb_index::{ChangeAction, ChangeState, Level};

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where instances larger than `memory_spool_limit` are spooled while they are received and inspected.
    pub spool_dir: PathBuf,
    /// Instances up to this size are spooled in memory.
    pub memory_spool_limit: usize,
    /// How precomputed instance metadata is serialized (bulk values are left out by default).
    pub metadata_json: JsonOptions,
}

impl ServiceConfig {
    /// Defaults: 16 MiB in memory per instance, bulk values omitted from metadata.
    pub fn new(spool_dir: PathBuf) -> Self {
        ServiceConfig {
            spool_dir,
            memory_spool_limit: 16 * 1024 * 1024,
            metadata_json: JsonOptions {
                bulk_data: BulkDataPolicy::Omit,
            },
        }
    }
}

/// The studies service. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct StudiesService {
    blobs: Arc<dyn BlobStore>,
    index: Index,
    config: ServiceConfig,
    /// SOPInstanceUIDs being stored right now by this process: a second concurrent store of one is a duplicate.
    in_flight: Arc<Mutex<HashSet<String>>>,
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
    /// Assembles the service from its storage and catalogue.
    pub fn new(blobs: Arc<dyn BlobStore>, index: Index, config: ServiceConfig) -> Self {
        StudiesService {
            blobs,
            index,
            config,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// The catalogue (for administration tasks such as closing it on shutdown).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Deletes every instance in `scope`: first from the catalogue (one commit that also appends the change feed's
    /// delete entries, after which nothing of it is visible), then their files. Returns how many instances were
    /// deleted; `NotFound` when nothing matched.
    pub async fn delete(&self, scope: Scope) -> Result<usize> {
        check_scope(&scope)?;
        let removed = self.index.delete(scope.clone()).await?;
        if removed.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "{} not found",
                describe_scope(&scope)
            )));
        }
        for record in &removed {
            // A store of the same instance that started after the catalogue commit owns the key now (it replaces
            // whatever file it finds); deleting under its feet would lose its file.
            let Some(_claim) = self.claim(&record.sop_instance_uid) else {
                tracing::info!(key = %record.blob_key, "not deleting a file that a concurrent store is replacing");
                continue;
            };
            // A failure here leaves an invisible orphan that a later store of the same instance replaces.
            if let Err(e) = self.blobs.delete(&record.blob_key).await {
                tracing::warn!(key = %record.blob_key, error = %e, "deleting the file of a deleted instance failed");
            }
        }
        Ok(removed.len())
    }

    /// Change feed entries matching `query`, oldest first.
    pub fn changes(&self, query: &ChangeQuery) -> Result<Vec<ChangeFeedEntry>> {
        Ok(self.index.changes(query)?)
    }

    /// The newest change feed entry, if any.
    pub fn latest_change(&self, include_metadata: bool) -> Result<Option<ChangeFeedEntry>> {
        Ok(self.index.latest_change(include_metadata)?)
    }
}

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
