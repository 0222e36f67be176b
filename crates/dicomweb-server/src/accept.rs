//! Content negotiation for DICOMweb: parsing `Accept` and `Content-Type` into media types with the parameters
//! DICOMweb uses (`type`, `transfer-syntax`, `boundary`, `q`).

/// One media type or media range with its parameters (names lower-cased, values unquoted).
#[derive(Debug, Clone, PartialEq)]
pub struct MediaType {
    /// `type/subtype`, lower-cased.
    pub essence: String,
    pub params: Vec<(String, String)>,
    /// Quality from `q` (1.0 when absent).
    pub quality: f32,
}

impl MediaType {
    /// Parses one media type (`multipart/related; type="application/dicom"; boundary=x`).
    pub fn parse(text: &str) -> Option<MediaType> {
        let mut pieces = split_outside_quotes(text, ';').into_iter();
        let essence = pieces.next()?.trim().to_ascii_lowercase();
        let (main, sub) = essence.split_once('/')?;
        if main.is_empty() || sub.is_empty() || essence.contains(char::is_whitespace) {
            return None;
        }
        let mut params = Vec::new();
        let mut quality = 1.0;
        for piece in pieces {
            let piece = piece.trim();
            if piece.is_empty() {
                continue;
            }
            let (name, value) = piece.split_once('=')?;
            let name = name.trim().to_ascii_lowercase();
            let value = unquote(value.trim());
            if name == "q" {
                quality = value.parse().ok()?;
            } else {
                params.push((name, value));
            }
        }
        Some(MediaType {
            essence,
            params,
            quality,
        })
    }

    /// The value of parameter `name` (lower-case name).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// True for `*/*`.
    pub fn is_any(&self) -> bool {
        self.essence == "*/*"
    }
}

/// Parses an `Accept` header into media ranges, best quality first (stable for equal quality). Unparseable
/// entries are skipped; an absent or empty header means `*/*`.
pub fn parse_accept(header: Option<&str>) -> Vec<MediaType> {
    let Some(header) = header.filter(|h| !h.trim().is_empty()) else {
        return vec![MediaType {
            essence: "*/*".into(),
            params: vec![],
            quality: 1.0,
        }];
    };
    let mut ranges: Vec<MediaType> = split_outside_quotes(header, ',')
        .into_iter()
        .filter_map(MediaType::parse)
        .filter(|m| m.quality > 0.0)
        .collect();
    ranges.sort_by(|a, b| {
        b.quality
            .partial_cmp(&a.quality)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    ranges
}

fn unquote(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        let inner = &value[1..value.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut escaped = false;
        for c in inner.chars() {
            if escaped {
                out.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else {
                out.push(c);
            }
        }
        out
    } else {
        value.to_owned()
    }
}

fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == separator && !in_quotes => {
                pieces.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    pieces.push(&text[start..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicomweb_accept_headers_parse_with_quoted_parameters() {
        let ranges = parse_accept(Some(
            "multipart/related; type=\"application/dicom\"; transfer-syntax=*, application/dicom+json;q=0.5",
        ));
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0].essence, "multipart/related");
        assert_eq!(ranges[0].param("type"), Some("application/dicom"));
        assert_eq!(ranges[0].param("transfer-syntax"), Some("*"));
        assert_eq!(ranges[1].quality, 0.5);
    }

    #[test]
    fn quality_orders_ranges_and_zero_excludes() {
        let ranges = parse_accept(Some(
            "application/json;q=0.2, application/dicom+json, text/html;q=0",
        ));
        let names: Vec<_> = ranges.iter().map(|m| m.essence.as_str()).collect();
        assert_eq!(names, ["application/dicom+json", "application/json"]);
    }

    #[test]
    fn missing_accept_means_anything() {
        assert!(parse_accept(None)[0].is_any());
        assert!(parse_accept(Some("  "))[0].is_any());
    }

    proptest::proptest! {
        /// Fuzzing: any header value parses without panicking, and what parses keeps its invariants.
        #[test]
        fn any_header_value_is_handled(header in "\\PC{0,200}", ascii in "[ -~]{0,200}") {
            for text in [&header, &ascii] {
                for media in parse_accept(Some(text)) {
                    proptest::prop_assert!(media.essence.contains('/'));
                    proptest::prop_assert!(media.quality > 0.0);
                }
                let _ = MediaType::parse(text);
            }
        }

        /// Structured fuzzing: headers built from DICOMweb-like pieces.
        #[test]
        fn dicomweb_like_headers_are_handled(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("multipart/related".to_string()),
                    proptest::strategy::Just("; type=\"application/dicom\"".to_string()),
                    proptest::strategy::Just("; transfer-syntax=*".to_string()),
                    proptest::strategy::Just(",".to_string()),
                    proptest::strategy::Just(";q=0.".to_string()),
                    proptest::strategy::Just("\"".to_string()),
                    proptest::strategy::Just("\\".to_string()),
                    "[ -~]{0,8}",
                ],
                0..20,
            )
        ) {
            let header: String = pieces.concat();
            let _ = parse_accept(Some(&header));
            let _ = MediaType::parse(&header);
        }
    }

    #[test]
    fn garbage_is_skipped_not_fatal() {
        assert!(parse_accept(Some("garbage, ;;;")).is_empty());
        assert_eq!(
            MediaType::parse("multipart/related; boundary=\"a;b\"")
                .unwrap()
                .param("boundary"),
            Some("a;b")
        );
    }
}
