//! The tantivy schema: instance documents and summary documents.
//!
//! Besides one document per instance, the writer maintains one *summary* document per study
//! and per series (kinds "study" and "series"; see the crate docs for why). Summary documents use
//! the `group_*` UID fields, never `study_uid`/`series_uid`/`sop_uid`, so scope queries and
//! deletes on those fields only ever touch instance documents.
//!
//! Matching fields all hold terms prefixed by the tag, "GGGGEEEE=...": `attr` (raw values:
//! exact terms, wildcard = regex over the tag's terms), `pn` (case/accent-folded person names,
//! whole and per component group), `pn_part` (folded name parts, for fuzzy prefix matching),
//! `range` (DA/TM values in a fixed-width comparable form, for term-range queries) and `has`
//! (just "GGGGEEEE": the attribute has a non-empty value, for empty value matching).

use tantivy::schema::{
    BytesOptions, DateOptions, DateTimePrecision, FAST, Field, IndexRecordOption, STORED, STRING,
    Schema, TextFieldIndexing, TextOptions,
};

/// Version of the schema below. Bump on any change to fields or their options or to the meaning
/// of stored values; an index written with another version is refused (rebuild comes later).
pub(crate) const SCHEMA_VERSION: u32 = 4;

/// Name of the file, next to tantivy's files, that records [`SCHEMA_VERSION`].
pub(crate) const SCHEMA_VERSION_FILE: &str = "dicomweb-index.schema-version";

pub(crate) const KIND_INSTANCE: &str = "instance";
pub(crate) const KIND_STUDY: &str = "study";
pub(crate) const KIND_SERIES: &str = "series";

/// Separator of the UIDs in the `*_order` fields: lower than every character allowed in a UID
/// (digits and '.'), so ordering the concatenation orders by (study, series, sop)
/// lexicographically.
pub(crate) const SORT_KEY_SEPARATOR: char = '\u{1}';

/// The `series_order` value of a series summary document.
pub(crate) fn series_order_key(study: &str, series: &str) -> String {
    format!("{study}{SORT_KEY_SEPARATOR}{series}")
}

/// The `instance_order` value of an instance document.
pub(crate) fn instance_order_key(record: &crate::types::InstanceRecord) -> String {
    format!(
        "{}{SORT_KEY_SEPARATOR}{}{SORT_KEY_SEPARATOR}{}",
        record.study_instance_uid, record.series_instance_uid, record.sop_instance_uid
    )
}

/// Handles of every field of the schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    /// "instance", "study" or "series".
    pub kind: Field,

    // ---- instance documents ----
    pub study_uid: Field,
    pub series_uid: Field,
    pub sop_uid: Field,
    /// study, series and sop UIDs joined by [`SORT_KEY_SEPARATOR`]: a string fast field lets
    /// tantivy page instance-level results in UID order without loading every match. Each
    /// level has its own order field so that a level's keys are contiguous in the field's
    /// dictionary: turning the ordinals of a page back into keys then reads few blocks.
    pub instance_order: Field,
    pub sop_class_uid: Field,
    pub transfer_syntax_uid: Field,
    pub blob_key: Field,
    pub size: Field,
    pub stored_at: Field,
    pub metadata: Field,
    pub pixel_layout: Field,
    /// serde_json of `InstanceRecord::attributes`, for an exact round trip.
    pub attributes: Field,
    /// One term "GGGGEEEE=value" per attribute value, for exact matching.
    pub attr: Field,
    /// Values of Modality (00080060), as a fast field for ModalitiesInStudy.
    pub modality: Field,
    /// Sequence of the catalogue's `create` entry of the instance: breaks ties of `stored_at`.
    pub instance_sequence: Field,
    /// Folded person names "GGGGEEEE=name" (whole value and each component group).
    pub pn: Field,
    /// Folded person name parts "GGGGEEEE=part" (fuzzy matching).
    pub pn_part: Field,
    /// Comparable DA/TM values "GGGGEEEE=key" (range matching).
    pub range: Field,
    /// "GGGGEEEE" for every attribute with a non-empty value (empty value matching).
    pub has: Field,

    // ---- study and series summary documents ----
    /// StudyInstanceUID of a summary document (fast: joins and hits).
    pub group_study: Field,
    /// SeriesInstanceUID of a series summary document.
    pub group_series: Field,
    /// SOPInstanceUID of the most recently stored instance of the study/series.
    pub latest_sop: Field,
    /// Instances in the study/series.
    pub instance_count: Field,
    /// Series in the study (study documents only).
    pub series_count: Field,
    /// Distinct modalities of the study, sorted (study documents only).
    pub modalities: Field,
    /// Sort key of study documents: the StudyInstanceUID.
    pub study_order: Field,
    /// Sort key of series documents: study and series UIDs joined by [`SORT_KEY_SEPARATOR`].
    pub series_order: Field,
    /// SeriesInstanceUID of the most recently stored instance (`latest_sop`).
    pub latest_series: Field,
    /// Instances in the series of `latest_sop` (study documents only).
    pub latest_series_instances: Field,
    /// The DICOM JSON of `latest_sop`, copied so that a hit is built from its summary document
    /// alone (one stored-document load instead of a lookup and load of the instance).
    pub latest_metadata: Field,
}

/// Untokenized, indexed (and optionally fast and stored) string.
fn raw_string(fast: bool, stored: bool) -> TextOptions {
    let mut options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    if fast {
        options = options.set_fast("raw");
    }
    if stored {
        options = options.set_stored();
    }
    options
}

/// A string fast field used only to order hits (neither indexed nor stored).
fn sort_order() -> TextOptions {
    TextOptions::default().set_fast("raw")
}

fn date(indexed: bool) -> DateOptions {
    let options = DateOptions::default()
        .set_stored()
        .set_fast()
        .set_precision(DateTimePrecision::Microseconds);
    if indexed {
        options.set_indexed()
    } else {
        options
    }
}

pub(crate) fn build_schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let fields = Fields {
        kind: builder.add_text_field("kind", STRING),
        study_uid: builder.add_text_field("study_uid", raw_string(true, true)),
        series_uid: builder.add_text_field("series_uid", raw_string(true, true)),
        sop_uid: builder.add_text_field("sop_uid", raw_string(true, true)),
        instance_order: builder.add_text_field("instance_order", sort_order()),
        sop_class_uid: builder.add_text_field("sop_class_uid", raw_string(false, true)),
        transfer_syntax_uid: builder.add_text_field("transfer_syntax_uid", raw_string(false, true)),
        blob_key: builder.add_text_field("blob_key", STORED),
        size: builder.add_u64_field("size", STORED),
        stored_at: builder.add_date_field("stored_at", date(true)),
        metadata: builder.add_bytes_field("metadata", BytesOptions::default().set_stored()),
        pixel_layout: builder.add_text_field("pixel_layout", STORED),
        attributes: builder.add_bytes_field("attributes", BytesOptions::default().set_stored()),
        attr: builder.add_text_field("attr", raw_string(false, false)),
        modality: builder.add_text_field("modality", raw_string(true, false)),
        instance_sequence: builder.add_u64_field("instance_sequence", FAST | STORED),
        pn: builder.add_text_field("pn", raw_string(false, false)),
        pn_part: builder.add_text_field("pn_part", raw_string(false, false)),
        range: builder.add_text_field("range", raw_string(false, false)),
        has: builder.add_text_field("has", raw_string(false, false)),
        group_study: builder.add_text_field("group_study", raw_string(true, true)),
        group_series: builder.add_text_field("group_series", raw_string(true, true)),
        latest_sop: builder.add_text_field("latest_sop", STORED),
        instance_count: builder.add_u64_field("instance_count", STORED),
        series_count: builder.add_u64_field("series_count", STORED),
        modalities: builder.add_text_field("modalities", STORED),
        study_order: builder.add_text_field("study_order", sort_order()),
        series_order: builder.add_text_field("series_order", sort_order()),
        latest_series: builder.add_text_field("latest_series", STORED),
        latest_series_instances: builder.add_u64_field("latest_series_instances", STORED),
        latest_metadata: builder
            .add_bytes_field("latest_metadata", BytesOptions::default().set_stored()),
    };
    (builder.build(), fields)
}

/// The term of one attribute value in a matching field: tag in upper-case hex, '=', value.
pub(crate) fn attr_term_text(tag: u32, value: &str) -> String {
    format!("{tag:08X}={value}")
}

/// The term of the `has` field for `tag`.
pub(crate) fn has_term_text(tag: u32) -> String {
    format!("{tag:08X}")
}
