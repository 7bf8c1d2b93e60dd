//! Entity tags: a strong validator from a body's bytes (murmur3 x64 128, the hash the project
//! already carries), and `If-None-Match` against it.

use axum::http::HeaderMap;
use axum::http::header::IF_NONE_MATCH;

/// `"<32 hex digits>"` for these bytes.
pub fn of(body: &[u8]) -> String {
    let (high, low) = mur3::murmurhash3_x64_128(body, 0);
    format!("\"{high:016x}{low:016x}\"")
}

/// Whether the request's `If-None-Match` names `etag` (or is `*`): answer 304.
pub fn fresh(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}
