//! Bearer tokens: admin tokens for routes that change or reveal configuration, client tokens
//! for evaluation (open when none are configured). Secrets are compared in constant time and
//! never logged; the token's *name* is the actor in the audit log.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;

pub use crate::access::{Identity, Role, Tokens};

/// Who presented a token in these headers, if anyone known.
pub fn identify_headers(tokens: &Tokens, headers: &axum::http::HeaderMap) -> Option<Identity> {
    tokens.identify(token_of(headers, true)?)
}

/// The presented token: `Authorization: Bearer <token>`, the raw token in `Authorization` (as
/// Unleash's SDKs send it; its secrets may hold `:`, `*` and `.`), or, where `api_key` allows
/// it, `X-API-Key: <token>` (which OpenFeature's OFREP providers may send instead). Admin and
/// receiver routes read `Authorization` only.
fn token_of(headers: &axum::http::HeaderMap, api_key: bool) -> Option<&str> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        return match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
            Some(_) => None,
            None => Some(value),
        };
    }
    if !api_key {
        return None;
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

/// The identity behind a request's token, if its role is one of `allowed`: 401 without a
/// token or with an unknown one, 403 (with `refusal`) for a known token of another role.
fn authenticate(
    tokens: &Tokens,
    req: &Request,
    wanted: &str,
    allowed: &[Role],
    refusal: impl Fn(&Identity) -> String,
) -> Result<Identity, ApiError> {
    // X-API-Key is for clients only (OFREP providers send it); admin routes read Authorization.
    let secret = token_of(req.headers(), !allowed.contains(&Role::Receiver) && allowed.contains(&Role::Client))
        .ok_or_else(|| ApiError::unauthorized(format!("send {wanted} as Authorization: Bearer <token>")))?;
    let identity = tokens.identify(secret).ok_or_else(|| ApiError::unauthorized("unknown token"))?;
    if allowed.contains(&identity.role) { Ok(identity) } else { Err(ApiError::forbidden(refusal(&identity))) }
}

/// Middleware for `/alerts`: an admin or receiver token.
pub async fn require_receiver(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !state.tokens.has_admin_tokens() && !state.tokens.has_receiver_tokens() {
        return Err(ApiError::unauthorized(
            "no admin or receiver token is configured: start toggled with --receiver-tokens name:secret",
        ));
    }
    let identity =
        authenticate(&state.tokens, &req, "an admin or receiver token", &[Role::Admin, Role::Receiver], |i| {
            format!("token {:?} is a client token; /alerts needs an admin or receiver token", i.name)
        })?;
    req.extensions_mut().insert(identity);
    Ok(next.run(req).await)
}

/// Middleware for configuration routes: an admin token is required.
pub async fn require_admin(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    if !state.tokens.has_admin_tokens() {
        return Err(ApiError::unauthorized(
            "no admin token is configured: start toggled with --admin-tokens name:secret (or TOGGLED_ADMIN_TOKENS)",
        ));
    }
    let identity = authenticate(&state.tokens, &req, "an admin token", &[Role::Admin], |i| {
        format!("token {:?} is not an admin token; this route needs one", i.name)
    })?;
    req.extensions_mut().insert(identity);
    Ok(next.run(req).await)
}

/// Middleware for evaluation routes (answers only): open when no client or frontend token is
/// configured; otherwise a client, frontend or admin token is required.
pub async fn require_client(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    if !state.tokens.has_client_tokens() {
        return Ok(next.run(req).await);
    }
    let allowed = [Role::Admin, Role::Client, Role::Frontend];
    let identity = authenticate(&state.tokens, &req, "a client or frontend token", &allowed, |i| {
        format!("token {:?} may only post to /alerts", i.name)
    })?;
    req.extensions_mut().insert(identity);
    Ok(next.run(req).await)
}

/// Middleware for flag definitions (Unleash's `/api/client/*`): a client or admin token; a
/// frontend token gets answers only (403). Open, like evaluation, when no client or frontend
/// token is configured.
pub async fn require_definitions(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let identity = authenticate(&state.tokens, &req, "a client token", &[Role::Admin, Role::Client], |i| {
        format!("token {:?} may ask for answers only, not for flag definitions (a client token may)", i.name)
    })?;
    req.extensions_mut().insert(identity);
    Ok(next.run(req).await)
}
