//! Boundary validation and extraction from a `Content-Type` value (RFC 2046 §5.1.1).

use crate::MultipartError;

/// Longest boundary RFC 2046 allows.
pub(crate) const MAX_BOUNDARY_LEN: usize = 70;

/// `bcharsnospace` of RFC 2046; a boundary may also contain spaces, except at its end.
fn is_bchar_nospace(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&byte)
}

/// Checks `boundary` against RFC 2046: 1 to 70 characters from the allowed set, not ending in a space.
pub(crate) fn validate_boundary(boundary: &str) -> Result<(), MultipartError> {
    if boundary.is_empty() {
        return Err(MultipartError::InvalidBoundary(
            "the boundary is empty".to_owned(),
        ));
    }
    if boundary.len() > MAX_BOUNDARY_LEN {
        return Err(MultipartError::InvalidBoundary(format!(
            "the boundary is {} characters long, at most {MAX_BOUNDARY_LEN} are allowed",
            boundary.len()
        )));
    }
    if let Some(bad) = boundary
        .chars()
        .find(|&c| !(c == ' ' || (c.is_ascii() && is_bchar_nospace(c as u8))))
    {
        return Err(MultipartError::InvalidBoundary(format!(
            "the boundary contains the character {:?}, which RFC 2046 does not allow",
            bad
        )));
    }
    if boundary.ends_with(' ') {
        return Err(MultipartError::InvalidBoundary(
            "the boundary ends with a space".to_owned(),
        ));
    }
    Ok(())
}

/// Extracts and validates the `boundary` parameter of a `Content-Type` value.
///
/// The value may be quoted (`boundary="a b"`, with `\` escapes) or bare (`boundary=ab`); the
/// parameter may appear in any position and its name is matched case-insensitively. Quoted
/// values of other parameters may contain `;` and `=`. The media type itself is not checked
/// (that is the caller's job), only the first `boundary` parameter is used.
///
/// # Errors
/// [`MultipartError::InvalidBoundary`] if there is no boundary parameter, the parameter list
/// cannot be parsed, or the boundary breaks RFC 2046 (1..=70 characters of
/// `0-9 A-Z a-z ' ( ) + _ , - . / : = ?` and space, not ending in a space).
///
/// ```
/// use dicomweb_multipart::boundary_from_content_type;
/// let ct = r#"multipart/related; type="application/dicom"; Boundary="a:b c""#;
/// assert_eq!(boundary_from_content_type(ct).unwrap(), "a:b c");
/// assert!(boundary_from_content_type("multipart/related").is_err());
/// ```
pub fn boundary_from_content_type(content_type: &str) -> Result<String, MultipartError> {
    let Some((_, mut params)) = content_type.split_once(';') else {
        return Err(no_boundary());
    };
    loop {
        params = params.trim_start_matches([' ', '\t', ';']);
        if params.is_empty() {
            return Err(no_boundary());
        }
        let name_end = params.find(['=', ';']).unwrap_or(params.len());
        let name = params[..name_end].trim_matches([' ', '\t']);
        params = &params[name_end..];
        let value = match params.strip_prefix('=') {
            None => {
                // A parameter without a value: skip it rather than fail, it is not ours.
                continue;
            }
            Some(after_eq) => {
                let after_eq = after_eq.trim_start_matches([' ', '\t']);
                if let Some(quoted) = after_eq.strip_prefix('"') {
                    let (value, rest) = parse_quoted(quoted).ok_or_else(|| {
                        MultipartError::InvalidBoundary(format!(
                            "the Content-Type parameter {name:?} has an unterminated quoted value"
                        ))
                    })?;
                    params = rest;
                    value
                } else {
                    let end = after_eq.find(';').unwrap_or(after_eq.len());
                    params = &after_eq[end..];
                    after_eq[..end].trim_matches([' ', '\t']).to_owned()
                }
            }
        };
        if name.eq_ignore_ascii_case("boundary") {
            validate_boundary(&value)?;
            return Ok(value);
        }
    }
}

fn no_boundary() -> MultipartError {
    MultipartError::InvalidBoundary("Content-Type has no boundary parameter".to_owned())
}

/// Parses the rest of a quoted-string (after the opening quote). Returns the unescaped value
/// and what follows the closing quote, or `None` if the closing quote is missing.
fn parse_quoted(input: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = input.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Some((value, &input[index + 1..])),
            '\\' => value.push(chars.next()?.1),
            other => value.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_quoted_and_any_position() {
        assert_eq!(
            boundary_from_content_type("multipart/related; boundary=abc").unwrap(),
            "abc"
        );
        assert_eq!(
            boundary_from_content_type("multipart/related;BOUNDARY = \"abc\" ; type=x").unwrap(),
            "abc"
        );
        assert_eq!(
            boundary_from_content_type(
                r#"multipart/related; type="application/dicom; x=y"; transfer-syntax=*; boundary="'()+_,-./:=? q""#
            )
            .unwrap(),
            "'()+_,-./:=? q"
        );
        assert_eq!(
            boundary_from_content_type(r#"multipart/related; boundary="a\"b""#)
                .unwrap_err()
                .to_string(),
            "invalid multipart boundary: the boundary contains the character '\"', which RFC 2046 does not allow"
        );
    }

    #[test]
    fn a_boundary_inside_another_quoted_parameter_is_not_taken() {
        assert_eq!(
            boundary_from_content_type(
                r#"multipart/related; type="a; boundary=wrong"; boundary=right"#
            )
            .unwrap(),
            "right"
        );
    }

    #[test]
    fn rejects_missing_empty_long_and_bad_boundaries() {
        for content_type in [
            "multipart/related",
            "multipart/related; type=x",
            "multipart/related; boundary=",
            "multipart/related; boundary=\"\"",
            "multipart/related; boundary=\"abc",
            "multipart/related; boundary=\"abc \"",
            "multipart/related; boundary=a@b",
            "multipart/related; boundary=\"ä\"",
        ] {
            assert!(
                matches!(
                    boundary_from_content_type(content_type),
                    Err(MultipartError::InvalidBoundary(_))
                ),
                "{content_type}"
            );
        }
        let seventy = "a".repeat(70);
        assert!(validate_boundary(&seventy).is_ok());
        assert!(validate_boundary(&format!("{seventy}a")).is_err());
    }
}
