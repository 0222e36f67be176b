//! Rebuilding the catalogue of record from storage: disaster recovery when the catalogue is lost (or an archive
//! from before the catalogue existed), never part of normal operation.
//!
//! Every stored file is self-describing, so the records (metadata, frame layout, search fields) can be derived
//! again from storage alone. When several versions of one instance are in storage (a crash during a delete
//! whose catalogue was then lost), the newest wins. The change feed gains one `create` entry per instance; the
//! history of a lost catalogue cannot be recovered from the files.
//!
//! What a rebuild can and cannot know: a file whose store crashed before its catalogue commit is
//! indistinguishable from an acknowledged one once the catalogue is gone. The orphan sweep
//! ([`StudiesService::sweep_storage`]) removes such files while the catalogue exists, so a rebuild publishes
//! an unacknowledged instance only if the catalogue was lost before the sweep after that crash ran.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dicomweb_catalogue::CatalogueError;
use futures::{StreamExt, TryStreamExt};

use crate::keys::{INSTANCES_PREFIX, parse_instance_key};
use crate::spool::spool;
use crate::store::{inspect_spool, record_for};
use crate::{Result, StudiesService};

/// Counts of a rebuild, reported as it goes and at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildProgress {
    /// Instance files seen in storage so far.
    pub seen: u64,
    /// Files added to the catalogue.
    pub added: u64,
    /// Files that were already catalogued (or older versions of a catalogued instance).
    pub already_catalogued: u64,
    /// Files that could not be read as instances (left in place, logged).
    pub unreadable: u64,
}

/// How many files are inspected at once: parsing is CPU bound, fetching may be network bound.
const CONCURRENCY: usize = 4;

impl StudiesService {
    /// True when the catalogue is empty: nothing was ever stored, or the catalogue directory is new.
    pub async fn catalogue_is_empty(&self) -> Result<bool> {
        Ok(self.catalogue.last_sequence() == 0 && self.catalogue.instance_count().await? == 0)
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
                futures::future::ready(Ok(
                    count + u64::from(parse_instance_key(&meta.key).is_some())
                ))
            })
            .await
    }

    /// Catalogues the newest version of every instance file in storage that the catalogue lacks. `progress` is
    /// called at most every `report_every` and once at the end.
    pub async fn rebuild_catalogue(
        &self,
        report_every: Duration,
        mut progress: impl FnMut(&RebuildProgress),
    ) -> Result<RebuildProgress> {
        let mut totals = RebuildProgress::default();
        // The newest version of each SOP instance, by SOPInstanceUID.
        let mut newest: HashMap<String, (Option<u64>, String)> = HashMap::new();
        let mut listing = self.blobs.list(INSTANCES_PREFIX);
        while let Some(meta) = listing.try_next().await? {
            let Some(parsed) = parse_instance_key(&meta.key) else {
                continue;
            };
            totals.seen += 1;
            let candidate = (parsed.version, meta.key.clone());
            match newest.get_mut(parsed.sop) {
                Some(kept) if kept.0 >= candidate.0 => totals.already_catalogued += 1,
                Some(kept) => {
                    totals.already_catalogued += 1;
                    *kept = candidate;
                }
                None => {
                    newest.insert(parsed.sop.to_owned(), candidate);
                }
            }
        }
        let mut last_report = Instant::now();
        let mut outcomes = futures::stream::iter(newest.into_values())
            .map(|(version, key)| async move { self.catalogue_blob(&key, version).await })
            .buffer_unordered(CONCURRENCY);
        while let Some(outcome) = outcomes.next().await {
            match outcome? {
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
        self.search_index.schedule();
        Ok(totals)
    }

    async fn catalogue_blob(&self, key: &str, version: Option<u64>) -> Result<BlobOutcome> {
        let (meta, body) = self.blobs.get(key).await?;
        let spooled = match spool(
            body,
            &self.config.spool_dir,
            self.config.memory_spool_limit,
            &self.config.spool_memory,
        )
        .await
        {
            Ok(spooled) => spooled,
            Err(e) => {
                tracing::warn!(%key, error = %e, "skipping a stored file that is not a readable instance");
                return Ok(BlobOutcome::Unreadable);
            }
        };
        let (info, derived) = match inspect_spool(
            &self.ingest,
            &spooled,
            &self.config.metadata_json,
        )
        .await
        {
            Ok(inspected) => inspected,
            Err((_, message)) => {
                tracing::warn!(%key, %message, "skipping a stored file that is not a valid instance");
                return Ok(BlobOutcome::Unreadable);
            }
        };
        let named = parse_instance_key(key);
        if named.is_none_or(|named| {
            (named.study, named.series, named.sop)
                != (
                    info.study_instance_uid.as_str(),
                    info.series_instance_uid.as_str(),
                    info.sop_instance_uid.as_str(),
                )
        }) {
            tracing::warn!(%key, "skipping a stored file whose UIDs do not match its key");
            return Ok(BlobOutcome::Unreadable);
        }
        let version = match version {
            Some(version) => version,
            None => self.catalogue.allocate_version().await?,
        };
        let record = record_for(&info, derived, key.to_owned(), meta.size);
        match self.catalogue.commit_store(version, record).await {
            Ok(_) => Ok(BlobOutcome::Added),
            Err(CatalogueError::AlreadyExists { .. }) => Ok(BlobOutcome::AlreadyCatalogued),
            Err(e) => Err(e.into()),
        }
    }
}

enum BlobOutcome {
    Added,
    AlreadyCatalogued,
    Unreadable,
}
