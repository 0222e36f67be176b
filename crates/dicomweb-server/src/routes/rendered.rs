//! WADO-RS rendered resources and thumbnails: query parameters and media types to the service's render.

use super::*;
use dicomweb_service::{ImageFormat, RenderOptions, Viewport, VoiFunction, Window};

/// The image format an `Accept` list (or the `accept` query parameter, which overrides it, as OHIF sends it)
/// asks for: JPEG for `image/jpeg`, `image/*`, `*/*` or a browser's list; PNG for `image/png`. A
/// `multipart/related` range counts for its `type`.
fn negotiate_image(req: &HttpRequest, accept_param: Option<&str>) -> Result<ImageFormat, ApiError> {
    let accept = accept_param.or_else(|| header_str(req, header::ACCEPT));
    for media in parse_accept(accept) {
        let essence = if media.essence == "multipart/related" {
            media
                .param("type")
                .unwrap_or("image/jpeg")
                .to_ascii_lowercase()
        } else {
            media.essence.clone()
        };
        match essence.as_str() {
            "image/jpeg" | "image/*" | "*/*" => return Ok(ImageFormat::Jpeg),
            "image/png" => return Ok(ImageFormat::Png),
            _ => {}
        }
    }
    Err(ApiError::NotAcceptable(format!(
        "Accept \"{}\" is not supported for rendered images; use image/jpeg or image/png",
        accept.unwrap_or_default()
    )))
}

fn numbers<T: std::str::FromStr>(name: &str, value: &str) -> Result<Vec<T>, ApiError> {
    value
        .split(',')
        .map(|n| {
            n.trim().parse::<T>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "query parameter {name} has a malformed value \"{value}\""
                ))
            })
        })
        .collect()
}

/// The rendering options of the query (PS3.18 8.3.5.1) and the warnings for what is ignored.
fn render_options(req: &HttpRequest) -> Result<(RenderOptions, Vec<String>), ApiError> {
    let mut options = RenderOptions::default();
    let mut accept = None;
    let mut warnings = Vec::new();
    for (name, value) in query_pairs(req)? {
        match name.as_str() {
            "accept" => accept = Some(value),
            "quality" => {
                let quality: u8 = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|q| (1..=100).contains(q))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "quality must be an integer from 1 to 100, not \"{value}\""
                        ))
                    })?;
                options.quality = quality;
            }
            "window" => {
                let parts: Vec<&str> = value.split(',').map(str::trim).collect();
                let (center, width, function) = match parts.as_slice() {
                    [c, w] => (*c, *w, "linear"),
                    [c, w, f] => (*c, *w, *f),
                    _ => {
                        return Err(ApiError::BadRequest(format!(
                            "window must be center,width[,function], not \"{value}\""
                        )));
                    }
                };
                let number = |text: &str| {
                    text.parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite())
                        .ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "window has a malformed number \"{text}\""
                            ))
                        })
                };
                let width = number(width)?;
                if width <= 0.0 {
                    return Err(ApiError::BadRequest("window width must be positive".into()));
                }
                let function = match function.to_ascii_lowercase().as_str() {
                    "linear" => VoiFunction::Linear,
                    "linear-exact" => VoiFunction::LinearExact,
                    "sigmoid" => VoiFunction::Sigmoid,
                    other => {
                        return Err(ApiError::BadRequest(format!(
                            "window function must be linear, linear-exact or sigmoid, not \"{other}\""
                        )));
                    }
                };
                options.window = Some(Window {
                    center: number(center)?,
                    width,
                    function,
                });
            }
            "viewport" => {
                let parts: Vec<u32> = numbers("viewport", &value)?;
                let size_limit = 4096;
                let viewport = match parts.as_slice() {
                    [w, h] => Viewport {
                        width: *w,
                        height: *h,
                        source: None,
                    },
                    [w, h, x, y, sw, sh] => Viewport {
                        width: *w,
                        height: *h,
                        source: Some((*x, *y, *sw, *sh)),
                    },
                    _ => {
                        return Err(ApiError::BadRequest(format!(
                            "viewport must be vw,vh or vw,vh,sx,sy,sw,sh (non-negative integers), not \"{value}\""
                        )));
                    }
                };
                if viewport.width == 0
                    || viewport.height == 0
                    || viewport.width > size_limit
                    || viewport.height > size_limit
                {
                    return Err(ApiError::BadRequest(format!(
                        "viewport sizes must be from 1 to {size_limit}, not \"{value}\""
                    )));
                }
                options.viewport = Some(viewport);
            }
            "annotation" => warnings.push("annotation is not supported and was ignored".to_owned()),
            "iccprofile" if value.trim() != "no" => {
                warnings.push("iccprofile is not supported and was ignored".to_owned())
            }
            _ => {}
        }
    }
    options.format = negotiate_image(req, accept.as_deref())?;
    Ok((options, warnings))
}

/// The one frame number of a `frames/{n}/rendered` or `frames/{n}/thumbnail` path.
fn one_frame(req: &HttpRequest) -> Result<Option<u32>, ApiError> {
    let Some(text) = req.match_info().get("frames") else {
        return Ok(None);
    };
    match retrieve::parse_frame_numbers(text)?.as_slice() {
        [n] => Ok(Some(*n)),
        _ => Err(ApiError::BadRequest(format!(
            "a rendered frame is one frame number, not \"{text}\""
        ))),
    }
}

/// A 200 carrying a `Warning` for each rendering parameter that was ignored.
fn ok_with_warnings(warnings: Vec<String>) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    for warning in warnings {
        response.append_header((header::WARNING, format!("299 dicomweb \"{warning}\"")));
    }
    response
}

fn image_response(image: dicomweb_service::RenderedImage, warnings: Vec<String>) -> HttpResponse {
    ok_with_warnings(warnings)
        .content_type(image.media_type)
        .body(image.bytes)
}

pub(super) async fn rendered(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
    let scope = path_scope(&req)?;
    let (options, warnings) = render_options(&req)?;
    if matches!(scope, Scope::Study(..) | Scope::Series(..)) {
        return rendered_instances(&state, &scope, options, warnings).await;
    }
    let frame = one_frame(&req)?.unwrap_or(1);
    let image = state.service.rendered(&scope, frame, options).await?;
    Ok(image_response(image, warnings))
}

pub(super) async fn thumbnail(req: HttpRequest, state: web::Data<AppState>) -> ApiResult {
    let scope = path_scope(&req)?;
    let (mut options, warnings) = render_options(&req)?;
    if !query_pairs(&req)?.iter().any(|(name, _)| name == "quality") {
        options.quality = 75;
    }
    let frame = one_frame(&req)?;
    let image = state.service.thumbnail(&scope, frame, options).await?;
    Ok(image_response(image, warnings))
}

/// A study's or series's rendered resource (PS3.18 10.4.1.1.3): a `multipart/related` of one rendered image per
/// instance with pixel data, each drawn as its part is sent.
async fn rendered_instances(
    state: &AppState,
    scope: &Scope,
    options: RenderOptions,
    warnings: Vec<String>,
) -> Result<HttpResponse, ApiError> {
    let media_type = options.format.media_type();
    let images = state.service.rendered_instances(scope, options).await?;
    let writer = MultipartWriter::new();
    let content_type = format!(
        "multipart/related; type=\"{media_type}\"; boundary={}",
        writer.boundary()
    );
    let parts = Box::pin(images).map(move |image| {
        let image = image.map_err(retrieve::io_error)?;
        let headers = vec![("Content-Type".to_owned(), image.media_type.to_owned())];
        let body = futures::stream::once(async move { Ok::<_, std::io::Error>(image.bytes) });
        Ok::<_, std::io::Error>((headers, body.boxed()))
    });
    Ok(ok_with_warnings(warnings)
        .content_type(content_type)
        .streaming(encode_parts(writer, parts)))
}
