//! Local-disk specifics the generic suite cannot see: what is left in the directory itself.

use dicomweb_storage::{
    BlobStore, ByteStream, MULTIPART_THRESHOLD, ObjectStoreBlobStore, StorageError,
    body_from_bytes, open_store, read_to_bytes,
};
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Every regular file under `root`, relative to it, sorted.
fn files_under(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn local_store(dir: &Path) -> (Arc<LocalFileSystem>, ObjectStoreBlobStore) {
    let raw = Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap());
    let store = ObjectStoreBlobStore::new(raw.clone(), "test".into());
    (raw, store)
}

fn large_body(len: usize) -> ByteStream {
    let data = bytes::Bytes::from(vec![7u8; len]);
    let chunks: Vec<_> = (0..len)
        .step_by(1 << 20)
        .map(|s| Ok(data.slice(s..len.min(s + (1 << 20)))))
        .collect();
    futures::stream::iter(chunks).boxed()
}

#[tokio::test]
async fn a_large_create_leaves_only_the_blob_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local_store(dir.path());
    store
        .create("studies/s1/i1", large_body(MULTIPART_THRESHOLD * 2 + 5))
        .await
        .unwrap();
    assert_eq!(
        files_under(dir.path()),
        vec![
            PathBuf::from("studies/s1/i1")
                .to_string_lossy()
                .into_owned()
        ]
    );
}

#[tokio::test]
async fn failed_writes_leave_no_file_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local_store(dir.path());
    for len in [10, MULTIPART_THRESHOLD + 10, 3 * MULTIPART_THRESHOLD] {
        let failing = large_body(len).chain(futures::stream::once(async {
            Err(StorageError::other("cut"))
        }));
        assert!(
            store
                .create(&format!("c/{len}"), failing.boxed())
                .await
                .is_err()
        );
        let failing = large_body(len).chain(futures::stream::once(async {
            Err(StorageError::other("cut"))
        }));
        assert!(
            store
                .put(&format!("p/{len}"), failing.boxed())
                .await
                .is_err()
        );
    }
    // A losing large create also cleans up after itself.
    store
        .create("taken", body_from_bytes("first"))
        .await
        .unwrap();
    let lost = store
        .create("taken", large_body(MULTIPART_THRESHOLD + 1))
        .await;
    assert!(matches!(lost, Err(StorageError::AlreadyExists { .. })));
    assert_eq!(files_under(dir.path()), vec!["taken".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_large_create_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local_store(dir.path());
    // More than the threshold, then a body that never ends: the upload is in progress when cancelled.
    let endless = large_body(MULTIPART_THRESHOLD + (4 << 20))
        .chain(futures::stream::pending())
        .boxed();
    let cancelled =
        tokio::time::timeout(Duration::from_millis(500), store.create("blob", endless)).await;
    assert!(
        cancelled.is_err(),
        "the create should still be waiting for its body"
    );
    // Clean-up of the partial upload runs on a blocking task after the drop.
    let mut left = files_under(dir.path());
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = files_under(dir.path());
    }
    assert!(
        left.is_empty(),
        "files left by a cancelled create: {left:?}"
    );
}

#[tokio::test]
async fn files_not_written_through_the_store_are_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local_store(dir.path());
    store.create("a/ok", body_from_bytes("x")).await.unwrap();
    std::fs::write(dir.path().join("a/notes with spaces.txt"), "hand-made").unwrap();
    let keys: Vec<String> = store.list("").map(|m| m.unwrap().key).collect().await;
    assert_eq!(keys, vec!["a/ok".to_owned()]);
}

#[tokio::test]
async fn stale_staging_blobs_are_removed_and_fresh_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, store) = local_store(dir.path());
    // What a crash between upload and publication leaves behind.
    raw.put(&".staging/orphan".into(), "partial".into())
        .await
        .unwrap();
    assert_eq!(
        store.list("").count().await,
        0,
        "staging blobs are never listed"
    );
    assert_eq!(
        store
            .remove_stale_staging(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(files_under(dir.path()).len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(store.remove_stale_staging(Duration::ZERO).await.unwrap(), 1);
    assert!(files_under(dir.path()).is_empty());
}

#[tokio::test]
async fn a_staging_blob_older_than_the_cutoff_by_milliseconds_is_removed() {
    // The sweep at start removes what is older than the start: a crash a few milliseconds before it, in the
    // same second, must not leave its staging blob for hours.
    let dir = tempfile::tempdir().unwrap();
    let (raw, store) = local_store(dir.path());
    raw.put(&".staging/orphan".into(), "partial".into())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        store
            .remove_stale_staging(Duration::from_millis(10))
            .await
            .unwrap(),
        1
    );
    assert!(files_under(dir.path()).is_empty());
}

#[tokio::test]
async fn invalid_keys_never_reach_the_backend() {
    let raw = Arc::new(InMemory::new());
    let store = ObjectStoreBlobStore::new(raw.clone(), "memory".into());
    for key in [".staging/x", "a/../b", "/etc/x"] {
        assert!(matches!(
            store.put(key, body_from_bytes("x")).await,
            Err(StorageError::InvalidKey { .. })
        ));
    }
    assert_eq!(raw.list(None).count().await, 0);
}

#[tokio::test]
async fn open_store_creates_the_directory_and_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("var/lib/archive");
    let store = open_store(root.to_str().unwrap()).unwrap();
    assert!(root.is_dir());
    store
        .create("studies/1/blob", body_from_bytes("kept"))
        .await
        .unwrap();
    drop(store);

    let reopened = open_store(url::Url::from_directory_path(&root).unwrap().as_str()).unwrap();
    let (meta, body) = reopened.get("studies/1/blob").await.unwrap();
    assert_eq!(meta.size, 4);
    assert_eq!(read_to_bytes(body).await.unwrap(), "kept");
    assert!(
        format!("{reopened:?}").contains("archive"),
        "Debug names the directory: {reopened:?}"
    );
}

#[tokio::test]
async fn open_store_reports_an_unusable_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let error = open_store(file.join("sub").to_str().unwrap())
        .err()
        .unwrap();
    assert!(matches!(error, StorageError::Other { .. }), "{error:?}");
    assert!(error.to_string().contains("a-file"), "{error}");
}

#[tokio::test]
async fn a_file_on_the_same_disk_is_published_by_a_link_not_a_copy() {
    use std::os::unix::fs::MetadataExt;
    // What a large store does with its spool file: the blob becomes that file, so it is written once.
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path().join("blobs").to_str().unwrap()).unwrap();
    let spool_dir = dir.path().join("tmp");
    std::fs::create_dir_all(&spool_dir).unwrap();
    let spooled = spool_dir.join("instance");
    std::fs::write(&spooled, vec![7u8; 3 * 1024 * 1024]).unwrap();
    let key = "studies/1/series/2/instances/3_0000000000000001.dcm";
    assert_eq!(
        store.create_from_file(key, &spooled).await.unwrap(),
        3 * 1024 * 1024
    );
    store.sync_writes().await.unwrap();
    let blob = dir.path().join("blobs").join(key);
    assert_eq!(
        std::fs::metadata(&blob).unwrap().ino(),
        std::fs::metadata(&spooled).unwrap().ino(),
        "the blob is the spool file itself"
    );
    std::fs::remove_file(&spooled).unwrap();
    let (_, body) = store.get(key).await.unwrap();
    assert_eq!(read_to_bytes(body).await.unwrap().len(), 3 * 1024 * 1024);
    assert!(matches!(
        store.create_from_file(key, &blob).await,
        Err(StorageError::AlreadyExists { .. })
    ));
}

#[test]
fn only_a_directory_store_needs_its_writes_flushed() {
    // Callers rely on this to decide whether a small write is made durable elsewhere and flushed later.
    let dir = tempfile::tempdir().unwrap();
    let directory = open_store(dir.path().to_str().unwrap()).unwrap();
    assert!(
        directory.writes_need_sync(),
        "a directory opened by open_store"
    );
    let memory = open_store("memory://").unwrap();
    assert!(!memory.writes_need_sync(), "memory://");
    let (_, unsynced) = local_store(dir.path());
    assert!(
        !unsynced.writes_need_sync(),
        "a LocalFileSystem wrapped as is fsyncs each write itself"
    );
}
