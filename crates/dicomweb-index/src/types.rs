//! Public data types of the index: records, scopes, change feed entries, queries, errors.

use time::OffsetDateTime;

/// Tag of StudyInstanceUID (0020,000D).
pub const TAG_STUDY_INSTANCE_UID: u32 = 0x0020_000D;
/// Tag of SeriesInstanceUID (0020,000E).
pub const TAG_SERIES_INSTANCE_UID: u32 = 0x0020_000E;
/// Tag of SOPInstanceUID (0008,0018).
pub const TAG_SOP_INSTANCE_UID: u32 = 0x0008_0018;
/// Tag of Modality (0008,0060): its values make up ModalitiesInStudy.
pub const TAG_MODALITY: u32 = 0x0008_0060;
/// Tag of InstanceNumber (0020,0013): orders instances within a series.
pub const TAG_INSTANCE_NUMBER: u32 = 0x0020_0013;
/// Tag of ModalitiesInStudy (0008,0061): indexed on study summaries (values of Modality).
pub const TAG_MODALITIES_IN_STUDY: u32 = 0x0008_0061;

/// One catalogued instance: everything the archive needs to serve it without reading its file.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    /// StudyInstanceUID (0020,000D).
    pub study_instance_uid: String,
    /// SeriesInstanceUID (0020,000E).
    pub series_instance_uid: String,
    /// SOPInstanceUID (0008,0018): unique over the whole catalogue.
    pub sop_instance_uid: String,
    /// SOPClassUID (0008,0016).
    pub sop_class_uid: String,
    /// Transfer syntax of the stored file.
    pub transfer_syntax_uid: String,
    /// Where the file is in blob storage.
    pub blob_key: String,
    /// File size in bytes.
    pub size: u64,
    /// When the instance was stored, set by the caller. Kept in UTC with microsecond precision:
    /// the index truncates finer precision, so a read-back record equals the inserted one only if
    /// `stored_at` had no sub-microsecond part (and lies within tantivy's range, 1677..2262).
    pub stored_at: OffsetDateTime,
    /// Opaque to the index: the instance's DICOM JSON (UTF-8), stored not indexed.
    pub metadata: Vec<u8>,
    /// Opaque to the index (serialized frame layout), stored not indexed.
    pub pixel_layout: Option<String>,
    /// Searchable attributes: (tag as u32, string values), e.g. `(0x00100020, vec!["ID1".into()])`.
    /// Every value is indexed for every kind of [`crate::Matcher`]. Stored as given (order and
    /// duplicates kept). Attributes of sequence items are given under a tag of the caller's
    /// choosing (the index treats tags as opaque numbers).
    pub attributes: Vec<(u32, Vec<String>)>,
}

impl InstanceRecord {
    /// The values of `tag` in [`InstanceRecord::attributes`] (all occurrences), empty if absent.
    pub fn attribute_values(&self, tag: u32) -> impl Iterator<Item = &str> {
        self.attributes
            .iter()
            .filter(move |(t, _)| *t == tag)
            .flat_map(|(_, values)| values.iter().map(String::as_str))
    }

    /// InstanceNumber (0020,0013) as an integer, if present and numeric.
    pub fn instance_number(&self) -> Option<i64> {
        self.attribute_values(TAG_INSTANCE_NUMBER)
            .next()
            .and_then(|value| value.trim().parse().ok())
    }
}

/// A set of instances named by a resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every instance of the study.
    Study(String),
    /// Every instance of the series: (study, series).
    Series(String, String),
    /// One instance: (study, series, sop).
    Instance(String, String, String),
}

impl Scope {
    /// Does the instance with these UIDs belong to this scope?
    pub fn contains(&self, study: &str, series: &str, sop: &str) -> bool {
        match self {
            Scope::Study(s) => s == study,
            Scope::Series(s, se) => s == study && se == series,
            Scope::Instance(s, se, so) => s == study && se == series && so == sop,
        }
    }
}

/// What a change feed entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    /// The instance was catalogued.
    Create,
    /// The instance was removed.
    Delete,
}

impl ChangeAction {
    /// "create" or "delete", as in the change feed's JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Create => "create",
            ChangeAction::Delete => "delete",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<ChangeAction> {
        match text {
            "create" => Some(ChangeAction::Create),
            "delete" => Some(ChangeAction::Delete),
            _ => None,
        }
    }
}

/// The present state of the instance a change feed entry is about, computed when reading.
///
/// - a `create` entry is `Current` while the instance it created is still catalogued;
///   `Replaced` if that instance was deleted and an instance with the same SOPInstanceUID was
///   stored again later (a newer version exists); `Deleted` if it was deleted and not stored again.
/// - a `delete` entry is always `Deleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeState {
    /// The instance this entry created is still catalogued.
    Current,
    /// A newer instance with the same SOPInstanceUID was stored after a deletion.
    Replaced,
    /// The instance no longer exists (or the entry is a deletion).
    Deleted,
}

impl ChangeState {
    /// "current", "replaced" or "deleted", as in the change feed's JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Current => "current",
            ChangeState::Replaced => "replaced",
            ChangeState::Deleted => "deleted",
        }
    }
}

/// One change feed entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeFeedEntry {
    /// 1, 2, 3, ... without gaps, in commit order.
    pub sequence: u64,
    /// StudyInstanceUID of the instance.
    pub study_instance_uid: String,
    /// SeriesInstanceUID of the instance.
    pub series_instance_uid: String,
    /// SOPInstanceUID of the instance.
    pub sop_instance_uid: String,
    /// What happened.
    pub action: ChangeAction,
    /// When the index recorded the change (UTC, microsecond precision).
    pub timestamp: OffsetDateTime,
    /// Present state of the instance, computed when reading.
    pub state: ChangeState,
    /// The instance's current metadata when requested and an instance with this SOPInstanceUID
    /// is catalogued now (for a `Replaced` or re-created entry: the newer instance's metadata).
    pub metadata: Option<Vec<u8>>,
}

/// A page of the change feed, in sequence order.
#[derive(Debug, Clone, Default)]
pub struct ChangeQuery {
    /// Only entries with sequence > this (v1 "offset").
    pub after_sequence: u64,
    /// Only entries with timestamp >= this (v2).
    pub start_time: Option<OffsetDateTime>,
    /// Only entries with timestamp < this (v2).
    pub end_time: Option<OffsetDateTime>,
    /// Entries to skip after filtering (v2 "offset").
    pub skip: u64,
    /// Maximum number of entries returned; 0 returns none.
    pub limit: usize,
    /// Fill [`ChangeFeedEntry::metadata`].
    pub include_metadata: bool,
}

/// The query level of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Hits are studies.
    Study,
    /// Hits are series.
    Series,
    /// Hits are instances.
    Instance,
}

/// A search: a conjunction of filters at one level, with paging.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// What a hit is.
    pub level: Level,
    /// Conjunction of filters (see [`crate::Filter`] for where each is evaluated). The UIDs of
    /// the resource path arrive here too, as exact filters on 0020000D / 0020000E.
    pub filters: Vec<crate::Filter>,
    /// Hits skipped (in the documented order of [`crate::Index::search`]).
    pub offset: usize,
    /// Maximum number of hits returned; 0 returns none.
    pub limit: usize,
}

/// An instance as a search hit carries it: its UIDs and its DICOM JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitInstance {
    /// StudyInstanceUID (0020,000D).
    pub study_instance_uid: String,
    /// SeriesInstanceUID (0020,000E).
    pub series_instance_uid: String,
    /// SOPInstanceUID (0008,0018).
    pub sop_instance_uid: String,
    /// [`InstanceRecord::metadata`] of the instance, shared by the hits that name it.
    pub metadata: std::sync::Arc<[u8]>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The hit's own instance: for the Study/Series levels, the most recently stored instance
    /// of the study/series (max `stored_at`, then max sequence), the one whose attributes were
    /// matched ("the most recently stored wins, consistently"). For the Instance level, the
    /// matching instance itself.
    pub record: HitInstance,
    /// The most recently stored instance of the hit's study: supplies study-level attributes.
    pub study_record: HitInstance,
    /// The most recently stored instance of the hit's series (Series and Instance levels; at
    /// the Study level, that of the study's most recent series): supplies series attributes.
    pub series_record: HitInstance,
    /// Series in the record's study (all of them, not only matching ones).
    pub study_related_series: u64,
    /// Instances in the record's study.
    pub study_related_instances: u64,
    /// Instances in the record's series.
    pub series_related_instances: u64,
    /// Distinct values of Modality (00080060) over the study's instances, sorted.
    pub modalities_in_study: Vec<String>,
}

/// Counters for monitoring and micro-benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexStats {
    /// Successful tantivy commits made by the writer since open.
    pub commits: u64,
    /// Insert and delete requests the writer answered since open (successfully or not).
    pub requests: u64,
    /// Highest change feed sequence number committed (0 for an empty feed).
    pub last_sequence: u64,
}

/// Errors of the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Insert of an instance whose SOPInstanceUID is already catalogued.
    #[error("SOP instance {sop_instance_uid} is already catalogued")]
    AlreadyExists {
        /// The duplicate SOPInstanceUID.
        sop_instance_uid: String,
    },
    /// Failure inside tantivy (including a directory already open elsewhere: lock failure).
    #[error("search index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// File system failure.
    #[error("index I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The index on disk was written with another schema version (or none recorded): it must be
    /// rebuilt from storage, which the caller decides to do.
    #[error(
        "the index has schema version {found}, this build needs {expected}: rebuild it from storage"
    )]
    SchemaMismatch {
        /// The version recorded on disk ("unknown" when no version file exists).
        found: String,
        /// The version this build writes.
        expected: u32,
    },
    /// The index on disk is unreadable (stored values that do not decode, schema errors).
    #[error("index is corrupt or incompatible: {0}")]
    Corrupt(String),
    /// The writer is gone: the index was closed (or its writer thread died).
    #[error("index is closed")]
    Closed,
}

impl IndexError {
    /// A copy of this error, for answering every request of a failed batch.
    pub(crate) fn replicate(&self) -> IndexError {
        match self {
            IndexError::AlreadyExists { sop_instance_uid } => IndexError::AlreadyExists {
                sop_instance_uid: sop_instance_uid.clone(),
            },
            IndexError::Tantivy(e) => IndexError::Tantivy(e.clone()),
            IndexError::Io(e) => IndexError::Io(std::io::Error::new(e.kind(), e.to_string())),
            IndexError::SchemaMismatch { found, expected } => IndexError::SchemaMismatch {
                found: found.clone(),
                expected: *expected,
            },
            IndexError::Corrupt(message) => IndexError::Corrupt(message.clone()),
            IndexError::Closed => IndexError::Closed,
        }
    }
}
