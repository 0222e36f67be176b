//! What a study's summaries say, computed from its instances: the one computation behind the
//! summary documents the writer commits and the in-memory summaries of the overlay
//! ([`crate::overlay`]), so that a search answers the same before and after a commit.

use std::collections::{BTreeMap, BTreeSet};

use tantivy::Searcher;

use crate::read::{self, InstanceRow};
use crate::schema::Fields;
use crate::types::{IndexError, InstanceRecord, TAG_MODALITY};

/// An instance of a study whose summaries are being computed.
pub(crate) enum Member<'a> {
    /// Committed in the index (its fast-field row).
    Committed(InstanceRow),
    /// Not committed yet: its record and the sequence of the change that adds it.
    Pending(&'a InstanceRecord, u64),
}

impl Member<'_> {
    /// "Most recently stored" order: `stored_at` (as the index keeps it), then sequence.
    pub(crate) fn recency(&self) -> (i64, u64) {
        match self {
            Member::Committed(row) => row.recency,
            Member::Pending(record, sequence) => {
                let nanos = read::to_tantivy_date(record.stored_at).into_timestamp_nanos();
                (nanos, *sequence)
            }
        }
    }

    pub(crate) fn sop(&self) -> &str {
        match self {
            Member::Committed(row) => &row.sop,
            Member::Pending(record, _) => &record.sop_instance_uid,
        }
    }

    pub(crate) fn series(&self) -> &str {
        match self {
            Member::Committed(row) => &row.series,
            Member::Pending(record, _) => &record.series_instance_uid,
        }
    }

    fn modalities(&self) -> Vec<String> {
        match self {
            Member::Committed(row) => row.modalities.clone(),
            Member::Pending(record, _) => record
                .attribute_values(TAG_MODALITY)
                .map(str::to_owned)
                .collect(),
        }
    }

    fn record(&self, searcher: &Searcher, f: &Fields) -> Result<InstanceRecord, IndexError> {
        match self {
            Member::Committed(row) => read::load_record(searcher, f, row.address),
            Member::Pending(record, _) => Ok((*record).clone()),
        }
    }
}

/// A series summary: its most recently stored instance and its instance count.
pub(crate) struct SeriesState {
    pub series: String,
    pub instances: u64,
    /// Its most recently stored instance, unless that is the study's (see [`SeriesState::latest`]).
    own_latest: Option<InstanceRecord>,
}

impl SeriesState {
    /// The series' most recently stored instance; `study` is the state it belongs to.
    pub(crate) fn latest<'s>(&'s self, study: &'s StudyState) -> &'s InstanceRecord {
        self.own_latest.as_ref().unwrap_or(&study.latest)
    }
}

/// A study summary: its most recently stored instance, counts and modalities, and the
/// summaries of the series asked for.
pub(crate) struct StudyState {
    pub latest: InstanceRecord,
    pub instances: u64,
    pub series_count: u64,
    /// Instances in the series of `latest`.
    pub latest_series_instances: u64,
    /// Distinct values of Modality over the members, sorted.
    pub modalities: Vec<String>,
    /// The series `wanted` accepted, in UID order.
    pub series: Vec<SeriesState>,
}

/// The summaries of a study with these members (`None` if it has none). Loads the stored
/// record of the study's latest instance and of each wanted series' latest, unless pending.
pub(crate) fn study_state(
    searcher: &Searcher,
    f: &Fields,
    members: &[Member],
    wanted: impl Fn(&str) -> bool,
) -> Result<Option<StudyState>, IndexError> {
    let Some(study_latest) = members.iter().max_by_key(|m| m.recency()) else {
        return Ok(None);
    };
    let mut by_series: BTreeMap<&str, (u64, &Member)> = BTreeMap::new();
    let mut modalities = BTreeSet::new();
    for member in members {
        modalities.extend(member.modalities());
        let entry = by_series.entry(member.series()).or_insert((0, member));
        entry.0 += 1;
        if member.recency() > entry.1.recency() {
            entry.1 = member;
        }
    }
    let latest = study_latest.record(searcher, f)?;
    let latest_series_instances = by_series
        .get(latest.series_instance_uid.as_str())
        .map_or(0, |(count, _)| *count);
    let mut series = Vec::new();
    for (uid, (count, series_latest)) in &by_series {
        if !wanted(uid) {
            continue;
        }
        // The study's latest instance is its series' latest: no second load, no copy.
        let own_latest = if series_latest.sop() == latest.sop_instance_uid {
            None
        } else {
            Some(series_latest.record(searcher, f)?)
        };
        series.push(SeriesState {
            series: (*uid).to_owned(),
            instances: *count,
            own_latest,
        });
    }
    Ok(Some(StudyState {
        latest,
        instances: members.len() as u64,
        series_count: by_series.len() as u64,
        latest_series_instances,
        modalities: modalities.into_iter().collect(),
        series,
    }))
}
