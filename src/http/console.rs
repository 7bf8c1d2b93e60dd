//! The web console at `/ui`: three static files from `ui/`, embedded at compile time (no CDN,
//! no front-end build: plain HTML, CSS and one script over this server's own HTTP API). Served
//! without a token — the page signs in with an admin token it keeps in the tab's session storage —
//! under a Content-Security-Policy that allows only these files (no inline script or style),
//! with an `ETag` per file so a reload costs a 304.

use super::KeyPath;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Code};

/// Only these files, from this origin; no frames, no plugins, no form posts elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 3] = [
    Asset { name: "index.html", content_type: "text/html; charset=utf-8", body: include_str!("../../ui/index.html") },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_str!("../../ui/app.js") },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: include_str!("../../ui/app.css") },
];

fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let tag = super::etag::of(asset.body.as_bytes());
    let fresh = super::etag::fresh(headers, &tag);
    let security = [
        (HeaderName::from_static("content-security-policy"), HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff")),
        (HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer")),
        (HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY")),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    let tag = HeaderValue::from_str(&tag).expect("hex in quotes is a valid header value");
    if fresh {
        return (StatusCode::NOT_MODIFIED, security, [(ETAG, tag)]).into_response();
    }
    (security, [(ETAG, tag), (CONTENT_TYPE, HeaderValue::from_static(asset.content_type))], asset.body).into_response()
}

/// The console's page.
#[utoipa::path(
    operation_id = "console_index",
    get,
    path = "/ui",
    tag = "console",
    responses(
        (status = 200, description = "the web console (HTML); it signs in with an admin token", content_type = "text/html"),
        (status = 304, description = "unchanged since the `ETag` sent in `If-None-Match`"),
    )
)]
pub async fn index(headers: HeaderMap) -> Response {
    serve(&ASSETS[0], &headers)
}

/// The console's script and style sheet.
#[utoipa::path(
    operation_id = "console_asset",
    get,
    path = "/ui/{asset}",
    tag = "console",
    params(("asset" = String, Path, description = "`app.js`, `app.css` or `index.html`")),
    responses(
        (status = 200, description = "the file"),
        (status = 304, description = "unchanged since the `ETag` sent in `If-None-Match`"),
        (status = 404, description = "no such file", body = crate::http::error::ErrorBody),
    )
)]
pub async fn asset(KeyPath(name): KeyPath, headers: HeaderMap) -> Result<Response, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::new(Code::NotFound, format!("the console has no file {name:?}")))?;
    Ok(serve(asset, &headers))
}
