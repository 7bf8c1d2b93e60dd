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

/// How often a limiter forgets clients whose budget is full again.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl Limiter {
    /// A limiter; inside a runtime it also prunes itself every minute (until it is dropped), so
    /// the state kept per client address does not grow for good.
    pub fn new(scope: &'static str, quota: Quota) -> Arc<Self> {
        let limiter = Arc::new(Self { scope, limiter: RateLimiter::keyed(quota) });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&limiter);
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(PRUNE_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(limiter) = weak.upgrade() else { return };
                    limiter.prune();
                }
            });
        }
        limiter
    }

    /// Forgets every client whose budget is full again (it would be treated the same fresh).
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How many clients the limiter holds state for.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.limiter.len()
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

#[cfg(test)]
mod tests {
    use super::Limiter;

    #[test]
    fn a_limiter_forgets_clients_whose_budget_is_full_again() {
        let quota = governor::Quota::per_second(std::num::NonZeroU32::new(1_000).expect("non-zero"));
        let limiter = Limiter::new("evaluation", quota);
        for i in 0..10_000 {
            assert!(limiter.limiter.check_key(&format!("addr:10.0.{}.{}", i / 256, i % 256)).is_ok());
        }
        assert_eq!(limiter.tracked(), 10_000);
        // Each client's budget refills within a millisecond; prune until all are forgotten.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while limiter.tracked() > 0 {
            assert!(std::time::Instant::now() < deadline, "{} still held", limiter.tracked());
            std::thread::yield_now();
            limiter.prune();
        }
    }
}
