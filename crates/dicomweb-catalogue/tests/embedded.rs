//! The embedded catalogue: the conformance suite, and what survives closing and reopening the file.

use dicomweb_catalogue::conformance::{record, store};
use dicomweb_catalogue::{Catalogue, EmbeddedCatalogue, Scope};

async fn fresh() -> EmbeddedCatalogue {
    // The directory is leaked for the test's lifetime: the catalogue keeps its file open.
    let dir = tempfile::tempdir().unwrap().keep();
    EmbeddedCatalogue::open(&dir).unwrap()
}

dicomweb_catalogue::conformance_tests!(embedded, fresh());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_acknowledged_survives_reopening_and_versions_keep_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let (last_version, kept, deleted) = {
        let catalogue = EmbeddedCatalogue::open(dir.path()).unwrap();
        let (_, kept) = store(&catalogue, record("1.1", "1.1.1", "1.1.1.1", 1, "A")).await;
        let (version, deleted) = store(&catalogue, record("1.1", "1.1.1", "1.1.1.2", 2, "B")).await;
        catalogue
            .commit_delete(&Scope::Instance(
                "1.1".into(),
                "1.1.1".into(),
                "1.1.1.2".into(),
            ))
            .await
            .unwrap();
        (version, kept, deleted)
    };
    let catalogue = EmbeddedCatalogue::open(dir.path()).unwrap();
    assert_eq!(catalogue.last_sequence(), 3);
    assert_eq!(
        catalogue
            .instances(&Scope::Study("1.1".into()))
            .await
            .unwrap(),
        [kept]
    );
    assert_eq!(
        catalogue.pending_blob_deletions().await.unwrap(),
        [deleted.blob_key],
        "a file not yet deleted is still listed after a restart"
    );
    assert!(catalogue.allocate_version().await.unwrap() > last_version);
    let (_, _) = store(&catalogue, record("1.1", "1.1.1", "1.1.1.3", 3, "C")).await;
    assert_eq!(
        catalogue.last_sequence(),
        4,
        "the sequence continues without a gap"
    );
}

#[tokio::test]
async fn a_directory_cannot_be_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let _first = EmbeddedCatalogue::open(dir.path()).unwrap();
    assert!(EmbeddedCatalogue::open(dir.path()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_not_yet_released_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, released) = {
        let catalogue = EmbeddedCatalogue::open(dir.path()).unwrap();
        let (_, kept) = dicomweb_catalogue::conformance::store_with_copy(
            &catalogue,
            record("1.1", "1.1.1", "1.1.1.1", 1, "A"),
            b"kept bytes",
        )
        .await;
        let (_, released) = dicomweb_catalogue::conformance::store_with_copy(
            &catalogue,
            record("1.1", "1.1.1", "1.1.1.2", 2, "B"),
            b"released bytes",
        )
        .await;
        catalogue
            .copies_published(vec![released.blob_key.clone()])
            .await
            .unwrap();
        (kept, released)
    };
    let catalogue = EmbeddedCatalogue::open(dir.path()).unwrap();
    assert_eq!(
        catalogue.unpublished_copies(None, 10).await.unwrap(),
        [(kept.blob_key, bytes::Bytes::from_static(b"kept bytes"))],
        "what recovery after a power cut writes again"
    );
    assert_eq!(catalogue.instance_count().await.unwrap(), 2, "{released:?}");
}
