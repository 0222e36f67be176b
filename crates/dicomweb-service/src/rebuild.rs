//! Rebuilding the catalogue from storage: what makes a node replaceable and an index directory disposable.
//!
//! Every stored file is self-describing, so the catalogue (metadata, frame layout, search fields) can be derived
//! again from storage alone. The rebuild adds what storage has and the catalogue lacks; the change feed gains one
//! `create` entry per instance it adds (the history of a lost index cannot be recovered from the files).

use std::time::{Duration, Instant};

use dicomweb_index::IndexError;
use futures::TryStreamExt;

use crate::keys::INSTANCES_PREFIX;
use crate::spool::spool;
use crate::store::inspect_spool;
use crate::{Result, StudiesService};

/// Counts of a rebuild, reported as it goes and at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildProgress {
    /// Instance files seen in storage so far.
    pub seen: u64,
    /// Files added to the catalogue.
    pub added: u64,
    /// Files that were already catalogued.
    pub already_catalogued: u64,
    /// Files that could not be read as instances (left in place, logged).
    pub unreadable: u64,
}

/// How many files are inspected at once: parsing is CPU bound, fetching may be network bound.
const CONCURRENCY: usize = 4;

impl StudiesService {
    /// True when the catalogue is empty: nothing was ever stored, or the index directory is new.
    pub fn catalogue_is_empty(&self) -> Result<bool> {
        Ok(self.index.latest_change(false)?.is_none() && self.index.instance_count()? == 0)
    }

    /// True when storage holds at least one instance file.
    pub async fn storage_has_instances(&self) -> Result<bool> {
        let mut listing = self.blobs.list(INSTANCES_PREFIX);
        Ok(listing.try_next().await?.is_some())
    }

    /// How many instance files storage holds (a listing, no reads): the total of a rebuild's progress.
    pub async fn stored_instance_count(&self) -> Result<u64> {
        let listing = self.blobs.list(INSTANCES_PREFIX);
        listing
            .map_err(crate::ServiceError::from)
            .try_fold(0u64, |count, meta| {
                futures::future::ready(Ok(count + u64::from(meta.key.ends_with(".dcm"))))
            })
            .await
    }

    /// Catalogues every instance file in storage that the catalogue lacks. `progress` is called at most every
    /// `report_every` and once at the end.
    pub async fn rebuild_catalogue(
        &self,
        report_every: Duration,
        mut progress: impl FnMut(&RebuildProgress),
    ) -> Result<RebuildProgress> {
        let mut totals = RebuildProgress::default();
        let mut last_report = Instant::now();
        let listing = self
            .blobs
            .list(INSTANCES_PREFIX)
            .map_err(crate::ServiceError::from)
            .try_filter(|meta| futures::future::ready(meta.key.ends_with(".dcm")));
        let mut outcomes = listing
            .map_ok(|meta| async move { self.catalogue_blob(&meta.key).await })
            .try_buffer_unordered(CONCURRENCY);
        while let Some(outcome) = outcomes.try_next().await? {
            totals.seen += 1;
            match outcome {
                BlobOutcome::Added => totals.added += 1,
                BlobOutcome::AlreadyCatalogued => totals.already_catalogued += 1,
                BlobOutcome::Unreadable => totals.unreadable += 1,
            }
            if last_report.elapsed() >= report_every {
                progress(&totals);
                last_report = Instant::now();
            }
        }
        progress(&totals);
        Ok(totals)
    }

    async fn catalogue_blob(&self, key: &str) -> Result<BlobOutcome> {
        if let Some(sop) = sop_of_key(key)
            && self.index.contains_sop(sop)?
        {
            return Ok(BlobOutcome::AlreadyCatalogued);
        }
        let (meta, body) = self.blobs.get(key).await?;
        let spooled = match spool(body, &self.config.spool_dir, self.config.memory_spool_limit)
            .await
        {
            Ok(spooled) => spooled,
            Err(e) => {
                tracing::warn!(%key, error = %e, "skipping a stored file that is not a readable instance");
                return Ok(BlobOutcome::Unreadable);
            }
        };
        let info = match inspect_spool(&spooled).await {
            Ok(info) => info,
            Err((_, message)) => {
                tracing::warn!(%key, %message, "skipping a stored file that is not a valid instance");
                return Ok(BlobOutcome::Unreadable);
            }
        };
        let expected = crate::keys::instance_key(
            &info.study_instance_uid,
            &info.series_instance_uid,
            &info.sop_instance_uid,
        );
        if expected != key {
            tracing::warn!(%key, %expected, "skipping a stored file whose UIDs do not match its key");
            return Ok(BlobOutcome::Unreadable);
        }
        match self
            .index
            .insert(self.record_for(&info, key.to_owned(), meta.size))
            .await
        {
            Ok(_) => Ok(BlobOutcome::Added),
            Err(IndexError::AlreadyExists { .. }) => Ok(BlobOutcome::AlreadyCatalogued),
            Err(e) => Err(e.into()),
        }
    }
}

enum BlobOutcome {
    Added,
    AlreadyCatalogued,
    Unreadable,
}

/// The SOPInstanceUID of an instance key (`studies/{study}/series/{series}/instances/{sop}.dcm`).
fn sop_of_key(key: &str) -> Option<&str> {
    key.rsplit('/').next()?.strip_suffix(".dcm")
}
