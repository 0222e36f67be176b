//! [`BlobStore`] on any `object_store` backend.

use crate::error::{from_object_store, is_transient_error};
use crate::filesystem_sync::FilesystemSync;
use crate::key::{STAGING_PREFIX, parse_list_prefix};
use crate::local_write::UnnamedFileCreator;
use crate::{BlobMeta, BlobStore, BlockingCreate, ByteStream, StorageError, validate_key};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, WriteMultipart,
};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Bodies longer than this are uploaded in parts instead of being buffered whole.
pub const MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;

/// Size of each uploaded part (above S3's 5 MiB minimum; every part but the last has this size).
pub const MULTIPART_PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts uploaded concurrently; with the part being filled this bounds an upload's memory to about
/// `(MAX_PARTS_IN_FLIGHT + 1) * MULTIPART_PART_SIZE` plus the caller's current chunk.
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// How many times an exclusive write reported as conflicting, with no blob to show for it, is retried.
const CONFLICT_RETRIES: u32 = 8;

/// [`BlobStore`] on an [`object_store::ObjectStore`].
///
/// * Small bodies (up to [`MULTIPART_THRESHOLD`]) are written with one atomic `put` (`PutMode::Create` for
///   [`BlobStore::create`]).
/// * Larger bodies are streamed as a multipart upload. `put` uploads straight to the key: object_store
///   publishes a multipart upload atomically on completion. `create` uploads to a fresh key under
///   [`STAGING_PREFIX`], publishes it with copy-if-not-exists (the only exclusive primitive multipart
///   uploads have), then deletes the staging key. A staging key orphaned by a crash is never listed;
///   [`ObjectStoreBlobStore::remove_stale_staging`] reclaims it.
///
/// On local disk (`object_store::local::LocalFileSystem`) uploads are written to hidden `name#N` files that
/// object_store never lists and removes on failure or abort, exclusive create and copy-if-not-exists are
/// hard links (so the data directory must be a single file system), and parent directories are created on
/// demand. With [`ObjectStoreBlobStore::with_local_root`], a small `create` is instead an unnamed file
/// (`O_TMPFILE`) linked under its key once written (`local_write.rs`): one directory update, not three.
///
/// # Durability
/// `LocalFileSystem` does not fsync by default: a write then survives a process kill (the data is in the
/// page cache) but not a power loss or kernel crash until something flushes it. [`crate::open_store`] opens
/// local directories that way and adds [`ObjectStoreBlobStore::with_filesystem_sync`], so that
/// [`BlobStore::sync_writes`] flushes every completed write with one `syncfs`, shared by concurrent callers.
/// (`LocalFileSystem::with_fsync(true)`, two flushes inside every write, gives the same guarantee at a higher
/// cost, and needs no `sync_writes`.) Deletes are not fsynced: a deleted blob may reappear after a power loss.
pub struct ObjectStoreBlobStore {
    store: Arc<dyn ObjectStore>,
    description: String,
    /// The directory of a `LocalFileSystem` store, where interrupted writes leave `name#N` files.
    local_root: Option<std::path::PathBuf>,
    /// Makes local writes durable for [`BlobStore::sync_writes`], when the store does not fsync each one.
    filesystem_sync: Option<Arc<FilesystemSync>>,
    /// Small local creates as unnamed files (`local_write.rs`), with a local root.
    unnamed_files: Option<Arc<UnnamedFileCreator>>,
}

impl std::fmt::Debug for ObjectStoreBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreBlobStore")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// Whether a write may replace an existing blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    Create,
    Replace,
}

impl ObjectStoreBlobStore {
    /// Wraps `store`; `description` (e.g. "local disk /var/lib/archive") names it in logs and `Debug`.
    pub fn new(store: Arc<dyn ObjectStore>, description: String) -> Self {
        Self {
            store,
            description,
            local_root: None,
            filesystem_sync: None,
            unnamed_files: None,
        }
    }

    /// Names the directory of a `LocalFileSystem` store, so that
    /// [`BlobStore::remove_stale_uploads`] also removes the `name#N` files of writes that a crash
    /// interrupted (object_store never lists them).
    pub fn with_local_root(mut self, root: std::path::PathBuf) -> Self {
        self.unnamed_files = Some(Arc::new(UnnamedFileCreator::new(
            root.clone(),
            self.description.clone(),
        )));
        self.local_root = Some(root);
        self
    }

    /// For a `LocalFileSystem` store opened without fsync: [`BlobStore::sync_writes`] then makes the writes
    /// durable with one `syncfs` of the file system holding `root`, shared by concurrent callers, instead of
    /// two flushes per write (file and directory).
    pub fn with_filesystem_sync(mut self, root: &std::path::Path) -> Result<Self, StorageError> {
        self.filesystem_sync = Some(Arc::new(FilesystemSync::open(root)?));
        Ok(self)
    }

    /// What this store is, as given to [`ObjectStoreBlobStore::new`].
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Verifies that the backend is reachable and writable: writes a probe blob under the reserved
    /// [`STAGING_PREFIX`] (never listed; reclaimed by [`ObjectStoreBlobStore::remove_stale_staging`] if
    /// the probe is interrupted), reads it back, and deletes it. Cheap: three small requests.
    ///
    /// The error names the store (its description, e.g. the URL) and the step that failed; it is
    /// [`StorageError::Unavailable`] when the backend could not be reached and [`StorageError::Other`]
    /// otherwise (wrong credentials, missing bucket, read-only store, ...).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), dicomweb_storage::StorageError> {
    /// dicomweb_storage::open_object_store("memory://")?.check().await?;
    /// # Ok(()) }
    /// ```
    pub async fn check(&self) -> Result<(), StorageError> {
        let probe = Path::from(format!(
            "{STAGING_PREFIX}check-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let content = Bytes::from_static(b"dicomweb storage check");
        let failed = |step: &str, error: object_store::Error| {
            // object_store's message carries the cause (NoSuchBucket, AuthorizationFailure, connection
            // refused, ...); the mapping only decides whether it is transient.
            let message = format!(
                "storage {} failed its check: {step}: {error}",
                self.description
            );
            let transient = is_transient_error(&error);
            let source = Some(Box::new(error) as Box<dyn std::error::Error + Send + Sync>);
            match transient {
                true => StorageError::Unavailable { message, source },
                false => StorageError::Other { message, source },
            }
        };
        self.store
            .put(&probe, PutPayload::from(content.clone()))
            .await
            .map_err(|e| failed("write probe", e))?;
        let read = async { self.store.get(&probe).await?.bytes().await }.await;
        let deleted = self.store.delete(&probe).await;
        let read = read.map_err(|e| failed("read probe", e))?;
        deleted.map_err(|e| failed("delete probe", e))?;
        if read != content {
            return Err(StorageError::other(format!(
                "storage {} failed its check: the probe blob read back differs from what was written",
                self.description
            )));
        }
        Ok(())
    }

    /// Deletes staging blobs last modified more than `older_than` ago: the leftovers of creates interrupted
    /// by a crash. Keep `older_than` well above the longest upload (e.g. a day), since a staging blob of an
    /// in-progress create is indistinguishable from an orphan. Returns how many were deleted.
    pub async fn remove_stale_staging(&self, older_than: Duration) -> Result<usize, StorageError> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        // In microseconds, not seconds: the sweep at start removes what is older than the start, which may
        // be the same second as a staged blob that a crash left just before.
        let cutoff_micros =
            i64::try_from(now.saturating_sub(older_than).as_micros()).unwrap_or(i64::MAX);
        let staging_root = Path::from(STAGING_PREFIX.trim_end_matches('/'));
        let mut staged = self.store.list(Some(&staging_root));
        let mut removed = 0;
        while let Some(meta) = staged.next().await {
            let meta = meta.map_err(|e| from_object_store(e, "list", STAGING_PREFIX))?;
            // A time without a fraction of a second comes from a backend that keeps whole seconds (S3 and
            // Azure lists): the blob may be up to a second younger than it reads, so it must be a second older.
            let modified_micros = meta.last_modified.timestamp_micros();
            let latest_possible = if meta.last_modified.timestamp_subsec_nanos() == 0 {
                modified_micros.saturating_add(999_999)
            } else {
                modified_micros
            };
            if latest_possible < cutoff_micros {
                match self.store.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                    Err(e) => return Err(from_object_store(e, "delete", meta.location.as_ref())),
                }
            }
        }
        Ok(removed)
    }

    /// Writes `body` to `key`: buffered and put in one request when small, streamed in parts otherwise.
    async fn write(
        &self,
        key: &str,
        mode: WriteMode,
        mut body: ByteStream,
    ) -> Result<u64, StorageError> {
        validate_key(key)?;
        let mut buffered = VecDeque::new();
        let mut buffered_len = 0usize;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if chunk.is_empty() {
                continue;
            }
            buffered_len = buffered_len.saturating_add(chunk.len());
            buffered.push_back(chunk);
            if buffered_len > MULTIPART_THRESHOLD {
                return self.write_in_parts(key, mode, buffered, body).await;
            }
        }
        if mode == WriteMode::Create
            && let Some(length) = self.create_unnamed_local(key, &buffered).await?
        {
            return Ok(length);
        }
        let put_mode = match mode {
            WriteMode::Create => PutMode::Create,
            WriteMode::Replace => PutMode::Overwrite,
        };
        let payload: PutPayload = buffered.into_iter().collect();
        let options = PutOptions {
            mode: put_mode,
            ..Default::default()
        };
        let path = key_path(key);
        let mut attempt = 0;
        loop {
            let outcome = self
                .store
                .put_opts(&path, payload.clone(), options.clone())
                .await;
            match outcome {
                Ok(_) => return Ok(buffered_len as u64),
                Err(error) => {
                    let error = from_object_store(error, "put", key);
                    if !self
                        .is_unconfirmed_conflict(&error, key, &mut attempt)
                        .await?
                    {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// On local disk, creates a small file as an unnamed file linked once written (`local_write.rs`).
    /// `None` when this store is not local or its file system has no unnamed files: the caller puts it.
    async fn create_unnamed_local(
        &self,
        key: &str,
        buffered: &VecDeque<Bytes>,
    ) -> Result<Option<u64>, StorageError> {
        let Some(creator) = self.unnamed_files.clone().filter(|c| c.enabled()) else {
            return Ok(None);
        };
        let key = key.to_owned();
        let chunks: Vec<Bytes> = buffered.iter().cloned().collect();
        tokio::task::spawn_blocking(move || creator.create_chunks(&key, &chunks))
            .await
            .map_err(|e| StorageError::other(format!("creating a file: {e}")))?
    }

    async fn write_in_parts(
        &self,
        key: &str,
        mode: WriteMode,
        buffered: VecDeque<Bytes>,
        rest: ByteStream,
    ) -> Result<u64, StorageError> {
        match mode {
            WriteMode::Replace => {
                self.upload_in_parts(&key_path(key), key, buffered, rest)
                    .await
            }
            WriteMode::Create => {
                // Fail fast rather than upload a large body doomed to lose; the copy below stays the arbiter.
                match self.store.head(&key_path(key)).await {
                    Ok(_) => {
                        return Err(StorageError::AlreadyExists {
                            key: key.to_owned(),
                        });
                    }
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(from_object_store(e, "head", key)),
                }
                let staging =
                    Path::from(format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4().simple()));
                let cleanup = StagingCleanup::new(Arc::clone(&self.store), staging.clone());
                let size = self.upload_in_parts(&staging, key, buffered, rest).await?;
                // The exclusive publish, per backend: local disk hard-links; S3 completes a one-part multipart
                // copy with If-None-Match: * (S3CopyIfNotExists::Multipart, set by open_store; UploadPartCopy
                // limits it to 5 GiB); Azure copies with If-None-Match: *. Azure's Copy Blob may in principle
                // answer "pending" (asynchronous copy), which object_store does not surface; within one storage
                // account a block blob copy completes before the response in practice, and Azurite always does.
                let mut attempt = 0;
                let published = loop {
                    let copy = CopyOptions::new().with_mode(CopyMode::Create);
                    match self.store.copy_opts(&staging, &key_path(key), copy).await {
                        Ok(()) => break Ok(size),
                        Err(error) => {
                            let error = from_object_store(error, "create", key);
                            match self
                                .is_unconfirmed_conflict(&error, key, &mut attempt)
                                .await
                            {
                                Ok(true) => continue,
                                Ok(false) => break Err(error),
                                Err(other) => break Err(other),
                            }
                        }
                    }
                };
                cleanup.run().await;
                published
            }
        }
    }

    /// Whether an exclusive write that failed with `error` should be tried again.
    ///
    /// S3 answers a conditional write racing another one on the same key with 409 Conflict ("a
    /// conflicting conditional operation is in progress, retry"), which object_store reports as
    /// AlreadyExists although the other write may still fail. An AlreadyExists is therefore confirmed by
    /// looking at the key: if nothing is there yet, the write is retried after a short, growing pause (up
    /// to [`CONFLICT_RETRIES`] times, then [`StorageError::Unavailable`]).
    async fn is_unconfirmed_conflict(
        &self,
        error: &StorageError,
        key: &str,
        attempt: &mut u32,
    ) -> Result<bool, StorageError> {
        if !matches!(error, StorageError::AlreadyExists { .. }) {
            return Ok(false);
        }
        match self.store.head(&key_path(key)).await {
            Ok(_) => Ok(false),
            Err(object_store::Error::NotFound { .. }) => {
                *attempt += 1;
                if *attempt > CONFLICT_RETRIES {
                    return Err(StorageError::unavailable(format!(
                        "create {key:?}: the store kept reporting a conflicting write, but no blob appeared"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50 * u64::from(*attempt))).await;
                Ok(true)
            }
            Err(e) => Err(from_object_store(e, "head", key)),
        }
    }

    /// Streams `buffered` then `rest` to `target` as a multipart upload, aborting it on any error so that
    /// nothing is published.
    async fn upload_in_parts(
        &self,
        target: &Path,
        key: &str,
        mut buffered: VecDeque<Bytes>,
        mut rest: ByteStream,
    ) -> Result<u64, StorageError> {
        let upload = self
            .store
            .put_multipart_opts(target, Default::default())
            .await
            .map_err(|e| from_object_store(e, "start upload of", key))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART_SIZE);
        let mut size = 0u64;
        let streamed = loop {
            let chunk = match buffered.pop_front() {
                Some(chunk) => chunk,
                None => match rest.next().await {
                    None => break Ok(()),
                    Some(Err(e)) => break Err(e),
                    Some(Ok(chunk)) => chunk,
                },
            };
            // Back-pressure: do not read more of the body while the part uploads are behind.
            if let Err(e) = writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
                break Err(from_object_store(e, "upload part of", key));
            }
            size += chunk.len() as u64;
            writer.put(chunk);
        };
        match streamed {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(|e| from_object_store(e, "complete upload of", key))?;
                Ok(size)
            }
            Err(error) => {
                if let Err(abort_error) = writer.abort().await {
                    tracing::warn!(%target, error = %abort_error, "could not abort a failed multipart upload");
                }
                Err(error)
            }
        }
    }

    async fn read_range_checked(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<Bytes, StorageError> {
        let options = GetOptions::new().with_range(Some(range.clone()));
        let result = self
            .store
            .get_opts(&key_path(key), options)
            .await
            .map_err(|e| from_object_store(e, "get_range", key))?;
        if result.meta.size < range.end {
            return Err(range_past_end(key, &range, result.meta.size));
        }
        let bytes = result
            .bytes()
            .await
            .map_err(|e| from_object_store(e, "get_range", key))?;
        check_length(key, &range, &bytes)?;
        Ok(bytes)
    }
}

#[async_trait::async_trait]
impl BlobStore for ObjectStoreBlobStore {
    async fn create(&self, key: &str, body: ByteStream) -> Result<u64, StorageError> {
        self.write(key, WriteMode::Create, body).await
    }

    async fn create_from_file(
        &self,
        key: &str,
        path: &std::path::Path,
    ) -> Result<u64, StorageError> {
        validate_key(key)?;
        let Some(root) = &self.local_root else {
            return crate::create_by_streaming_file(self, key, path).await;
        };
        let target = local_path(root, key);
        let source = path.to_owned();
        let linked = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::hard_link(&source, &target)?;
            Ok(std::fs::metadata(&target)?.len())
        })
        .await
        .map_err(|e| StorageError::other(format!("linking {key}: {e}")))?;
        match linked {
            Ok(len) => Ok(len),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StorageError::AlreadyExists {
                    key: key.to_owned(),
                })
            }
            Err(error) => {
                // Another file system (EXDEV) or one without hard links: copy instead.
                tracing::debug!(%key, %error, "cannot link the file into place; copying it");
                crate::create_by_streaming_file(self, key, path).await
            }
        }
    }

    async fn sync_writes(&self) -> Result<(), StorageError> {
        match &self.filesystem_sync {
            Some(sync) => sync.sync().await,
            None => Ok(()),
        }
    }

    fn writes_need_sync(&self) -> bool {
        self.filesystem_sync.is_some()
    }

    fn blocking_creator(&self) -> Option<Arc<dyn BlockingCreate>> {
        let creator = self.unnamed_files.clone().filter(|c| c.enabled())?;
        Some(creator)
    }

    async fn remove_stale_uploads(&self, older_than: Duration) -> Result<usize, StorageError> {
        let mut removed = self.remove_stale_staging(older_than).await?;
        if let Some(root) = self.local_root.clone() {
            removed += tokio::task::spawn_blocking(move || {
                remove_partial_files(&root, SystemTime::now() - older_than)
            })
            .await
            .map_err(|e| StorageError::other(e.to_string()))?;
        }
        Ok(removed)
    }

    async fn put(&self, key: &str, body: ByteStream) -> Result<u64, StorageError> {
        self.write(key, WriteMode::Replace, body).await
    }

    async fn get(&self, key: &str) -> Result<(BlobMeta, ByteStream), StorageError> {
        validate_key(key)?;
        let result = self
            .store
            .get(&key_path(key))
            .await
            .map_err(|e| from_object_store(e, "get", key))?;
        let meta = BlobMeta {
            key: key.to_owned(),
            size: result.meta.size,
        };
        let body = match result.payload {
            // A local file: read in large chunks rather than object_store's 8 KiB (local_read.rs).
            object_store::GetResultPayload::File(file, path) => crate::local_read::file_stream(
                file,
                path,
                result.range,
                crate::local_read::LOCAL_READ_CHUNK,
            ),
            object_store::GetResultPayload::Stream(stream) => {
                let owned_key = key.to_owned();
                stream
                    .map_err(move |e| from_object_store(e, "read", &owned_key))
                    .boxed()
            }
        };
        Ok((meta, body))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        validate_key(key)?;
        check_order(key, &range)?;
        if range.is_empty() {
            // object_store rejects empty ranges; the blob must still exist and contain the position.
            let size = self.head(key).await?.size;
            if range.start > size {
                return Err(range_past_end(key, &range, size));
            }
            return Ok(Bytes::new());
        }
        self.read_range_checked(key, range).await
    }

    async fn get_whole_many(&self, blobs: Vec<(String, u64)>) -> Vec<Result<Bytes, StorageError>> {
        let Some(root) = self.local_root.clone() else {
            return crate::get_whole_each(self, &blobs).await;
        };
        let count = blobs.len();
        tokio::task::spawn_blocking(move || {
            blobs
                .iter()
                .map(|(key, size)| {
                    validate_key(key)?;
                    crate::local_read::read_whole(&local_path(&root, key), key, *size)
                })
                .collect()
        })
        .await
        .unwrap_or_else(|e| {
            (0..count)
                .map(|_| Err(StorageError::other(format!("reading local files: {e}"))))
                .collect()
        })
    }

    async fn get_ranges(
        &self,
        key: &str,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, StorageError> {
        validate_key(key)?;
        for range in ranges {
            check_order(key, range)?;
        }
        let non_empty: Vec<Range<u64>> = ranges.iter().filter(|r| !r.is_empty()).cloned().collect();
        if non_empty.len() < ranges.len() || non_empty.is_empty() {
            // Same reasoning as get_range: empty ranges still need the blob and its size.
            let size = self.head(key).await?.size;
            if let Some(range) = ranges.iter().find(|r| r.is_empty() && r.start > size) {
                return Err(range_past_end(key, range, size));
            }
        }
        let fetched = if non_empty.is_empty() {
            Vec::new()
        } else {
            self.store
                .get_ranges(&key_path(key), &non_empty)
                .await
                .map_err(|e| from_object_store(e, "get_ranges", key))?
        };
        if fetched.len() != non_empty.len() {
            return Err(StorageError::other(format!(
                "get_ranges {key:?}: backend returned {} ranges for {} requested",
                fetched.len(),
                non_empty.len()
            )));
        }
        let mut fetched = fetched.into_iter();
        let mut out = Vec::with_capacity(ranges.len());
        for range in ranges {
            if range.is_empty() {
                out.push(Bytes::new());
                continue;
            }
            let bytes = fetched.next().unwrap_or_default();
            // Some backends clamp a range reaching past the end instead of failing.
            check_length(key, range, &bytes)?;
            out.push(bytes);
        }
        Ok(out)
    }

    async fn head(&self, key: &str) -> Result<BlobMeta, StorageError> {
        validate_key(key)?;
        let meta = self
            .store
            .head(&key_path(key))
            .await
            .map_err(|e| from_object_store(e, "head", key))?;
        Ok(BlobMeta {
            key: key.to_owned(),
            size: meta.size,
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        match self.store.delete(&key_path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(from_object_store(e, "delete", key)),
        }
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<BlobMeta, StorageError>> {
        let parsed = match parse_list_prefix(prefix) {
            Ok(parsed) => parsed,
            Err(error) => return futures::stream::once(futures::future::ready(Err(error))).boxed(),
        };
        let directory = (!parsed.directory.is_empty()).then(|| key_path(parsed.directory));
        let prefix = prefix.to_owned();
        self.store
            .list(directory.as_ref())
            .filter_map(move |entry| {
                let item = match entry {
                    Err(e) => Some(Err(from_object_store(e, "list", &prefix))),
                    Ok(meta) => {
                        let key = meta.location.to_string();
                        if !key.starts_with(&prefix) || key.starts_with(STAGING_PREFIX) {
                            None
                        } else if validate_key(&key).is_err() {
                            // Not written through this crate (e.g. a file dropped in the data directory).
                            tracing::warn!(%key, "ignoring a blob whose key is not a valid key");
                            None
                        } else {
                            Some(Ok(BlobMeta {
                                key,
                                size: meta.size,
                            }))
                        }
                    }
                };
                futures::future::ready(item)
            })
            .boxed()
    }
}

/// Object store path of a validated key. Valid keys are valid object_store paths as they stand (no
/// empty, "." or ".." segments, no characters needing escapes), so `Path::from` stores them unchanged.
fn key_path(key: &str) -> Path {
    Path::from(key)
}

fn check_order(key: &str, range: &Range<u64>) -> Result<(), StorageError> {
    if range.start > range.end {
        return Err(StorageError::other(format!(
            "invalid range {}..{} of {key:?}: start is after end",
            range.start, range.end
        )));
    }
    Ok(())
}

fn check_length(key: &str, range: &Range<u64>, bytes: &Bytes) -> Result<(), StorageError> {
    let expected = range.end - range.start;
    if bytes.len() as u64 != expected {
        return Err(StorageError::other(format!(
            "range {}..{} of {key:?} reaches past the end of the blob (got {} of {expected} bytes)",
            range.start,
            range.end,
            bytes.len()
        )));
    }
    Ok(())
}

/// The file of a (validated) `key` in a local store rooted at `root`: keys are made of `[A-Za-z0-9._-]`
/// segments, which object_store's `LocalFileSystem` maps to the same relative path.
fn local_path(root: &std::path::Path, key: &str) -> std::path::PathBuf {
    root.join(key)
}

fn range_past_end(key: &str, range: &Range<u64>, size: u64) -> StorageError {
    StorageError::other(format!(
        "range {}..{} of {key:?} reaches past the end of the blob ({size} bytes)",
        range.start, range.end
    ))
}

/// Deletes a staging blob once the create is over, however it ends: explicitly through
/// [`StagingCleanup::run`], or from `Drop` (on a spawned task) when the create future is cancelled.
struct StagingCleanup {
    store: Arc<dyn ObjectStore>,
    staging: Option<Path>,
}

impl StagingCleanup {
    fn new(store: Arc<dyn ObjectStore>, staging: Path) -> Self {
        Self {
            store,
            staging: Some(staging),
        }
    }

    async fn run(mut self) {
        if let Some(staging) = self.staging.take() {
            remove_staging(&*self.store, &staging).await;
        }
    }
}

impl Drop for StagingCleanup {
    fn drop(&mut self) {
        let Some(staging) = self.staging.take() else {
            return;
        };
        let store = Arc::clone(&self.store);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { remove_staging(&*store, &staging).await });
            }
            Err(_) => {
                tracing::warn!(%staging, "no runtime to remove the staging blob of a cancelled create")
            }
        }
    }
}

async fn remove_staging(store: &dyn ObjectStore, staging: &Path) {
    match store.delete(staging).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        // Harmless beyond the space it takes: staging blobs are never listed nor readable.
        Err(error) => tracing::warn!(%staging, %error, "could not remove a staging blob"),
    }
}

/// Removes, below `root`, the `name#N` files that `LocalFileSystem` writes before renaming them into
/// place and that a crash left behind, if last modified before `cutoff`. Returns how many.
fn remove_partial_files(root: &std::path::Path, cutoff: SystemTime) -> usize {
    let mut removed = 0;
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file()
                && entry.file_name().to_string_lossy().contains('#')
                && entry
                    .metadata()
                    .and_then(|meta| meta.modified())
                    .is_ok_and(|modified| modified < cutoff)
            {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "removed the partial file of an interrupted write");
                        removed += 1;
                    }
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "could not remove a partial file")
                    }
                }
            }
        }
    }
    removed
}
