//! Which attributes are searchable, at which level, and which are returned by default (PS3.18 Table 10.6.1-5 and
//! 10.6.3-3, the Microsoft v2 conformance statement).

use std::borrow::Cow;

use dicom_core::Tag;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::InMemDicomObject;
use dicomweb_index::Level;

/// How the values of a searchable attribute are matched (from its VR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// UI: lists of exact values, no wildcards.
    Uid,
    /// PN: case- and accent-insensitive, wildcards, fuzzy.
    PersonName,
    /// DA: single values and ranges.
    Date,
    /// TM: single values (at the key's precision) and ranges.
    Time,
    /// DT: single values (at the key's precision) and ranges; UTC offsets are ignored.
    DateTime,
    /// Other string VRs (CS, LO, SH, IS, ...): exact, case-sensitive, wildcards.
    Text,
}

/// A searchable attribute and the level it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchableAttribute {
    /// The attribute, or for a sequence path the attribute inside the items.
    pub tag: Tag,
    /// For a sequence path (`RequestAttributesSequence.ScheduledProcedureStepID`): the sequence.
    pub sequence: Option<Tag>,
    /// The level of the entity it describes.
    pub level: Level,
    /// How it is matched.
    pub kind: ValueKind,
}

const fn attr(tag: Tag, level: Level, kind: ValueKind) -> SearchableAttribute {
    SearchableAttribute {
        tag,
        sequence: None,
        level,
        kind,
    }
}
const fn item(sequence: Tag, tag: Tag, level: Level, kind: ValueKind) -> SearchableAttribute {
    SearchableAttribute {
        tag,
        sequence: Some(sequence),
        level,
        kind,
    }
}

use ValueKind::{Date, DateTime, PersonName, Text, Time, Uid};

/// Every attribute the index knows, by level (PS3.18 Table 10.6.1-5 and more).
pub const SEARCHABLE: &[SearchableAttribute] = &[
    attr(tags::STUDY_INSTANCE_UID, Level::Study, Uid),
    attr(tags::STUDY_DATE, Level::Study, Date),
    attr(tags::STUDY_TIME, Level::Study, Time),
    attr(tags::ACCESSION_NUMBER, Level::Study, Text),
    attr(tags::REFERRING_PHYSICIAN_NAME, Level::Study, PersonName),
    attr(tags::PATIENT_NAME, Level::Study, PersonName),
    attr(tags::PATIENT_ID, Level::Study, Text),
    attr(tags::PATIENT_BIRTH_DATE, Level::Study, Date),
    attr(tags::PATIENT_SEX, Level::Study, Text),
    attr(tags::STUDY_ID, Level::Study, Text),
    attr(tags::STUDY_DESCRIPTION, Level::Study, Text),
    attr(tags::MODALITIES_IN_STUDY, Level::Study, Text),
    attr(tags::SERIES_INSTANCE_UID, Level::Series, Uid),
    attr(tags::MODALITY, Level::Series, Text),
    attr(tags::SERIES_NUMBER, Level::Series, Text),
    attr(tags::SERIES_DESCRIPTION, Level::Series, Text),
    attr(tags::BODY_PART_EXAMINED, Level::Series, Text),
    attr(tags::MANUFACTURER_MODEL_NAME, Level::Series, Text),
    attr(
        tags::PERFORMED_PROCEDURE_STEP_START_DATE,
        Level::Series,
        Date,
    ),
    attr(
        tags::PERFORMED_PROCEDURE_STEP_START_TIME,
        Level::Series,
        Time,
    ),
    item(
        tags::REQUEST_ATTRIBUTES_SEQUENCE,
        tags::SCHEDULED_PROCEDURE_STEP_ID,
        Level::Series,
        Text,
    ),
    item(
        tags::REQUEST_ATTRIBUTES_SEQUENCE,
        tags::REQUESTED_PROCEDURE_ID,
        Level::Series,
        Text,
    ),
    item(
        tags::REQUEST_ATTRIBUTES_SEQUENCE,
        tags::ACCESSION_NUMBER,
        Level::Series,
        Text,
    ),
    item(
        tags::REQUEST_ATTRIBUTES_SEQUENCE,
        tags::STUDY_INSTANCE_UID,
        Level::Series,
        Uid,
    ),
    attr(tags::SOP_INSTANCE_UID, Level::Instance, Uid),
    attr(tags::SOP_CLASS_UID, Level::Instance, Uid),
    attr(tags::INSTANCE_NUMBER, Level::Instance, Text),
    attr(tags::ACQUISITION_DATE_TIME, Level::Instance, DateTime),
];

impl SearchableAttribute {
    /// The tag under which the index knows it: the attribute's own tag, or for a sequence path
    /// a synthetic one in group FFFF (never a real attribute) numbered by its place in
    /// [`SEARCHABLE`], so values inside items never mix with the same attribute at top level.
    pub fn index_tag(&self) -> u32 {
        match self.sequence {
            None => tag_u32(self.tag),
            Some(_) => {
                let position = SEARCHABLE.iter().position(|a| a == self).unwrap_or(0);
                0xFFFF_0000 | (position as u32 & 0xFFFF)
            }
        }
    }
}

/// Separates the values of one sequence item in its item term (see [`item_tag`]): a control
/// character, which no DICOM string value may contain.
pub const ITEM_SEPARATOR: char = '\u{1f}';

/// The searchable attributes inside items of `sequence`, in [`SEARCHABLE`] order.
pub fn sequence_members(sequence: Tag) -> impl Iterator<Item = &'static SearchableAttribute> {
    SEARCHABLE
        .iter()
        .filter(move |a| a.sequence == Some(sequence))
}

/// The synthetic tag (group FFFE) under which each item of `sequence` is indexed whole: its
/// members' values joined by [`ITEM_SEPARATOR`], in [`sequence_members`] order. Several keys
/// of one sequence must match in the same item (PS3.4 C.2.2.2.6); one pattern over the whole
/// item checks that in one term query.
pub fn item_tag(sequence: Tag) -> u32 {
    let position = SEARCHABLE
        .iter()
        .position(|a| a.sequence == Some(sequence))
        .unwrap_or(0);
    0xFFFE_0000 | (position as u32 & 0xFFFF)
}

/// Attributes returned by default at each level (besides computed ones and the resource path's UIDs).
pub fn default_return_tags(level: Level) -> &'static [Tag] {
    match level {
        Level::Study => &[
            tags::SPECIFIC_CHARACTER_SET,
            tags::STUDY_DATE,
            tags::STUDY_TIME,
            tags::ACCESSION_NUMBER,
            tags::REFERRING_PHYSICIAN_NAME,
            tags::TIMEZONE_OFFSET_FROM_UTC,
            tags::PATIENT_NAME,
            tags::PATIENT_ID,
            tags::PATIENT_BIRTH_DATE,
            tags::PATIENT_SEX,
            tags::STUDY_INSTANCE_UID,
            tags::STUDY_ID,
            tags::STUDY_DESCRIPTION,
        ],
        Level::Series => &[
            tags::SPECIFIC_CHARACTER_SET,
            tags::MODALITY,
            tags::TIMEZONE_OFFSET_FROM_UTC,
            tags::SERIES_DESCRIPTION,
            tags::SERIES_INSTANCE_UID,
            tags::PERFORMED_PROCEDURE_STEP_START_DATE,
            tags::PERFORMED_PROCEDURE_STEP_START_TIME,
            tags::REQUEST_ATTRIBUTES_SEQUENCE,
            tags::SERIES_NUMBER,
        ],
        Level::Instance => &[
            tags::SPECIFIC_CHARACTER_SET,
            tags::SOP_CLASS_UID,
            tags::SOP_INSTANCE_UID,
            tags::TIMEZONE_OFFSET_FROM_UTC,
            tags::INSTANCE_NUMBER,
            tags::ROWS,
            tags::COLUMNS,
            tags::BITS_ALLOCATED,
            tags::NUMBER_OF_FRAMES,
        ],
    }
}

/// Resolves a query attribute ID: a keyword (`PatientName`) or a tag (`00100010`).
pub fn resolve_attribute(id: &str) -> Option<Tag> {
    if id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        let group = u16::from_str_radix(id.get(..4)?, 16).ok()?;
        let element = u16::from_str_radix(id.get(4..)?, 16).ok()?;
        return Some(Tag(group, element));
    }
    StandardDataDictionary
        .by_name(id)
        .map(|entry| entry.tag_range().inner())
}

/// The keyword of the attribute `tag` (as the index numbers it, `GGGGEEEE`) for messages, or
/// `(GGGG,EEEE)` when the dictionary has none.
pub(crate) fn keyword_of(tag: u32) -> String {
    let tag = Tag((tag >> 16) as u16, (tag & 0xFFFF) as u16);
    StandardDataDictionary.by_tag(tag).map_or_else(
        || format!("({:04X},{:04X})", tag.0, tag.1),
        |entry| entry.alias().to_owned(),
    )
}

/// Resolves an attribute path of PS3.18 8.3.4.1: one ID, or `Sequence.Attribute` (IDs as for
/// [`resolve_attribute`]). Returns (sequence, attribute); `None` if a part is unknown or the
/// path is deeper than one sequence.
pub fn resolve_path(path: &str) -> Option<(Option<Tag>, Tag)> {
    let mut parts = path.split('.');
    let first = resolve_attribute(parts.next()?)?;
    match (parts.next(), parts.next()) {
        (None, _) => Some((None, first)),
        (Some(second), None) => Some((Some(first), resolve_attribute(second)?)),
        _ => None,
    }
}

/// The searchable attribute for this path, if the index knows it.
pub fn searchable(sequence: Option<Tag>, tag: Tag) -> Option<&'static SearchableAttribute> {
    SEARCHABLE
        .iter()
        .find(|a| a.tag == tag && a.sequence == sequence)
}

fn string_values(element_text: &str) -> Vec<String> {
    element_text
        .split('\\')
        .map(|v| v.trim_matches(|c: char| c == ' ' || c == '\0').to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The searchable attribute values of a dataset, as the index stores them: trimmed strings, one
/// per value; values inside sequence items under [`SearchableAttribute::index_tag`]. Elements
/// longer than [`LARGE_VALUE_BYTES`](crate::LARGE_VALUE_BYTES) are not indexed: see
/// [`searchable_attributes_up_to`].
pub fn searchable_attributes(dataset: &InMemDicomObject) -> Vec<(u32, Vec<String>)> {
    searchable_attributes_up_to(dataset, Some(crate::LARGE_VALUE_BYTES))
}

/// [`searchable_attributes`], leaving out every element whose value is longer than `limit` bytes
/// (`PrimitiveValue::calculate_byte_len`, the measure `dicomweb_json::JsonOptions::large_value_bytes`
/// uses), the ones the instance's metadata leaves out too. Such an element is not indexed at all
/// rather than truncated: a search must never match a value by a prefix of it, nor find an
/// instance by a value its results could not show.
///
/// Elements are looked up with `get`, which answers `None` for a missing one: `element_opt` builds an error
/// (with a captured backtrace when `RUST_BACKTRACE` is set) for each of the many attributes an instance lacks.
pub fn searchable_attributes_up_to(
    dataset: &InMemDicomObject,
    limit: Option<usize>,
) -> Vec<(u32, Vec<String>)> {
    SEARCHABLE
        .iter()
        .filter_map(|a| {
            let values: Vec<String> = match a.sequence {
                None => string_values(&text_within(dataset, a.tag, limit)?),
                Some(sequence) => {
                    let element = dataset.get(sequence)?;
                    element
                        .items()?
                        .iter()
                        .filter_map(|item| text_within(item, a.tag, limit))
                        .flat_map(|text| string_values(&text))
                        .collect()
                }
            };
            (!values.is_empty()).then(|| (a.index_tag(), values))
        })
        .chain(item_terms(dataset, limit))
        .collect()
}

/// The text of the element `tag` of `obj`, unless it is missing or longer than `limit` bytes.
fn text_within(obj: &InMemDicomObject, tag: Tag, limit: Option<usize>) -> Option<Cow<'_, str>> {
    let element = obj.get(tag)?;
    if let (Some(limit), Some(value)) = (limit, element.value().primitive())
        && value.calculate_byte_len() > limit
    {
        return None;
    }
    element.to_str().ok()
}

/// One value per item of each searchable sequence: see [`item_tag`].
fn item_terms(dataset: &InMemDicomObject, limit: Option<usize>) -> Vec<(u32, Vec<String>)> {
    let mut sequences: Vec<Tag> = SEARCHABLE.iter().filter_map(|a| a.sequence).collect();
    sequences.dedup();
    let mut out = Vec::new();
    for sequence in sequences {
        let Some(items) = dataset.get(sequence).and_then(|e| e.items()) else {
            continue;
        };
        let joined: Vec<String> = items
            .iter()
            .map(|item| {
                sequence_members(sequence)
                    .map(|member| {
                        text_within(item, member.tag, limit)
                            .map(|text| string_values(&text).join("\\"))
                            .unwrap_or_default()
                    })
                    .collect::<Vec<_>>()
                    .join(&ITEM_SEPARATOR.to_string())
            })
            .collect();
        if !joined.is_empty() {
            out.push((item_tag(sequence), joined));
        }
    }
    out
}

/// A tag as the index's `u32` (group in the high half).
pub fn tag_u32(tag: Tag) -> u32 {
    (u32::from(tag.group()) << 16) | u32::from(tag.element())
}

/// A tag as DICOM JSON writes it: `GGGGEEEE` in upper-case hex.
pub fn tag_key(tag: Tag) -> String {
    format!("{:04X}{:04X}", tag.group(), tag.element())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_resolve_by_keyword_or_tag() {
        assert_eq!(resolve_attribute("PatientName"), Some(tags::PATIENT_NAME));
        assert_eq!(resolve_attribute("00100010"), Some(tags::PATIENT_NAME));
        assert_eq!(resolve_attribute("0010001g"), None);
        assert_eq!(resolve_attribute("NoSuchKeyword"), None);
        assert_eq!(
            resolve_path("RequestAttributesSequence.00400009"),
            Some((
                Some(tags::REQUEST_ATTRIBUTES_SEQUENCE),
                tags::SCHEDULED_PROCEDURE_STEP_ID
            ))
        );
        assert_eq!(
            resolve_path("PatientName"),
            Some((None, tags::PATIENT_NAME))
        );
        assert_eq!(resolve_path("A.B.C"), None);
    }

    #[test]
    fn an_element_over_the_limit_is_not_indexed_at_the_top_level_nor_in_items() {
        use dicom_core::{DataElement, PrimitiveValue, VR};
        let long = "A".repeat(100);
        let item = InMemDicomObject::from_element_iter([
            DataElement::new(tags::ACCESSION_NUMBER, VR::SH, PrimitiveValue::from(&*long)),
            DataElement::new(
                tags::REQUESTED_PROCEDURE_ID,
                VR::SH,
                PrimitiveValue::from("RP1"),
            ),
        ]);
        let dataset = InMemDicomObject::from_element_iter([
            DataElement::new(
                tags::STUDY_DESCRIPTION,
                VR::LO,
                PrimitiveValue::from(&*long),
            ),
            DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from("P1")),
            DataElement::new(
                tags::REQUEST_ATTRIBUTES_SEQUENCE,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(vec![item]),
            ),
        ]);
        let indexed = |limit| -> std::collections::HashMap<u32, Vec<String>> {
            searchable_attributes_up_to(&dataset, limit)
                .into_iter()
                .collect()
        };
        let nested = |tag| {
            searchable(Some(tags::REQUEST_ATTRIBUTES_SEQUENCE), tag)
                .unwrap()
                .index_tag()
        };

        let all = indexed(None);
        assert_eq!(all[&tag_u32(tags::STUDY_DESCRIPTION)], [&*long]);
        assert_eq!(all[&nested(tags::ACCESSION_NUMBER)], [&*long]);

        let bounded = indexed(Some(64));
        assert!(!bounded.contains_key(&tag_u32(tags::STUDY_DESCRIPTION)));
        assert!(!bounded.contains_key(&nested(tags::ACCESSION_NUMBER)));
        assert_eq!(bounded[&tag_u32(tags::PATIENT_ID)], ["P1"]);
        assert_eq!(bounded[&nested(tags::REQUESTED_PROCEDURE_ID)], ["RP1"]);
        // The item's own term has the long value as if it were absent.
        let item_term = &bounded[&item_tag(tags::REQUEST_ATTRIBUTES_SEQUENCE)][0];
        assert!(!item_term.contains(&long), "{item_term:?}");
        assert!(item_term.contains("RP1"));
    }

    #[test]
    fn sequence_paths_get_distinct_synthetic_tags() {
        let top = searchable(None, tags::ACCESSION_NUMBER).unwrap();
        let nested = searchable(
            Some(tags::REQUEST_ATTRIBUTES_SEQUENCE),
            tags::ACCESSION_NUMBER,
        )
        .unwrap();
        assert_eq!(top.index_tag(), 0x0008_0050);
        assert_eq!(nested.index_tag() >> 16, 0xFFFF);
    }
}
