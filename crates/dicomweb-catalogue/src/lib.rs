//! The catalogue of record of a DICOM archive: which instances exist, which version of each, where its file
//! is, what was deleted and whose files must still be removed, and the change feed.
//!
//! Everything a client may observe about what is stored is decided here; a search index is derived from it
//! (replaying [`Catalogue::index_feed`]) and can always be rebuilt from it. The archive is written against the
//! narrow [`Catalogue`] trait so that an embedded store ([`EmbeddedCatalogue`], on redb, the default) and a
//! shared database (PostgreSQL, for several nodes) can both serve it; every implementation must pass the
//! [`conformance`] suite (feature `testing`).
//!
//! # Versions
//! Every store of an instance gets a new version number ([`Catalogue::allocate_version`]) before its file is
//! written, and the caller puts that number in the file's storage key. Two versions of one SOP instance (stored,
//! deleted, stored again) therefore never share a file, so removing the file of a deleted version can never
//! remove the file of a later one, whatever the interleaving.
//!
//! # Commit points
//! - [`Catalogue::commit_store`] is the commit point of a store: once it returns the instance is durable,
//!   visible to every reader and in the change feed, all at once.
//! - [`Catalogue::commit_delete`] removes the instances of a scope, appends their `delete` entries and records
//!   their files as pending deletion, in one durable commit. The caller removes the files, then calls
//!   [`Catalogue::blob_deletions_done`]; after a crash, [`Catalogue::pending_blob_deletions`] still lists them.
//!
//! In [`EmbeddedCatalogue`] a commit is durable once its record in the catalogue's redo log is flushed; the
//! redb file catches up at checkpoints, and opening replays what it lacks (see `embedded.rs` and
//! `redo_log.rs`).
//!
//! It must never depend on HTTP, DICOM parsing, blob storage or the search index.
//!
//! # Example
//! ```
//! use dicomweb_catalogue::{Catalogue, ChangeQuery, EmbeddedCatalogue, InstanceRecord, Scope};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), dicomweb_catalogue::CatalogueError> {
//! let dir = tempfile::tempdir().unwrap();
//! let catalogue = EmbeddedCatalogue::open(dir.path())?;
//! let version = catalogue.allocate_version().await?;
//! let record = InstanceRecord {
//!     study_instance_uid: "1.2.3".into(),
//!     series_instance_uid: "1.2.3.4".into(),
//!     sop_instance_uid: "1.2.3.4.5".into(),
//!     sop_class_uid: "1.2.840.10008.5.1.4.1.1.7".into(),
//!     transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
//!     blob_key: format!("studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5_{version:016x}.dcm"),
//!     size: 1024,
//!     stored_at: time::macros::datetime!(2024-05-01 12:00:00 UTC),
//!     metadata: br#"{"00100020":{"vr":"LO","Value":["ID1"]}}"#.to_vec(),
//!     pixel_layout: None,
//!     attributes: vec![(0x0010_0020, vec!["ID1".into()])],
//! };
//! // Durable, visible and in the change feed once it returns.
//! assert_eq!(catalogue.commit_store(version, record.clone()).await?, 1);
//! assert_eq!(catalogue.instance("1.2.3", "1.2.3.4", "1.2.3.4.5").await?, Some(record));
//!
//! let removed = catalogue.commit_delete(&Scope::Study("1.2.3".into())).await?;
//! // The caller removes the files now, then says so.
//! assert_eq!(catalogue.pending_blob_deletions().await?, [removed[0].blob_key.clone()]);
//! catalogue.blob_deletions_done(vec![removed[0].blob_key.clone()]).await?;
//!
//! let feed = catalogue.changes(&ChangeQuery { limit: 10, include_metadata: true, ..Default::default() }).await?;
//! assert_eq!(feed.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["create", "delete"]);
//! // Each entry keeps the metadata of the version it recorded.
//! assert_eq!(feed[1].metadata.as_deref(), Some(&br#"{"00100020":{"vr":"LO","Value":["ID1"]}}"#[..]));
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

use bytes::Bytes;

#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "embedded")]
mod embedded;
#[cfg(feature = "embedded")]
mod redo_log;
mod types;

#[cfg(feature = "embedded")]
pub use embedded::{EmbeddedCatalogue, EmbeddedOptions};
pub use types::{
    CatalogueError, ChangeAction, ChangeFeedEntry, ChangeQuery, ChangeState, IndexChange,
    InstancePage, InstancePath, InstanceRecord, Scope, TAG_INSTANCE_NUMBER, sort_instances,
};

/// The catalogue of record.
///
/// All methods are async so that a networked database can implement them; implementations keep blocking work
/// off the caller's async worker threads. Every read sees every commit that returned before it started
/// (read-your-writes), and sequences are gap-free and strictly increasing in commit order.
///
/// Implementations must pass [`conformance::run_all`] (feature `testing`).
#[async_trait::async_trait]
pub trait Catalogue: std::fmt::Debug + Send + Sync + 'static {
    /// A version number for an instance about to be stored: unique, and larger than every version handed out
    /// or committed before, also across restarts. The caller names the instance's file after it.
    async fn allocate_version(&self) -> Result<u64, CatalogueError>;

    /// Catalogues `record` as `version` of its SOP instance and appends its `create` entry; returns the entry's
    /// sequence. Durable and visible to every reader when it returns.
    ///
    /// [`CatalogueError::AlreadyExists`] if the SOPInstanceUID is catalogued (in any study or series): of two
    /// concurrent stores of one instance exactly one succeeds. On any error nothing of the record is visible.
    async fn commit_store(
        &self,
        version: u64,
        record: InstanceRecord,
    ) -> Result<u64, CatalogueError>;

    /// [`Catalogue::commit_store`], and in the same durable commit keeps `copy`, the bytes of the instance's
    /// file, until [`Catalogue::copies_published`] names the record's blob key.
    ///
    /// What it is for: a store whose blob storage makes writes durable only on an explicit flush (local disk)
    /// writes the file, commits with a copy and answers, waiting for one flush (this commit) instead of two
    /// (the file's, then the commit's). The file is flushed later, for many stores at once, and then the copies
    /// are released. Until then [`Catalogue::unpublished_copies`] lists them, so that recovery after a power
    /// cut can write a lost file again. Meant for small files: the copy is written twice.
    async fn commit_store_with_copy(
        &self,
        version: u64,
        record: InstanceRecord,
        copy: Bytes,
    ) -> Result<u64, CatalogueError>;

    /// Blob keys and bytes of up to `limit` copies kept by [`Catalogue::commit_store_with_copy`] and not
    /// released yet, in key order after `after` (exclusive; `None` from the start).
    async fn unpublished_copies(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, Bytes)>, CatalogueError>;

    /// Releases the copies of these blob keys, whose files are now durable in storage (unknown keys are
    /// ignored).
    async fn copies_published(&self, keys: Vec<String>) -> Result<(), CatalogueError>;

    /// Removes every instance in `scope`, appends one `delete` entry each (in [`sort_instances`] order) and
    /// records their files as pending deletion, in one durable commit. Returns the removed records; empty if
    /// nothing matched (and then nothing is appended). Copies kept for the removed records are released in the
    /// same commit (a deleted instance's file is never written again).
    async fn commit_delete(&self, scope: &Scope) -> Result<Vec<InstanceRecord>, CatalogueError>;

    /// Storage keys of files of removed instances that are not yet known to be deleted.
    async fn pending_blob_deletions(&self) -> Result<Vec<String>, CatalogueError>;

    /// Records that these files are gone from storage (unknown keys are ignored).
    async fn blob_deletions_done(&self, keys: Vec<String>) -> Result<(), CatalogueError>;

    /// The instance at this path, if catalogued (all three UIDs must match).
    async fn instance(
        &self,
        study: &str,
        series: &str,
        sop: &str,
    ) -> Result<Option<InstanceRecord>, CatalogueError>;

    /// Instances in scope, in [`sort_instances`] order. Empty if none.
    async fn instances(&self, scope: &Scope) -> Result<Vec<InstanceRecord>, CatalogueError>;

    /// [`Catalogue::instances`] without their metadata: each record's `metadata` is empty, everything else as
    /// stored. What a retrieve lists (it reads files, not metadata) and what a metadata response lists before
    /// it reads the metadata a few instances at a time ([`Catalogue::instances_at`]), so that neither holds the
    /// metadata of a whole study (up to megabytes an instance) in memory.
    ///
    /// The default reads the whole records and drops their metadata; implementations that can skip reading it
    /// should.
    async fn instance_listing(&self, scope: &Scope) -> Result<Vec<InstanceRecord>, CatalogueError> {
        let mut records = self.instances(scope).await?;
        for record in &mut records {
            record.metadata = Vec::new();
        }
        Ok(records)
    }

    /// The records, as catalogued now, of the first instances of `paths` (StudyInstanceUID, SeriesInstanceUID,
    /// SOPInstanceUID), in the order given, `None` for one that is not catalogued (any more): as many as fit
    /// `metadata_budget` bytes of metadata, and at least one. The answer's length says how many of `paths` it
    /// covers; the caller asks again for the rest. Memory held is bounded by the budget plus one record.
    ///
    /// The default reads one instance at a time; implementations should read them in one transaction.
    async fn instances_at(
        &self,
        paths: &[InstancePath],
        metadata_budget: usize,
    ) -> Result<Vec<Option<InstanceRecord>>, CatalogueError> {
        let mut records = Vec::new();
        let mut bytes = 0usize;
        for path in paths {
            if !records.is_empty() && bytes >= metadata_budget {
                break;
            }
            let record = self.instance(&path.study, &path.series, &path.sop).await?;
            bytes += record.as_ref().map_or(0, |r| r.metadata.len());
            records.push(record);
        }
        Ok(records)
    }

    /// The storage key of the catalogued instance with this SOPInstanceUID, if any: what an orphan sweep
    /// compares the files it lists with.
    async fn blob_key_of(&self, sop: &str) -> Result<Option<String>, CatalogueError>;

    /// A page of the change feed in sequence order, with each entry's present state.
    async fn changes(&self, query: &ChangeQuery) -> Result<Vec<ChangeFeedEntry>, CatalogueError>;

    /// The entry with the highest sequence, `None` if the feed is empty.
    async fn latest_change(
        &self,
        include_metadata: bool,
    ) -> Result<Option<ChangeFeedEntry>, CatalogueError>;

    /// The highest committed sequence (0 for an empty feed). Cheap: readers use it as a barrier.
    fn last_sequence(&self) -> u64;

    /// Up to `limit` changes after sequence `after`, in sequence order, for a search index to apply.
    async fn index_feed(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<IndexChange>, CatalogueError>;

    /// A page of the instances catalogued now, for rebuilding a search index: start with `None`, then pass
    /// [`InstancePage::next`]. Read [`Catalogue::last_sequence`] before the first page; the pages then hold
    /// at least every instance committed up to it.
    async fn current_instances(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<InstancePage, CatalogueError>;

    /// Number of catalogued instances.
    async fn instance_count(&self) -> Result<u64, CatalogueError>;
}
