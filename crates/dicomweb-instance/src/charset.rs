//! Text values decoded with the Specific Character Set (0008,0005), including the ISO 2022 code extensions.
//!
//! A single character set without code extensions (no value, `ISO_IR 100`, `ISO_IR 192`, `GB18030`...) is decoded
//! by dicom-rs as before: that is the common case and stays its fast path. With code extensions (PS3.5 6.1.2.5:
//! several values, or values `ISO 2022 IR ...`) escape sequences inside a value switch the G0 and G1 sets;
//! dicom-rs does not support that (it shows the escape sequences as text) and no crate does it the DICOM way, so
//! the switching is done here by hand, while the code pages themselves come from `encoding_rs`:
//!
//! - G0 (bytes 0x21-0x7E) is ASCII (ISO-IR 6, and ISO-IR 14 Romaji read as ASCII, so that 0x5C stays the value
//!   delimiter as DICOM requires), JIS X 0208 (`ESC $ B`, IR 87) or JIS X 0212 (`ESC $ ( D`, IR 159);
//! - G1 (bytes 0xA0-0xFF) is one of the single-byte right halves (ISO 8859 parts, TIS 620, JIS X 0201 Katakana)
//!   or KS X 1001 (`ESC $ ) C`, IR 149), GB 2312 (`ESC $ ) A`, IR 58);
//! - both return to the sets of value 1 at each control character (CR, LF, TAB...), at the value delimiter `\`
//!   and, in person names, at the component delimiters `^` and `=` (so each component group may use its own
//!   set). Encoders must switch back before those delimiters; in a two-byte G0 set their bytes are halves of
//!   characters, so they only count while G0 is single-byte.
//!
//! Nothing here fails: bytes that cannot be decoded (unknown or broken escape sequences, bytes outside the
//! designated sets, invalid two-byte codes) become U+FFFD and the decoding reports a [`Problem`], which the
//! parser turns into a validation warning.

use std::sync::Arc;

use dicom_encoding::text::SpecificCharacterSet;
use encoding_rs::Encoding;

const ESC: u8 = 0x1B;

/// A graphic character set that an escape sequence (or value 1 of Specific Character Set) designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Set {
    /// G0: ISO-IR 6, and ISO-IR 14 (JIS X 0201 Romaji), which differs only in glyphs for 0x5C and 0x7E.
    Ascii,
    /// G0: JIS X 0208 (ISO-IR 87), two bytes per character.
    JisX0208,
    /// G0: JIS X 0212 (ISO-IR 159), two bytes per character.
    JisX0212,
    /// G1: JIS X 0201 Katakana (ISO-IR 13).
    Katakana,
    /// G1: a single-byte right half, decoded with the code page that has it in 0xA0-0xFF.
    SingleByte(&'static Encoding),
    /// G1: KS X 1001 (ISO-IR 149), two bytes per character (EUC-KR).
    KsX1001,
    /// G1: GB 2312 (ISO-IR 58), two bytes per character (EUC-CN, a subset of GBK).
    Gb2312,
}

/// What went wrong while decoding a value (the first problem met); the text is still complete, with U+FFFD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    UnknownEscape,
    IncompleteEscape,
    NoSetForByte,
    InvalidCode,
}

impl Problem {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Problem::UnknownEscape => "unknown escape sequence",
            Problem::IncompleteEscape => "incomplete escape sequence",
            Problem::NoSetForByte => "byte outside the designated character sets",
            Problem::InvalidCode => "invalid code in the designated character set",
        }
    }
}

/// How text values of the current dataset (or item) are decoded.
#[derive(Debug, Clone)]
pub(crate) enum TextDecoding {
    /// One character set without code extensions, decoded by dicom-rs.
    Plain(SpecificCharacterSet),
    /// ISO 2022 code extensions (or a single-byte set dicom-rs lacks), decoded by [`TextDecoding::decode`].
    Iso2022 {
        initial_g1: Option<Set>,
        /// The Specific Character Set value, for warnings.
        code: Arc<str>,
    },
}

impl Default for TextDecoding {
    fn default() -> Self {
        TextDecoding::Plain(SpecificCharacterSet::default())
    }
}

/// The set a Defined Term designates (with or without code extensions).
fn set_of_term(term: &str) -> Option<Option<Set>> {
    let number = term
        .strip_prefix("ISO 2022 IR ")
        .or_else(|| term.strip_prefix("ISO_IR "))
        .or_else(|| term.strip_prefix("ISO_IR_"))?;
    set_of_number(number.trim())
}

/// The set of an ISO-IR number: `Some(None)` for the G0 sets, which leave G1 empty as value 1.
fn set_of_number(number: &str) -> Option<Option<Set>> {
    let set = match number {
        // G0 sets: as value 1 they leave G1 empty.
        "6" | "87" | "159" => None,
        "13" => Some(Set::Katakana),
        // ISO 8859-1 and -9 are windows-1252 and -1254 in 0xA0-0xFF (encoding_rs has no separate decoders).
        "100" => Some(Set::SingleByte(encoding_rs::WINDOWS_1252)),
        "101" => Some(Set::SingleByte(encoding_rs::ISO_8859_2)),
        "109" => Some(Set::SingleByte(encoding_rs::ISO_8859_3)),
        "110" => Some(Set::SingleByte(encoding_rs::ISO_8859_4)),
        "126" => Some(Set::SingleByte(encoding_rs::ISO_8859_7)),
        "127" => Some(Set::SingleByte(encoding_rs::ISO_8859_6)),
        "138" => Some(Set::SingleByte(encoding_rs::ISO_8859_8)),
        "144" => Some(Set::SingleByte(encoding_rs::ISO_8859_5)),
        "148" => Some(Set::SingleByte(encoding_rs::WINDOWS_1254)),
        "166" => Some(Set::SingleByte(encoding_rs::WINDOWS_874)),
        "203" => Some(Set::SingleByte(encoding_rs::ISO_8859_15)),
        "149" => Some(Set::KsX1001),
        "58" => Some(Set::Gb2312),
        _ => return None,
    };
    Some(set)
}

impl TextDecoding {
    /// The decoding for a Specific Character Set value (its values joined by `\`), and a warning text when part
    /// of it is not understood. `None`: nothing usable, keep the current decoding.
    pub(crate) fn from_specific_character_set(value: &str) -> (Option<Self>, Option<String>) {
        let terms: Vec<&str> = value.split('\\').map(str::trim).collect();
        let first = terms.first().copied().unwrap_or_default();
        let extended = terms.len() > 1 || first.starts_with("ISO 2022");
        if let Some(charset) = SpecificCharacterSet::from_code(first).filter(|_| !extended) {
            return (Some(TextDecoding::Plain(charset)), None);
        }
        // Sets that allow no code extensions: value 1 wins, as pydicom does.
        if let Some(charset) = ["ISO_IR 192", "GB18030", "GBK"]
            .contains(&first)
            .then(|| SpecificCharacterSet::from_code(first))
            .flatten()
        {
            return (
                Some(TextDecoding::Plain(charset)),
                Some(format!(
                    "{first} allows no code extensions, the other values are ignored"
                )),
            );
        }
        let initial_g1 = if first.is_empty() {
            Some(None)
        } else {
            set_of_term(first)
        };
        let Some(initial_g1) = initial_g1 else {
            return (None, Some(format!("unknown character set {first}")));
        };
        let unknown: Vec<&str> = terms
            .iter()
            .skip(1)
            .filter(|term| set_of_term(term).is_none())
            .copied()
            .collect();
        let warning =
            (!unknown.is_empty()).then(|| format!("unknown character sets {}", unknown.join(", ")));
        let decoding = TextDecoding::Iso2022 {
            initial_g1,
            code: value.into(),
        };
        (Some(decoding), warning)
    }

    /// The character set to give dicom-rs for values this module does not decode itself.
    pub(crate) fn dicom_rs(&self) -> SpecificCharacterSet {
        match self {
            TextDecoding::Plain(charset) => charset.clone(),
            TextDecoding::Iso2022 { .. } => SpecificCharacterSet::default(),
        }
    }

    /// The Specific Character Set value when text is decoded here (see [`TextDecoding::decode`]).
    pub(crate) fn iso2022_code(&self) -> Option<&str> {
        match self {
            TextDecoding::Plain(_) => None,
            TextDecoding::Iso2022 { code, .. } => Some(code),
        }
    }

    /// Decodes the bytes of a text value (all of its values, `\` included) with code extensions; `person_name`
    /// makes `^` and `=` reset the sets. Meant for [`TextDecoding::Iso2022`]: a plain decoding is read as ASCII.
    pub(crate) fn decode(&self, bytes: &[u8], person_name: bool) -> (String, Option<Problem>) {
        let initial_g1 = match self {
            TextDecoding::Iso2022 { initial_g1, .. } => *initial_g1,
            TextDecoding::Plain(_) => None,
        };
        let mut decoder = Iso2022Decoder {
            out: String::with_capacity(bytes.len()),
            problem: None,
            run: Vec::new(),
            run_set: Set::Ascii,
        };
        decoder.decode(bytes, initial_g1, person_name);
        (decoder.out, decoder.problem)
    }
}

/// The state of one decoding: output so far, and the bytes of the current run of non-ASCII characters (decoded
/// together, since `encoding_rs` decodes slices).
struct Iso2022Decoder {
    out: String,
    problem: Option<Problem>,
    run: Vec<u8>,
    run_set: Set,
}

impl Iso2022Decoder {
    fn report(&mut self, problem: Problem) {
        self.problem.get_or_insert(problem);
    }

    fn replacement(&mut self, problem: Problem) {
        self.flush();
        self.out.push(char::REPLACEMENT_CHARACTER);
        self.report(problem);
    }

    fn push_to_run(&mut self, set: Set, byte: u8) {
        if set != self.run_set {
            self.flush();
            self.run_set = set;
        }
        self.run.push(byte);
    }

    fn push_ascii(&mut self, byte: u8) {
        self.flush();
        self.out.push(char::from(byte));
    }

    fn decode(&mut self, bytes: &[u8], initial_g1: Option<Set>, person_name: bool) {
        let mut g0 = Set::Ascii;
        let mut g1 = initial_g1;
        let mut at = 0;
        while let Some(&byte) = bytes.get(at) {
            at += 1;
            match byte {
                ESC => {
                    let (consumed, designation) = parse_escape(bytes.get(at..).unwrap_or_default());
                    at += consumed;
                    match designation {
                        Ok(Designation::G0(set)) => g0 = set,
                        Ok(Designation::G1(set)) => g1 = Some(set),
                        Err(problem) => self.replacement(problem),
                    }
                }
                // Control characters end any switch (PS3.5 6.1.2.5.3).
                0x00..=0x1F => {
                    g0 = Set::Ascii;
                    g1 = initial_g1;
                    self.push_ascii(byte);
                }
                0x20..=0x7F if g0 == Set::Ascii || byte == b' ' || byte == 0x7F => {
                    if byte == b'\\' || (person_name && (byte == b'^' || byte == b'=')) {
                        g0 = Set::Ascii;
                        g1 = initial_g1;
                    }
                    self.push_ascii(byte);
                }
                0x20..=0x7F => self.push_to_run(g0, byte),
                0x80..=0xFF => match g1 {
                    Some(set) => self.push_to_run(set, byte),
                    None => self.replacement(Problem::NoSetForByte),
                },
            }
        }
        self.flush();
    }

    /// Decodes the pending run with its set's code page.
    fn flush(&mut self) {
        if self.run.is_empty() {
            return;
        }
        let run = std::mem::take(&mut self.run);
        let invalid = match self.run_set {
            Set::Ascii => {
                self.out.extend(run.iter().map(|&b| char::from(b)));
                false
            }
            // 7-bit JIS rows are EUC-JP with the high bits set; JIS X 0212 takes EUC-JP's 0x8F prefix.
            Set::JisX0208 => {
                let euc: Vec<u8> = run.iter().map(|b| b | 0x80).collect();
                self.decode_with(encoding_rs::EUC_JP, &euc)
            }
            Set::JisX0212 => {
                let mut euc = Vec::with_capacity(run.len() / 2 * 3 + 1);
                for pair in run.chunks(2) {
                    euc.push(0x8F);
                    euc.extend(pair.iter().map(|b| b | 0x80));
                }
                self.decode_with(encoding_rs::EUC_JP, &euc)
            }
            Set::Katakana => {
                let mut invalid = false;
                for &b in &run {
                    // Half-width katakana U+FF61-U+FF9F are JIS X 0201 0xA1-0xDF in order.
                    match b {
                        0xA1..=0xDF => self.out.push(
                            char::from_u32(0xFF61 + u32::from(b - 0xA1)).unwrap_or('\u{FFFD}'),
                        ),
                        _ => {
                            self.out.push(char::REPLACEMENT_CHARACTER);
                            invalid = true;
                        }
                    }
                }
                invalid
            }
            Set::SingleByte(encoding) => self.decode_with(encoding, &run),
            Set::KsX1001 => self.decode_with(encoding_rs::EUC_KR, &run),
            Set::Gb2312 => self.decode_with(encoding_rs::GBK, &run),
        };
        if invalid {
            self.report(Problem::InvalidCode);
        }
        self.run = run;
        self.run.clear();
    }

    /// Appends `bytes` decoded with `encoding` (malformed sequences become U+FFFD); true if there were any.
    fn decode_with(&mut self, encoding: &'static Encoding, bytes: &[u8]) -> bool {
        let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
        self.out.push_str(&text);
        had_errors
    }
}

enum Designation {
    G0(Set),
    G1(Set),
}

/// Reads the escape sequence after an ESC: intermediate bytes 0x20-0x2F, then a final byte 0x30-0x7E (ISO 2022).
/// Returns how many bytes it took (the whole sequence when well-formed, so that an unknown one is skipped whole;
/// only the intermediates when the final byte is missing).
fn parse_escape(after_esc: &[u8]) -> (usize, Result<Designation, Problem>) {
    let intermediates = after_esc
        .iter()
        .take_while(|b| (0x20..=0x2F).contains(*b))
        .count();
    let Some(&last) = after_esc.get(intermediates) else {
        return (intermediates, Err(Problem::IncompleteEscape));
    };
    if !(0x30..=0x7E).contains(&last) {
        return (intermediates, Err(Problem::IncompleteEscape));
    }
    let designation = match after_esc.get(..=intermediates).unwrap_or_default() {
        b"(B" | b"(J" => Designation::G0(Set::Ascii),
        b"$B" | b"$@" => Designation::G0(Set::JisX0208),
        b"$(D" => Designation::G0(Set::JisX0212),
        b")I" => Designation::G1(Set::Katakana),
        b"$)C" => Designation::G1(Set::KsX1001),
        b"$)A" => Designation::G1(Set::Gb2312),
        [b'-', final_byte] => {
            let term = match final_byte {
                b'A' => "100",
                b'B' => "101",
                b'C' => "109",
                b'D' => "110",
                b'F' => "126",
                b'G' => "127",
                b'H' => "138",
                b'L' => "144",
                b'M' => "148",
                b'T' => "166",
                b'b' => "203",
                _ => return (intermediates + 1, Err(Problem::UnknownEscape)),
            };
            match set_of_number(term) {
                Some(Some(set)) => Designation::G1(set),
                _ => return (intermediates + 1, Err(Problem::UnknownEscape)),
            }
        }
        _ => return (intermediates + 1, Err(Problem::UnknownEscape)),
    };
    (intermediates + 1, Ok(designation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoding(value: &str) -> TextDecoding {
        TextDecoding::from_specific_character_set(value)
            .0
            .expect("a known character set")
    }

    #[test]
    fn escape_sequences_switch_sets_and_delimiters_reset_them() {
        // PS3.5 H.3.1: "Yamada^Tarou=山田^太郎=やまだ^たろう" in ISO 2022 IR 87, exact bytes.
        let bytes =
            b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B";
        let (text, problem) = decoding("\\ISO 2022 IR 87").decode(bytes, true);
        assert_eq!(text, "Yamada^Tarou=山田^太郎=やまだ^たろう");
        assert_eq!(problem, None);
    }

    #[test]
    fn two_byte_g0_keeps_delimiter_bytes_as_halves_of_characters() {
        // ま is 0x24 0x5E in JIS X 0208: its second byte is '^' but is no delimiter.
        let (text, problem) = decoding("\\ISO 2022 IR 87").decode(b"\x1b$B$^\x1b(B", true);
        assert_eq!((text.as_str(), problem), ("ま", None));
    }

    #[test]
    fn unknown_and_broken_escapes_become_replacement_characters() {
        let decoder = decoding("\\ISO 2022 IR 87");
        assert_eq!(
            decoder.decode(b"A\x1b%GB", false),
            ("A\u{FFFD}B".to_string(), Some(Problem::UnknownEscape))
        );
        assert_eq!(
            decoder.decode(b"A\x1b$", false),
            ("A\u{FFFD}".to_string(), Some(Problem::IncompleteEscape))
        );
        assert_eq!(
            decoder.decode(b"\xe9", false),
            ("\u{FFFD}".to_string(), Some(Problem::NoSetForByte))
        );
        // An odd number of bytes in a two-byte set.
        let (text, problem) = decoder.decode(b"\x1b$B;3E\x1b(B", false);
        assert_eq!(
            (text.as_str(), problem),
            ("山\u{FFFD}", Some(Problem::InvalidCode))
        );
    }

    #[test]
    fn value_one_sets_the_initial_g1() {
        assert_eq!(
            decoding("ISO 2022 IR 100")
                .decode(b"Buc^J\xe9r\xf4me", true)
                .0,
            "Buc^Jérôme"
        );
        // Turkish is not in dicom-rs: decoded here even without code extensions.
        assert_eq!(decoding("ISO_IR 148").decode(b"\xdd\xfe", false).0, "İş");
    }

    #[test]
    fn unknown_values_are_reported() {
        let (decoding, warning) = TextDecoding::from_specific_character_set("ISO_IR 999");
        assert!(decoding.is_none());
        assert!(warning.is_some_and(|w| w.contains("ISO_IR 999")));
        let (decoding, warning) =
            TextDecoding::from_specific_character_set("\\ISO 2022 IR 87\\ISO 2022 IR 42");
        assert!(decoding.is_some());
        assert!(warning.is_some_and(|w| w.contains("ISO 2022 IR 42")));
    }
}
