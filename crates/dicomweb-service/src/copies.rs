//! Small stores on local disk wait for one flush, not two: the catalogue commit carries a copy of the file.
//!
//! On a blob store whose writes are durable only once flushed ([`BlobStore::writes_need_sync`]: local disk),
//! a store of an instance up to [`crate::ServiceConfig::durable_copy_limit`] writes its file without flushing
//! it and commits its record with a copy of the file's bytes ([`Catalogue::commit_store_with_copy`]); the 200
//! follows that one flush. A background task then flushes storage once for every file written meanwhile
//! ([`BlobStore::sync_writes`], one `syncfs`) and releases their copies ([`Catalogue::copies_published`]).
//! After a power cut, [`StudiesService::recover`](crate::StudiesService::recover) writes again every file
//! whose copy was not released and whose bytes in storage differ from it, so that an acknowledged file is
//! never lost, even if the page cache held its only copy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dicomweb_catalogue::Catalogue;
use dicomweb_storage::{BlobStore, StorageError, body_from_bytes, read_to_bytes};

use crate::Result;

/// The wait before retrying a flush or release that failed.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Copies read at once when recovery checks them.
const RECOVERY_PAGE: usize = 64;

/// The files written since the last flush whose copies the catalogue keeps, and the flush that releases them.
pub(crate) struct CopyPublisher {
    blobs: Arc<dyn BlobStore>,
    catalogue: Arc<dyn Catalogue>,
    /// How long a flush waits after the store that scheduled it, so that the stores of this interval share
    /// it. Copies stay in the catalogue meanwhile: a longer wait means fewer flushes and more to check after a
    /// crash.
    delay: Duration,
    state: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    keys: Vec<String>,
    /// A flush task is scheduled and has not taken `keys` yet.
    scheduled: bool,
}

/// What recovery did with the copies it found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CopiesRecovered {
    /// Copies whose file in storage held exactly their bytes.
    pub intact: u64,
    /// Files written again from their copy (missing, or not the bytes acknowledged).
    pub rewritten: u64,
}

impl CopyPublisher {
    pub(crate) fn new(
        blobs: Arc<dyn BlobStore>,
        catalogue: Arc<dyn Catalogue>,
        delay: Duration,
    ) -> Self {
        CopyPublisher {
            blobs,
            catalogue,
            delay,
            state: Mutex::new(Pending::default()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Records that the file at `key` was committed with a copy; a flush after the delay releases it.
    pub(crate) fn committed(self: &Arc<Self>, key: String) {
        let mut pending = self.pending();
        pending.keys.push(key);
        if !pending.scheduled {
            pending.scheduled = true;
            drop(pending);
            self.spawn_flush(self.delay);
        }
    }

    fn spawn_flush(self: &Arc<Self>, delay: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime (a store outside one cannot happen); the copies wait for recovery.
            self.pending().scheduled = false;
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let keys = {
                let mut pending = this.pending();
                pending.scheduled = false;
                std::mem::take(&mut pending.keys)
            };
            if keys.is_empty() {
                return;
            }
            if let Err(error) = this.flush_and_release(keys.clone()).await {
                tracing::warn!(%error, copies = keys.len(), "flushing stored files failed; retrying (their copies stay in the catalogue)");
                let mut pending = this.pending();
                pending.keys.extend(keys);
                if !pending.scheduled {
                    pending.scheduled = true;
                    drop(pending);
                    this.spawn_flush(RETRY_DELAY);
                }
            }
        });
    }

    /// Flushes storage now for every store committed with a copy so far and releases their copies (at shutdown,
    /// so that the next start has nothing to check).
    pub(crate) async fn flush_now(&self) -> Result<()> {
        let keys = std::mem::take(&mut self.pending().keys);
        if keys.is_empty() {
            return Ok(());
        }
        self.flush_and_release(keys).await
    }

    /// Flushes storage (covering every file written before the call), then releases the copies of `keys`.
    pub(crate) async fn flush_and_release(&self, keys: Vec<String>) -> Result<()> {
        self.blobs.sync_writes().await?;
        self.catalogue.copies_published(keys).await?;
        Ok(())
    }

    /// Run at start, before serving: every file whose copy the catalogue still keeps is compared with the copy
    /// and written again where it differs (or is missing); then storage is flushed and the copies released.
    pub(crate) async fn recover(&self) -> Result<CopiesRecovered> {
        let mut recovered = CopiesRecovered::default();
        let mut after = None;
        loop {
            let page = self
                .catalogue
                .unpublished_copies(after.clone(), RECOVERY_PAGE)
                .await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            let mut keys = Vec::with_capacity(page.len());
            for (key, copy) in page {
                if self.holds(&key, &copy).await? {
                    recovered.intact += 1;
                } else {
                    tracing::warn!(%key, "a stored file was lost or is not what was acknowledged (a power cut?); writing it again from the catalogue's copy");
                    self.blobs.put(&key, body_from_bytes(copy)).await?;
                    recovered.rewritten += 1;
                }
                keys.push(key);
            }
            self.flush_and_release(keys).await?;
        }
        Ok(recovered)
    }

    /// Does storage hold exactly `copy` at `key`?
    async fn holds(&self, key: &str, copy: &[u8]) -> Result<bool> {
        match self.blobs.get(key).await {
            Ok((meta, body)) if meta.size == copy.len() as u64 => {
                Ok(read_to_bytes(body).await.is_ok_and(|stored| stored == copy))
            }
            Ok(_) | Err(StorageError::NotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}
