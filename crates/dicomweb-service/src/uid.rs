//! UIDs as they arrive in URLs and query strings.

use crate::error::ServiceError;

/// Validates a UID taken from a URL path or query: the archive's UID rule (1 to 64 characters of ASCII letters,
/// digits, `.` and `-`) and, because UIDs become storage key segments, not made of dots only.
pub fn check_uid(kind: &str, uid: &str) -> Result<(), ServiceError> {
    if dicomweb_instance::is_valid_uid(uid) && !uid.bytes().all(|b| b == b'.') {
        Ok(())
    } else {
        Err(ServiceError::InvalidInput(format!(
            "invalid {kind} \"{}\": a UID is 1 to 64 characters of digits, letters, '.' and '-'",
            truncate_for_message(uid)
        )))
    }
}

/// Keeps error messages short when a client sends a huge value.
pub(crate) fn truncate_for_message(value: &str) -> String {
    const MAX: usize = 80;
    if value.chars().count() <= MAX {
        value.to_owned()
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dicom_and_microsoft_style_uids() {
        assert!(check_uid("StudyInstanceUID", "1.2.840.10008.5.1.4.1.1.7").is_ok());
        assert!(check_uid("StudyInstanceUID", "d09e8215-e1e1-4c7a").is_ok());
    }

    #[test]
    fn rejects_uids_that_could_escape_a_storage_key() {
        for bad in ["", ".", "..", "a/b", "1.2 3", "1.2\0", &"1".repeat(65)] {
            assert!(
                check_uid("StudyInstanceUID", bad).is_err(),
                "{bad:?} must be rejected"
            );
        }
    }
}
