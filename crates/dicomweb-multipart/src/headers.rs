//! Part headers: storage and line parsing.

use crate::MultipartError;

/// The header fields of one part, in the order they were received.
///
/// Names keep their original spelling but are looked up case-insensitively; values are
/// stored with surrounding spaces/tabs removed and folded lines joined by one space.
/// Values that are not UTF-8 are decoded lossily (they are informational; the names,
/// which drive behaviour, must be printable ASCII).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartHeaders {
    fields: Vec<(String, String)>,
}

impl PartHeaders {
    /// The value of the first field called `name` (ASCII case-insensitive), trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The value of the `Content-Type` field, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.get("content-type")
    }

    /// All fields as `(name, value)` in received order, duplicates included.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when the part had no header fields at all (which RFC 2046 allows).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Parses one unfolded-or-continuation header line (without its line ending) and adds it.
    /// `part_number` (1-based) only serves error messages.
    pub(crate) fn push_line(
        &mut self,
        line: &[u8],
        part_number: usize,
    ) -> Result<(), MultipartError> {
        if let Some(continuation) = line.strip_prefix(b" ").or_else(|| line.strip_prefix(b"\t")) {
            // Obsolete line folding (RFC 5322 §2.2.3): continues the previous field's value.
            let Some((_, value)) = self.fields.last_mut() else {
                return Err(MultipartError::MalformedHeader(format!(
                    "part {part_number}: the header block starts with an indented (folded) line: {}",
                    snippet(line)
                )));
            };
            let continuation = trim_wsp(&String::from_utf8_lossy(continuation)).to_owned();
            if !continuation.is_empty() {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(&continuation);
            }
            return Ok(());
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            return Err(MultipartError::MalformedHeader(format!(
                "part {part_number}: header line has no ':' separating name and value: {}",
                snippet(line)
            )));
        };
        let (name, value) = line.split_at(colon);
        // Whitespace before the colon is obsolete syntax (RFC 5322 §4.5) but harmless.
        let name = name.trim_ascii_end();
        if name.is_empty() {
            return Err(MultipartError::MalformedHeader(format!(
                "part {part_number}: header line has an empty field name: {}",
                snippet(line)
            )));
        }
        // RFC 5322 field names: printable ASCII except ':' (already excluded by the split).
        if !name.iter().all(|byte| (33..=126).contains(byte)) {
            return Err(MultipartError::MalformedHeader(format!(
                "part {part_number}: header field name contains a space or non-printable character: {}",
                snippet(line)
            )));
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let value =
            trim_wsp(&String::from_utf8_lossy(value.get(1..).unwrap_or_default())).to_owned();
        self.fields.push((name, value));
        Ok(())
    }
}

fn trim_wsp(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// A short, escaped excerpt of a client's line, safe to put into an error message.
fn snippet(line: &[u8]) -> String {
    const MAX: usize = 64;
    let shown = String::from_utf8_lossy(line.get(..MAX).unwrap_or(line))
        .escape_debug()
        .to_string();
    if line.len() > MAX {
        format!("\"{shown}\"...")
    } else {
        format!("\"{shown}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Result<PartHeaders, MultipartError> {
        let mut headers = PartHeaders::default();
        for line in lines {
            headers.push_line(line.as_bytes(), 1)?;
        }
        Ok(headers)
    }

    #[test]
    fn lookup_is_case_insensitive_first_wins_and_trimmed() {
        let headers = parse(&[
            "content-TYPE:  application/dicom \t",
            "X-A: 1",
            "x-a: 2",
            "Empty:",
        ])
        .unwrap();
        assert_eq!(headers.content_type(), Some("application/dicom"));
        assert_eq!(headers.get("X-a"), Some("1"));
        assert_eq!(headers.get("empty"), Some(""));
        assert_eq!(headers.get("missing"), None);
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [
                ("content-TYPE", "application/dicom"),
                ("X-A", "1"),
                ("x-a", "2"),
                ("Empty", "")
            ]
        );
    }

    #[test]
    fn folded_lines_are_joined() {
        let headers = parse(&["Content-Type: multipart/related;", "\t type=\"x\"", "  "]).unwrap();
        assert_eq!(
            headers.content_type(),
            Some("multipart/related; type=\"x\"")
        );
    }

    #[test]
    fn garbage_lines_are_rejected_with_the_offending_text() {
        let error = parse(&["no colon here"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed multipart part header: part 1: header line has no ':' separating name and value: \"no colon here\""
        );
        assert!(matches!(
            parse(&[": v"]),
            Err(MultipartError::MalformedHeader(_))
        ));
        assert!(matches!(
            parse(&["a b: v"]),
            Err(MultipartError::MalformedHeader(_))
        ));
        assert!(matches!(
            parse(&[" folded first"]),
            Err(MultipartError::MalformedHeader(_))
        ));
        let long = parse(&[&"x".repeat(500)]).unwrap_err().to_string();
        assert!(long.len() < 200 && long.ends_with("\"..."), "{long}");
    }
}
