//! Small stores on local disk are acknowledged before their files are flushed: the catalogue commit carries a
//! copy of each file. These tests play a power cut that loses what the page cache held (files missing or
//! damaged) and check that recovery writes them again, byte for byte, and never a deleted one.
//!
//! Each "run" of the server is its own tokio runtime, dropped at the end like a killed process: the background
//! flush scheduled by the stores dies with it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dicomweb_index::{Index, Scope};
use dicomweb_service::{EmbeddedCatalogue, ServiceConfig, StudiesService};
use dicomweb_storage::{open_store, read_to_bytes};

struct Archive {
    root: PathBuf,
}

impl Archive {
    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// The service as the server assembles it on local disk; `flush_delay` is how long stores wait before
    /// their files are flushed and their copies released.
    fn open(&self, flush_delay: Duration) -> StudiesService {
        self.open_with(|config| config.copy_flush_delay = flush_delay)
    }

    /// The same, with settings of `configure` on top of the defaults.
    fn open_with(&self, configure: impl FnOnce(&mut ServiceConfig)) -> StudiesService {
        let blobs = open_store(self.blobs_dir().to_str().unwrap()).unwrap();
        assert!(blobs.writes_need_sync(), "local disk flushes explicitly");
        let catalogue = Arc::new(EmbeddedCatalogue::open(&self.root.join("catalogue")).unwrap());
        let mut config = ServiceConfig::new(self.root.join("spool"));
        configure(&mut config);
        StudiesService::new(blobs, catalogue, Index::open_in_ram().unwrap(), config)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn sample(name: &str) -> Bytes {
    common::test_file(&format!("pydicom/{name}"))
}

/// Stores `name`; returns its (study, series, sop).
async fn store(service: &StudiesService, name: &str) -> (String, String, String) {
    common::store_file(service, sample(name)).await
}

fn scope((study, series, sop): &(String, String, String)) -> Scope {
    Scope::Instance(study.clone(), series.clone(), sop.clone())
}

/// The stored file of an instance, read through the service (WADO's path).
async fn retrieve(service: &StudiesService, uids: &(String, String, String)) -> Bytes {
    let record = service.instances_in(&scope(uids)).await.unwrap().remove(0);
    let content = service.open_instance(record).await.unwrap();
    read_to_bytes(content.body).await.unwrap()
}

/// The path of the one file stored for `sop`.
fn file_of(dir: &Path, sop: &str) -> PathBuf {
    fn walk(dir: &Path, sop: &str, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, sop, found);
            } else if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{sop}_")))
            {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, sop, &mut found);
    assert_eq!(found.len(), 1, "one file for {sop}: {found:?}");
    found.remove(0)
}

/// The stored bytes of a sample: the preamble is zeroed on store.
fn as_stored(name: &str) -> Vec<u8> {
    let mut bytes = sample(name).to_vec();
    bytes[..128].fill(0);
    bytes
}

#[test]
fn files_lost_before_their_flush_are_written_again_from_the_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive {
        root: dir.path().to_path_buf(),
    };
    let names = ["MR_small.dcm", "CT_small.dcm", "rtplan.dcm"];
    // First run: three stores acknowledged; the flush (an hour away) never happens.
    let uids = runtime().block_on(async {
        let service = archive.open(Duration::from_secs(3600));
        let mut uids = Vec::new();
        for name in names {
            uids.push(store(&service, name).await);
        }
        let copies = service
            .catalogue()
            .unpublished_copies(None, 10)
            .await
            .unwrap();
        assert_eq!(copies.len(), 3, "each acknowledged store left a copy");
        uids
    });
    // The power cut: one file never reached the disk, one is half written, one is intact.
    std::fs::remove_file(file_of(&archive.blobs_dir(), &uids[0].2)).unwrap();
    let damaged = file_of(&archive.blobs_dir(), &uids[1].2);
    let length = std::fs::metadata(&damaged).unwrap().len() as usize;
    std::fs::write(&damaged, vec![0u8; length]).unwrap();

    runtime().block_on(async {
        let service = archive.open(Duration::from_secs(3600));
        let report = service.recover().await.unwrap();
        assert_eq!((report.copies_rewritten, report.copies_intact), (2, 1));
        for (name, uids) in names.iter().zip(&uids) {
            assert_eq!(
                retrieve(&service, uids).await.as_ref(),
                as_stored(name),
                "{name} is retrieved as acknowledged"
            );
        }
        assert!(
            service
                .catalogue()
                .unpublished_copies(None, 10)
                .await
                .unwrap()
                .is_empty(),
            "the copies are released once the files are flushed"
        );
        let again = service.recover().await.unwrap();
        assert_eq!((again.copies_rewritten, again.copies_intact), (0, 0));
    });
}

#[test]
fn a_deleted_instance_is_not_written_again_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive {
        root: dir.path().to_path_buf(),
    };
    let (kept, deleted) = runtime().block_on(async {
        let service = archive.open(Duration::from_secs(3600));
        let kept = store(&service, "MR_small.dcm").await;
        let deleted = store(&service, "CT_small.dcm").await;
        service.delete(scope(&deleted)).await.unwrap();
        (kept, deleted)
    });
    // Whatever the power cut did to the files, only the kept instance has a copy to restore.
    std::fs::remove_file(file_of(&archive.blobs_dir(), &kept.2)).unwrap();
    runtime().block_on(async {
        let service = archive.open(Duration::from_secs(3600));
        let report = service.recover().await.unwrap();
        assert_eq!((report.copies_rewritten, report.copies_intact), (1, 0));
        assert_eq!(
            retrieve(&service, &kept).await.as_ref(),
            as_stored("MR_small.dcm")
        );
        assert!(
            service
                .instances_in(&scope(&deleted))
                .await
                .is_err_and(|e| matches!(e, dicomweb_service::ServiceError::NotFound(_))),
            "the deleted instance stays deleted"
        );
        let files = service_files(&archive.blobs_dir());
        assert!(
            files.iter().all(|f| !f.contains(&deleted.2)),
            "no file of the deleted instance: {files:?}"
        );
    });
}

#[test]
fn the_background_flush_releases_the_copies_and_large_stores_keep_none() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive {
        root: dir.path().to_path_buf(),
    };
    runtime().block_on(async {
        // MR_small (9.8 KB) gets a copy, CT_small (39 KB) is flushed first.
        let service = archive.open_with(|config| config.durable_copy_limit = 20_000);
        let small = store(&service, "MR_small.dcm").await;
        let large = store(&service, "CT_small.dcm").await;
        let copies = service
            .catalogue()
            .unpublished_copies(None, 10)
            .await
            .unwrap();
        assert_eq!(copies.len(), 1, "only the small store keeps a copy");
        assert!(copies[0].0.contains(&small.2));
        // Bounded: the flush is scheduled 100 ms after the store.
        let mut released = false;
        for _ in 0..100 {
            if service
                .catalogue()
                .unpublished_copies(None, 10)
                .await
                .unwrap()
                .is_empty()
            {
                released = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(released, "the background flush released the copy");
        assert_eq!(
            retrieve(&service, &small).await.as_ref(),
            as_stored("MR_small.dcm")
        );
        assert_eq!(
            retrieve(&service, &large).await.as_ref(),
            as_stored("CT_small.dcm")
        );
    });
}

/// Every file under `dir`, as a path string.
fn service_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.to_string_lossy().into_owned());
            }
        }
    }
    out
}
