//! The behaviour every [`Catalogue`] implementation must show, as async checks over a fresh, empty catalogue.
//!
//! Use [`conformance_tests!`](crate::conformance_tests) to get one `#[tokio::test]` per check:
//! `dicomweb_catalogue::conformance_tests!(embedded, make_catalogue());` where `make_catalogue()` is an
//! expression giving a fresh catalogue (it is evaluated once per test).

use std::collections::HashSet;

use time::macros::datetime;

use crate::{
    Catalogue, ChangeAction, ChangeQuery, ChangeState, IndexChange, InstancePath, InstanceRecord,
    Scope,
};

/// A record with the given UIDs, InstanceNumber and PatientName, stored at `version`'s blob key.
pub fn record(study: &str, series: &str, sop: &str, number: u32, name: &str) -> InstanceRecord {
    InstanceRecord {
        study_instance_uid: study.into(),
        series_instance_uid: series.into(),
        sop_instance_uid: sop.into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.7".into(),
        transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
        blob_key: format!("studies/{study}/series/{series}/instances/{sop}.dcm"),
        size: 100,
        stored_at: datetime!(2024-05-01 12:00:00 UTC),
        metadata: format!(r#"{{"00100010":{{"vr":"PN","Value":[{{"Alphabetic":"{name}"}}]}}}}"#)
            .into_bytes(),
        pixel_layout: None,
        attributes: vec![
            (0x0010_0010, vec![name.into()]),
            (0x0020_0013, vec![number.to_string()]),
        ],
    }
}

/// Stores `record` under a freshly allocated version whose number is part of its blob key.
pub async fn store(catalogue: &dyn Catalogue, record: InstanceRecord) -> (u64, InstanceRecord) {
    let (version, record) = versioned(catalogue, record).await;
    catalogue
        .commit_store(version, record.clone())
        .await
        .expect("store");
    (version, record)
}

/// A freshly allocated version and `record` with that version in its blob key, ready to commit.
async fn versioned(catalogue: &dyn Catalogue, mut record: InstanceRecord) -> (u64, InstanceRecord) {
    let version = catalogue
        .allocate_version()
        .await
        .expect("allocate a version");
    record.blob_key = record
        .blob_key
        .replace(".dcm", &format!("_{version:016x}.dcm"));
    (version, record)
}

fn all(include_metadata: bool) -> ChangeQuery {
    ChangeQuery {
        limit: 1000,
        include_metadata,
        ..ChangeQuery::default()
    }
}

fn name_in(metadata: &Option<Vec<u8>>) -> String {
    String::from_utf8_lossy(metadata.as_deref().unwrap_or_default()).into_owned()
}

/// Versions are unique and increase, even when allocated concurrently.
pub async fn versions_are_unique_and_increasing(catalogue: &dyn Catalogue) {
    let mut last = 0;
    for _ in 0..100 {
        let version = catalogue.allocate_version().await.unwrap();
        assert!(version > last, "{version} after {last}");
        last = version;
    }
    let concurrent =
        futures::future::join_all((0..200).map(|_| catalogue.allocate_version())).await;
    let unique: HashSet<u64> = concurrent.iter().map(|v| *v.as_ref().unwrap()).collect();
    assert_eq!(unique.len(), 200);
}

/// A stored record reads back identically, by path and by scope, and its file is known by SOP.
pub async fn a_stored_record_reads_back_identically(catalogue: &dyn Catalogue) {
    let (_, stored) = store(catalogue, record("1.1", "1.1.1", "1.1.1.1", 1, "A^B")).await;
    assert_eq!(
        catalogue.instance("1.1", "1.1.1", "1.1.1.1").await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(
        catalogue.instance("1.1", "1.1.2", "1.1.1.1").await.unwrap(),
        None
    );
    assert_eq!(
        catalogue
            .instances(&Scope::Study("1.1".into()))
            .await
            .unwrap(),
        std::slice::from_ref(&stored)
    );
    assert_eq!(
        catalogue.blob_key_of("1.1.1.1").await.unwrap(),
        Some(stored.blob_key)
    );
    assert_eq!(catalogue.instance_count().await.unwrap(), 1);
    assert_eq!(catalogue.last_sequence(), 1);
}

/// Of many concurrent stores of one SOP instance (even in other studies) exactly one succeeds.
pub async fn of_concurrent_stores_of_one_instance_exactly_one_succeeds(catalogue: &dyn Catalogue) {
    let attempts = (0..16).map(|i| async move {
        let version = catalogue.allocate_version().await.unwrap();
        let study = format!("2.{}", i % 2);
        let record = record(&study, &format!("{study}.1"), "9.9.9", 1, "X");
        catalogue.commit_store(version, record).await
    });
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(_) | Err(crate::CatalogueError::AlreadyExists { .. })))
    );
    assert_eq!(
        catalogue.last_sequence(),
        1,
        "a refused store appends nothing"
    );
}

/// Concurrent stores get gap-free sequences 1..=n.
pub async fn concurrent_stores_get_gap_free_sequences(catalogue: &dyn Catalogue) {
    let stores = (0..50).map(|i| async move {
        let version = catalogue.allocate_version().await.unwrap();
        let record = record("3.1", "3.1.1", &format!("3.1.1.{i}"), i, "C");
        catalogue.commit_store(version, record).await.unwrap()
    });
    let mut sequences = futures::future::join_all(stores).await;
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=50).collect::<Vec<u64>>());
}

/// Instances are listed by series, then InstanceNumber, then SOPInstanceUID; scopes do not leak into
/// neighbouring UIDs that share a prefix.
pub async fn scopes_list_their_instances_in_order(catalogue: &dyn Catalogue) {
    for (series, sop, number) in [
        ("4.1.2", "4.1.2.1", 2),
        ("4.1.1", "4.1.1.3", 10),
        ("4.1.1", "4.1.1.2", 9),
        ("4.1.1", "4.1.1.1", 9),
    ] {
        store(catalogue, record("4.1", series, sop, number, "D")).await;
    }
    store(catalogue, record("4.10", "4.10.1", "4.10.1.1", 1, "E")).await;
    let study: Vec<String> = catalogue
        .instances(&Scope::Study("4.1".into()))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.sop_instance_uid)
        .collect();
    assert_eq!(study, ["4.1.1.1", "4.1.1.2", "4.1.1.3", "4.1.2.1"]);
    let series = catalogue
        .instances(&Scope::Series("4.1".into(), "4.1.2".into()))
        .await
        .unwrap();
    assert_eq!(series.len(), 1);
    assert!(
        catalogue
            .instances(&Scope::Study("4".into()))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A listing is the scope's records in order without their metadata; `instances_at` reads records by path
/// within a budget of metadata bytes (at least one each call), current versions only, `None` for an instance
/// no longer catalogued: what a streamed metadata response is built from.
pub async fn listings_leave_out_metadata_and_reads_by_path_keep_to_their_budget(
    catalogue: &dyn Catalogue,
) {
    let mut stored = Vec::new();
    for (sop, number) in [("7.1.1.3", 3), ("7.1.1.1", 1), ("7.1.1.2", 2)] {
        stored.push(
            store(catalogue, record("7.1", "7.1.1", sop, number, "Listed"))
                .await
                .1,
        );
    }
    crate::sort_instances(&mut stored);
    let listing = catalogue
        .instance_listing(&Scope::Study("7.1".into()))
        .await
        .unwrap();
    let without_metadata: Vec<InstanceRecord> = stored
        .iter()
        .cloned()
        .map(|mut r| {
            r.metadata.clear();
            r
        })
        .collect();
    assert_eq!(listing, without_metadata);
    assert!(
        catalogue
            .instance_listing(&Scope::Series("7.1".into(), "7.1.9".into()))
            .await
            .unwrap()
            .is_empty()
    );

    let (_, replaced) = store(catalogue, record("7.1", "7.1.1", "7.1.1.9", 9, "Old")).await;
    catalogue
        .commit_delete(&Scope::Instance(
            "7.1".into(),
            "7.1.1".into(),
            "7.1.1.9".into(),
        ))
        .await
        .unwrap();
    let (_, current) = store(catalogue, record("7.1", "7.1.1", "7.1.1.9", 9, "New")).await;
    assert_ne!(replaced.blob_key, current.blob_key);
    let mut paths: Vec<InstancePath> = stored.iter().map(InstancePath::of).collect();
    paths.insert(
        1,
        InstancePath::of(&record("7.1", "7.1.1", "7.1.1.404", 0, "")),
    );
    paths.push(InstancePath::of(&current));

    let everything = catalogue.instances_at(&paths, usize::MAX).await.unwrap();
    assert_eq!(
        everything,
        [
            Some(stored[0].clone()),
            None,
            Some(stored[1].clone()),
            Some(stored[2].clone()),
            Some(current.clone()),
        ],
        "records as catalogued now, in the order asked, None for one not catalogued"
    );
    let one = stored[0].metadata.len();
    let first = catalogue.instances_at(&paths, 1).await.unwrap();
    assert_eq!(
        first,
        [Some(stored[0].clone())],
        "at least one, then the budget"
    );
    let two = catalogue.instances_at(&paths[2..], one + 1).await.unwrap();
    assert_eq!(two, [Some(stored[1].clone()), Some(stored[2].clone())]);
    assert!(catalogue.instances_at(&[], 1).await.unwrap().is_empty());
}

/// A delete removes exactly its scope, appends one `delete` entry each, and lists the files as pending
/// deletion until they are reported done.
pub async fn a_delete_removes_its_scope_and_queues_the_files(catalogue: &dyn Catalogue) {
    let (_, kept) = store(catalogue, record("5.1", "5.1.1", "5.1.1.1", 1, "F")).await;
    let (_, gone_a) = store(catalogue, record("5.1", "5.1.2", "5.1.2.1", 1, "F")).await;
    let (_, gone_b) = store(catalogue, record("5.1", "5.1.2", "5.1.2.2", 2, "F")).await;
    let removed = catalogue
        .commit_delete(&Scope::Series("5.1".into(), "5.1.2".into()))
        .await
        .unwrap();
    assert_eq!(removed, [gone_a.clone(), gone_b.clone()]);
    assert_eq!(
        catalogue
            .instances(&Scope::Study("5.1".into()))
            .await
            .unwrap(),
        [kept]
    );
    assert_eq!(catalogue.blob_key_of("5.1.2.1").await.unwrap(), None);
    let mut pending = catalogue.pending_blob_deletions().await.unwrap();
    pending.sort();
    assert_eq!(pending, [gone_a.blob_key.clone(), gone_b.blob_key.clone()]);
    catalogue
        .blob_deletions_done(vec![gone_a.blob_key.clone()])
        .await
        .unwrap();
    assert_eq!(
        catalogue.pending_blob_deletions().await.unwrap(),
        [gone_b.blob_key]
    );
    let feed = catalogue.changes(&all(false)).await.unwrap();
    let actions: Vec<_> = feed.iter().map(|e| (e.sequence, e.action)).collect();
    assert_eq!(
        actions,
        [
            (1, ChangeAction::Create),
            (2, ChangeAction::Create),
            (3, ChangeAction::Create),
            (4, ChangeAction::Delete),
            (5, ChangeAction::Delete),
        ]
    );
    assert!(
        catalogue
            .commit_delete(&Scope::Study("5.9".into()))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        catalogue.last_sequence(),
        5,
        "deleting nothing appends nothing"
    );
}

/// Store, delete, store again with other values: every entry keeps the metadata of its own version, and the
/// states say which version is current. The two versions have different files.
pub async fn change_feed_entries_keep_their_own_version(catalogue: &dyn Catalogue) {
    let (first_version, first) =
        store(catalogue, record("6.1", "6.1.1", "6.1.1.1", 1, "Old")).await;
    catalogue
        .commit_delete(&Scope::Instance(
            "6.1".into(),
            "6.1.1".into(),
            "6.1.1.1".into(),
        ))
        .await
        .unwrap();
    let (second_version, second) =
        store(catalogue, record("6.1", "6.1.1", "6.1.1.1", 1, "New")).await;
    assert!(second_version > first_version);
    assert_ne!(first.blob_key, second.blob_key);
    let feed = catalogue.changes(&all(true)).await.unwrap();
    let summary: Vec<_> = feed
        .iter()
        .map(|e| (e.action, e.state, name_in(&e.metadata).contains("Old")))
        .collect();
    assert_eq!(
        summary,
        [
            (ChangeAction::Create, ChangeState::Replaced, true),
            (ChangeAction::Delete, ChangeState::Deleted, true),
            (ChangeAction::Create, ChangeState::Current, false),
        ]
    );
    assert!(name_in(&feed[2].metadata).contains("New"));
    let latest = catalogue.latest_change(false).await.unwrap().unwrap();
    assert_eq!((latest.sequence, latest.metadata), (3, None));
}

/// The change feed pages by sequence, by time window, skip and limit.
pub async fn the_change_feed_filters_by_sequence_time_skip_and_limit(catalogue: &dyn Catalogue) {
    assert_eq!(catalogue.latest_change(true).await.unwrap(), None);
    for i in 0..10 {
        store(
            catalogue,
            record("7.1", "7.1.1", &format!("7.1.1.{i}"), i, "G"),
        )
        .await;
    }
    let feed = catalogue.changes(&all(false)).await.unwrap();
    assert!(feed.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    let page = |query: ChangeQuery| async move {
        catalogue
            .changes(&query)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.sequence)
            .collect::<Vec<_>>()
    };
    let base = ChangeQuery {
        limit: 3,
        ..ChangeQuery::default()
    };
    assert_eq!(page(base.clone()).await, [1, 2, 3]);
    assert_eq!(
        page(ChangeQuery {
            after_sequence: 8,
            ..base.clone()
        })
        .await,
        [9, 10]
    );
    assert_eq!(
        page(ChangeQuery {
            skip: 8,
            ..base.clone()
        })
        .await,
        [9, 10]
    );
    assert_eq!(
        page(ChangeQuery {
            limit: 0,
            ..base.clone()
        })
        .await,
        Vec::<u64>::new()
    );
    let fifth = feed[4].timestamp;
    let from_fifth = page(ChangeQuery {
        start_time: Some(fifth),
        limit: 100,
        ..ChangeQuery::default()
    })
    .await;
    assert_eq!(
        from_fifth.first(),
        feed.iter()
            .find(|e| e.timestamp >= fifth)
            .map(|e| e.sequence)
            .as_ref()
    );
    let before_fifth = page(ChangeQuery {
        end_time: Some(fifth),
        limit: 100,
        ..ChangeQuery::default()
    })
    .await;
    assert!(before_fifth.iter().all(|s| *s < 5));
    assert_eq!(before_fifth.len() + from_fifth.len(), 10);
}

/// The index feed replays the history in order; current instances page through everything catalogued.
pub async fn a_search_index_can_follow_and_rebuild_from_the_catalogue(catalogue: &dyn Catalogue) {
    for i in 0..7 {
        store(
            catalogue,
            record("8.1", "8.1.1", &format!("8.1.1.{i}"), i, "H"),
        )
        .await;
    }
    catalogue
        .commit_delete(&Scope::Instance(
            "8.1".into(),
            "8.1.1".into(),
            "8.1.1.3".into(),
        ))
        .await
        .unwrap();
    let feed = catalogue.index_feed(0, 100).await.unwrap();
    assert_eq!(feed.len(), 8);
    assert!(
        feed.windows(2)
            .all(|w| w[0].sequence() + 1 == w[1].sequence())
    );
    assert!(
        matches!(&feed[7], IndexChange::Remove { sop_instance_uid, .. } if sop_instance_uid == "8.1.1.3")
    );
    assert_eq!(catalogue.index_feed(6, 1).await.unwrap().len(), 1);
    assert!(catalogue.index_feed(8, 10).await.unwrap().is_empty());

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = catalogue.current_instances(after, 4).await.unwrap();
        seen.extend(
            page.instances
                .into_iter()
                .map(|(sequence, r)| (sequence, r.sop_instance_uid)),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    assert!(seen.iter().all(|(_, sop)| sop != "8.1.1.3"));
    assert!(seen.contains(&(1, "8.1.1.0".to_owned())), "{seen:?}");
}

/// Stores `record` under a fresh version, keeping `copy` of its file until the copy is released.
pub async fn store_with_copy(
    catalogue: &dyn Catalogue,
    record: InstanceRecord,
    copy: &'static [u8],
) -> (u64, InstanceRecord) {
    let (version, record) = versioned(catalogue, record).await;
    catalogue
        .commit_store_with_copy(version, record.clone(), bytes::Bytes::from_static(copy))
        .await
        .expect("store with a copy");
    (version, record)
}

/// A copy committed with its record is listed, with its bytes, until it is released; a store without a copy
/// lists none. The listing pages by key.
pub async fn a_copy_is_kept_until_it_is_released(catalogue: &dyn Catalogue) {
    let (_, plain) = store(catalogue, record("5.1", "5.1.1", "5.1.1.1", 1, "A")).await;
    let (_, first) = store_with_copy(
        catalogue,
        record("5.1", "5.1.1", "5.1.1.2", 2, "B"),
        b"second",
    )
    .await;
    let (_, second) = store_with_copy(
        catalogue,
        record("5.1", "5.1.1", "5.1.1.3", 3, "C"),
        b"third",
    )
    .await;
    assert_eq!(
        catalogue.instance("5.1", "5.1.1", "5.1.1.2").await.unwrap(),
        Some(first.clone()),
        "a record committed with a copy is an ordinary record"
    );
    let listed = catalogue.unpublished_copies(None, 10).await.unwrap();
    let expected = [
        (first.blob_key.clone(), bytes::Bytes::from_static(b"second")),
        (second.blob_key.clone(), bytes::Bytes::from_static(b"third")),
    ];
    assert_eq!(
        listed, expected,
        "in key order, without the plain store's {}",
        plain.blob_key
    );
    assert_eq!(
        catalogue.unpublished_copies(None, 1).await.unwrap(),
        expected[..1]
    );
    assert_eq!(
        catalogue
            .unpublished_copies(Some(first.blob_key.clone()), 10)
            .await
            .unwrap(),
        expected[1..]
    );
    catalogue
        .copies_published(vec![first.blob_key.clone(), "studies/unknown.dcm".into()])
        .await
        .unwrap();
    assert_eq!(
        catalogue.unpublished_copies(None, 10).await.unwrap(),
        expected[1..]
    );
    assert_eq!(
        catalogue.instance("5.1", "5.1.1", "5.1.1.2").await.unwrap(),
        Some(first),
        "releasing a copy leaves its record"
    );
}

/// Deleting an instance releases its copy in the same commit (a deleted file is never written again), and a
/// refused duplicate store keeps no copy.
pub async fn a_deleted_or_refused_store_keeps_no_copy(catalogue: &dyn Catalogue) {
    let (_, kept) = store_with_copy(
        catalogue,
        record("6.1", "6.1.1", "6.1.1.1", 1, "A"),
        b"kept",
    )
    .await;
    let (_, deleted) = store_with_copy(
        catalogue,
        record("6.1", "6.1.2", "6.1.2.1", 1, "B"),
        b"deleted",
    )
    .await;
    let version = catalogue.allocate_version().await.unwrap();
    let mut duplicate = record("6.1", "6.1.1", "6.1.1.1", 1, "A");
    duplicate.blob_key = format!("studies/6.1/series/6.1.1/instances/6.1.1.1_{version:016x}.dcm");
    assert!(matches!(
        catalogue
            .commit_store_with_copy(version, duplicate, bytes::Bytes::from_static(b"dup"))
            .await,
        Err(crate::CatalogueError::AlreadyExists { .. })
    ));
    let removed = catalogue
        .commit_delete(&Scope::Series("6.1".into(), "6.1.2".into()))
        .await
        .unwrap();
    assert_eq!(removed, std::slice::from_ref(&deleted));
    assert_eq!(
        catalogue.unpublished_copies(None, 10).await.unwrap(),
        [(kept.blob_key, bytes::Bytes::from_static(b"kept"))]
    );
    assert_eq!(
        catalogue.pending_blob_deletions().await.unwrap(),
        [deleted.blob_key]
    );
}

/// Every check, in order, each on a catalogue made fresh by `make`.
pub async fn run_all<C: Catalogue, F: std::future::Future<Output = C>>(
    mut make: impl FnMut() -> F,
) {
    versions_are_unique_and_increasing(&make().await).await;
    a_stored_record_reads_back_identically(&make().await).await;
    of_concurrent_stores_of_one_instance_exactly_one_succeeds(&make().await).await;
    concurrent_stores_get_gap_free_sequences(&make().await).await;
    scopes_list_their_instances_in_order(&make().await).await;
    listings_leave_out_metadata_and_reads_by_path_keep_to_their_budget(&make().await).await;
    a_delete_removes_its_scope_and_queues_the_files(&make().await).await;
    change_feed_entries_keep_their_own_version(&make().await).await;
    the_change_feed_filters_by_sequence_time_skip_and_limit(&make().await).await;
    a_search_index_can_follow_and_rebuild_from_the_catalogue(&make().await).await;
    a_copy_is_kept_until_it_is_released(&make().await).await;
    a_deleted_or_refused_store_keeps_no_copy(&make().await).await;
}

/// One `#[tokio::test]` per conformance check for an implementation: `conformance_tests!(name, expr)` where
/// `expr` evaluates to a fresh catalogue (an `impl Future` of one).
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance_tests!(@each $make;
                versions_are_unique_and_increasing,
                a_stored_record_reads_back_identically,
                of_concurrent_stores_of_one_instance_exactly_one_succeeds,
                concurrent_stores_get_gap_free_sequences,
                scopes_list_their_instances_in_order,
                listings_leave_out_metadata_and_reads_by_path_keep_to_their_budget,
                a_delete_removes_its_scope_and_queues_the_files,
                change_feed_entries_keep_their_own_version,
                the_change_feed_filters_by_sequence_time_skip_and_limit,
                a_search_index_can_follow_and_rebuild_from_the_catalogue,
                a_copy_is_kept_until_it_is_released,
                a_deleted_or_refused_store_keeps_no_copy
            );
        }
    };
    (@each $make:expr; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let catalogue = $make.await;
                $crate::conformance::$check(&catalogue).await;
            }
        )*
    };
}
