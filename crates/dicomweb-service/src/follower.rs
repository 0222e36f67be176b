//! Keeping the search index in step with the catalogue of record.
//!
//! A store or delete is acknowledged once the catalogue committed it; the search index (tantivy, whose commits
//! cost milliseconds each) follows in the background, applying the catalogue's changes in sequence order in
//! batches, so that many acknowledged writes share one index commit. A search first waits until the index
//! reflects every change the catalogue had committed when the search arrived, so a client always finds what it
//! was told is stored (read-your-writes) and never finds what it deleted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dicomweb_catalogue::Catalogue;
use dicomweb_index::Index;

use crate::{Result, ServiceError};

/// Most catalogue changes applied in one index commit.
const CHANGES_PER_COMMIT: usize = 2000;

/// How long a background catch-up waits after the commit that scheduled it. A tantivy commit has a fixed cost
/// (a new segment per field, and the merges that follow) that dwarfs one instance's documents: committing after
/// every store spent ~4 ms of CPU per stored instance. Waiting lets the writes of this interval share one
/// commit. Nothing waits on it: a search catches up by itself, at once, before it reads the index.
const BACKGROUND_COMMIT_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

/// The search index and the work of keeping it in step.
pub(crate) struct SearchIndex {
    catalogue: Arc<dyn Catalogue>,
    pub(crate) index: Index,
    /// One applier at a time, so changes are applied in order and none twice.
    applying: tokio::sync::Mutex<()>,
    /// A background catch-up is scheduled and has not started yet.
    scheduled: AtomicBool,
}

impl SearchIndex {
    pub(crate) fn new(catalogue: Arc<dyn Catalogue>, index: Index) -> Self {
        SearchIndex {
            catalogue,
            index,
            applying: tokio::sync::Mutex::new(()),
            scheduled: AtomicBool::new(false),
        }
    }

    /// Applies the catalogue's changes until the index reflects sequence `target` (at least); returns the
    /// sequence the index reflects then.
    pub(crate) async fn catch_up(&self, target: u64) -> Result<u64> {
        loop {
            let applied = self.index.applied_sequence();
            if applied >= target {
                return Ok(applied);
            }
            let _turn = self.applying.lock().await;
            let applied = self.index.applied_sequence();
            if applied >= target {
                return Ok(applied);
            }
            let changes = self
                .catalogue
                .index_feed(applied, CHANGES_PER_COMMIT)
                .await?;
            if changes.is_empty() {
                return Err(ServiceError::Internal(format!(
                    "the catalogue has no change after sequence {applied}, but reports {target}"
                )));
            }
            self.index.apply(changes).await?;
        }
    }

    /// Brings the index up to date in the background, [`BACKGROUND_COMMIT_DELAY`] after a commit. Coalesces:
    /// while one catch-up waits to start, further calls add nothing, and the one that runs covers every commit
    /// made before it starts.
    pub(crate) fn schedule(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.scheduled.store(false, Ordering::SeqCst);
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep(BACKGROUND_COMMIT_DELAY).await;
            let _turn = this.applying.lock().await;
            drop(_turn);
            // Cleared before the target is read: a commit after this point schedules another run.
            this.scheduled.store(false, Ordering::SeqCst);
            let target = this.catalogue.last_sequence();
            if let Err(error) = this.catch_up(target).await {
                tracing::error!(%error, "updating the search index failed; the next search retries");
            }
        });
    }
}
