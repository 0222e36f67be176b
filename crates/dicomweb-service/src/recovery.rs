//! What a crash leaves behind, and its removal: at start ([`StudiesService::recover`]) and on a schedule
//! ([`StudiesService::sweep_storage`]).
//!
//! After a `kill -9` or power loss there can be: spool files of requests being received; files of small stores
//! that were acknowledged through the catalogue's copy and lost with the page cache; files of removed
//! instances not yet deleted (the catalogue lists them as pending); staged or partial uploads; and files of
//! stores that never reached their catalogue commit (orphans: no catalogue record names them). None of these is
//! visible to clients, and none is ever published: a file counts only through its catalogue record.

use std::time::{Duration, SystemTime};

use futures::TryStreamExt;

use crate::keys::{INSTANCES_PREFIX, parse_instance_key};
use crate::{Result, StudiesService};

/// What [`StudiesService::recover`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Spool files of interrupted requests removed.
    pub spool_files_removed: u64,
    /// Files of removed instances deleted now (their delete was interrupted).
    pub pending_deletions_completed: u64,
    /// Files of removed instances that could not be deleted yet (left for the next sweep).
    pub pending_deletions_left: u64,
    /// Files of small stores acknowledged before storage was flushed, checked against the catalogue's copy and
    /// found intact.
    pub copies_intact: u64,
    /// Such files written again from the catalogue's copy (lost or damaged, by a power cut for instance).
    pub copies_rewritten: u64,
}

/// What [`StudiesService::sweep_storage`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Instance files seen.
    pub files_seen: u64,
    /// Files that no catalogue record names, removed.
    pub orphans_removed: u64,
    /// Staged or partial uploads removed.
    pub stale_uploads_removed: u64,
    /// Files of removed instances deleted now.
    pub pending_deletions_completed: u64,
}

impl StudiesService {
    /// Run at start, before serving: removes spool files (the spool directory belongs to this process, which
    /// holds the catalogue's lock, so all of them are leftovers), writes again the files of acknowledged small
    /// stores that storage lost before its flush (from the catalogue's copies) and completes interrupted
    /// deletes.
    pub async fn recover(&self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        let spool_dir = self.config.spool_dir.clone();
        report.spool_files_removed =
            tokio::task::spawn_blocking(move || remove_files_in(&spool_dir))
                .await
                .map_err(|e| crate::ServiceError::Internal(e.to_string()))?;
        let copies = self.copies.recover().await?;
        report.copies_intact = copies.intact;
        report.copies_rewritten = copies.rewritten;
        let pending = self.catalogue.pending_blob_deletions().await?;
        let total = pending.len() as u64;
        report.pending_deletions_completed = self.delete_blobs(pending).await? as u64;
        report.pending_deletions_left = total - report.pending_deletions_completed;
        Ok(report)
    }

    /// Removes from storage what interrupted operations left there and is older than `older_than`: staged and
    /// partial uploads, files of removed instances still pending deletion, and orphans (files of versions that
    /// no catalogue record names, stored more than `older_than` ago and not being written by this process). Safe
    /// while the server serves: a store's file is never an orphan before its store has ended.
    pub async fn sweep_storage(&self, older_than: Duration) -> Result<SweepReport> {
        let mut report = SweepReport {
            stale_uploads_removed: self.blobs.remove_stale_uploads(older_than).await? as u64,
            ..SweepReport::default()
        };
        let pending = self.catalogue.pending_blob_deletions().await?;
        report.pending_deletions_completed = self.delete_blobs(pending).await? as u64;
        let cutoff_micros = SystemTime::now()
            .checked_sub(older_than)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let mut listing = self.blobs.list(INSTANCES_PREFIX);
        while let Some(meta) = listing.try_next().await? {
            let Some(named) = parse_instance_key(&meta.key) else {
                continue;
            };
            report.files_seen += 1;
            // Versions are allocated as microseconds since the epoch: a recent one may belong to a running store.
            if let Some(version) = named.version
                && (version >= cutoff_micros || self.is_in_flight(version))
            {
                continue;
            }
            // Checked after the in-flight set: a store that has ended has committed (or never will).
            if self.catalogue.blob_key_of(named.sop).await?.as_deref() == Some(meta.key.as_str()) {
                continue;
            }
            tracing::info!(key = %meta.key, "removing a file that no catalogue record names (an interrupted store)");
            self.blobs.delete(&meta.key).await?;
            report.orphans_removed += 1;
        }
        Ok(report)
    }
}

/// Removes every regular file directly in `dir` (a missing directory is empty); returns how many.
fn remove_files_in(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_file()) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(error) => {
                    tracing::warn!(path = %entry.path().display(), %error, "could not remove a spool file")
                }
            }
        }
    }
    removed
}
