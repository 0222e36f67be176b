//! WADO-RS: instances, metadata and frames.

use super::*;
use dicomweb_service::{FrameBodies, FrameRequest, MetadataBody};

/// How instances are to be sent back: one part or multipart, and the transfer syntaxes acceptable, best
/// first (the service picks, per instance, the first it can produce).
#[derive(Debug, Clone, PartialEq)]
struct InstanceFormat {
    multipart: bool,
    syntaxes: Vec<TransferSyntaxRequest>,
}

fn transfer_syntax_of(media: &MediaType) -> TransferSyntaxRequest {
    match media.param("transfer-syntax") {
        Some("*") => TransferSyntaxRequest::AsStored,
        Some(uid) => TransferSyntaxRequest::Uid(uid.to_owned()),
        None => TransferSyntaxRequest::default(),
    }
}

/// The acceptable forms of a response, gathered from `Accept` ranges best first: the first range of a definite
/// kind (one part or multipart) decides the kind; later ranges of that kind, or of any kind (`*/*`), add their
/// form, once.
struct Acceptable<T> {
    multipart: Option<bool>,
    forms: Vec<T>,
}

impl<T: PartialEq> Acceptable<T> {
    fn new() -> Self {
        Acceptable {
            multipart: None,
            forms: Vec::new(),
        }
    }

    /// Offers `form` from a range of `kind` (`Some(multipart)`, or `None` for any kind, which means
    /// `multipart_if_any` when it comes first).
    fn offer(&mut self, kind: Option<bool>, multipart_if_any: bool, form: T) {
        let chosen = *self
            .multipart
            .get_or_insert(kind.unwrap_or(multipart_if_any));
        if kind.is_none_or(|kind| kind == chosen) && !self.forms.contains(&form) {
            self.forms.push(form);
        }
    }
}

/// Negotiation of an instance retrieve (PS3.18 8.7.3.5): the media ranges of `Accept`, best quality first;
/// the first acceptable one decides one part or multipart, and every acceptable range of that kind adds its
/// transfer syntax (`*/*` adds "as stored" to either kind).
fn negotiate_instances(
    req: &HttpRequest,
    single_allowed: bool,
) -> Result<InstanceFormat, ApiError> {
    let accept = header_str(req, header::ACCEPT);
    let mut acceptable = Acceptable::new();
    for media in parse_accept(accept) {
        let (kind, syntax) = match media.essence.as_str() {
            "*/*" => (None, TransferSyntaxRequest::AsStored),
            DICOM if single_allowed => (Some(false), transfer_syntax_of(&media)),
            "multipart/related" | "multipart/*" => match media.param("type") {
                None => (Some(true), transfer_syntax_of(&media)),
                Some(kind) if kind.eq_ignore_ascii_case(DICOM) => {
                    (Some(true), transfer_syntax_of(&media))
                }
                Some(_) => continue,
            },
            _ => continue,
        };
        acceptable.offer(kind, !single_allowed, syntax);
    }
    match acceptable.multipart {
        Some(multipart) => Ok(InstanceFormat {
            multipart,
            syntaxes: acceptable.forms,
        }),
        None => Err(ApiError::NotAcceptable(format!(
            "Accept \"{}\" is not supported for instances; use multipart/related; type=\"application/dicom\"{}",
            accept.unwrap_or_default(),
            if single_allowed {
                " or application/dicom"
            } else {
                ""
            }
        ))),
    }
}

pub(super) fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

pub(super) async fn retrieve(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
    let scope = path_scope(&req)?;
    let single_allowed = matches!(scope, Scope::Instance(..));
    let format = negotiate_instances(&req, single_allowed)?;
    let service = state.service.clone();
    let records = service.instances_in(&scope).await?;
    let chosen = service
        .choose_transfer_syntaxes(records, &format.syntaxes)
        .await?;
    match format.multipart {
        false => {
            let (record, ts) = chosen
                .into_iter()
                .next()
                .ok_or_else(|| ServiceError::NotFound("instance not found".into()))?;
            let content = service.open_instance_as(record, &ts).await?;
            let content_type = format!(
                "{DICOM}; transfer-syntax={}",
                content.record.transfer_syntax_uid
            );
            let mut response = HttpResponse::Ok();
            response.content_type(content_type);
            if content.length_known {
                response.no_chunking(content.record.size);
            }
            Ok(response.streaming(content.body.map_err(io_error)))
        }
        true => {
            let writer = MultipartWriter::new();
            let content_type = format!(
                "multipart/related; type=\"{DICOM}\"; boundary={}",
                writer.boundary()
            );
            let parts = Box::pin(service.open_instances(chosen).map(|opened| {
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

pub(super) async fn metadata(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: web::Data<ApiVersion>,
) -> ApiResult {
    require_json_accept(&req)?;
    let scope = path_scope(&req)?;
    let base_url = base_url(&req, &state, **version);
    if let Some(tags) = header_str(&req, header::IF_NONE_MATCH) {
        let etag = state.service.metadata_etag(&scope, &base_url).await?;
        if if_none_match_matches(tags, &etag) {
            return Ok(HttpResponse::NotModified()
                .insert_header((header::ETAG, etag))
                .finish());
        }
    }
    let document = state.service.metadata(&scope, &base_url).await?;
    let mut response = HttpResponse::Ok();
    response
        .content_type(DICOM_JSON)
        .insert_header((header::ETAG, document.etag));
    Ok(match document.body {
        MetadataBody::Complete(bytes) => response.body(bytes),
        // Larger than one read: streamed as the catalogue is read, never held whole.
        MetadataBody::Streamed(pieces) => response.streaming(pieces.map_err(io_error)),
    })
}

/// Whether an `If-None-Match` value (`*` or a list of entity tags) matches `etag`, a strong tag of ours.
/// RFC 9110 13.1.2: If-None-Match uses the weak comparison, so `W/"x"` matches `"x"` as `"x"` does.
fn if_none_match_matches(header: &str, etag: &str) -> bool {
    header.split(',').any(|tag| {
        let tag = tag.trim();
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
    })
}

/// The most frame numbers one request may list. Each frame may be asked once (checked by the service against
/// the instance), so a response holds at most the instance's frames; this bound keeps the parsed list small
/// whatever the URL holds.
pub(super) const MAX_FRAMES_PER_REQUEST: usize = 10_000;

pub(super) fn parse_frame_numbers(text: &str) -> Result<Vec<u32>, ApiError> {
    let asked = text.split(',').count();
    if asked > MAX_FRAMES_PER_REQUEST {
        return Err(ApiError::BadRequest(format!(
            "frame list asks for {asked} frames; at most {MAX_FRAMES_PER_REQUEST} may be asked per request"
        )));
    }
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

/// How frames are to be sent back: multipart or (one frame) single part, and the acceptable forms, best first.
struct FrameFormat {
    multipart: bool,
    acceptable: Vec<FrameRequest>,
}

/// Negotiation of a frame retrieve: as for instances ([`negotiate_instances`]), the first acceptable media
/// range decides one part (`application/octet-stream`, one frame) or multipart, and every acceptable range of
/// that kind adds a form. `type="*/*"` (dicomweb-client's default) and `*/*` mean the frames as stored; an
/// image or video type without a transfer syntax means that type, as stored or in its default syntax.
fn negotiate_frames(req: &HttpRequest, frame_count: usize) -> Result<FrameFormat, ApiError> {
    let accept = header_str(req, header::ACCEPT);
    let as_stored = || FrameRequest::from(TransferSyntaxRequest::AsStored);
    let mut acceptable = Acceptable::new();
    for media in parse_accept(accept) {
        let (kind, request) = match media.essence.as_str() {
            "*/*" => (None, as_stored()),
            "multipart/related" | "multipart/*" => {
                let kind = media
                    .param("type")
                    .unwrap_or(OCTET_STREAM)
                    .to_ascii_lowercase();
                if kind == "*/*" {
                    (Some(true), as_stored())
                } else if kind == OCTET_STREAM {
                    (Some(true), FrameRequest::from(transfer_syntax_of(&media)))
                } else if kind.starts_with("image/") || kind.starts_with("video/") {
                    let transfer_syntax = match media.param("transfer-syntax") {
                        Some(uid) if uid != "*" => TransferSyntaxRequest::Uid(uid.to_owned()),
                        _ => TransferSyntaxRequest::AsStored,
                    };
                    (
                        Some(true),
                        FrameRequest {
                            transfer_syntax,
                            media_type: Some(kind),
                        },
                    )
                } else {
                    continue;
                }
            }
            OCTET_STREAM if frame_count == 1 => {
                (Some(false), FrameRequest::from(transfer_syntax_of(&media)))
            }
            _ => continue,
        };
        acceptable.offer(kind, true, request);
    }
    match acceptable.multipart {
        Some(multipart) => Ok(FrameFormat {
            multipart,
            acceptable: acceptable.forms,
        }),
        None => Err(ApiError::NotAcceptable(format!(
            "Accept \"{}\" is not supported for frames; use multipart/related; type=\"application/octet-stream\"",
            accept.unwrap_or_default()
        ))),
    }
}

pub(super) async fn retrieve_frames(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
    let scope = path_scope(&req)?;
    let numbers = parse_frame_numbers(req.match_info().get("frames").unwrap_or_default())?;
    frames_response(&req, &state, &scope, &numbers).await
}

/// The frames `numbers` of the instance `scope`, in the form the request's `Accept` asks.
pub(super) async fn frames_response(
    req: &HttpRequest,
    state: &AppState,
    scope: &Scope,
    numbers: &[u32],
) -> ApiResult {
    let format = negotiate_frames(req, numbers.len())?;
    let data = state
        .service
        .frames(scope, numbers, &format.acceptable)
        .await?;
    let part_type = format!(
        "{}; transfer-syntax={}",
        data.media_type, data.transfer_syntax_uid
    );
    let multipart = |writer: &MultipartWriter| {
        format!(
            "multipart/related; type=\"{}\"; boundary={}",
            data.media_type,
            writer.boundary()
        )
    };
    match data.frames {
        // Small: one body with a length, as read (the common case of one frame).
        FrameBodies::Read(frames) => {
            if !format.multipart {
                let frame = frames.into_iter().next().unwrap_or_default();
                return Ok(HttpResponse::Ok().content_type(part_type).body(frame));
            }
            let mut writer = MultipartWriter::new();
            let content_type = multipart(&writer);
            let mut body = Vec::with_capacity(frames.iter().map(|f| f.len() + 128).sum());
            for frame in &frames {
                body.extend_from_slice(
                    &writer.part_header(&[("Content-Type", part_type.as_str())]),
                );
                body.extend_from_slice(frame);
            }
            body.extend_from_slice(&writer.finish());
            Ok(HttpResponse::Ok().content_type(content_type).body(body))
        }
        // Large: each frame is read from storage as its part is sent.
        FrameBodies::Streamed(mut frames) => {
            if !format.multipart {
                let frame = frames
                    .next()
                    .await
                    .ok_or_else(|| ServiceError::Internal("no frame to send".into()))??;
                return Ok(HttpResponse::Ok()
                    .content_type(part_type)
                    .no_chunking(frame.len)
                    .streaming(frame.body.map_err(io_error)));
            }
            let writer = MultipartWriter::new();
            let content_type = multipart(&writer);
            let parts = frames.map(move |frame| {
                let frame = frame.map_err(io_error)?;
                let headers = vec![("Content-Type".to_owned(), part_type.clone())];
                Ok::<_, std::io::Error>((headers, frame.body.map_err(io_error).boxed()))
            });
            Ok(HttpResponse::Ok()
                .content_type(content_type)
                .streaming(encode_parts(writer, parts)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ETAG: &str = "\"3f2a\"";

    #[test]
    fn if_none_match_compares_weakly() {
        for matching in [
            "\"3f2a\"",
            "W/\"3f2a\"",
            "\"other\", W/\"3f2a\"",
            " W/\"other\" ,\"3f2a\" ",
            "*",
        ] {
            assert!(if_none_match_matches(matching, ETAG), "{matching:?}");
        }
        for other in [
            "\"other\"",
            "W/\"other\"",
            "3f2a",
            "w/\"3f2a\"",
            "W/ \"3f2a\"",
            "",
        ] {
            assert!(!if_none_match_matches(other, ETAG), "{other:?}");
        }
    }

    #[test]
    fn a_frame_list_longer_than_the_limit_is_refused_naming_both() {
        let at_limit = (1..=MAX_FRAMES_PER_REQUEST)
            .map(|n| n.to_string())
            .collect::<Vec<_>>();
        assert_eq!(
            parse_frame_numbers(&at_limit.join(",")).unwrap().len(),
            MAX_FRAMES_PER_REQUEST
        );
        let over = format!("{},1", at_limit.join(","));
        let error = parse_frame_numbers(&over).unwrap_err();
        assert!(matches!(error, ApiError::BadRequest(_)));
        let message = error.to_string();
        assert!(message.contains("asks for 10001 frames"), "{message}");
        assert!(message.contains("at most 10000"), "{message}");
        // Empty items count too: a URL of commas is refused as cheaply.
        assert!(parse_frame_numbers(&",".repeat(20_000)).is_err());
    }

    proptest::proptest! {
        /// Any frame list parses to between 1 and MAX_FRAMES_PER_REQUEST numbers, or is a 400 that says
        /// what was wrong.
        #[test]
        fn any_frame_list_is_bounded_or_a_named_400(
            text in prop_oneof![
                "\\PC{0,40}".boxed(),
                "[0-9, +-]{0,40}".boxed(),
                proptest::collection::vec(0u32..20, 0..12_000)
                    .prop_map(|numbers| numbers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","))
                    .boxed(),
            ],
        ) {
            match parse_frame_numbers(&text) {
                Ok(numbers) => {
                    prop_assert!(!numbers.is_empty());
                    prop_assert!(numbers.len() <= MAX_FRAMES_PER_REQUEST);
                }
                Err(ApiError::BadRequest(message)) => {
                    prop_assert!(
                        message.starts_with("frame list"),
                        "{message}"
                    );
                }
                Err(other) => prop_assert!(false, "{other:?} is not a 400"),
            }
        }
    }
}
