//! Public data types of the index: queries, hits, errors (records and scopes are the catalogue's).

/// Tag of StudyInstanceUID (0020,000D).
pub const TAG_STUDY_INSTANCE_UID: u32 = 0x0020_000D;
/// Tag of SeriesInstanceUID (0020,000E).
pub const TAG_SERIES_INSTANCE_UID: u32 = 0x0020_000E;
/// Tag of SOPInstanceUID (0008,0018).
pub const TAG_SOP_INSTANCE_UID: u32 = 0x0008_0018;
/// Tag of Modality (0008,0060): its values make up ModalitiesInStudy.
pub const TAG_MODALITY: u32 = 0x0008_0060;
/// Tag of ModalitiesInStudy (0008,0061): indexed on study summaries (values of Modality).
pub const TAG_MODALITIES_IN_STUDY: u32 = 0x0008_0061;

pub use dicomweb_catalogue::{InstanceRecord, Scope, TAG_INSTANCE_NUMBER};

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

impl Level {
    /// How deep the level is in the hierarchy: 0 for studies, 1 for series, 2 for instances.
    pub fn depth(self) -> u8 {
        match self {
            Level::Study => 0,
            Level::Series => 1,
            Level::Instance => 2,
        }
    }
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
    /// Requests the writer answered since open (successfully or not).
    pub requests: u64,
    /// Sequence of the last catalogue change the committed index reflects (0 for an empty index).
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
    /// A query value cannot be matched within the index's bounds (a wildcard pattern whose automaton
    /// exceeds the size tantivy allows): the client's doing, not the index's.
    #[error("the value \"{pattern}\" of attribute {tag:08X} is too complex to match: {reason}")]
    QueryTooComplex {
        /// The attribute (or sequence item key) the value is for.
        tag: u32,
        /// The value as matched (person names folded).
        pattern: String,
        /// Why, in the query engine's words.
        reason: String,
    },
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
            IndexError::QueryTooComplex {
                tag,
                pattern,
                reason,
            } => IndexError::QueryTooComplex {
                tag: *tag,
                pattern: pattern.clone(),
                reason: reason.clone(),
            },
            IndexError::Closed => IndexError::Closed,
        }
    }
}
