//! The change feed, as Microsoft's DICOM server serves it.

use super::*;
use dicomweb_service::{ChangeFeedEntry, ChangeQuery};
use serde::Serialize;

/// A change feed entry as Microsoft's DICOM server writes it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ChangeFeedItem<'a> {
    sequence: u64,
    study_instance_uid: &'a str,
    series_instance_uid: &'a str,
    sop_instance_uid: &'a str,
    action: &'static str,
    timestamp: String,
    state: &'static str,
    /// Borrowed from the entry: the stored DICOM JSON is written as it is, never copied into a tree.
    metadata: Option<&'a serde_json::value::RawValue>,
}

/// Writes `entry` as JSON to `out`, the `BulkDataURI`s of its metadata under the service root `base_url`.
fn write_change_feed_item(
    out: &mut Vec<u8>,
    entry: ChangeFeedEntry,
    base_url: &str,
) -> Result<(), ApiError> {
    let served = entry.metadata.as_deref().map(|stored| {
        dicomweb_service::served_metadata(
            stored,
            base_url,
            &entry.study_instance_uid,
            &entry.series_instance_uid,
            &entry.sop_instance_uid,
        )
    });
    let metadata = match &served {
        Some(bytes) => Some(
            serde_json::from_slice::<&serde_json::value::RawValue>(bytes)
                .map_err(|e| ServiceError::Internal(format!("stored metadata is not JSON: {e}")))?,
        ),
        None => None,
    };
    let timestamp = entry
        .timestamp
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let item = ChangeFeedItem {
        sequence: entry.sequence,
        study_instance_uid: &entry.study_instance_uid,
        series_instance_uid: &entry.series_instance_uid,
        sop_instance_uid: &entry.sop_instance_uid,
        action: entry.action.as_str(),
        timestamp,
        state: entry.state.as_str(),
        metadata,
    };
    serde_json::to_writer(out, &item).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(())
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
pub(super) fn change_query(
    version: ApiVersion,
    params: &[(String, String)],
) -> Result<ChangeQuery, ApiError> {
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

pub(super) async fn changefeed(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: web::Data<ApiVersion>,
) -> ApiResult {
    let query = change_query(**version, &query_pairs(&req)?)?;
    let base_url = base_url(&req, &state, **version);
    // Streamed as the catalogue is read: a page of entries with their metadata is never held whole, and each
    // entry is written as a piece of its own (its metadata copied once, from the catalogue's read).
    let mut first = true;
    let entries = state
        .service
        .changes_streamed(query)
        .map(|piece| match piece {
            Ok(entries) => entries.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        })
        .flat_map(futures::stream::iter)
        .map(move |entry| -> Result<Bytes, std::io::Error> {
            let failed = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
            let mut out = Vec::new();
            if !first {
                out.push(b',');
            }
            first = false;
            write_change_feed_item(&mut out, entry.map_err(|e| failed(&e))?, &base_url)
                .map_err(|e| failed(&e))?;
            Ok(Bytes::from(out))
        });
    let open = futures::stream::once(async { Ok(Bytes::from_static(b"[")) });
    let close = futures::stream::once(async { Ok(Bytes::from_static(b"]")) });
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(open.chain(entries).chain(close)))
}

pub(super) async fn changefeed_latest(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: web::Data<ApiVersion>,
) -> ApiResult {
    let mut include_metadata = true;
    for (name, value) in query_pairs(&req)? {
        if name.eq_ignore_ascii_case("includemetadata") {
            include_metadata = parse_include_metadata(&value)?;
        }
    }
    match state.service.latest_change(include_metadata).await? {
        Some(entry) => {
            let mut body = Vec::new();
            write_change_feed_item(&mut body, entry, &base_url(&req, &state, **version))?;
            Ok(HttpResponse::Ok()
                .content_type("application/json")
                .body(body))
        }
        // Microsoft's server answers an empty feed with 204.
        None => Ok(HttpResponse::NoContent().finish()),
    }
}
