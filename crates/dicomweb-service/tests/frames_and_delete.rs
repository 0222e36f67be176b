//! Frames are read by byte ranges recorded at store time; deletes remove the stored files.

mod common;
mod counting_store;

use std::sync::Arc;

use counting_store::CountingStore;
use dicomweb_index::{Index, Scope};
use dicomweb_service::{ServiceConfig, StudiesService, TransferSyntaxRequest};
use dicomweb_storage::{BlobStore, open_store};
use futures::TryStreamExt;

use common::{fresh_catalogue, test_file as sample};

async fn stored(service: &StudiesService, name: &str) -> Scope {
    let (study, series, sop) = common::store_file(service, sample(name)).await;
    Scope::Instance(study, series, sop)
}

/// A service whose storage counts the bytes read through it.
fn counted_service() -> (tempfile::TempDir, Arc<CountingStore>, StudiesService) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(CountingStore::new(open_store("memory://").unwrap()));
    let service = StudiesService::new(
        store.clone(),
        fresh_catalogue(),
        Index::open_in_ram().unwrap(),
        ServiceConfig::new(dir.path().into()),
    );
    (dir, store, service)
}

#[tokio::test]
async fn the_last_frame_is_read_without_reading_the_file() {
    let (_dir, store, service) = counted_service();
    // rtdose: 15 native frames of 10x10 32-bit values (400 bytes each).
    let scope = stored(&service, "pydicom/rtdose.dcm").await;
    store.take_bytes_read();

    let frames = service
        .frames(&scope, &[15], &TransferSyntaxRequest::default())
        .await
        .unwrap();
    assert_eq!(frames.frames[0].len(), 400);
    assert_eq!(
        store.take_bytes_read(),
        400,
        "exactly the frame's bytes are read"
    );

    let file_len = sample("pydicom/rtdose.dcm").len();
    let expected = &sample("pydicom/rtdose.dcm")[file_len - 400..];
    assert_eq!(
        &frames.frames[0][..],
        expected,
        "the last frame is the last 400 bytes of this file"
    );
}

#[tokio::test]
async fn encapsulated_frames_are_their_fragments() {
    let (_dir, store, service) = counted_service();
    let scope = stored(&service, "pydicom/SC_rgb_rle_2frame.dcm").await;
    store.take_bytes_read();
    let frames = service
        .frames(&scope, &[2, 1], &TransferSyntaxRequest::AsStored)
        .await
        .unwrap();
    assert_eq!(frames.transfer_syntax_uid, "1.2.840.10008.1.2.5");
    assert_eq!(frames.media_type, "image/dicom-rle");
    let read = store.take_bytes_read();
    assert_eq!(
        read,
        (frames.frames[0].len() + frames.frames[1].len()) as u64
    );
    assert!(read < sample("pydicom/SC_rgb_rle_2frame.dcm").len() as u64);
    // An uncompressed frame of a compressed instance needs transcoding.
    let refused = service
        .frames(&scope, &[1], &TransferSyntaxRequest::default())
        .await;
    assert!(matches!(
        refused,
        Err(dicomweb_service::ServiceError::NotAcceptable(_))
    ));
}

#[tokio::test]
async fn delete_removes_the_stored_files() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = open_store("memory://").unwrap();
    let service = StudiesService::new(
        blobs.clone(),
        fresh_catalogue(),
        Index::open_in_ram().unwrap(),
        ServiceConfig::new(dir.path().into()),
    );
    for name in ["red-triangle.dcm", "green-square.dcm", "blue-circle.dcm"] {
        stored(&service, name).await;
    }
    let files = |blobs: Arc<dyn BlobStore>| async move {
        blobs
            .list("studies/")
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len()
    };
    assert_eq!(files(blobs.clone()).await, 3);
    let Scope::Instance(study, series, _) = stored(&service, "pydicom/CT_small.dcm").await else {
        unreachable!()
    };
    assert_eq!(
        service.delete(Scope::Series(study, series)).await.unwrap(),
        1
    );
    assert_eq!(files(blobs.clone()).await, 3);
    let study = "1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420".to_string();
    assert_eq!(
        service.delete(Scope::Study(study.clone())).await.unwrap(),
        3
    );
    assert_eq!(files(blobs.clone()).await, 0);
    assert!(matches!(
        service.delete(Scope::Study(study)).await,
        Err(dicomweb_service::ServiceError::NotFound(_))
    ));
}
