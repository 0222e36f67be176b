//! Read side: queries over one `Searcher` (a consistent snapshot of the last reloaded commit).
//!
//! Used by the public read methods and by the writer (which reads its own committed state for
//! duplicate checks and deletes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{DateTime, DocAddress, DocId, Order, Searcher, TantivyDocument, Term};
use time::OffsetDateTime;

use crate::schema::{Fields, KIND_CHANGE, KIND_INSTANCE, attr_term_text};
use crate::types::{
    ChangeAction, ChangeFeedEntry, ChangeQuery, ChangeState, IndexError, InstanceRecord, Level,
    Scope, SearchHit, SearchQuery, TAG_SERIES_INSTANCE_UID, TAG_SOP_INSTANCE_UID,
    TAG_STUDY_INSTANCE_UID,
};

pub(crate) fn term_query(field: Field, text: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, text),
        IndexRecordOption::Basic,
    ))
}

fn all_of(clauses: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(
        clauses.into_iter().map(|q| (Occur::Must, q)).collect(),
    ))
}

/// Instance documents in `scope`.
pub(crate) fn scope_query(f: &Fields, scope: &Scope) -> Box<dyn Query> {
    match scope {
        Scope::Study(study) => term_query(f.study_uid, study),
        Scope::Series(study, series) => all_of(vec![
            term_query(f.study_uid, study),
            term_query(f.series_uid, series),
        ]),
        Scope::Instance(study, series, sop) => all_of(vec![
            term_query(f.study_uid, study),
            term_query(f.series_uid, series),
            term_query(f.sop_uid, sop),
        ]),
    }
}

/// UTC, truncated to microseconds: the precision of every timestamp in the index.
pub(crate) fn to_index_time(t: OffsetDateTime) -> OffsetDateTime {
    let utc = t.to_offset(time::UtcOffset::UTC);
    let micros_only = utc.nanosecond() / 1_000 * 1_000;
    utc.replace_nanosecond(micros_only).unwrap_or(utc)
}

pub(crate) fn to_tantivy_date(t: OffsetDateTime) -> DateTime {
    DateTime::from_utc(to_index_time(t))
}

fn from_tantivy_date(t: DateTime) -> Result<OffsetDateTime, IndexError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.into_timestamp_nanos()))
        .map_err(|e| IndexError::Corrupt(format!("stored date out of range: {e}")))
}

fn missing(field: &str) -> IndexError {
    IndexError::Corrupt(format!("stored document lacks field `{field}`"))
}

fn stored_str(doc: &TantivyDocument, field: Field, name: &str) -> Result<String, IndexError> {
    doc.get_first(field)
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or_else(|| missing(name))
}

fn stored_u64(doc: &TantivyDocument, field: Field, name: &str) -> Result<u64, IndexError> {
    doc.get_first(field)
        .and_then(|v| v.as_u64())
        .ok_or_else(|| missing(name))
}

fn stored_date(
    doc: &TantivyDocument,
    field: Field,
    name: &str,
) -> Result<OffsetDateTime, IndexError> {
    let date = doc
        .get_first(field)
        .and_then(|v| v.as_datetime())
        .ok_or_else(|| missing(name))?;
    from_tantivy_date(date)
}

fn stored_bytes(doc: &TantivyDocument, field: Field, name: &str) -> Result<Vec<u8>, IndexError> {
    doc.get_first(field)
        .and_then(|v| v.as_bytes().map(<[u8]>::to_vec))
        .ok_or_else(|| missing(name))
}

pub(crate) fn load_record(
    searcher: &Searcher,
    f: &Fields,
    address: DocAddress,
) -> Result<InstanceRecord, IndexError> {
    let doc: TantivyDocument = searcher.doc(address)?;
    let attributes_json = stored_bytes(&doc, f.attributes, "attributes")?;
    let attributes = serde_json::from_slice(&attributes_json)
        .map_err(|e| IndexError::Corrupt(format!("stored attributes: {e}")))?;
    Ok(InstanceRecord {
        study_instance_uid: stored_str(&doc, f.study_uid, "study_uid")?,
        series_instance_uid: stored_str(&doc, f.series_uid, "series_uid")?,
        sop_instance_uid: stored_str(&doc, f.sop_uid, "sop_uid")?,
        sop_class_uid: stored_str(&doc, f.sop_class_uid, "sop_class_uid")?,
        transfer_syntax_uid: stored_str(&doc, f.transfer_syntax_uid, "transfer_syntax_uid")?,
        blob_key: stored_str(&doc, f.blob_key, "blob_key")?,
        size: stored_u64(&doc, f.size, "size")?,
        stored_at: stored_date(&doc, f.stored_at, "stored_at")?,
        metadata: stored_bytes(&doc, f.metadata, "metadata")?,
        pixel_layout: doc
            .get_first(f.pixel_layout)
            .and_then(|v| v.as_str().map(str::to_owned)),
        attributes,
    })
}

/// Order of `Index::instances`: series UID, InstanceNumber (numbered first), SOPInstanceUID.
pub(crate) fn sort_instances(records: &mut [InstanceRecord]) {
    records.sort_by_cached_key(|r| {
        (
            r.study_instance_uid.clone(),
            r.series_instance_uid.clone(),
            r.instance_number().is_none(),
            r.instance_number(),
            r.sop_instance_uid.clone(),
        )
    });
}

pub(crate) fn instances_in_scope(
    searcher: &Searcher,
    f: &Fields,
    scope: &Scope,
) -> Result<Vec<InstanceRecord>, IndexError> {
    let addresses = searcher.search(&*scope_query(f, scope), &DocSetCollector)?;
    let mut records = addresses
        .into_iter()
        .map(|address| load_record(searcher, f, address))
        .collect::<Result<Vec<_>, _>>()?;
    sort_instances(&mut records);
    Ok(records)
}

pub(crate) fn contains_sop(searcher: &Searcher, f: &Fields, sop: &str) -> Result<bool, IndexError> {
    Ok(searcher.search(&*term_query(f.sop_uid, sop), &Count)? > 0)
}

/// Highest committed change feed sequence, 0 if the feed is empty.
pub(crate) fn max_sequence(searcher: &Searcher, f: &Fields) -> Result<u64, IndexError> {
    let top = searcher.search(
        &*term_query(f.kind, KIND_CHANGE),
        &TopDocs::with_limit(1).order_by_u64_field("sequence", Order::Desc),
    )?;
    Ok(top.first().and_then(|(sequence, _)| *sequence).unwrap_or(0))
}

/// Fast-field values of one matching instance document.
struct InstanceRow {
    address: DocAddress,
    study: String,
    series: String,
    /// (stored_at in ns, sequence): "most recently stored" order.
    recency: (i64, u64),
    modalities: Vec<String>,
}

fn str_values(column: Option<&StrColumn>, doc: DocId) -> Result<Vec<String>, IndexError> {
    let Some(column) = column else {
        return Ok(Vec::new());
    };
    let mut values = Vec::new();
    for ord in column.term_ords(doc) {
        let mut value = String::new();
        column.ord_to_str(ord, &mut value)?;
        values.push(value);
    }
    Ok(values)
}

fn first_str(column: Option<&StrColumn>, doc: DocId, name: &str) -> Result<String, IndexError> {
    str_values(column, doc)?
        .into_iter()
        .next()
        .ok_or_else(|| missing(name))
}

/// Reads the grouping fast fields of every instance document matching `query`.
fn instance_rows(
    searcher: &Searcher,
    query: &dyn Query,
    with_modalities: bool,
) -> Result<Vec<InstanceRow>, IndexError> {
    let mut by_segment: BTreeMap<u32, Vec<DocId>> = BTreeMap::new();
    for address in searcher.search(query, &DocSetCollector)? {
        by_segment
            .entry(address.segment_ord)
            .or_default()
            .push(address.doc_id);
    }
    let mut rows = Vec::new();
    for (segment_ord, docs) in by_segment {
        let fast = searcher.segment_reader(segment_ord).fast_fields();
        let study = fast.str("study_uid")?;
        let series = fast.str("series_uid")?;
        let modality = if with_modalities {
            fast.str("modality")?
        } else {
            None
        };
        let stored_at: Option<Column<DateTime>> = fast.column_opt("stored_at")?;
        let sequence: Option<Column<u64>> = fast.column_opt("instance_sequence")?;
        for doc in docs {
            let stored_at_ns = stored_at
                .as_ref()
                .and_then(|c| c.first(doc))
                .map_or(i64::MIN, DateTime::into_timestamp_nanos);
            let sequence = sequence.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
            rows.push(InstanceRow {
                address: DocAddress::new(segment_ord, doc),
                study: first_str(study.as_ref(), doc, "study_uid")?,
                series: first_str(series.as_ref(), doc, "series_uid")?,
                recency: (stored_at_ns, sequence),
                modalities: str_values(modality.as_ref(), doc)?,
            });
        }
    }
    Ok(rows)
}

/// Counts over all instances of one study.
struct StudyStats {
    instances: u64,
    instances_per_series: HashMap<String, u64>,
    modalities: Vec<String>,
}

fn study_stats(searcher: &Searcher, f: &Fields, study: &str) -> Result<StudyStats, IndexError> {
    let rows = instance_rows(searcher, &*term_query(f.study_uid, study), true)?;
    let mut instances_per_series: HashMap<String, u64> = HashMap::new();
    let mut modalities = BTreeSet::new();
    for row in &rows {
        *instances_per_series.entry(row.series.clone()).or_default() += 1;
        modalities.extend(row.modalities.iter().cloned());
    }
    Ok(StudyStats {
        instances: rows.len() as u64,
        instances_per_series,
        modalities: modalities.into_iter().collect(),
    })
}

fn hit(
    searcher: &Searcher,
    f: &Fields,
    address: DocAddress,
    stats_cache: &mut HashMap<String, StudyStats>,
) -> Result<SearchHit, IndexError> {
    let record = load_record(searcher, f, address)?;
    if !stats_cache.contains_key(&record.study_instance_uid) {
        let stats = study_stats(searcher, f, &record.study_instance_uid)?;
        stats_cache.insert(record.study_instance_uid.clone(), stats);
    }
    let stats = stats_cache
        .get(&record.study_instance_uid)
        .ok_or_else(|| IndexError::Corrupt("study statistics vanished".into()))?;
    Ok(SearchHit {
        study_related_series: stats.instances_per_series.len() as u64,
        study_related_instances: stats.instances,
        series_related_instances: stats
            .instances_per_series
            .get(&record.series_instance_uid)
            .copied()
            .unwrap_or(0),
        modalities_in_study: stats.modalities.clone(),
        record,
    })
}

/// `offset..offset + limit`, clamped to `total` so that a huge limit allocates nothing.
fn page(offset: usize, limit: usize, total: usize) -> Option<std::ops::Range<usize>> {
    let end = offset.saturating_add(limit).min(total);
    (offset < end).then_some(offset..end)
}

pub(crate) fn search(
    searcher: &Searcher,
    f: &Fields,
    query: &SearchQuery,
) -> Result<Vec<SearchHit>, IndexError> {
    let mut clauses = vec![term_query(f.kind, KIND_INSTANCE)];
    for (tag, values) in &query.filters {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let terms = values.iter().map(|value| match *tag {
            TAG_STUDY_INSTANCE_UID => Term::from_field_text(f.study_uid, value),
            TAG_SERIES_INSTANCE_UID => Term::from_field_text(f.series_uid, value),
            TAG_SOP_INSTANCE_UID => Term::from_field_text(f.sop_uid, value),
            _ => Term::from_field_text(f.attr, &attr_term_text(*tag, value)),
        });
        clauses.push(Box::new(TermSetQuery::new(terms)));
    }
    let filter = all_of(clauses);
    let mut stats_cache = HashMap::new();

    if query.level == Level::Instance {
        let total = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX);
        let Some(range) = page(query.offset, query.limit, total) else {
            return Ok(Vec::new());
        };
        let top = searcher.search(
            &*filter,
            &TopDocs::for_doc_range(range).order_by_string_fast_field("sort_key", Order::Asc),
        )?;
        return top
            .into_iter()
            .map(|(_, address)| hit(searcher, f, address, &mut stats_cache))
            .collect();
    }

    // Study/Series: group the matching instances, keep the most recently stored of each group.
    let mut groups: BTreeMap<(String, String), InstanceRow> = BTreeMap::new();
    for row in instance_rows(searcher, &*filter, false)? {
        let key = match query.level {
            Level::Series => (row.study.clone(), row.series.clone()),
            _ => (row.study.clone(), String::new()),
        };
        match groups.get(&key) {
            Some(best) if best.recency >= row.recency => {}
            _ => {
                groups.insert(key, row);
            }
        }
    }
    let Some(range) = page(query.offset, query.limit, groups.len()) else {
        return Ok(Vec::new());
    };
    groups
        .into_values()
        .skip(range.start)
        .take(range.len())
        .map(|row| hit(searcher, f, row.address, &mut stats_cache))
        .collect()
}

/// Change documents as stored (state not yet computed).
fn load_change(
    searcher: &Searcher,
    f: &Fields,
    address: DocAddress,
) -> Result<ChangeFeedEntry, IndexError> {
    let doc: TantivyDocument = searcher.doc(address)?;
    let action_text = stored_str(&doc, f.action, "action")?;
    let action = ChangeAction::parse(&action_text)
        .ok_or_else(|| IndexError::Corrupt(format!("unknown change action `{action_text}`")))?;
    Ok(ChangeFeedEntry {
        sequence: stored_u64(&doc, f.sequence, "sequence")?,
        study_instance_uid: stored_str(&doc, f.change_study, "change_study")?,
        series_instance_uid: stored_str(&doc, f.change_series, "change_series")?,
        sop_instance_uid: stored_str(&doc, f.change_sop, "change_sop")?,
        action,
        timestamp: stored_date(&doc, f.timestamp, "timestamp")?,
        state: ChangeState::Deleted,
        metadata: None,
    })
}

/// Computes `state` (and `metadata` if asked) of a page of entries with one query for the page.
fn complete_changes(
    searcher: &Searcher,
    f: &Fields,
    entries: &mut [ChangeFeedEntry],
    include_metadata: bool,
) -> Result<(), IndexError> {
    if entries.is_empty() {
        return Ok(());
    }
    // SOPInstanceUID -> (sequence of its current create entry, its document).
    let mut current: HashMap<String, (u64, DocAddress)> = HashMap::new();
    let terms = entries
        .iter()
        .map(|e| Term::from_field_text(f.sop_uid, &e.sop_instance_uid));
    let addresses = searcher.search(&TermSetQuery::new(terms), &DocSetCollector)?;
    for address in addresses {
        let fast = searcher.segment_reader(address.segment_ord).fast_fields();
        let sop = first_str(fast.str("sop_uid")?.as_ref(), address.doc_id, "sop_uid")?;
        let sequence: Option<Column<u64>> = fast.column_opt("instance_sequence")?;
        let sequence = sequence
            .and_then(|c| c.first(address.doc_id))
            .ok_or_else(|| missing("instance_sequence"))?;
        current.insert(sop, (sequence, address));
    }
    let mut metadata_cache: HashMap<DocAddress, Vec<u8>> = HashMap::new();
    for entry in entries.iter_mut() {
        let now = current.get(&entry.sop_instance_uid);
        entry.state = match (entry.action, now) {
            (ChangeAction::Delete, _) | (ChangeAction::Create, None) => ChangeState::Deleted,
            (ChangeAction::Create, Some((sequence, _))) if *sequence == entry.sequence => {
                ChangeState::Current
            }
            (ChangeAction::Create, Some(_)) => ChangeState::Replaced,
        };
        if let (true, Some((_, address))) = (include_metadata, now) {
            if !metadata_cache.contains_key(address) {
                let doc: TantivyDocument = searcher.doc(*address)?;
                metadata_cache.insert(*address, stored_bytes(&doc, f.metadata, "metadata")?);
            }
            entry.metadata = metadata_cache.get(address).cloned();
        }
    }
    Ok(())
}

pub(crate) fn changes(
    searcher: &Searcher,
    f: &Fields,
    query: &ChangeQuery,
) -> Result<Vec<ChangeFeedEntry>, IndexError> {
    let mut clauses = vec![term_query(f.kind, KIND_CHANGE)];
    if query.after_sequence > 0 {
        clauses.push(Box::new(RangeQuery::new(
            Bound::Excluded(Term::from_field_u64(f.sequence, query.after_sequence)),
            Bound::Unbounded,
        )));
    }
    if query.start_time.is_some() || query.end_time.is_some() {
        let bound = |t: Option<OffsetDateTime>, inclusive: bool| match t {
            None => Bound::Unbounded,
            Some(t) => {
                // Compare at full precision: the stored values are exact microseconds.
                let term = Term::from_field_date(f.timestamp, DateTime::from_utc(t));
                if inclusive {
                    Bound::Included(term)
                } else {
                    Bound::Excluded(term)
                }
            }
        };
        clauses.push(Box::new(RangeQuery::new(
            bound(query.start_time, true),
            bound(query.end_time, false),
        )));
    }
    let total = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX);
    let skip = usize::try_from(query.skip).unwrap_or(usize::MAX);
    let Some(range) = page(skip, query.limit, total) else {
        return Ok(Vec::new());
    };
    let top = searcher.search(
        &*all_of(clauses),
        &TopDocs::for_doc_range(range).order_by_u64_field("sequence", Order::Asc),
    )?;
    let mut entries = top
        .into_iter()
        .map(|(_, address)| load_change(searcher, f, address))
        .collect::<Result<Vec<_>, _>>()?;
    complete_changes(searcher, f, &mut entries, query.include_metadata)?;
    Ok(entries)
}

pub(crate) fn latest_change(
    searcher: &Searcher,
    f: &Fields,
    include_metadata: bool,
) -> Result<Option<ChangeFeedEntry>, IndexError> {
    let top = searcher.search(
        &*term_query(f.kind, KIND_CHANGE),
        &TopDocs::with_limit(1).order_by_u64_field("sequence", Order::Desc),
    )?;
    let Some((_, address)) = top.first() else {
        return Ok(None);
    };
    let mut entries = vec![load_change(searcher, f, *address)?];
    complete_changes(searcher, f, &mut entries, include_metadata)?;
    Ok(entries.pop())
}
