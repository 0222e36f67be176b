//! Matching: the public filter types, the normalisations shared by indexing and querying, the
//! terms indexed for every attribute value and the tantivy query of every filter.
//!
//! Every value is indexed the same way whatever its VR (the index knows no DICOM dictionary):
//! raw in `attr`, folded in `pn`/`pn_part`, and in `range` when it parses as a DA, TM or DT
//! value (under each reading that parses; a range query only reads keys of its own kind).
//! The caller picks the [`Matcher`] that fits the attribute's VR, so a time-looking ID is never
//! range-matched unless the caller asks for it.

use std::collections::HashMap;
use std::ops::Bound;

use tantivy::TantivyDocument;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, Query, RangeQuery, RegexQuery, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{TantivyError, Term};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::schema::{Fields, attr_term_text, has_term_text};
use crate::types::{IndexError, Level};

/// How one attribute is matched (PS3.4 C.2.2.2). Values of one matcher are alternatives (ORed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// Single value / UID list matching: the attribute has one of these values, byte for byte.
    Exact(Vec<String>),
    /// Case-sensitive matching where `*` stands for any sequence of characters and `?` for
    /// any one character; values without them match exactly.
    Wildcard(Vec<String>),
    /// Person name matching, case- and accent-insensitive (see [`fold_person_name`]) against the
    /// whole name and each component group (alphabetic, ideographic, phonetic). `*`/`?` are
    /// wildcards. With `fuzzy`, a value without wildcards matches when each of its words is a
    /// prefix of some part of the name ("jo do" matches "Doe^John", "ohn" does not).
    PersonName {
        /// Alternatives.
        values: Vec<String>,
        /// PS3.18 fuzzymatching.
        fuzzy: bool,
    },
    /// Inclusive range of comparable keys built with [`date_key`], [`time_key`] or
    /// [`datetime_key`] (both bounds of one kind); `None` is an open end. Matches attributes
    /// with a value whose key of that kind lies within. A single date or time is the range from
    /// its lower to its upper key.
    Range {
        /// Lowest key matched.
        lower: Option<String>,
        /// Highest key matched.
        upper: Option<String>,
    },
    /// Any of these matchers (several range values of `multiplevaluematching`, say).
    AnyOf(Vec<Matcher>),
}

/// One condition of a search: the attribute `tag`, evaluated on the entity of `level`.
///
/// A study-level filter is evaluated on the study's summary (its most recently stored
/// instance), whatever the level of the search: a series or instance matches when its study
/// does. The UID tags of the hierarchy (0020000D, 0020000E, 00080018) are the exception: they
/// are evaluated directly on the hit, which always knows its own and its parents' UIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The level the attribute belongs to; must not be below the search's level (a filter
    /// deeper than the search level matches nothing).
    pub level: Level,
    /// The attribute (group in the high 16 bits).
    pub tag: u32,
    /// How to match it.
    pub matcher: Matcher,
    /// PS3.4 Empty Value Matching: an entity without a non-empty value of `tag` matches too.
    pub or_empty: bool,
}

/// Folds a person name for case- and accent-insensitive comparison: Unicode NFD, combining
/// marks removed, lower case, spaces around and trailing empty components trimmed
/// ("  Müller^Jürgen^^ " and "MULLER^JURGEN" fold alike).
pub fn fold_person_name(name: &str) -> String {
    let folded: String = name
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    folded
        .split('=')
        .map(|group| {
            group
                .split('^')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("^")
                .trim_end_matches('^')
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("=")
        .trim_end_matches('=')
        .to_owned()
}

/// The words of a folded name: separated by '^', '=', ',' or white space.
fn name_parts(folded: &str) -> impl Iterator<Item = &str> {
    folded
        .split(|c: char| c == '^' || c == '=' || c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
}

fn digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn number(text: &str) -> Option<u32> {
    if digits(text) {
        text.parse().ok()
    } else {
        None
    }
}

/// The comparable key of a DA value "YYYYMMDD" (month 01-12, day 01-31), `None` if malformed.
pub fn date_key(value: &str) -> Option<String> {
    let value = value.trim();
    if value.len() != 8 || !digits(value) {
        return None;
    }
    let month = number(value.get(4..6)?)?;
    let day = number(value.get(6..8)?)?;
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then(|| value.to_owned())
}

/// The comparable key "HHMMSS.FFFFFF" of a TM value "HH[MM[SS[.F{1,6}]]]", `None` if malformed.
/// Components the value omits are filled with their lowest value, or with their highest when
/// `upper` (so "12" as an upper bound covers everything up to 12:59:59.999999).
pub fn time_key(value: &str, upper: bool) -> Option<String> {
    let value = value.trim();
    let (whole, fraction) = match value.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (value, None),
    };
    if !digits(whole) || !matches!(whole.len(), 2 | 4 | 6) {
        return None;
    }
    if fraction.is_some() && whole.len() != 6 {
        return None;
    }
    let hours = number(whole.get(0..2)?)?;
    let minutes = whole
        .get(2..4)
        .map(number)
        .unwrap_or(Some(if upper { 59 } else { 0 }))?;
    let seconds = whole
        .get(4..6)
        .map(number)
        .unwrap_or(Some(if upper { 59 } else { 0 }))?;
    if hours > 23 || minutes > 59 || seconds > 60 {
        return None;
    }
    let fraction = match fraction {
        Some(f) if digits(f) && f.len() <= 6 => {
            let pad = if upper { '9' } else { '0' };
            let mut padded = f.to_owned();
            padded.extend(std::iter::repeat_n(pad, 6 - f.len()));
            padded
        }
        Some(_) => return None,
        None if upper => "999999".to_owned(),
        None => "000000".to_owned(),
    };
    Some(format!("{hours:02}{minutes:02}{seconds:02}.{fraction}"))
}

/// The comparable key "YYYYMMDDHHMMSS.FFFFFF" of a DT value
/// "YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX]", `None` if malformed. Omitted components are
/// filled as in [`time_key`] (lowest, or highest when `upper`; the highest day is 31 whatever
/// the month, which orders the same). A UTC offset suffix is accepted and ignored: values are
/// compared as written.
pub fn datetime_key(value: &str, upper: bool) -> Option<String> {
    let value = value.trim();
    let value = match value.len().checked_sub(5).and_then(|at| value.get(at..)) {
        Some(suffix)
            if value.len() > 5 && suffix.starts_with(['+', '-']) && digits(suffix.get(1..)?) =>
        {
            value.get(..value.len() - 5)?
        }
        _ => value,
    };
    let (whole, fraction) = match value.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (value, None),
    };
    if !digits(whole) || !matches!(whole.len(), 4 | 6 | 8 | 10 | 12 | 14) {
        return None;
    }
    if fraction.is_some() && whole.len() != 14 {
        return None;
    }
    // (position, lowest, highest, filled lower, filled upper)
    let components: [(usize, u32, u32, u32, u32); 5] = [
        (4, 1, 12, 1, 12),
        (6, 1, 31, 1, 31),
        (8, 0, 23, 0, 23),
        (10, 0, 59, 0, 59),
        (12, 0, 60, 0, 59),
    ];
    let mut key = whole.get(0..4)?.to_owned();
    for (at, lowest, highest, fill_lower, fill_upper) in components {
        let component = match whole.get(at..at + 2) {
            Some(text) => number(text)?,
            None if upper => fill_upper,
            None => fill_lower,
        };
        if component < lowest || component > highest {
            return None;
        }
        key.push_str(&format!("{component:02}"));
    }
    key.push('.');
    match fraction {
        Some(f) if digits(f) && f.len() <= 6 => {
            key.push_str(f);
            let pad = if upper { '9' } else { '0' };
            key.extend(std::iter::repeat_n(pad, 6 - f.len()));
        }
        Some(_) => return None,
        None if upper => key.push_str("999999"),
        None => key.push_str("000000"),
    }
    Some(key)
}

/// The kind of a range key, told by its shape: each kind's keys get their own term prefix in
/// the `range` field, so a range of one kind never reads another kind's keys of the same tag.
fn range_kind(key: &str) -> char {
    match key.len() {
        8 => 'D',
        13 => 'T',
        _ => 'X',
    }
}

fn range_term_text(tag: u32, key: &str) -> String {
    attr_term_text(tag, &format!("{}{key}", range_kind(key)))
}

/// The fields of the terms [`Matcher`]s read: each is `"GGGGEEEE=..."` text (`has`: `"GGGGEEEE"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TermField {
    /// Raw values (exact, wildcard).
    Attr,
    /// Folded person names, whole and per component group.
    Pn,
    /// Folded person name parts (fuzzy prefixes).
    PnPart,
    /// Comparable DA/TM/DT keys, one prefix letter per kind.
    Range,
    /// The tag of every attribute with a non-empty value.
    Has,
}

impl TermField {
    fn field(self, f: &Fields) -> Field {
        match self {
            TermField::Attr => f.attr,
            TermField::Pn => f.pn,
            TermField::PnPart => f.pn_part,
            TermField::Range => f.range,
            TermField::Has => f.has,
        }
    }
}

/// Every matching term of one attribute's values, in the order they are indexed. The one
/// definition of what is indexed: tantivy documents ([`add_terms`]) and the in-memory documents
/// of the overlay ([`DocumentTerms`]) both take their terms from here.
pub(crate) fn for_each_term(tag: u32, values: &[String], mut sink: impl FnMut(TermField, String)) {
    let mut any = false;
    for value in values {
        if value.is_empty() {
            continue;
        }
        any = true;
        sink(TermField::Attr, attr_term_text(tag, value));
        let folded = fold_person_name(value);
        sink(TermField::Pn, attr_term_text(tag, &folded));
        for group in folded.split('=').filter(|g| !g.is_empty()) {
            if group != folded {
                sink(TermField::Pn, attr_term_text(tag, group));
            }
        }
        for part in name_parts(&folded) {
            sink(TermField::PnPart, attr_term_text(tag, part));
        }
        let keys = [
            date_key(value),
            time_key(value, false),
            datetime_key(value, false),
        ];
        for key in keys.into_iter().flatten() {
            sink(TermField::Range, range_term_text(tag, &key));
        }
    }
    if any {
        sink(TermField::Has, has_term_text(tag));
    }
}

/// Adds the matching terms of one attribute's values to a document.
pub(crate) fn add_terms(doc: &mut TantivyDocument, f: &Fields, tag: u32, values: &[String]) {
    for_each_term(tag, values, |field, text| {
        doc.add_text(field.field(f), text)
    });
}

/// The matching terms of a document kept in memory (the overlay of changes not yet indexed).
#[derive(Debug, Clone, Default)]
pub(crate) struct DocumentTerms {
    terms: HashMap<TermField, Vec<String>>,
}

impl DocumentTerms {
    /// Adds the terms of one attribute's values, as [`add_terms`] indexes them.
    pub(crate) fn add(&mut self, tag: u32, values: &[String]) {
        for_each_term(tag, values, |field, text| {
            self.terms.entry(field).or_default().push(text);
        });
    }

    fn of(&self, field: TermField) -> &[String] {
        self.terms.get(&field).map_or(&[], Vec::as_slice)
    }
}

/// What a [`Matcher`] asks of a document's terms: built once per filter, then either turned
/// into a tantivy query ([`TermPredicate::query`]) or evaluated on a [`DocumentTerms`]
/// ([`TermPredicate::matches`]), so the index and the overlay cannot disagree on semantics.
#[derive(Debug, Clone)]
pub(crate) enum TermPredicate {
    /// The document has one of these terms.
    AnyTerm(TermField, Vec<String>),
    /// The document has a term `"GGGGEEEE=value"` of `tag` whose value matches `pattern` whole,
    /// where `*` stands for any characters and `?` for one (neither matching a line feed, as in
    /// the regex tantivy runs).
    Wildcard {
        /// Field searched.
        field: TermField,
        /// Tag whose terms are searched.
        tag: u32,
        /// Pattern of the value.
        pattern: String,
    },
    /// The document has a term within these bounds (byte order, as tantivy orders terms).
    Range(TermField, Bound<String>, Bound<String>),
    /// Any of these (none: nothing matches).
    Any(Vec<TermPredicate>),
    /// All of these.
    All(Vec<TermPredicate>),
    /// The document has no `has` term of this tag (no non-empty value).
    Lacks(u32),
}

impl TermPredicate {
    /// The predicate of one matcher on attribute `tag` (without the UID special cases).
    fn of_matcher(tag: u32, matcher: &Matcher) -> TermPredicate {
        match matcher {
            Matcher::Exact(values) => TermPredicate::AnyTerm(
                TermField::Attr,
                values.iter().map(|v| attr_term_text(tag, v)).collect(),
            ),
            Matcher::Wildcard(values) => TermPredicate::Any(
                values
                    .iter()
                    .map(|value| {
                        if has_wildcard(value) {
                            TermPredicate::Wildcard {
                                field: TermField::Attr,
                                tag,
                                pattern: value.clone(),
                            }
                        } else {
                            TermPredicate::AnyTerm(
                                TermField::Attr,
                                vec![attr_term_text(tag, value)],
                            )
                        }
                    })
                    .collect(),
            ),
            Matcher::PersonName { values, fuzzy } => {
                let mut alternatives = Vec::new();
                for value in values {
                    let folded = fold_person_name(value);
                    if has_wildcard(&folded) {
                        alternatives.push(TermPredicate::Wildcard {
                            field: TermField::Pn,
                            tag,
                            pattern: folded,
                        });
                    } else if *fuzzy {
                        let words: Vec<TermPredicate> = name_parts(&folded)
                            .map(|word| TermPredicate::Wildcard {
                                field: TermField::PnPart,
                                tag,
                                pattern: prefix_pattern(word),
                            })
                            .collect();
                        if !words.is_empty() {
                            alternatives.push(TermPredicate::All(words));
                        }
                    } else {
                        alternatives.push(TermPredicate::AnyTerm(
                            TermField::Pn,
                            vec![attr_term_text(tag, &folded)],
                        ));
                    }
                }
                TermPredicate::Any(alternatives)
            }
            Matcher::Range { lower, upper } => {
                let Some(kind) = lower.as_deref().or(upper.as_deref()).map(range_kind) else {
                    return TermPredicate::Any(Vec::new());
                };
                if upper.as_deref().is_some_and(|u| range_kind(u) != kind) {
                    return TermPredicate::Any(Vec::new());
                }
                let lower = match lower {
                    Some(key) => Bound::Included(range_term_text(tag, key)),
                    None => Bound::Included(attr_term_text(tag, &kind.to_string())),
                };
                let upper = match upper {
                    Some(key) => Bound::Included(range_term_text(tag, key)),
                    // The next kind letter: just past every key of this kind.
                    None => {
                        let next = char::from_u32(u32::from(kind) + 1).unwrap_or(kind);
                        Bound::Excluded(attr_term_text(tag, &next.to_string()))
                    }
                };
                TermPredicate::Range(TermField::Range, lower, upper)
            }
            Matcher::AnyOf(matchers) => TermPredicate::Any(
                matchers
                    .iter()
                    .map(|m| TermPredicate::of_matcher(tag, m))
                    .collect(),
            ),
        }
    }

    /// The predicate of a filter on the documents it applies to, with empty value matching.
    pub(crate) fn of_filter(filter: &Filter) -> TermPredicate {
        let predicate = TermPredicate::of_matcher(filter.tag, &filter.matcher);
        if filter.or_empty {
            TermPredicate::Any(vec![predicate, TermPredicate::Lacks(filter.tag)])
        } else {
            predicate
        }
    }

    /// The tantivy query of this predicate.
    pub(crate) fn query(&self, f: &Fields) -> Result<Box<dyn Query>, IndexError> {
        Ok(match self {
            TermPredicate::AnyTerm(field, texts) => any_term(field.field(f), texts),
            TermPredicate::Wildcard {
                field,
                tag,
                pattern,
            } => regex_query(field.field(f), *tag, pattern)?,
            TermPredicate::Range(field, lower, upper) => {
                let bound = |b: &Bound<String>| match b {
                    Bound::Included(text) => Bound::Included(term(field.field(f), text)),
                    Bound::Excluded(text) => Bound::Excluded(term(field.field(f), text)),
                    Bound::Unbounded => Bound::Unbounded,
                };
                Box::new(RangeQuery::new(bound(lower), bound(upper)))
            }
            TermPredicate::Any(alternatives) => any_of(
                alternatives
                    .iter()
                    .map(|p| p.query(f))
                    .collect::<Result<_, _>>()?,
            ),
            TermPredicate::All(parts) => Box::new(BooleanQuery::new(
                parts
                    .iter()
                    .map(|p| Ok((Occur::Must, p.query(f)?)))
                    .collect::<Result<_, IndexError>>()?,
            )),
            TermPredicate::Lacks(tag) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
                (Occur::MustNot, term_query(f.has, &has_term_text(*tag))),
            ])),
        })
    }

    /// Does a document with these terms match?
    pub(crate) fn matches(&self, doc: &DocumentTerms) -> bool {
        match self {
            TermPredicate::AnyTerm(field, texts) => {
                let terms = doc.of(*field);
                texts.iter().any(|text| terms.contains(text))
            }
            TermPredicate::Wildcard {
                field,
                tag,
                pattern,
            } => {
                let prefix = has_term_text(*tag) + "=";
                let pattern: Vec<char> = pattern.chars().collect();
                doc.of(*field).iter().any(|text| {
                    text.strip_prefix(&prefix)
                        .is_some_and(|value| wildcard_matches(&pattern, value))
                })
            }
            TermPredicate::Range(field, lower, upper) => doc.of(*field).iter().any(|text| {
                let text = text.as_str();
                let above = match lower {
                    Bound::Included(l) => text >= l.as_str(),
                    Bound::Excluded(l) => text > l.as_str(),
                    Bound::Unbounded => true,
                };
                let below = match upper {
                    Bound::Included(u) => text <= u.as_str(),
                    Bound::Excluded(u) => text < u.as_str(),
                    Bound::Unbounded => true,
                };
                above && below
            }),
            TermPredicate::Any(alternatives) => alternatives.iter().any(|p| p.matches(doc)),
            TermPredicate::All(parts) => parts.iter().all(|p| p.matches(doc)),
            TermPredicate::Lacks(tag) => !doc.of(TermField::Has).contains(&has_term_text(*tag)),
        }
    }
}

/// A fuzzy word as a prefix pattern: the word (which has no wildcard: fuzzy matching only
/// applies to values without) followed by `*`.
fn prefix_pattern(word: &str) -> String {
    format!("{word}*")
}

/// Does `value` match `pattern` whole (`*` any run of characters, `?` one character; neither
/// matches '\n', like `.` in the regex tantivy runs for the index)? Greedy with backtracking to
/// the last `*`: O(pattern x value) at worst, no recursion.
fn wildcard_matches(pattern: &[char], value: &str) -> bool {
    let value: Vec<char> = value.chars().collect();
    let (mut p, mut v) = (0, 0);
    // Position of the last `*` seen and of the value character it is trying to absorb.
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, v));
                p += 1;
            }
            Some('?') if value[v] != '\n' => {
                p += 1;
                v += 1;
            }
            Some(&c) if c != '*' && c != '?' && c == value[v] => {
                p += 1;
                v += 1;
            }
            _ => match star {
                // Let the last `*` absorb one more character, unless that is a line feed.
                Some((star_p, star_v)) if value[star_v] != '\n' => {
                    star = Some((star_p, star_v + 1));
                    p = star_p + 1;
                    v = star_v + 1;
                }
                _ => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
pub(crate) fn wildcard_matches_for_tests(pattern: &[char], value: &str) -> bool {
    wildcard_matches(pattern, value)
}

/// Up to this many terms, a term set is matched as alternatives of term queries.
const SMALL_TERM_SET: usize = 32;

/// Documents with any of these terms of `field`. A small set is a disjunction of term queries:
/// tantivy's `TermSetQuery` builds an FST for its terms on every use, whose builder allocates
/// and clears a fixed registry of ~10,000 cells first (about 0.1 ms, more than the whole search
/// of a few terms); large sets are worth it.
pub(crate) fn any_term(
    field: Field,
    texts: impl IntoIterator<Item = impl AsRef<str>>,
) -> Box<dyn Query> {
    let mut terms: Vec<Term> = texts
        .into_iter()
        .map(|text| term(field, text.as_ref()))
        .collect();
    match terms.len() {
        1 => Box::new(TermQuery::new(terms.remove(0), IndexRecordOption::Basic)),
        n if n > SMALL_TERM_SET => Box::new(TermSetQuery::new(terms)),
        _ => any_of(
            terms
                .into_iter()
                .map(|t| Box::new(TermQuery::new(t, IndexRecordOption::Basic)) as Box<dyn Query>)
                .collect(),
        ),
    }
}

fn term(field: Field, text: &str) -> Term {
    Term::from_field_text(field, text)
}

fn term_query(field: Field, text: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(term(field, text), IndexRecordOption::Basic))
}

fn any_of(queries: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    if queries.is_empty() {
        return Box::new(EmptyQuery);
    }
    Box::new(BooleanQuery::new(
        queries.into_iter().map(|q| (Occur::Should, q)).collect(),
    ))
}

/// A regex matching the terms of `tag` whose value matches the wildcard `pattern`.
fn wildcard_regex(tag: u32, pattern: &str) -> String {
    let mut regex = format!("{tag:08X}=");
    for c in pattern.chars() {
        match c {
            '*' => regex.push_str(".*"),
            '?' => regex.push('.'),
            c if "\\.+()|[]{}^$#&-~\"<>@".contains(c) => {
                regex.push('\\');
                regex.push(c);
            }
            c => regex.push(c),
        }
    }
    regex
}

/// The regex query of the wildcard `pattern` on the terms of `tag`. tantivy refuses a regex whose
/// automaton exceeds its size limit (many wildcards, or a long value): that is the query's fault,
/// reported as [`IndexError::QueryTooComplex`] without the term format the regex is written in.
fn regex_query(field: Field, tag: u32, pattern: &str) -> Result<Box<dyn Query>, IndexError> {
    let regex = wildcard_regex(tag, pattern);
    let query = RegexQuery::from_pattern(&regex, field).map_err(|e| match e {
        TantivyError::InvalidArgument(message) => IndexError::QueryTooComplex {
            tag,
            pattern: pattern.to_owned(),
            reason: regex_failure(&message),
        },
        other => IndexError::Tantivy(other),
    })?;
    Ok(Box::new(query))
}

/// The reason of a regex that could not be built, in a client's terms: its size, or else a
/// generic phrase (tantivy's other messages quote the regex, whose term format is internal).
fn regex_failure(message: &str) -> String {
    if message.contains("size limit") {
        "its wildcard automaton is over the search engine's size limit; use fewer wildcards or a \
         shorter value"
            .to_owned()
    } else {
        "the search engine cannot compile it".to_owned()
    }
}

fn has_wildcard(value: &str) -> bool {
    value.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_case_accents_and_trailing_components() {
        assert_eq!(fold_person_name("Müller^Jürgen^^"), "muller^jurgen");
        assert_eq!(fold_person_name(" DOE ^ John "), "doe^john");
        assert_eq!(
            fold_person_name("Yamada^Tarou=山田^太郎="),
            "yamada^tarou=山田^太郎"
        );
    }

    #[test]
    fn time_keys_pad_by_bound() {
        assert_eq!(time_key("12", false).as_deref(), Some("120000.000000"));
        assert_eq!(time_key("12", true).as_deref(), Some("125959.999999"));
        assert_eq!(time_key("1230", true).as_deref(), Some("123059.999999"));
        assert_eq!(
            time_key("123045.5", false).as_deref(),
            Some("123045.500000")
        );
        assert_eq!(time_key("123045.5", true).as_deref(), Some("123045.599999"));
        for bad in [
            "",
            "1",
            "123",
            "2400",
            "1260",
            "12.5",
            "12304a",
            "123045.1234567",
        ] {
            assert_eq!(time_key(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn datetime_keys_pad_by_bound_and_ignore_offsets() {
        assert_eq!(
            datetime_key("2024", false).as_deref(),
            Some("20240101000000.000000")
        );
        assert_eq!(
            datetime_key("2024", true).as_deref(),
            Some("20241231235959.999999")
        );
        assert_eq!(
            datetime_key("202402151230", true).as_deref(),
            Some("20240215123059.999999")
        );
        assert_eq!(
            datetime_key("20240215123045.25+0100", false).as_deref(),
            Some("20240215123045.250000")
        );
        assert_eq!(
            datetime_key("20240215-0500", false).as_deref(),
            Some("20240215000000.000000")
        );
        for bad in [
            "",
            "202",
            "20241",
            "20241301",
            "2024013200",
            "2024.5",
            "2024021512304a",
        ] {
            assert_eq!(datetime_key(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn range_keys_of_each_kind_get_their_own_prefix() {
        assert_eq!(range_kind("20240131"), 'D');
        assert_eq!(range_kind("120000.000000"), 'T');
        assert_eq!(range_kind("20240131120000.000000"), 'X');
    }

    #[test]
    fn date_keys_need_eight_valid_digits() {
        assert_eq!(date_key("20240131").as_deref(), Some("20240131"));
        for bad in ["2024013", "20241301", "20240100", "2024-01-01", "abcdefgh"] {
            assert_eq!(date_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn wildcards_escape_regex_syntax() {
        assert_eq!(wildcard_regex(0x0010_0020, "a.b*c?"), "00100020=a\\.b.*c.");
    }
}
