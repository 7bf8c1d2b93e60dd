//! Process settings for `serve`: raw arguments (flags and environment) -> validated config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow};

use crate::access::{Tokens, parse_tokens};
use crate::cli::{LogFormat, ServeArgs};
use crate::flags::duration::parse_duration;

#[derive(Debug)]
pub struct Config {
    pub flags: PathBuf,
    pub listen: SocketAddr,
    pub database: String,
    pub tokens: Tokens,
    pub cors_origins: Vec<String>,
    pub monitor: Option<crate::monitor::MonitorConfig>,
    pub upstream: Option<crate::upstream::UpstreamConfig>,
    /// Four-eyes for every flag (`--require-approval`), and how long a request may wait.
    pub require_approval: bool,
    pub approval_expiry: Duration,
    pub notify: Option<crate::notify::NotifyConfig>,
    pub releases: crate::release::ReleaseSettings,
    pub log_format: LogFormat,
    pub body_limit: usize,
    pub max_subscribers: usize,
    pub max_concurrent_requests: usize,
    pub header_read_timeout: std::time::Duration,
    pub max_connections: usize,
    /// Per-client limits on evaluation and admin routes.
    pub rate_limit: Option<governor::Quota>,
    pub admin_rate_limit: Option<governor::Quota>,
    pub report_interval: std::time::Duration,
    pub request_timeout: Duration,
    pub recheck_interval: Duration,
    pub poll_interval: Duration,
    pub reload_debounce: Duration,
    pub flush_interval: Duration,
}

fn duration(name: &str, text: &str) -> anyhow::Result<Duration> {
    let d = parse_duration(text).map_err(|e| anyhow!("--{name}: {e}"))?;
    let d = d.to_std().map_err(|_| anyhow!("--{name} must be positive"))?;
    if d.is_zero() {
        return Err(anyhow!("--{name} must be positive"));
    }
    Ok(d)
}

impl Config {
    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        let admin = parse_tokens(args.admin_tokens.as_deref().unwrap_or_default())
            .map_err(|e| anyhow!("--admin-tokens: {e}"))?;
        let client = parse_tokens(args.client_tokens.as_deref().unwrap_or_default())
            .map_err(|e| anyhow!("--client-tokens: {e}"))?;
        let receivers = parse_tokens(args.receiver_tokens.as_deref().unwrap_or_default())
            .map_err(|e| anyhow!("--receiver-tokens: {e}"))?;
        let frontend = parse_tokens(args.frontend_tokens.as_deref().unwrap_or_default())
            .map_err(|e| anyhow!("--frontend-tokens: {e}"))?;
        for (name, url) in
            [("prometheus-url", &args.prometheus_url), ("webhook-url", &args.webhook_url), ("upstream", &args.upstream)]
        {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(anyhow!("--{name} must be an http(s) URL, not {url:?}"));
            }
        }
        let upstream = match (args.upstream, args.upstream_token) {
            (Some(url), Some(token)) if !token.trim().is_empty() => Some(crate::upstream::UpstreamConfig {
                url,
                token: token.trim().to_owned(),
                interval: duration("upstream-interval", &args.upstream_interval)?,
            }),
            (Some(_), _) => return Err(anyhow!("--upstream needs --upstream-token (TOGGLED_UPSTREAM_TOKEN)")),
            (None, _) => None,
        };
        let monitor = args.prometheus_url.map(|prometheus_url| crate::monitor::MonitorConfig {
            prometheus_url,
            webhook_url: args.webhook_url.clone(),
            webhook_secret: args.webhook_secret.clone(),
            all_flags: args.monitor_all,
        });
        let urls: Vec<String> =
            args.notify_urls.iter().map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
        if let Some(url) = urls.iter().find(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
            return Err(anyhow!("--notify-url must be an http(s) URL, not {url:?}"));
        }
        let notify = if urls.is_empty() {
            None
        } else {
            Some(crate::notify::NotifyConfig {
                urls,
                secret: args.notify_secret.clone(),
                format: args.notify_format,
                interval: duration("notify-interval", &args.notify_interval)?,
            })
        };
        let strategy = match &args.release_strategy {
            None => crate::release::plan::default_strategy(),
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                crate::release::plan::parse_strategy(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?
            }
        };
        let windows = match &args.maintenance_windows {
            None => Vec::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                crate::release::plan::parse_windows(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?
            }
        };
        let gates = match &args.quality_gates {
            None => crate::release::quality::default_gates(),
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                crate::release::quality::parse_gates(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?
            }
        };
        let releases =
            crate::release::ReleaseSettings { strategy, windows, default_service: args.service.clone(), gates };
        if args.body_limit < 1024 {
            return Err(anyhow!("--body-limit must be at least 1024 bytes"));
        }
        Ok(Self {
            flags: args.flags,
            listen: args.listen,
            database: normalise_database(&args.database).context("--database")?,
            tokens: Tokens::new(admin, client).with_receivers(receivers).with_frontend(frontend),
            monitor,
            upstream,
            require_approval: args.require_approval,
            approval_expiry: duration("approval-expiry", &args.approval_expiry)?,
            notify,
            releases,
            cors_origins: args.cors_origin.into_iter().map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect(),
            log_format: args.log_format,
            body_limit: args.body_limit,
            max_subscribers: args.max_subscribers,
            max_concurrent_requests: args.max_concurrent_requests,
            header_read_timeout: duration("header-read-timeout", &args.header_read_timeout)?,
            max_connections: args.max_connections.max(1),
            rate_limit: quota("rate-limit", args.rate_limit.as_deref())?,
            admin_rate_limit: quota("admin-rate-limit", args.admin_rate_limit.as_deref())?,
            report_interval: duration("report-interval", &args.report_interval)?,
            request_timeout: duration("request-timeout", &args.request_timeout)?,
            recheck_interval: duration("recheck-interval", &args.recheck_interval)?,
            poll_interval: duration("poll-interval", &args.poll_interval)?,
            reload_debounce: duration("reload-debounce", &args.reload_debounce)?,
            flush_interval: duration("flush-interval", &args.flush_interval)?,
        })
    }
}

fn quota(name: &str, text: Option<&str>) -> anyhow::Result<Option<governor::Quota>> {
    text.map(|t| crate::access::parse_quota(t).map_err(|e| anyhow!("--{name}: {e}"))).transpose()
}

/// `sqlite://PATH` (also `sqlite:PATH`) or `postgres://...`; other schemes are refused with a
/// clear message (that never repeats a password).
fn normalise_database(url: &str) -> anyhow::Result<String> {
    if url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(url.to_owned())
    } else {
        Err(anyhow!("unsupported database URL {:?}: expected sqlite://PATH or postgres://...", redacted(url)))
    }
}

/// A database URL fit for logs: any password replaced by `***`.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let auth = &url[scheme + 3..at];
            match auth.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
