//! STOW-RS: storing instances, one multipart part at a time.

use super::*;
use crate::body::{BodyFailure, BodyLimits, RequestBody, content_coding};

pub(super) async fn store(
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
    let coding =
        content_coding(req.headers()).map_err(|e| ApiError::UnsupportedMediaType(e.to_string()))?;
    // Registered by the binary; tests that build the app without it get the defaults.
    let limits = req
        .app_data::<web::Data<BodyLimits>>()
        .map(|limits| ***limits)
        .unwrap_or_default();
    let mut body = RequestBody::new(payload, coding, limits);
    let service = &state.service;
    // Set when the body failed in a way that must close the connection (stalled, too large).
    let mut close = false;
    let mut outcomes: Vec<InstanceOutcome> = Vec::new();
    match media.essence.as_str() {
        "multipart/related"
            if media
                .param("type")
                .is_some_and(|kind| kind.eq_ignore_ascii_case(DICOM_JSON)) =>
        {
            let boundary = boundary_from_content_type(content_type)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            outcomes =
                store_metadata_and_bulk_data(&mut body, &boundary, service, study.as_deref())
                    .await?;
        }
        "multipart/related" => {
            if let Some(kind) = media.param("type")
                && !kind.eq_ignore_ascii_case(DICOM)
            {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "multipart/related with type \"{kind}\" is not supported; use type=\"application/dicom\" \
                     or type=\"application/dicom+json\" (metadata and bulk data)"
                )));
            }
            let boundary = boundary_from_content_type(content_type)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            // Borrowed, so that the rest of the body after the closing delimiter can be read below.
            let mut reader = MultipartReader::new(&mut body, &boundary);
            let mut part_number = 0usize;
            // Each part is read whole, then stored by a task of its own while the next part is read, so the
            // parts of one request share index commits instead of paying one fsync'd commit each.
            let mut in_flight: VecDeque<PartStore> = VecDeque::new();
            // The last part read, stored once the body is seen to go on past it (a delimiter and the next part's
            // headers, even malformed ones) or to end whole: a body cut short (closed early, or shorter than its
            // Content-Length) never stores its last part, so a single-part request cut anywhere stores nothing.
            let mut waiting: Option<dicomweb_service::ReceivedInstance> = None;
            let spawn_store = |received| {
                let (state, study) = (state.clone(), study.clone());
                PartStore::Task(actix_web::rt::spawn(async move {
                    state
                        .service
                        .store_received(study.as_deref(), received)
                        .await
                }))
            };
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
                        // The part before ended at a delimiter, so it is whole and stored, unless the body itself
                        // was cut short (the connection failed or closed before its Content-Length).
                        if !matches!(e, dicomweb_multipart::MultipartError::Source(_))
                            && let Some(received) = waiting.take()
                        {
                            in_flight.push_back(spawn_store(received));
                        }
                        broken = Some(format!(
                            "part {}: malformed multipart body: {e}",
                            part_number + 1
                        ));
                        break;
                    }
                };
                if let Some(received) = waiting.take() {
                    in_flight.push_back(spawn_store(received));
                }
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
                waiting = Some(received);
            }
            drop(reader);
            // The epilogue (usually nothing) is read to the end of the body, so that a body shorter than its
            // Content-Length, or one that stalls, is not answered as if it were whole.
            if broken.is_none() {
                while let Some(chunk) = body.next().await {
                    if let Err(e) = chunk {
                        broken = Some(format!(
                            "the request body ended early, after the closing delimiter: {e}"
                        ));
                        break;
                    }
                }
            }
            if let Some(received) = waiting.take() {
                match &mut broken {
                    None => in_flight.push_back(spawn_store(received)),
                    Some(message) => message.push_str(&format!(
                        "; part {part_number}, before it, is not stored either: the body did not go on past it"
                    )),
                }
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
                    return Err(body_failed(body.failure(), message));
                }
                close = body.failure().is_some_and(|f| f != BodyFailure::Broken);
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
            let outcome = match service.store_instance(study.as_deref(), &mut body).await {
                Ok(outcome) => outcome,
                Err(StoreRequestError::MalformedBody(message)) => {
                    return Err(body_failed(body.failure(), message));
                }
                Err(e) => return Err(e.into()),
            };
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
    let dataset = store_response(
        &outcomes,
        &base_url(&req, &state, version),
        study.as_deref(),
    );
    let body =
        dicomweb_json::dataset_to_json_bytes(&dataset, &dicomweb_json::JsonOptions::default());
    let mut response = dicom_json_response(status, body);
    if close {
        response
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(response)
}

/// STOW-RS of DICOM JSON metadata and bulk data (PS3.18 10.5): every part is read whole, within
/// [`dicomweb_service::MAX_JSON_STORE_BYTES`] in all (past it, 413), then the data sets of each
/// `application/dicom+json` part are stored with the other parts as their bulk data, named by `Content-Location`.
async fn store_metadata_and_bulk_data<S, E>(
    body: &mut RequestBody<S>,
    boundary: &str,
    service: &StudiesService,
    study: Option<&str>,
) -> Result<Vec<InstanceOutcome>, ApiError>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let limit = dicomweb_service::MAX_JSON_STORE_BYTES;
    let mut metadata: Vec<Vec<u8>> = Vec::new();
    let mut parts: Vec<dicomweb_service::BulkDataPart> = Vec::new();
    let mut reader = MultipartReader::new(&mut *body, boundary);
    let read: Result<(), ApiError> = async {
        let mut total: u64 = 0;
        let mut part_number = 0usize;
        let malformed = |part: usize, e: dicomweb_multipart::MultipartError| {
            ApiError::BadRequest(format!("part {part}: malformed multipart body: {e}"))
        };
        while let Some(headers) = reader
            .next_part()
            .await
            .map_err(|e| malformed(part_number + 1, e))?
        {
            part_number += 1;
            let content_type = headers.content_type().unwrap_or(OCTET_STREAM).to_owned();
            let location = headers.get("Content-Location").map(str::to_owned);
            let mut bytes = Vec::new();
            while let Some(chunk) = reader
                .next_chunk()
                .await
                .map_err(|e| malformed(part_number, e))?
            {
                total += chunk.len() as u64;
                if total > limit {
                    return Err(ApiError::PayloadTooLarge(format!(
                        "metadata and bulk data of one request are at most {limit} bytes; store large \
                         instances as application/dicom"
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            let essence = MediaType::parse(&content_type).map(|m| m.essence);
            if essence.as_deref() == Some(DICOM_JSON) {
                metadata.push(bytes);
                continue;
            }
            let Some(content_location) = location else {
                return Err(ApiError::BadRequest(format!(
                    "part {part_number} ({content_type}) is bulk data without a Content-Location: nothing can \
                     name it"
                )));
            };
            parts.push(dicomweb_service::BulkDataPart {
                content_location,
                content_type,
                bytes: Bytes::from(bytes),
            });
        }
        Ok(())
    }
    .await;
    drop(reader);
    if let Err(error) = read {
        // A body that stalled or grew too large says so (408, 413), as for instances.
        return Err(match (body.failure(), error) {
            (Some(failure), ApiError::BadRequest(message)) => body_failed(Some(failure), message),
            (_, error) => error,
        });
    }
    if metadata.is_empty() {
        return Err(ApiError::BadRequest(
            "a multipart/related; type=\"application/dicom+json\" request needs an application/dicom+json part"
                .into(),
        ));
    }
    let mut outcomes = Vec::new();
    for document in &metadata {
        outcomes.extend(service.store_json(study, document, &parts).await?);
    }
    Ok(outcomes)
}

/// The answer to a request whose body failed before anything was stored: 408 for a stalled body, 413 for one
/// that decodes to too much, 400 otherwise.
fn body_failed(failure: Option<BodyFailure>, message: String) -> ApiError {
    match failure {
        Some(BodyFailure::Stalled) => ApiError::RequestTimeout(message),
        Some(BodyFailure::TooLarge) => ApiError::PayloadTooLarge(message),
        Some(BodyFailure::Broken) | None => ApiError::BadRequest(message),
    }
}
