//! Fixtures shared by the service's integration tests (each test crate uses its own part of them).
#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use dicomweb_service::{EmbeddedCatalogue, InstanceOutcome, StudiesService};

/// A new, empty catalogue of record in a temporary directory kept for the test's lifetime.
pub fn fresh_catalogue() -> Arc<EmbeddedCatalogue> {
    let dir = tempfile::tempdir().unwrap().keep();
    Arc::new(EmbeddedCatalogue::open(&dir).unwrap())
}

/// The bytes of a sample file, by its path under `tests/data`.
pub fn test_file(path: &str) -> Bytes {
    let path = format!("{}/../../tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("sample file {path}: {e}")))
}

/// Stores one instance (the body in one chunk), which must succeed; returns its (study, series, sop).
pub async fn store_file(service: &StudiesService, bytes: Bytes) -> (String, String, String) {
    let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes)]);
    match service.store_instance(None, body).await.unwrap() {
        InstanceOutcome::Stored {
            study_instance_uid,
            series_instance_uid,
            sop_instance_uid,
            ..
        } => (study_instance_uid, series_instance_uid, sop_instance_uid),
        failed => panic!("the instance was not stored: {failed:?}"),
    }
}
