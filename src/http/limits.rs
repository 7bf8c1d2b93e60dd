//! Per-client rate limits (`--rate-limit` for evaluation, `--admin-rate-limit` for admin routes):
//! a client is its token's name, or its address when evaluation is open. Over the limit: 429
//! `rate_limited` with `Retry-After`, counted in `toggled_rate_limited_total{scope,client}`
//! (token names only; open clients are counted together as `anonymous`, never by address).
//! Without a limit configured no middleware is installed at all.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppState;
use super::error::{ApiError, Code};
use crate::metrics::RateLimitLabels;

/// One scope's limiter (evaluation or admin).
#[derive(Debug)]
pub struct Limiter {
    scope: &'static str,
    limiter: DefaultKeyedRateLimiter<String>,
}

impl Limiter {
    pub fn new(scope: &'static str, quota: Quota) -> Arc<Self> {
        Arc::new(Self { scope, limiter: RateLimiter::keyed(quota) })
    }
}

/// The middleware: identifies the client, checks its budget, answers 429 when it is spent.
pub async fn limit(State((state, limiter)): State<(AppState, Arc<Limiter>)>, req: Request, next: Next) -> Response {
    let identity = super::auth::identify_headers(&state.tokens, req.headers());
    let (key, label) = match &identity {
        Some(who) => (format!("token:{}", who.name), who.name.clone()),
        None => {
            let addr = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
            (format!("addr:{}", addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string())), "anonymous".to_owned())
        }
    };
    if let Err(not_until) = limiter.limiter.check_key(&key) {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let labels = RateLimitLabels { scope: limiter.scope.to_owned(), client: label };
        state.serving.metrics.rate_limited.get_or_create(&labels).inc();
        return ApiError::new(Code::RateLimited, format!("over this client's rate limit; retry in {seconds} s"))
            .with_retry_after(seconds.max(1))
            .into_response();
    }
    next.run(req).await
}
