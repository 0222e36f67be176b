//! Which attributes are searchable, at which level, and which are returned by default (PS3.18 Table 10.6.1-5 and
//! 10.6.3-3, the Microsoft v2 conformance statement).

use dicom_core::Tag;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::InMemDicomObject;
use dicomweb_index::Level;

/// A searchable attribute and the level it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchableAttribute {
    pub tag: Tag,
    pub level: Level,
    /// UIDs match as lists of exact values.
    pub is_uid: bool,
}

const fn attr(tag: Tag, level: Level) -> SearchableAttribute {
    SearchableAttribute {
        tag,
        level,
        is_uid: false,
    }
}
const fn uid(tag: Tag, level: Level) -> SearchableAttribute {
    SearchableAttribute {
        tag,
        level,
        is_uid: true,
    }
}

/// Every attribute the index knows, by level.
pub const SEARCHABLE: &[SearchableAttribute] = &[
    uid(tags::STUDY_INSTANCE_UID, Level::Study),
    attr(tags::STUDY_DATE, Level::Study),
    attr(tags::STUDY_TIME, Level::Study),
    attr(tags::ACCESSION_NUMBER, Level::Study),
    attr(tags::REFERRING_PHYSICIAN_NAME, Level::Study),
    attr(tags::PATIENT_NAME, Level::Study),
    attr(tags::PATIENT_ID, Level::Study),
    attr(tags::PATIENT_BIRTH_DATE, Level::Study),
    attr(tags::PATIENT_SEX, Level::Study),
    attr(tags::STUDY_ID, Level::Study),
    attr(tags::STUDY_DESCRIPTION, Level::Study),
    attr(tags::MODALITIES_IN_STUDY, Level::Study),
    uid(tags::SERIES_INSTANCE_UID, Level::Series),
    attr(tags::MODALITY, Level::Series),
    attr(tags::SERIES_NUMBER, Level::Series),
    attr(tags::SERIES_DESCRIPTION, Level::Series),
    attr(tags::BODY_PART_EXAMINED, Level::Series),
    attr(tags::MANUFACTURER_MODEL_NAME, Level::Series),
    attr(tags::PERFORMED_PROCEDURE_STEP_START_DATE, Level::Series),
    attr(tags::PERFORMED_PROCEDURE_STEP_START_TIME, Level::Series),
    uid(tags::SOP_INSTANCE_UID, Level::Instance),
    uid(tags::SOP_CLASS_UID, Level::Instance),
    attr(tags::INSTANCE_NUMBER, Level::Instance),
];

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
        let group = u16::from_str_radix(&id[..4], 16).ok()?;
        let element = u16::from_str_radix(&id[4..], 16).ok()?;
        return Some(Tag(group, element));
    }
    StandardDataDictionary
        .by_name(id)
        .map(|entry| entry.tag_range().inner())
}

/// The searchable attribute for `tag`, if the index knows it.
pub fn searchable(tag: Tag) -> Option<&'static SearchableAttribute> {
    SEARCHABLE.iter().find(|a| a.tag == tag)
}

/// The searchable attribute values of a dataset, as the index stores them: trimmed strings, one per value.
pub fn searchable_attributes(dataset: &InMemDicomObject) -> Vec<(u32, Vec<String>)> {
    SEARCHABLE
        .iter()
        .filter_map(|a| {
            let element = dataset.element_opt(a.tag).ok().flatten()?;
            let text = element.to_str().ok()?;
            let values: Vec<String> = text
                .split('\\')
                .map(|v| v.trim_matches(|c: char| c == ' ' || c == '\0').to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            (!values.is_empty()).then(|| (tag_u32(a.tag), values))
        })
        .collect()
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
    }
}
