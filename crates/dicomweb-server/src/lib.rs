//! The DICOMweb server: maps HTTP (actix-web) to the studies service and back, and the `dicomweb` binary.
//!
//! This crate owns everything HTTP: routes, content negotiation, multipart framing of bodies, status codes (in
//! [`error`] only) and configuration. It holds no DICOM logic; that is the service's.
//!
//! Every route is served under `/v1`, `/v2` and the unversioned root.

pub mod accept;
pub mod config;
pub mod error;
pub mod routes;

use std::sync::Arc;

use actix_web::web;
use dicomweb_index::Index;
use dicomweb_service::{ServiceConfig, StudiesService};

pub use routes::{ApiVersion, AppState};

/// Registers the whole API (all versions) on an actix `App`.
pub fn configure_app(cfg: &mut web::ServiceConfig, state: AppState) {
    cfg.app_data(web::Data::new(state))
        .service(web::scope("/v1").configure(|c| routes::configure(c, ApiVersion::V1)))
        .service(web::scope("/v2").configure(|c| routes::configure(c, ApiVersion::V2)))
        .service(web::scope("").configure(|c| routes::configure(c, ApiVersion::Unversioned)));
}

/// Opens storage and index as configured and assembles the service.
pub fn open_service(settings: &config::Settings) -> anyhow::Result<Arc<StudiesService>> {
    let blobs = dicomweb_storage::open_store(&settings.storage)
        .map_err(|e| anyhow::anyhow!("cannot open storage {}: {e}", settings.storage))?;
    let index_dir = settings.data_dir.join("index");
    std::fs::create_dir_all(&index_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the index directory {}: {e}",
            index_dir.display()
        )
    })?;
    let index = Index::open(&index_dir)
        .map_err(|e| anyhow::anyhow!("cannot open the index in {}: {e}", index_dir.display()))?;
    let service = StudiesService::new(
        blobs,
        index,
        ServiceConfig::new(settings.data_dir.join("tmp")),
    );
    Ok(Arc::new(service))
}
