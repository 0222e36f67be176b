//! HTTP routes: each handler maps a request to one service call and its result back to HTTP. No DICOM logic here.

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
use dicomweb_service::{ChangeFeedEntry, ChangeQuery, Scope};
use dicomweb_service::{
    InstanceOutcome, SearchResource, ServiceError, StoreRequestError, StoreStatus, StudiesService,
    TransferSyntaxRequest, check_uid, store_response, store_status,
};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::accept::{MediaType, parse_accept};
use crate::auth::{Access, Authenticator, Permission};
use crate::error::ApiError;

/// Shared state of every worker.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<StudiesService>,
    /// How callers are authenticated; every route but the health check asks it.
    pub auth: Arc<Authenticator>,
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
            Handler::Delete => route.to(delete),
        }
    }
}

/// One route of the API: who may call it is declared with it, so no route exists without an access rule.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: HttpMethod,
    /// The path pattern under each version prefix (`{study}`, `{series}`, `{instance}`, `{frames}`).
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

/// Registers every route of [`ROUTES`] under the current scope, each behind the check of its access rule.
pub fn configure(cfg: &mut web::ServiceConfig, version: ApiVersion, auth: Arc<Authenticator>) {
    cfg.app_data(web::Data::new(version));
    for spec in ROUTES {
        let auth = auth.clone();
        let access = spec.access;
        let route = spec
            .handler
            .to(spec.method.route())
            .wrap(from_fn(move |req, next| {
                crate::auth::authorize(auth.clone(), access, req, next)
            }));
        cfg.route(spec.path, route);
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

/// The service root as the client addressed it, for RetrieveURL values.
fn base_url(req: &HttpRequest, version: ApiVersion) -> String {
    let info = req.connection_info();
    format!("{}://{}{}", info.scheme(), info.host(), version.prefix())
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

// ---------------------------------------------------------------------------------------------- STOW-RS

async fn store(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    version: web::Data<ApiVersion>,
) -> ApiResult {
    let study = req.match_info().get("study").map(str::to_owned);
    if let Some(study) = &study {
        check_uid("StudyInstanceUID", study)?;
    }
    store_request(req, payload, state, **version, study).await
}

/// Parts of one STOW request stored concurrently (each is already read whole, in memory up to the spool limit or
/// in a temporary file).
const PARTS_STORED_AT_ONCE: usize = 8;

/// One part of a STOW request: stored by a task, or already answered.
enum PartStore {
    Task(actix_web::rt::task::JoinHandle<Result<InstanceOutcome, StoreRequestError>>),
    Done(InstanceOutcome),
}

impl PartStore {
    async fn outcome(self) -> Result<InstanceOutcome, ApiError> {
        match self {
            PartStore::Done(outcome) => Ok(outcome),
            PartStore::Task(task) => match task.await {
                Ok(result) => Ok(result?),
                Err(e) => Err(ApiError::Service(ServiceError::Internal(format!(
                    "storing a part failed: {e}"
                )))),
            },
        }
    }
}

async fn store_request(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    version: ApiVersion,
    study: Option<String>,
) -> ApiResult {
    require_json_accept(&req)?;
    let content_type = header_str(&req, header::CONTENT_TYPE)
        .ok_or_else(|| ApiError::UnsupportedMediaType("Content-Type is required: multipart/related; type=\"application/dicom\" or application/dicom".into()))?;
    let media = MediaType::parse(content_type).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "Content-Type \"{content_type}\" is not a media type"
        ))
    })?;
    let service = &state.service;
    let mut outcomes: Vec<InstanceOutcome> = Vec::new();
    match media.essence.as_str() {
        "multipart/related" => {
            if let Some(kind) = media.param("type")
                && !kind.eq_ignore_ascii_case(DICOM)
            {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "multipart/related with type \"{kind}\" is not supported; use type=\"application/dicom\""
                )));
            }
            let boundary = boundary_from_content_type(content_type)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let mut reader = MultipartReader::new(payload, &boundary);
            let mut part_number = 0usize;
            // Each part is read whole, then stored by a task of its own while the next part is read, so the
            // parts of one request share index commits instead of paying one fsync'd commit each.
            let mut in_flight: VecDeque<PartStore> = VecDeque::new();
            // Where the body broke, if it did: the parts before it are stored all the same.
            let mut broken: Option<String> = None;
            loop {
                while in_flight.len() >= PARTS_STORED_AT_ONCE {
                    if let Some(oldest) = in_flight.pop_front() {
                        outcomes.push(oldest.outcome().await?);
                    }
                }
                let headers = match reader.next_part().await {
                    Ok(Some(headers)) => headers,
                    Ok(None) => break,
                    Err(e) => {
                        broken = Some(format!(
                            "part {}: malformed multipart body: {e}",
                            part_number + 1
                        ));
                        break;
                    }
                };
                part_number += 1;
                if let Some(part_type) = headers.content_type() {
                    let essence = MediaType::parse(part_type).map(|m| m.essence);
                    if essence.as_deref() != Some(DICOM) {
                        in_flight.push_back(PartStore::Done(InstanceOutcome::Failed {
                            sop_class_uid: None,
                            sop_instance_uid: None,
                            reason: dicomweb_service::FailureReason::ProcessingFailure,
                            message: format!(
                                "part {part_number} has Content-Type \"{part_type}\"; only application/dicom parts are stored"
                            ),
                            transient: false,
                        }));
                        continue;
                    }
                }
                let body = Box::pin(futures::stream::unfold(&mut reader, |reader| async move {
                    match reader.next_chunk().await {
                        Ok(Some(chunk)) => Some((Ok(chunk), reader)),
                        Ok(None) => None,
                        Err(e) => Some((Err(e), reader)),
                    }
                }));
                let received = match service.receive_instance(body).await {
                    Ok(received) => received,
                    Err(StoreRequestError::MalformedBody(message)) => {
                        broken = Some(format!("part {part_number}: {message}"));
                        break;
                    }
                    Err(e) => return Err(e.into()),
                };
                let (state, study) = (state.clone(), study.clone());
                in_flight.push_back(PartStore::Task(actix_web::rt::spawn(async move {
                    state
                        .service
                        .store_received(study.as_deref(), received)
                        .await
                })));
            }
            for part in in_flight {
                outcomes.push(part.outcome().await?);
            }
            if let Some(message) = broken {
                // A request that changed the archive is never answered with a bare 400: the client learns which
                // instances were stored (202) and that the rest of the body was not read. With nothing stored it is
                // a plain malformed request.
                let stored = outcomes
                    .iter()
                    .any(|o| matches!(o, InstanceOutcome::Stored { .. }));
                if !stored {
                    return Err(ApiError::BadRequest(message));
                }
                outcomes.push(InstanceOutcome::Failed {
                    sop_class_uid: None,
                    sop_instance_uid: None,
                    reason: dicomweb_service::FailureReason::ProcessingFailure,
                    message: format!("{message}; the rest of the request body was not read"),
                    transient: false,
                });
            }
        }
        DICOM => {
            let outcome = service.store_instance(study.as_deref(), payload).await?;
            outcomes.push(outcome);
        }
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type \"{other}\" is not supported; use multipart/related; type=\"application/dicom\" or application/dicom"
            )));
        }
    }
    for outcome in &outcomes {
        if let InstanceOutcome::Failed {
            reason,
            message,
            sop_instance_uid,
            ..
        } = outcome
        {
            tracing::info!(code = reason.code(), sop = ?sop_instance_uid, %message, "instance not stored");
        }
    }
    let status = match store_status(&outcomes) {
        StoreStatus::Empty => return Ok(HttpResponse::NoContent().finish()),
        StoreStatus::AllStored => StatusCode::OK,
        StoreStatus::Partial => StatusCode::ACCEPTED,
        StoreStatus::NoneStored => StatusCode::CONFLICT,
    };
    let dataset = store_response(&outcomes, &base_url(&req, version), study.as_deref());
    let body =
        dicomweb_json::dataset_to_json_bytes(&dataset, &dicomweb_json::JsonOptions::default());
    Ok(dicom_json_response(status, body))
}

// ---------------------------------------------------------------------------------------------- WADO-RS

/// How instances are to be sent back.
#[derive(Debug, Clone, PartialEq)]
enum InstanceFormat {
    Multipart(TransferSyntaxRequest),
    Single(TransferSyntaxRequest),
}

fn transfer_syntax_of(media: &MediaType) -> TransferSyntaxRequest {
    match media.param("transfer-syntax") {
        Some("*") => TransferSyntaxRequest::AsStored,
        Some(uid) => TransferSyntaxRequest::Uid(uid.to_owned()),
        None => TransferSyntaxRequest::default(),
    }
}

fn negotiate_instances(
    req: &HttpRequest,
    single_allowed: bool,
) -> Result<InstanceFormat, ApiError> {
    let accept = header_str(req, header::ACCEPT);
    for media in parse_accept(accept) {
        match media.essence.as_str() {
            "*/*" => {
                return Ok(if single_allowed {
                    InstanceFormat::Single(TransferSyntaxRequest::AsStored)
                } else {
                    InstanceFormat::Multipart(TransferSyntaxRequest::AsStored)
                });
            }
            DICOM if single_allowed => {
                return Ok(InstanceFormat::Single(transfer_syntax_of(&media)));
            }
            "multipart/related" | "multipart/*" => match media.param("type") {
                None => return Ok(InstanceFormat::Multipart(transfer_syntax_of(&media))),
                Some(kind) if kind.eq_ignore_ascii_case(DICOM) => {
                    return Ok(InstanceFormat::Multipart(transfer_syntax_of(&media)));
                }
                Some(_) => {}
            },
            _ => {}
        }
    }
    Err(ApiError::NotAcceptable(format!(
        "Accept \"{}\" is not supported for instances; use multipart/related; type=\"application/dicom\"{}",
        accept.unwrap_or_default(),
        if single_allowed {
            " or application/dicom"
        } else {
            ""
        }
    )))
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

async fn retrieve(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
    let scope = path_scope(&req)?;
    let single_allowed = matches!(scope, Scope::Instance(..));
    let format = negotiate_instances(&req, single_allowed)?;
    let service = state.service.clone();
    let records = service.instances_in(&scope).await?;
    match format {
        InstanceFormat::Single(ts) => {
            service.check_instances_transfer_syntax(&records, &ts)?;
            let record = records
                .into_iter()
                .next()
                .ok_or_else(|| ServiceError::NotFound("instance not found".into()))?;
            let size = record.size;
            let content = service.open_instance(record).await?;
            let content_type = format!(
                "{DICOM}; transfer-syntax={}",
                content.record.transfer_syntax_uid
            );
            Ok(HttpResponse::Ok()
                .content_type(content_type)
                .no_chunking(size)
                .streaming(content.body.map_err(io_error)))
        }
        InstanceFormat::Multipart(ts) => {
            service.check_instances_transfer_syntax(&records, &ts)?;
            let writer = MultipartWriter::new();
            let content_type = format!(
                "multipart/related; type=\"{DICOM}\"; boundary={}",
                writer.boundary()
            );
            let parts = Box::pin(service.open_instances(records).map(|opened| {
                let content = opened.map_err(io_error)?;
                let headers = vec![(
                    "Content-Type".to_owned(),
                    format!(
                        "{DICOM}; transfer-syntax={}",
                        content.record.transfer_syntax_uid
                    ),
                )];
                Ok::<_, std::io::Error>((headers, content.body.map_err(io_error).boxed()))
            }));
            Ok(HttpResponse::Ok()
                .content_type(content_type)
                .streaming(encode_parts(writer, parts)))
        }
    }
}

async fn metadata(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
    require_json_accept(&req)?;
    let scope = path_scope(&req)?;
    if let Some(tags) = header_str(&req, header::IF_NONE_MATCH) {
        let etag = state.service.metadata_etag(&scope).await?;
        if tags.split(',').any(|t| t.trim() == etag || t.trim() == "*") {
            return Ok(HttpResponse::NotModified()
                .insert_header((header::ETAG, etag))
                .finish());
        }
    }
    let document = state.service.metadata(&scope).await?;
    Ok(HttpResponse::Ok()
        .content_type(DICOM_JSON)
        .insert_header((header::ETAG, document.etag))
        .body(document.body))
}

fn parse_frame_numbers(text: &str) -> Result<Vec<u32>, ApiError> {
    text.split(',')
        .map(|n| {
            n.trim().parse::<u32>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "frame list \"{text}\" is malformed: give frame numbers from 1, separated by commas"
                ))
            })
        })
        .collect()
}

/// How frames are to be sent back: multipart or (one frame) single part, and the acceptable media type.
struct FrameFormat {
    multipart: bool,
    media_type: Option<String>,
    transfer_syntax: TransferSyntaxRequest,
}

fn negotiate_frames(req: &HttpRequest, frame_count: usize) -> Result<FrameFormat, ApiError> {
    let accept = header_str(req, header::ACCEPT);
    for media in parse_accept(accept) {
        match media.essence.as_str() {
            "*/*" => {
                return Ok(FrameFormat {
                    multipart: true,
                    media_type: None,
                    transfer_syntax: TransferSyntaxRequest::AsStored,
                });
            }
            "multipart/related" | "multipart/*" => {
                let kind = media
                    .param("type")
                    .unwrap_or(OCTET_STREAM)
                    .to_ascii_lowercase();
                if kind == OCTET_STREAM {
                    return Ok(FrameFormat {
                        multipart: true,
                        media_type: None,
                        transfer_syntax: transfer_syntax_of(&media),
                    });
                }
                if kind.starts_with("image/") || kind.starts_with("video/") {
                    let transfer_syntax = match media.param("transfer-syntax") {
                        Some(uid) if uid != "*" => TransferSyntaxRequest::Uid(uid.to_owned()),
                        _ => TransferSyntaxRequest::AsStored,
                    };
                    return Ok(FrameFormat {
                        multipart: true,
                        media_type: Some(kind),
                        transfer_syntax,
                    });
                }
            }
            OCTET_STREAM if frame_count == 1 => {
                return Ok(FrameFormat {
                    multipart: false,
                    media_type: None,
                    transfer_syntax: transfer_syntax_of(&media),
                });
            }
            _ => {}
        }
    }
    Err(ApiError::NotAcceptable(format!(
        "Accept \"{}\" is not supported for frames; use multipart/related; type=\"application/octet-stream\"",
        accept.unwrap_or_default()
    )))
}

async fn retrieve_frames(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
    let scope = path_scope(&req)?;
    let numbers = parse_frame_numbers(req.match_info().get("frames").unwrap_or_default())?;
    let format = negotiate_frames(&req, numbers.len())?;
    let data = state
        .service
        .frames(&scope, &numbers, &format.transfer_syntax)
        .await?;
    if let Some(wanted) = &format.media_type
        && wanted != data.media_type
    {
        return Err(ApiError::NotAcceptable(format!(
            "the frames are {} ({}); {wanted} would need transcoding, which is not supported",
            data.media_type, data.transfer_syntax_uid
        )));
    }
    let part_type = format!(
        "{}; transfer-syntax={}",
        data.media_type, data.transfer_syntax_uid
    );
    if !format.multipart {
        let frame = data.frames.into_iter().next().unwrap_or_default();
        return Ok(HttpResponse::Ok().content_type(part_type).body(frame));
    }
    let mut writer = MultipartWriter::new();
    let content_type = format!(
        "multipart/related; type=\"{}\"; boundary={}",
        data.media_type,
        writer.boundary()
    );
    let mut body = Vec::with_capacity(data.frames.iter().map(|f| f.len() + 128).sum());
    for frame in &data.frames {
        body.extend_from_slice(&writer.part_header(&[("Content-Type", part_type.as_str())]));
        body.extend_from_slice(frame);
    }
    body.extend_from_slice(&writer.finish());
    Ok(HttpResponse::Ok().content_type(content_type).body(body))
}

// ---------------------------------------------------------------------------------------------- QIDO-RS

async fn search(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: web::Data<ApiVersion>,
) -> ApiResult {
    require_json_accept(&req)?;
    let params = query_pairs(&req)?;
    let resource = search_resource(&req);
    let results = state
        .service
        .search(&resource, &params, &base_url(&req, **version))
        .await?;
    if results.is_empty() {
        return Ok(HttpResponse::NoContent().finish());
    }
    let body = dicomweb_service::search::json_array(&results);
    Ok(dicom_json_response(StatusCode::OK, body))
}

// ---------------------------------------------------------------------------------------------- DELETE

async fn delete(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
    state.service.delete(path_scope(&req)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------------------------------------- change feed

/// A change feed entry as Microsoft's DICOM server writes it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ChangeFeedItem {
    sequence: u64,
    study_instance_uid: String,
    series_instance_uid: String,
    sop_instance_uid: String,
    action: &'static str,
    timestamp: String,
    state: &'static str,
    metadata: Option<Box<serde_json::value::RawValue>>,
}

fn change_feed_item(entry: ChangeFeedEntry) -> Result<ChangeFeedItem, ApiError> {
    let metadata = match entry.metadata {
        Some(bytes) => {
            let text = String::from_utf8(bytes).map_err(|e| {
                ServiceError::Internal(format!("stored metadata is not UTF-8: {e}"))
            })?;
            Some(
                serde_json::value::RawValue::from_string(text)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?,
            )
        }
        None => None,
    };
    let timestamp = entry
        .timestamp
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(ChangeFeedItem {
        sequence: entry.sequence,
        study_instance_uid: entry.study_instance_uid,
        series_instance_uid: entry.series_instance_uid,
        sop_instance_uid: entry.sop_instance_uid,
        action: entry.action.as_str(),
        timestamp,
        state: entry.state.as_str(),
        metadata,
    })
}

fn parse_time(name: &str, value: &str) -> Result<time::OffsetDateTime, ApiError> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "{name} \"{value}\" is not an RFC 3339 date-time such as 2024-01-31T12:00:00Z"
            ))
        })
}

fn parse_number(name: &str, value: &str) -> Result<u64, ApiError> {
    value.parse::<u64>().map_err(|_| {
        ApiError::BadRequest(format!(
            "{name} must be a non-negative integer, not \"{value}\""
        ))
    })
}

fn parse_include_metadata(value: &str) -> Result<bool, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "includemetadata must be true or false, not \"{value}\""
        ))),
    }
}

/// Parses the change feed query for an API version: v1 pages by sequence (`offset` is the exclusive start), v2 and
/// the unversioned root by time window (`offset` skips entries).
fn change_query(version: ApiVersion, params: &[(String, String)]) -> Result<ChangeQuery, ApiError> {
    let (default_limit, max_limit) = if version == ApiVersion::V1 {
        (10, 100)
    } else {
        (100, 200)
    };
    let mut query = ChangeQuery {
        limit: default_limit,
        include_metadata: true,
        ..ChangeQuery::default()
    };
    for (name, value) in params {
        match (name.to_ascii_lowercase().as_str(), version) {
            ("offset", ApiVersion::V1) => query.after_sequence = parse_number("offset", value)?,
            ("offset", _) => query.skip = parse_number("offset", value)?,
            ("limit", _) => {
                let limit = parse_number("limit", value)?;
                if limit == 0 || limit > max_limit {
                    return Err(ApiError::BadRequest(format!(
                        "limit must be between 1 and {max_limit}, not {limit}"
                    )));
                }
                query.limit = limit as usize;
            }
            ("includemetadata", _) => query.include_metadata = parse_include_metadata(value)?,
            ("starttime", ApiVersion::V2 | ApiVersion::Unversioned) => {
                query.start_time = Some(parse_time("startTime", value)?)
            }
            ("endtime", ApiVersion::V2 | ApiVersion::Unversioned) => {
                query.end_time = Some(parse_time("endTime", value)?)
            }
            _ => {}
        }
    }
    if let (Some(start), Some(end)) = (query.start_time, query.end_time)
        && start >= end
    {
        return Err(ApiError::BadRequest(
            "startTime must be before endTime".into(),
        ));
    }
    Ok(query)
}

async fn changefeed(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: web::Data<ApiVersion>,
) -> ApiResult {
    let query = change_query(**version, &query_pairs(&req)?)?;
    let items = state
        .service
        .changes(&query)
        .await?
        .into_iter()
        .map(change_feed_item)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(items))
}

async fn changefeed_latest(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
    let mut include_metadata = true;
    for (name, value) in query_pairs(&req)? {
        if name.eq_ignore_ascii_case("includemetadata") {
            include_metadata = parse_include_metadata(&value)?;
        }
    }
    match state.service.latest_change(include_metadata).await? {
        Some(entry) => Ok(HttpResponse::Ok().json(change_feed_item(entry)?)),
        // Microsoft's server answers an empty feed with 204.
        None => Ok(HttpResponse::NoContent().finish()),
    }
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
