//! WADO-RS: instances, metadata and frames.

use super::*;

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

pub(super) async fn retrieve(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
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

pub(super) async fn metadata(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
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

pub(super) fn parse_frame_numbers(text: &str) -> Result<Vec<u32>, ApiError> {
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

pub(super) async fn retrieve_frames(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
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
