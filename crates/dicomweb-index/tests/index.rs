//! Behaviour of the search index (its own log positions, replay of the catalogue's log, search),
//! through the public API only.

use std::collections::HashSet;

use dicomweb_index::{
    Filter, Index, IndexChange, IndexError, InstanceRecord, Level, Matcher, Scope, SearchQuery,
};
use time::macros::datetime;

const PATIENT_ID: u32 = 0x0010_0020;
const MODALITY: u32 = 0x0008_0060;
const INSTANCE_NUMBER: u32 = 0x0020_0013;
const STUDY_UID: u32 = 0x0020_000D;
const SERIES_UID: u32 = 0x0020_000E;
const MODALITIES_IN_STUDY: u32 = 0x0008_0061;

/// An instance stored `second` seconds after a fixed instant, with a patient ID and modality.
fn record(study: &str, series: &str, sop: &str, second: i64) -> InstanceRecord {
    InstanceRecord {
        study_instance_uid: study.into(),
        series_instance_uid: series.into(),
        sop_instance_uid: sop.into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.7".into(),
        transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
        blob_key: format!("blobs/{sop}"),
        size: 1000 + second as u64,
        stored_at: datetime!(2024-05-01 12:00:00 UTC) + time::Duration::seconds(second),
        metadata: format!(r#"{{"00080018":{{"vr":"UI","Value":["{sop}"]}}}}"#).into_bytes(),
        pixel_layout: Some(format!("layout of {sop}")),
        attributes: vec![
            (PATIENT_ID, vec!["P1".into()]),
            (MODALITY, vec!["CT".into()]),
        ],
    }
}

fn with_attribute(mut record: InstanceRecord, tag: u32, values: &[&str]) -> InstanceRecord {
    record.attributes.retain(|(t, _)| *t != tag);
    record
        .attributes
        .push((tag, values.iter().map(|v| v.to_string()).collect()));
    record
}

fn sops(records: &[InstanceRecord]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r.sop_instance_uid.as_str())
        .collect()
}

/// The level of the attributes these tests use.
fn level_of(tag: u32) -> Level {
    match tag {
        PATIENT_ID | STUDY_UID | MODALITIES_IN_STUDY => Level::Study,
        MODALITY | SERIES_UID => Level::Series,
        _ => Level::Instance,
    }
}

/// Exact-match search (values ORed, filters ANDed).
fn search(
    index: &Index,
    level: Level,
    filters: &[(u32, &[&str])],
) -> Vec<dicomweb_index::SearchHit> {
    index
        .search(&SearchQuery {
            level,
            filters: filters
                .iter()
                .map(|(tag, values)| Filter {
                    level: level_of(*tag),
                    tag: *tag,
                    matcher: Matcher::Exact(values.iter().map(|v| v.to_string()).collect()),
                    or_empty: false,
                })
                .collect(),
            offset: 0,
            limit: 100,
        })
        .unwrap()
}

#[tokio::test]
async fn an_inserted_record_reads_back_identically() {
    let index = Index::open_in_ram().unwrap();
    let stored = record("1", "1.1", "1.1.1", 0);
    assert_eq!(index.insert(stored.clone()).await.unwrap(), 1);

    assert_eq!(index.instance("1", "1.1", "1.1.1").unwrap(), Some(stored));
    assert!(index.contains_sop("1.1.1").unwrap());
    assert!(!index.contains_sop("1.1.2").unwrap());
    // The path must match completely.
    assert_eq!(index.instance("1", "9.9", "1.1.1").unwrap(), None);
    assert_eq!(index.instance_count().unwrap(), 1);
}

/// An instance's metadata past [`dicomweb_index::SEARCH_COPY_BYTES`] is kept, and returned by
/// searches and reads, as its search copy: its small standard attributes.
#[tokio::test]
async fn hits_and_records_of_an_instance_with_large_metadata_carry_its_search_copy() {
    let index = Index::open_in_ram().unwrap();
    let name = r#""00100010":{"vr":"PN","Value":[{"Alphabetic":"Doe^John"}]}"#;
    let study = r#""0020000D":{"vr":"UI","Value":["1.9"]}"#;
    let large_value = format!(
        r#""00204000":{{"vr":"LT","Value":["{}"]}}"#,
        "x".repeat(1 << 20)
    );
    let private = r#""00091010":{"vr":"LO","Value":["private"]}"#;
    let mut large = record("1.9", "1.9.1", "1.9.1.1", 0);
    large.metadata = format!("{{{name},{large_value},{private},{study}}}").into_bytes();
    assert!(large.metadata.len() > 1 << 20);
    let copy = format!("{{{name},{study}}}").into_bytes();
    assert_eq!(&*dicomweb_index::search_copy(&large.metadata), &copy[..]);

    let change = IndexChange::Insert {
        sequence: 1,
        record: large.clone(),
    };
    let query = |level| SearchQuery {
        level,
        filters: Vec::new(),
        offset: 0,
        limit: 10,
    };
    let check = |hits: Vec<dicomweb_index::SearchHit>, when: &str| {
        assert_eq!(hits.len(), 1, "{when}");
        for instance in [
            &hits[0].record,
            &hits[0].series_record,
            &hits[0].study_record,
        ] {
            assert_eq!(instance.sop_instance_uid, "1.9.1.1", "{when}");
            assert_eq!(
                String::from_utf8_lossy(&instance.metadata),
                String::from_utf8_lossy(&copy),
                "{when}"
            );
        }
    };
    for level in [Level::Study, Level::Series, Level::Instance] {
        // Not yet committed: the hit comes from the changes laid over the index.
        let hits = index
            .search_including(&query(level), std::slice::from_ref(&change))
            .unwrap();
        check(hits, &format!("{level:?}, before the commit"));
    }
    index.apply(vec![change]).await.unwrap();
    for level in [Level::Study, Level::Series, Level::Instance] {
        check(
            index.search(&query(level)).unwrap(),
            &format!("{level:?}, after the commit"),
        );
    }
    let kept = InstanceRecord {
        metadata: copy.clone(),
        ..large
    };
    assert_eq!(
        index.instance("1.9", "1.9.1", "1.9.1.1").unwrap(),
        Some(kept.clone())
    );
    assert_eq!(
        index.delete(Scope::Study("1.9".into())).await.unwrap(),
        [kept]
    );
}

#[tokio::test]
async fn stored_at_is_kept_in_utc_at_microsecond_precision() {
    let index = Index::open_in_ram().unwrap();
    let mut stored = record("1", "1.1", "1.1.1", 0);
    stored.stored_at = datetime!(2024-05-01 14:00:00.123456789 +02:00);
    index.insert(stored).await.unwrap();

    let read = index.instance("1", "1.1", "1.1.1").unwrap().unwrap();
    assert_eq!(read.stored_at, datetime!(2024-05-01 12:00:00.123456 UTC));
    assert_eq!(read.stored_at.offset(), time::UtcOffset::UTC);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_get_gap_free_sequences_and_share_commits() {
    let index = Index::open_in_ram().unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let index = index.clone();
            tokio::spawn(async move {
                index
                    .insert(record("1", &format!("1.{}", i % 3), &format!("1.1.{i}"), i))
                    .await
            })
        })
        .collect();
    let mut sequences = Vec::new();
    for task in tasks {
        sequences.push(task.await.unwrap().unwrap());
    }
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=200).collect::<Vec<u64>>());

    let stats = index.stats();
    assert_eq!(stats.last_sequence, 200);
    assert_eq!(stats.requests, 200);
    assert!(
        stats.commits * 4 <= 200,
        "group commit should batch concurrent inserts, got {} commits",
        stats.commits
    );
    assert_eq!(index.applied_sequence(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_inserts_of_one_sop_exactly_one_wins() {
    for round in 0..20 {
        let index = Index::open_in_ram().unwrap();
        let sop = format!("1.1.{round}");
        let (a, b) = tokio::join!(
            biased; // requests are sent in this order
            index.insert(record("1", "1.1", &sop, 0)),
            index.insert(record("2", "2.1", &sop, 1)),
        );
        let outcomes = [a, b];
        assert_eq!(outcomes.iter().filter(|r| r.is_ok()).count(), 1);
        assert!(outcomes.iter().any(|r| matches!(
            r,
            Err(IndexError::AlreadyExists { sop_instance_uid }) if *sop_instance_uid == sop
        )));
        assert_eq!(index.applied_sequence(), 1, "a refused insert is no change");
    }
}

#[tokio::test]
async fn an_already_catalogued_sop_is_refused_even_in_another_study() {
    let index = Index::open_in_ram().unwrap();
    index.insert(record("1", "1.1", "X", 0)).await.unwrap();
    let refused = index.insert(record("2", "2.1", "X", 1)).await;
    assert!(matches!(refused, Err(IndexError::AlreadyExists { .. })));
    // The refused insert consumed no sequence number.
    assert_eq!(index.insert(record("1", "1.1", "Y", 2)).await.unwrap(), 2);
}

async fn two_studies(index: &Index) {
    for (study, series, sop, second) in [
        ("1", "1.1", "1.1.1", 0),
        ("1", "1.1", "1.1.2", 1),
        ("1", "1.2", "1.2.1", 2),
        ("2", "2.1", "2.1.1", 3),
    ] {
        index
            .insert(record(study, series, sop, second))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn deleting_an_instance_removes_only_it_as_one_change() {
    let index = Index::open_in_ram().unwrap();
    two_studies(&index).await;

    let removed = index
        .delete(Scope::Instance("1".into(), "1.1".into(), "1.1.2".into()))
        .await
        .unwrap();
    assert_eq!(removed, vec![record("1", "1.1", "1.1.2", 1)]);
    assert_eq!(
        sops(&index.instances(&Scope::Study("1".into())).unwrap()),
        ["1.1.1", "1.2.1"]
    );
    assert_eq!(index.applied_sequence(), 5);
}

#[tokio::test]
async fn deleting_a_series_removes_its_instances_only() {
    let index = Index::open_in_ram().unwrap();
    two_studies(&index).await;

    let removed = index
        .delete(Scope::Series("1".into(), "1.1".into()))
        .await
        .unwrap();
    assert_eq!(sops(&removed), ["1.1.1", "1.1.2"]);
    assert_eq!(
        sops(&index.instances(&Scope::Study("1".into())).unwrap()),
        ["1.2.1"]
    );
    assert_eq!(index.instance_count().unwrap(), 2);
    assert_eq!(
        index.applied_sequence(),
        6,
        "one change per removed instance"
    );
}

#[tokio::test]
async fn deleting_a_study_removes_all_its_instances_in_one_commit() {
    let index = Index::open_in_ram().unwrap();
    two_studies(&index).await;
    let commits_before = index.stats().commits;

    let removed = index.delete(Scope::Study("1".into())).await.unwrap();
    assert_eq!(sops(&removed), ["1.1.1", "1.1.2", "1.2.1"]);
    assert!(
        removed
            .iter()
            .all(|r| r.blob_key == format!("blobs/{}", r.sop_instance_uid))
    );
    assert_eq!(index.stats().commits, commits_before + 1);
    assert!(
        index
            .instances(&Scope::Study("1".into()))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        sops(&index.instances(&Scope::Study("2".into())).unwrap()),
        ["2.1.1"]
    );
    assert_eq!(index.applied_sequence(), 7);
}

#[tokio::test]
async fn deleting_nothing_returns_nothing_and_changes_nothing() {
    let index = Index::open_in_ram().unwrap();
    two_studies(&index).await;
    // A series path under the wrong study matches nothing.
    let removed = index
        .delete(Scope::Series("2".into(), "1.1".into()))
        .await
        .unwrap();
    assert!(removed.is_empty());
    assert_eq!(index.applied_sequence(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_queued_right_after_an_insert_sees_it() {
    // Whether or not both land in one batch, the delete must remove the instance.
    let mut commits = 0;
    for round in 0..20 {
        let index = Index::open_in_ram().unwrap();
        let sop = format!("1.1.{round}");
        let (inserted, removed) = tokio::join!(
            biased; // requests are sent in this order
            index.insert(record("1", "1.1", &sop, 0)),
            index.delete(Scope::Study("1".into())),
        );
        assert_eq!(inserted.unwrap(), 1);
        assert_eq!(sops(&removed.unwrap()), [sop.as_str()]);
        assert!(!index.contains_sop(&sop).unwrap());
        // And an insert queued right after the delete may store the SOP again.
        let (removed, inserted) = tokio::join!(
            biased; // requests are sent in this order
            index.delete(Scope::Study("1".into())),
            index.insert(record("1", "1.1", &sop, 1)),
        );
        assert!(removed.unwrap().is_empty());
        assert_eq!(inserted.unwrap(), 3);
        let (removed, inserted) = tokio::join!(
            biased; // requests are sent in this order
            index.delete(Scope::Study("1".into())),
            index.insert(record("1", "1.1", &sop, 2)),
        );
        assert_eq!(
            removed.unwrap()[0].stored_at,
            record("1", "1.1", &sop, 1).stored_at
        );
        assert_eq!(inserted.unwrap(), 5);
        assert_eq!(index.instance_count().unwrap(), 1);
        commits += index.stats().commits;
    }
    // Pairs sent back to back normally share a batch: the in-batch path was exercised.
    assert!(commits < 20 * 6, "no request pair was ever batched");
}

#[tokio::test]
async fn instances_are_ordered_by_series_then_instance_number_then_sop() {
    let index = Index::open_in_ram().unwrap();
    let numbered = |sop: &str, number: &str, series: &str| {
        with_attribute(record("1", series, sop, 0), INSTANCE_NUMBER, &[number])
    };
    index.insert(numbered("1.2.9", "1", "1.2")).await.unwrap();
    index.insert(numbered("1.1.a", "10", "1.1")).await.unwrap();
    index.insert(numbered("1.1.b", "9", "1.1")).await.unwrap(); // numeric, not textual, order
    index.insert(record("1", "1.1", "1.1.0", 0)).await.unwrap(); // no InstanceNumber: last
    index.insert(numbered("1.1.c", " 9", "1.1")).await.unwrap(); // tie: SOP decides
    assert_eq!(
        sops(&index.instances(&Scope::Study("1".into())).unwrap()),
        ["1.1.b", "1.1.c", "1.1.a", "1.1.0", "1.2.9"]
    );
    assert_eq!(
        sops(
            &index
                .instances(&Scope::Series("1".into(), "1.2".into()))
                .unwrap()
        ),
        ["1.2.9"]
    );
    assert!(
        index
            .instances(&Scope::Study("nope".into()))
            .unwrap()
            .is_empty()
    );
}

/// Study 1: series 1.1 (CT, 2 instances, patient P1), series 1.2 (MR, 1 instance, patient P2 in
/// the most recently stored). Study 2: one CT instance of patient P3.
async fn search_fixture(index: &Index) {
    index.insert(record("1", "1.1", "1.1.1", 10)).await.unwrap();
    index.insert(record("1", "1.1", "1.1.2", 30)).await.unwrap();
    let mr = with_attribute(record("1", "1.2", "1.2.1", 20), MODALITY, &["MR"]);
    index
        .insert(with_attribute(mr, PATIENT_ID, &["P2"]))
        .await
        .unwrap();
    let other = with_attribute(record("2", "2.1", "2.1.1", 0), PATIENT_ID, &["P3"]);
    index.insert(other).await.unwrap();
}

#[tokio::test]
async fn instance_level_search_pages_instances_in_uid_order() {
    let index = Index::open_in_ram().unwrap();
    search_fixture(&index).await;

    let hits = search(&index, Level::Instance, &[(MODALITY, &["CT"])]);
    let found: Vec<_> = hits
        .iter()
        .map(|h| h.record.sop_instance_uid.as_str())
        .collect();
    assert_eq!(found, ["1.1.1", "1.1.2", "2.1.1"]);
    assert_eq!(
        (
            hits[0].study_related_series,
            hits[0].study_related_instances,
            hits[0].series_related_instances
        ),
        (2, 3, 2)
    );

    let page = index
        .search(&SearchQuery {
            level: Level::Instance,
            filters: vec![],
            offset: 1,
            limit: 2,
        })
        .unwrap();
    let found: Vec<_> = page
        .iter()
        .map(|h| h.record.sop_instance_uid.as_str())
        .collect();
    assert_eq!(found, ["1.1.2", "1.2.1"]);
    let past_the_end = SearchQuery {
        level: Level::Instance,
        filters: vec![],
        offset: 4,
        limit: usize::MAX,
    };
    assert!(index.search(&past_the_end).unwrap().is_empty());

    // Values of one filter are ORed, filters are ANDed; path UIDs match the UID fields. The
    // study-level PatientID is the study's latest (P1, from 1.1.2), for all its instances.
    let hits = search(
        &index,
        Level::Instance,
        &[(PATIENT_ID, &["P1", "P3"]), (STUDY_UID, &["1"])],
    );
    let found: Vec<_> = hits
        .iter()
        .map(|h| h.record.sop_instance_uid.as_str())
        .collect();
    assert_eq!(found, ["1.1.1", "1.1.2", "1.2.1"]);
    assert!(search(&index, Level::Instance, &[(PATIENT_ID, &["P2"])]).is_empty());
    assert!(search(&index, Level::Instance, &[(PATIENT_ID, &[])]).is_empty());
    assert!(
        search(&index, Level::Instance, &[(PATIENT_ID, &["p1"])]).is_empty(),
        "exact match"
    );
}

#[tokio::test]
async fn series_level_search_groups_by_series_with_the_latest_instance_as_representative() {
    let index = Index::open_in_ram().unwrap();
    search_fixture(&index).await;

    let hits = search(&index, Level::Series, &[(STUDY_UID, &["1"])]);
    let found: Vec<_> = hits
        .iter()
        .map(|h| {
            (
                h.record.series_instance_uid.as_str(),
                h.record.sop_instance_uid.as_str(),
                h.series_related_instances,
            )
        })
        .collect();
    assert_eq!(found, [("1.1", "1.1.2", 2), ("1.2", "1.2.1", 1)]);
    assert!(
        hits.iter()
            .all(|h| h.study_related_series == 2 && h.study_related_instances == 3)
    );

    // A series-level filter matches the series' latest instance; counts cover the series.
    let hits = search(
        &index,
        Level::Series,
        &[(MODALITY, &["CT"]), (STUDY_UID, &["1"])],
    );
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].record.sop_instance_uid, "1.1.2");
    assert_eq!(hits[0].series_related_instances, 2);
    // An instance-level filter cannot select series.
    assert!(search(&index, Level::Series, &[(0x0008_0018, &["1.1.1"])]).is_empty());

    let hits = search(&index, Level::Series, &[(SERIES_UID, &["2.1"])]);
    assert_eq!(hits[0].modalities_in_study, ["CT"]);
}

#[tokio::test]
async fn study_level_search_counts_all_series_instances_and_modalities() {
    let index = Index::open_in_ram().unwrap();
    search_fixture(&index).await;

    let hits = search(&index, Level::Study, &[]);
    let found: Vec<_> = hits
        .iter()
        .map(|h| h.record.study_instance_uid.as_str())
        .collect();
    assert_eq!(found, ["1", "2"]);
    // Most recently stored instance of study 1 is 1.1.2 (second 30).
    assert_eq!(hits[0].record.sop_instance_uid, "1.1.2");
    assert_eq!(
        (
            hits[0].study_related_series,
            hits[0].study_related_instances
        ),
        (2, 3)
    );
    assert_eq!(hits[0].modalities_in_study, ["CT", "MR"]);
    assert_eq!(
        (
            hits[1].study_related_series,
            hits[1].study_related_instances
        ),
        (1, 1)
    );

    // ModalitiesInStudy matches any modality of the study; the hit still is the latest.
    let hits = search(&index, Level::Study, &[(MODALITIES_IN_STUDY, &["MR"])]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].record.sop_instance_uid, "1.1.2");
    assert_eq!(hits[0].modalities_in_study, ["CT", "MR"]);
    assert_eq!(hits[0].study_related_instances, 3);

    let second_page = index
        .search(&SearchQuery {
            level: Level::Study,
            filters: vec![],
            offset: 1,
            limit: 1,
        })
        .unwrap();
    assert_eq!(second_page.len(), 1);
    assert_eq!(second_page[0].record.study_instance_uid, "2");
    let none = SearchQuery {
        level: Level::Study,
        filters: vec![],
        offset: 0,
        limit: 0,
    };
    assert!(index.search(&none).unwrap().is_empty());
}

#[tokio::test]
async fn equal_stored_at_is_broken_by_the_later_sequence() {
    let index = Index::open_in_ram().unwrap();
    index.insert(record("1", "1.1", "1.1.2", 0)).await.unwrap();
    index.insert(record("1", "1.1", "1.1.1", 0)).await.unwrap();
    let hits = search(&index, Level::Study, &[]);
    assert_eq!(hits[0].record.sop_instance_uid, "1.1.1");
}

#[tokio::test]
async fn an_index_reopened_from_disk_keeps_content_and_continues_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = Index::open(dir.path()).unwrap();
        two_studies(&index).await;
        index.delete(Scope::Study("2".into())).await.unwrap();
        index.close().await.unwrap();
        assert!(matches!(
            index.insert(record("3", "3.1", "3.1.1", 0)).await,
            Err(IndexError::Closed)
        ));
        // Reads still work after close.
        assert!(index.contains_sop("1.1.1").unwrap());
    }
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.stats().last_sequence, 5);
    assert_eq!(
        sops(&index.instances(&Scope::Study("1".into())).unwrap()),
        ["1.1.1", "1.1.2", "1.2.1"]
    );
    assert_eq!(
        index.instance("1", "1.1", "1.1.1").unwrap(),
        Some(record("1", "1.1", "1.1.1", 0))
    );
    assert_eq!(
        index.insert(record("3", "3.1", "3.1.1", 0)).await.unwrap(),
        6
    );
    assert!(matches!(
        index.insert(record("1", "1.1", "1.1.1", 0)).await,
        Err(IndexError::AlreadyExists { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_without_close_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let acknowledged: HashSet<String> = {
        let index = Index::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let index = index.clone();
                tokio::spawn(async move {
                    let sop = format!("1.1.{i}");
                    index.insert(record("1", "1.1", &sop, i)).await.map(|_| sop)
                })
            })
            .collect();
        let mut acknowledged = HashSet::new();
        for task in tasks {
            acknowledged.insert(task.await.unwrap().unwrap());
        }
        drop(index); // no close
        acknowledged
    };
    let index = Index::open(dir.path()).unwrap();
    let present: HashSet<String> = index
        .instances(&Scope::Study("1".into()))
        .unwrap()
        .into_iter()
        .map(|r| r.sop_instance_uid)
        .collect();
    assert_eq!(present, acknowledged);
    assert_eq!(
        index.applied_sequence(),
        50,
        "the watermark is durable with the documents"
    );
}

#[tokio::test]
async fn an_index_of_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Index::open(dir.path()).unwrap().close().await.unwrap();
    let version_file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.to_string_lossy().ends_with("schema-version"))
        .expect("a schema version file is written");
    std::fs::write(&version_file, "999\n").unwrap();
    match Index::open(dir.path()) {
        Err(IndexError::SchemaMismatch { found, expected }) => {
            assert_eq!((found.as_str(), expected), ("999", 4));
        }
        other => panic!("expected SchemaMismatch, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_directory_cannot_be_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let _index = Index::open(dir.path()).unwrap();
    assert!(Index::open(dir.path()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_fails_its_whole_batch_and_leaves_nothing_visible() {
    let index = Index::open_in_ram().unwrap();
    index.insert(record("1", "1.1", "1.1.0", 0)).await.unwrap();
    index.fail_next_commit_for_tests();
    let (a, b, c) = tokio::join!(
        biased; // requests are sent in this order
        index.insert(record("1", "1.1", "1.1.1", 1)),
        index.delete(Scope::Study("1".into())),
        index.insert(record("1", "1.1", "1.1.2", 2)),
    );
    assert!(matches!(a, Err(IndexError::Io(_))));
    assert!(!index.contains_sop("1.1.1").unwrap());
    // Requests that shared the failed batch failed too; any that came later succeeded, with
    // sequence numbers continuing after the last committed one.
    let later: Vec<u64> = match (b, c) {
        (Err(_), Err(_)) => vec![],
        (Err(_), Ok(sequence)) => vec![sequence],
        (Ok(removed), Ok(sequence)) => {
            assert_eq!(sops(&removed), ["1.1.0"]);
            vec![sequence]
        }
        (Ok(_), Err(error)) => panic!("a later request failed alone: {error}"),
    };
    let watermark = index.applied_sequence();
    assert!(later.iter().all(|s| *s <= watermark));
    // The writer keeps working after the rollback, continuing after the committed watermark.
    let next = index.insert(record("1", "1.1", "1.1.1", 1)).await.unwrap();
    assert_eq!(next, watermark + 1);
    assert!(index.contains_sop("1.1.1").unwrap());
}

#[tokio::test]
async fn replaying_the_catalogue_log_applies_each_change_once_and_keeps_the_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let log = vec![
        IndexChange::Insert {
            sequence: 1,
            record: record("1", "1.1", "1.1.1", 1),
        },
        IndexChange::Insert {
            sequence: 2,
            record: record("1", "1.1", "1.1.2", 2),
        },
        IndexChange::Remove {
            sequence: 3,
            study_instance_uid: "1".into(),
            sop_instance_uid: "1.1.1".into(),
        },
        // A re-store of the removed instance, with other values.
        IndexChange::Insert {
            sequence: 4,
            record: with_attribute(record("1", "1.1", "1.1.1", 4), PATIENT_ID, &["P2"]),
        },
    ];
    {
        let index = Index::open(dir.path()).unwrap();
        assert_eq!(index.apply(log[..2].to_vec()).await.unwrap(), 2);
        // The whole log again, overlapping what was applied: the first two are skipped.
        assert_eq!(index.apply(log.clone()).await.unwrap(), 4);
        index.close().await.unwrap();
    }
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.applied_sequence(), 4);
    assert_eq!(index.apply(log).await.unwrap(), 4, "nothing left to apply");
    let instances = index.instances(&Scope::Study("1".into())).unwrap();
    assert_eq!(sops(&instances), ["1.1.1", "1.1.2"]);
    let restored = index.instance("1", "1.1", "1.1.1").unwrap().unwrap();
    assert_eq!(
        restored.attribute_values(PATIENT_ID).collect::<Vec<_>>(),
        ["P2"],
        "the re-stored version replaced the removed one"
    );
    let studies = search(&index, Level::Study, &[(PATIENT_ID, &["P2"])]);
    assert_eq!(
        studies.len(),
        1,
        "the study's summary follows its latest instance"
    );
    // An insert of an indexed SOP replaces it; a removal of an absent one changes nothing else.
    index
        .apply(vec![
            IndexChange::Insert {
                sequence: 5,
                record: record("1", "1.1", "1.1.2", 5),
            },
            IndexChange::Remove {
                sequence: 6,
                study_instance_uid: "1".into(),
                sop_instance_uid: "9.9".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(index.instance_count().unwrap(), 2);
    assert_eq!(index.applied_sequence(), 6);
}

/// The nice value of each thread of this process named `name` (Linux: `/proc/self/task/*/stat`).
#[cfg(target_os = "linux")]
fn nice_of_threads_named(name: &str) -> Vec<i64> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised command: state is field 3, nice field 19.
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        found.push(after_comm.split(' ').nth(16).unwrap().parse().unwrap());
    }
    found
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn index_writes_run_at_a_lower_cpu_priority_than_searches() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    index
        .insert(record("1.1", "1.1.1", "1.1.1.1", 0))
        .await
        .unwrap();
    let writer = nice_of_threads_named("dicomweb-index-");
    assert!(!writer.is_empty(), "the writer thread is running");
    assert!(
        writer.iter().all(|nice| *nice > 0),
        "writer niceness {writer:?}"
    );
    // tantivy's own threads, started by the writer, inherit it.
    let merges = nice_of_threads_named("merge_thread_0");
    assert!(
        merges.iter().all(|nice| *nice > 0),
        "merge niceness {merges:?}"
    );
    // The caller's thread is untouched.
    let own = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let own_nice: i64 = own[own.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(16)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(own_nice, 0);
}
