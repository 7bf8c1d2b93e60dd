//! Bearer tokens: admin tokens for routes that change or reveal configuration, client tokens
//! for evaluation (open when none are configured). Secrets are compared in constant time and
//! never logged; the token's *name* is the actor in the audit log.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Client,
    /// May only post Alertmanager notifications to `/alerts`.
    Receiver,
}

/// Who made a request (inserted into request extensions by the auth middleware).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

/// Configured tokens: `name:secret` pairs per role.
#[derive(Clone, Default)]
pub struct Tokens {
    admin: Vec<(String, String)>,
    client: Vec<(String, String)>,
    receiver: Vec<(String, String)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        f.debug_struct("Tokens")
            .field("admin", &names(&self.admin))
            .field("client", &names(&self.client))
            .field("receiver", &names(&self.receiver))
            .finish()
    }
}

/// Parses `name:secret,name2:secret2`. Errors name the bad entry's position, never its secret.
pub fn parse_tokens(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, pair)| match pair.split_once(':') {
            Some((name, secret)) if !name.is_empty() && secret.len() >= 8 => Ok((name.to_owned(), secret.to_owned())),
            _ => Err(format!("token #{} must be name:secret with a secret of at least 8 characters", i + 1)),
        })
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

impl Tokens {
    pub fn new(admin: Vec<(String, String)>, client: Vec<(String, String)>) -> Self {
        Self { admin, client, receiver: Vec::new() }
    }

    #[must_use]
    pub fn with_receivers(mut self, receiver: Vec<(String, String)>) -> Self {
        self.receiver = receiver;
        self
    }

    /// Who presented a token in these headers, if anyone known.
    pub fn identify_headers(&self, headers: &axum::http::HeaderMap) -> Option<Identity> {
        self.identify(token_of(headers)?)
    }

    pub fn has_client_tokens(&self) -> bool {
        !self.client.is_empty()
    }

    /// Who a presented secret belongs to. Every configured secret is compared.
    fn identify(&self, secret: &str) -> Option<Identity> {
        let mut found = None;
        for (role, list) in [(Role::Admin, &self.admin), (Role::Client, &self.client), (Role::Receiver, &self.receiver)]
        {
            for (name, s) in list {
                if constant_time_eq(s.as_bytes(), secret.as_bytes()) && found.is_none() {
                    found = Some(Identity { name: name.clone(), role });
                }
            }
        }
        found
    }
}

/// The presented token: `Authorization: Bearer <token>`, or `X-API-Key: <token>` (which
/// OpenFeature's OFREP providers may send instead).
fn token_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

fn bearer(req: &Request) -> Option<&str> {
    token_of(req.headers())
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
    let secret =
        bearer(req).ok_or_else(|| ApiError::unauthorized(format!("send {wanted} as Authorization: Bearer <token>")))?;
    let identity = tokens.identify(secret).ok_or_else(|| ApiError::unauthorized("unknown token"))?;
    if allowed.contains(&identity.role) { Ok(identity) } else { Err(ApiError::forbidden(refusal(&identity))) }
}

/// Middleware for `/alerts`: an admin or receiver token.
pub async fn require_receiver(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if state.tokens.admin.is_empty() && state.tokens.receiver.is_empty() {
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
    if state.tokens.admin.is_empty() {
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

/// Middleware for evaluation routes: open when no client token is configured; otherwise a
/// client or admin token is required.
pub async fn require_client(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    if state.tokens.client.is_empty() {
        return Ok(next.run(req).await);
    }
    let identity = authenticate(&state.tokens, &req, "a client token", &[Role::Admin, Role::Client], |i| {
        format!("token {:?} may only post to /alerts", i.name)
    })?;
    req.extensions_mut().insert(identity);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_identify() {
        let admin = parse_tokens("ops:s3cret-admin, ci:another-secret").expect("valid");
        let client = parse_tokens("web:client-secret").expect("valid");
        let tokens = Tokens::new(admin, client);
        assert_eq!(tokens.identify("s3cret-admin").map(|i| (i.name, i.role)), Some(("ops".into(), Role::Admin)));
        assert_eq!(tokens.identify("client-secret").map(|i| i.role), Some(Role::Client));
        assert_eq!(tokens.identify("s3cret-admi"), None);
        assert_eq!(tokens.identify(""), None);
        assert!(parse_tokens("nocolon").is_err());
        assert!(parse_tokens("short:abc").is_err());
        assert!(!format!("{tokens:?}").contains("s3cret"), "Debug never shows secrets");
    }

    #[test]
    fn constant_time_comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
