//! HTTP routes: each handler maps a request to one service call and its result back to HTTP. No DICOM logic here.
//!
//! The route table, content negotiation helpers and the shared response shapes are here; each transaction
//! family has its module: `store` (STOW-RS), `retrieve` (WADO-RS), `rendered` (its rendered and thumbnail
//! resources), `bulkdata` (its bulk data), `search` (QIDO-RS), `delete`, `changefeed`.

use std::collections::VecDeque;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use dicomweb_multipart::{
    MultipartReader, MultipartWriter, boundary_from_content_type, encode_parts,
};
use dicomweb_service::Scope;
use dicomweb_service::{
    InstanceOutcome, SearchResource, ServiceError, StoreRequestError, StoreStatus, StudiesService,
    TransferSyntaxRequest, check_uid, store_response, store_status,
};
use futures::{StreamExt, TryStreamExt};

use crate::accept::{MediaType, parse_accept};
use crate::auth::{Access, Authenticator, Permission};
use crate::error::ApiError;

mod bulkdata;
mod changefeed;
mod delete;
mod rendered;
mod retrieve;
mod search;
mod store;

use changefeed::{changefeed, changefeed_latest};
use delete::delete;
use retrieve::{metadata, retrieve, retrieve_frames};
use search::search;
use store::store;

/// Shared state of every worker.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<StudiesService>,
    /// How callers are authenticated; every route but the health check asks it.
    pub auth: Arc<Authenticator>,
    /// How the base of the URLs in responses is found.
    pub origin: Arc<crate::origin::OriginPolicy>,
}

/// The API version a route was reached under; only the change feed's parameters differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    Unversioned,
    V1,
    V2,
}

impl ApiVersion {
    fn prefix(self) -> &'static str {
        match self {
            ApiVersion::Unversioned => "",
            ApiVersion::V1 => "/v1",
            ApiVersion::V2 => "/v2",
        }
    }
}

const DICOM: &str = "application/dicom";
const DICOM_JSON: &str = "application/dicom+json";
const OCTET_STREAM: &str = "application/octet-stream";

type ApiResult = Result<HttpResponse, ApiError>;

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    Get,
    Post,
    Delete,
}

impl HttpMethod {
    pub fn name(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Delete => "DELETE",
        }
    }

    fn route(self) -> actix_web::Route {
        match self {
            HttpMethod::Get => web::get(),
            HttpMethod::Post => web::post(),
            HttpMethod::Delete => web::delete(),
        }
    }
}

/// The handler of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    Health,
    ChangeFeed,
    ChangeFeedLatest,
    Store,
    Search,
    Retrieve,
    Metadata,
    Frames,
    Rendered,
    Thumbnail,
    BulkData,
    BulkDataAll,
    Delete,
}

impl Handler {
    fn to(self, route: actix_web::Route) -> actix_web::Route {
        match self {
            Handler::Health => route.to(health),
            Handler::ChangeFeed => route.to(changefeed),
            Handler::ChangeFeedLatest => route.to(changefeed_latest),
            Handler::Store => route.to(store),
            Handler::Search => route.to(search),
            Handler::Retrieve => route.to(retrieve),
            Handler::Metadata => route.to(metadata),
            Handler::Frames => route.to(retrieve_frames),
            Handler::Rendered => route.to(rendered::rendered),
            Handler::Thumbnail => route.to(rendered::thumbnail),
            Handler::BulkData => route.to(bulkdata::bulk_data),
            Handler::BulkDataAll => route.to(bulkdata::bulk_data_all),
            Handler::Delete => route.to(delete),
        }
    }
}

/// One route of the API: who may call it is declared with it, so no route exists without an access rule.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: HttpMethod,
    /// The path pattern under each version prefix (`{study}`, `{series}`, `{instance}`, `{frames}`,
    /// `{attribute}`).
    pub path: &'static str,
    pub access: Access,
    handler: Handler,
}

const fn route(
    method: HttpMethod,
    path: &'static str,
    access: Access,
    handler: Handler,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        handler,
    }
}

const READ: Access = Access::Requires(Permission::Read);
const WRITE: Access = Access::Requires(Permission::Write);
const DELETE: Access = Access::Requires(Permission::Delete);

/// Every route, under each of `/`, `/v1` and `/v2`. The server registers exactly these (`configure`), and
/// `dicomweb routes` prints them for the tests that try every route with every kind of credential.
pub const ROUTES: &[RouteSpec] = {
    use Handler as H;
    use HttpMethod::{Delete, Get, Post};
    &[
        route(Get, "/health", Access::Open, H::Health),
        route(Get, "/changefeed", READ, H::ChangeFeed),
        route(Get, "/changefeed/latest", READ, H::ChangeFeedLatest),
        route(Post, "/studies", WRITE, H::Store),
        route(Post, "/studies/{study}", WRITE, H::Store),
        route(Get, "/studies", READ, H::Search),
        route(Get, "/series", READ, H::Search),
        route(Get, "/instances", READ, H::Search),
        route(Get, "/studies/{study}/series", READ, H::Search),
        route(Get, "/studies/{study}/instances", READ, H::Search),
        route(
            Get,
            "/studies/{study}/series/{series}/instances",
            READ,
            H::Search,
        ),
        route(Get, "/studies/{study}", READ, H::Retrieve),
        route(Get, "/studies/{study}/series/{series}", READ, H::Retrieve),
        route(
            Get,
            "/studies/{study}/series/{series}/instances/{instance}",
            READ,
            H::Retrieve,
        ),
        route(Get, "/studies/{study}/metadata", READ, H::Metadata),
        route(
            Get,
            "/studies/{study}/series/{series}/metadata",
            READ,
            H::Metadata,
        ),
        route(
            Get,
            "/studies/{study}/series/{series}/instances/{instance}/metadata",
            READ,
            H::Metadata,
        ),
        route(
            Get,
            "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
            READ,
            H::Frames,
        ),
        route(
            Get,
            "/studies/{study}/series/{series}/instances/{instance}/rendered",
            READ,
            H::Rendered,
        ),
        route(
            Get,
            "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
            READ,
            H::Rendered,
        ),
        route(Get, "/studies/{study}/rendered", READ, H::Rendered),
        route(
            Get,
            "/studies/{study}/series/{series}/rendered",
            READ,
            H::Rendered,
        ),
        route(Get, "/studies/{study}/thumbnail", READ, H::Thumbnail),
        route(
            Get,
            "/studies/{study}/series/{series}/thumbnail",
            READ,
            H::Thumbnail,
        ),
        route(
            Get,
            "/studies/{study}/series/{series}/instances/{instance}/thumbnail",
            READ,
            H::Thumbnail,
        ),
        route(
            Get,
            "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail",
            READ,
            H::Thumbnail,
        ),
        route(
            Get,
            "/studies/{study}/series/{series}/instances/{instance}/bulkdata/{attribute}",
            READ,
            H::BulkData,
        ),
        route(Get, "/studies/{study}/bulkdata", READ, H::BulkDataAll),
        route(
            Get,
            "/studies/{study}/series/{series}/bulkdata",
            READ,
            H::BulkDataAll,
        ),
        route(
            Get,
            "/studies/{study}/series/{series}/instances/{instance}/bulkdata",
            READ,
            H::BulkDataAll,
        ),
        route(Delete, "/studies/{study}", DELETE, H::Delete),
        route(
            Delete,
            "/studies/{study}/series/{series}",
            DELETE,
            H::Delete,
        ),
        route(
            Delete,
            "/studies/{study}/series/{series}/instances/{instance}",
            DELETE,
            H::Delete,
        ),
    ]
};

/// The version prefixes every route is served under.
pub const VERSION_PREFIXES: [(&str, ApiVersion); 3] = [
    ("/v1", ApiVersion::V1),
    ("/v2", ApiVersion::V2),
    ("", ApiVersion::Unversioned),
];

/// Registers every route of [`ROUTES`] under the current scope, each behind the check of its access rule: one
/// resource per path, where a GET route also answers HEAD (same check, same headers, no body), `OPTIONS` answers
/// 204 with `Allow`, and any other method 405 with `Allow`. CORS preflights never get here (see `cors`).
pub fn configure(cfg: &mut web::ServiceConfig, version: ApiVersion, auth: Arc<Authenticator>) {
    cfg.app_data(web::Data::new(version));
    let mut paths: Vec<&'static str> = Vec::new();
    for spec in ROUTES {
        if !paths.contains(&spec.path) {
            paths.push(spec.path);
        }
    }
    for path in paths {
        let specs: Vec<&RouteSpec> = ROUTES.iter().filter(|s| s.path == path).collect();
        let allow = allowed_methods(&specs);
        let guarded = |spec: &RouteSpec, route: actix_web::Route| {
            let (auth, access) = (auth.clone(), spec.access);
            spec.handler.to(route).wrap(from_fn(move |req, next| {
                crate::auth::authorize(auth.clone(), access, req, next)
            }))
        };
        let mut resource = web::resource(path);
        for spec in &specs {
            resource = resource.route(guarded(spec, spec.method.route()));
            if spec.method == HttpMethod::Get {
                resource = resource.route(guarded(spec, web::head()).wrap(from_fn(without_body)));
            }
        }
        let (options_allow, refused_allow) = (allow.clone(), allow);
        resource = resource
            .route(
                web::route()
                    .method(actix_web::http::Method::OPTIONS)
                    .to(move || {
                        let allow = options_allow.clone();
                        async move {
                            HttpResponse::NoContent()
                                .insert_header((header::ALLOW, allow))
                                .finish()
                        }
                    }),
            )
            .default_service(web::to(move |req: HttpRequest| {
                let allow = refused_allow.clone();
                async move {
                    Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
                        method: req.method().to_string(),
                        allow,
                    })
                }
            }));
        cfg.service(resource);
    }
}

/// The `Allow` value of a path: its methods, HEAD with GET, and OPTIONS.
fn allowed_methods(specs: &[&RouteSpec]) -> String {
    let mut methods = Vec::new();
    for spec in specs {
        methods.push(spec.method.name());
        if spec.method == HttpMethod::Get {
            methods.push("HEAD");
        }
    }
    methods.push("OPTIONS");
    methods.join(", ")
}

/// HEAD: the GET handler's status and headers with the body dropped unread (an instance's file is not read
/// from storage only to be discarded); its size is kept, so `Content-Length` is what GET sends.
async fn without_body(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<EmptyBody>, actix_web::Error> {
    let response = next.call(req).await?;
    Ok(response.map_body(|_, body| EmptyBody(body.size())))
}

/// A body of a given size with no bytes, for HEAD responses (the HTTP codec sends no body for HEAD).
pub struct EmptyBody(actix_web::body::BodySize);

impl actix_web::body::MessageBody for EmptyBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> actix_web::body::BodySize {
        self.0
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Bytes, Self::Error>>> {
        std::task::Poll::Ready(None)
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "healthy"}))
}

/// The UIDs of the matched resource path (`{study}`, `{series}`, `{instance}`), as a scope.
fn path_scope(req: &HttpRequest) -> Result<Scope, ApiError> {
    let info = req.match_info();
    let uid = |name: &str| info.get(name).map(str::to_owned);
    match (uid("study"), uid("series"), uid("instance")) {
        (Some(study), None, None) => Ok(Scope::Study(study)),
        (Some(study), Some(series), None) => Ok(Scope::Series(study, series)),
        (Some(study), Some(series), Some(instance)) => Ok(Scope::Instance(study, series, instance)),
        _ => {
            Err(ServiceError::Internal(format!("route {} has no resource path", req.path())).into())
        }
    }
}

/// The QIDO-RS resource of the matched route.
fn search_resource(req: &HttpRequest) -> SearchResource {
    let info = req.match_info();
    let study = info.get("study").map(str::to_owned);
    let series = info.get("series").map(str::to_owned);
    if req.path().ends_with("/studies") {
        SearchResource::Studies
    } else if req.path().ends_with("/series") {
        SearchResource::Series { study }
    } else {
        SearchResource::Instances { study, series }
    }
}

/// The service root as the client addressed it, for RetrieveURL values: the configured public URL, or what the
/// request says, validated (see [`crate::origin`]).
fn base_url(req: &HttpRequest, state: &AppState, version: ApiVersion) -> String {
    let origin = state
        .origin
        .base_url(&crate::origin::RequestOrigin::of(req));
    format!("{origin}{}", version.prefix())
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("malformed query string: {e}")))
}

fn accepts_json(req: &HttpRequest) -> bool {
    parse_accept(header_str(req, header::ACCEPT))
        .iter()
        .any(|m| {
            matches!(
                m.essence.as_str(),
                "application/dicom+json" | "application/json" | "*/*" | "application/*"
            )
        })
}

fn require_json_accept(req: &HttpRequest) -> Result<(), ApiError> {
    if accepts_json(req) {
        Ok(())
    } else {
        Err(ApiError::NotAcceptable(format!(
            "Accept \"{}\" is not supported here; use application/dicom+json",
            header_str(req, header::ACCEPT).unwrap_or_default()
        )))
    }
}

fn dicom_json_response(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(DICOM_JSON)
        .body(body.into())
}

/// Adds `Vary: Accept` style headers common to every response (none yet); kept as the single hook for them.
pub fn default_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new().add((
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use changefeed::change_query;
    use retrieve::parse_frame_numbers;

    #[test]
    fn only_the_health_check_is_open_and_routes_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for spec in ROUTES {
            assert!(
                seen.insert((spec.method, spec.path)),
                "{} {} is declared twice",
                spec.method.name(),
                spec.path
            );
            assert_eq!(
                spec.access == Access::Open,
                spec.path == "/health",
                "{} {} must require a permission",
                spec.method.name(),
                spec.path
            );
        }
    }

    #[test]
    fn store_requires_write_delete_requires_delete_and_the_rest_read() {
        for spec in ROUTES.iter().filter(|s| s.path != "/health") {
            let expected = match spec.method {
                HttpMethod::Get => Permission::Read,
                HttpMethod::Post => Permission::Write,
                HttpMethod::Delete => Permission::Delete,
            };
            assert_eq!(spec.access, Access::Requires(expected), "{}", spec.path);
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn v1_pages_by_exclusive_sequence_and_v2_skips_entries() {
        let v1 = change_query(ApiVersion::V1, &params(&[("offset", "5")])).unwrap();
        assert_eq!((v1.after_sequence, v1.skip, v1.limit), (5, 0, 10));
        let v2 = change_query(ApiVersion::V2, &params(&[("offset", "5")])).unwrap();
        assert_eq!((v2.after_sequence, v2.skip, v2.limit), (0, 5, 100));
        let root = change_query(
            ApiVersion::Unversioned,
            &params(&[("startTime", "2024-01-01T00:00:00+02:00")]),
        )
        .unwrap();
        assert_eq!(root.start_time.unwrap().offset(), time::UtcOffset::UTC);
    }

    #[test]
    fn change_feed_limits_depend_on_the_version() {
        assert!(change_query(ApiVersion::V1, &params(&[("limit", "100")])).is_ok());
        assert!(change_query(ApiVersion::V1, &params(&[("limit", "101")])).is_err());
        assert!(change_query(ApiVersion::V2, &params(&[("limit", "200")])).is_ok());
        assert!(change_query(ApiVersion::V2, &params(&[("limit", "201")])).is_err());
        assert!(change_query(ApiVersion::V2, &params(&[("limit", "0")])).is_err());
    }

    #[test]
    fn a_time_window_must_be_ordered() {
        let err = change_query(
            ApiVersion::V2,
            &params(&[
                ("startTime", "2024-01-02T00:00:00Z"),
                ("endTime", "2024-01-01T00:00:00Z"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("startTime"));
    }

    #[test]
    fn frame_lists_are_numbers_separated_by_commas() {
        assert_eq!(parse_frame_numbers("1,3, 5").unwrap(), vec![1, 3, 5]);
        for bad in ["", "1,,2", "a", "-1", "1;2", "99999999999"] {
            assert!(parse_frame_numbers(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Fuzzing: change feed parameters and frame lists never panic; errors are 400s.
        #[test]
        fn any_change_feed_parameters_are_handled(
            pairs in proptest::collection::vec(
                (
                    proptest::prop_oneof![
                        proptest::strategy::Just("offset".to_string()),
                        proptest::strategy::Just("limit".to_string()),
                        proptest::strategy::Just("startTime".to_string()),
                        proptest::strategy::Just("endTime".to_string()),
                        proptest::strategy::Just("includemetadata".to_string()),
                        "\\PC{0,10}",
                    ],
                    "\\PC{0,30}",
                ),
                0..6,
            ),
            frames in "\\PC{0,30}",
        ) {
            for version in [ApiVersion::V1, ApiVersion::V2, ApiVersion::Unversioned] {
                if let Err(e) = change_query(version, &pairs) {
                    proptest::prop_assert!(matches!(e, ApiError::BadRequest(_)));
                }
            }
            if let Ok(numbers) = parse_frame_numbers(&frames) {
                proptest::prop_assert!(!numbers.is_empty());
            }
        }
    }
}
