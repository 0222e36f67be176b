//! WADO-RS retrieve bulk data: `.../instances/{instance}/bulkdata/{attribute}`, the resources the
//! `BulkDataURI`s of metadata name, and the study, series and instance `/bulkdata` resources (all of their
//! values, one part each, named by `Content-Location`).
//!
//! A value is `multipart/related; type="application/octet-stream"` (the default, and what `*/*` gets) or a
//! single `application/octet-stream` body. One `Range` (RFC 9110 14.2) is honoured: 206 with `Content-Range`
//! (in the part's headers too when multipart); several ranges, or a malformed one, are ignored and the whole
//! value is sent (RFC 9110 allows a server to). Encapsulated Pixel Data is its frames, negotiated as frames are.

use super::retrieve::{self, io_error};
use super::*;
use dicomweb_service::{BulkData, ByteRangeRequest};

/// How a bulk value is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BulkFormat {
    Multipart,
    Single,
}

fn negotiate_bulk_data(req: &HttpRequest) -> Result<BulkFormat, ApiError> {
    let accept = header_str(req, header::ACCEPT);
    for media in parse_accept(accept) {
        match media.essence.as_str() {
            "*/*" => return Ok(BulkFormat::Multipart),
            "multipart/related" | "multipart/*" => {
                // dicomweb-client asks `type="*/*"` by default.
                let kind = media.param("type").unwrap_or(OCTET_STREAM);
                if kind.eq_ignore_ascii_case(OCTET_STREAM)
                    || kind == "*/*"
                    || kind == "application/*"
                {
                    return Ok(BulkFormat::Multipart);
                }
            }
            OCTET_STREAM | "application/*" => return Ok(BulkFormat::Single),
            _ => {}
        }
    }
    Err(ApiError::NotAcceptable(format!(
        "Accept \"{}\" is not supported for bulk data; use multipart/related; type=\"application/octet-stream\" \
         or application/octet-stream",
        accept.unwrap_or_default()
    )))
}

/// The one range of a `Range: bytes=...` header, or `None` to send the whole value (no header, another unit,
/// several ranges, or a malformed one).
fn parse_range(header: Option<&str>) -> Option<ByteRangeRequest> {
    let spec = header?.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |text: &str| {
        let text = text.trim();
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<u64>().ok())
            .flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => number(last).map(ByteRangeRequest::Last),
        (false, true) => number(first).map(ByteRangeRequest::From),
        (false, false) => {
            let (first, last) = (number(first)?, number(last)?);
            (first <= last).then_some(ByteRangeRequest::FromTo(first, last))
        }
        (true, true) => None,
    }
}

pub(super) async fn bulk_data(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
    let scope = path_scope(&req)?;
    let attribute = req.match_info().get("attribute").unwrap_or_default();
    let range = parse_range(header_str(&req, header::RANGE));
    let value = match state.service.bulk_data(&scope, attribute, range).await? {
        BulkData::EncapsulatedPixelData { number_of_frames } => {
            let numbers: Vec<u32> = (1..=number_of_frames).collect();
            return retrieve::frames_response(&req, &state, &scope, &numbers).await;
        }
        BulkData::Value(value) => value,
    };
    let format = negotiate_bulk_data(&req)?;
    let content_range = value.partial.then(|| {
        format!(
            "bytes {}-{}/{}",
            value.range.start,
            value.range.end - 1,
            value.length
        )
    });
    let mut response = if value.partial {
        HttpResponse::build(StatusCode::PARTIAL_CONTENT)
    } else {
        HttpResponse::Ok()
    };
    response.insert_header((header::ACCEPT_RANGES, "bytes"));
    let body = value.body.map_err(io_error);
    match format {
        BulkFormat::Single => {
            if let Some(content_range) = &content_range {
                response.insert_header((header::CONTENT_RANGE, content_range.as_str()));
            }
            Ok(response
                .content_type(OCTET_STREAM)
                .no_chunking(value.range.end - value.range.start)
                .streaming(body))
        }
        BulkFormat::Multipart => {
            let writer = MultipartWriter::new();
            let content_type = format!(
                "multipart/related; type=\"{OCTET_STREAM}\"; boundary={}",
                writer.boundary()
            );
            let mut headers = vec![("Content-Type".to_owned(), OCTET_STREAM.to_owned())];
            if let Some(content_range) = content_range {
                headers.push(("Content-Range".to_owned(), content_range));
            }
            let part = futures::stream::iter([Ok::<_, std::io::Error>((headers, body.boxed()))]);
            Ok(response
                .content_type(content_type)
                .streaming(encode_parts(writer, part)))
        }
    }
}

/// Every bulk value of a study, series or instance: `multipart/related; type="application/octet-stream"`, one
/// part per value (frames of encapsulated Pixel Data as stored, in their own media type), each with the
/// `Content-Location` its metadata names it by.
pub(super) async fn bulk_data_all(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: web::Data<ApiVersion>,
) -> ApiResult {
    if negotiate_bulk_data(&req)? == BulkFormat::Single {
        return Err(ApiError::NotAcceptable(
            "the bulk data of a study, series or instance is several values: ask for multipart/related; \
             type=\"application/octet-stream\""
                .into(),
        ));
    }
    let scope = path_scope(&req)?;
    let base_url = super::base_url(&req, &state, **version);
    let parts = state.service.bulk_data_of(&scope, &base_url).await?;
    let writer = MultipartWriter::new();
    let content_type = format!(
        "multipart/related; type=\"{OCTET_STREAM}\"; boundary={}",
        writer.boundary()
    );
    let parts = parts.map(|part| {
        let part = part.map_err(io_error)?;
        let headers = vec![
            ("Content-Type".to_owned(), part.content_type),
            ("Content-Location".to_owned(), part.location),
        ];
        Ok::<_, std::io::Error>((headers, part.body.map_err(io_error).boxed()))
    });
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .streaming(encode_parts(writer, parts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_range_is_read_and_anything_else_means_the_whole_value() {
        use ByteRangeRequest::{From, FromTo, Last};
        for (header, expected) in [
            ("bytes=0-9", Some(FromTo(0, 9))),
            (" bytes= 5 - 5 ", Some(FromTo(5, 5))),
            ("bytes=100-", Some(From(100))),
            ("bytes=-20", Some(Last(20))),
            ("bytes=9-0", None),
            ("bytes=0-1,4-5", None),
            ("bytes=-", None),
            ("bytes=a-b", None),
            ("bytes=+1-2", None),
            ("items=0-1", None),
            ("bytes=99999999999999999999-", None),
        ] {
            assert_eq!(parse_range(Some(header)), expected, "{header:?}");
        }
        assert_eq!(parse_range(None), None);
    }

    proptest::proptest! {
        /// `Range` is a client's header: any text is one range or none, never a panic, and a range read is
        /// never backwards.
        #[test]
        fn any_range_header_is_one_range_or_none(header in "(bytes=)?[0-9 ,=-]{0,30}") {
            if let Some(ByteRangeRequest::FromTo(first, last)) = parse_range(Some(&header)) {
                proptest::prop_assert!(first <= last);
            }
        }
    }
}
