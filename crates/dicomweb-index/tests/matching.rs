//! QIDO matching through the public API: every matcher at each level, person names, ranges,
//! empty and multiple value matching, sequence-style synthetic tags, paging, most recent wins.

use dicomweb_index::{
    Filter, Index, InstanceRecord, Level, Matcher, Scope, SearchHit, SearchQuery,
};
use time::macros::datetime;

const PATIENT_NAME: u32 = 0x0010_0010;
const PATIENT_ID: u32 = 0x0010_0020;
const STUDY_DATE: u32 = 0x0008_0020;
const STUDY_TIME: u32 = 0x0008_0030;
const MODALITY: u32 = 0x0008_0060;
const MODALITIES_IN_STUDY: u32 = 0x0008_0061;
const SERIES_DESCRIPTION: u32 = 0x0008_103E;
const INSTANCE_NUMBER: u32 = 0x0020_0013;
const STUDY_UID: u32 = 0x0020_000D;
/// Stands for RequestAttributesSequence.ScheduledProcedureStepID (the caller picks the tag).
const SCHEDULED_STEP_IN_REQUEST: u32 = 0xFFFF_0001;

fn instance(
    study: &str,
    series: &str,
    sop: &str,
    second: i64,
    attributes: &[(u32, &[&str])],
) -> InstanceRecord {
    InstanceRecord {
        study_instance_uid: study.into(),
        series_instance_uid: series.into(),
        sop_instance_uid: sop.into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.7".into(),
        transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
        blob_key: format!("blobs/{sop}"),
        size: 1,
        stored_at: datetime!(2024-05-01 12:00:00 UTC) + time::Duration::seconds(second),
        metadata: b"{}".to_vec(),
        pixel_layout: None,
        attributes: attributes
            .iter()
            .map(|(tag, values)| (*tag, values.iter().map(|v| v.to_string()).collect()))
            .collect(),
    }
}

/// Study 1 (John Doe, 2024-01-15 08:30, CT + MR, series 1.1 "Head" with a scheduled step),
/// study 2 (Jürgen Müller, 2023-12-31 23:59:59, CT), study 3 (no name, no date, US).
async fn fixture() -> Index {
    let index = Index::open_in_ram().unwrap();
    let john: &[(u32, &[&str])] = &[
        (PATIENT_NAME, &["Doe^John"]),
        (PATIENT_ID, &["ID1"]),
        (STUDY_DATE, &["20240115"]),
        (STUDY_TIME, &["083000"]),
    ];
    let mut ct = john.to_vec();
    ct.extend_from_slice(&[
        (MODALITY, &["CT"][..]),
        (SERIES_DESCRIPTION, &["Head"][..]),
        (SCHEDULED_STEP_IN_REQUEST, &["STEP-7", "STEP-8"][..]),
    ]);
    for (i, sop) in ["1.1.1", "1.1.2"].iter().enumerate() {
        let mut attributes = ct.clone();
        let number = (i + 1).to_string();
        attributes.push((INSTANCE_NUMBER, &[]));
        let mut record = instance("1", "1.1", sop, i as i64, &attributes);
        record.attributes.retain(|(t, _)| *t != INSTANCE_NUMBER);
        record.attributes.push((INSTANCE_NUMBER, vec![number]));
        index.insert(record).await.unwrap();
    }
    let mut mr = john.to_vec();
    mr.push((MODALITY, &["MR"][..]));
    index
        .insert(instance("1", "1.2", "1.2.1", 2, &mr))
        .await
        .unwrap();
    index
        .insert(instance(
            "2",
            "2.1",
            "2.1.1",
            3,
            &[
                (PATIENT_NAME, &["Müller^Jürgen=ミュラー^ユルゲン"]),
                (PATIENT_ID, &["id2"]),
                (STUDY_DATE, &["20231231"]),
                (STUDY_TIME, &["235959.5"]),
                (MODALITY, &["CT"]),
            ],
        ))
        .await
        .unwrap();
    index
        .insert(instance("3", "3.1", "3.1.1", 4, &[(MODALITY, &["US"])]))
        .await
        .unwrap();
    index
}

fn filter(level: Level, tag: u32, matcher: Matcher) -> Filter {
    Filter {
        level,
        tag,
        matcher,
        or_empty: false,
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

fn run(index: &Index, level: Level, filters: Vec<Filter>) -> Vec<SearchHit> {
    index
        .search(&SearchQuery {
            level,
            filters,
            offset: 0,
            limit: 100,
        })
        .unwrap()
}

/// UIDs of the hits: study, series or SOP depending on the level.
fn found(index: &Index, level: Level, filters: Vec<Filter>) -> Vec<String> {
    run(index, level, filters)
        .into_iter()
        .map(|h| match level {
            Level::Study => h.record.study_instance_uid,
            Level::Series => h.record.series_instance_uid,
            Level::Instance => h.record.sop_instance_uid,
        })
        .collect()
}

fn names(index: &Index, value: &str, fuzzy: bool) -> Vec<String> {
    let matcher = Matcher::PersonName {
        values: strings(&[value]),
        fuzzy,
    };
    found(
        index,
        Level::Study,
        vec![filter(Level::Study, PATIENT_NAME, matcher)],
    )
}

#[tokio::test]
async fn person_names_match_case_and_accent_insensitively_with_wildcards() {
    let index = fixture().await;
    assert_eq!(names(&index, "doe^john", false), ["1"]);
    assert_eq!(names(&index, "DOE^JOHN^^", false), ["1"]);
    assert_eq!(
        names(&index, "Doe", false),
        Vec::<String>::new(),
        "not a prefix"
    );
    assert_eq!(names(&index, "muller^jurgen", false), ["2"]);
    assert_eq!(
        names(&index, "ミュラー^ユルゲン", false),
        ["2"],
        "any component group"
    );
    assert_eq!(names(&index, "m?ller*", false), ["2"]);
    assert_eq!(names(&index, "*", false), ["1", "2"]);
    assert_eq!(names(&index, "*JOHN", false), ["1"]);
}

#[tokio::test]
async fn fuzzy_matching_is_a_prefix_of_any_name_part() {
    let index = fixture().await;
    for query in ["joh", "do", "jo do", "DO^JO", "jür"] {
        let expected: &[&str] = if query == "jür" { &["2"] } else { &["1"] };
        assert_eq!(names(&index, query, true), expected, "{query}");
    }
    assert!(names(&index, "ohn", true).is_empty());
    assert!(
        names(&index, "jo xy", true).is_empty(),
        "every word must match"
    );
}

#[tokio::test]
async fn wildcards_are_case_sensitive_and_escape_regex_syntax() {
    let index = fixture().await;
    let id = |value: &str| {
        found(
            &index,
            Level::Study,
            vec![filter(
                Level::Study,
                PATIENT_ID,
                Matcher::Wildcard(strings(&[value])),
            )],
        )
    };
    assert_eq!(id("ID*"), ["1"]);
    assert_eq!(id("?D?"), ["1"]);
    assert_eq!(id("id?"), ["2"]);
    assert_eq!(id("*"), ["1", "2"]);
    assert!(id("I.*").is_empty(), "'.' is literal");
    assert_eq!(id("ID1"), ["1"], "no wildcard: exact");
}

fn range(lower: Option<&str>, upper: Option<&str>) -> Matcher {
    Matcher::Range {
        lower: lower.map(str::to_owned),
        upper: upper.map(str::to_owned),
    }
}

#[tokio::test]
async fn date_and_time_ranges_have_open_ends() {
    let index = fixture().await;
    let dates = |m: Matcher| {
        found(
            &index,
            Level::Study,
            vec![filter(Level::Study, STUDY_DATE, m)],
        )
    };
    assert_eq!(dates(range(Some("20240101"), Some("20241231"))), ["1"]);
    assert_eq!(dates(range(Some("20231231"), None)), ["1", "2"]);
    assert_eq!(dates(range(None, Some("20231231"))), ["2"]);
    assert_eq!(dates(range(Some("20240115"), Some("20240115"))), ["1"]);
    assert!(dates(range(Some("20240116"), None)).is_empty());

    let key = |t: &str, upper: bool| dicomweb_index::time_key(t, upper).unwrap();
    let times = |lower: &str, upper: &str| {
        let m = range(Some(&key(lower, false)), Some(&key(upper, true)));
        found(
            &index,
            Level::Study,
            vec![filter(Level::Study, STUDY_TIME, m)],
        )
    };
    assert_eq!(times("08", "08"), ["1"], "an hour covers 08:30");
    assert_eq!(times("0831", "23"), ["2"]);
    assert_eq!(times("235959.5", "235959.5"), ["2"]);
}

#[tokio::test]
async fn upper_level_filters_select_lower_level_hits() {
    let index = fixture().await;
    let by_patient = filter(Level::Study, PATIENT_ID, Matcher::Exact(strings(&["ID1"])));
    assert_eq!(
        found(&index, Level::Instance, vec![by_patient.clone()]),
        ["1.1.1", "1.1.2", "1.2.1"]
    );
    assert_eq!(
        found(&index, Level::Series, vec![by_patient.clone()]),
        ["1.1", "1.2"]
    );
    let ct = filter(Level::Series, MODALITY, Matcher::Exact(strings(&["CT"])));
    assert_eq!(
        found(&index, Level::Instance, vec![by_patient, ct.clone()]),
        ["1.1.1", "1.1.2"]
    );
    assert_eq!(found(&index, Level::Series, vec![ct]), ["1.1", "2.1"]);
    let modalities = filter(
        Level::Study,
        MODALITIES_IN_STUDY,
        Matcher::Wildcard(strings(&["M?"])),
    );
    assert_eq!(found(&index, Level::Study, vec![modalities]), ["1"]);
    let number = filter(
        Level::Instance,
        INSTANCE_NUMBER,
        Matcher::Exact(strings(&["2"])),
    );
    assert_eq!(
        found(&index, Level::Instance, vec![number.clone()]),
        ["1.1.2"]
    );
    assert!(
        found(&index, Level::Study, vec![number]).is_empty(),
        "deeper than the level"
    );
    let study = filter(
        Level::Study,
        STUDY_UID,
        Matcher::Exact(strings(&["2", "3"])),
    );
    assert_eq!(found(&index, Level::Series, vec![study]), ["2.1", "3.1"]);
}

#[tokio::test]
async fn empty_value_matching_adds_entities_without_a_value() {
    let index = fixture().await;
    let mut by_name = filter(
        Level::Study,
        PATIENT_NAME,
        Matcher::PersonName {
            values: strings(&["doe*"]),
            fuzzy: false,
        },
    );
    assert_eq!(found(&index, Level::Study, vec![by_name.clone()]), ["1"]);
    by_name.or_empty = true;
    assert_eq!(found(&index, Level::Study, vec![by_name]), ["1", "3"]);
}

#[tokio::test]
async fn multiple_values_match_any() {
    let index = fixture().await;
    let ids = filter(
        Level::Study,
        PATIENT_ID,
        Matcher::Wildcard(strings(&["nope", "id*"])),
    );
    assert_eq!(found(&index, Level::Study, vec![ids]), ["2"]);
    let names = Matcher::PersonName {
        values: strings(&["doe^john", "müller*"]),
        fuzzy: false,
    };
    assert_eq!(
        found(
            &index,
            Level::Study,
            vec![filter(Level::Study, PATIENT_NAME, names)]
        ),
        ["1", "2"]
    );
}

#[tokio::test]
async fn sequence_item_values_match_under_their_own_tag() {
    let index = fixture().await;
    let step = |value: &str| {
        let m = Matcher::Wildcard(strings(&[value]));
        found(
            &index,
            Level::Series,
            vec![filter(Level::Series, SCHEDULED_STEP_IN_REQUEST, m)],
        )
    };
    assert_eq!(step("STEP-8"), ["1.1"]);
    assert_eq!(step("STEP-*"), ["1.1"]);
    assert!(step("STEP-9").is_empty());
}

#[tokio::test]
async fn paging_follows_the_uid_order_without_skips_or_repeats() {
    let index = Index::open_in_ram().unwrap();
    for i in 0..25 {
        // Inserted out of order; the UID order is what pages follow.
        let study = format!("9.{}", (i * 7) % 25);
        let record = instance(
            &study,
            &format!("{study}.1"),
            &format!("{study}.1.1"),
            i,
            &[],
        );
        index.insert(record).await.unwrap();
    }
    let all = found(&index, Level::Study, vec![]);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert_eq!(all.len(), 25);
    let mut paged = Vec::new();
    for offset in (0..25).step_by(4) {
        let page = index
            .search(&SearchQuery {
                level: Level::Study,
                filters: vec![],
                offset,
                limit: 4,
            })
            .unwrap();
        paged.extend(page.into_iter().map(|h| h.record.study_instance_uid));
    }
    assert_eq!(paged, all);
    let past = SearchQuery {
        level: Level::Study,
        filters: vec![],
        offset: 25,
        limit: 4,
    };
    assert!(index.search(&past).unwrap().is_empty());
}

#[tokio::test]
async fn the_most_recently_stored_instance_wins_for_matching_and_values() {
    let index = Index::open_in_ram().unwrap();
    let old = instance(
        "1",
        "1.1",
        "1.1.1",
        10,
        &[(PATIENT_ID, &["OLD"]), (MODALITY, &["CT"])],
    );
    // Stored later (by stored_at) although inserted first.
    let new = instance(
        "1",
        "1.2",
        "1.2.1",
        20,
        &[(PATIENT_ID, &["NEW"]), (MODALITY, &["MR"])],
    );
    index.insert(new).await.unwrap();
    index.insert(old).await.unwrap();
    let by_id = |id: &str, level: Level| {
        let f = filter(Level::Study, PATIENT_ID, Matcher::Exact(strings(&[id])));
        run(&index, level, vec![f])
    };
    assert!(by_id("OLD", Level::Study).is_empty());
    assert!(by_id("OLD", Level::Instance).is_empty());
    let hits = by_id("NEW", Level::Instance);
    assert_eq!(hits.len(), 2);
    assert!(
        hits.iter()
            .all(|h| h.study_record.sop_instance_uid == "1.2.1")
    );
    let study = by_id("NEW", Level::Study);
    assert_eq!(study[0].record.sop_instance_uid, "1.2.1");
    assert_eq!(study[0].modalities_in_study, ["CT", "MR"]);
    assert_eq!(
        (
            study[0].study_related_series,
            study[0].study_related_instances
        ),
        (2, 2)
    );

    // Deleting the latest makes the older one the study's values again.
    index
        .delete(Scope::Series("1".into(), "1.2".into()))
        .await
        .unwrap();
    assert!(by_id("NEW", Level::Study).is_empty());
    let study = by_id("OLD", Level::Study);
    assert_eq!(study[0].modalities_in_study, ["CT"]);
    assert_eq!(
        (
            study[0].study_related_series,
            study[0].study_related_instances
        ),
        (1, 1)
    );
    index.delete(Scope::Study("1".into())).await.unwrap();
    assert!(found(&index, Level::Study, vec![]).is_empty());
    assert!(found(&index, Level::Series, vec![]).is_empty());
}

#[tokio::test]
async fn concurrent_inserts_into_one_study_keep_its_summary_exact() {
    let index = Index::open_in_ram().unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let index = index.clone();
        tasks.push(tokio::spawn(async move {
            let series = format!("1.{}", i % 4);
            let record = instance(
                "1",
                &series,
                &format!("{series}.{i}"),
                i,
                &[(PATIENT_ID, &["P"])],
            );
            index.insert(record).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let hits = run(&index, Level::Study, vec![]);
    assert_eq!(
        (
            hits[0].study_related_series,
            hits[0].study_related_instances
        ),
        (4, 40)
    );
    assert_eq!(hits[0].record.sop_instance_uid, "1.3.39");
    let series = run(&index, Level::Series, vec![]);
    assert!(series.iter().all(|h| h.series_related_instances == 10));
}
