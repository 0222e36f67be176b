//! QIDO-RS: searches.

use super::*;

pub(super) async fn search(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: web::Data<ApiVersion>,
) -> ApiResult {
    require_json_accept(&req)?;
    let params = query_pairs(&req)?;
    let resource = search_resource(&req);
    let results = state
        .service
        .search(&resource, &params, &base_url(&req, &state, **version))
        .await?;
    if results.is_empty() {
        return Ok(HttpResponse::NoContent().finish());
    }
    let body = dicomweb_service::search::json_array(&results);
    Ok(dicom_json_response(StatusCode::OK, body))
}
