//! Group commit of local writes: one `syncfs` makes the writes of every concurrent caller durable.
//!
//! Making one small file durable costs two flushes (`fsync` of the file, then of its directory, for the
//! rename that published it), and on a virtual disk each flush costs CPU as well as time (a doorbell write per
//! request, a VM exit). `syncfs(2)` writes back every dirty page and inode of the file system and flushes the
//! device cache once, so the callers waiting at the same moment share it: with 8 clients storing, one flush
//! covers the files of all of them.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::StorageError;

/// Durability barrier for the writes made under one directory (its whole file system, in fact).
#[derive(Debug)]
pub(crate) struct FilesystemSync {
    directory: Arc<File>,
    /// Syncs started so far; only changed while `turn` is held.
    started: AtomicU64,
    /// The number (in start order, from 1) of the last sync that succeeded.
    succeeded: AtomicU64,
    /// One sync at a time: the callers that arrive during one queue here and share the next.
    turn: tokio::sync::Mutex<()>,
}

impl FilesystemSync {
    /// Opens `directory` (which must exist) as the handle `syncfs` is called on.
    pub(crate) fn open(directory: &Path) -> Result<FilesystemSync, StorageError> {
        let handle = File::open(directory).map_err(|e| StorageError::Other {
            message: format!("cannot open {} to sync it: {e}", directory.display()),
            source: Some(Box::new(e)),
        })?;
        Ok(FilesystemSync {
            directory: Arc::new(handle),
            started: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            turn: tokio::sync::Mutex::new(()),
        })
    }

    /// Returns once every write that completed before the call is durable: a sync that started after the
    /// call has succeeded (this caller's or another's).
    pub(crate) async fn sync(&self) -> Result<(), StorageError> {
        // Syncs started before this call may have missed this caller's writes; any later one covers them.
        let needed = self.started.load(Ordering::SeqCst) + 1;
        let _turn = self.turn.lock().await;
        if self.succeeded.load(Ordering::SeqCst) >= needed {
            return Ok(());
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let directory = self.directory.clone();
        tokio::task::spawn_blocking(move || rustix::fs::syncfs(&*directory))
            .await
            .map_err(|e| StorageError::other(format!("syncing the file system: {e}")))?
            .map_err(|errno| StorageError::Other {
                message: format!("syncing the file system failed: {errno}"),
                source: Some(Box::new(std::io::Error::from(errno))),
            })?;
        self.succeeded.store(number, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let sync = Arc::new(FilesystemSync::open(dir.path()).unwrap());
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let sync = sync.clone();
                tokio::spawn(async move { sync.sync().await })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap().unwrap();
        }
        let syncs = sync.started.load(Ordering::SeqCst);
        assert!((1..=16).contains(&syncs), "{syncs} syncs");
        assert_eq!(sync.succeeded.load(Ordering::SeqCst), syncs);
    }

    #[tokio::test]
    async fn a_caller_after_a_sync_gets_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let sync = FilesystemSync::open(dir.path()).unwrap();
        sync.sync().await.unwrap();
        sync.sync().await.unwrap();
        assert_eq!(sync.started.load(Ordering::SeqCst), 2);
    }
}
