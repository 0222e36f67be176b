//! Blob storage for the DICOMweb archive.
//!
//! This crate owns one thing: putting opaque byte blobs under '/'-separated keys and getting them back. It
//! defines the narrow [`BlobStore`] trait the archive is written against, its contracts (atomic exclusive
//! creation, atomic replacement, whole and ranged reads, idempotent deletes, prefix listing), one
//! implementation on [`object_store`] ([`ObjectStoreBlobStore`]: local disk, in-memory, Amazon S3 and Azure
//! Blob Storage), a URL-based opener ([`open_store`], `s3://`, `az://`, `file://`, paths, `memory://`), a
//! reachability check ([`ObjectStoreBlobStore::check`]) and a reusable [`conformance`]
//! suite every backend must pass.
//!
//! It must never depend on DICOM (no `dicom-*` crates: it does not know what a study is; key layout is the
//! caller's business) nor on HTTP (no web framework: mapping [`StorageError`] to status codes is the
//! service's business).
//!
//! # Example
//! ```
//! use dicomweb_storage::{open_store, body_from_bytes, read_to_bytes, StorageError};
//!
//! # #[tokio::main] async fn main() -> Result<(), StorageError> {
//! let store = open_store("memory://")?;
//! let size = store.create("studies/1.2.3/instance.dcm", body_from_bytes("DICM")).await?;
//! assert_eq!(size, 4);
//!
//! // Creating an existing key never overwrites it.
//! let again = store.create("studies/1.2.3/instance.dcm", body_from_bytes("other")).await;
//! assert!(matches!(again, Err(StorageError::AlreadyExists { .. })));
//!
//! let (meta, body) = store.get("studies/1.2.3/instance.dcm").await?;
//! assert_eq!(meta.size, 4);
//! assert_eq!(read_to_bytes(body).await?, "DICM");
//! assert_eq!(store.get_range("studies/1.2.3/instance.dcm", 1..3).await?, "IC");
//! # Ok(()) }
//! ```

mod error;
mod filesystem_sync;
mod key;
mod local_read;
mod local_write;
mod object_store_backend;
mod open;

pub mod conformance;

pub use error::StorageError;
pub use key::{MAX_KEY_LEN, STAGING_PREFIX, validate_key};
pub use object_store_backend::{MULTIPART_PART_SIZE, MULTIPART_THRESHOLD, ObjectStoreBlobStore};
pub use open::{
    RetryPolicy, SUPPORTED_LOCATIONS, default_retry_config, open_object_store,
    open_object_store_with_policy, open_object_store_with_retry, open_store,
};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use std::ops::Range;
use std::sync::Arc;

/// A blob body: a stream of byte chunks, any chunk of which may be an error (for instance a client that
/// disconnected mid-upload). Chunk boundaries carry no meaning.
pub type ByteStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// What the store knows about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// The blob's key, as given to [`BlobStore::create`] / [`BlobStore::put`].
    pub key: String,
    /// The blob's length in bytes.
    pub size: u64,
}

/// The archive's blob storage.
///
/// Keys are '/'-separated relative paths checked by [`validate_key`]; every method rejects an invalid key
/// with [`StorageError::InvalidKey`] before touching the backend. Keys under [`STAGING_PREFIX`] are reserved
/// for in-progress uploads and are never accepted nor listed.
///
/// A key must not also be used as a "directory" of another key (`a` and `a/b`): object stores allow it, a
/// file system does not, so callers keep blobs at the leaves of their key layout.
///
/// [`BlobStore::create`] on the calling thread, which may block ([`BlobStore::blocking_creator`]).
pub trait BlockingCreate: std::fmt::Debug + Send + Sync {
    /// Creates `key` with `bytes` as [`BlobStore::create`] does (only if absent, atomic, durable only through
    /// [`BlobStore::sync_writes`] where [`BlobStore::writes_need_sync`]); returns the size written. `Ok(None)`
    /// when it cannot create here after all (the file system refuses unnamed files): nothing was written, and
    /// the caller uses [`BlobStore::create`].
    fn create_blocking(&self, key: &str, bytes: &Bytes) -> Result<Option<u64>, StorageError>;
}

/// Implementations must pass [`conformance::run_all`].
#[async_trait::async_trait]
pub trait BlobStore: std::fmt::Debug + Send + Sync + 'static {
    /// Creates `key` with the bytes of `body` only if no blob exists at `key`; [`StorageError::AlreadyExists`]
    /// otherwise. Atomic: readers never see a partial blob, and when it fails (stream error, AlreadyExists,
    /// crash) nothing is visible at `key`. Of several concurrent creates of one key exactly one succeeds and
    /// the blob holds its body.
    ///
    /// Streams: bodies over a threshold ([`MULTIPART_THRESHOLD`], 8 MiB) are uploaded in parts to a staging
    /// key and published with copy-if-not-exists, then the staging key is removed; memory stays bounded.
    /// An error yielded by `body` is returned as is. Returns the size written.
    async fn create(&self, key: &str, body: ByteStream) -> Result<u64, StorageError>;

    /// [`BlobStore::create`] with the bytes of the local file at `path`, which the caller has finished writing
    /// and must not change afterwards. A store on the local file system holding `path` may publish the file
    /// itself (a hard link, so that a large instance is written once, not copied); the caller may still remove
    /// its own name for the file. Same atomicity and [`StorageError::AlreadyExists`] rules as `create`. The
    /// default streams the file to `create`.
    async fn create_from_file(
        &self,
        key: &str,
        path: &std::path::Path,
    ) -> Result<u64, StorageError> {
        create_by_streaming_file(self, key, path).await
    }

    /// Creates or replaces `key` atomically (same streaming rules as [`BlobStore::create`]): readers see the
    /// old blob or the new one, never a mix; when it fails the old blob (if any) is untouched. Returns the
    /// size written.
    async fn put(&self, key: &str, body: ByteStream) -> Result<u64, StorageError>;

    /// Whole blob as a stream; [`StorageError::NotFound`] when missing.
    async fn get(&self, key: &str) -> Result<(BlobMeta, ByteStream), StorageError>;

    /// Bytes `[range.start, range.end)`; [`StorageError::NotFound`] when missing. An empty range within the
    /// blob (`start == end <= size`) is an empty result; a range reaching past the end, or with
    /// `start > end`, is an error ([`StorageError::Other`]), never a silently shortened result.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError>;

    /// Several ranges of one blob in one call (backends may coalesce): used to read a frame's fragments.
    /// Returns one `Bytes` per range, in the order given; same rules per range as [`BlobStore::get_range`].
    async fn get_ranges(
        &self,
        key: &str,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, StorageError>;

    /// Several whole blobs of known sizes in one call: for each `(key, size)`, what
    /// `get_range(key, 0..size)` returns, in the order given. Meant for many small blobs (the instances of a
    /// series): a local store reads them in one trip to the blocking pool instead of one each. The default
    /// makes one `get_range` each, concurrently.
    async fn get_whole_many(&self, blobs: Vec<(String, u64)>) -> Vec<Result<Bytes, StorageError>> {
        get_whole_each(self, &blobs).await
    }

    /// Metadata of `key`; [`StorageError::NotFound`] when missing.
    async fn head(&self, key: &str) -> Result<BlobMeta, StorageError>;

    /// Deletes `key`; deleting a missing blob is Ok.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

    /// Every blob whose key starts with `prefix` (a "directory" prefix ending in '/', or ""), in no
    /// particular order. Staging blobs of in-progress creates are never listed. An invalid prefix yields a
    /// single [`StorageError::InvalidKey`].
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<BlobMeta, StorageError>>;

    /// Returns once every create and put that completed before the call is durable (survives a power cut or
    /// a kernel crash, not only a process kill). A completed write is visible at once and durable after
    /// this; callers that acknowledge a write to someone else call it first. Implementations may share one
    /// flush among concurrent callers. The default, for backends whose writes are durable when they complete
    /// (object stores, memory), does nothing.
    async fn sync_writes(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Whether a completed create or put becomes durable only through [`BlobStore::sync_writes`] (local
    /// disk), so that a caller may rather keep a copy of a small write durable elsewhere and flush later, for
    /// many writes at once. False (the default) when `sync_writes` does nothing.
    fn writes_need_sync(&self) -> bool {
        false
    }

    /// A creator of small blobs that runs on the calling thread, for a caller already on a thread that may
    /// block: a local file is then written without a trip to the blocking pool and back. `None` (the default)
    /// where writes need the async runtime (object stores, memory).
    fn blocking_creator(&self) -> Option<Arc<dyn BlockingCreate>> {
        None
    }

    /// Removes what creates interrupted by a crash left behind and never published (staged uploads,
    /// partial files), if older than `older_than`; returns how many. Never touches a published blob.
    /// Keep `older_than` above the longest upload while creates may be running (zero is right only
    /// when none is). The default, for stores that leave nothing behind, removes nothing.
    async fn remove_stale_uploads(
        &self,
        older_than: std::time::Duration,
    ) -> Result<usize, StorageError> {
        let _ = older_than;
        Ok(0)
    }
}

/// [`BlobStore::get_whole_many`] as one `get_range` per blob, concurrently: what a store does when it cannot
/// do better.
pub(crate) async fn get_whole_each<S: BlobStore + ?Sized>(
    store: &S,
    blobs: &[(String, u64)],
) -> Vec<Result<Bytes, StorageError>> {
    futures::future::join_all(
        blobs
            .iter()
            .map(|(key, size)| store.get_range(key, 0..*size)),
    )
    .await
}

/// [`BlobStore::create`] with a stream of the file at `path`: what `create_from_file` does when it cannot do
/// better.
pub(crate) async fn create_by_streaming_file<S: BlobStore + ?Sized>(
    store: &S,
    key: &str,
    path: &std::path::Path,
) -> Result<u64, StorageError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| StorageError::Other {
            message: format!("cannot open {} to store it: {e}", path.display()),
            source: Some(Box::new(e)),
        })?;
    let body = tokio_util::io::ReaderStream::with_capacity(file, 1024 * 1024).map(|chunk| {
        chunk.map_err(|e| StorageError::Other {
            message: format!("reading the file to store: {e}"),
            source: Some(Box::new(e)),
        })
    });
    store.create(key, body.boxed()).await
}

/// A one-chunk [`ByteStream`] holding `bytes`.
pub fn body_from_bytes(bytes: impl Into<Bytes>) -> ByteStream {
    futures::stream::once(futures::future::ready(Ok(bytes.into()))).boxed()
}

/// Reads a whole [`ByteStream`] into memory; the first error of the stream is returned.
/// Only for blobs known to be small: this buffers everything.
pub async fn read_to_bytes(mut body: ByteStream) -> Result<Bytes, StorageError> {
    let mut buffer = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        buffer.extend_from_slice(&chunk?);
    }
    Ok(buffer.freeze())
}
