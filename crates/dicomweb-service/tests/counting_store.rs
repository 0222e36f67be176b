//! A `BlobStore` decorator that counts the bytes read through it, for tests that prove what is (not) read.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use dicomweb_storage::{BlobMeta, BlobStore, ByteStream, StorageError};
use futures::StreamExt;
use futures::stream::BoxStream;

#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn BlobStore>,
    pub bytes_read: Arc<AtomicU64>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn BlobStore>) -> Self {
        CountingStore {
            inner,
            bytes_read: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn take_bytes_read(&self) -> u64 {
        self.bytes_read.swap(0, Ordering::SeqCst)
    }
}

#[async_trait]
impl BlobStore for CountingStore {
    async fn create(&self, key: &str, body: ByteStream) -> Result<u64, StorageError> {
        self.inner.create(key, body).await
    }
    async fn put(&self, key: &str, body: ByteStream) -> Result<u64, StorageError> {
        self.inner.put(key, body).await
    }
    async fn create_from_file(
        &self,
        key: &str,
        path: &std::path::Path,
    ) -> Result<u64, StorageError> {
        self.inner.create_from_file(key, path).await
    }
    async fn sync_writes(&self) -> Result<(), StorageError> {
        self.inner.sync_writes().await
    }
    fn writes_need_sync(&self) -> bool {
        self.inner.writes_need_sync()
    }
    async fn get(&self, key: &str) -> Result<(BlobMeta, ByteStream), StorageError> {
        let (meta, body) = self.inner.get(key).await?;
        let counter = self.bytes_read.clone();
        let counted = body.inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        });
        Ok((meta, counted.boxed()))
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        let bytes = self.inner.get_range(key, range).await?;
        self.bytes_read
            .fetch_add(bytes.len() as u64, Ordering::SeqCst);
        Ok(bytes)
    }
    async fn get_ranges(
        &self,
        key: &str,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, StorageError> {
        let pieces = self.inner.get_ranges(key, ranges).await?;
        let total: usize = pieces.iter().map(Bytes::len).sum();
        self.bytes_read.fetch_add(total as u64, Ordering::SeqCst);
        Ok(pieces)
    }
    async fn head(&self, key: &str) -> Result<BlobMeta, StorageError> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<BlobMeta, StorageError>> {
        self.inner.list(prefix)
    }
}
