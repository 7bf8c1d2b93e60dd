//! Per-request bookkeeping around every route, one plain tower service ([`Observe`]) so that a
//! request pays no boxed future, no extra service clone and no lock for it:
//!
//! - it records `toggled_http_request_duration_seconds` by matched route, method and status;
//!   `200` answers of known routes go to a [`Timing`] resolved when the router is built (two
//!   atomic adds);
//! - it answers 408 `request_timeout` when a request is not answered within the request timeout
//!   (timed and counted like any other answer). The timer is only armed when the first poll of
//!   the request is not already answered: an evaluation whose body arrived with its headers
//!   never touches the timer wheel.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse as _, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::error::{ApiError, Code};
use crate::metrics::{HttpLabels, HttpTimings, Timing};

/// The timings of `200` answers, by (route, method), sorted for a binary search; other answers
/// are looked up in the labelled family.
#[derive(Debug)]
struct Timings {
    ok: Vec<((&'static str, &'static str), Timing)>,
    family: HttpTimings,
}

impl Timings {
    fn find(&self, route: &str, method: &str) -> Option<&Timing> {
        self.ok.binary_search_by(|((r, m), _)| (*r, *m).cmp(&(route, method))).ok().map(|i| &self.ok[i].1)
    }

    fn record(&self, route: Option<&MatchedPath>, method: &Method, status: StatusCode, elapsed: Duration) {
        let route = route.map_or("unmatched", MatchedPath::as_str);
        if status == StatusCode::OK
            && let Some(timing) = self.find(route, method.as_str())
        {
            return timing.observe(elapsed);
        }
        let labels =
            HttpLabels { route: route.to_owned(), method: method.to_string(), status: status.as_u16().to_string() };
        self.family.get_or_create(&labels).observe(elapsed);
    }
}

/// Layer of [`Observe`] (a route layer: it reads the matched route).
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    timings: Arc<Timings>,
    timeout: Duration,
}

impl ObserveLayer {
    /// Resolves the `200` timing of every (method, route) in `routes` once.
    pub fn new(family: &HttpTimings, routes: &[(&'static str, &'static str)], timeout: Duration) -> Self {
        let mut ok: Vec<_> = routes
            .iter()
            .map(|&(method, route)| {
                let labels =
                    HttpLabels { route: route.to_owned(), method: method.to_owned(), status: "200".to_owned() };
                ((route, method), family.get_or_create(&labels).clone())
            })
            .collect();
        ok.sort_by(|a, b| a.0.cmp(&b.0));
        Self { timings: Arc::new(Timings { ok, family: family.clone() }), timeout }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner, layer: self.clone() }
    }
}

/// Times each request of the route it wraps, and bounds it by the request timeout.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    layer: ObserveLayer,
}

impl<S: Service<Request, Response = Response>> Service<Request> for Observe<S> {
    type Response = Response;
    type Error = S::Error;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = req.extensions().get::<MatchedPath>().cloned();
        let method = req.method().clone();
        Observed {
            inner: self.inner.call(req),
            start: Instant::now(),
            route,
            method,
            timings: self.layer.timings.clone(),
            timeout: self.layer.timeout,
            timer: None,
        }
    }
}

pin_project! {
    /// The response future of [`Observe`]. The timer exists only once the request has had to
    /// wait; its deadline counts from the request's arrival.
    pub struct Observed<F> {
        #[pin]
        inner: F,
        start: Instant,
        route: Option<MatchedPath>,
        method: Method,
        timings: Arc<Timings>,
        timeout: Duration,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F: Future<Output = Result<Response, E>>, E> Future for Observed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let result = match this.inner.poll(cx) {
            Poll::Ready(result) => result,
            Poll::Pending => {
                let deadline = tokio::time::Instant::from_std(*this.start + *this.timeout);
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                ready!(timer.as_mut().poll(cx));
                let message = format!("the request was not answered within {:?}", this.timeout);
                Ok(ApiError::new(Code::RequestTimeout, message).into_response())
            }
        };
        if let Ok(response) = &result {
            this.timings.record(this.route.as_ref(), this.method, response.status(), this.start.elapsed());
        }
        Poll::Ready(result)
    }
}
