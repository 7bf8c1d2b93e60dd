//! Who may do what: `name:secret` tokens per role (admin, client, receiver). Secrets are compared
//! in constant time and never logged or printed; the token's *name* is the actor in the audit
//! log. Knows nothing of HTTP: `http::auth` finds the token in a request.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Client,
    /// Answers only (the frontend API, OFREP, `/evaluate`), never flag definitions: the token a
    /// browser or mobile app carries.
    Frontend,
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
    frontend: Vec<(String, String)>,
    receiver: Vec<(String, String)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        f.debug_struct("Tokens")
            .field("admin", &names(&self.admin))
            .field("client", &names(&self.client))
            .field("frontend", &names(&self.frontend))
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

/// A client's rate as written on the command line: `N/s`, `N/m` (or `N/min`), with an optional
/// `:burst` (default: N).
pub fn parse_quota(text: &str) -> Result<governor::Quota, String> {
    let err = || format!("{text:?}: expected a rate like 100/s, 600/m, 1000/h or 100/s:200 (rate:burst)");
    let (rate, burst) = match text.trim().split_once(':') {
        Some((r, b)) => (r, Some(b)),
        None => (text.trim(), None),
    };
    let (n, unit) = rate.split_once('/').ok_or_else(err)?;
    let n: std::num::NonZeroU32 = n.trim().parse().map_err(|_| err())?;
    let quota = match unit.trim() {
        "s" | "sec" | "second" => governor::Quota::per_second(n),
        "m" | "min" | "minute" => governor::Quota::per_minute(n),
        "h" | "hour" => governor::Quota::per_hour(n),
        _ => return Err(err()),
    };
    let burst: std::num::NonZeroU32 = match burst {
        Some(b) => b.trim().parse().map_err(|_| err())?,
        None => n,
    };
    Ok(quota.allow_burst(burst))
}

impl Tokens {
    pub fn new(admin: Vec<(String, String)>, client: Vec<(String, String)>) -> Self {
        Self { admin, client, frontend: Vec::new(), receiver: Vec::new() }
    }

    #[must_use]
    pub fn with_receivers(mut self, receiver: Vec<(String, String)>) -> Self {
        self.receiver = receiver;
        self
    }

    #[must_use]
    pub fn with_frontend(mut self, frontend: Vec<(String, String)>) -> Self {
        self.frontend = frontend;
        self
    }

    /// Whether evaluation asks for a token: any client or frontend token configured.
    pub fn has_client_tokens(&self) -> bool {
        !self.client.is_empty() || !self.frontend.is_empty()
    }

    pub fn has_admin_tokens(&self) -> bool {
        !self.admin.is_empty()
    }

    pub fn has_receiver_tokens(&self) -> bool {
        !self.receiver.is_empty()
    }

    /// Who a presented secret belongs to. Every configured secret is compared.
    pub fn identify(&self, secret: &str) -> Option<Identity> {
        let mut found = None;
        let roles = [
            (Role::Admin, &self.admin),
            (Role::Client, &self.client),
            (Role::Frontend, &self.frontend),
            (Role::Receiver, &self.receiver),
        ];
        for (role, list) in roles {
            for (name, s) in list {
                if constant_time_eq(s.as_bytes(), secret.as_bytes()) && found.is_none() {
                    found = Some(Identity { name: name.clone(), role });
                }
            }
        }
        found
    }
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
