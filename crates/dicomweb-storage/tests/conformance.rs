//! The conformance suite against every backend this crate ships: each check as its own test on the
//! in-memory store and on local disk, and the whole suite through `open_store` for each location form.

use dicomweb_storage::{BlobStore, ObjectStoreBlobStore, conformance, open_store};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use std::sync::Arc;

fn in_memory() -> (Arc<dyn BlobStore>, ()) {
    let store = ObjectStoreBlobStore::new(Arc::new(InMemory::new()), "memory".into());
    (Arc::new(store), ())
}

/// Local disk as object_store ships it (no fsync): the semantics under test do not depend on fsync.
fn local_disk() -> (Arc<dyn BlobStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let store = ObjectStoreBlobStore::new(
        Arc::new(local),
        format!("local disk {}", dir.path().display()),
    );
    (Arc::new(store), dir)
}

/// One test per conformance check for a backend; `$make` returns the store and a guard kept alive.
macro_rules! conformance_tests {
    ($backend:ident, $make:expr, [$($check:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let (store, _guard) = $make;
                    conformance::$check(&*store).await;
                }
            )*
        }
    };
}

macro_rules! all_checks {
    ($backend:ident, $make:expr) => {
        conformance_tests!(
            $backend,
            $make,
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
                delete_is_idempotent,
                list_filters_by_prefix,
                in_progress_create_is_invisible,
                invalid_keys_are_rejected,
                failing_body_leaves_nothing,
                large_body_round_trips,
            ]
        );
    };
}

all_checks!(in_memory_store, in_memory());
all_checks!(local_disk_store, local_disk());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_store_memory_url_conforms() {
    let store = open_store("memory://").unwrap();
    conformance::run_all(&*store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_store_file_url_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path().join("not/yet/created")).unwrap();
    assert!(url.as_str().starts_with("file:///"));
    let store = open_store(url.as_str()).unwrap();
    conformance::run_all(&*store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_store_absolute_path_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive");
    let store = open_store(path.to_str().unwrap()).unwrap();
    conformance::run_all(&*store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_store_passes_the_suite_twice() {
    // The suite must not depend on an empty store: a real backend keeps data between runs.
    let (store, _guard) = local_disk();
    conformance::run_all(&*store).await;
    conformance::run_all(&*store).await;
}
