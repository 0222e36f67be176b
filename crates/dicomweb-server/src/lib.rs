//! The DICOMweb server: maps HTTP (actix-web) to the studies service and back, and the `dicomweb` binary.
//!
//! This crate owns everything HTTP: routes, content negotiation, multipart framing of bodies, status codes (in
//! [`error`] only) and configuration. It holds no DICOM logic; that is the service's.
//!
//! Every route is served under `/v1`, `/v2` and the unversioned root.

pub mod accept;
pub mod auth;
pub mod body;
pub mod client_errors;
pub mod config;
pub mod error;
pub mod log_writer;
pub mod origin;
pub mod routes;
pub mod tls;

use std::sync::Arc;

use actix_web::web;
use dicomweb_index::{Index, IndexError};
use dicomweb_service::{EmbeddedCatalogue, EmbeddedOptions};
use dicomweb_service::{ServiceConfig, StudiesService};
use dicomweb_storage::{ObjectStoreBlobStore, RetryPolicy};

pub use routes::{ApiVersion, AppState};

/// Registers the whole API (all versions) on an actix `App`.
pub fn configure_app(cfg: &mut web::ServiceConfig, state: AppState) {
    let auth = state.auth.clone();
    cfg.app_data(web::Data::new(state));
    for (prefix, version) in routes::VERSION_PREFIXES {
        let auth = auth.clone();
        cfg.service(web::scope(prefix).configure(|c| routes::configure(c, version, auth)));
    }
}

/// CORS for browser viewers: off (no CORS headers) when no origin is configured. Preflights are answered here,
/// before authentication, as browsers send them without credentials.
pub fn cors(origins: &[String]) -> actix_web::middleware::Condition<actix_cors::Cors> {
    use actix_web::http::header;
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::ACCEPT,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
        ])
        .expose_headers([
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            header::ETAG,
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            header::WARNING,
        ])
        .max_age(3600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    actix_web::middleware::Condition::new(!origins.is_empty(), cors)
}

/// Every route under every version prefix, as `dicomweb routes` prints it: method, path and the permission it
/// requires (`open` for none).
pub fn route_list() -> Vec<serde_json::Value> {
    routes::VERSION_PREFIXES
        .iter()
        .flat_map(|(prefix, _)| {
            routes::ROUTES.iter().map(move |spec| {
                serde_json::json!({
                    "method": spec.method.name(),
                    "path": format!("{prefix}{}", spec.path),
                    "permission": spec.access.name(),
                })
            })
        })
        .collect()
}

/// Verifies that the configured storage is reachable and writable, with a short retry budget so that a wrong
/// bucket, key or endpoint is reported within seconds. The error names the URL and the cause.
pub async fn check_storage(settings: &config::Settings) -> anyhow::Result<()> {
    let quick = RetryPolicy {
        max_retries: 2,
        deadline: std::time::Duration::from_secs(10),
    };
    let store = open_storage(settings, quick)?;
    store.check().await.map_err(|e| anyhow::anyhow!("{e}"))
}

fn open_storage(
    settings: &config::Settings,
    policy: RetryPolicy,
) -> anyhow::Result<ObjectStoreBlobStore> {
    dicomweb_storage::open_object_store_with_policy(&settings.storage, policy)
        .map_err(|e| anyhow::anyhow!("cannot open storage {}: {e}", settings.storage))
}

/// Opens storage, the catalogue of record (`<data-dir>/catalogue`) and the search index (`<data-dir>/index`) as
/// configured and assembles the service. A search index of another schema version is moved aside and a new one
/// is filled from the catalogue.
pub fn open_service(settings: &config::Settings) -> anyhow::Result<Arc<StudiesService>> {
    let policy = RetryPolicy {
        deadline: settings.storage_retry_timeout,
        ..RetryPolicy::default()
    };
    let blobs: Arc<dyn dicomweb_storage::BlobStore> = Arc::new(open_storage(settings, policy)?);
    let catalogue_dir = settings.data_dir.join("catalogue");
    // Its writer yields the CPU to searches under load, as the search index's writer does.
    let catalogue_options = EmbeddedOptions {
        writer_niceness: dicomweb_service::INGEST_NICENESS,
        ..EmbeddedOptions::default()
    };
    let catalogue =
        EmbeddedCatalogue::open_with(&catalogue_dir, catalogue_options).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the catalogue in {}: {e}",
                catalogue_dir.display()
            )
        })?;
    let index = open_index(&settings.data_dir.join("index"), &settings.data_dir)?;
    let mut config = ServiceConfig::new(settings.data_dir.join("tmp"));
    config.copy_flush_delay = settings.store_flush_delay;
    config.index_commit_delay = settings.index_commit_delay;
    config.transcode_whole_max_bytes = settings.transcode_whole_max_bytes;
    config.spool_memory = dicomweb_service::SpoolMemory::new(settings.spool_memory);
    let service = StudiesService::new(blobs, Arc::new(catalogue), index, config);
    Ok(Arc::new(service))
}

/// Opens the search index in `index_dir`; one of another schema version is set aside under `aside_in` and a
/// new, empty one opened (the service fills it from the catalogue).
pub fn open_index(
    index_dir: &std::path::Path,
    aside_in: &std::path::Path,
) -> anyhow::Result<Index> {
    let create = |dir: &std::path::Path| {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("cannot create the index directory {}: {e}", dir.display())
        })
    };
    create(index_dir)?;
    match Index::open(index_dir) {
        Ok(index) => Ok(index),
        Err(IndexError::SchemaMismatch { found, expected }) => {
            let aside = aside_in.join(format!(
                "index-schema-{found}-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default()
            ));
            tracing::warn!(
                found = %found,
                expected,
                moved_to = %aside.display(),
                "the search index was written with another schema version; it is moved aside and rebuilt from the catalogue"
            );
            std::fs::rename(index_dir, &aside).map_err(|e| {
                anyhow::anyhow!(
                    "cannot move the old index {} aside: {e}",
                    index_dir.display()
                )
            })?;
            create(index_dir)?;
            Index::open(index_dir).map_err(|e| {
                anyhow::anyhow!("cannot open the index in {}: {e}", index_dir.display())
            })
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot open the index in {}: {e}",
            index_dir.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::{Method, StatusCode, header};
    use actix_web::{App, test};

    fn state(data_dir: &std::path::Path) -> AppState {
        let settings = config::Settings::resolve(&config::ServeArgs {
            data_dir: Some(data_dir.to_owned()),
            storage: Some("memory://".into()),
            ..Default::default()
        })
        .unwrap();
        AppState {
            service: open_service(&settings).unwrap(),
            auth: Arc::new(auth::Authenticator::Anonymous),
            origin: Arc::new(origin::OriginPolicy::new(
                None,
                vec![],
                false,
                settings.bind,
            )),
        }
    }

    fn request(
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, &str)],
    ) -> test::TestRequest {
        let mut request = test::TestRequest::default().method(method).uri(path);
        for (name, value) in headers {
            request = request.insert_header((name.clone(), *value));
        }
        request
    }

    /// Status, headers and body of the app's answer to a request.
    macro_rules! call {
        ($app:expr, $($request:tt)*) => {
            parts(
                test::call_service($app, request($($request)*).to_request())
                    .await
                    .map_into_boxed_body(),
            )
            .await
        };
    }

    async fn parts(
        response: actix_web::dev::ServiceResponse,
    ) -> (StatusCode, header::HeaderMap, bytes::Bytes) {
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, test::read_body(response).await)
    }

    #[actix_web::test]
    async fn head_answers_like_get_without_a_body_and_other_methods_get_405_with_allow() {
        let dir = tempfile::tempdir().unwrap();
        let app = test::init_service(
            App::new()
                .wrap(cors(&[]))
                .configure(|cfg| configure_app(cfg, state(dir.path()))),
        )
        .await;
        for path in ["/health", "/v2/studies/1.2.3/metadata"] {
            let (get_status, get_headers, get_body) = call!(&app, Method::GET, path, &[]);
            let (status, headers, body) = call!(&app, Method::HEAD, path, &[]);
            assert_eq!(status, get_status, "{path}");
            assert_eq!(
                headers.get(header::CONTENT_TYPE),
                get_headers.get(header::CONTENT_TYPE),
                "{path}"
            );
            assert!(body.is_empty() && !get_body.is_empty(), "{path}");
        }
        let (status, headers, body) = call!(&app, Method::PUT, "/v1/studies", &[]);
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            headers.get(header::ALLOW).unwrap(),
            "POST, GET, HEAD, OPTIONS"
        );
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error["status"], 405);
        let (status, headers, _) = call!(&app, Method::PATCH, "/studies/1.2.3/series/4.5.6", &[]);
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            headers.get(header::ALLOW).unwrap(),
            "GET, HEAD, DELETE, OPTIONS"
        );
        let (status, headers, _) = call!(&app, Method::OPTIONS, "/health", &[]);
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(headers.get(header::ALLOW).unwrap(), "GET, HEAD, OPTIONS");
        // A path that does not exist stays a 404, whatever the method.
        let (status, _, _) = call!(&app, Method::PUT, "/nothing", &[]);
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[actix_web::test]
    async fn cors_preflights_are_still_answered_by_cors() {
        let dir = tempfile::tempdir().unwrap();
        let app = test::init_service(
            App::new()
                .wrap(cors(&["https://viewer.example".to_owned()]))
                .configure(|cfg| configure_app(cfg, state(dir.path()))),
        )
        .await;
        let (status, headers, _) = call!(
            &app,
            Method::OPTIONS,
            "/v2/studies",
            &[
                (header::ORIGIN, "https://viewer.example"),
                (header::ACCESS_CONTROL_REQUEST_METHOD, "POST"),
            ],
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
            "https://viewer.example"
        );
        assert!(headers.get(header::ALLOW).is_none());
    }
}
