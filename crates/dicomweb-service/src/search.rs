//! QIDO-RS: query parameter parsing and result shaping. Matching itself is the index's.
//!
//! This first version matches UIDs (lists of exact values) and exact values of the other searchable attributes;
//! wildcard, range and fuzzy matching are refused with a clear 400 until the index supports them.

use std::collections::BTreeSet;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicomweb_index::{Level, SearchHit, SearchQuery};
use serde_json::{Map, Value, json};

use crate::attributes::{default_return_tags, resolve_attribute, searchable, tag_key, tag_u32};
use crate::uid::truncate_for_message;
use crate::{Result, ServiceError, StudiesService, check_uid};

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

fn depth(level: Level) -> u8 {
    match level {
        Level::Study => 0,
        Level::Series => 1,
        Level::Instance => 2,
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
    filters: Vec<(Tag, Vec<String>)>,
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

fn parse_query(level: Level, params: &[(String, String)]) -> Result<ParsedQuery> {
    let mut parsed = ParsedQuery {
        filters: Vec::new(),
        include_all: false,
        include: BTreeSet::new(),
        offset: 0,
        limit: DEFAULT_LIMIT,
    };
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
            "fuzzymatching" => {
                if parse_bool("fuzzymatching", value)? {
                    return Err(ServiceError::InvalidInput(
                        "fuzzymatching=true is not supported yet by this server".into(),
                    ));
                }
            }
            "emptyvaluematching" | "multiplevaluematching" => {
                parse_bool(name, value)?;
            }
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
                let tag = resolve_attribute(name).ok_or_else(|| {
                    ServiceError::InvalidInput(format!(
                        "unknown query parameter or attribute \"{}\"",
                        truncate_for_message(name)
                    ))
                })?;
                let attribute = searchable(tag).ok_or_else(|| {
                    ServiceError::InvalidInput(format!(
                        "attribute {name} is not searchable on this server"
                    ))
                })?;
                if depth(attribute.level) > depth(level) {
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
                let values = if attribute.is_uid {
                    let uids: Vec<String> = value.split(['\\', ',']).map(str::to_owned).collect();
                    for uid in &uids {
                        check_uid(name, uid)?;
                    }
                    uids
                } else {
                    if value.contains(['*', '?']) {
                        return Err(ServiceError::InvalidInput(format!(
                            "wildcard matching on {name} is not supported yet by this server"
                        )));
                    }
                    vec![value.trim().to_owned()]
                };
                let tag = if tag == tags::MODALITIES_IN_STUDY {
                    tags::MODALITY
                } else {
                    tag
                };
                parsed.filters.push((tag, values));
            }
        }
    }
    Ok(parsed)
}

impl StudiesService {
    /// Runs a QIDO-RS search. `params` are the decoded query parameters; `base_url` is the service root as the
    /// client addressed it (for RetrieveURL). An empty result is `Ok(vec![])`.
    pub fn search(
        &self,
        resource: &SearchResource,
        params: &[(String, String)],
        base_url: &str,
    ) -> Result<Vec<Value>> {
        let level = resource.level();
        let mut query = parse_query(level, params)?;
        let (path_study, path_series) = match resource {
            SearchResource::Studies => (None, None),
            SearchResource::Series { study } => (study.clone(), None),
            SearchResource::Instances { study, series } => (study.clone(), series.clone()),
        };
        if let Some(study) = &path_study {
            check_uid("StudyInstanceUID", study)?;
            query
                .filters
                .push((tags::STUDY_INSTANCE_UID, vec![study.clone()]));
        }
        if let Some(series) = &path_series {
            check_uid("SeriesInstanceUID", series)?;
            query
                .filters
                .push((tags::SERIES_INSTANCE_UID, vec![series.clone()]));
        }
        let hits = self.index.search(&SearchQuery {
            level,
            filters: query
                .filters
                .iter()
                .map(|(t, v)| (tag_u32(*t), v.clone()))
                .collect(),
            offset: query.offset,
            limit: query.limit,
        })?;

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
        let keep: BTreeSet<String> = returned.iter().map(|t| tag_key(*t)).collect();

        hits.into_iter()
            .map(|hit| shape_result(hit, level, &query, &keep, base_url))
            .collect()
    }
}

fn shape_result(
    hit: SearchHit,
    level: Level,
    query: &ParsedQuery,
    keep: &BTreeSet<String>,
    base_url: &str,
) -> Result<Value> {
    let mut object: Map<String, Value> = match serde_json::from_slice(&hit.record.metadata) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(ServiceError::Internal(format!(
                "stored metadata of instance {} is not a JSON object",
                hit.record.sop_instance_uid
            )));
        }
    };
    if !query.include_all {
        object.retain(|key, _| keep.contains(key));
    }
    let record = &hit.record;
    let wants = |tag: Tag| query.include_all || query.include.contains(&tag);
    let study_url = format!("{base_url}/studies/{}", record.study_instance_uid);
    let retrieve_url = match level {
        Level::Study => study_url,
        Level::Series => format!("{study_url}/series/{}", record.series_instance_uid),
        Level::Instance => format!(
            "{study_url}/series/{}/instances/{}",
            record.series_instance_uid, record.sop_instance_uid
        ),
    };
    object.insert(
        tag_key(tags::RETRIEVE_URL),
        json!({"vr": "UR", "Value": [retrieve_url]}),
    );
    object.insert(
        tag_key(tags::INSTANCE_AVAILABILITY),
        json!({"vr": "CS", "Value": ["ONLINE"]}),
    );
    if level == Level::Study || wants(tags::MODALITIES_IN_STUDY) {
        let modalities = &hit.modalities_in_study;
        object.insert(
            tag_key(tags::MODALITIES_IN_STUDY),
            if modalities.is_empty() {
                json!({"vr": "CS"})
            } else {
                json!({"vr": "CS", "Value": modalities})
            },
        );
    }
    if level == Level::Study || wants(tags::NUMBER_OF_STUDY_RELATED_SERIES) {
        object.insert(
            tag_key(tags::NUMBER_OF_STUDY_RELATED_SERIES),
            json!({"vr": "IS", "Value": [hit.study_related_series]}),
        );
    }
    if level == Level::Study || wants(tags::NUMBER_OF_STUDY_RELATED_INSTANCES) {
        object.insert(
            tag_key(tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
            json!({"vr": "IS", "Value": [hit.study_related_instances]}),
        );
    }
    if level == Level::Series || wants(tags::NUMBER_OF_SERIES_RELATED_INSTANCES) {
        object.insert(
            tag_key(tags::NUMBER_OF_SERIES_RELATED_INSTANCES),
            json!({"vr": "IS", "Value": [hit.series_related_instances]}),
        );
    }
    Ok(Value::Object(object))
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

    #[test]
    fn uid_lists_and_exact_values_become_filters() {
        let q = parse_query(
            Level::Instance,
            &params(&[("StudyInstanceUID", "1.2,1.3"), ("00100020", "ID1")]),
        )
        .unwrap();
        assert_eq!(
            q.filters[0],
            (
                tags::STUDY_INSTANCE_UID,
                vec!["1.2".to_string(), "1.3".to_string()]
            )
        );
        assert_eq!(q.filters[1], (tags::PATIENT_ID, vec!["ID1".to_string()]));
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
                    for (_, values) in &q.filters {
                        proptest::prop_assert!(!values.is_empty());
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
