//! Key syntax: what callers may name a blob, and what `list` accepts as a prefix.

use crate::StorageError;

/// Longest accepted key, in bytes (S3's limit, comfortably within file system path limits).
pub const MAX_KEY_LEN: usize = 1024;

/// Reserved key prefix under which in-progress uploads are staged. Callers can neither write nor list
/// there, so a staged blob can never be mistaken for a real one.
pub const STAGING_PREFIX: &str = ".staging/";

const STAGING_SEGMENT: &str = ".staging";

/// Validates a key: non-empty, at most [`MAX_KEY_LEN`] bytes, segments separated by '/', each segment 1 or
/// more characters of `[A-Za-z0-9._-]`, not "." or "..", no leading (or trailing) '/', and not under the
/// reserved [`STAGING_PREFIX`].
///
/// The character set is deliberately small: such keys mean the same thing as a file system path on every
/// OS, as an object store key, and in a URL, with no escaping anywhere.
///
/// ```
/// use dicomweb_storage::validate_key;
/// assert!(validate_key("studies/1.2.840.10008/series/1.2.3/instances/4.5.6.dcm").is_ok());
/// assert!(validate_key("../etc/passwd").is_err());
/// ```
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let invalid = |reason| {
        Err(StorageError::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return invalid("key is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid("key is longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return invalid("key starts with '/'");
    }
    for segment in key.split('/') {
        if let Err(reason) = check_segment(segment) {
            return invalid(reason);
        }
    }
    if key.split('/').next() == Some(STAGING_SEGMENT) {
        return invalid("keys under '.staging/' are reserved for in-progress uploads");
    }
    Ok(())
}

fn check_segment(segment: &str) -> Result<(), &'static str> {
    if segment.is_empty() {
        return Err("key has an empty segment ('//' or a trailing '/')");
    }
    if segment == "." || segment == ".." {
        return Err("key has a '.' or '..' segment");
    }
    if !segment.bytes().all(is_key_byte) {
        return Err("key has a character outside [A-Za-z0-9._-]");
    }
    Ok(())
}

fn is_key_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')
}

/// A validated `list` prefix, split where object stores can use it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ListPrefix<'a> {
    /// The whole-segment part (before the last '/'), a valid key, or "" for the root.
    pub directory: &'a str,
    /// What the remaining, partial segment must start with ("" for a directory prefix).
    pub name_start: &'a str,
}

/// Splits and validates a `list` prefix: "" or a "directory" such as `a/b/`; a partial last segment
/// (`a/b/1.2`) is accepted too and matched textually.
pub(crate) fn parse_list_prefix(prefix: &str) -> Result<ListPrefix<'_>, StorageError> {
    let (directory, name_start) = match prefix.rfind('/') {
        Some(slash) => (&prefix[..slash], &prefix[slash + 1..]),
        None => ("", prefix),
    };
    if !directory.is_empty() || prefix.starts_with('/') {
        validate_key(directory).map_err(|error| match error {
            StorageError::InvalidKey { reason, .. } => StorageError::InvalidKey {
                key: prefix.to_owned(),
                reason,
            },
            other => other,
        })?;
    }
    if !name_start.bytes().all(is_key_byte) {
        return Err(StorageError::InvalidKey {
            key: prefix.to_owned(),
            reason: "prefix has a character outside [A-Za-z0-9._-]",
        });
    }
    Ok(ListPrefix {
        directory,
        name_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_relative_paths_of_plain_segments() {
        for key in [
            "a",
            "a/b",
            "1.2.840.10008.5.1.4.1.1.2",
            "x_y-z.dcm/.hidden",
            "...",
            "a/..b/c..",
        ] {
            assert!(validate_key(key).is_ok(), "{key:?} should be valid");
        }
        assert!(validate_key(&"k".repeat(MAX_KEY_LEN)).is_ok());
    }

    #[test]
    fn rejects_each_kind_of_bad_key_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("/a", "starts with '/'"),
            ("a/", "empty segment"),
            ("a//b", "empty segment"),
            (".", "'.' or '..'"),
            ("a/../b", "'.' or '..'"),
            ("a/./b", "'.' or '..'"),
            ("a b", "character"),
            ("a\\b", "character"),
            ("a#1", "character"),
            ("caf\u{e9}", "character"),
            (".staging", "reserved"),
            (".staging/x", "reserved"),
        ];
        for (key, expected) in cases {
            match validate_key(key) {
                Err(StorageError::InvalidKey {
                    key: rejected,
                    reason,
                }) => {
                    assert_eq!(rejected, key);
                    assert!(
                        reason.contains(expected),
                        "{key:?}: {reason:?} should mention {expected:?}"
                    );
                }
                other => panic!("{key:?} should be invalid, got {other:?}"),
            }
        }
        assert!(validate_key(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
        // Only the first segment is reserved: a study may well contain a ".staging" file name.
        assert!(validate_key("a/.staging").is_ok());
    }

    #[test]
    fn list_prefixes_split_into_directory_and_partial_name() {
        let parse = |p| parse_list_prefix(p).map(|l| (l.directory, l.name_start));
        assert_eq!(parse("").ok(), Some(("", "")));
        assert_eq!(parse("a/b/").ok(), Some(("a/b", "")));
        assert_eq!(parse("a/b/1.2").ok(), Some(("a/b", "1.2")));
        assert_eq!(parse("ab").ok(), Some(("", "ab")));
        for bad in ["/", "/a/", "a//", ".staging/", "../", "a/b c", "a/../"] {
            assert!(
                matches!(parse_list_prefix(bad), Err(StorageError::InvalidKey { key, .. }) if key == bad),
                "{bad:?} should be rejected"
            );
        }
    }
}
