//! Keeping the search index in step with the catalogue of record.
//!
//! A store or delete is acknowledged once the catalogue committed it; the search index (tantivy, whose commits
//! cost milliseconds each) follows in the background, applying the catalogue's changes in sequence order in
//! batches, so that many acknowledged writes share one index commit. A search sees every change the catalogue
//! had committed when it arrived, so a client always finds what it was told is stored (read-your-writes) and
//! never finds what it deleted: it runs on the committed index with the changes after the index's watermark
//! laid over it in memory ([`Index::search_including`]), read from the catalogue once and kept here for the
//! searches that follow, instead of waiting for a commit. Only a backlog too long for that
//! ([`OVERLAY_LIMIT`]) makes a search commit it first.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dicomweb_catalogue::{Catalogue, IndexChange};
use dicomweb_index::Index;

use crate::{Result, ServiceError};

/// Most catalogue changes applied in one index commit.
const CHANGES_PER_COMMIT: usize = 2000;

/// Changes waiting that start a background catch-up at once instead of at the end of its delay
/// (`ServiceConfig::index_commit_delay`). A tantivy commit has a fixed cost of about 11 ms of CPU (the
/// `commit_cost` example of dicomweb-index: 80 us per instance at 250 per commit, 36 us at 1000, 34 us at 4000),
/// so a batch of this size has paid most of what waiting can save; waiting longer only makes every search lay
/// more changes over the index.
pub(crate) const COMMIT_BATCH: u64 = 1000;

/// Most changes a search lays over the committed index in memory; with more pending (a burst the background
/// task has not caught up with, a huge delete) the search commits them first. The changes are kept in memory
/// (records with their metadata, a few KiB each: this bounds that memory to tens of MiB), and a search
/// recomputes the summaries of the studies that changed since the previous one, so the cost grows with the
/// backlog; the background task keeps it to the writes of about one commit delay
/// (`ServiceConfig::index_commit_delay`).
pub(crate) const OVERLAY_LIMIT: usize = 5_000;

/// Longest a search waits for stores that have committed to announce their changes, before it reads them from
/// the catalogue instead. Such a store is about to be polled again (its commit has answered); the read would
/// cost a trip to another thread, which under load is the longer wait.
const ANNOUNCE_WAIT: Duration = Duration::from_millis(3);

/// The search index and the work of keeping it in step.
pub(crate) struct SearchIndex {
    catalogue: Arc<dyn Catalogue>,
    pub(crate) index: Index,
    /// One applier at a time, so changes are applied in order and none twice.
    applying: tokio::sync::Mutex<()>,
    /// A background catch-up is scheduled and has not started yet.
    scheduled: AtomicBool,
    /// Wakes the scheduled catch-up before its delay ends, once [`COMMIT_BATCH`] changes wait.
    batch_ready: tokio::sync::Notify,
    /// How long a background catch-up waits after the commit that scheduled it. A tantivy commit has a fixed
    /// cost (a new segment per field, and the merges that follow) that dwarfs one instance's documents:
    /// committing after every store spent ~4 ms of CPU per stored instance. Waiting lets the writes of this
    /// interval share one commit. Searches do not wait for it (see [`SearchIndex::unapplied_until`]).
    commit_delay: std::time::Duration,
    /// The catalogue's changes after the index's watermark (as of the last read), in sequence order, without
    /// gaps: read once, shared by the searches that follow until the index applies them.
    unapplied: tokio::sync::Mutex<Vec<Arc<IndexChange>>>,
    /// Changes this process's own stores announced once committed ([`SearchIndex::announce`]), by sequence,
    /// possibly out of order: they spare searches a read of the catalogue. Only an optimization: what is
    /// missing is read from the catalogue.
    announced: Mutex<BTreeMap<u64, Arc<IndexChange>>>,
    /// Stores of this process between the start of their catalogue commit and their announcement (or failure):
    /// while there are any, a change the catalogue reports but nobody announced is likely theirs.
    committing: AtomicUsize,
    /// Woken when a committing store announces its change or gives up.
    announcements: tokio::sync::Notify,
}

/// A store between the start of its catalogue commit and its announcement ([`SearchIndex::committing`]); dropping
/// it (announced, failed or abandoned) ends that.
pub(crate) struct Committing(Arc<SearchIndex>);

impl Drop for Committing {
    fn drop(&mut self) {
        self.0.committing.fetch_sub(1, Ordering::SeqCst);
        self.0.announcements.notify_waiters();
    }
}

impl SearchIndex {
    pub(crate) fn new(
        catalogue: Arc<dyn Catalogue>,
        index: Index,
        commit_delay: std::time::Duration,
    ) -> Self {
        SearchIndex {
            catalogue,
            index,
            applying: tokio::sync::Mutex::new(()),
            scheduled: AtomicBool::new(false),
            batch_ready: tokio::sync::Notify::new(),
            commit_delay,
            unapplied: tokio::sync::Mutex::new(Vec::new()),
            announced: Mutex::new(BTreeMap::new()),
            committing: AtomicUsize::new(0),
            announcements: tokio::sync::Notify::new(),
        }
    }

    /// Marks a store of this process as committing until the returned guard is dropped, which the store does
    /// after [`SearchIndex::announce`] (or on failure).
    pub(crate) fn committing(self: &Arc<Self>) -> Committing {
        self.committing.fetch_add(1, Ordering::SeqCst);
        Committing(self.clone())
    }

    /// Hands over a change the catalogue has committed (as [`Catalogue::index_feed`] would return it), so that
    /// searches need not read it back. Dropped when [`OVERLAY_LIMIT`] changes wait already.
    pub(crate) fn announce(&self, change: IndexChange) {
        let mut announced = self
            .announced
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if announced.len() < OVERLAY_LIMIT {
            announced.insert(change.sequence(), Arc::new(change));
        }
    }

    /// Forgets the kept and the announced changes the index has applied (at or below `applied`).
    fn forget_applied(&self, unapplied: &mut Vec<Arc<IndexChange>>, applied: u64) {
        unapplied.retain(|change| change.sequence() > applied);
        let mut announced = self
            .announced
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *announced = announced.split_off(&(applied + 1));
    }

    /// Moves the announced changes that continue `unapplied` (whose last sequence is `last`) into it; forgets
    /// those at or below `last` (already there). Returns the new last sequence.
    fn take_announced(&self, unapplied: &mut Vec<Arc<IndexChange>>, mut last: u64) -> u64 {
        let mut announced = self
            .announced
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *announced = announced.split_off(&(last + 1));
        while let Some(entry) = announced.first_entry() {
            if *entry.key() != last + 1 {
                break;
            }
            unapplied.push(entry.remove());
            last += 1;
        }
        last
    }

    /// The changes after the index's watermark up to sequence `target` at least, in order, to search with
    /// ([`Index::search_including`]); `None` when more than [`OVERLAY_LIMIT`] are pending.
    pub(crate) async fn unapplied_until(
        &self,
        target: u64,
    ) -> Result<Option<Vec<Arc<IndexChange>>>> {
        let applied = self.index.applied_sequence();
        if applied >= target {
            return Ok(Some(Vec::new()));
        }
        let mut unapplied = self.unapplied.lock().await;
        // What the index applied since is dropped; the rest still starts right after the watermark.
        let applied = self.index.applied_sequence();
        self.forget_applied(&mut unapplied, applied);
        let mut last = unapplied.last().map_or(applied, |change| change.sequence());
        last = self.take_announced(&mut unapplied, last);
        let waited_until = tokio::time::Instant::now() + ANNOUNCE_WAIT;
        while last < target {
            if unapplied.len() >= OVERLAY_LIMIT {
                return Ok(None);
            }
            if self.committing.load(Ordering::SeqCst) > 0
                && tokio::time::Instant::now() < waited_until
            {
                // Registered before the check, so an announcement between the two is not missed.
                let announced = self.announcements.notified();
                tokio::pin!(announced);
                announced.as_mut().enable();
                last = self.take_announced(&mut unapplied, last);
                if last >= target {
                    break;
                }
                if self.committing.load(Ordering::SeqCst) > 0 {
                    let _ = tokio::time::timeout_at(waited_until, announced).await;
                    last = self.take_announced(&mut unapplied, last);
                    continue;
                }
            }
            let changes = self.catalogue.index_feed(last, CHANGES_PER_COMMIT).await?;
            let Some(newest) = changes.last() else {
                return Err(ServiceError::Internal(format!(
                    "the catalogue has no change after sequence {last}, but reports {target}"
                )));
            };
            last = newest.sequence();
            unapplied.extend(changes.into_iter().map(Arc::new));
            last = self.take_announced(&mut unapplied, last);
        }
        Ok(Some(unapplied.clone()))
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

    /// Brings the index up to date in the background, one commit delay after a commit, or as soon as
    /// [`COMMIT_BATCH`] changes wait. Coalesces: while one catch-up waits to start, further calls only
    /// count what waits, and the one that runs covers every commit made before it starts.
    pub(crate) fn schedule(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::SeqCst) {
            let waiting = self
                .catalogue
                .last_sequence()
                .saturating_sub(self.index.applied_sequence());
            if waiting >= COMMIT_BATCH {
                // A permit is kept if the catch-up is not waiting yet: it then starts without sleeping. One kept
                // after the catch-up stopped waiting makes the next one start at once: an early commit, no more.
                self.batch_ready.notify_one();
            }
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.scheduled.store(false, Ordering::SeqCst);
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(this.commit_delay) => {}
                () = this.batch_ready.notified() => {}
            }
            let _turn = this.applying.lock().await;
            drop(_turn);
            // Cleared before the target is read: a commit after this point schedules another run.
            this.scheduled.store(false, Ordering::SeqCst);
            let target = this.catalogue.last_sequence();
            if let Err(error) = this.catch_up(target).await {
                tracing::error!(%error, "updating the search index failed; the next search retries");
            }
            // What the index applied need not stay in memory until the next search.
            let applied = this.index.applied_sequence();
            let mut unapplied = this.unapplied.lock().await;
            this.forget_applied(&mut unapplied, applied);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicomweb_catalogue::EmbeddedCatalogue;
    use dicomweb_catalogue::conformance::{record, store};

    fn search_index(dir: &std::path::Path) -> (Arc<EmbeddedCatalogue>, Arc<SearchIndex>) {
        let catalogue = Arc::new(EmbeddedCatalogue::open(dir).unwrap());
        let index = Index::open_in_ram().unwrap();
        // No background catch-up during the test: every change stays unapplied.
        let follower = SearchIndex::new(catalogue.clone(), index, Duration::from_secs(3600));
        (catalogue, Arc::new(follower))
    }

    /// The name in an unapplied change's record: tells which copy a search got.
    fn names(unapplied: &[Arc<IndexChange>]) -> Vec<String> {
        unapplied
            .iter()
            .map(|change| match &**change {
                IndexChange::Insert { record, .. } => record.attributes[0].1[0].clone(),
                IndexChange::Remove { .. } => "removed".into(),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_full_batch_of_changes_starts_the_index_commit_before_its_delay_ends() {
        let dir = tempfile::tempdir().unwrap();
        // A delay no test outlasts: only the batch can start the catch-up.
        let (catalogue, follower) = search_index(dir.path());
        for n in 0..COMMIT_BATCH - 1 {
            let sop = format!("1.2.3.4.{n}");
            store(&*catalogue, record("1.2.3", "1.2.3.4", &sop, 1, "NAME")).await;
            follower.schedule();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            follower.index.applied_sequence(),
            0,
            "one change short of a batch, the catch-up waits for its delay"
        );

        store(
            &*catalogue,
            record("1.2.3", "1.2.3.4", "1.2.3.4.last", 1, "NAME"),
        )
        .await;
        follower.schedule();
        let target = catalogue.last_sequence();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while follower.index.applied_sequence() < target {
            assert!(
                std::time::Instant::now() < deadline,
                "a full batch is applied without waiting for the delay"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_search_takes_a_committing_stores_change_from_its_announcement() {
        let dir = tempfile::tempdir().unwrap();
        let (catalogue, follower) = search_index(dir.path());
        let committing = follower.committing();
        let (_, stored) = store(
            &*catalogue,
            record("1.2.3", "1.2.3.4", "1.2.3.4.5", 1, "CATALOGUED"),
        )
        .await;
        let target = catalogue.last_sequence();
        let announcer = {
            let follower = follower.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(300)).await;
                // The same change as the catalogue's, marked so that the test sees which one the search took.
                let mut announced = stored;
                announced.attributes[0].1[0] = "ANNOUNCED".into();
                follower.announce(IndexChange::Insert {
                    sequence: target,
                    record: announced,
                });
                drop(committing);
            })
        };
        let unapplied = follower.unapplied_until(target).await.unwrap().unwrap();
        assert_eq!(names(&unapplied), ["ANNOUNCED"]);
        announcer.await.unwrap();
    }

    #[tokio::test]
    async fn a_search_reads_the_catalogue_when_nothing_announces_the_change() {
        let dir = tempfile::tempdir().unwrap();
        let (catalogue, follower) = search_index(dir.path());
        // A store whose request was dropped after its commit: it never announces, and (worst case) its guard is
        // still held. The search waits a bounded time, then reads the change from the catalogue.
        let _abandoned = follower.committing();
        store(
            &*catalogue,
            record("1.2.3", "1.2.3.4", "1.2.3.4.5", 1, "CATALOGUED"),
        )
        .await;
        let target = catalogue.last_sequence();
        let started = std::time::Instant::now();
        let unapplied = follower.unapplied_until(target).await.unwrap().unwrap();
        assert_eq!(names(&unapplied), ["CATALOGUED"]);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the wait is bounded"
        );

        // A change of nobody's store of this process (a delete, another node) is read at once.
        drop(_abandoned);
        store(
            &*catalogue,
            record("1.2.3", "1.2.3.4", "1.2.3.4.6", 2, "SECOND"),
        )
        .await;
        let unapplied = follower
            .unapplied_until(catalogue.last_sequence())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(names(&unapplied), ["CATALOGUED", "SECOND"]);
    }
}
