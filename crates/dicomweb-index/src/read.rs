//! Read side: queries over one `Searcher` (a consistent snapshot of the last reloaded commit).
//!
//! Used by the public read methods and by the writer (which reads its own committed state for
//! duplicate checks and deletes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{DateTime, DocAddress, DocId, Searcher, TantivyDocument, Term};
use time::OffsetDateTime;

use crate::matching::{DocumentTerms, Matcher, TermPredicate, any_term as term_set};
use crate::overlay::{Overlay, SummaryView, hit_instance, terms_of};
use crate::schema::{
    Fields, KIND_INSTANCE, KIND_SERIES, KIND_STUDY, instance_order_key, series_order_key,
};
use crate::search_copy::search_copy;
use crate::top_by_key::TopByStringKey;
use crate::types::{
    HitInstance, IndexError, InstanceRecord, Level, Scope, SearchHit, SearchQuery,
    TAG_SERIES_INSTANCE_UID, TAG_SOP_INSTANCE_UID, TAG_STUDY_INSTANCE_UID,
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

/// A stored metadata field (as a `Vec<u8>` or an `Arc<[u8]>`, copied once): the [`search_copy`]
/// the writer stored, or the search copy of the whole metadata that an index written before kept.
fn stored_metadata<T: for<'a> From<&'a [u8]>>(
    doc: &TantivyDocument,
    field: Field,
    name: &str,
) -> Result<T, IndexError> {
    let stored = doc
        .get_first(field)
        .and_then(|v| v.as_bytes())
        .ok_or_else(|| missing(name))?;
    Ok(T::from(&search_copy(stored)))
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
        metadata: stored_metadata(&doc, f.metadata, "metadata")?,
        pixel_layout: doc
            .get_first(f.pixel_layout)
            .and_then(|v| v.as_str().map(str::to_owned)),
        attributes,
    })
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
    // The one order every listing of instances uses (a scope never spans two studies).
    dicomweb_catalogue::sort_instances(&mut records);
    Ok(records)
}

pub(crate) fn contains_sop(searcher: &Searcher, f: &Fields, sop: &str) -> Result<bool, IndexError> {
    Ok(searcher.search(&*term_query(f.sop_uid, sop), &Count)? > 0)
}

/// Fast-field values of one instance document of a study (for the writer's summaries).
pub(crate) struct InstanceRow {
    pub address: DocAddress,
    pub sop: String,
    pub series: String,
    /// (stored_at in ns, sequence): "most recently stored" order.
    pub recency: (i64, u64),
    pub modalities: Vec<String>,
}

/// The strings of the term ordinals `ords` of a string fast field, in the order given, resolved in one pass over
/// the dictionary in ordinal order. Resolving ordinals one by one decodes a dictionary block from its start for
/// each; for the rows of a large study (thousands of SOPInstanceUIDs, one index batch after another) that was most
/// of the cost of refreshing its summary.
fn ords_to_strings(column: &StrColumn, ords: &[u64]) -> Result<Vec<String>, IndexError> {
    let mut order: Vec<usize> = (0..ords.len()).collect();
    order.sort_unstable_by_key(|&k| ords[k]);
    let sorted: Vec<u64> = order.iter().map(|&k| ords[k]).collect();
    let mut resolved: Vec<Option<String>> = Vec::with_capacity(sorted.len());
    let complete = column
        .dictionary()
        .sorted_ords_to_term_cb(&sorted, |bytes| {
            resolved.push(std::str::from_utf8(bytes).ok().map(str::to_owned));
        })?;
    if !complete || resolved.len() != ords.len() {
        return Err(IndexError::Corrupt(
            "a fast field refers to a term its dictionary lacks".into(),
        ));
    }
    let mut out = vec![String::new(); ords.len()];
    for (value, &k) in resolved.into_iter().zip(&order) {
        out[k] = value.ok_or_else(|| {
            IndexError::Corrupt("a string fast field holds a term that is not UTF-8".into())
        })?;
    }
    Ok(out)
}

/// The first value of a string fast field for each of `docs` (which must all have one).
fn first_strs(
    column: Option<&StrColumn>,
    docs: &[DocId],
    name: &str,
) -> Result<Vec<String>, IndexError> {
    let column = column.ok_or_else(|| missing(name))?;
    let ords = docs
        .iter()
        .map(|&doc| column.term_ords(doc).next().ok_or_else(|| missing(name)))
        .collect::<Result<Vec<u64>, IndexError>>()?;
    ords_to_strings(column, &ords)
}

/// Every value of a string fast field for each of `docs`.
fn all_strs(column: Option<&StrColumn>, docs: &[DocId]) -> Result<Vec<Vec<String>>, IndexError> {
    let Some(column) = column else {
        return Ok(vec![Vec::new(); docs.len()]);
    };
    let mut owners = Vec::new();
    let mut ords = Vec::new();
    for (k, &doc) in docs.iter().enumerate() {
        for ord in column.term_ords(doc) {
            owners.push(k);
            ords.push(ord);
        }
    }
    let mut out = vec![Vec::new(); docs.len()];
    for (value, k) in ords_to_strings(column, &ords)?.into_iter().zip(owners) {
        out[k].push(value);
    }
    Ok(out)
}

/// Documents matching `query`, grouped by segment.
fn matching_docs(
    searcher: &Searcher,
    query: &dyn Query,
) -> Result<BTreeMap<u32, Vec<DocId>>, IndexError> {
    let mut by_segment: BTreeMap<u32, Vec<DocId>> = BTreeMap::new();
    for address in searcher.search(query, &DocSetCollector)? {
        by_segment
            .entry(address.segment_ord)
            .or_default()
            .push(address.doc_id);
    }
    Ok(by_segment)
}

/// The fast-field rows of every committed instance of `study`, read without loading documents.
pub(crate) fn study_instance_rows(
    searcher: &Searcher,
    f: &Fields,
    study: &str,
) -> Result<Vec<InstanceRow>, IndexError> {
    let query = all_of(vec![
        term_query(f.kind, KIND_INSTANCE),
        term_query(f.study_uid, study),
    ]);
    let mut rows = Vec::new();
    for (segment_ord, docs) in matching_docs(searcher, &*query)? {
        let fast = searcher.segment_reader(segment_ord).fast_fields();
        let sop = fast.str("sop_uid")?;
        let series = fast.str("series_uid")?;
        let modality = fast.str("modality")?;
        let stored_at: Option<Column<DateTime>> = fast.column_opt("stored_at")?;
        let sequence: Option<Column<u64>> = fast.column_opt("instance_sequence")?;
        let sops = first_strs(sop.as_ref(), &docs, "sop_uid")?;
        let series = first_strs(series.as_ref(), &docs, "series_uid")?;
        let modalities = all_strs(modality.as_ref(), &docs)?;
        for (((doc, sop), series), modalities) in
            docs.into_iter().zip(sops).zip(series).zip(modalities)
        {
            let stored_at_ns = stored_at
                .as_ref()
                .and_then(|c| c.first(doc))
                .map_or(i64::MIN, DateTime::into_timestamp_nanos);
            let sequence = sequence.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
            rows.push(InstanceRow {
                address: DocAddress::new(segment_ord, doc),
                sop,
                series,
                recency: (stored_at_ns, sequence),
                modalities,
            });
        }
    }
    Ok(rows)
}

/// The values of the string fast field `field` over the documents matching `query`.
fn fast_strings(
    searcher: &Searcher,
    query: &dyn Query,
    field: &str,
) -> Result<BTreeSet<String>, IndexError> {
    let mut values = BTreeSet::new();
    for (segment_ord, docs) in matching_docs(searcher, query)? {
        let column = searcher
            .segment_reader(segment_ord)
            .fast_fields()
            .str(field)?;
        let Some(column) = column else {
            continue;
        };
        let ords: BTreeSet<u64> = docs.iter().flat_map(|&doc| column.term_ords(doc)).collect();
        let ords: Vec<u64> = ords.into_iter().collect();
        values.extend(ords_to_strings(&column, &ords)?);
    }
    Ok(values)
}

/// A study or series summary document, as a hit needs it.
#[derive(Clone)]
pub(crate) struct Summary {
    /// The most recently stored instance of the study/series.
    pub latest: HitInstance,
    pub instances: u64,
    /// Series in the study (study summaries).
    pub series: u64,
    /// Instances in the series of `latest` (study summaries).
    pub latest_series_instances: u64,
    pub modalities: Vec<String>,
}

/// Summaries looked up by key, once per search: the hits of a page often share them. Those the
/// overlay overrides come from it.
struct SummaryCache<'a> {
    summaries: HashMap<(&'static str, String), Summary>,
    overlay: Option<&'a Overlay<'a>>,
}

impl SummaryCache<'_> {
    /// The summary of the study `uid` (the overlay's, if it overrides it).
    fn study(&mut self, searcher: &Searcher, f: &Fields, uid: &str) -> Result<Summary, IndexError> {
        let overridden = self.overlay.and_then(|o| o.studies.get(uid));
        self.get(searcher, f, KIND_STUDY, f.group_study, uid, overridden)
    }

    /// The summary of the series `uid` (the overlay's, if it overrides it).
    fn series(
        &mut self,
        searcher: &Searcher,
        f: &Fields,
        uid: &str,
    ) -> Result<Summary, IndexError> {
        let overridden = self.overlay.and_then(|o| o.series.get(uid));
        self.get(searcher, f, KIND_SERIES, f.group_series, uid, overridden)
    }

    /// The summary document of `kind` whose `key_field` is `key`, unless `overridden`.
    fn get(
        &mut self,
        searcher: &Searcher,
        f: &Fields,
        kind: &'static str,
        key_field: Field,
        key: &str,
        overridden: Option<&Option<Arc<SummaryView>>>,
    ) -> Result<Summary, IndexError> {
        if let Some(view) = overridden {
            return view.as_ref().map(|v| v.summary.clone()).ok_or_else(|| {
                IndexError::Corrupt(format!("a hit belongs to the emptied {kind} {key}"))
            });
        }
        let cache_key = (kind, key.to_owned());
        if let Some(found) = self.summaries.get(&cache_key) {
            return Ok(found.clone());
        }
        let query = all_of(vec![term_query(f.kind, kind), term_query(key_field, key)]);
        let top = searcher.search(&*query, &TopDocs::with_limit(1).order_by_score())?;
        let (_, address) = top
            .first()
            .ok_or_else(|| IndexError::Corrupt(format!("no {kind} summary for {key}")))?;
        let found = load_summary(searcher, f, *address)?;
        self.summaries.insert(cache_key, found.clone());
        Ok(found)
    }
}

fn load_summary(
    searcher: &Searcher,
    f: &Fields,
    address: DocAddress,
) -> Result<Summary, IndexError> {
    let doc: TantivyDocument = searcher.doc(address)?;
    Ok(Summary {
        latest: HitInstance {
            study_instance_uid: stored_str(&doc, f.group_study, "group_study")?,
            series_instance_uid: stored_str(&doc, f.latest_series, "latest_series")?,
            sop_instance_uid: stored_str(&doc, f.latest_sop, "latest_sop")?,
            metadata: stored_metadata(&doc, f.latest_metadata, "latest_metadata")?,
        },
        instances: stored_u64(&doc, f.instance_count, "instance_count")?,
        series: doc
            .get_first(f.series_count)
            .and_then(|v| v.as_u64())
            .unwrap_or(0),
        latest_series_instances: doc
            .get_first(f.latest_series_instances)
            .and_then(|v| v.as_u64())
            .unwrap_or(0),
        modalities: doc
            .get_all(f.modalities)
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
    })
}

/// An instance document as a hit.
fn load_hit_instance(
    searcher: &Searcher,
    f: &Fields,
    address: DocAddress,
) -> Result<HitInstance, IndexError> {
    let doc: TantivyDocument = searcher.doc(address)?;
    Ok(HitInstance {
        study_instance_uid: stored_str(&doc, f.study_uid, "study_uid")?,
        series_instance_uid: stored_str(&doc, f.series_uid, "series_uid")?,
        sop_instance_uid: stored_str(&doc, f.sop_uid, "sop_uid")?,
        metadata: stored_metadata(&doc, f.metadata, "metadata")?,
    })
}

/// The document a hit comes from: its own instance, or its own summary (study and series hits).
pub(crate) enum Own {
    Instance(HitInstance),
    Series(Summary),
    Study(Summary),
}

/// The own document of the index hit at `address`.
fn own_of(
    searcher: &Searcher,
    f: &Fields,
    level: Level,
    address: DocAddress,
) -> Result<Own, IndexError> {
    Ok(match level {
        Level::Instance => Own::Instance(load_hit_instance(searcher, f, address)?),
        Level::Series => Own::Series(load_summary(searcher, f, address)?),
        Level::Study => Own::Study(load_summary(searcher, f, address)?),
    })
}

/// Builds a hit from its own document plus, for the Series and Instance levels, the summaries
/// above it. A study hit needs its summary document alone.
fn hit(
    searcher: &Searcher,
    f: &Fields,
    own: Own,
    cache: &mut SummaryCache,
) -> Result<SearchHit, IndexError> {
    let (record, series_record, series_instances, study) = match own {
        Own::Instance(record) => {
            let series = cache.series(searcher, f, &record.series_instance_uid)?;
            let study = cache.study(searcher, f, &record.study_instance_uid)?;
            (record, series.latest, series.instances, study)
        }
        Own::Series(own) => {
            let study = cache.study(searcher, f, &own.latest.study_instance_uid)?;
            (own.latest.clone(), own.latest, own.instances, study)
        }
        Own::Study(own) => {
            // The study's latest instance is also the latest of its series.
            let series_instances = own.latest_series_instances;
            (
                own.latest.clone(),
                own.latest.clone(),
                series_instances,
                own,
            )
        }
    };
    Ok(SearchHit {
        record,
        study_record: study.latest,
        series_record,
        study_related_series: study.series,
        study_related_instances: study.instances,
        series_related_instances: series_instances,
        modalities_in_study: study.modalities,
    })
}

/// `offset..offset + limit`, clamped to `total` so that a huge limit allocates nothing.
fn page(offset: usize, limit: usize, total: usize) -> Option<std::ops::Range<usize>> {
    let end = offset.saturating_add(limit).min(total);
    (offset < end).then_some(offset..end)
}

/// The field of the hit document of `level` that holds the hierarchy UID `tag`, if any.
fn uid_field(f: &Fields, level: Level, tag: u32) -> Option<Field> {
    match (level, tag) {
        (Level::Study, TAG_STUDY_INSTANCE_UID) | (Level::Series, TAG_STUDY_INSTANCE_UID) => {
            Some(f.group_study)
        }
        (Level::Series, TAG_SERIES_INSTANCE_UID) => Some(f.group_series),
        (Level::Instance, TAG_STUDY_INSTANCE_UID) => Some(f.study_uid),
        (Level::Instance, TAG_SERIES_INSTANCE_UID) => Some(f.series_uid),
        (Level::Instance, TAG_SOP_INSTANCE_UID) => Some(f.sop_uid),
        _ => None,
    }
}

/// The string fast field that orders the hits of `level`.
fn order_field(level: Level) -> &'static str {
    match level {
        Level::Study => "study_order",
        Level::Series => "series_order",
        Level::Instance => "instance_order",
    }
}

fn kind_of(level: Level) -> &'static str {
    match level {
        Level::Study => KIND_STUDY,
        Level::Series => KIND_SERIES,
        Level::Instance => KIND_INSTANCE,
    }
}

/// How a hit's own document is checked against a filter of its level, in memory (overlay).
enum OwnCheck {
    /// One of the hierarchy UIDs the hit knows is one of these.
    Uid(u32, Vec<String>),
    /// The document's terms match.
    Terms(TermPredicate),
}

/// A document of the overlay at the search's level.
struct OverlayDoc<'a> {
    key: String,
    study: &'a str,
    series: &'a str,
    sop: &'a str,
    own: OverlayOwn<'a>,
}

enum OverlayOwn<'a> {
    Study(&'a SummaryView),
    Series(&'a SummaryView),
    Instance(&'a InstanceRecord),
}

impl OverlayDoc<'_> {
    /// Does the document pass these checks? A UID check only exists for a UID the hits of the
    /// search's level know (see `uid_field`). An instance's terms are worked out only if a
    /// check needs them: most pending instances fail a UID check first.
    fn passes(&self, checks: &[OwnCheck]) -> bool {
        let computed: std::cell::OnceCell<DocumentTerms> = std::cell::OnceCell::new();
        let terms = || match self.own {
            OverlayOwn::Study(view) | OverlayOwn::Series(view) => &view.terms,
            OverlayOwn::Instance(record) => computed.get_or_init(|| terms_of(record)),
        };
        checks.iter().all(|check| match check {
            OwnCheck::Uid(tag, values) => {
                let uid = match *tag {
                    TAG_STUDY_INSTANCE_UID => self.study,
                    TAG_SERIES_INSTANCE_UID => self.series,
                    _ => self.sop,
                };
                values.iter().any(|v| v == uid)
            }
            OwnCheck::Terms(predicate) => predicate.matches(terms()),
        })
    }
}

/// The overlay's documents of `level`, in hit order.
fn overlay_docs<'a>(overlay: &'a Overlay<'a>, level: Level) -> Vec<OverlayDoc<'a>> {
    let mut docs: Vec<OverlayDoc> = match level {
        Level::Study => overlay
            .studies
            .iter()
            .filter_map(|(study, view)| {
                let view = view.as_ref()?;
                Some(OverlayDoc {
                    key: study.clone(),
                    study,
                    series: &view.summary.latest.series_instance_uid,
                    sop: &view.summary.latest.sop_instance_uid,
                    own: OverlayOwn::Study(view),
                })
            })
            .collect(),
        Level::Series => overlay
            .series
            .iter()
            .filter_map(|(series, view)| {
                let view = view.as_ref()?;
                let study = &view.summary.latest.study_instance_uid;
                Some(OverlayDoc {
                    key: series_order_key(study, series),
                    study,
                    series,
                    sop: &view.summary.latest.sop_instance_uid,
                    own: OverlayOwn::Series(view),
                })
            })
            .collect(),
        Level::Instance => overlay
            .instances
            .values()
            .flatten()
            .map(|(record, _)| OverlayDoc {
                key: instance_order_key(record),
                study: &record.study_instance_uid,
                series: &record.series_instance_uid,
                sop: &record.sop_instance_uid,
                own: OverlayOwn::Instance(record),
            })
            .collect(),
    };
    docs.sort_by(|a, b| a.key.cmp(&b.key));
    docs
}

/// `query` without the documents matching `excluded`.
fn without(query: Box<dyn Query>, excluded: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, query),
        (Occur::MustNot, excluded),
    ]))
}

/// The committed documents of `level` the overlay overrides.
fn overridden(f: &Fields, overlay: &Overlay, level: Level) -> Box<dyn Query> {
    match level {
        Level::Study => term_set(f.group_study, overlay.studies.keys()),
        Level::Series => term_set(f.group_series, overlay.series.keys()),
        Level::Instance => term_set(f.sop_uid, overlay.instances.keys()),
    }
}

/// A search over the committed index, with `overlay` (if any) applied on top: its overridden
/// documents left out, its own documents matched in memory and merged in hit order.
pub(crate) fn search(
    searcher: &Searcher,
    f: &Fields,
    query: &SearchQuery,
    overlay: Option<&Overlay<'_>>,
) -> Result<Vec<SearchHit>, IndexError> {
    let level = query.level;
    if overlay.is_some_and(|o| level != Level::Study && !o.has_series) {
        return Err(IndexError::Corrupt(
            "an overlay without series summaries cannot serve a series or instance search".into(),
        ));
    }
    let mut clauses = vec![term_query(f.kind, kind_of(level))];
    let mut own_checks = Vec::new();
    let mut upper: BTreeMap<u8, Vec<&crate::Filter>> = BTreeMap::new();
    for filter in &query.filters {
        if filter.level.depth() > level.depth() {
            return Ok(Vec::new());
        }
        if let (Some(field), Matcher::Exact(values), false) = (
            uid_field(f, level, filter.tag),
            &filter.matcher,
            filter.or_empty,
        ) {
            // The hit knows its own and its parents' UIDs: no join needed.
            clauses.push(term_set(field, values));
            own_checks.push(OwnCheck::Uid(filter.tag, values.clone()));
        } else if filter.level == level {
            let predicate = TermPredicate::of_filter(filter);
            clauses.push(predicate.query(f)?);
            own_checks.push(OwnCheck::Terms(predicate));
        } else {
            upper.entry(filter.level.depth()).or_default().push(filter);
        }
    }
    // Filters of upper levels match the study/series summaries; the hit must belong to one.
    let mut joins: Vec<(u8, BTreeSet<String>)> = Vec::new();
    for (filter_depth, filters) in upper {
        let (filter_level, key, target) = if filter_depth == 0 {
            let target = if level == Level::Instance {
                f.study_uid
            } else {
                f.group_study
            };
            (Level::Study, "group_study", target)
        } else {
            (Level::Series, "group_series", f.series_uid)
        };
        let predicates: Vec<TermPredicate> = filters
            .iter()
            .map(|fl| TermPredicate::of_filter(fl))
            .collect();
        let mut summary_clauses = vec![term_query(f.kind, kind_of(filter_level))];
        for predicate in &predicates {
            summary_clauses.push(predicate.query(f)?);
        }
        let mut summaries = all_of(summary_clauses);
        if let Some(overlay) = overlay {
            summaries = without(summaries, overridden(f, overlay, filter_level));
        }
        let mut keys = fast_strings(searcher, &*summaries, key)?;
        if let Some(overlay) = overlay {
            let views: Box<dyn Iterator<Item = (&String, &Option<Arc<SummaryView>>)>> =
                if filter_depth == 0 {
                    Box::new(overlay.studies.iter())
                } else {
                    Box::new(overlay.series.iter())
                };
            for (uid, view) in views {
                if let Some(view) = view
                    && predicates.iter().all(|p| p.matches(&view.terms))
                {
                    keys.insert(uid.clone());
                }
            }
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        clauses.push(term_set(target, &keys));
        joins.push((filter_depth, keys));
    }
    let mut filter = all_of(clauses);
    let mut docs: Vec<OverlayDoc> = Vec::new();
    if let Some(overlay) = overlay {
        filter = without(filter, overridden(f, overlay, level));
        docs = overlay_docs(overlay, level)
            .into_iter()
            .filter(|doc| {
                doc.passes(&own_checks)
                    && joins.iter().all(|(filter_depth, keys)| {
                        keys.contains(if *filter_depth == 0 {
                            doc.study
                        } else {
                            doc.series
                        })
                    })
            })
            .collect();
    }
    let total = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX);
    let Some(range) = page(query.offset, query.limit, total.saturating_add(docs.len())) else {
        return Ok(Vec::new());
    };
    let order = order_field(level);
    let merged = if docs.is_empty() {
        let top = searcher.search(&*filter, &TopByStringKey::new(order, range))?;
        top.into_iter()
            .map(|(_, address)| Either::Index(address))
            .collect()
    } else {
        // Both lists are in hit order: the first `range.end` of their merge hold the page.
        let top = searcher.search(&*filter, &TopByStringKey::new(order, 0..range.end))?;
        let mut merged = merge_in_hit_order(top, docs, range.end);
        merged.drain(..range.start.min(merged.len()));
        merged
    };
    let mut cache = SummaryCache {
        summaries: HashMap::new(),
        overlay,
    };
    merged
        .into_iter()
        .map(|entry| {
            let own = match entry {
                Either::Index(address) => own_of(searcher, f, level, address)?,
                Either::Overlay(own) => own,
            };
            hit(searcher, f, own, &mut cache)
        })
        .collect()
}

/// A hit of the merged page: from the index, or from the overlay.
enum Either {
    Index(DocAddress),
    Overlay(Own),
}

/// The first `end` hits of two lists that are each in hit order (by key); the index's hits
/// without a key come last (none should lack one).
fn merge_in_hit_order(
    from_index: Vec<(Option<String>, DocAddress)>,
    from_overlay: Vec<OverlayDoc<'_>>,
    end: usize,
) -> Vec<Either> {
    let mut from_index = from_index.into_iter().peekable();
    let mut from_overlay = from_overlay.into_iter().peekable();
    let mut merged = Vec::with_capacity(end);
    while merged.len() < end {
        let take_index = match (from_index.peek(), from_overlay.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((key, _)), Some(doc)) => key.as_deref().is_some_and(|key| key < doc.key.as_str()),
        };
        let next = if take_index {
            from_index.next().map(|(_, address)| Either::Index(address))
        } else {
            from_overlay.next().map(|doc| {
                Either::Overlay(match doc.own {
                    OverlayOwn::Study(view) => Own::Study(view.summary.clone()),
                    OverlayOwn::Series(view) => Own::Series(view.summary.clone()),
                    OverlayOwn::Instance(record) => Own::Instance(hit_instance(record)),
                })
            })
        };
        merged.extend(next);
    }
    merged
}
