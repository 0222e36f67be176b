//! Required attributes (errors) and value-against-VR validation of the other attributes (warnings).
//!
//! The VR rules and reason texts follow what Microsoft's DICOM service reports (it uses fo-dicom's validation), so
//! clients see the same `ErrorComment` texts; ranges ("-") are not accepted in DA/TM/DT since they only exist in
//! queries, not in stored instances.

use std::collections::HashSet;

use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

use crate::InspectError;

/// The attributes checked by [`check_required`]; they are not VR-validated again as warnings.
pub(crate) const REQUIRED_TAGS: [Tag; 5] = [
    tags::STUDY_INSTANCE_UID,
    tags::SERIES_INSTANCE_UID,
    tags::SOP_INSTANCE_UID,
    tags::SOP_CLASS_UID,
    tags::PATIENT_ID,
];

/// Whether `s` is usable as a UID in URLs and storage keys: 1 to 64 characters, each an ASCII letter, digit, '.'
/// or '-'.
///
/// This is Microsoft's rule, deliberately more lenient than DICOM's digits-and-dots, so that instances with
/// slightly non-conformant UIDs seen in the wild can still be stored. Padding is not trimmed here.
///
/// ```
/// use dicomweb_instance::is_valid_uid;
/// assert!(is_valid_uid("1.2.840.10008.5.1.4.1.1.2"));
/// assert!(is_valid_uid("2.25.abc-DEF"));
/// assert!(!is_valid_uid(""));
/// assert!(!is_valid_uid("1.2 3"));
/// assert!(!is_valid_uid(&"1".repeat(65)));
/// ```
pub fn is_valid_uid(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// "(0020,000D)": the tag format used in [`InspectError::MissingAttribute`].
pub(crate) fn tag_upper(tag: Tag) -> String {
    format!("({:04X},{:04X})", tag.group(), tag.element())
}

fn trim_padding(s: &str) -> &str {
    s.trim_end_matches(['\0', ' '])
}

/// The element's value as one string (multiple values joined by '\'), or `None` for sequences and pixel sequences.
fn string_value(element: &InMemElement) -> Option<String> {
    match element.value() {
        Value::Primitive(value) => Some(value.to_str().into_owned()),
        _ => None,
    }
}

/// Checks the attributes an archive cannot do without and returns the four UIDs, trimmed:
/// (study, series, SOP instance, SOP class).
pub(crate) fn check_required(
    dataset: &InMemDicomObject,
) -> Result<(String, String, String, String), InspectError> {
    let study = required_uid(dataset, tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?;
    let series = required_uid(dataset, tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?;
    let instance = required_uid(dataset, tags::SOP_INSTANCE_UID, "SOPInstanceUID")?;
    let class = required_uid(dataset, tags::SOP_CLASS_UID, "SOPClassUID")?;
    check_patient_id(dataset)?;
    Ok((study, series, instance, class))
}

fn required_uid(
    dataset: &InMemDicomObject,
    tag: Tag,
    keyword: &'static str,
) -> Result<String, InspectError> {
    let element = dataset.get(tag).ok_or(InspectError::MissingAttribute {
        keyword,
        tag: tag_upper(tag),
    })?;
    let Some(raw) = string_value(element) else {
        return Err(InspectError::InvalidUid {
            keyword,
            value: String::new(),
            reason: "value is not a string".into(),
        });
    };
    let value = trim_padding(&raw);
    if is_valid_uid(value) {
        return Ok(value.to_string());
    }
    let reason = if value.is_empty() {
        "value is empty"
    } else if value.len() > 64 {
        "value exceeds maximum length of 64 characters"
    } else {
        "value contains characters other than ASCII letters, digits, '.' and '-'"
    };
    Err(InspectError::InvalidUid {
        keyword,
        value: value.to_string(),
        reason: reason.into(),
    })
}

/// PatientID must be present (it may be empty) and a valid LO.
fn check_patient_id(dataset: &InMemDicomObject) -> Result<(), InspectError> {
    let keyword = "PatientID";
    let element = dataset
        .get(tags::PATIENT_ID)
        .ok_or(InspectError::MissingAttribute {
            keyword,
            tag: tag_upper(tags::PATIENT_ID),
        })?;
    let Some(raw) = string_value(element) else {
        return Err(InspectError::InvalidAttribute {
            keyword,
            reason: "value is not a string".into(),
        });
    };
    match validate_lo_like(trim_padding(&raw), 64) {
        Ok(()) => Ok(()),
        Err(reason) => Err(InspectError::InvalidAttribute {
            keyword,
            reason: reason.into(),
        }),
    }
}

/// Validates every attribute except [`REQUIRED_TAGS`] at the top level against its VR, and appends one warning
/// per top-level attribute that fails (for a sequence: its first failing nested value, reported under the
/// sequence's tag, as Microsoft does).
pub(crate) fn validate_dataset(dataset: &InMemDicomObject, warnings: &mut Vec<String>) {
    let mut reported = HashSet::new();
    for element in dataset.iter() {
        let tag = element.tag();
        if REQUIRED_TAGS.contains(&tag) || reported.contains(&tag) {
            continue;
        }
        if let Some(failure) = first_failure(element) {
            reported.insert(tag);
            warnings.push(failure.message(tag));
        }
    }
}

/// Longest content quoted in a warning, so that a huge invalid text value does not produce a huge warning.
const MAX_QUOTED_CHARS: usize = 1024;

struct Failure {
    content: String,
    vr: VR,
    reason: &'static str,
}

impl Failure {
    fn message(&self, tag: Tag) -> String {
        let mut content: String = self.content.chars().take(MAX_QUOTED_CHARS).collect();
        if content.len() < self.content.len() {
            content.push_str("...");
        }
        // Lower-case hex: the tag format of Microsoft's (fo-dicom's) messages, e.g. "(0008,002a)".
        format!(
            "DICOM100: ({:04x},{:04x}) - Content \"{}\" does not validate VR {}: {}",
            tag.group(),
            tag.element(),
            content,
            self.vr,
            self.reason
        )
    }
}

fn first_failure(element: &InMemElement) -> Option<Failure> {
    match element.value() {
        Value::Primitive(value) => validate_primitive(element.vr(), value),
        Value::Sequence(sequence) => sequence
            .items()
            .iter()
            .find_map(|item| item.iter().find_map(first_failure)),
        Value::PixelSequence(_) => None,
    }
}

fn validate_primitive(vr: VR, value: &PrimitiveValue) -> Option<Failure> {
    let check: fn(&str) -> Result<(), &'static str> = match vr {
        VR::AE => validate_ae,
        VR::AS => validate_as,
        VR::CS => validate_cs,
        VR::DA => validate_da,
        VR::DS => validate_ds,
        VR::DT => validate_dt,
        VR::IS => validate_is,
        VR::LO => |s| validate_lo_like(s, 64),
        VR::LT => {
            |s| validate_max_length(s, 10240, "value exceeds maximum length of 10240 characters")
        }
        VR::PN => validate_pn,
        VR::SH => |s| validate_lo_like(s, 16),
        VR::ST => {
            |s| validate_max_length(s, 1024, "value exceeds maximum length of 1024 characters")
        }
        VR::TM => validate_tm,
        VR::UI => validate_ui,
        _ => return None,
    };
    let values: Vec<&str> = match value {
        PrimitiveValue::Strs(values) => values.iter().map(String::as_str).collect(),
        PrimitiveValue::Str(value) => vec![value.as_str()],
        _ => return None,
    };
    values.into_iter().find_map(|raw| {
        let mut content = trim_padding(raw);
        if matches!(vr, VR::DS | VR::IS) {
            // Leading spaces are insignificant in number strings.
            content = content.trim_start_matches(' ');
        }
        if content.is_empty() {
            return None;
        }
        check(content).err().map(|reason| Failure {
            content: content.to_string(),
            vr,
            reason,
        })
    })
}

fn char_count(s: &str) -> usize {
    s.chars().count()
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Two ASCII digits at `at` as a number; callers have checked the string is all digits.
fn two_digits(s: &str, at: usize) -> u32 {
    s.get(at..at + 2)
        .and_then(|d| d.parse().ok())
        .unwrap_or_default()
}

fn validate_max_length(s: &str, max: usize, reason: &'static str) -> Result<(), &'static str> {
    if char_count(s) > max {
        return Err(reason);
    }
    Ok(())
}

fn validate_ae(s: &str) -> Result<(), &'static str> {
    if char_count(s) > 16 {
        return Err("value exceeds maximum length of 16 characters");
    }
    if s.chars().all(|c| c == ' ') {
        return Err("value may not consist only of spaces");
    }
    if s.contains('\\') || s.chars().any(char::is_control) {
        return Err("value contains invalid control character");
    }
    Ok(())
}

fn validate_as(s: &str) -> Result<(), &'static str> {
    let bytes = s.as_bytes();
    let well_formed = bytes.len() == 4
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && matches!(bytes[3], b'D' | b'W' | b'M' | b'Y');
    if !well_formed {
        return Err("value does not have pattern 000[DWMY]");
    }
    Ok(())
}

fn validate_cs(s: &str) -> Result<(), &'static str> {
    if char_count(s) > 16 {
        return Err("value exceeds maximum length of 16 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'_')
    {
        // Spelling as in Microsoft's message, so clients matching on it keep working.
        return Err(
            "value contains invalid character. Only uppercase character, digits, space and underscore alre allowed",
        );
    }
    Ok(())
}

fn validate_da(s: &str) -> Result<(), &'static str> {
    if s.len() != 8 || !all_digits(s) {
        return Err("one of the date values does not match the pattern YYYYMMDD");
    }
    if two_digits(s, 4) > 12 {
        return Err("month component exceeds the value 12");
    }
    if two_digits(s, 6) > 31 {
        return Err("day component exceeds the value 31");
    }
    Ok(())
}

/// `[+-]?(digits[.digits?] | .digits)([eE][+-]?digits)?`
fn is_decimal_string(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => {
            (all_digits(whole) && (fraction.is_empty() || all_digits(fraction)))
                || (whole.is_empty() && all_digits(fraction))
        }
        None => all_digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| all_digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

fn validate_ds(s: &str) -> Result<(), &'static str> {
    if char_count(s) > 16 {
        return Err("value exceeds maximum length of 16 characters");
    }
    if !is_decimal_string(s) {
        return Err("value is no decimal string");
    }
    Ok(())
}

fn validate_is(s: &str) -> Result<(), &'static str> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if !all_digits(digits) {
        return Err("value is not an integer string");
    }
    if char_count(s) > 12 {
        return Err("value exceeds maximum length of 12 characters");
    }
    if s.parse::<i32>().is_err() {
        return Err("value too large to fit 32 bit integer");
    }
    Ok(())
}

/// LO and SH: length limit, no backslash, no control characters except ESC (used by ISO 2022 code extensions).
fn validate_lo_like(s: &str, max: usize) -> Result<(), &'static str> {
    if char_count(s) > max {
        return Err(if max == 16 {
            "value exceeds maximum length of 16 characters"
        } else {
            "value exceeds maximum length of 64 characters"
        });
    }
    if s.contains('\\') || s.chars().any(|c| c.is_control() && c != '\u{1b}') {
        return Err("value contains invalid character");
    }
    Ok(())
}

fn validate_pn(s: &str) -> Result<(), &'static str> {
    let groups: Vec<&str> = s.split('=').collect();
    if groups.len() > 3 {
        return Err("value contains too many groups");
    }
    for group in groups {
        if char_count(group) > 64 {
            return Err("value exceeds maximum length of 64 characters");
        }
        if group.chars().any(|c| c.is_control() && c != '\u{1b}') {
            return Err("value contains invalid control character");
        }
        if group.matches('^').count() >= 5 {
            return Err("value contains too many components");
        }
    }
    Ok(())
}

/// `HH`, `HHMM`, `HHMMSS` or `HHMMSS.F{1-6}`.
fn validate_tm(s: &str) -> Result<(), &'static str> {
    let (whole, fraction) = match s.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (s, None),
    };
    let well_formed = all_digits(whole)
        && match fraction {
            None => matches!(whole.len(), 2 | 4 | 6),
            Some(fraction) => {
                whole.len() == 6 && (1..=6).contains(&fraction.len()) && all_digits(fraction)
            }
        };
    if !well_formed {
        // Spelling as in Microsoft's message.
        return Err("value does not mach pattern HH or HHMM or HHMMSS or HHMMSS.F{1-6}");
    }
    if two_digits(whole, 0) > 23 {
        return Err("hour component exceeds 23");
    }
    if whole.len() >= 4 && two_digits(whole, 2) > 59 {
        return Err("minutes component exceeds 59");
    }
    if whole.len() >= 6 && two_digits(whole, 4) > 60 {
        return Err("seconds component exceeds 60");
    }
    Ok(())
}

/// `YYYY[MM[DD[HH[MM[SS[.F{1-6}]]]]]][&ZZXX]`
fn validate_dt(s: &str) -> Result<(), &'static str> {
    if s.contains("-0000") {
        return Err("negative UTC hours component with value -0000 is not allowed");
    }
    let (date_time, offset) = match s.find(['+', '-']) {
        Some(at) => (&s[..at], Some((&s[at..at + 1], &s[at + 1..]))),
        None => (s, None),
    };
    if let Some((sign, offset)) = offset {
        if offset.contains(['+', '-']) {
            return Err("value contains too many UTC separators '+' or '-'");
        }
        if offset.len() != 4 || !all_digits(offset) {
            return Err("value does not match the UTC pattern &ZZXX");
        }
        let hours = two_digits(offset, 0);
        if sign == "+" && hours > 14 {
            return Err(
                "positive UTC hours component exceeds 14 (allowed range is -1200 to +1400)",
            );
        }
        if sign == "-" && hours > 12 {
            return Err(
                "negative UTC hours component exceeds 12 (allowed range is -1200 to +1400)",
            );
        }
        if two_digits(offset, 2) > 59 {
            return Err("UTC minutes component exceeds 59");
        }
    }
    let (whole, fraction) = match date_time.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (date_time, None),
    };
    let well_formed = all_digits(whole)
        && match fraction {
            None => matches!(whole.len(), 4 | 6 | 8 | 10 | 12 | 14),
            Some(fraction) => {
                whole.len() == 14 && (1..=6).contains(&fraction.len()) && all_digits(fraction)
            }
        };
    if !well_formed {
        // Spelling as in Microsoft's message.
        return Err("value does not mach pattern YYYY[MM[DD[HH[MM[SS[.F{1-6}]]]]]]");
    }
    if whole.len() >= 14 && two_digits(whole, 12) > 60 {
        return Err("seconds component exceeds 60");
    }
    if whole.len() >= 12 && two_digits(whole, 10) > 59 {
        return Err("minutes component exceeds 59");
    }
    if whole.len() >= 10 && two_digits(whole, 8) > 23 {
        return Err("hours component exceeds 23");
    }
    if whole.len() >= 8 {
        match two_digits(whole, 6) {
            0 => return Err("day component cannot be 0"),
            day if day > 31 => return Err("day component exceeds 31"),
            _ => {}
        }
    }
    if whole.len() >= 6 {
        match two_digits(whole, 4) {
            0 => return Err("month component cannot be 0"),
            month if month > 12 => return Err("month component exceeds 12"),
            _ => {}
        }
    }
    Ok(())
}

/// DICOM UIDs (PS3.5 9.1): digits and dots, at most 64, no empty component, no leading zero in a component.
fn validate_ui(s: &str) -> Result<(), &'static str> {
    if char_count(s) > 64 {
        return Err("value exceeds maximum length of 64 characters");
    }
    if !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("value contains invalid characters other than '0'-'9' and '.'");
    }
    if s.split('.').any(|c| c.len() > 1 && c.starts_with('0')) {
        return Err("components must not have leading zeros");
    }
    if s.split('.').any(str::is_empty) {
        return Err("a component can not be empty");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_must_be_eight_digits_with_plausible_month_and_day() {
        assert!(validate_da("20240229").is_ok());
        assert!(validate_da("NotAValidDate").is_err());
        assert!(
            validate_da("20240101-20240201").is_err(),
            "ranges are query-only"
        );
        assert_eq!(
            validate_da("20241301"),
            Err("month component exceeds the value 12")
        );
        assert_eq!(
            validate_da("20240132"),
            Err("day component exceeds the value 31")
        );
    }

    #[test]
    fn times_accept_the_dicom_forms_only() {
        for ok in ["07", "0712", "071259", "071259.1", "235960.123456"] {
            assert!(validate_tm(ok).is_ok(), "{ok}");
        }
        for bad in [
            "7",
            "071",
            "07:12",
            "071259.",
            "071259.1234567",
            "2400",
            "0760",
        ] {
            assert!(validate_tm(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn date_times_accept_precision_and_utc_offset() {
        for ok in [
            "2024",
            "202402",
            "20240229",
            "20240229123059.5",
            "20240229+0100",
            "2024022912-0500",
        ] {
            assert!(validate_dt(ok).is_ok(), "{ok}");
        }
        for bad in [
            "NotAValidDate",
            "20241301",
            "20240229+1500",
            "20240229-0000",
            "202",
            "20240229+01",
        ] {
            assert!(validate_dt(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_in_text_form() {
        for ok in ["1", "-12", "+7", "000000000001"] {
            assert!(validate_is(ok).is_ok(), "{ok}");
        }
        assert_eq!(validate_is("1A"), Err("value is not an integer string"));
        assert_eq!(
            validate_is("99999999999"),
            Err("value too large to fit 32 bit integer")
        );
        for ok in ["1", "-1.5", ".5", "5.", "1e10", "-1.25E-3"] {
            assert!(validate_ds(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "e5", "1e", "1.2.3", "abc", "12345678901234567"] {
            assert!(validate_ds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn code_strings_ages_and_uids() {
        assert!(validate_cs("ORIGINAL_1 A").is_ok());
        assert!(validate_cs("lower").is_err());
        assert!(validate_cs("ABCDEFGHIJKLMNOPQ").is_err());
        assert!(validate_as("045Y").is_ok());
        assert!(validate_as("45Y").is_err());
        assert!(validate_ui("1.2.840.10008.1.2").is_ok());
        assert!(validate_ui("1.2.0").is_ok());
        assert!(validate_ui("1.02").is_err());
        assert!(validate_ui("1..2").is_err());
        assert!(validate_ui("1.2.a").is_err());
    }

    #[test]
    fn texts_and_names() {
        assert!(validate_lo_like(&"x".repeat(64), 64).is_ok());
        assert!(validate_lo_like(&"x".repeat(65), 64).is_err());
        assert!(
            validate_lo_like("a\u{1b}$B", 64).is_ok(),
            "ESC is allowed for ISO 2022"
        );
        assert!(validate_lo_like("a\nb", 64).is_err());
        assert!(validate_pn("Doe^John^^^").is_ok());
        assert!(validate_pn("a^b^c^d^e^f").is_err());
        assert!(validate_pn("a=b=c=d").is_err());
        assert!(validate_ae("STORESCU").is_ok());
        assert!(validate_ae("   ").is_err());
    }

    #[test]
    fn warning_has_microsofts_format() {
        let failure = Failure {
            content: "NotAValidDate".into(),
            vr: VR::DA,
            reason: "one of the date values does not match the pattern YYYYMMDD",
        };
        assert_eq!(
            failure.message(tags::STUDY_DATE),
            "DICOM100: (0008,0020) - Content \"NotAValidDate\" does not validate VR DA: one of the date values does not match the pattern YYYYMMDD"
        );
        assert_eq!(
            Failure {
                content: "x".into(),
                vr: VR::DT,
                reason: "r"
            }
            .message(tags::ACQUISITION_DATE_TIME),
            "DICOM100: (0008,002a) - Content \"x\" does not validate VR DT: r"
        );
    }
}
