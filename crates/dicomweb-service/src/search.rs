//! QIDO-RS: query parameter parsing and result shaping. Matching itself is the index's.
//!
//! Query parameters arrive decoded as `application/x-www-form-urlencoded` (so `%2A` is `*`,
//! `%5E` is `^`, and a literal `+` means a space, as in every URL query; a `+` in a value must be
//! sent as `%2B`). Matching follows PS3.4 C.2.2.2 per VR (see [`ValueKind`]): UIDs as lists
//! (`,` or `\\`), no wildcards; PN case- and accent-insensitive with `*`/`?` and fuzzymatching;
//! DA ranges `a-b`, `a-`, `-b`; TM single values (at their precision) and ranges; other strings
//! exact or wildcard, case-sensitive. Several values separated by `\\` need
//! multiplevaluematching=true (any value matches); emptyvaluematching=true also matches entities
//! without a value. Results come in the index's order: StudyInstanceUID, then
//! SeriesInstanceUID, then SOPInstanceUID.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicomweb_index::{
    Filter, HitInstance, IndexChange, Level, Matcher, SearchHit, SearchQuery, date_key,
    datetime_key, time_key,
};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::attributes::{
    ITEM_SEPARATOR, SEARCHABLE, SearchableAttribute, ValueKind, default_return_tags, item_tag,
    resolve_attribute, resolve_path, searchable, sequence_members, tag_key,
};
use crate::uid::truncate_for_message;
use crate::{Result, ServiceError, StudiesService, check_uid};

/// How long a search waits for the search index to reflect the writes committed before it, before a 503.
const SEARCH_INDEX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Default number of results per page.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit` a client may ask for.
pub const MAX_LIMIT: usize = 200;

/// The six QIDO-RS resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchResource {
    /// `/studies`
    Studies,
    /// `/series` (study `None`) or `/studies/{study}/series`.
    Series { study: Option<String> },
    /// `/instances`, `/studies/{study}/instances` or `/studies/{study}/series/{series}/instances`.
    Instances {
        study: Option<String>,
        series: Option<String>,
    },
}

impl SearchResource {
    fn level(&self) -> Level {
        match self {
            SearchResource::Studies => Level::Study,
            SearchResource::Series { .. } => Level::Series,
            SearchResource::Instances { .. } => Level::Instance,
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Study => "study",
        Level::Series => "series",
        Level::Instance => "instance",
    }
}

/// A parsed QIDO-RS request.
#[derive(Debug, Clone)]
struct ParsedQuery {
    /// The filters, with the attribute each one matches (for the returned attributes).
    filters: Vec<(Tag, Filter)>,
    include_all: bool,
    include: BTreeSet<Tag>,
    offset: usize,
    limit: usize,
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ServiceError::InvalidInput(format!(
            "query parameter {name} must be true or false, not \"{}\"",
            truncate_for_message(value)
        ))),
    }
}

fn parse_count(name: &str, value: &str) -> Result<usize> {
    value.parse::<usize>().map_err(|_| {
        ServiceError::InvalidInput(format!(
            "query parameter {name} must be a non-negative integer, not \"{}\"",
            truncate_for_message(value)
        ))
    })
}

fn invalid(name: &str, what: &str, value: &str) -> ServiceError {
    ServiceError::InvalidInput(format!(
        "query parameter {name}: {what}, not \"{}\"",
        truncate_for_message(value)
    ))
}

/// Matching switches that apply to every attribute.
#[derive(Debug, Clone, Copy, Default)]
struct Switches {
    fuzzy: bool,
    empty: bool,
    multiple: bool,
}

/// Most values one attribute may list (`multiplevaluematching`, or a UID list): each value is a
/// query of its own, so this bounds the work of one search.
pub const MAX_QUERY_VALUES: usize = 64;

/// Most UIDs one UID attribute may list: exact terms, cheap each, and clients send study lists.
pub const MAX_QUERY_UIDS: usize = 1000;

/// Longest query value, in characters: longer than any value of a searchable VR (a PN of three
/// component groups of 64 characters is the longest), so a longer one can only be an error.
pub const MAX_QUERY_VALUE_CHARS: usize = 256;

/// Most wildcards (`*`, `?`) in one value. Each adds states to the automaton the index runs over
/// its terms; real queries use one or two.
pub const MAX_QUERY_WILDCARDS: usize = 16;

/// Refuses a value over the bounds above, naming the parameter.
fn check_bounds(name: &str, value: &str) -> Result<()> {
    let chars = value.chars().count();
    if chars > MAX_QUERY_VALUE_CHARS {
        return Err(ServiceError::InvalidInput(format!(
            "query parameter {name}: a value of {chars} characters is longer than the \
             {MAX_QUERY_VALUE_CHARS} accepted (\"{}\")",
            truncate_for_message(value)
        )));
    }
    let wildcards = value.chars().filter(|c| matches!(c, '*' | '?')).count();
    if wildcards > MAX_QUERY_WILDCARDS {
        return Err(ServiceError::InvalidInput(format!(
            "query parameter {name}: a value with {wildcards} wildcards has more than the \
             {MAX_QUERY_WILDCARDS} accepted (\"{}\")",
            truncate_for_message(value)
        )));
    }
    Ok(())
}

fn check_count(name: &str, count: usize, most: usize) -> Result<()> {
    if count > most {
        return Err(ServiceError::InvalidInput(format!(
            "query parameter {name}: {count} values is more than the {most} accepted"
        )));
    }
    Ok(())
}

/// The matcher of one attribute's (non-empty) query value.
fn matcher(
    name: &str,
    attribute: &SearchableAttribute,
    value: &str,
    switches: Switches,
) -> Result<Matcher> {
    if attribute.kind == ValueKind::Uid {
        if value.contains(['*', '?']) {
            return Err(invalid(name, "wildcards are not allowed on a UID", value));
        }
        let uids: Vec<String> = value.split(['\\', ',']).map(str::to_owned).collect();
        check_count(name, uids.len(), MAX_QUERY_UIDS)?;
        for uid in &uids {
            check_uid(name, uid)?;
        }
        return Ok(Matcher::Exact(uids));
    }
    let values: Vec<String> = if value.contains('\\') {
        if !switches.multiple {
            return Err(invalid(
                name,
                "several values separated by \\ need multiplevaluematching=true",
                value,
            ));
        }
        value.split('\\').map(|v| v.trim().to_owned()).collect()
    } else {
        vec![value.trim().to_owned()]
    };
    check_count(name, values.len(), MAX_QUERY_VALUES)?;
    for one in &values {
        check_bounds(name, one)?;
    }
    match attribute.kind {
        ValueKind::Uid => Ok(Matcher::Exact(values)),
        ValueKind::PersonName => Ok(Matcher::PersonName {
            values,
            fuzzy: switches.fuzzy,
        }),
        ValueKind::Text => Ok(Matcher::Wildcard(values)),
        ValueKind::Date | ValueKind::Time | ValueKind::DateTime => {
            let (expected, key): (&str, RangeKey) = match attribute.kind {
                ValueKind::Date => (
                    "a date is YYYYMMDD, a range YYYYMMDD-YYYYMMDD, YYYYMMDD- or -YYYYMMDD",
                    |text, _| date_key(text),
                ),
                ValueKind::Time => (
                    "a time is HH[MM[SS[.FFFFFF]]], a range TIME-TIME, TIME- or -TIME",
                    time_key,
                ),
                _ => (
                    "a date-time is YYYY[MM[DD[HH[MM[SS[.FFFFFF]]]]]][+ZZXX], a range DT-DT, DT- or -DT",
                    datetime_key,
                ),
            };
            let mut ranges = Vec::new();
            for one in &values {
                ranges.push(range_matcher(name, value, one, expected, key)?);
            }
            Ok(match ranges.len() {
                1 => ranges.remove(0),
                _ => Matcher::AnyOf(ranges),
            })
        }
    }
}

/// Builds the comparable key of a DA/TM/DT value, as a lower (false) or upper (true) bound.
type RangeKey = fn(&str, bool) -> Option<String>;

/// The range of one DA/TM/DT query value: `a-b`, `a-`, `-b`, or a single value (the range of
/// its precision: `2024` as a DT covers the whole year).
fn range_matcher(
    name: &str,
    whole_value: &str,
    one: &str,
    expected: &str,
    key: RangeKey,
) -> Result<Matcher> {
    // The first '-' separates the bounds, so a query DT cannot carry a negative UTC offset
    // ("2020-2021" is a range of years, not 2020 at UTC-20:21); offsets are ignored anyway.
    let split = one.split_once('-');
    let bound = |text: &str, upper: bool| -> Result<Option<String>> {
        if text.is_empty() {
            Ok(None)
        } else {
            key(text, upper)
                .map(Some)
                .ok_or_else(|| invalid(name, expected, whole_value))
        }
    };
    match split {
        Some((lower, upper)) => {
            let (lower, upper) = (lower.trim(), upper.trim());
            if lower.is_empty() && upper.is_empty() {
                return Err(invalid(name, expected, whole_value));
            }
            Ok(Matcher::Range {
                lower: bound(lower, false)?,
                upper: bound(upper, true)?,
            })
        }
        None => Ok(Matcher::Range {
            lower: bound(one, false)?,
            upper: bound(one, true)?,
        }),
    }
}

fn parse_query(level: Level, params: &[(String, String)]) -> Result<ParsedQuery> {
    let mut parsed = ParsedQuery {
        filters: Vec::new(),
        include_all: false,
        include: BTreeSet::new(),
        offset: 0,
        limit: DEFAULT_LIMIT,
    };
    // Switches first: they apply to attributes given before them too.
    let mut switches = Switches::default();
    let mut item_keys = Vec::new();
    for (name, value) in params {
        match name.to_ascii_lowercase().as_str() {
            "fuzzymatching" => switches.fuzzy = parse_bool("fuzzymatching", value)?,
            "emptyvaluematching" => switches.empty = parse_bool("emptyvaluematching", value)?,
            "multiplevaluematching" => {
                switches.multiple = parse_bool("multiplevaluematching", value)?
            }
            _ => {}
        }
    }
    for (name, value) in params {
        match name.to_ascii_lowercase().as_str() {
            "limit" => {
                let limit = parse_count("limit", value)?;
                if limit == 0 || limit > MAX_LIMIT {
                    return Err(ServiceError::InvalidInput(format!(
                        "query parameter limit must be between 1 and {MAX_LIMIT}, not {limit}"
                    )));
                }
                parsed.limit = limit;
            }
            "offset" => parsed.offset = parse_count("offset", value)?,
            "fuzzymatching" | "emptyvaluematching" | "multiplevaluematching" => {}
            "includefield" => {
                for id in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if id.eq_ignore_ascii_case("all") {
                        parsed.include_all = true;
                    } else {
                        let tag = resolve_attribute(id).ok_or_else(|| {
                            ServiceError::InvalidInput(format!(
                                "includefield names an unknown attribute \"{}\"",
                                truncate_for_message(id)
                            ))
                        })?;
                        parsed.include.insert(tag);
                    }
                }
            }
            _ => {
                let (sequence, tag) = resolve_path(name).ok_or_else(|| {
                    ServiceError::InvalidInput(format!(
                        "unknown query parameter or attribute \"{}\"",
                        truncate_for_message(name)
                    ))
                })?;
                let attribute = searchable(sequence, tag).ok_or_else(|| {
                    ServiceError::InvalidInput(format!(
                        "attribute {name} is not searchable on this server"
                    ))
                })?;
                if attribute.level.depth() > level.depth() {
                    return Err(ServiceError::InvalidInput(format!(
                        "attribute {name} is a {}-level attribute and cannot be searched at {} level",
                        level_name(attribute.level),
                        level_name(level)
                    )));
                }
                if value.is_empty() {
                    // Universal matching: every value matches, so no filter.
                    continue;
                }
                let matcher = matcher(name, attribute, value, switches)?;
                if let Some(sequence) = sequence {
                    item_keys.push(ItemKey {
                        sequence,
                        tag,
                        matcher: matcher.clone(),
                        or_empty: switches.empty,
                    });
                }
                let returned = sequence.unwrap_or(tag);
                parsed.filters.push((
                    returned,
                    Filter {
                        level: attribute.level,
                        tag: attribute.index_tag(),
                        matcher,
                        or_empty: switches.empty && attribute.kind != ValueKind::Uid,
                    },
                ));
            }
        }
    }
    parsed.filters.extend(same_item_filters(&item_keys));
    Ok(parsed)
}

/// A query key inside a sequence item (`RequestAttributesSequence.ScheduledProcedureStepID`).
struct ItemKey {
    sequence: Tag,
    tag: Tag,
    matcher: Matcher,
    or_empty: bool,
}

/// Most item patterns one search may expand to (alternatives multiply across keys).
const MAX_ITEM_PATTERNS: usize = 256;

/// PS3.4 C.2.2.2.6: the keys of one sequence match when one item matches all of them. Each
/// key's own filter already holds for some item; for a sequence with several keys this adds
/// one filter on the whole-item terms ([`item_tag`]) whose patterns put each key's values in
/// its position and `*` in the others.
fn same_item_filters(keys: &[ItemKey]) -> Vec<(Tag, Filter)> {
    let mut sequences: Vec<Tag> = keys.iter().map(|k| k.sequence).collect();
    sequences.sort();
    sequences.dedup();
    let mut filters = Vec::new();
    for sequence in sequences {
        let keys: Vec<&ItemKey> = keys.iter().filter(|k| k.sequence == sequence).collect();
        if keys.len() < 2 {
            continue;
        }
        let mut patterns = vec![String::new()];
        let mut complete = true;
        for (position, member) in sequence_members(sequence).enumerate() {
            let mut options: Vec<String> = Vec::new();
            let mut constrained = false;
            for key in keys.iter().filter(|k| k.tag == member.tag) {
                constrained = true;
                match &key.matcher {
                    Matcher::Exact(values) | Matcher::Wildcard(values) => {
                        options.extend(values.iter().cloned())
                    }
                    _ => complete = false,
                }
                if key.or_empty {
                    options.push(String::new());
                }
            }
            if !constrained {
                options.push("*".to_owned());
            }
            let separator = if position == 0 {
                String::new()
            } else {
                ITEM_SEPARATOR.to_string()
            };
            patterns = patterns
                .iter()
                .flat_map(|p| {
                    let separator = &separator;
                    options.iter().map(move |o| format!("{p}{separator}{o}"))
                })
                .collect();
            if patterns.len() > MAX_ITEM_PATTERNS {
                complete = false;
                break;
            }
        }
        // Keys of one member given twice, or too many alternatives: the per-key filters stay.
        if !complete
            || keys
                .iter()
                .any(|k| keys.iter().filter(|o| o.tag == k.tag).count() > 1)
        {
            continue;
        }
        let Some(first) = sequence_members(sequence).next() else {
            continue;
        };
        filters.push((
            sequence,
            Filter {
                level: first.level,
                tag: item_tag(sequence),
                matcher: Matcher::Wildcard(patterns),
                or_empty: keys.iter().all(|k| k.or_empty),
            },
        ));
    }
    filters
}

/// Tags whose values, in a hit of a lower level, come from the latest instance of `level`.
fn level_tags(level: Level) -> BTreeSet<Tag> {
    let mut tags: BTreeSet<Tag> = default_return_tags(level).iter().copied().collect();
    tags.extend(
        SEARCHABLE
            .iter()
            .filter(|a| a.level == level)
            .map(|a| a.sequence.unwrap_or(a.tag)),
    );
    tags.remove(&tags::SPECIFIC_CHARACTER_SET);
    tags.remove(&tags::TIMEZONE_OFFSET_FROM_UTC);
    tags
}

fn uid_filter(level: Level, tag: Tag, uid: &str) -> Filter {
    Filter {
        level,
        tag: crate::attributes::tag_u32(tag),
        matcher: Matcher::Exact(vec![uid.to_owned()]),
        or_empty: false,
    }
}

impl StudiesService {
    /// Runs a QIDO-RS search. `params` are the decoded query parameters; `base_url` is the service root as the
    /// client addressed it (for RetrieveURL). An empty result is `Ok(vec![])`.
    pub async fn search(
        &self,
        resource: &SearchResource,
        params: &[(String, String)],
        base_url: &str,
    ) -> Result<Vec<SearchResult>> {
        let level = resource.level();
        let mut query = parse_query(level, params)?;
        let (path_study, path_series) = match resource {
            SearchResource::Studies => (None, None),
            SearchResource::Series { study } => (study.clone(), None),
            SearchResource::Instances { study, series } => (study.clone(), series.clone()),
        };
        if let Some(study) = &path_study {
            check_uid("StudyInstanceUID", study)?;
            query.filters.push((
                tags::STUDY_INSTANCE_UID,
                uid_filter(Level::Study, tags::STUDY_INSTANCE_UID, study),
            ));
        }
        if let Some(series) = &path_series {
            check_uid("SeriesInstanceUID", series)?;
            query.filters.push((
                tags::SERIES_INSTANCE_UID,
                uid_filter(Level::Series, tags::SERIES_INSTANCE_UID, series),
            ));
        }
        // Read-your-writes: the search sees every change committed before it arrived, the committed index's and,
        // laid over it, those the index has not applied yet.
        let target = self.catalogue.last_sequence();
        let wait = async {
            match self.search_index.unapplied_until(target).await? {
                Some(unapplied) => Ok::<_, ServiceError>(unapplied),
                None => {
                    // Too many to lay over: commit them first.
                    self.search_index.catch_up(target).await?;
                    Ok(Vec::new())
                }
            }
        };
        let unapplied: Vec<Arc<IndexChange>> =
            match tokio::time::timeout(SEARCH_INDEX_WAIT, wait).await {
                Ok(unapplied) => unapplied?,
                Err(_) => {
                    return Err(ServiceError::Unavailable(
                        "the search index is catching up with recent stores; retry shortly".into(),
                    ));
                }
            };
        let index = self.search_index.index.clone();
        let index_query = SearchQuery {
            level,
            filters: query.filters.iter().map(|(_, f)| f.clone()).collect(),
            offset: query.offset,
            limit: query.limit,
        };
        // A search is CPU work of milliseconds: it runs on the blocking pool, not on an HTTP worker, in the lane
        // of its cost (cheap searches never wait behind expensive ones).
        let filters = index_query.filters.clone();
        let hits = self
            .search_lanes
            .run(&filters, move || {
                index.search_including(&index_query, &unapplied)
            })
            .await??;

        let mut returned: BTreeSet<Tag> = default_return_tags(level).iter().copied().collect();
        if level != Level::Study && path_study.is_none() {
            returned.extend(default_return_tags(Level::Study));
        }
        if level == Level::Instance && path_series.is_none() {
            returned.extend(default_return_tags(Level::Series));
        }
        returned.extend(query.include.iter().copied());
        returned.extend(query.filters.iter().map(|(t, _)| *t));
        returned.insert(tags::STUDY_INSTANCE_UID);
        if level != Level::Study {
            returned.insert(tags::SERIES_INSTANCE_UID);
        }
        let keys = |tags: BTreeSet<Tag>| tags.into_iter().map(tag_key).collect::<BTreeSet<_>>();
        let shape = ResultShape {
            level,
            include_all: query.include_all,
            keep: keys(returned),
            series_keys: keys(level_tags(Level::Series)),
            study_keys: keys(level_tags(Level::Study)),
            query: &query,
            base_url,
        };
        hits.iter().map(|hit| shape.shape(hit)).collect()
    }
}

/// One QIDO-RS result: a DICOM JSON object, already serialized.
///
/// Results are written as text straight from the stored DICOM JSON of the instances (each
/// attribute's value copied verbatim) instead of being built as a `serde_json::Value` tree and
/// serialized again: at a page of 100 studies that tree cost more than the search itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResult(String);

impl SearchResult {
    /// The DICOM JSON object as text.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// The DICOM JSON object, parsed.
    pub fn to_value(&self) -> Value {
        // Written by `ResultShape::shape` from valid JSON values, so it parses.
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

/// The QIDO-RS response body: a JSON array of `results`.
pub fn json_array(results: &[SearchResult]) -> Vec<u8> {
    let length: usize = results.iter().map(|r| r.0.len() + 1).sum();
    let mut body = Vec::with_capacity(length + 2);
    body.push(b'[');
    for (i, result) in results.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(result.0.as_bytes());
    }
    body.push(b']');
    body
}

/// The attributes of a stored DICOM JSON object in stored order, keys borrowed and values left
/// unparsed: a search result copies a few of them verbatim.
struct RawEntries<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for RawEntries<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawEntries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a DICOM JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(32));
                while let Some(entry) = map.next_entry::<&'de str, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(RawEntries(entries))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

fn raw_entries(record: &HitInstance) -> Result<Vec<(&str, &RawValue)>> {
    serde_json::from_slice::<RawEntries>(&record.metadata)
        .map(|entries| entries.0)
        .map_err(|_| {
            ServiceError::Internal(format!(
                "stored metadata of instance {} is not a DICOM JSON object",
                record.sop_instance_uid
            ))
        })
}

/// What shapes every result of one search.
struct ResultShape<'q> {
    level: Level,
    include_all: bool,
    /// Keys of the attributes returned (unless `include_all`).
    keep: BTreeSet<String>,
    /// Keys whose values come from the latest instance of the series / study (lower levels).
    series_keys: BTreeSet<String>,
    study_keys: BTreeSet<String>,
    query: &'q ParsedQuery,
    base_url: &'q str,
}

/// Which keys of a stored object a result takes from it.
type KeyFilter<'a> = dyn Fn(&str) -> bool + 'a;

fn push_json_string(out: &mut String, text: &str) {
    // serde_json escapes exactly as JSON requires; writing to a String cannot fail.
    match serde_json::to_string(text) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

fn computed_strings(vr: &str, values: &[&str]) -> String {
    let mut out = format!("{{\"vr\":\"{vr}\"");
    if !values.is_empty() {
        out.push_str(",\"Value\":[");
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_string(&mut out, value);
        }
        out.push(']');
    }
    out.push('}');
    out
}

fn computed_count(count: u64) -> String {
    format!("{{\"vr\":\"IS\",\"Value\":[{count}]}}")
}

impl ResultShape<'_> {
    /// Whether a computed attribute beyond the level's defaults is asked for (or matched).
    fn wants(&self, tag: Tag) -> bool {
        self.include_all
            || self.query.include.contains(&tag)
            || self.query.filters.iter().any(|(t, _)| *t == tag)
    }

    fn shape(&self, hit: &SearchHit) -> Result<SearchResult> {
        let level = self.level;
        let computed = self.computed(hit);
        // Upper-level attributes come from the latest instance of their study/series, the same
        // instance whose values were matched; an attribute of both upper levels' lists is the
        // study's.
        let is_upper = |key: &str| {
            (level == Level::Instance && self.series_keys.contains(key))
                || (level != Level::Study && self.study_keys.contains(key))
        };
        let from_own = |key: &str| !is_upper(key);
        let from_series =
            |key: &str| self.series_keys.contains(key) && !self.study_keys.contains(key);
        let from_study = |key: &str| self.study_keys.contains(key);
        let mut sources: Vec<(&HitInstance, &KeyFilter)> = vec![(&hit.record, &from_own)];
        if level == Level::Instance {
            sources.push((&hit.series_record, &from_series));
        }
        if level != Level::Study {
            sources.push((&hit.study_record, &from_study));
        }
        // (key, value as JSON text)
        let mut attributes: Vec<(&str, Cow<str>)> = Vec::with_capacity(48);
        for (record, takes) in sources {
            for (key, value) in raw_entries(record)? {
                // A computed attribute replaces a stored one of the same tag.
                if takes(key)
                    && (self.include_all || self.keep.contains(key))
                    && !computed.iter().any(|(k, _)| k == key)
                    && let Some(value) = self.searched_value(record, value.get())
                {
                    attributes.push((key, value));
                }
            }
        }
        attributes.extend(
            computed
                .iter()
                .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str()))),
        );
        // DICOM JSON objects list attributes in tag order; keys are 8 hex digits, so text order.
        attributes.sort_by(|a, b| a.0.cmp(b.0));
        attributes.dedup_by(|a, b| a.0 == b.0);

        let length: usize = attributes.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut out = String::with_capacity(length + 2);
        out.push('{');
        for (i, (key, value)) in attributes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_string(&mut out, key);
            out.push(':');
            out.push_str(value);
        }
        out.push('}');
        Ok(SearchResult(out))
    }

    /// A stored attribute's value as a result gives it: a bulk value (a `BulkDataURI`, relative as stored) is
    /// left out, as search results carry no bulk data; one nested in a sequence's items gets the URL of its
    /// instance's bulk data resource, as in the instance's metadata.
    fn searched_value<'v>(&self, record: &HitInstance, value: &'v str) -> Option<Cow<'v, str>> {
        if !dicomweb_json::has_relative_bulk_data_uri(value.as_bytes()) {
            return Some(Cow::Borrowed(value));
        }
        // Stored values are written by dicomweb-json: `{"vr":"XX",...}`.
        if !value.starts_with(r#"{"vr":"SQ""#) {
            return None;
        }
        let served = crate::retrieve::served_metadata(
            value.as_bytes(),
            self.base_url,
            &record.study_instance_uid,
            &record.series_instance_uid,
            &record.sop_instance_uid,
        );
        String::from_utf8(served.into_owned()).ok().map(Cow::Owned)
    }

    /// The computed attributes of a hit (RetrieveURL, InstanceAvailability, counts,
    /// ModalitiesInStudy) that this search returns: (key, value as JSON text).
    fn computed(&self, hit: &SearchHit) -> Vec<(String, String)> {
        let level = self.level;
        let record = &hit.record;
        let study_url = format!("{}/studies/{}", self.base_url, record.study_instance_uid);
        let retrieve_url = match level {
            Level::Study => study_url,
            Level::Series => format!("{study_url}/series/{}", record.series_instance_uid),
            Level::Instance => format!(
                "{study_url}/series/{}/instances/{}",
                record.series_instance_uid, record.sop_instance_uid
            ),
        };
        let mut computed: Vec<(Tag, String)> = vec![
            (tags::RETRIEVE_URL, computed_strings("UR", &[&retrieve_url])),
            (
                tags::INSTANCE_AVAILABILITY,
                computed_strings("CS", &["ONLINE"]),
            ),
        ];
        if level == Level::Study || self.wants(tags::MODALITIES_IN_STUDY) {
            let modalities: Vec<&str> =
                hit.modalities_in_study.iter().map(String::as_str).collect();
            computed.push((
                tags::MODALITIES_IN_STUDY,
                computed_strings("CS", &modalities),
            ));
        }
        if level == Level::Study || self.wants(tags::NUMBER_OF_STUDY_RELATED_SERIES) {
            computed.push((
                tags::NUMBER_OF_STUDY_RELATED_SERIES,
                computed_count(hit.study_related_series),
            ));
        }
        if level == Level::Study || self.wants(tags::NUMBER_OF_STUDY_RELATED_INSTANCES) {
            computed.push((
                tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
                computed_count(hit.study_related_instances),
            ));
        }
        if level == Level::Series || self.wants(tags::NUMBER_OF_SERIES_RELATED_INSTANCES) {
            computed.push((
                tags::NUMBER_OF_SERIES_RELATED_INSTANCES,
                computed_count(hit.series_related_instances),
            ));
        }
        // The UIDs that name the result come from the hit itself, not from the stored JSON: the index keeps a
        // bounded search copy of an instance's metadata (`dicomweb_index::search_copy`), from which a large
        // instance's attributes may be missing.
        computed.push((
            tags::STUDY_INSTANCE_UID,
            computed_strings("UI", &[&record.study_instance_uid]),
        ));
        if level != Level::Study {
            computed.push((
                tags::SERIES_INSTANCE_UID,
                computed_strings("UI", &[&record.series_instance_uid]),
            ));
        }
        if level == Level::Instance {
            computed.push((
                tags::SOP_INSTANCE_UID,
                computed_strings("UI", &[&record.sop_instance_uid]),
            ));
        }
        computed
            .into_iter()
            .map(|(tag, json)| (tag_key(tag), json))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn matchers(level: Level, pairs: &[(&str, &str)]) -> Vec<Matcher> {
        parse_query(level, &params(pairs))
            .unwrap()
            .filters
            .into_iter()
            .map(|(_, f)| f.matcher)
            .collect()
    }

    #[test]
    fn each_vr_gets_its_matcher() {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            matchers(Level::Instance, &[("StudyInstanceUID", "1.2,1.3\\1.4")]),
            [Matcher::Exact(strings(&["1.2", "1.3", "1.4"]))]
        );
        assert_eq!(
            matchers(Level::Study, &[("00100020", "ID*")]),
            [Matcher::Wildcard(strings(&["ID*"]))]
        );
        assert_eq!(
            matchers(
                Level::Study,
                &[("PatientName", "jo do"), ("fuzzymatching", "true")]
            ),
            [Matcher::PersonName {
                values: strings(&["jo do"]),
                fuzzy: true
            }]
        );
        assert_eq!(
            matchers(Level::Study, &[("StudyDate", "20240101-")]),
            [Matcher::Range {
                lower: Some("20240101".into()),
                upper: None
            }]
        );
        assert_eq!(
            matchers(Level::Study, &[("StudyTime", "-12")]),
            [Matcher::Range {
                lower: None,
                upper: Some("125959.999999".into())
            }]
        );
        assert_eq!(
            matchers(Level::Study, &[("StudyDate", "20240101")]),
            [Matcher::Range {
                lower: Some("20240101".into()),
                upper: Some("20240101".into())
            }]
        );
        assert_eq!(
            matchers(
                Level::Study,
                &[("PatientID", "A\\B"), ("multiplevaluematching", "true")]
            ),
            [Matcher::Wildcard(strings(&["A", "B"]))]
        );
        let q = parse_query(
            Level::Series,
            &params(&[
                ("RequestAttributesSequence.ScheduledProcedureStepID", "S1"),
                ("emptyvaluematching", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(q.filters[0].1.tag >> 16, 0xFFFF);
        assert!(q.filters[0].1.or_empty);
    }

    #[test]
    fn errors_name_the_parameter() {
        let cases = [
            (Level::Study, ("NoSuchAttribute", "x"), "NoSuchAttribute"),
            (Level::Study, ("SOPInstanceUID", "1.2"), "instance-level"),
            (Level::Study, ("limit", "0"), "limit"),
            (Level::Study, ("limit", "201"), "limit"),
            (Level::Study, ("offset", "-1"), "offset"),
            (
                Level::Study,
                ("StudyInstanceUID", "1.2*"),
                "StudyInstanceUID",
            ),
            (Level::Study, ("fuzzymatching", "maybe"), "fuzzymatching"),
            (Level::Study, ("includefield", "Nope"), "Nope"),
            (Level::Study, ("SOPClassUID", "1.2"), "SOPClassUID"),
            (Level::Series, ("SOPInstanceUID", "1.2*"), "SOPInstanceUID"),
            (Level::Study, ("StudyDate", "-"), "StudyDate"),
            (Level::Study, ("StudyDate", "2024"), "StudyDate"),
            (Level::Study, ("StudyDate", "20241301"), "StudyDate"),
            (Level::Study, ("StudyDate", "20240101-2024"), "StudyDate"),
            (Level::Study, ("StudyTime", "25"), "StudyTime"),
            (Level::Study, ("PatientID", "A\\B"), "multiplevaluematching"),
            (Level::Study, ("Rows", "1"), "not searchable"),
        ];
        for (level, (k, v), needle) in cases {
            let err = parse_query(level, &params(&[(k, v)])).unwrap_err();
            assert!(matches!(err, ServiceError::InvalidInput(_)), "{k}={v}");
            assert!(err.to_string().contains(needle), "{k}={v}: {err}");
        }
    }

    proptest::proptest! {
        /// Fuzzing: any decoded query parameters give a parsed query or an InvalidInput error, never a panic.
        #[test]
        fn any_query_parameters_are_handled(
            pairs in proptest::collection::vec(
                (
                    proptest::prop_oneof![
                        proptest::strategy::Just("limit".to_string()),
                        proptest::strategy::Just("offset".to_string()),
                        proptest::strategy::Just("includefield".to_string()),
                        proptest::strategy::Just("fuzzymatching".to_string()),
                        proptest::strategy::Just("StudyInstanceUID".to_string()),
                        proptest::strategy::Just("PatientName".to_string()),
                        proptest::strategy::Just("00100020".to_string()),
                        proptest::strategy::Just("ModalitiesInStudy".to_string()),
                        "\\PC{0,12}",
                    ],
                    "\\PC{0,40}",
                ),
                0..8,
            ),
            level in proptest::prop_oneof![
                proptest::strategy::Just(Level::Study),
                proptest::strategy::Just(Level::Series),
                proptest::strategy::Just(Level::Instance),
            ],
        ) {
            match parse_query(level, &pairs) {
                Ok(q) => {
                    proptest::prop_assert!(q.limit >= 1 && q.limit <= MAX_LIMIT);
                    for (_, filter) in &q.filters {
                        if let Matcher::Exact(values) | Matcher::Wildcard(values) = &filter.matcher {
                            proptest::prop_assert!(!values.is_empty());
                        }
                    }
                }
                Err(e) => proptest::prop_assert!(matches!(e, ServiceError::InvalidInput(_))),
            }
        }
    }

    #[test]
    fn empty_values_match_everything() {
        let q = parse_query(Level::Study, &params(&[("PatientID", "")])).unwrap();
        assert!(q.filters.is_empty());
    }
}
