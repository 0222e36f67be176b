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

dicomweb_storage::conformance_tests!(in_memory_store, in_memory());
dicomweb_storage::conformance_tests!(local_disk_store, local_disk());

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
