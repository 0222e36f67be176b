//! The single writer: a dedicated thread owning tantivy's `IndexWriter`, doing group commit.
//!
//! It takes the first queued request, drains whatever else is queued (up to [`MAX_BATCH`]),
//! applies them in order, commits once, reloads the shared reader and only then answers every
//! request of the batch: an acknowledged write is durable and visible to every reader.
//!
//! The index follows a log: every change carries a sequence, and each commit records the last
//! sequence it reflects (the *watermark*) in tantivy's commit payload, atomically with the
//! documents. A change at or below the watermark is skipped, so replaying a log from any point
//! before the watermark is harmless. [`crate::Index::insert`] and [`crate::Index::delete`]
//! number their changes themselves (watermark + 1, ...), for using the index on its own.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};

use tantivy::{IndexReader, IndexWriter, TantivyDocument, Term};
use tokio::sync::oneshot;

use crate::matching::add_terms;
use crate::read;
use crate::schema::{
    Fields, KIND_INSTANCE, KIND_SERIES, KIND_STUDY, instance_order_key, series_order_key,
};
use crate::search_copy::search_copy;
use crate::summaries::{Member, study_state};
use crate::types::{IndexError, InstanceRecord, Scope, TAG_MODALITIES_IN_STUDY, TAG_MODALITY};
use dicomweb_catalogue::IndexChange;

/// Most requests applied in one commit.
pub(crate) const MAX_BATCH: usize = 1000;

pub(crate) enum Request {
    Insert {
        record: InstanceRecord,
        reply: oneshot::Sender<Result<u64, IndexError>>,
    },
    Delete {
        scope: Scope,
        reply: oneshot::Sender<Result<Vec<InstanceRecord>, IndexError>>,
    },
    /// Changes of the catalogue's log, in sequence order; those at or below the watermark are
    /// skipped.
    Apply {
        changes: Vec<IndexChange>,
        reply: oneshot::Sender<Result<u64, IndexError>>,
    },
    /// Commit what precedes, stop. Answered after the tantivy writer is shut down.
    Close { reply: oneshot::Sender<()> },
}

/// Counters shared with `Index::stats`.
#[derive(Default)]
pub(crate) struct Counters {
    pub commits: AtomicU64,
    pub requests: AtomicU64,
    pub last_sequence: AtomicU64,
    /// Fault injection: make the next commit fail (after the batch's documents were added).
    pub fail_next_commit: AtomicBool,
}

pub(crate) struct Writer {
    pub writer: IndexWriter<TantivyDocument>,
    pub reader: IndexReader,
    pub fields: Fields,
    /// The watermark: sequence of the last change applied (committed once the batch commits).
    pub last_sequence: u64,
    pub counters: Arc<Counters>,
}

/// A request applied to the writer but not yet committed, with its answer.
enum Applied {
    Insert(
        oneshot::Sender<Result<u64, IndexError>>,
        Result<u64, IndexError>,
    ),
    Delete(
        oneshot::Sender<Result<Vec<InstanceRecord>, IndexError>>,
        Result<Vec<InstanceRecord>, IndexError>,
    ),
    Apply(
        oneshot::Sender<Result<u64, IndexError>>,
        Result<u64, IndexError>,
    ),
}

/// What the batch changed so far, on top of the committed state the searcher shows.
#[derive(Default)]
struct BatchState {
    /// Inserted in this batch and not deleted since, by SOPInstanceUID, with their sequence.
    inserted: HashMap<String, (InstanceRecord, u64)>,
    /// Committed instances deleted in this batch.
    deleted: HashSet<String>,
    /// Studies whose summaries must be rebuilt before the commit.
    touched: BTreeSet<String>,
}

impl Writer {
    /// Runs until `Close` or until every sender is gone (all `Index` clones dropped).
    pub(crate) fn run(mut self, requests: Receiver<Request>) {
        while let Ok(first) = requests.recv() {
            let mut batch = vec![first];
            let mut close = None;
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(Request::Close { reply }) => {
                        close = Some(reply);
                        break;
                    }
                    Ok(request) => batch.push(request),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if let Some(pos) = batch
                .iter()
                .position(|r| matches!(r, Request::Close { .. }))
            {
                // Only possible as the first request: drained ones are intercepted above.
                if let Request::Close { reply } = batch.remove(pos) {
                    close = Some(reply);
                }
            }
            self.process(batch);
            if let Some(reply) = close {
                // Let merges finish so the directory is left tidy; errors only cost disk space.
                if let Err(error) = self.writer.wait_merging_threads() {
                    tracing::warn!(%error, "index merge threads failed while closing");
                }
                let _ = reply.send(());
                return;
            }
        }
    }

    fn process(&mut self, batch: Vec<Request>) {
        if batch.is_empty() {
            return;
        }
        let batch_len = batch.len() as u64;
        let first_sequence = self.last_sequence;
        let mut applied = Vec::with_capacity(batch.len());
        let mut failure: Option<IndexError> = None;
        let mut dirty = false;
        let mut state = BatchState::default();
        for request in batch {
            match request {
                Request::Insert { record, reply } => {
                    let result = if failure.is_some() {
                        Ok((0, false)) // replaced by the batch error below
                    } else {
                        self.apply_insert(record, &mut state)
                    };
                    let result = self.keep_batch_error(result, &mut failure, &mut dirty);
                    applied.push(Applied::Insert(reply, result));
                }
                Request::Delete { scope, reply } => {
                    let result = if failure.is_some() {
                        Ok((Vec::new(), false))
                    } else {
                        self.apply_delete(&scope, &mut state)
                    };
                    let result = self.keep_batch_error(result, &mut failure, &mut dirty);
                    applied.push(Applied::Delete(reply, result));
                }
                Request::Apply { changes, reply } => {
                    let result = if failure.is_some() {
                        Ok((0, false))
                    } else {
                        self.apply_changes(changes, &mut state)
                    };
                    let result = self.keep_batch_error(result, &mut failure, &mut dirty);
                    applied.push(Applied::Apply(reply, result));
                }
                Request::Close { reply } => {
                    let _ = reply.send(());
                }
            }
        }
        let started = std::time::Instant::now();
        if failure.is_none() && dirty {
            failure = self.refresh_summaries(&state).err();
        }
        let summarised = started.elapsed();
        if failure.is_none() && dirty {
            failure = self.commit().err();
        }
        // What a batch costs, for operators tuning (`DICOMWEB_LOG=dicomweb_index=debug`): the summaries grow
        // with the touched studies' sizes, the commit has a fixed cost.
        tracing::debug!(
            requests = batch_len,
            summaries_ms = summarised.as_secs_f64() * 1e3,
            commit_ms = (started.elapsed() - summarised).as_secs_f64() * 1e3,
            "index batch"
        );
        if let Some(error) = &failure {
            tracing::error!(%error, "index batch failed, rolling back");
            self.last_sequence = first_sequence;
            if let Err(rollback_error) = self.writer.rollback() {
                tracing::error!(%rollback_error, "index rollback failed");
            }
        }
        self.counters
            .requests
            .fetch_add(batch_len, Ordering::Relaxed);
        for outcome in applied {
            match outcome {
                Applied::Insert(reply, result) => {
                    let _ = reply.send(match &failure {
                        Some(error) => Err(error.replicate()),
                        None => result,
                    });
                }
                Applied::Delete(reply, result) => {
                    let _ = reply.send(match &failure {
                        Some(error) => Err(error.replicate()),
                        None => result,
                    });
                }
                Applied::Apply(reply, result) => {
                    let _ = reply.send(match &failure {
                        Some(error) => Err(error.replicate()),
                        None => result,
                    });
                }
            }
        }
    }

    /// Per-request outcomes (`AlreadyExists`) stay with their request; anything else fails the
    /// whole batch, since documents of the batch may already be half-added.
    fn keep_batch_error<T>(
        &self,
        result: Result<(T, bool), IndexError>,
        failure: &mut Option<IndexError>,
        dirty: &mut bool,
    ) -> Result<T, IndexError> {
        match result {
            Ok((value, changed)) => {
                *dirty |= changed;
                Ok(value)
            }
            Err(error @ IndexError::AlreadyExists { .. }) => Err(error),
            Err(error) => {
                let copy = error.replicate();
                failure.get_or_insert(error);
                Err(copy)
            }
        }
    }

    fn commit(&mut self) -> Result<(), IndexError> {
        if self
            .counters
            .fail_next_commit
            .swap(false, Ordering::Relaxed)
        {
            return Err(IndexError::Io(std::io::Error::other(
                "injected commit failure",
            )));
        }
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&self.last_sequence.to_string());
        prepared.commit()?;
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        // Read-your-writes: answer (and publish the watermark) only once readers see the
        // commit. The commit itself is durable already, so a reload failure is retried once
        // before being reported.
        if let Err(error) = self.reader.reload() {
            tracing::warn!(%error, "index reader reload failed, retrying");
            self.reader.reload()?;
        }
        self.counters
            .last_sequence
            .store(self.last_sequence, Ordering::SeqCst);
        Ok(())
    }

    fn next_sequence(&mut self) -> u64 {
        self.last_sequence += 1;
        self.last_sequence
    }

    /// Rebuilds the study and series summary documents of every study the batch touched, from
    /// the committed instances (minus the batch's deletions) plus the batch's insertions.
    fn refresh_summaries(&mut self, state: &BatchState) -> Result<(), IndexError> {
        let searcher = self.reader.searcher();
        for study in &state.touched {
            let mut members: Vec<Member> =
                read::study_instance_rows(&searcher, &self.fields, study)?
                    .into_iter()
                    .filter(|row| {
                        !state.deleted.contains(&row.sop) && !state.inserted.contains_key(&row.sop)
                    })
                    .map(Member::Committed)
                    .collect();
            members.extend(
                state
                    .inserted
                    .values()
                    .filter(|(record, _)| &record.study_instance_uid == study)
                    .map(|(record, sequence)| Member::Pending(record, *sequence)),
            );
            // Deletes apply to every document added before them: the old summaries go, the
            // new ones (added after) stay.
            self.writer
                .delete_term(Term::from_field_text(self.fields.group_study, study));
            let Some(summary) = study_state(&searcher, &self.fields, &members, |_| true)? else {
                continue;
            };
            let mut doc =
                summary_document(&self.fields, KIND_STUDY, &summary.latest, summary.instances);
            doc.add_text(self.fields.study_order, study);
            doc.add_u64(self.fields.series_count, summary.series_count);
            doc.add_u64(
                self.fields.latest_series_instances,
                summary.latest_series_instances,
            );
            for modality in &summary.modalities {
                doc.add_text(self.fields.modalities, modality);
            }
            add_terms(
                &mut doc,
                &self.fields,
                TAG_MODALITIES_IN_STUDY,
                &summary.modalities,
            );
            self.writer.add_document(doc)?;
            for series in &summary.series {
                let latest = series.latest(&summary);
                let mut doc = summary_document(&self.fields, KIND_SERIES, latest, series.instances);
                doc.add_text(self.fields.group_series, &series.series);
                doc.add_text(
                    self.fields.series_order,
                    series_order_key(study, &series.series),
                );
                self.writer.add_document(doc)?;
            }
        }
        Ok(())
    }

    fn apply_insert(
        &mut self,
        record: InstanceRecord,
        state: &mut BatchState,
    ) -> Result<(u64, bool), IndexError> {
        let sop = record.sop_instance_uid.clone();
        let searcher = self.reader.searcher();
        let exists = state.inserted.contains_key(&sop)
            || (!state.deleted.contains(&sop)
                && read::contains_sop(&searcher, &self.fields, &sop)?);
        if exists {
            return Err(IndexError::AlreadyExists {
                sop_instance_uid: sop,
            });
        }
        let sequence = self.next_sequence();
        self.add_instance(record, sequence, state)?;
        Ok((sequence, true))
    }

    fn add_instance(
        &mut self,
        mut record: InstanceRecord,
        sequence: u64,
        state: &mut BatchState,
    ) -> Result<(), IndexError> {
        // From here on the record is as the index keeps it: its document, the batch's summaries
        // and what a delete in this batch returns all see the search copy.
        if let Cow::Owned(copy) = search_copy(&record.metadata) {
            record.metadata = copy;
        }
        let instance = instance_document(&self.fields, &record, sequence)?;
        self.writer.add_document(instance)?;
        state.touched.insert(record.study_instance_uid.clone());
        state
            .inserted
            .insert(record.sop_instance_uid.clone(), (record, sequence));
        Ok(())
    }

    /// Removes the instance with this SOPInstanceUID, committed or added earlier in the batch.
    fn remove_sop(
        &mut self,
        sop: &str,
        study: &str,
        state: &mut BatchState,
    ) -> Result<(), IndexError> {
        let searcher = self.reader.searcher();
        let pending = state.inserted.remove(sop).is_some();
        if pending || read::contains_sop(&searcher, &self.fields, sop)? {
            // Deletes apply to every document added before them, committed or not.
            self.writer
                .delete_term(Term::from_field_text(self.fields.sop_uid, sop));
            state.deleted.insert(sop.to_owned());
            state.touched.insert(study.to_owned());
        }
        Ok(())
    }

    /// Applies the catalogue's changes after the watermark, in order: an insert replaces any
    /// instance with the same SOPInstanceUID, a remove of an absent instance does nothing.
    fn apply_changes(
        &mut self,
        changes: Vec<IndexChange>,
        state: &mut BatchState,
    ) -> Result<(u64, bool), IndexError> {
        let mut changed = false;
        for change in changes {
            if change.sequence() <= self.last_sequence {
                continue;
            }
            self.last_sequence = change.sequence();
            changed = true;
            match change {
                IndexChange::Insert { sequence, record } => {
                    let (sop, study) = (
                        record.sop_instance_uid.clone(),
                        record.study_instance_uid.clone(),
                    );
                    self.remove_sop(&sop, &study, state)?;
                    self.add_instance(record, sequence, state)?;
                }
                IndexChange::Remove {
                    study_instance_uid,
                    sop_instance_uid,
                    ..
                } => self.remove_sop(&sop_instance_uid, &study_instance_uid, state)?,
            }
        }
        Ok((self.last_sequence, changed))
    }

    fn apply_delete(
        &mut self,
        scope: &Scope,
        state: &mut BatchState,
    ) -> Result<(Vec<InstanceRecord>, bool), IndexError> {
        let searcher = self.reader.searcher();
        let mut removed: Vec<InstanceRecord> =
            read::instances_in_scope(&searcher, &self.fields, scope)?
                .into_iter()
                .filter(|r| !state.deleted.contains(&r.sop_instance_uid))
                .collect();
        for record in &removed {
            state.deleted.insert(record.sop_instance_uid.clone());
        }
        let pending: Vec<String> = state
            .inserted
            .values()
            .map(|(r, _)| r)
            .filter(|r| {
                scope.contains(
                    &r.study_instance_uid,
                    &r.series_instance_uid,
                    &r.sop_instance_uid,
                )
            })
            .map(|r| r.sop_instance_uid.clone())
            .collect();
        for sop in pending {
            if let Some((record, _)) = state.inserted.remove(&sop) {
                removed.push(record);
            }
        }
        for record in &removed {
            state.touched.insert(record.study_instance_uid.clone());
        }
        dicomweb_catalogue::sort_instances(&mut removed);
        for record in &removed {
            // Deletes apply to every document added before them, committed or not; the
            // `sop_uid` field only exists on instance documents, so change entries stay.
            self.writer.delete_term(Term::from_field_text(
                self.fields.sop_uid,
                &record.sop_instance_uid,
            ));
            self.next_sequence();
        }
        let changed = !removed.is_empty();
        Ok((removed, changed))
    }
}

fn instance_document(
    f: &Fields,
    record: &InstanceRecord,
    sequence: u64,
) -> Result<TantivyDocument, IndexError> {
    let mut doc = TantivyDocument::new();
    doc.add_text(f.kind, KIND_INSTANCE);
    doc.add_text(f.study_uid, &record.study_instance_uid);
    doc.add_text(f.series_uid, &record.series_instance_uid);
    doc.add_text(f.sop_uid, &record.sop_instance_uid);
    doc.add_text(f.instance_order, instance_order_key(record));
    doc.add_text(f.sop_class_uid, &record.sop_class_uid);
    doc.add_text(f.transfer_syntax_uid, &record.transfer_syntax_uid);
    doc.add_text(f.blob_key, &record.blob_key);
    doc.add_u64(f.size, record.size);
    doc.add_date(f.stored_at, read::to_tantivy_date(record.stored_at));
    doc.add_bytes(f.metadata, &search_copy(&record.metadata));
    if let Some(layout) = &record.pixel_layout {
        doc.add_text(f.pixel_layout, layout);
    }
    let attributes = serde_json::to_vec(&record.attributes)
        .map_err(|e| IndexError::Io(std::io::Error::other(e)))?;
    doc.add_bytes(f.attributes, &attributes);
    for (tag, values) in &record.attributes {
        add_terms(&mut doc, f, *tag, values);
    }
    for modality in record.attribute_values(TAG_MODALITY) {
        doc.add_text(f.modality, modality);
    }
    doc.add_u64(f.instance_sequence, sequence);
    Ok(doc)
}

/// A study or series summary: the latest instance's attributes (matched at that level) and
/// counts. The caller adds the level-specific fields.
fn summary_document(
    f: &Fields,
    kind: &str,
    latest: &InstanceRecord,
    instances: u64,
) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_text(f.kind, kind);
    doc.add_text(f.group_study, &latest.study_instance_uid);
    doc.add_text(f.latest_sop, &latest.sop_instance_uid);
    doc.add_text(f.latest_series, &latest.series_instance_uid);
    // Already a search copy, unless an index written before kept the whole metadata.
    doc.add_bytes(f.latest_metadata, &search_copy(&latest.metadata));
    doc.add_u64(f.instance_count, instances);
    for (tag, values) in &latest.attributes {
        add_terms(&mut doc, f, *tag, values);
    }
    doc
}
