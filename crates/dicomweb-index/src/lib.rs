//! The search index of a DICOM archive (QIDO-RS), on tantivy.
//!
//! The index is derived data: it follows the catalogue of record (`dicomweb-catalogue`), applying
//! its changes in sequence order ([`Index::apply`]), and records in each commit, atomically with
//! the documents, the sequence of the last change it reflects ([`Index::applied_sequence`]). After a
//! crash it continues from there; a lost index is rebuilt by replaying the catalogue's log. All
//! writes go through a single writer thread doing group commit; reads use a shared
//! `IndexReader` and never wait for the writer.
//!
//! # Search design
//!
//! QIDO-RS must answer study searches over a million instances in milliseconds, so searches
//! never group instance documents. The writer maintains one *summary document* per study and
//! per series, rebuilt (in the same commit) for every study a batch inserts into or deletes
//! from: it carries the matching terms of the study's (series') most recently stored instance
//! (max `stored_at`, then max sequence), the instance and series counts, and for studies the
//! distinct modalities (also indexed as ModalitiesInStudy, 00080061). So:
//!
//! - a study search touches study documents only; a series search series documents only; an
//!   instance search instance documents only;
//! - a filter of an upper level (PatientName on `/instances`) is first evaluated on the upper
//!   level's summaries, whose UIDs then restrict the hits (a join through a term set);
//! - the most recently stored instance wins consistently: it alone supplies the values
//!   matched and (through [`SearchHit`]) the values returned;
//! - hits are ordered by StudyInstanceUID, then SeriesInstanceUID, then SOPInstanceUID (byte
//!   order, through a string fast field per level, so that the keys of one level are adjacent
//!   in its dictionary), so paging with `offset`/`limit` neither skips nor repeats while nothing
//!   is written;
//! - a summary document also carries a copy of its latest instance's metadata: a study hit is
//!   built from its own document alone, a series or instance hit adds its (cached) parents.
//!
//! The index keeps of each instance's metadata its [`search_copy`]: the metadata itself up to
//! [`SEARCH_COPY_BYTES`] (64 KiB), else its standard attributes of at most
//! [`SEARCH_COPY_VALUE_BYTES`] each, within 64 KiB. So a page of hits holds at most 3 x 64 KiB
//! per hit, and the index does not grow with large values. Hits and the records it returns
//! ([`Index::instances`]) carry that copy, not the whole metadata, which stays with the
//! catalogue of record.
//!
//! Rebuilding a study's summaries reads the fast fields of its instances and loads at most one
//! stored document per series: a batch costs O(instances of the studies it touches).
//!
//! Each value is indexed for every [`Matcher`]: raw (exact, wildcard regex), folded for person
//! names (whole, per component group, and per name part for fuzzy prefixes), and as a
//! fixed-width comparable key when it parses as a DA or TM value (term-range queries).
//!
//! It must never depend on HTTP, DICOM parsing (attribute values arrive as strings, metadata as
//! opaque bytes) or blob storage; of the catalogue crate it uses only the record types.
//!
//! ```
//! use dicomweb_index::{Filter, Index, InstanceRecord, Level, Matcher, Scope, SearchQuery};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), dicomweb_index::IndexError> {
//! let index = Index::open_in_ram()?;
//! let record = InstanceRecord {
//!     study_instance_uid: "1.2.3".into(),
//!     series_instance_uid: "1.2.3.4".into(),
//!     sop_instance_uid: "1.2.3.4.5".into(),
//!     sop_class_uid: "1.2.840.10008.5.1.4.1.1.7".into(),
//!     transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
//!     blob_key: "blobs/1.2.3.4.5".into(),
//!     size: 1024,
//!     stored_at: time::macros::datetime!(2024-05-01 12:00:00 UTC),
//!     metadata: br#"{"00100020":{"vr":"LO","Value":["ID1"]}}"#.to_vec(),
//!     pixel_layout: None,
//!     attributes: vec![
//!         (0x0010_0020, vec!["ID1".into()]),
//!         (0x0010_0010, vec!["Müller^Jürgen".into()]),
//!         (0x0008_0060, vec!["OT".into()]),
//!     ],
//! };
//! // Acknowledged = durable and visible to every reader; the index numbers the change itself.
//! assert_eq!(index.insert(record.clone()).await?, 1);
//! assert_eq!(index.instance("1.2.3", "1.2.3.4", "1.2.3.4.5")?, Some(record));
//!
//! let studies = index.search(&SearchQuery {
//!     level: Level::Study,
//!     filters: vec![Filter {
//!         level: Level::Study,
//!         tag: 0x0010_0010,
//!         matcher: Matcher::PersonName { values: vec!["mull*".into()], fuzzy: false },
//!         or_empty: false,
//!     }],
//!     offset: 0,
//!     limit: 10,
//! })?;
//! assert_eq!(studies[0].modalities_in_study, ["OT"]);
//!
//! let removed = index.delete(Scope::Study("1.2.3".into())).await?;
//! assert_eq!(removed[0].blob_key, "blobs/1.2.3.4.5");
//! assert_eq!(index.applied_sequence(), 2);
//! index.close().await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod durable_directory;
mod matching;
mod overlay;
mod read;
mod schema;
mod search_copy;
mod summaries;
mod top_by_key;
mod types;
mod writer;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use tantivy::{IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};
use tokio::sync::oneshot;

pub use crate::matching::{Filter, Matcher, date_key, datetime_key, fold_person_name, time_key};
pub use crate::search_copy::{SEARCH_COPY_BYTES, SEARCH_COPY_VALUE_BYTES, search_copy};
pub use crate::types::{
    HitInstance, IndexError, IndexStats, InstanceRecord, Level, Scope, SearchHit, SearchQuery,
    TAG_INSTANCE_NUMBER, TAG_MODALITIES_IN_STUDY, TAG_MODALITY, TAG_SERIES_INSTANCE_UID,
    TAG_SOP_INSTANCE_UID, TAG_STUDY_INSTANCE_UID,
};
pub use dicomweb_catalogue::IndexChange;

use crate::durable_directory::DurableDirectory;
use crate::schema::{Fields, SCHEMA_VERSION, SCHEMA_VERSION_FILE, build_schema};
use crate::writer::{Counters, Request, Writer};

/// Memory of tantivy's indexing buffer: documents are small and batches are committed at once.
const WRITER_MEMORY_BYTES: usize = 50_000_000;

/// Nice value of the index writer's threads (tantivy's indexing, merges and commit flushes). Index writes are
/// background work that searches never wait for (they lay unapplied changes over the index), so under load
/// they give the CPU to the threads that answer requests: on two cores a commit of a store storm's batch
/// otherwise stretches the slowest searches. Moderately (a weight of about a third of a request thread's):
/// the writer must keep up with a storm, or the overlay grows until searches wait for it.
const WRITER_NICENESS: i32 = 5;

/// Lowers the calling thread's CPU priority to [`WRITER_NICENESS`] (on Linux the nice value is per thread,
/// and threads inherit it from the thread that starts them). Raising a nice value needs no privilege.
fn yield_cpu_to_searches() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(None, WRITER_NICENESS) {
        tracing::debug!(%error, "could not lower the index writer's priority");
    }
}

/// Handle to the catalogue. Cheap to clone (all clones share one writer and one reader), `Send`
/// and `Sync`. Dropping the last clone stops the writer after the requests already queued; every
/// acknowledged write is already durable, so dropping without [`Index::close`] loses nothing
/// acknowledged.
#[derive(Clone)]
pub struct Index {
    inner: Arc<Inner>,
}

struct Inner {
    reader: IndexReader,
    fields: Fields,
    requests: Option<mpsc::Sender<Request>>,
    writer_thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    /// Study summaries computed by the last overlay, for the searches that follow.
    overlay_views: std::sync::Mutex<overlay::ViewCache>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop; joining releases tantivy's directory lock
        // before anyone reopens the same directory.
        self.requests.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

fn other_io(error: impl std::error::Error + Send + Sync + 'static) -> IndexError {
    IndexError::Io(std::io::Error::other(error))
}

/// Refuses an index written with another schema version; records the version for a new one.
fn check_schema_version(dir: &Path, directory: &DurableDirectory) -> Result<(), IndexError> {
    let path = dir.join(SCHEMA_VERSION_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let found = text.trim();
            if found == SCHEMA_VERSION.to_string() {
                Ok(())
            } else {
                Err(IndexError::SchemaMismatch {
                    found: found.to_owned(),
                    expected: SCHEMA_VERSION,
                })
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if tantivy::Index::exists(directory).map_err(other_io)? {
                return Err(IndexError::SchemaMismatch {
                    found: "unknown".to_owned(),
                    expected: SCHEMA_VERSION,
                });
            }
            // Written (durably) before the index exists, so an index never lacks it.
            let temporary = dir.join(format!("{SCHEMA_VERSION_FILE}.tmp"));
            let mut file = std::fs::File::create(&temporary)?;
            std::io::Write::write_all(&mut file, format!("{SCHEMA_VERSION}\n").as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

impl Index {
    /// Opens (creating if missing) the index in `dir`.
    ///
    /// A schema version file is kept next to tantivy's files; an index of another schema version
    /// is refused with `IndexError::SchemaMismatch` (the caller rebuilds it). The watermark is
    /// that of the last commit.
    /// Starts a dedicated writer thread, so it needs no tokio runtime (calling it within one is
    /// fine); it blocks on file I/O. Fails with a tantivy lock error if the directory is already
    /// open (in this or another process).
    pub fn open(dir: &Path) -> Result<Index, IndexError> {
        std::fs::create_dir_all(dir)?;
        durable_directory::repair_managed_list(dir)?;
        let directory = DurableDirectory::open(dir)?;
        check_schema_version(dir, &directory)?;
        let (schema, fields) = build_schema();
        let index = tantivy::Index::open_or_create(directory, schema).map_err(|e| match e {
            tantivy::TantivyError::SchemaError(message) => IndexError::Corrupt(message),
            other => IndexError::Tantivy(other),
        })?;
        Self::start(index, fields)
    }

    /// A fresh, empty index in memory (tests, benchmarks).
    pub fn open_in_ram() -> Result<Index, IndexError> {
        let (schema, fields) = build_schema();
        Self::start(tantivy::Index::create_in_ram(schema), fields)
    }

    fn start(index: tantivy::Index, fields: Fields) -> Result<Index, IndexError> {
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        // The watermark travels in the commit payload, atomically with the documents.
        let last_sequence = index
            .load_metas()?
            .payload
            .as_deref()
            .and_then(|payload| payload.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let counters = Arc::new(Counters::default());
        counters
            .last_sequence
            .store(last_sequence, Ordering::Relaxed);
        let (requests, receiver) = mpsc::channel();
        let (started, writer_ready) = mpsc::channel();
        let writer_thread = {
            let reader = reader.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("dicomweb-index-writer".into())
                .spawn(move || {
                    // Before tantivy's writer exists: its indexing and merge threads, and the flushes of
                    // each commit, are started from this thread and inherit its priority.
                    yield_cpu_to_searches();
                    let tantivy_writer: IndexWriter<TantivyDocument> =
                        match index.writer_with_num_threads(1, WRITER_MEMORY_BYTES) {
                            Ok(writer) => writer,
                            Err(error) => {
                                let _ = started.send(Err(error));
                                return;
                            }
                        };
                    let _ = started.send(Ok(()));
                    Writer {
                        writer: tantivy_writer,
                        reader,
                        fields,
                        last_sequence,
                        counters,
                    }
                    .run(receiver)
                })?
        };
        writer_ready
            .recv()
            .map_err(|_| IndexError::Closed)?
            .map_err(IndexError::Tantivy)?;
        Ok(Index {
            inner: Arc::new(Inner {
                reader,
                fields,
                requests: Some(requests),
                writer_thread: Some(writer_thread),
                counters,
                overlay_views: std::sync::Mutex::new(overlay::ViewCache::new()),
            }),
        })
    }

    fn send(&self, request: Request) -> Result<(), IndexError> {
        self.inner
            .requests
            .as_ref()
            .ok_or(IndexError::Closed)?
            .send(request)
            .map_err(|_| IndexError::Closed)
    }

    /// Catalogues an instance and appends its `create` change feed entry; returns the entry's
    /// sequence number after the commit that made both durable and visible to every reader
    /// (read-your-writes).
    ///
    /// `AlreadyExists` if the SOPInstanceUID is already catalogued, in any study or series
    /// (checked inside the writer, so of two concurrent inserts of one SOP exactly one wins).
    /// Concurrent calls are batched into one tantivy commit; if that commit fails, every call of
    /// the batch gets the error and nothing of the batch is visible. `Closed` after
    /// [`Index::close`].
    pub async fn insert(&self, record: InstanceRecord) -> Result<u64, IndexError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Insert { record, reply })?;
        answer.await.map_err(|_| IndexError::Closed)?
    }

    /// Removes every instance in scope in one commit, one change (sequence) per instance. Returns
    /// the removed records in the order of [`Index::instances`] (and, like it, with the
    /// [`search_copy`] as metadata); empty if nothing matched.
    pub async fn delete(&self, scope: Scope) -> Result<Vec<InstanceRecord>, IndexError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Delete { scope, reply })?;
        answer.await.map_err(|_| IndexError::Closed)?
    }

    /// Applies changes of the catalogue's log in sequence order, in one commit shared with
    /// concurrent requests, and returns the watermark after it. Changes at or below the watermark
    /// are skipped (replay is harmless); an insert replaces an indexed instance with the same
    /// SOPInstanceUID; a removal of an instance that is not indexed does nothing.
    pub async fn apply(&self, changes: Vec<IndexChange>) -> Result<u64, IndexError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Apply { changes, reply })?;
        answer.await.map_err(|_| IndexError::Closed)?
    }

    /// The sequence of the last change the committed index reflects (what readers see).
    pub fn applied_sequence(&self) -> u64 {
        self.inner.counters.last_sequence.load(Ordering::SeqCst)
    }

    /// The instance at this path, if indexed (all three UIDs must match).
    pub fn instance(
        &self,
        study: &str,
        series: &str,
        sop: &str,
    ) -> Result<Option<InstanceRecord>, IndexError> {
        let scope = Scope::Instance(study.into(), series.into(), sop.into());
        Ok(self.instances(&scope)?.into_iter().next())
    }

    /// Instances in scope in a stable order: series (by SeriesInstanceUID), then InstanceNumber
    /// (00200013) numerically if present (instances without one come after those with one),
    /// then SOPInstanceUID. Empty Vec if none. Their metadata is the [`search_copy`] of what was
    /// inserted (the same for [`Index::instance`] and [`Index::delete`]).
    pub fn instances(&self, scope: &Scope) -> Result<Vec<InstanceRecord>, IndexError> {
        read::instances_in_scope(&self.inner.reader.searcher(), &self.inner.fields, scope)
    }

    /// Is this SOPInstanceUID catalogued (any study/series)?
    pub fn contains_sop(&self, sop: &str) -> Result<bool, IndexError> {
        read::contains_sop(&self.inner.reader.searcher(), &self.inner.fields, sop)
    }

    /// Search at one level; see [`SearchQuery`], [`Filter`] and [`SearchHit`].
    ///
    /// Hits are ordered by StudyInstanceUID, then (series and instance levels)
    /// SeriesInstanceUID, then (instance level) SOPInstanceUID, in byte order; `offset`/`limit`
    /// page that order. Study and series attributes are those of the most recently stored
    /// instance of the study/series. Counts and modalities cover all instances of the
    /// study/series, not only the matching ones. Fails on an internal error, and with
    /// [`IndexError::QueryTooComplex`] for a wildcard value whose automaton is over tantivy's size
    /// limit.
    pub fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>, IndexError> {
        read::search(
            &self.inner.reader.searcher(),
            &self.inner.fields,
            query,
            None,
        )
    }

    /// [`Index::search`] as if `unapplied` had been applied: the hits (and counts, modalities and
    /// latest instances) equal those [`Index::search`] gives once [`Index::apply`] committed the
    /// same changes, without waiting for that commit. For read-your-writes while the index
    /// follows a log in the background: pass the log's changes after
    /// [`Index::applied_sequence`], in sequence order, without gaps, up to the last change the
    /// search must see. Changes at or below the watermark are skipped, and one the committed
    /// index already reflects (a commit that landed meanwhile) is harmless to pass.
    ///
    /// The changes are applied in memory for this search alone: the instances they name, and the
    /// summaries of the studies (and, for series and instance searches, series) they touch,
    /// recomputed from the committed instances. It costs a read of those studies' instance rows
    /// and a stored-document load per touched study (and series) whose latest instance is
    /// committed, except for studies no change touched since the previous such search (their
    /// summaries are kept); keep `unapplied` short by applying the log regularly.
    pub fn search_including<C: std::borrow::Borrow<IndexChange>>(
        &self,
        query: &SearchQuery,
        unapplied: &[C],
    ) -> Result<Vec<SearchHit>, IndexError> {
        // The watermark first: the searcher taken after it reflects at least that much.
        let applied = self.applied_sequence();
        let searcher = self.inner.reader.searcher();
        let mut changes = unapplied
            .iter()
            .map(std::borrow::Borrow::borrow)
            .filter(|change| change.sequence() > applied)
            .peekable();
        if changes.peek().is_none() {
            return read::search(&searcher, &self.inner.fields, query, None);
        }
        let with_series = query.level != Level::Study;
        let overlay = {
            // A panic while building leaves at worst views that are right or absent: take them anyway.
            let mut cache = self
                .inner
                .overlay_views
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            overlay::Overlay::build(
                &searcher,
                &self.inner.fields,
                changes,
                with_series,
                &mut cache,
            )?
        };
        read::search(&searcher, &self.inner.fields, query, Some(&overlay))
    }

    /// Counters since open: commits (to measure group commit), requests, last sequence.
    /// Cheap (atomics): suitable for benchmarks and metrics.
    pub fn stats(&self) -> IndexStats {
        let counters = &self.inner.counters;
        IndexStats {
            commits: counters.commits.load(Ordering::Relaxed),
            requests: counters.requests.load(Ordering::Relaxed),
            last_sequence: counters.last_sequence.load(Ordering::Relaxed),
        }
    }

    /// Fault injection for tests: the next batch that reaches commit fails as if tantivy's
    /// commit had failed (its documents were added, then are rolled back).
    #[doc(hidden)]
    pub fn fail_next_commit_for_tests(&self) {
        self.inner
            .counters
            .fail_next_commit
            .store(true, Ordering::Relaxed);
    }

    /// Number of indexed instances.
    pub fn instance_count(&self) -> Result<u64, IndexError> {
        let searcher = self.inner.reader.searcher();
        let query = read::term_query(self.inner.fields.kind, schema::KIND_INSTANCE);
        Ok(searcher.search(&*query, &tantivy::collector::Count)? as u64)
    }

    /// Flushes and stops the writer: requests queued before complete first, later writes get
    /// `Closed`. Reads keep working on the last commit. Closing twice is not an error.
    pub async fn close(&self) -> Result<(), IndexError> {
        let (reply, answer) = oneshot::channel();
        if self.send(Request::Close { reply }).is_err() {
            return Ok(());
        }
        // A dropped reply means the writer already stopped: closed either way.
        let _ = answer.await;
        Ok(())
    }
}
