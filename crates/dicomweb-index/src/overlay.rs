//! The overlay: catalogue changes that the committed index does not reflect yet, laid over a
//! searcher, so that a search sees every acknowledged write without waiting for a tantivy commit.
//!
//! A commit costs milliseconds (a new segment, then merges); a search that arrives while clients
//! store would otherwise pay one for the writes since the last. Instead the changes after the
//! watermark are applied here, in memory, for one search: the final state of every instance
//! they touch (a record, or removed), and the summaries of the studies and series those
//! instances belong to, recomputed with the writer's own computation ([`crate::summaries`]) from
//! the committed rows minus the overridden instances plus the pending ones. The search then reads
//! the index without the documents the overlay overrides, matches the overlay's documents in
//! memory with the same predicates ([`crate::matching::TermPredicate`]), and merges both in the
//! one hit order. The answer equals what the index gives once the changes are committed.
//!
//! Replaying a change that the searcher already reflects is harmless: each change sets the final
//! state of the instance it names (added with its record, or removed), so the last change per
//! instance decides, whether or not earlier ones were committed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tantivy::Searcher;

use crate::matching::DocumentTerms;
use crate::read::{self, Summary};
use crate::schema::Fields;
use crate::search_copy::search_copy;
use crate::summaries::{Member, study_state};
use crate::types::{HitInstance, IndexError, InstanceRecord, TAG_MODALITIES_IN_STUDY};
use dicomweb_catalogue::IndexChange;

/// A study or series summary kept in memory, with the terms its summary document would carry.
pub(crate) struct SummaryView {
    pub summary: Summary,
    pub terms: DocumentTerms,
}

/// The summaries the overlay computed for one study, reusable by later searches: a study's state
/// after the log up to its last change is the same whichever part of that log the index has
/// committed, so the views stay right until a newer change touches the study.
#[derive(Clone)]
pub(crate) struct StudyViews {
    /// Sequence of the last change touching the study that the views reflect.
    as_of: u64,
    /// `series` holds the study's changed series (else it is empty).
    with_series: bool,
    study: Option<Arc<SummaryView>>,
    series: Vec<(String, Option<Arc<SummaryView>>)>,
}

/// The views of the studies of the last overlay built, by StudyInstanceUID.
pub(crate) type ViewCache = HashMap<String, StudyViews>;

/// Changes after the watermark, applied in memory over one searcher (borrowing the changes).
pub(crate) struct Overlay<'a> {
    /// Final state of every instance the changes name: its record and the sequence that added
    /// it, or `None` (removed). Committed documents of these instances are overridden.
    pub instances: HashMap<&'a str, Option<(&'a InstanceRecord, u64)>>,
    /// Every study a change touched: its summary now, `None` when no instance is left. Their
    /// committed study summaries are overridden.
    pub studies: BTreeMap<String, Option<Arc<SummaryView>>>,
    /// Series whose instances changed (only when built with series): summary now, or `None`.
    /// Their committed series summaries are overridden.
    pub series: HashMap<String, Option<Arc<SummaryView>>>,
    /// Whether `series` was computed (searches at the study level need no series summaries).
    pub has_series: bool,
}

impl<'a> Overlay<'a> {
    /// Applies `changes` (in sequence order) over `searcher`. With `with_series`, the summaries of
    /// changed series are computed too (series and instance searches need them). Views in `cache`
    /// that are still right are reused; afterwards it holds the views of this overlay's studies.
    pub(crate) fn build(
        searcher: &Searcher,
        f: &Fields,
        changes: impl IntoIterator<Item = &'a IndexChange>,
        with_series: bool,
        cache: &mut ViewCache,
    ) -> Result<Overlay<'a>, IndexError> {
        let mut instances: HashMap<&'a str, Option<(&'a InstanceRecord, u64)>> = HashMap::new();
        // Every touched study, with the sequence of the last change touching it.
        let mut touched: BTreeMap<&'a str, u64> = BTreeMap::new();
        for change in changes {
            match change {
                IndexChange::Insert { sequence, record } => {
                    touched.insert(&record.study_instance_uid, *sequence);
                    instances.insert(&record.sop_instance_uid, Some((record, *sequence)));
                }
                IndexChange::Remove {
                    sequence,
                    study_instance_uid,
                    sop_instance_uid,
                } => {
                    touched.insert(study_instance_uid, *sequence);
                    instances.insert(sop_instance_uid, None);
                }
            }
        }
        // The pending instances of each study, found once rather than once per study.
        let mut pending: HashMap<&str, Vec<(&InstanceRecord, u64)>> = HashMap::new();
        for (record, sequence) in instances.values().flatten() {
            pending
                .entry(record.study_instance_uid.as_str())
                .or_default()
                .push((record, *sequence));
        }
        let mut views = ViewCache::with_capacity(touched.len());
        for (study, as_of) in touched {
            let reusable = cache
                .get(study)
                .filter(|c| c.as_of == as_of && (c.with_series || !with_series));
            let study_views = match reusable {
                Some(cached) => cached.clone(),
                None => {
                    let pending = pending.get(study).map_or(&[][..], Vec::as_slice);
                    study_views(searcher, f, study, as_of, &instances, pending, with_series)?
                }
            };
            views.insert(study.to_owned(), study_views);
        }
        let mut studies = BTreeMap::new();
        let mut series = HashMap::new();
        for (study, study_views) in &views {
            studies.insert(study.clone(), study_views.study.clone());
            if with_series {
                series.extend(study_views.series.iter().cloned());
            }
        }
        *cache = views;
        Ok(Overlay {
            instances,
            studies,
            series,
            has_series: with_series,
        })
    }
}

/// The summaries of `study`: its committed instances minus those `instances` names, plus its
/// `pending` ones.
fn study_views(
    searcher: &Searcher,
    f: &Fields,
    study: &str,
    as_of: u64,
    instances: &HashMap<&str, Option<(&InstanceRecord, u64)>>,
    pending: &[(&InstanceRecord, u64)],
    with_series: bool,
) -> Result<StudyViews, IndexError> {
    let rows = read::study_instance_rows(searcher, f, study)?;
    let mut changed_series: BTreeSet<String> = BTreeSet::new();
    let mut members = Vec::with_capacity(rows.len());
    for row in rows {
        if instances.contains_key(row.sop.as_str()) {
            changed_series.insert(row.series.clone());
        } else {
            members.push(Member::Committed(row));
        }
    }
    for &(record, sequence) in pending {
        changed_series.insert(record.series_instance_uid.clone());
        members.push(Member::Pending(record, sequence));
    }
    let wanted = |uid: &str| with_series && changed_series.contains(uid);
    let mut views = StudyViews {
        as_of,
        with_series,
        study: None,
        series: Vec::new(),
    };
    let Some(state) = study_state(searcher, f, &members, wanted)? else {
        if with_series {
            views.series = changed_series.into_iter().map(|uid| (uid, None)).collect();
        }
        return Ok(views);
    };
    let mut terms = terms_of(&state.latest);
    terms.add(TAG_MODALITIES_IN_STUDY, &state.modalities);
    views.study = Some(Arc::new(SummaryView {
        summary: Summary {
            latest: hit_instance(&state.latest),
            instances: state.instances,
            series: state.series_count,
            latest_series_instances: state.latest_series_instances,
            modalities: state.modalities.clone(),
        },
        terms,
    }));
    if with_series {
        let mut series: HashMap<String, Option<Arc<SummaryView>>> =
            changed_series.into_iter().map(|uid| (uid, None)).collect();
        for summary in &state.series {
            let latest = summary.latest(&state);
            let view = SummaryView {
                terms: terms_of(latest),
                summary: Summary {
                    latest: hit_instance(latest),
                    instances: summary.instances,
                    series: 0,
                    latest_series_instances: 0,
                    modalities: Vec::new(),
                },
            };
            series.insert(summary.series.clone(), Some(Arc::new(view)));
        }
        views.series = series.into_iter().collect();
    }
    Ok(views)
}

/// The matching terms of an instance's attributes, as its documents carry them.
pub(crate) fn terms_of(record: &InstanceRecord) -> DocumentTerms {
    let mut terms = DocumentTerms::default();
    for (tag, values) in &record.attributes {
        terms.add(*tag, values);
    }
    terms
}

/// An instance as a hit, with the [`search_copy`] of its metadata (as its committed documents will
/// carry it).
pub(crate) fn hit_instance(record: &InstanceRecord) -> HitInstance {
    HitInstance {
        study_instance_uid: record.study_instance_uid.clone(),
        series_instance_uid: record.series_instance_uid.clone(),
        sop_instance_uid: record.sop_instance_uid.clone(),
        metadata: Arc::from(&*search_copy(&record.metadata)),
    }
}

#[cfg(test)]
mod tests {
    //! The overlay's one promise, checked on random histories: a search including changes not
    //! yet applied answers exactly what the index answers once they are applied; and replaying
    //! changes the index already reflects changes nothing.

    use proptest::prelude::*;

    use super::*;
    use crate::{Filter, Index, Level, Matcher, SearchQuery, date_key};
    use crate::{
        TAG_MODALITY, TAG_SERIES_INSTANCE_UID, TAG_SOP_INSTANCE_UID, TAG_STUDY_INSTANCE_UID,
    };

    const TAG_NAME: u32 = 0x0010_0010;
    const TAG_ID: u32 = 0x0010_0020;
    const TAG_DATE: u32 = 0x0008_0020;
    const TAG_DESCRIPTION: u32 = 0x0008_103E;

    const NAMES: [&str; 6] = [
        "Doe^John",
        "DOE^JANE",
        "Müller^Jürgen",
        "Yamada^Tarou=山田^太郎",
        "",
        "Smith",
    ];
    const IDS: [&str; 3] = ["A", "B", "AB"];
    const DATES: [&str; 5] = ["20240101", "20240215", "19991231", "2024", ""];
    const MODALITIES: [&str; 3] = ["CT", "MR", "OT"];
    const DESCRIPTIONS: [&str; 4] = ["", "Head", "head*", "a?b"];
    const SOPS: usize = 12;

    fn study_of(sop: usize) -> String {
        format!("1.{}", sop % 3)
    }
    fn series_of(sop: usize) -> String {
        format!("1.{}.{}", sop % 3, (sop / 3) % 2)
    }
    fn sop_uid(sop: usize) -> String {
        format!("1.{}.{}.{sop}", sop % 3, (sop / 3) % 2)
    }

    /// One write of a history: store (a new version of) instance `sop` with these value
    /// choices, or remove it.
    #[derive(Debug, Clone)]
    struct Write {
        remove: bool,
        sop: usize,
        values: [usize; 6],
    }

    fn write() -> impl Strategy<Value = Write> {
        (
            prop::bool::weighted(0.25),
            0..SOPS,
            prop::array::uniform6(0usize..6),
        )
            .prop_map(|(remove, sop, values)| Write {
                remove,
                sop,
                values,
            })
    }

    fn record(sop: usize, version: usize, values: [usize; 6]) -> InstanceRecord {
        let mut attributes = vec![
            (TAG_NAME, vec![NAMES[values[0] % NAMES.len()].to_owned()]),
            (TAG_ID, vec![IDS[values[1] % IDS.len()].to_owned()]),
            (TAG_DATE, vec![DATES[values[2] % DATES.len()].to_owned()]),
            (
                TAG_MODALITY,
                vec![MODALITIES[values[3] % MODALITIES.len()].to_owned()],
            ),
            (TAG_STUDY_INSTANCE_UID, vec![study_of(sop)]),
        ];
        let description = DESCRIPTIONS[values[4] % DESCRIPTIONS.len()];
        if !description.is_empty() {
            attributes.push((TAG_DESCRIPTION, vec![description.to_owned()]));
        }
        InstanceRecord {
            study_instance_uid: study_of(sop),
            series_instance_uid: series_of(sop),
            sop_instance_uid: sop_uid(sop),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.7".into(),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            blob_key: format!("blobs/{sop}/{version}"),
            size: 10,
            // Few distinct times: ties are broken by sequence.
            stored_at: time::macros::datetime!(2024-05-01 12:00:00 UTC)
                + time::Duration::seconds((values[5] % 3) as i64),
            metadata: format!("{{\"v\":\"{sop}-{version}\"}}").into_bytes(),
            pixel_layout: None,
            attributes,
        }
    }

    /// The catalogue's changes of a history: removes of absent instances are dropped, as the
    /// catalogue never logs them.
    fn changes(writes: &[Write]) -> Vec<IndexChange> {
        let mut present = [false; SOPS];
        let mut changes = Vec::new();
        for (version, w) in writes.iter().enumerate() {
            let sequence = changes.len() as u64 + 1;
            if w.remove {
                if present[w.sop] {
                    present[w.sop] = false;
                    changes.push(IndexChange::Remove {
                        sequence,
                        study_instance_uid: study_of(w.sop),
                        sop_instance_uid: sop_uid(w.sop),
                    });
                }
            } else {
                present[w.sop] = true;
                changes.push(IndexChange::Insert {
                    sequence,
                    record: record(w.sop, version, w.values),
                });
            }
        }
        changes
    }

    fn level() -> impl Strategy<Value = Level> {
        prop_oneof![
            Just(Level::Study),
            Just(Level::Series),
            Just(Level::Instance)
        ]
    }

    fn matcher(tag: u32) -> BoxedStrategy<Matcher> {
        let values: Vec<String> = match tag {
            TAG_NAME => NAMES.iter().map(|s| s.to_string()).collect(),
            TAG_ID => IDS.iter().map(|s| s.to_string()).collect(),
            TAG_DATE => DATES.iter().map(|s| s.to_string()).collect(),
            TAG_DESCRIPTION => DESCRIPTIONS.iter().map(|s| s.to_string()).collect(),
            _ => MODALITIES.iter().map(|s| s.to_string()).collect(),
        };
        let patterns = [
            "Do*", "*", "?T", "A*", "2024*", "*e*", "C?", "h?ad\\*", "*^J*",
        ];
        let names = [
            "doe", "DOE^J*", "jo do", "mül*", "山田*", "smith", "*", "tar",
        ];
        let keys = [
            None,
            date_key("20240101"),
            date_key("20240201"),
            date_key("19990101"),
            crate::time_key("12", false),
        ];
        let simple = prop_oneof![
            prop::sample::subsequence(values, 1..3).prop_map(Matcher::Exact),
            prop::sample::subsequence(patterns.map(String::from).to_vec(), 1..3)
                .prop_map(Matcher::Wildcard),
            (
                prop::sample::subsequence(names.map(String::from).to_vec(), 1..3),
                any::<bool>()
            )
                .prop_map(|(values, fuzzy)| Matcher::PersonName { values, fuzzy }),
            (
                prop::sample::select(keys.to_vec()),
                prop::sample::select(keys.to_vec())
            )
                .prop_map(|(lower, upper)| Matcher::Range { lower, upper }),
        ];
        prop_oneof![
            4 => simple.clone(),
            1 => prop::collection::vec(simple, 1..3).prop_map(Matcher::AnyOf),
        ]
        .boxed()
    }

    fn filter(search_level: Level) -> BoxedStrategy<Filter> {
        let attribute = (
            level(),
            prop::sample::select(vec![
                TAG_NAME,
                TAG_ID,
                TAG_DATE,
                TAG_MODALITY,
                TAG_DESCRIPTION,
            ]),
            any::<bool>(),
        )
            .prop_flat_map(|(level, tag, or_empty)| {
                matcher(tag).prop_map(move |matcher| Filter {
                    level,
                    tag,
                    matcher,
                    or_empty,
                })
            });
        let uids =
            (0..3usize, 0..SOPS, prop::bool::weighted(0.1)).prop_map(|(which, sop, or_empty)| {
                let (level, tag, uid) = match which {
                    0 => (Level::Study, TAG_STUDY_INSTANCE_UID, study_of(sop)),
                    1 => (Level::Series, TAG_SERIES_INSTANCE_UID, series_of(sop)),
                    _ => (Level::Instance, TAG_SOP_INSTANCE_UID, sop_uid(sop)),
                };
                Filter {
                    level,
                    tag,
                    matcher: Matcher::Exact(vec![uid]),
                    or_empty,
                }
            });
        prop_oneof![3 => attribute, 1 => uids]
            // Mostly filters a search can apply (deeper ones match nothing, on both sides).
            .prop_filter("deeper than the search, mostly", move |f| {
                f.level.depth() <= search_level.depth() || f.tag == TAG_DATE
            })
            .boxed()
    }

    fn query() -> impl Strategy<Value = SearchQuery> {
        level().prop_flat_map(|level| {
            (
                prop::collection::vec(filter(level), 0..3),
                0usize..4,
                prop_oneof![1usize..6, Just(100)],
            )
                .prop_map(move |(filters, offset, limit)| SearchQuery {
                    level,
                    filters,
                    offset,
                    limit,
                })
        })
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn a_search_including_unapplied_changes_answers_as_after_applying_them(
            writes in prop::collection::vec(write(), 1..40),
            split in 0.0f64..1.0,
            queries in prop::collection::vec(query(), 12),
        ) {
            let all = changes(&writes);
            let at = ((all.len() as f64) * split) as usize;
            let (applied, pending) = all.split_at(at);
            let index = Index::open_in_ram().expect("an index");
            let rt = runtime();
            // Two commits: the committed state spans segments.
            let half = applied.len() / 2;
            rt.block_on(index.apply(applied[..half].to_vec())).expect("applied");
            rt.block_on(index.apply(applied[half..].to_vec())).expect("applied");
            // Searches over the first part of the pending changes leave summaries behind that
            // the searches over all of them may reuse (those of studies no later change touches).
            let shorter = &pending[..pending.len() / 2];
            let overlaid: Vec<_> = queries
                .iter()
                .map(|q| {
                    index.search_including(q, shorter).expect("a search");
                    index.search_including(q, pending).expect("a search")
                })
                .collect();
            rt.block_on(index.apply(pending.to_vec())).expect("applied");
            for (query, before) in queries.iter().zip(overlaid) {
                let after = index.search(query).expect("a search");
                prop_assert_eq!(&before, &after, "query {:?}", query);
                // Replaying changes the searcher already reflects (a commit that landed while
                // the search started) changes nothing.
                let searcher = index.inner.reader.searcher();
                let overlay = Overlay::build(
                    &searcher,
                    &index.inner.fields,
                    pending,
                    query.level != Level::Study,
                    &mut ViewCache::new(),
                )
                .expect("an overlay");
                let replayed = read::search(&searcher, &index.inner.fields, query, Some(&overlay))
                    .expect("a search");
                prop_assert_eq!(&replayed, &after, "replayed, query {:?}", query);
            }
        }
    }

    #[test]
    fn wildcards_match_whole_values_and_not_line_feeds() {
        let matches = |pattern: &str, value: &str| {
            let pattern: Vec<char> = pattern.chars().collect();
            crate::matching::wildcard_matches_for_tests(&pattern, value)
        };
        assert!(matches("Do*", "Doe"));
        assert!(matches("*", ""));
        assert!(matches("?T", "CT"));
        assert!(!matches("?T", "CTX"));
        assert!(matches("*e*", "Head"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
        assert!(!matches("a*", "a\nb"));
        assert!(!matches("a?b", "a\nb"));
        assert!(matches("山?", "山田"));
    }
}
