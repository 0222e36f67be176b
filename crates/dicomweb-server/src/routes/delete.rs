//! Deleting studies, series and instances.

use super::*;

pub(super) async fn delete(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
    state.service.delete(path_scope(&req)?).await?;
    Ok(HttpResponse::NoContent().finish())
}
