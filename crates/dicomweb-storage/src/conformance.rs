//! Reusable conformance suite: the executable form of the [`BlobStore`] contracts.
//!
//! Every backend runs it. A new backend adds one test (the store may be shared with other data: every
//! check works under its own random prefix and only asserts about the keys it wrote):
//!
//! ```no_run
//! # async fn make_my_store() -> std::sync::Arc<dyn dicomweb_storage::BlobStore> { unimplemented!() }
//! #[tokio::test(flavor = "multi_thread")]
//! async fn my_backend_conforms() {
//!     let store = make_my_store().await;
//!     dicomweb_storage::conformance::run_all(&*store).await;
//! }
//! ```
//!
//! Each check is also a public function, to run them as separate tests (see this crate's
//! `tests/conformance.rs`). Checks panic with a description of the broken contract. They need a Tokio
//! runtime (large bodies upload parts on Tokio tasks), write about 20 MiB bodies and keep up to about
//! 150 MiB of test data in memory at once.

use crate::{
    BlobMeta, BlobStore, ByteStream, MULTIPART_THRESHOLD, STAGING_PREFIX, StorageError,
    read_to_bytes,
};
use bytes::Bytes;
use futures::StreamExt;
use futures::channel::oneshot;
use std::collections::BTreeMap;
use std::ops::Range;

/// A body just big enough to take the multipart path.
const LARGE: usize = MULTIPART_THRESHOLD + 1024 * 1024 + 17;
/// A body spanning several parts.
const HUGE: usize = 20 * 1024 * 1024 + 3;

/// Generates one test per conformance check, in a module named `$backend`, for a backend made by `$make` (an
/// expression evaluated inside each async test, giving `(store, guard)`: the guard keeps temporary resources
/// alive). Attributes after it apply to every test, e.g. `#[ignore = "needs an emulator"]`. The tests use
/// `tokio::test`, so the calling crate needs `tokio` (with `macros` and `rt-multi-thread`).
///
/// ```ignore
/// dicomweb_storage::conformance_tests!(my_backend, my_store().await);
/// ```
///
/// Keep the list in step with [`run_all`].
#[macro_export]
macro_rules! conformance_tests {
    ($backend:ident, $make:expr $(, #[$attr:meta])* $(,)?) => {
        $crate::__conformance_tests_for!(
            $backend,
            $make,
            [$(#[$attr])*],
            [
                create_then_read_back,
                create_is_exclusive,
                concurrent_creates_have_one_winner,
                concurrent_large_and_small_creates_have_one_winner,
                put_replaces,
                empty_blob_round_trips,
                missing_blob_is_not_found,
                get_range_reads_exact_bytes,
                get_ranges_reads_each_range,
                get_whole_many_reads_each_blob,
                delete_is_idempotent,
                list_filters_by_prefix,
                in_progress_create_is_invisible,
                invalid_keys_are_rejected,
                failing_body_leaves_nothing,
                large_body_round_trips,
                concurrent_syncs_after_writes_succeed,
                create_from_file_stores_the_file,
                blocking_creates_keep_the_create_contract,
            ]
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests_for {
    ($backend:ident, $make:expr, $attrs:tt, [$($check:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $( $crate::__conformance_test!($attrs, $make, $check); )*
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    ([$(#[$attr:meta])*], $make:expr, $check:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $check() {
            let (store, _guard) = $make;
            $crate::conformance::$check(&*store).await;
        }
    };
}

/// Runs every check, one after the other.
pub async fn run_all(store: &dyn BlobStore) {
    create_then_read_back(store).await;
    create_is_exclusive(store).await;
    concurrent_creates_have_one_winner(store).await;
    concurrent_large_and_small_creates_have_one_winner(store).await;
    put_replaces(store).await;
    empty_blob_round_trips(store).await;
    missing_blob_is_not_found(store).await;
    get_range_reads_exact_bytes(store).await;
    get_ranges_reads_each_range(store).await;
    get_whole_many_reads_each_blob(store).await;
    delete_is_idempotent(store).await;
    list_filters_by_prefix(store).await;
    in_progress_create_is_invisible(store).await;
    invalid_keys_are_rejected(store).await;
    failing_body_leaves_nothing(store).await;
    large_body_round_trips(store).await;
    concurrent_syncs_after_writes_succeed(store).await;
    create_from_file_stores_the_file(store).await;
    blocking_creates_keep_the_create_contract(store).await;
}

/// `create` stores the body (small and large, many chunks) and reports its size; `get`/`head` agree.
pub async fn create_then_read_back(store: &dyn BlobStore) {
    let dir = scratch_dir("create_then_read_back");
    for (name, len, chunk) in [
        ("small", 1000, 7),
        ("one-chunk", 64 * 1024, usize::MAX),
        ("large", LARGE, 300_007),
    ] {
        let key = format!("{dir}{name}");
        let data = patterned(len as u64, len);
        let written = store.create(&key, chunked(&data, chunk)).await;
        assert_eq!(
            written.ok(),
            Some(len as u64),
            "create {key} should report the size written"
        );
        assert_content(store, &key, &data).await;
        let head = store.head(&key).await.ok();
        assert_eq!(
            head,
            Some(BlobMeta {
                key: key.clone(),
                size: len as u64
            })
        );
    }
}

/// A second `create` of an existing key (small or large body) is `AlreadyExists` and changes nothing.
pub async fn create_is_exclusive(store: &dyn BlobStore) {
    let dir = scratch_dir("create_is_exclusive");
    for first_len in [10, LARGE] {
        let key = format!("{dir}first-{first_len}");
        let first = patterned(1, first_len);
        assert!(store.create(&key, chunked(&first, 1 << 20)).await.is_ok());
        for second_len in [5, LARGE] {
            let second = patterned(2, second_len);
            let outcome = store.create(&key, chunked(&second, 1 << 20)).await;
            assert!(
                matches!(&outcome, Err(StorageError::AlreadyExists { key: k }) if *k == key),
                "second create of {key} ({second_len} bytes) must be AlreadyExists, got {outcome:?}"
            );
            assert_content(store, &key, &first).await;
        }
    }
}

/// A store's [`crate::BlockingCreate`] (if it has one) creates as `create` does: only if absent (whichever of
/// the two ways created first), readable at once, invalid keys refused; and of concurrent blocking creates of
/// one key exactly one wins.
pub async fn blocking_creates_keep_the_create_contract(store: &dyn BlobStore) {
    let Some(creator) = store.blocking_creator() else {
        return;
    };
    let dir = scratch_dir("blocking_creates");
    let data = patterned(11, 10_000);
    let key = format!("{dir}small");
    let created = tokio::task::block_in_place(|| creator.create_blocking(&key, &data));
    let Ok(Some(size)) = created else {
        // Declined (the file system has no unnamed files): nothing may have been written.
        assert!(
            matches!(created, Ok(None)),
            "blocking create of {key} failed: {created:?}"
        );
        assert!(matches!(
            store.head(&key).await,
            Err(StorageError::NotFound { .. })
        ));
        return;
    };
    assert_eq!(size, data.len() as u64);
    assert_content(store, &key, &data).await;
    let again = tokio::task::block_in_place(|| creator.create_blocking(&key, &patterned(12, 50)));
    assert!(
        matches!(&again, Err(StorageError::AlreadyExists { key: k }) if *k == key),
        "a second blocking create must be AlreadyExists, got {again:?}"
    );
    let by_stream = store.create(&key, chunked(&patterned(13, 50), 7)).await;
    assert!(matches!(by_stream, Err(StorageError::AlreadyExists { .. })));
    let streamed_first = format!("{dir}streamed");
    store
        .create(&streamed_first, chunked(&data, 1000))
        .await
        .unwrap();
    let after = tokio::task::block_in_place(|| creator.create_blocking(&streamed_first, &data));
    assert!(matches!(after, Err(StorageError::AlreadyExists { .. })));
    for bad in ["../escape", "/absolute", ""] {
        let refused = tokio::task::block_in_place(|| creator.create_blocking(bad, &data));
        assert!(
            matches!(refused, Err(StorageError::InvalidKey { .. })),
            "key {bad:?}: {refused:?}"
        );
    }
    let contested = format!("{dir}contested");
    let winners = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..8u64)
            .map(|n| {
                let (creator, contested) = (&creator, &contested);
                scope.spawn(move || creator.create_blocking(contested, &patterned(n, 3000)))
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| racer.join().expect("a racing create panicked"))
            .filter(|outcome| matches!(outcome, Ok(Some(_))))
            .count()
    });
    assert_eq!(
        winners, 1,
        "exactly one of 8 concurrent blocking creates wins"
    );
}

/// 16 concurrent small creates of one key: exactly one succeeds, the others are `AlreadyExists`, and the
/// blob holds the winner's body.
pub async fn concurrent_creates_have_one_winner(store: &dyn BlobStore) {
    let key = format!("{}contested", scratch_dir("concurrent_creates"));
    let bodies: Vec<Bytes> = (0..16)
        .map(|task| patterned(task, 4096 + task as usize))
        .collect();
    race_creates(store, &key, &bodies).await;
}

/// 16 concurrent creates of one key mixing small (single put) and large (staged multipart) bodies: the same
/// single-winner guarantee across both write paths.
pub async fn concurrent_large_and_small_creates_have_one_winner(store: &dyn BlobStore) {
    let key = format!("{}contested", scratch_dir("concurrent_mixed_creates"));
    let bodies: Vec<Bytes> = (0..16)
        .map(|task| {
            if task % 2 == 0 {
                patterned(task, 100 + task as usize)
            } else {
                patterned(task, LARGE)
            }
        })
        .collect();
    race_creates(store, &key, &bodies).await;
    assert_no_staging_listed(store).await;
}

/// Races one create per body on `key`. Every body holds back its last byte until all creates have read
/// the rest (or 10 s passed, for stores that serialise creates), so that they all reach the point of
/// publishing together: an early "does it exist?" check cannot stand in for an atomic create.
async fn race_creates(store: &dyn BlobStore, key: &str, bodies: &[Bytes]) {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let held_back_body = |body: &Bytes| -> ByteStream {
        let split = body.len().saturating_sub(1);
        let (most, last) = (body.slice(..split), body.slice(split..));
        let barrier = std::sync::Arc::clone(&barrier);
        chunked(&most, 1 << 20)
            .chain(futures::stream::once(async move {
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(10), barrier.wait()).await;
                Ok(last)
            }))
            .boxed()
    };
    let outcomes = futures::future::join_all(
        bodies
            .iter()
            .map(|body| store.create(key, held_back_body(body))),
    )
    .await;
    let winners: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent create of {key} must win: {outcomes:?}"
    );
    for (task, outcome) in outcomes.iter().enumerate() {
        if task != winners[0] {
            assert!(
                matches!(outcome, Err(StorageError::AlreadyExists { .. })),
                "losing create #{task} of {key} must be AlreadyExists, got {outcome:?}"
            );
        }
    }
    assert_content(store, key, &bodies[winners[0]]).await;
}

/// `put` creates or replaces, whatever the sizes of the old and new bodies; `create` after `put` is
/// `AlreadyExists`.
pub async fn put_replaces(store: &dyn BlobStore) {
    let key = format!("{}blob", scratch_dir("put_replaces"));
    for (version, len) in [(1, 100), (2, LARGE), (3, 10), (4, LARGE + 5)] {
        let data = patterned(version, len);
        assert_eq!(
            store.put(&key, chunked(&data, 1 << 20)).await.ok(),
            Some(len as u64),
            "put #{version}"
        );
        assert_content(store, &key, &data).await;
    }
    let outcome = store.create(&key, chunked(b"x", 1)).await;
    assert!(
        matches!(outcome, Err(StorageError::AlreadyExists { .. })),
        "create after put: {outcome:?}"
    );
}

/// `sync_writes` succeeds after writes, also for many concurrent callers, and changes nothing visible.
pub async fn concurrent_syncs_after_writes_succeed(store: &dyn BlobStore) {
    let dir = scratch_dir("sync_writes");
    let writes = (0..8).map(|k| {
        let key = format!("{dir}{k}");
        async move {
            store.create(&key, chunked(&patterned(k, 100), 7)).await?;
            store.sync_writes().await?;
            Ok::<_, StorageError>(key)
        }
    });
    let keys = futures::future::try_join_all(writes)
        .await
        .expect("writes and syncs");
    store.sync_writes().await.expect("a sync with nothing new");
    for (k, key) in keys.iter().enumerate() {
        assert_content(store, key, &patterned(k as u64, 100)).await;
    }
}

/// `create_from_file` stores the file's bytes, refuses an existing key, and the blob stays when the caller
/// removes its file.
pub async fn create_from_file_stores_the_file(store: &dyn BlobStore) {
    let key = format!("{}from-file", scratch_dir("create_from_file"));
    let data = patterned(11, LARGE + 3);
    let dir = tempfile_dir();
    let path = dir.join("spooled");
    std::fs::write(&path, &data).expect("writing the source file");
    assert_eq!(
        store.create_from_file(&key, &path).await.ok(),
        Some(data.len() as u64)
    );
    let again = store.create_from_file(&key, &path).await;
    assert!(
        matches!(again, Err(StorageError::AlreadyExists { .. })),
        "second create_from_file: {again:?}"
    );
    std::fs::remove_file(&path).expect("removing the source file");
    assert_content(store, &key, &data).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory of the system's temporary directory.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dicomweb-conformance-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("creating a temporary directory");
    dir
}

/// A zero-length body is a blob of size 0, distinct from no blob.
pub async fn empty_blob_round_trips(store: &dyn BlobStore) {
    let dir = scratch_dir("empty_blob");
    let key = format!("{dir}empty");
    let empty: ByteStream = futures::stream::empty().boxed();
    assert_eq!(store.create(&key, empty).await.ok(), Some(0));
    assert_content(store, &key, b"").await;
    assert_eq!(store.get_range(&key, 0..0).await.ok(), Some(Bytes::new()));
    assert!(
        store.get_range(&key, 0..1).await.is_err(),
        "reading past the end of an empty blob"
    );
    let listed = list_keys(store, &dir).await;
    assert_eq!(listed.get(&key), Some(&0), "empty blobs are listed");
}

/// Every read of a missing key is `NotFound`, naming the key.
pub async fn missing_blob_is_not_found(store: &dyn BlobStore) {
    let key = format!("{}missing", scratch_dir("missing_blob"));
    let is_not_found =
        |e: &StorageError| matches!(e, StorageError::NotFound { key: k } if *k == key);
    let get = store.get(&key).await.err();
    assert!(get.as_ref().is_some_and(is_not_found), "get: {get:?}");
    let head = store.head(&key).await.err();
    assert!(head.as_ref().is_some_and(is_not_found), "head: {head:?}");
    for range in [0..1, 0..0] {
        let got = store.get_range(&key, range.clone()).await.err();
        assert!(
            got.as_ref().is_some_and(is_not_found),
            "get_range {range:?}: {got:?}"
        );
    }
    for ranges in [vec![0..1, 2..3], vec![], vec![Range { start: 0, end: 0 }]] {
        let got = store.get_ranges(&key, &ranges).await.err();
        assert!(
            got.as_ref().is_some_and(is_not_found),
            "get_ranges {ranges:?}: {got:?}"
        );
    }
}

/// `get_range` returns exactly `[start, end)`, including at the edges; ranges past the end or reversed are
/// errors, never short reads.
pub async fn get_range_reads_exact_bytes(store: &dyn BlobStore) {
    let key = format!("{}blob", scratch_dir("get_range"));
    let data = patterned(7, 1000);
    assert!(store.create(&key, chunked(&data, 100)).await.is_ok());
    for range in [0..1000, 0..1, 999..1000, 10..20, 0..0, 500..500, 1000..1000] {
        let got = store.get_range(&key, range.clone()).await;
        assert_eq!(
            got.ok().as_deref(),
            Some(&data[slice(&range)]),
            "get_range {range:?}"
        );
    }
    for range in [
        0..1001,
        999..1001,
        1000..1001,
        1001..1001,
        2000..3000,
        Range { start: 20, end: 10 },
    ] {
        let got = store.get_range(&key, range.clone()).await;
        assert!(
            matches!(got, Err(StorageError::Other { .. })),
            "get_range {range:?} of a 1000-byte blob must fail with Other, got {got:?}"
        );
    }
}

/// `get_whole_many` answers each `(key, size)` as `get_range(key, 0..size)` would, in the order given: the
/// bytes, `NotFound` for a missing blob, an error for a size past the end or an invalid key.
pub async fn get_whole_many_reads_each_blob(store: &dyn BlobStore) {
    let dir = scratch_dir("get_whole_many");
    let blobs: Vec<(String, Bytes)> = [("a", 10_000), ("b", 1), ("empty", 0)]
        .into_iter()
        .map(|(name, len)| (format!("{dir}{name}"), patterned(len as u64, len)))
        .collect();
    for (key, data) in &blobs {
        let created = store.create(key, chunked(data, 4096)).await;
        assert!(created.is_ok(), "create {key}: {created:?}");
    }
    let (a, b, empty) = (&blobs[0], &blobs[1], &blobs[2]);
    let asked = vec![
        (b.0.clone(), 1),
        (format!("{dir}missing"), 5),
        (a.0.clone(), 10_000),
        (a.0.clone(), 3),
        (empty.0.clone(), 0),
        (b.0.clone(), 2),
        ("bad//key".to_owned(), 1),
    ];
    let got = store.get_whole_many(asked.clone()).await;
    assert_eq!(got.len(), asked.len(), "one answer per blob asked");
    let bytes = |i: usize| got[i].as_ref().ok().map(|b| b.to_vec());
    let vec = |b: &Bytes| b.to_vec();
    assert_eq!(bytes(0), Some(vec(&b.1)));
    assert!(
        matches!(got[1], Err(StorageError::NotFound { .. })),
        "a missing blob: {:?}",
        got[1]
    );
    assert_eq!(bytes(2), Some(vec(&a.1)));
    assert_eq!(
        bytes(3),
        Some(a.1[..3].to_vec()),
        "a shorter size reads the start"
    );
    assert_eq!(bytes(4), Some(Vec::new()));
    assert!(
        matches!(got[5], Err(StorageError::Other { .. })),
        "a size past the end: {:?}",
        got[5]
    );
    assert!(
        matches!(got[6], Err(StorageError::InvalidKey { .. })),
        "an invalid key: {:?}",
        got[6]
    );
    assert!(store.get_whole_many(Vec::new()).await.is_empty());
}

/// `get_ranges` returns one result per range, in the order asked, whether ranges overlap, touch, repeat,
/// are unsorted or empty; one bad range fails the call.
pub async fn get_ranges_reads_each_range(store: &dyn BlobStore) {
    let key = format!("{}blob", scratch_dir("get_ranges"));
    let data = patterned(8, LARGE);
    assert!(store.create(&key, chunked(&data, 1 << 20)).await.is_ok());
    let end = LARGE as u64;
    let ranges = vec![
        end - 10..end,
        0..10,
        5..15,
        15..15,
        10..20,
        0..10,
        4_000_000..9_000_000,
        end..end,
        100..101,
    ];
    let got = store.get_ranges(&key, &ranges).await;
    let expected: Vec<&[u8]> = ranges.iter().map(|r| &data[slice(r)]).collect();
    let got_slices: Option<Vec<&[u8]>> = got
        .as_ref()
        .ok()
        .map(|v| v.iter().map(|b| b.as_ref()).collect());
    assert!(
        got_slices == Some(expected),
        "get_ranges {ranges:?} returned wrong bytes (or {:?})",
        got.err()
    );
    assert_eq!(store.get_ranges(&key, &[]).await.ok(), Some(vec![]));
    for bad in [
        vec![0..10, end - 1..end + 1],
        vec![Range {
            start: end + 1,
            end: end + 1,
        }],
        vec![Range { start: 10, end: 5 }],
    ] {
        let got = store.get_ranges(&key, &bad).await;
        assert!(
            matches!(got, Err(StorageError::Other { .. })),
            "get_ranges {bad:?} must fail, got {got:?}"
        );
    }
}

/// `delete` removes a blob, the key can then be created again, and deleting a missing key is Ok.
pub async fn delete_is_idempotent(store: &dyn BlobStore) {
    let key = format!("{}blob", scratch_dir("delete"));
    assert!(
        store.delete(&key).await.is_ok(),
        "deleting a key never written"
    );
    assert!(store.create(&key, chunked(b"one", 1)).await.is_ok());
    assert!(store.delete(&key).await.is_ok());
    assert!(
        matches!(store.head(&key).await, Err(StorageError::NotFound { .. })),
        "deleted blob is gone"
    );
    assert!(store.delete(&key).await.is_ok(), "deleting twice");
    assert!(
        store.create(&key, chunked(b"two", 1)).await.is_ok(),
        "a deleted key can be created again"
    );
    assert_content(store, &key, b"two").await;
}

/// `list` returns exactly the blobs under a prefix, at any depth, with their sizes; segments are not
/// confused with longer names (`a/` does not match `ab/`).
pub async fn list_filters_by_prefix(store: &dyn BlobStore) {
    let dir = scratch_dir("list");
    let blobs = [
        ("a/1", 1),
        ("a/2", 2),
        ("a/b/3", 3),
        ("a/b/c/4", 4),
        ("ab/5", 5),
        ("a.x", 6),
    ];
    for (name, len) in blobs {
        assert!(
            store
                .create(&format!("{dir}{name}"), chunked(&patterned(0, len), 1))
                .await
                .is_ok()
        );
    }
    let expect = |names: &[&str]| -> BTreeMap<String, u64> {
        blobs
            .iter()
            .filter(|(name, _)| names.contains(name))
            .map(|(name, len)| (format!("{dir}{name}"), *len as u64))
            .collect()
    };
    assert_eq!(
        list_keys(store, &dir).await,
        expect(&["a/1", "a/2", "a/b/3", "a/b/c/4", "ab/5", "a.x"])
    );
    assert_eq!(
        list_keys(store, &format!("{dir}a/")).await,
        expect(&["a/1", "a/2", "a/b/3", "a/b/c/4"])
    );
    assert_eq!(
        list_keys(store, &format!("{dir}a/b/")).await,
        expect(&["a/b/3", "a/b/c/4"])
    );
    assert_eq!(
        list_keys(store, &format!("{dir}a/b/c/4/")).await,
        expect(&[])
    );
    assert_eq!(
        list_keys(store, &format!("{dir}nothing/")).await,
        expect(&[])
    );
    let everything = list_keys(store, "").await;
    assert!(
        everything.contains_key(&format!("{dir}a/b/c/4")),
        "list(\"\") reaches every blob"
    );
    assert!(
        everything.keys().all(|k| !k.starts_with(STAGING_PREFIX)),
        "list(\"\") hides staging blobs"
    );
    for bad in ["/", "../", ".staging/", "a//"] {
        let first = store.list(bad).next().await;
        assert!(
            matches!(first, Some(Err(StorageError::InvalidKey { .. }))),
            "list({bad:?}) must yield InvalidKey, got {first:?}"
        );
    }
}

/// While a large create is still streaming its body, nothing is visible: neither the key (head, get,
/// list) nor any staging blob.
pub async fn in_progress_create_is_invisible(store: &dyn BlobStore) {
    let dir = scratch_dir("in_progress");
    let key = format!("{dir}blob");
    let data = patterned(9, LARGE + (1 << 20));
    let (reached_tx, reached_rx) = oneshot::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let head_part = data.slice(..LARGE);
    let tail_part = data.slice(LARGE..);
    // Yields more than the multipart threshold, then waits for the checks before yielding the rest.
    let body: ByteStream = chunked(&head_part, 1 << 20)
        .chain(futures::stream::once(async move {
            let _ = reached_tx.send(());
            let _ = release_rx.await;
            Ok(tail_part)
        }))
        .boxed();
    let checks = async {
        assert!(
            reached_rx.await.is_ok(),
            "the store stopped reading the body early"
        );
        let head = store.head(&key).await;
        assert!(
            matches!(head, Err(StorageError::NotFound { .. })),
            "head while streaming: {head:?}"
        );
        assert!(store.get(&key).await.is_err(), "get while streaming");
        assert!(
            list_keys(store, &dir).await.is_empty(),
            "list while streaming"
        );
        assert_no_staging_listed(store).await;
        let _ = release_tx.send(());
    };
    let (created, ()) = futures::join!(store.create(&key, body), checks);
    assert_eq!(created.ok(), Some(data.len() as u64));
    assert_content(store, &key, &data).await;
    assert_eq!(list_keys(store, &dir).await.len(), 1);
    assert_no_staging_listed(store).await;
}

/// Every method rejects an invalid key with `InvalidKey` (and writes nothing), including the reserved
/// staging prefix.
pub async fn invalid_keys_are_rejected(store: &dyn BlobStore) {
    let too_long = "k".repeat(crate::MAX_KEY_LEN + 1);
    let bad_keys = [
        "",
        "/abs",
        "dir/",
        "a//b",
        "..",
        "a/../b",
        "a/./b",
        "sp ace",
        "back\\slash",
        "h#1",
        ".staging/x",
    ];
    for key in bad_keys.iter().copied().chain([too_long.as_str()]) {
        let is_invalid = |e: Option<&StorageError>| matches!(e, Some(StorageError::InvalidKey { key: k, .. }) if k == key);
        assert!(
            is_invalid(store.create(key, chunked(b"x", 1)).await.as_ref().err()),
            "create {key:?}"
        );
        assert!(
            is_invalid(store.put(key, chunked(b"x", 1)).await.as_ref().err()),
            "put {key:?}"
        );
        assert!(
            is_invalid(store.get(key).await.as_ref().err()),
            "get {key:?}"
        );
        assert!(
            is_invalid(store.get_range(key, 0..1).await.as_ref().err()),
            "get_range {key:?}"
        );
        assert!(
            is_invalid(
                store
                    .get_ranges(key, &[Range { start: 0, end: 1 }])
                    .await
                    .as_ref()
                    .err()
            ),
            "get_ranges {key:?}"
        );
        assert!(
            is_invalid(store.head(key).await.as_ref().err()),
            "head {key:?}"
        );
        assert!(
            is_invalid(store.delete(key).await.as_ref().err()),
            "delete {key:?}"
        );
    }
    assert_no_staging_listed(store).await;
}

/// A body stream that fails (before or after the multipart threshold) fails the write with the stream's
/// error and leaves nothing behind: no blob for `create`, the previous blob for `put`, no staging blob.
pub async fn failing_body_leaves_nothing(store: &dyn BlobStore) {
    let dir = scratch_dir("failing_body");
    for len in [100, LARGE, HUGE] {
        let created = format!("{dir}created-{len}");
        let outcome = store.create(&created, failing(&patterned(3, len))).await;
        assert!(
            is_injected(&outcome),
            "create with a failing body must return its error, got {outcome:?}"
        );
        assert!(
            matches!(
                store.head(&created).await,
                Err(StorageError::NotFound { .. })
            ),
            "{created} exists"
        );

        let replaced = format!("{dir}replaced-{len}");
        let original = patterned(4, 50);
        assert!(store.put(&replaced, chunked(&original, 50)).await.is_ok());
        let outcome = store.put(&replaced, failing(&patterned(5, len))).await;
        assert!(
            is_injected(&outcome),
            "put with a failing body must return its error, got {outcome:?}"
        );
        assert_content(store, &replaced, &original).await;

        // The key is still free to create after a failed create.
        assert!(store.create(&created, chunked(b"ok", 2)).await.is_ok());
    }
    let listed: Vec<String> = list_keys(store, &dir).await.into_keys().collect();
    assert_eq!(
        listed.len(),
        6,
        "only the blobs written successfully are listed: {listed:?}"
    );
    assert_no_staging_listed(store).await;
}

/// A ~20 MiB body (several parts) round-trips through `create` and `put`, including ranges across part
/// boundaries.
pub async fn large_body_round_trips(store: &dyn BlobStore) {
    let dir = scratch_dir("large_body");
    let data = patterned(11, HUGE);
    let created = format!("{dir}created");
    assert_eq!(
        store.create(&created, chunked(&data, 1_000_003)).await.ok(),
        Some(HUGE as u64)
    );
    assert_content(store, &created, &data).await;
    let replaced = format!("{dir}replaced");
    assert_eq!(
        store.put(&replaced, chunked(&data, usize::MAX)).await.ok(),
        Some(HUGE as u64)
    );
    assert_content(store, &replaced, &data).await;
    let boundary = crate::MULTIPART_PART_SIZE as u64;
    for range in [
        boundary - 3..boundary + 3,
        2 * boundary - 1..2 * boundary + 1,
        HUGE as u64 - 1..HUGE as u64,
    ] {
        let got = store.get_range(&created, range.clone()).await;
        assert_eq!(
            got.ok().as_deref(),
            Some(&data[slice(&range)]),
            "get_range {range:?} of a large blob"
        );
    }
    assert_no_staging_listed(store).await;
}

// ---- helpers ----

/// A fresh prefix per check, so checks neither collide nor depend on what the store already holds.
fn scratch_dir(check: &str) -> String {
    format!("conformance/{check}-{}/", uuid::Uuid::new_v4().simple())
}

/// Deterministic pseudo-random bytes (xorshift), different for each seed.
fn patterned(seed: u64, len: usize) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// `data` as a stream of `chunk`-byte pieces.
fn chunked(data: &[u8], chunk: usize) -> ByteStream {
    let data = Bytes::copy_from_slice(data);
    let chunk = chunk.max(1);
    let pieces: Vec<Result<Bytes, StorageError>> = (0..data.len())
        .step_by(chunk)
        .map(|start| Ok(data.slice(start..data.len().min(start.saturating_add(chunk)))))
        .collect();
    futures::stream::iter(pieces).boxed()
}

const INJECTED: &str = "injected body failure";

/// `data` in 1 MiB chunks followed by an error, as from a client that disconnects.
fn failing(data: &[u8]) -> ByteStream {
    chunked(data, 1 << 20)
        .chain(futures::stream::once(async {
            Err(StorageError::other(INJECTED))
        }))
        .boxed()
}

fn is_injected<T>(outcome: &Result<T, StorageError>) -> bool {
    matches!(outcome, Err(StorageError::Other { message, .. }) if message == INJECTED)
}

fn slice(range: &Range<u64>) -> Range<usize> {
    range.start as usize..range.end as usize
}

async fn assert_content(store: &dyn BlobStore, key: &str, expected: &[u8]) {
    let (meta, body) = match store.get(key).await {
        Ok(found) => found,
        Err(e) => panic!("get {key}: {e:?}"),
    };
    assert_eq!(
        meta,
        BlobMeta {
            key: key.to_owned(),
            size: expected.len() as u64
        },
        "get {key} metadata"
    );
    let got = read_to_bytes(body).await;
    let matches = got.as_ref().is_ok_and(|b| b.as_ref() == expected);
    assert!(
        matches,
        "content of {key} differs from what was written ({} bytes expected, got {:?})",
        expected.len(),
        got.map(|b| b.len())
    );
}

async fn list_keys(store: &dyn BlobStore, prefix: &str) -> BTreeMap<String, u64> {
    let mut listed = BTreeMap::new();
    let mut stream = store.list(prefix);
    while let Some(entry) = stream.next().await {
        match entry {
            Ok(meta) => {
                assert!(
                    meta.key.starts_with(prefix),
                    "list({prefix:?}) returned {}",
                    meta.key
                );
                assert!(
                    listed.insert(meta.key.clone(), meta.size).is_none(),
                    "{} listed twice",
                    meta.key
                );
            }
            Err(e) => panic!("list({prefix:?}): {e:?}"),
        }
    }
    listed
}

async fn assert_no_staging_listed(store: &dyn BlobStore) {
    let everything = list_keys(store, "").await;
    let staging: Vec<&String> = everything
        .keys()
        .filter(|k| k.starts_with(STAGING_PREFIX))
        .collect();
    assert!(
        staging.is_empty(),
        "staging blobs must never be listed: {staging:?}"
    );
}
