//! The records of the catalogue: instances, scopes, change feed entries and queries, errors.

use time::OffsetDateTime;

/// Tag of InstanceNumber (0020,0013): orders instances within a series.
pub const TAG_INSTANCE_NUMBER: u32 = 0x0020_0013;

/// One catalogued instance: everything the archive needs to serve it without reading its file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// When the instance was stored, set by the caller. Kept in UTC with microsecond precision by the
    /// search index: a record read back from it equals the inserted one only if `stored_at` had no
    /// sub-microsecond part.
    pub stored_at: OffsetDateTime,
    /// Opaque to the catalogue: the instance's DICOM JSON (UTF-8). Serialized as one byte string, not as a
    /// sequence of numbers one call each (the same bytes in postcard, where a byte string and a sequence of
    /// `u8` share their encoding, so records written either way read back).
    #[serde(with = "serde_bytes")]
    pub metadata: Vec<u8>,
    /// Opaque to the catalogue (serialized frame layout).
    pub pixel_layout: Option<String>,
    /// Searchable attributes: (tag as u32, string values), e.g. `(0x00100020, vec!["ID1".into()])`. Stored as
    /// given (order and duplicates kept). Attributes of sequence items are given under a tag of the caller's
    /// choosing (tags are opaque numbers here).
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

/// Sorts records in the order every listing of instances uses: series (by SeriesInstanceUID), then
/// InstanceNumber numerically if present (instances without one come after those with one), then
/// SOPInstanceUID.
pub fn sort_instances(records: &mut [InstanceRecord]) {
    records.sort_by(|a, b| {
        a.series_instance_uid
            .cmp(&b.series_instance_uid)
            .then_with(|| match (a.instance_number(), b.instance_number()) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.sop_instance_uid.cmp(&b.sop_instance_uid))
    });
}

/// The three UIDs that name one instance's resource path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstancePath {
    /// StudyInstanceUID.
    pub study: String,
    /// SeriesInstanceUID.
    pub series: String,
    /// SOPInstanceUID.
    pub sop: String,
}

impl InstancePath {
    /// The path of a record's instance.
    pub fn of(record: &InstanceRecord) -> InstancePath {
        InstancePath {
            study: record.study_instance_uid.clone(),
            series: record.series_instance_uid.clone(),
            sop: record.sop_instance_uid.clone(),
        }
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
}

/// The present state of the instance a change feed entry is about, computed when reading.
///
/// - a `create` entry is `Current` while the version it created is still catalogued; `Replaced` if that
///   version was deleted and an instance with the same SOPInstanceUID is catalogued now (a newer version);
///   `Deleted` if it was deleted and not stored again.
/// - a `delete` entry is always `Deleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeState {
    /// The version this entry created is still catalogued.
    Current,
    /// A newer version with the same SOPInstanceUID is catalogued.
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
    /// When the catalogue recorded the change (UTC). Never decreases with the sequence.
    pub timestamp: OffsetDateTime,
    /// Present state of the instance, computed when reading.
    pub state: ChangeState,
    /// When requested: the metadata of the version this entry recorded (the created version for a `create`,
    /// the removed version for a `delete`), never a later version's.
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

/// One step of the catalogue's history as a search index replays it, in sequence order.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexChange {
    /// The instance was catalogued by the entry with this sequence.
    Insert {
        /// Sequence of the `create` entry.
        sequence: u64,
        /// The version it created.
        record: InstanceRecord,
    },
    /// The instance was removed by the entry with this sequence.
    Remove {
        /// Sequence of the `delete` entry.
        sequence: u64,
        /// StudyInstanceUID of the removed instance.
        study_instance_uid: String,
        /// SOPInstanceUID of the removed instance.
        sop_instance_uid: String,
    },
}

impl IndexChange {
    /// The sequence of the change feed entry this change is.
    pub fn sequence(&self) -> u64 {
        match self {
            IndexChange::Insert { sequence, .. } | IndexChange::Remove { sequence, .. } => {
                *sequence
            }
        }
    }
}

/// A page of the instances catalogued now, for rebuilding a search index from the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct InstancePage {
    /// Instances (with the sequence of the entry that created each), in an order stable across pages.
    pub instances: Vec<(u64, InstanceRecord)>,
    /// Pass this back to get the next page; `None` after the last one.
    pub next: Option<String>,
}

/// Errors of a catalogue.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// A store of an instance whose SOPInstanceUID is already catalogued (in any study or series).
    #[error("SOP instance {sop_instance_uid} is already catalogued")]
    AlreadyExists {
        /// The duplicate SOPInstanceUID.
        sop_instance_uid: String,
    },
    /// The database failed (I/O, corruption, a file already open elsewhere). Nothing of the failed call
    /// was committed.
    #[error("catalogue database error: {0}")]
    Database(String),
    /// A stored value does not decode: the database was written by an incompatible version.
    #[error("catalogue is corrupt or incompatible: {0}")]
    Corrupt(String),
    /// The catalogue was closed (or its writer stopped).
    #[error("catalogue is closed")]
    Closed,
}

impl CatalogueError {
    /// A copy of this error, for answering every request of a failed batch.
    pub fn replicate(&self) -> CatalogueError {
        match self {
            CatalogueError::AlreadyExists { sop_instance_uid } => CatalogueError::AlreadyExists {
                sop_instance_uid: sop_instance_uid.clone(),
            },
            CatalogueError::Database(message) => CatalogueError::Database(message.clone()),
            CatalogueError::Corrupt(message) => CatalogueError::Corrupt(message.clone()),
            CatalogueError::Closed => CatalogueError::Closed,
        }
    }
}
