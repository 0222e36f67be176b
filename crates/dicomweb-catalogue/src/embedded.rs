//! [`EmbeddedCatalogue`]: the catalogue of record in one redb database file, with group commit.
//!
//! # Why redb
//! The catalogue needs transactions over several keyed tables (instances by path and by SOPInstanceUID,
//! versions, the change feed, pending file deletions) with one fsync per commit and readers that never wait
//! for the writer. redb gives exactly that (copy-on-write B-trees, MVCC readers, a checksummed commit that
//! costs a single `fsync`), in pure Rust, so it is not written again here.
//!
//! # Tables
//! - `paths`: `study/series/sop` → version (UIDs contain no '/', so a study or series is a key range).
//! - `sops`: SOPInstanceUID → [`SopRow`] (path, version, blob key): uniqueness and change states.
//! - `versions`: version → [`VersionRow`] (the record and the sequence of its `create` entry). Kept after a
//!   deletion, so that every change feed entry can show the metadata of the version it recorded.
//! - `changes`: sequence → [`ChangeRow`].
//! - `pending_deletions`: storage key → version, files of removed instances not yet deleted.
//! - `copies`: storage key → the file's bytes, kept by [`Catalogue::commit_store_with_copy`] until the file is
//!   known to be durable in storage. Only the copies still kept at a checkpoint (or found in the log at
//!   start) are written here; see *Copies* below.
//! - `meta`: counters (`last_sequence`, `last_version`).
//!
//! # Writes
//! One writer thread takes the first queued request, drains whatever else is queued (up to [`MAX_BATCH`]),
//! applies them in one write transaction, appends the table mutations to the redo log
//! (`catalogue.log`, [`crate::redo_log`]) and flushes it (the commit point), commits the transaction to
//! redb without durability (visible to readers at once, on disk at the next checkpoint) and only then
//! answers each request: the concurrent stores of many clients share one `fdatasync`. A checkpoint, a
//! durable redb commit, follows within [`CHECKPOINT_INTERVAL`] of the first batch after the previous one
//! (or once the log holds [`CHECKPOINT_LOG_BYTES`]), and at shutdown; then the log is rewound. Opening
//! replays the records redb does not hold durably (`meta.last_lsn` says which), in one durable commit.
//! Reads run on tokio's blocking pool in their own read transaction, which sees every commit that returned
//! before it began.
//!
//! # Copies
//! A copy usually lives less than a second: its file is flushed and the copy released well before the next
//! checkpoint. Writing each one into redb (a 10 KiB value: pages allocated, checksummed, freed again) cost
//! about a fifth of the writer's time and wrote the bytes a third time. So a copy is made durable by the
//! redo log alone and kept in memory ([`LoggedCopies`]) until it is released; a checkpoint writes the
//! copies still kept into the `copies` table before it rewinds the log that held them. A release removes the
//! copy from memory and, if a checkpoint had carried it, from the table; the release is logged either way,
//! so that a replay, which applies every logged operation to the tables, ends with exactly the copies kept.
//!
//! A failed flush of the log (or of its rewind) stops every later write, as PostgreSQL does after a failed
//! WAL fsync: what the kernel did with the unflushed pages is unknown, and a restart replays what was
//! acknowledged.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::Catalogue;
use crate::redo_log::{Op, RedoLog, Table};
use crate::types::{
    CatalogueError, ChangeAction, ChangeFeedEntry, ChangeQuery, ChangeState, IndexChange,
    InstancePage, InstancePath, InstanceRecord, Scope, sort_instances,
};

/// File name of the database inside the catalogue directory.
const DATABASE_FILE: &str = "catalogue.redb";

/// File name of the redo log inside the catalogue directory.
const LOG_FILE: &str = "catalogue.log";

/// Most requests applied in one commit.
const MAX_BATCH: usize = 1000;

/// Longest time a logged batch waits, by default, for the checkpoint that makes it durable in redb itself
/// ([`EmbeddedOptions::checkpoint_interval`]).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Log size past which the writer checkpoints at once (bounds the log and the replay at start).
const CHECKPOINT_LOG_BYTES: u64 = 64 << 20;

const PATHS: TableDefinition<&str, u64> = TableDefinition::new("paths");
const SOPS: TableDefinition<&str, &[u8]> = TableDefinition::new("sops");
const VERSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("versions");
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
const PENDING_DELETIONS: TableDefinition<&str, u64> = TableDefinition::new("pending_deletions");
const COPIES: TableDefinition<&str, &[u8]> = TableDefinition::new("copies");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const LAST_SEQUENCE: &str = "last_sequence";
const LAST_VERSION: &str = "last_version";
const LAST_TIMESTAMP: &str = "last_timestamp_micros";
/// The lsn of the last redo log record this database holds (durably once checkpointed).
const LAST_LSN: &str = "last_lsn";

/// Where a catalogued SOP instance is now.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SopRow {
    path: String,
    version: u64,
    blob_key: String,
}

/// One stored version of an instance.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct VersionRow {
    /// Sequence of the `create` entry that catalogued this version.
    sequence: u64,
    record: InstanceRecord,
}

/// A [`VersionRow`] read for a listing: the same encoding, its metadata borrowed from the page and dropped
/// rather than copied (a study's listing would otherwise copy every instance's DICOM JSON).
#[derive(serde::Deserialize)]
struct ListedVersionRow<'a> {
    #[allow(dead_code)] // in the encoding before the record; not needed by a listing
    sequence: u64,
    #[serde(borrow)]
    record: ListedRecord<'a>,
}

/// [`InstanceRecord`]'s fields in its order, with `metadata` borrowed.
#[derive(serde::Deserialize)]
struct ListedRecord<'a> {
    study_instance_uid: String,
    series_instance_uid: String,
    sop_instance_uid: String,
    sop_class_uid: String,
    transfer_syntax_uid: String,
    blob_key: String,
    size: u64,
    stored_at: OffsetDateTime,
    #[allow(dead_code)] // skipped: what a listing leaves out
    #[serde(borrow)]
    metadata: &'a [u8],
    pixel_layout: Option<String>,
    attributes: Vec<(u32, Vec<String>)>,
}

impl ListedRecord<'_> {
    fn into_record(self) -> InstanceRecord {
        InstanceRecord {
            study_instance_uid: self.study_instance_uid,
            series_instance_uid: self.series_instance_uid,
            sop_instance_uid: self.sop_instance_uid,
            sop_class_uid: self.sop_class_uid,
            transfer_syntax_uid: self.transfer_syntax_uid,
            blob_key: self.blob_key,
            size: self.size,
            stored_at: self.stored_at,
            metadata: Vec::new(),
            pixel_layout: self.pixel_layout,
            attributes: self.attributes,
        }
    }
}

/// One change feed entry as stored.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ChangeRow {
    action: ChangeAction,
    study: String,
    series: String,
    sop: String,
    version: u64,
    timestamp_micros: i64,
}

/// Settings of [`EmbeddedCatalogue::open_with`].
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Longest time a committed batch stays in the redo log only before a checkpoint writes it into the
    /// database file (default 1 s). Shorter means more checkpoints (each a durable commit of the pages
    /// changed since the last) and a shorter replay after a crash.
    pub checkpoint_interval: Duration,
    /// Nice value of the writer thread (Linux; default 0, the caller's priority). A server that must keep
    /// searches quick while clients store raises it: the writer then yields the CPU to them under load, and
    /// runs at full speed when nothing else wants it. Raising needs no privilege; lowering below the
    /// process's needs `CAP_SYS_NICE`, and a value that cannot be set is ignored (logged at debug).
    pub writer_niceness: i32,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            checkpoint_interval: CHECKPOINT_INTERVAL,
            writer_niceness: 0,
        }
    }
}

/// Copies durable in the redo log and not (yet) in the `copies` table: storage key → bytes. Written by the
/// writer thread only (after the commit that logged the change), read by
/// [`Catalogue::unpublished_copies`].
type LoggedCopies = Arc<std::sync::Mutex<std::collections::BTreeMap<String, Bytes>>>;

fn lock_copies(
    copies: &LoggedCopies,
) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Bytes>> {
    // The map is changed by whole inserts and removes: a panic elsewhere cannot leave it half-changed.
    copies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The embedded catalogue of record. Cheap to clone; all clones share one database and one writer thread.
/// Dropping the last clone stops the writer after the requests already queued; every acknowledged write is
/// already durable.
#[derive(Clone)]
pub struct EmbeddedCatalogue {
    inner: Arc<Inner>,
}

struct Inner {
    database: Arc<Database>,
    logged_copies: LoggedCopies,
    requests: Option<mpsc::Sender<Request>>,
    writer_thread: Option<JoinHandle<()>>,
    last_sequence: Arc<AtomicU64>,
    last_version: Arc<AtomicU64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop; joining releases the database file before anyone reopens it.
        self.requests.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for EmbeddedCatalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedCatalogue")
            .field("last_sequence", &self.last_sequence())
            .finish_non_exhaustive()
    }
}

enum Request {
    Store {
        version: u64,
        record: Box<InstanceRecord>,
        copy: Option<Bytes>,
        reply: oneshot::Sender<Result<u64, CatalogueError>>,
    },
    Delete {
        scope: Scope,
        reply: oneshot::Sender<Result<Vec<InstanceRecord>, CatalogueError>>,
    },
    DeletionsDone {
        keys: Vec<String>,
        reply: oneshot::Sender<Result<(), CatalogueError>>,
    },
    CopiesPublished {
        keys: Vec<String>,
        reply: oneshot::Sender<Result<(), CatalogueError>>,
    },
}

fn db_error(error: impl std::fmt::Display) -> CatalogueError {
    CatalogueError::Database(error.to_string())
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, CatalogueError> {
    postcard::to_allocvec(value).map_err(|e| CatalogueError::Corrupt(e.to_string()))
}

fn decode<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CatalogueError> {
    postcard::from_bytes(bytes).map_err(|e| CatalogueError::Corrupt(e.to_string()))
}

fn path_of(study: &str, series: &str, sop: &str) -> String {
    format!("{study}/{series}/{sop}")
}

/// The key range of a scope in `paths`: every key starting with `prefix` (which ends in '/', the byte after
/// which is '0').
fn prefix_range(prefix: &str) -> (String, String) {
    let mut end = prefix.to_owned();
    end.pop();
    end.push('0');
    (prefix.to_owned(), end)
}

fn now_micros() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1000).unwrap_or(i64::MAX)
}

fn timestamp_of(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl EmbeddedCatalogue {
    /// Opens (creating if missing) the catalogue in directory `dir`. After a crash redb checks and, if
    /// needed, repairs the file before it opens, then the redo log's records after redb's last checkpoint
    /// are replayed. Fails if another process has it open.
    pub fn open(dir: &Path) -> Result<EmbeddedCatalogue, CatalogueError> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// [`EmbeddedCatalogue::open`] with other settings.
    pub fn open_with(
        dir: &Path,
        options: EmbeddedOptions,
    ) -> Result<EmbeddedCatalogue, CatalogueError> {
        std::fs::create_dir_all(dir).map_err(db_error)?;
        let database = Database::create(dir.join(DATABASE_FILE)).map_err(db_error)?;
        let (mut log, records) = RedoLog::open(&dir.join(LOG_FILE)).map_err(db_error)?;
        let (last_sequence, last_version, lsn) = replay(&database, &records)?;
        // Everything the log held is durable in redb now.
        log.rewind().map_err(db_error)?;
        let copies_in_table = copy_keys_in_table(&database)?;
        let database = Arc::new(database);
        let logged_copies = LoggedCopies::default();
        let last_sequence = Arc::new(AtomicU64::new(last_sequence));
        let last_version = Arc::new(AtomicU64::new(last_version));
        let writer = Writer {
            database: database.clone(),
            last_sequence: last_sequence.clone(),
            last_version: last_version.clone(),
            log,
            lsn,
            logged_copies: logged_copies.clone(),
            copies_in_table,
            logged_since: None,
            broken: None,
            checkpoint_interval: options.checkpoint_interval,
        };
        let (requests, receiver) = mpsc::channel();
        let niceness = options.writer_niceness;
        let writer_thread = std::thread::Builder::new()
            .name("dicomweb-catalogue-writer".into())
            .spawn(move || {
                set_thread_niceness(niceness);
                writer.run(receiver)
            })
            .map_err(db_error)?;
        Ok(EmbeddedCatalogue {
            inner: Arc::new(Inner {
                database,
                logged_copies,
                requests: Some(requests),
                writer_thread: Some(writer_thread),
                last_sequence,
                last_version,
            }),
        })
    }

    async fn write<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, CatalogueError>>) -> Request,
    ) -> Result<T, CatalogueError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .requests
            .as_ref()
            .ok_or(CatalogueError::Closed)?
            .send(request(reply))
            .map_err(|_| CatalogueError::Closed)?;
        answer.await.map_err(|_| CatalogueError::Closed)?
    }

    /// Runs `read` in a fresh read transaction on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&ReadTransaction) -> Result<T, CatalogueError> + Send + 'static,
    ) -> Result<T, CatalogueError> {
        let database = self.inner.database.clone();
        tokio::task::spawn_blocking(move || {
            let txn = database.begin_read().map_err(db_error)?;
            read(&txn)
        })
        .await
        .map_err(db_error)?
    }
}

/// The storage keys of the copies in the `copies` table.
fn copy_keys_in_table(
    database: &Database,
) -> Result<std::collections::HashSet<String>, CatalogueError> {
    let txn = database.begin_read().map_err(db_error)?;
    let copies = txn.open_table(COPIES).map_err(db_error)?;
    let mut keys = std::collections::HashSet::new();
    for entry in copies.iter().map_err(db_error)? {
        let (key, _) = entry.map_err(db_error)?;
        keys.insert(key.value().to_owned());
    }
    Ok(keys)
}

/// Sets the calling thread's nice value (on Linux it is per thread) unless it is 0.
fn set_thread_niceness(niceness: i32) {
    #[cfg(target_os = "linux")]
    if niceness != 0
        && let Err(error) = rustix::process::setpriority_process(None, niceness)
    {
        tracing::debug!(%error, niceness, "could not set the catalogue writer's priority");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = niceness;
}

/// Creates every table (so that readers never meet a missing one), applies the redo log records after the
/// database's `last_lsn` in one durable commit, and returns the counters (last sequence, last version, last
/// lsn) as they now stand.
fn replay(
    database: &Database,
    records: &[crate::redo_log::Record],
) -> Result<(u64, u64, u64), CatalogueError> {
    let txn = database.begin_write().map_err(db_error)?;
    let (counters, durable_lsn, replayed_ops) = {
        let mut tables = Tables::open(&txn)?;
        let durable_lsn = tables.counter(LAST_LSN)?;
        let mut lsn = durable_lsn;
        let mut replayed_ops = 0usize;
        for record in records.iter().filter(|record| record.lsn > durable_lsn) {
            if record.lsn != lsn + 1 {
                return Err(CatalogueError::Corrupt(format!(
                    "the redo log continues at batch {} but the database holds batches up to {lsn}: \
                     the batches in between are missing",
                    record.lsn
                )));
            }
            let ops = Op::decode_all(&record.payload).ok_or_else(|| {
                CatalogueError::Corrupt(format!(
                    "batch {} of the redo log is malformed",
                    record.lsn
                ))
            })?;
            for op in &ops {
                tables.apply(op)?;
            }
            replayed_ops += ops.len();
            lsn = record.lsn;
        }
        tables.meta.insert(LAST_LSN, lsn).map_err(db_error)?;
        let counters = (
            tables.counter(LAST_SEQUENCE)?,
            tables.counter(LAST_VERSION)?,
            lsn,
        );
        (counters, durable_lsn, replayed_ops)
    };
    txn.commit().map_err(db_error)?;
    if counters.2 > durable_lsn {
        tracing::info!(
            batches = counters.2 - durable_lsn,
            operations = replayed_ops,
            last_sequence = counters.0,
            "replayed the catalogue's redo log after an unclean stop"
        );
    }
    Ok(counters)
}

/// Every table, open in one write transaction (opening a table is a lookup and closing it a root update:
/// once per batch, not per operation).
struct Tables<'t> {
    paths: redb::Table<'t, &'static str, u64>,
    sops: redb::Table<'t, &'static str, &'static [u8]>,
    versions: redb::Table<'t, u64, &'static [u8]>,
    changes: redb::Table<'t, u64, &'static [u8]>,
    pending_deletions: redb::Table<'t, &'static str, u64>,
    copies: redb::Table<'t, &'static str, &'static [u8]>,
    meta: redb::Table<'t, &'static str, u64>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, CatalogueError> {
        Ok(Tables {
            paths: txn.open_table(PATHS).map_err(db_error)?,
            sops: txn.open_table(SOPS).map_err(db_error)?,
            versions: txn.open_table(VERSIONS).map_err(db_error)?,
            changes: txn.open_table(CHANGES).map_err(db_error)?,
            pending_deletions: txn.open_table(PENDING_DELETIONS).map_err(db_error)?,
            copies: txn.open_table(COPIES).map_err(db_error)?,
            meta: txn.open_table(META).map_err(db_error)?,
        })
    }

    fn counter(&self, name: &str) -> Result<u64, CatalogueError> {
        Ok(self
            .meta
            .get(name)
            .map_err(db_error)?
            .map_or(0, |v| v.value()))
    }

    fn str_u64(
        &mut self,
        table: Table,
    ) -> Result<&mut redb::Table<'t, &'static str, u64>, CatalogueError> {
        match table {
            Table::Paths => Ok(&mut self.paths),
            Table::PendingDeletions => Ok(&mut self.pending_deletions),
            Table::Meta => Ok(&mut self.meta),
            other => Err(CatalogueError::Corrupt(format!(
                "{other:?} is not keyed by string with integer values"
            ))),
        }
    }

    fn str_bytes(
        &mut self,
        table: Table,
    ) -> Result<&mut redb::Table<'t, &'static str, &'static [u8]>, CatalogueError> {
        match table {
            Table::Sops => Ok(&mut self.sops),
            Table::Copies => Ok(&mut self.copies),
            other => Err(CatalogueError::Corrupt(format!(
                "{other:?} is not keyed by string with byte values"
            ))),
        }
    }

    fn u64_bytes(
        &mut self,
        table: Table,
    ) -> Result<&mut redb::Table<'t, u64, &'static [u8]>, CatalogueError> {
        match table {
            Table::Versions => Ok(&mut self.versions),
            Table::Changes => Ok(&mut self.changes),
            other => Err(CatalogueError::Corrupt(format!(
                "{other:?} is not keyed by integer"
            ))),
        }
    }

    /// Applies one logged mutation (the writer's, or the replay's).
    fn apply(&mut self, op: &Op<'_>) -> Result<(), CatalogueError> {
        match *op {
            Op::PutStrU64(table, key, value) => {
                self.str_u64(table)?.insert(key, value).map_err(db_error)?;
            }
            Op::PutStrBytes(table, key, value) => {
                self.str_bytes(table)?
                    .insert(key, value)
                    .map_err(db_error)?;
            }
            Op::PutU64Bytes(table, key, value) => {
                self.u64_bytes(table)?
                    .insert(key, value)
                    .map_err(db_error)?;
            }
            Op::RemoveStr(table @ (Table::Paths | Table::PendingDeletions | Table::Meta), key) => {
                self.str_u64(table)?.remove(key).map_err(db_error)?;
            }
            Op::RemoveStr(table, key) => {
                self.str_bytes(table)?.remove(key).map_err(db_error)?;
            }
            Op::RemoveU64(table, key) => {
                self.u64_bytes(table)?.remove(key).map_err(db_error)?;
            }
        }
        Ok(())
    }
}

/// The writer's tables, recording every mutation applied to them for the redo log.
struct LoggedTxn<'t, 'w> {
    tables: Tables<'t>,
    ops: Vec<u8>,
    /// Keys of the copies in the `copies` table when the batch began.
    copies_in_table: &'w std::collections::HashSet<String>,
    /// The batch's changes to the copies kept in memory, in order; applied once the batch is committed.
    copy_changes: Vec<CopyChange>,
}

/// A change to [`LoggedCopies`].
enum CopyChange {
    Keep(String, Bytes),
    Release(String),
}

impl LoggedTxn<'_, '_> {
    fn apply(&mut self, op: Op<'_>) -> Result<(), CatalogueError> {
        self.tables.apply(&op)?;
        op.encode(&mut self.ops);
        Ok(())
    }

    /// Logs a copy without writing it into the `copies` table (see *Copies* in the module docs).
    fn keep_copy(&mut self, key: &str, copy: Bytes) {
        Op::PutStrBytes(Table::Copies, key, &copy).encode(&mut self.ops);
        self.copy_changes
            .push(CopyChange::Keep(key.to_owned(), copy));
    }

    /// Logs the release of a copy (unknown keys included, as before) and removes it from the `copies` table
    /// if a checkpoint carried it there.
    fn release_copy(&mut self, key: &str) -> Result<(), CatalogueError> {
        let op = Op::RemoveStr(Table::Copies, key);
        if self.copies_in_table.contains(key) {
            self.tables.apply(&op)?;
        }
        op.encode(&mut self.ops);
        self.copy_changes.push(CopyChange::Release(key.to_owned()));
        Ok(())
    }
}

/// Reads shared by read transactions and the writer's own transaction.
fn load_version(
    versions: &impl ReadableTable<u64, &'static [u8]>,
    version: u64,
) -> Result<VersionRow, CatalogueError> {
    let guard = versions
        .get(version)
        .map_err(db_error)?
        .ok_or_else(|| CatalogueError::Corrupt(format!("version {version} is missing")))?;
    decode(guard.value())
}

/// [`load_version`]'s record without its metadata.
fn load_listed_version(
    versions: &impl ReadableTable<u64, &'static [u8]>,
    version: u64,
) -> Result<InstanceRecord, CatalogueError> {
    let guard = versions
        .get(version)
        .map_err(db_error)?
        .ok_or_else(|| CatalogueError::Corrupt(format!("version {version} is missing")))?;
    let row: ListedVersionRow = decode(guard.value())?;
    Ok(row.record.into_record())
}

fn load_sop(
    sops: &impl ReadableTable<&'static str, &'static [u8]>,
    sop: &str,
) -> Result<Option<SopRow>, CatalogueError> {
    match sops.get(sop).map_err(db_error)? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

fn versions_in_scope(
    paths: &impl ReadableTable<&'static str, u64>,
    scope: &Scope,
) -> Result<Vec<u64>, CatalogueError> {
    let prefix = match scope {
        Scope::Instance(study, series, sop) => {
            return Ok(paths
                .get(path_of(study, series, sop).as_str())
                .map_err(db_error)?
                .map(|v| v.value())
                .into_iter()
                .collect());
        }
        Scope::Study(study) => format!("{study}/"),
        Scope::Series(study, series) => format!("{study}/{series}/"),
    };
    let (start, end) = prefix_range(&prefix);
    let mut versions = Vec::new();
    for entry in paths
        .range(start.as_str()..end.as_str())
        .map_err(db_error)?
    {
        let (_, version) = entry.map_err(db_error)?;
        versions.push(version.value());
    }
    Ok(versions)
}

fn load_change(
    changes: &impl ReadableTable<u64, &'static [u8]>,
    sequence: u64,
) -> Result<Option<ChangeRow>, CatalogueError> {
    match changes.get(sequence).map_err(db_error)? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

/// The first sequence in `[low, high]` whose timestamp is at least `micros` (timestamps never decrease with
/// the sequence), or `high + 1`.
fn first_at_or_after(
    changes: &impl ReadableTable<u64, &'static [u8]>,
    mut low: u64,
    mut high_exclusive: u64,
    micros: i64,
) -> Result<u64, CatalogueError> {
    while low < high_exclusive {
        let middle = low + (high_exclusive - low) / 2;
        let at = load_change(changes, middle)?.map_or(i64::MAX, |row| row.timestamp_micros);
        if at < micros {
            low = middle + 1;
        } else {
            high_exclusive = middle;
        }
    }
    Ok(low)
}

fn entry_of(
    txn: &ReadTransaction,
    sequence: u64,
    row: ChangeRow,
    include_metadata: bool,
) -> Result<ChangeFeedEntry, CatalogueError> {
    let sops = txn.open_table(SOPS).map_err(db_error)?;
    let state = match row.action {
        ChangeAction::Delete => ChangeState::Deleted,
        ChangeAction::Create => match load_sop(&sops, &row.sop)? {
            Some(now) if now.version == row.version => ChangeState::Current,
            Some(_) => ChangeState::Replaced,
            None => ChangeState::Deleted,
        },
    };
    let metadata = if include_metadata {
        let versions = txn.open_table(VERSIONS).map_err(db_error)?;
        Some(load_version(&versions, row.version)?.record.metadata)
    } else {
        None
    };
    Ok(ChangeFeedEntry {
        sequence,
        study_instance_uid: row.study,
        series_instance_uid: row.series,
        sop_instance_uid: row.sop,
        action: row.action,
        timestamp: timestamp_of(row.timestamp_micros),
        state,
        metadata,
    })
}

#[async_trait::async_trait]
impl Catalogue for EmbeddedCatalogue {
    async fn allocate_version(&self) -> Result<u64, CatalogueError> {
        // Microseconds since the epoch, bumped past the last one handed out: unique, increasing, and after a
        // restart larger than anything before (the last committed version is persisted, and time moved on).
        let now = u64::try_from(now_micros()).unwrap_or(0);
        let previous = self
            .inner
            .last_version
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or_else(|last| last);
        Ok(now.max(previous + 1))
    }

    async fn commit_store(
        &self,
        version: u64,
        record: InstanceRecord,
    ) -> Result<u64, CatalogueError> {
        self.write(|reply| Request::Store {
            version,
            record: Box::new(record),
            copy: None,
            reply,
        })
        .await
    }

    async fn commit_store_with_copy(
        &self,
        version: u64,
        record: InstanceRecord,
        copy: Bytes,
    ) -> Result<u64, CatalogueError> {
        self.write(|reply| Request::Store {
            version,
            record: Box::new(record),
            copy: Some(copy),
            reply,
        })
        .await
    }

    async fn unpublished_copies(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, Bytes)>, CatalogueError> {
        let database = self.inner.database.clone();
        let logged_copies = self.inner.logged_copies.clone();
        let lower = match &after {
            Some(after) => std::ops::Bound::Excluded(after.clone()),
            None => std::ops::Bound::Unbounded,
        };
        tokio::task::spawn_blocking(move || {
            // The map first, the transaction under its lock: a checkpoint removes copies from the map only
            // after the commit that wrote them into the table, so each copy is in one or the other.
            let (txn, in_memory) = {
                let logged_copies = lock_copies(&logged_copies);
                let txn = database.begin_read().map_err(db_error)?;
                let in_memory: Vec<(String, Bytes)> = logged_copies
                    .range((lower, std::ops::Bound::Unbounded))
                    .take(limit)
                    .map(|(key, copy)| (key.clone(), copy.clone()))
                    .collect();
                (txn, in_memory)
            };
            let copies = txn.open_table(COPIES).map_err(db_error)?;
            let range = match &after {
                Some(after) => copies.range::<&str>((
                    std::ops::Bound::Excluded(after.as_str()),
                    std::ops::Bound::Unbounded,
                )),
                None => copies.range::<&str>(..),
            }
            .map_err(db_error)?;
            // Both lists are sorted by key; a key in both (a copy kept again after a checkpoint carried
            // it) takes the bytes in memory, the newer.
            let mut found = std::collections::BTreeMap::new();
            for entry in range.take(limit) {
                let (key, bytes) = entry.map_err(db_error)?;
                found.insert(
                    key.value().to_owned(),
                    Bytes::copy_from_slice(bytes.value()),
                );
            }
            found.extend(in_memory);
            Ok(found.into_iter().take(limit).collect())
        })
        .await
        .map_err(db_error)?
    }

    async fn copies_published(&self, keys: Vec<String>) -> Result<(), CatalogueError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(|reply| Request::CopiesPublished { keys, reply })
            .await
    }

    async fn commit_delete(&self, scope: &Scope) -> Result<Vec<InstanceRecord>, CatalogueError> {
        let scope = scope.clone();
        self.write(|reply| Request::Delete { scope, reply }).await
    }

    async fn pending_blob_deletions(&self) -> Result<Vec<String>, CatalogueError> {
        self.read(|txn| {
            let pending = txn.open_table(PENDING_DELETIONS).map_err(db_error)?;
            let mut keys = Vec::new();
            for entry in pending.iter().map_err(db_error)? {
                let (key, _) = entry.map_err(db_error)?;
                keys.push(key.value().to_owned());
            }
            Ok(keys)
        })
        .await
    }

    async fn blob_deletions_done(&self, keys: Vec<String>) -> Result<(), CatalogueError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(|reply| Request::DeletionsDone { keys, reply })
            .await
    }

    async fn instance(
        &self,
        study: &str,
        series: &str,
        sop: &str,
    ) -> Result<Option<InstanceRecord>, CatalogueError> {
        let scope = Scope::Instance(study.into(), series.into(), sop.into());
        Ok(self.instances(&scope).await?.into_iter().next())
    }

    async fn instances(&self, scope: &Scope) -> Result<Vec<InstanceRecord>, CatalogueError> {
        let scope = scope.clone();
        self.read(move |txn| {
            let paths = txn.open_table(PATHS).map_err(db_error)?;
            let versions = txn.open_table(VERSIONS).map_err(db_error)?;
            let mut records = versions_in_scope(&paths, &scope)?
                .into_iter()
                .map(|version| Ok(load_version(&versions, version)?.record))
                .collect::<Result<Vec<_>, CatalogueError>>()?;
            sort_instances(&mut records);
            Ok(records)
        })
        .await
    }

    async fn instance_listing(&self, scope: &Scope) -> Result<Vec<InstanceRecord>, CatalogueError> {
        let scope = scope.clone();
        self.read(move |txn| {
            let paths = txn.open_table(PATHS).map_err(db_error)?;
            let versions = txn.open_table(VERSIONS).map_err(db_error)?;
            let mut records = versions_in_scope(&paths, &scope)?
                .into_iter()
                .map(|version| load_listed_version(&versions, version))
                .collect::<Result<Vec<_>, CatalogueError>>()?;
            sort_instances(&mut records);
            Ok(records)
        })
        .await
    }

    async fn instances_at(
        &self,
        asked: &[InstancePath],
        metadata_budget: usize,
    ) -> Result<Vec<Option<InstanceRecord>>, CatalogueError> {
        let asked = asked.to_vec();
        self.read(move |txn| {
            let paths = txn.open_table(PATHS).map_err(db_error)?;
            let versions = txn.open_table(VERSIONS).map_err(db_error)?;
            let mut records = Vec::new();
            let mut bytes = 0usize;
            for path in &asked {
                if !records.is_empty() && bytes >= metadata_budget {
                    break;
                }
                let key = path_of(&path.study, &path.series, &path.sop);
                let version = paths
                    .get(key.as_str())
                    .map_err(db_error)?
                    .map(|v| v.value());
                let record = match version {
                    Some(version) => Some(load_version(&versions, version)?.record),
                    None => None,
                };
                bytes += record.as_ref().map_or(0, |r| r.metadata.len());
                records.push(record);
            }
            Ok(records)
        })
        .await
    }

    async fn blob_key_of(&self, sop: &str) -> Result<Option<String>, CatalogueError> {
        let sop = sop.to_owned();
        self.read(move |txn| {
            let sops = txn.open_table(SOPS).map_err(db_error)?;
            Ok(load_sop(&sops, &sop)?.map(|row| row.blob_key))
        })
        .await
    }

    async fn changes(&self, query: &ChangeQuery) -> Result<Vec<ChangeFeedEntry>, CatalogueError> {
        let query = query.clone();
        let last = self.last_sequence();
        self.read(move |txn| {
            let changes = txn.open_table(CHANGES).map_err(db_error)?;
            let mut start = query.after_sequence.saturating_add(1);
            if let Some(time) = query.start_time {
                let micros = i64::try_from(time.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX);
                start = first_at_or_after(&changes, start, last.saturating_add(1), micros)?;
            }
            // Sequences are gap-free and timestamps never decrease, so the filtered entries are one run.
            start = start.saturating_add(query.skip);
            let end_micros = query
                .end_time
                .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX));
            let mut entries = Vec::new();
            let mut sequence = start;
            while entries.len() < query.limit && sequence <= last {
                let Some(row) = load_change(&changes, sequence)? else {
                    break;
                };
                if end_micros.is_some_and(|end| row.timestamp_micros >= end) {
                    break;
                }
                entries.push(entry_of(txn, sequence, row, query.include_metadata)?);
                sequence += 1;
            }
            Ok(entries)
        })
        .await
    }

    async fn latest_change(
        &self,
        include_metadata: bool,
    ) -> Result<Option<ChangeFeedEntry>, CatalogueError> {
        let last = self.last_sequence();
        if last == 0 {
            return Ok(None);
        }
        self.read(move |txn| {
            let changes = txn.open_table(CHANGES).map_err(db_error)?;
            match load_change(&changes, last)? {
                Some(row) => Ok(Some(entry_of(txn, last, row, include_metadata)?)),
                None => Ok(None),
            }
        })
        .await
    }

    fn last_sequence(&self) -> u64 {
        self.inner.last_sequence.load(Ordering::SeqCst)
    }

    async fn index_feed(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<IndexChange>, CatalogueError> {
        self.read(move |txn| {
            let changes = txn.open_table(CHANGES).map_err(db_error)?;
            let versions = txn.open_table(VERSIONS).map_err(db_error)?;
            let mut feed = Vec::new();
            let start = after.saturating_add(1);
            for entry in changes.range(start..).map_err(db_error)?.take(limit) {
                let (sequence, row) = entry.map_err(db_error)?;
                let sequence = sequence.value();
                let row: ChangeRow = decode(row.value())?;
                feed.push(match row.action {
                    ChangeAction::Create => IndexChange::Insert {
                        sequence,
                        record: load_version(&versions, row.version)?.record,
                    },
                    ChangeAction::Delete => IndexChange::Remove {
                        sequence,
                        study_instance_uid: row.study,
                        sop_instance_uid: row.sop,
                    },
                });
            }
            Ok(feed)
        })
        .await
    }

    async fn current_instances(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<InstancePage, CatalogueError> {
        self.read(move |txn| {
            let paths = txn.open_table(PATHS).map_err(db_error)?;
            let versions = txn.open_table(VERSIONS).map_err(db_error)?;
            let range = match &after {
                Some(after) => paths.range::<&str>((
                    std::ops::Bound::Excluded(after.as_str()),
                    std::ops::Bound::Unbounded,
                )),
                None => paths.range::<&str>(..),
            }
            .map_err(db_error)?;
            let mut instances = Vec::new();
            let mut last_path = None;
            for entry in range.take(limit) {
                let (path, version) = entry.map_err(db_error)?;
                let row = load_version(&versions, version.value())?;
                instances.push((row.sequence, row.record));
                last_path = Some(path.value().to_owned());
            }
            let next = if instances.len() == limit && limit > 0 {
                last_path
            } else {
                None
            };
            Ok(InstancePage { instances, next })
        })
        .await
    }

    async fn instance_count(&self) -> Result<u64, CatalogueError> {
        self.read(|txn| {
            let paths = txn.open_table(PATHS).map_err(db_error)?;
            paths.len().map_err(db_error)
        })
        .await
    }
}

/// The writer thread's state.
struct Writer {
    database: Arc<Database>,
    last_sequence: Arc<AtomicU64>,
    /// Shared with `allocate_version`: a committed version (say, one a rebuild took from a file name) is
    /// never handed out again.
    last_version: Arc<AtomicU64>,
    log: RedoLog,
    /// The lsn of the last batch committed.
    lsn: u64,
    /// Copies kept by the log alone (shared with readers).
    logged_copies: LoggedCopies,
    /// Storage keys of the copies in the `copies` table (carried there by a checkpoint or a replay).
    copies_in_table: std::collections::HashSet<String>,
    /// When the first batch after the last checkpoint was logged.
    logged_since: Option<Instant>,
    /// Why writes stopped: the log could not be flushed.
    broken: Option<String>,
    checkpoint_interval: Duration,
}

/// A request applied in the open transaction, with its answer once the commit is known.
enum Applied {
    Store(
        oneshot::Sender<Result<u64, CatalogueError>>,
        Result<u64, CatalogueError>,
    ),
    Delete(
        oneshot::Sender<Result<Vec<InstanceRecord>, CatalogueError>>,
        Result<Vec<InstanceRecord>, CatalogueError>,
    ),
    /// Deletions done or copies released.
    Released(oneshot::Sender<Result<(), CatalogueError>>),
}

/// Counters advanced by the requests of one batch.
struct BatchCounters {
    last_sequence: u64,
    last_version: u64,
    last_timestamp_micros: i64,
}

impl Writer {
    fn run(mut self, requests: mpsc::Receiver<Request>) {
        loop {
            let first = match self.logged_since {
                Some(since) => {
                    match requests
                        .recv_timeout(self.checkpoint_interval.saturating_sub(since.elapsed()))
                    {
                        Ok(request) => request,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            self.checkpoint();
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match requests.recv() {
                    Ok(request) => request,
                    Err(_) => break,
                },
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.process(batch);
            if self.log.len() >= CHECKPOINT_LOG_BYTES
                || self
                    .logged_since
                    .is_some_and(|since| since.elapsed() >= self.checkpoint_interval)
            {
                self.checkpoint();
            }
        }
        // A clean stop leaves nothing to replay.
        self.checkpoint();
    }

    /// Makes everything committed so far durable in redb (one durable commit writes the pages the
    /// non-durable commits left in memory) and rewinds the log. A failure is logged and retried later: the
    /// log still holds every batch.
    fn checkpoint(&mut self) {
        if self.logged_since.is_none() || self.broken.is_some() {
            return;
        }
        // The copies still kept go into the table: the log that holds them is about to be rewound.
        let carried: Vec<(String, Bytes)> = lock_copies(&self.logged_copies)
            .iter()
            .map(|(key, copy)| (key.clone(), copy.clone()))
            .collect();
        let outcome = (|| -> Result<(), CatalogueError> {
            let txn = self.database.begin_write().map_err(db_error)?;
            {
                let mut copies = txn.open_table(COPIES).map_err(db_error)?;
                for (key, copy) in &carried {
                    copies
                        .insert(key.as_str(), copy.as_ref())
                        .map_err(db_error)?;
                }
            }
            txn.open_table(META)
                .map_err(db_error)?
                .insert(LAST_LSN, self.lsn)
                .map_err(db_error)?;
            txn.commit().map_err(db_error)
        })();
        match outcome {
            Ok(()) => {
                // After the commit, so that a reader finds each copy in memory or in the table.
                let mut logged_copies = lock_copies(&self.logged_copies);
                for (key, _) in carried {
                    logged_copies.remove(&key);
                    self.copies_in_table.insert(key);
                }
                drop(logged_copies);
                if let Err(error) = self.log.rewind() {
                    tracing::error!(%error, "the catalogue's redo log could not be rewound; writes stop");
                    self.broken = Some(format!(
                        "the catalogue's redo log could not be rewound: {error}"
                    ));
                    return;
                }
                self.logged_since = None;
            }
            Err(error) => {
                tracing::warn!(%error, "catalogue checkpoint failed; the redo log keeps every batch");
                // Try again after another interval rather than after every batch.
                self.logged_since = Some(Instant::now());
            }
        }
    }

    fn process(&mut self, batch: Vec<Request>) {
        let mut applied = Vec::with_capacity(batch.len());
        let outcome = self.apply_and_commit(batch, &mut applied);
        if let Err(error) = &outcome {
            tracing::error!(%error, "catalogue commit failed; the batch is rolled back");
        }
        for request in applied {
            match request {
                Applied::Store(reply, result) => {
                    let _ = reply.send(match &outcome {
                        Ok(()) => result,
                        Err(error) => Err(error.replicate()),
                    });
                }
                Applied::Delete(reply, result) => {
                    let _ = reply.send(match &outcome {
                        Ok(()) => result,
                        Err(error) => Err(error.replicate()),
                    });
                }
                Applied::Released(reply) => {
                    let _ = reply.send(match &outcome {
                        Ok(()) => Ok(()),
                        Err(error) => Err(error.replicate()),
                    });
                }
            }
        }
    }

    /// Applies every request in one transaction, logs it and commits it. Per-request refusals
    /// (`AlreadyExists`) stay with their request; any other error abandons the transaction (nothing of the
    /// batch is committed).
    fn apply_and_commit(
        &mut self,
        batch: Vec<Request>,
        applied: &mut Vec<Applied>,
    ) -> Result<(), CatalogueError> {
        let mut txn = self.database.begin_write().map_err(db_error)?;
        // Durable through the log: redb writes the pages at the next checkpoint.
        txn.set_durability(Durability::None).map_err(db_error)?;
        let lsn = self.lsn + 1;
        let (ops, counters, copy_changes) = {
            let mut logged = LoggedTxn {
                tables: Tables::open(&txn)?,
                ops: Vec::new(),
                copies_in_table: &self.copies_in_table,
                copy_changes: Vec::new(),
            };
            let mut counters = BatchCounters {
                last_sequence: logged.tables.counter(LAST_SEQUENCE)?,
                last_version: logged.tables.counter(LAST_VERSION)?,
                last_timestamp_micros: i64::try_from(logged.tables.counter(LAST_TIMESTAMP)?)
                    .unwrap_or(0),
            };
            // Once the log is broken every request fails as after any other error of the batch.
            let mut failure = self.broken.as_ref().map(|reason| {
                CatalogueError::Database(format!("{reason}; restart the server to recover"))
            });
            for request in batch {
                match request {
                    Request::Store {
                        version,
                        record,
                        copy,
                        reply,
                    } => {
                        let result = match &failure {
                            Some(_) => Err(CatalogueError::Closed),
                            None => apply_store(&mut logged, &mut counters, version, *record, copy),
                        };
                        let result = keep_batch_error(result, &mut failure);
                        applied.push(Applied::Store(reply, result));
                    }
                    Request::Delete { scope, reply } => {
                        let result = match &failure {
                            Some(_) => Err(CatalogueError::Closed),
                            None => apply_delete(&mut logged, &mut counters, &scope),
                        };
                        let result = keep_batch_error(result, &mut failure);
                        applied.push(Applied::Delete(reply, result));
                    }
                    Request::DeletionsDone { keys, reply } => {
                        if failure.is_none()
                            && let Err(error) =
                                remove_keys(&mut logged, Table::PendingDeletions, &keys)
                        {
                            failure = Some(error);
                        }
                        applied.push(Applied::Released(reply));
                    }
                    Request::CopiesPublished { keys, reply } => {
                        if failure.is_none()
                            && let Err(error) =
                                keys.iter().try_for_each(|key| logged.release_copy(key))
                        {
                            failure = Some(error);
                        }
                        applied.push(Applied::Released(reply));
                    }
                }
            }
            if let Some(error) = failure {
                // Dropping the transaction aborts it.
                return Err(error);
            }
            logged.apply(Op::PutStrU64(
                Table::Meta,
                LAST_SEQUENCE,
                counters.last_sequence,
            ))?;
            logged.apply(Op::PutStrU64(
                Table::Meta,
                LAST_VERSION,
                counters.last_version,
            ))?;
            logged.apply(Op::PutStrU64(
                Table::Meta,
                LAST_TIMESTAMP,
                u64::try_from(counters.last_timestamp_micros).unwrap_or(0),
            ))?;
            logged.tables.meta.insert(LAST_LSN, lsn).map_err(db_error)?;
            (logged.ops, counters, logged.copy_changes)
        };
        // The commit point: once the record is flushed, a restart replays the batch.
        let record_start = self.log.len();
        if let Err(error) = self.log.append(lsn, &ops) {
            if self.log.is_broken() {
                self.broken = Some(format!(
                    "the catalogue's redo log could not be flushed: {error}"
                ));
            }
            return Err(db_error(format!(
                "appending to the catalogue's redo log: {error}"
            )));
        }
        if let Err(error) = txn.commit() {
            // The next batch overwrites the record (a crash before that replays it: the requests were
            // answered with an error, as after a timeout, and may have happened).
            self.log.truncate_to(record_start);
            return Err(db_error(error));
        }
        self.lsn = lsn;
        if !copy_changes.is_empty() {
            let mut logged_copies = lock_copies(&self.logged_copies);
            for change in copy_changes {
                match change {
                    CopyChange::Keep(key, copy) => {
                        logged_copies.insert(key, copy);
                    }
                    CopyChange::Release(key) => {
                        logged_copies.remove(&key);
                        self.copies_in_table.remove(&key);
                    }
                }
            }
        }
        self.logged_since.get_or_insert_with(Instant::now);
        self.last_sequence
            .store(counters.last_sequence, Ordering::SeqCst);
        self.last_version
            .fetch_max(counters.last_version, Ordering::SeqCst);
        Ok(())
    }
}

fn keep_batch_error<T>(
    result: Result<T, CatalogueError>,
    failure: &mut Option<CatalogueError>,
) -> Result<T, CatalogueError> {
    match result {
        Err(CatalogueError::AlreadyExists { .. }) => result,
        Err(error) => {
            let copy = error.replicate();
            failure.get_or_insert(error);
            Err(copy)
        }
        ok => ok,
    }
}

fn append_change(
    logged: &mut LoggedTxn<'_, '_>,
    counters: &mut BatchCounters,
    action: ChangeAction,
    record: &InstanceRecord,
    version: u64,
) -> Result<u64, CatalogueError> {
    counters.last_sequence += 1;
    counters.last_timestamp_micros = counters.last_timestamp_micros.max(now_micros());
    let row = ChangeRow {
        action,
        study: record.study_instance_uid.clone(),
        series: record.series_instance_uid.clone(),
        sop: record.sop_instance_uid.clone(),
        version,
        timestamp_micros: counters.last_timestamp_micros,
    };
    logged.apply(Op::PutU64Bytes(
        Table::Changes,
        counters.last_sequence,
        &encode(&row)?,
    ))?;
    Ok(counters.last_sequence)
}

fn apply_store(
    logged: &mut LoggedTxn<'_, '_>,
    counters: &mut BatchCounters,
    version: u64,
    record: InstanceRecord,
    copy: Option<Bytes>,
) -> Result<u64, CatalogueError> {
    let sop = record.sop_instance_uid.clone();
    {
        if logged
            .tables
            .sops
            .get(sop.as_str())
            .map_err(db_error)?
            .is_some()
        {
            return Err(CatalogueError::AlreadyExists {
                sop_instance_uid: sop,
            });
        }
    }
    let sequence = append_change(logged, counters, ChangeAction::Create, &record, version)?;
    counters.last_version = counters.last_version.max(version);
    let path = path_of(
        &record.study_instance_uid,
        &record.series_instance_uid,
        &sop,
    );
    if let Some(copy) = copy {
        logged.keep_copy(&record.blob_key, copy);
    }
    let row = SopRow {
        path: path.clone(),
        version,
        blob_key: record.blob_key.clone(),
    };
    logged.apply(Op::PutStrBytes(Table::Sops, &sop, &encode(&row)?))?;
    logged.apply(Op::PutStrU64(Table::Paths, &path, version))?;
    logged.apply(Op::PutU64Bytes(
        Table::Versions,
        version,
        &encode(&VersionRow { sequence, record })?,
    ))?;
    Ok(sequence)
}

fn apply_delete(
    logged: &mut LoggedTxn<'_, '_>,
    counters: &mut BatchCounters,
    scope: &Scope,
) -> Result<Vec<InstanceRecord>, CatalogueError> {
    let removed = {
        let tables = &logged.tables;
        versions_in_scope(&tables.paths, scope)?
            .into_iter()
            .map(|version| Ok((version, load_version(&tables.versions, version)?.record)))
            .collect::<Result<Vec<_>, CatalogueError>>()?
    };
    // Delete entries in the order every listing uses; the versions travel with their records.
    let versions: std::collections::HashMap<String, u64> = removed
        .iter()
        .map(|(version, record)| (record.sop_instance_uid.clone(), *version))
        .collect();
    let mut records: Vec<InstanceRecord> = removed.into_iter().map(|(_, record)| record).collect();
    sort_instances(&mut records);
    let removed: Vec<(u64, InstanceRecord)> = records
        .into_iter()
        .map(|record| {
            (
                versions
                    .get(&record.sop_instance_uid)
                    .copied()
                    .unwrap_or_default(),
                record,
            )
        })
        .collect();
    for (version, record) in &removed {
        let path = path_of(
            &record.study_instance_uid,
            &record.series_instance_uid,
            &record.sop_instance_uid,
        );
        logged.apply(Op::RemoveStr(Table::Paths, &path))?;
        logged.apply(Op::RemoveStr(Table::Sops, &record.sop_instance_uid))?;
        logged.apply(Op::PutStrU64(
            Table::PendingDeletions,
            &record.blob_key,
            *version,
        ))?;
        logged.release_copy(&record.blob_key)?;
        append_change(logged, counters, ChangeAction::Delete, record, *version)?;
    }
    Ok(removed.into_iter().map(|(_, record)| record).collect())
}

/// Removes `keys` from a table keyed by storage key (pending deletions); missing keys are ignored.
fn remove_keys(
    logged: &mut LoggedTxn<'_, '_>,
    table: Table,
    keys: &[String],
) -> Result<(), CatalogueError> {
    for key in keys {
        logged.apply(Op::RemoveStr(table, key))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `InstanceRecord` as it was serialized before its metadata became a byte string.
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct RecordAsSequence {
        study_instance_uid: String,
        series_instance_uid: String,
        sop_instance_uid: String,
        sop_class_uid: String,
        transfer_syntax_uid: String,
        blob_key: String,
        size: u64,
        stored_at: OffsetDateTime,
        metadata: Vec<u8>,
        pixel_layout: Option<String>,
        attributes: Vec<(u32, Vec<String>)>,
    }

    #[test]
    fn records_written_with_metadata_as_a_sequence_read_back_and_the_other_way_round() {
        let old = RecordAsSequence {
            study_instance_uid: "1.2".into(),
            series_instance_uid: "1.2.3".into(),
            sop_instance_uid: "1.2.3.4".into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.7".into(),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            blob_key: "studies/1.2/x.dcm".into(),
            size: 10,
            stored_at: time::macros::datetime!(2024-05-01 12:00:00 UTC),
            metadata: (0..=255u8).cycle().take(5000).collect(),
            pixel_layout: Some("{}".into()),
            attributes: vec![(0x0010_0020, vec!["ID".into()])],
        };
        let written_before = encode(&VersionRowAs {
            sequence: 7,
            record: &old,
        })
        .unwrap();
        let read: VersionRow = decode(&written_before).unwrap();
        assert_eq!(read.sequence, 7);
        assert_eq!(read.record.metadata, old.metadata);
        assert_eq!(read.record.attributes, old.attributes);
        let written_now = encode(&read).unwrap();
        assert_eq!(written_now, written_before, "one encoding, either way");
    }

    #[derive(serde::Serialize)]
    struct VersionRowAs<'a> {
        sequence: u64,
        record: &'a RecordAsSequence,
    }
}
