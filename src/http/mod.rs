//! Routers and thin handlers: extract, call, map. Only this module knows HTTP exists, and
//! [`error`] is the only place an error status is chosen.

mod alerts;
pub mod auth;
pub mod error;
mod evaluate;
mod flags;
mod ofrep;
mod ops;
pub mod releases;
mod stream;
mod versions;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use axum::routing::{delete, get, post};
use prometheus_client::metrics::histogram::Histogram;
use serde::de::DeserializeOwned;

use crate::metrics::HttpLabels;
use crate::serving::Serving;
use auth::Tokens;
use error::{ApiError, Code};

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub serving: Arc<Serving>,
    pub tokens: Arc<Tokens>,
    pub body_limit: usize,
    /// Fires on shutdown: long-lived streams end so graceful shutdown can finish.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The monitor's last verdict per flag and alert.
    pub board: crate::monitor::AlertBoard,
    /// Release strategy, maintenance windows, default service.
    pub releases: Arc<releases::ReleaseSettings>,
    /// Pre-resolved duration histograms for `200` answers: method -> route -> histogram.
    hot_histograms: Arc<HashMap<&'static str, HashMap<String, Histogram>>>,
}

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/evaluate"),
    ("POST", "/evaluate/all"),
    ("GET", "/evaluate/{key}"),
    ("POST", "/ofrep/v1/evaluate/flags/{key}"),
    ("POST", "/ofrep/v1/evaluate/flags"),
    ("GET", "/flags"),
    ("GET", "/flags/{key}"),
    ("PUT", "/flags/{key}"),
    ("DELETE", "/flags/{key}/override"),
    ("POST", "/flags/{key}/rollout"),
    ("GET", "/audit"),
    ("POST", "/reload"),
    ("GET", "/events"),
    ("POST", "/alerts"),
    ("POST", "/versions/next"),
    ("POST", "/releases"),
    ("GET", "/releases"),
    ("GET", "/releases/{id}"),
    ("GET", "/releases/metrics"),
    ("GET", "/flags/stale"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
];

impl AppState {
    pub fn new(
        serving: Arc<Serving>,
        tokens: Tokens,
        body_limit: usize,
        shutdown: tokio::sync::watch::Receiver<bool>,
        board: crate::monitor::AlertBoard,
    ) -> Self {
        let mut hot: HashMap<&'static str, HashMap<String, Histogram>> = HashMap::new();
        for (method, route) in ROUTES {
            let labels =
                HttpLabels { route: (*route).to_owned(), method: (*method).to_owned(), status: "200".to_owned() };
            let histogram = serving.metrics.http_duration.get_or_create(&labels).clone();
            hot.entry(method).or_default().insert((*route).to_owned(), histogram);
        }
        Self {
            serving,
            tokens: Arc::new(tokens),
            body_limit,
            shutdown,
            board,
            releases: Arc::new(releases::ReleaseSettings::default()),
            hot_histograms: Arc::new(hot),
        }
    }

    #[must_use]
    pub fn with_releases(mut self, settings: releases::ReleaseSettings) -> Self {
        self.releases = Arc::new(settings);
        self
    }
}

/// The whole HTTP API.
pub fn app(state: AppState, request_timeout: Duration, cors_origins: &[String]) -> Router {
    let mut evaluation = Router::new()
        .route("/evaluate", post(evaluate::post_one))
        .route("/evaluate/all", post(evaluate::post_all))
        .route("/evaluate/{key}", get(evaluate::get_one))
        .route("/ofrep/v1/evaluate/flags/{key}", post(ofrep::evaluate_flag))
        .route("/ofrep/v1/evaluate/flags/{key}/", post(ofrep::evaluate_flag))
        .route("/ofrep/v1/evaluate/flags", post(ofrep::evaluate_flags))
        .route("/ofrep/v1/evaluate/flags/", post(ofrep::evaluate_flags))
        .route("/events", get(stream::events));
    // Evaluation is open when no client token is configured: no middleware at all then.
    if state.tokens.has_client_tokens() {
        evaluation = evaluation.route_layer(from_fn_with_state(state.clone(), auth::require_client));
    }
    let admin = Router::new()
        .route("/flags", get(flags::list))
        .route("/flags/{key}", get(flags::show).put(flags::put_override))
        .route("/flags/{key}/override", delete(flags::clear_override))
        .route("/flags/{key}/rollout", post(flags::rollout))
        .route("/audit", get(ops::audit))
        .route("/reload", post(ops::reload))
        .route("/versions/next", post(versions::next))
        .route("/releases", post(releases::create).get(releases::list))
        .route("/releases/metrics", get(releases::metrics))
        .route("/releases/{id}", get(releases::show))
        .route("/releases/{id}/notes", get(releases::notes_of))
        .route("/releases/{id}/plan", get(releases::plan_of))
        .route("/releases/{id}/status", post(releases::set_status))
        .route("/releases/{id}/approvals", post(releases::approve))
        .route("/flags/stale", get(releases::stale_flags))
        .route_layer(from_fn_with_state(state.clone(), auth::require_admin));
    let receiver = Router::new()
        .route("/alerts", post(alerts::receive))
        .route_layer(from_fn_with_state(state.clone(), auth::require_receiver));
    let open = Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/schema/flags.json", get(ops::flag_schema));
    let body_limit = state.body_limit;
    let router = Router::new()
        .merge(evaluation)
        .merge(admin)
        .merge(receiver)
        .merge(open)
        .route_layer(from_fn_with_state(state.clone(), observe))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
        .with_state(state);
    if cors_origins.is_empty() { router } else { router.layer(cors(cors_origins)) }
}

/// CORS for browser OpenFeature providers: allows the configured origins, the OFREP headers,
/// and exposes `ETag`.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
    use axum::http::{HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE, IF_NONE_MATCH, HeaderName::from_static("x-api-key")])
        .expose_headers([ETAG])
}

async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no such route")
}

/// 405; the router adds `Allow` with the methods the route takes.
async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "this route does not take that method; `Allow` lists the ones it does")
}

/// Records `toggled_http_request_duration_seconds` by matched route, method and status.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let response = next.run(req).await;
    let seconds = start.elapsed().as_secs_f64();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let hot = (response.status() == StatusCode::OK)
        .then(|| state.hot_histograms.get(method.as_str()).and_then(|m| m.get(route)))
        .flatten();
    match hot {
        Some(h) => h.observe(seconds),
        None => {
            let labels = HttpLabels {
                route: route.to_owned(),
                method: method.to_string(),
                status: response.status().as_u16().to_string(),
            };
            state.serving.metrics.http_duration.get_or_create(&labels).observe(seconds);
        }
    }
    response
}

/// The request body in our error shape: 413 over the limit, 400 when it cannot be read.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        Bytes::from_request(req, state).await.map(RawBody).map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(state.body_limit)
            } else {
                ApiError::new(
                    Code::InvalidBody,
                    format!(
                        "the request body could not be read: {}",
                        std::error::Error::source(&e).map_or_else(String::new, ToString::to_string)
                    ),
                )
            }
        })
    }
}

/// What a request body type answers when it is well-formed JSON of the wrong shape (a wrong
/// type, an unknown field): each route names its own code.
pub trait RequestBody {
    const INVALID: Code;
}

/// A JSON body in our error shape: 413 over the limit, 400 `invalid_json` when it is not JSON,
/// the type's own code (422 on admin routes) naming the field when it is JSON of the wrong
/// shape. Any content type is accepted (clients often omit it).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + RequestBody> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_body(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body that may borrow from `bytes`; an empty body is `{}`.
pub(crate) fn parse_body<'a, T: serde::Deserialize<'a> + RequestBody>(bytes: &'a [u8]) -> Result<T, ApiError> {
    let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    serde_json::from_slice(body).map_err(|e| body_error::<T>(body, &e))
}

/// Explains a body that did not parse. Only then is it parsed again to find the field's path,
/// so a good body pays nothing for it.
fn body_error<'a, T: serde::Deserialize<'a> + RequestBody>(body: &'a [u8], e: &serde_json::Error) -> ApiError {
    if !e.is_data() {
        return ApiError::new(Code::InvalidJson, format!("malformed JSON body: {e}"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let path = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(found) => found.path().to_string(),
        Ok(_) => ".".to_owned(),
    };
    let field = if path == "." { String::new() } else { format!("`{path}`: ") };
    ApiError::new(T::INVALID, format!("{field}{e}"))
}

/// A query string in our error shape: 400 `invalid_query` with our own message.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> axum::extract::FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &AppState) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        match axum::extract::Query::<T>::try_from_uri(&parts.uri) {
            Ok(axum::extract::Query(q)) => Ok(ApiQuery(q)),
            Err(rejection) => {
                let cause = std::error::Error::source(&rejection)
                    .map_or_else(|| "it cannot be read".to_owned(), ToString::to_string);
                Err(ApiError::new(Code::InvalidQuery, format!("invalid query string {query:?}: {cause}")))
            }
        }
    }
}
