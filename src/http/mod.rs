//! Routers and thin handlers: extract, call, map. Only this module knows HTTP exists, and
//! [`error`] is the only place an error status is chosen.

mod alerts;
pub mod auth;
mod console;
pub mod error;
mod etag;
mod evaluate;
mod flag_views;
mod flags;
mod layers;
mod limits;
pub mod listen;
mod ofrep;
mod ops;
mod quality;
mod release_views;
pub mod releases;
mod schedules;
mod stream;
mod train;
pub mod unleash;
mod versions;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use axum::routing::post;
use serde::de::DeserializeOwned;

use crate::serving::Serving;
use auth::Tokens;
use error::{ApiError, Code};

/// Shared state of every handler: one `Arc`, so the clone axum makes for every request (and
/// every layer that holds state) is one atomic increment. Fields are read through `Deref`.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What `/ready`, `/flags` and the Unleash routes show or feed besides the served state, each
/// written by its own background task: the last reload, the supervised tasks, Edge mode's
/// upstream, the monitor's verdicts. A handler takes only these with `State<Boards>`.
#[derive(Debug, Clone)]
pub struct Boards {
    pub reloader: Arc<crate::reload::Reloader>,
    pub tasks: crate::tasks::TaskBoard,
    pub upstream: Arc<crate::upstream::UpstreamBoard>,
    /// The monitor's last verdict per flag and alert.
    pub alerts: crate::monitor::AlertBoard,
}

impl axum::extract::FromRef<AppState> for Boards {
    fn from_ref(state: &AppState) -> Self {
        state.boards.clone()
    }
}

/// The served state alone, for a handler that needs nothing else (`State<Arc<Serving>>`).
impl axum::extract::FromRef<AppState> for Arc<Serving> {
    fn from_ref(state: &AppState) -> Self {
        state.serving.clone()
    }
}

/// What every handler shares (see [`AppState`]).
#[derive(Debug, Clone)]
pub struct Shared {
    pub serving: Arc<Serving>,
    pub tokens: Arc<Tokens>,
    pub body_limit: usize,
    /// Fires on shutdown: long-lived streams end so graceful shutdown can finish.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    pub boards: Boards,
    /// Release strategy, maintenance windows, default service.
    pub releases: Arc<releases::ReleaseSettings>,
    /// The OpenAPI document, rendered once when the router is built.
    pub openapi: Arc<std::sync::OnceLock<String>>,
    /// Most `/events` streams open at once.
    pub max_subscribers: usize,
    /// `/events` streams open now.
    pub streams: Arc<stream::Streams>,
    /// Unleash SDK instances seen and the app names counted.
    pub sdks: Arc<crate::sdks::SdkRegistry>,
    /// The Unleash client features document, rendered once per served state and second.
    pub unleash_features: Arc<unleash::FeaturesCache>,
    /// Most requests in flight (0: no bound).
    pub max_concurrent_requests: usize,
    /// Four-eyes for every flag (`--require-approval`).
    pub require_approval: bool,
    /// Per-client limits on evaluation and admin routes (none: no middleware).
    evaluation_limit: Option<Arc<limits::Limiter>>,
    admin_limit: Option<Arc<limits::Limiter>>,
}

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/evaluate"),
    ("POST", "/evaluate/all"),
    ("GET", "/evaluate/{key}"),
    ("POST", "/ofrep/v1/evaluate/flags/{key}"),
    ("POST", "/ofrep/v1/evaluate/flags"),
    ("GET", "/api/frontend"),
    ("POST", "/api/frontend"),
    ("GET", "/api/frontend/features/{name}"),
    ("GET", "/api/client/features"),
    ("GET", "/flags"),
    ("GET", "/flags/{key}"),
    ("PUT", "/flags/{key}"),
    ("DELETE", "/flags/{key}/override"),
    ("POST", "/flags/{key}/schedule"),
    ("GET", "/schedules"),
    ("DELETE", "/schedules/{id}"),
    ("GET", "/change-requests"),
    ("POST", "/change-requests/{id}/approve"),
    ("POST", "/change-requests/{id}/reject"),
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
        boards: Boards,
        tokens: Tokens,
        body_limit: usize,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self(Arc::new(Shared {
            serving,
            boards,
            tokens: Arc::new(tokens),
            body_limit,
            shutdown,
            releases: Arc::new(releases::ReleaseSettings::default()),
            openapi: Arc::default(),
            max_subscribers: stream::MAX_SUBSCRIBERS,
            streams: Arc::default(),
            unleash_features: Arc::default(),
            sdks: Arc::default(),
            max_concurrent_requests: 0,
            require_approval: false,
            evaluation_limit: None,
            admin_limit: None,
        }))
    }

    /// Per-client rate limits on evaluation and admin routes.
    #[must_use]
    pub fn with_rate_limits(mut self, evaluation: Option<governor::Quota>, admin: Option<governor::Quota>) -> Self {
        let shared = Arc::make_mut(&mut self.0);
        shared.evaluation_limit = evaluation.map(|q| limits::Limiter::new("evaluation", q));
        shared.admin_limit = admin.map(|q| limits::Limiter::new("admin", q));
        self
    }

    /// Sheds requests beyond `max` in flight (0: no bound, no layer).
    #[must_use]
    pub fn with_max_concurrent_requests(mut self, max: usize) -> Self {
        Arc::make_mut(&mut self.0).max_concurrent_requests = max;
        self
    }

    /// Whether a route reads the client's address (a rate limit keyed by it).
    pub fn uses_peer_addresses(&self) -> bool {
        self.evaluation_limit.is_some() || self.admin_limit.is_some()
    }

    #[must_use]
    pub fn with_approval(mut self, require: bool) -> Self {
        Arc::make_mut(&mut self.0).require_approval = require;
        self
    }

    #[must_use]
    pub fn with_max_subscribers(mut self, max: usize) -> Self {
        Arc::make_mut(&mut self.0).max_subscribers = max;
        self
    }

    #[must_use]
    pub fn with_releases(mut self, settings: releases::ReleaseSettings) -> Self {
        Arc::make_mut(&mut self.0).releases = Arc::new(settings);
        self
    }
}

/// The OpenAPI document's frame: title, security schemes; the paths come from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "toggled", description = "Feature-flag evaluation and release server"),
    modifiers(&SecuritySchemes),
    tags(
        (name = "evaluation", description = "what a context gets (client token when client tokens are configured)"),
        (name = "openfeature", description = "OpenFeature Remote Evaluation Protocol"),
        (name = "unleash", description = "Unleash's frontend API, for Unleash's browser and mobile SDKs"),
        (name = "flags", description = "live state, kill switch, overrides, rollouts (admin)"),
        (name = "releases", description = "versions, release plans, quality (admin)"),
        (name = "operations", description = "health, readiness, metrics, audit, reload, self-description"),
        (name = "console", description = "the web console's files (the page signs in with an admin token)"),
    )
)]
struct ApiDoc;

/// `admin`, `client` and `receiver` tokens are bearer tokens; clients may also send `X-API-Key`.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, what) in [
            ("admin", "an admin token"),
            ("client", "a client token"),
            ("frontend", "a frontend token (answers only)"),
            ("receiver", "a receiver token"),
        ] {
            let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(what)).build();
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
        components
            .add_security_scheme("client_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    }
}

/// The whole HTTP API. Every route is registered together with its OpenAPI description
/// (`routes!`), so the document served at `/openapi.json` lists exactly what is routed; the
/// only plain routes are the OFREP trailing-slash aliases.
pub fn app(state: AppState, request_timeout: Duration, cors_origins: &[String]) -> Router {
    use utoipa::OpenApi as _;
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    let mut evaluation = OpenApiRouter::new()
        .routes(routes!(evaluate::post_one))
        .routes(routes!(evaluate::post_all))
        .routes(routes!(evaluate::get_one))
        .routes(routes!(ofrep::evaluate_flag))
        .route("/ofrep/v1/evaluate/flags/{key}/", post(ofrep::evaluate_flag))
        .routes(routes!(ofrep::evaluate_flags))
        .route("/ofrep/v1/evaluate/flags/", post(ofrep::evaluate_flags))
        .routes(routes!(stream::events))
        .routes(routes!(unleash::frontend_get, unleash::frontend_post))
        .routes(routes!(unleash::frontend_feature))
        .routes(routes!(unleash::frontend_metrics))
        .routes(routes!(unleash::frontend_register));
    // Evaluation is open when no client token is configured: no middleware at all then.
    if state.tokens.has_client_tokens() {
        evaluation = evaluation.route_layer(from_fn_with_state(state.clone(), auth::require_client));
    }
    // The rate limit wraps authentication: a flood of bad tokens is limited by address too.
    if let Some(limiter) = &state.evaluation_limit {
        evaluation = evaluation.route_layer(from_fn_with_state((state.clone(), limiter.clone()), limits::limit));
    }
    let admin = OpenApiRouter::new()
        .routes(routes!(flags::list))
        .routes(routes!(flags::show, flags::put_override))
        .routes(routes!(flags::clear_override))
        .routes(routes!(flags::rollout))
        .routes(routes!(schedules::create))
        .routes(routes!(schedules::list))
        .routes(routes!(schedules::cancel))
        .routes(routes!(schedules::requests))
        .routes(routes!(schedules::approve))
        .routes(routes!(schedules::reject))
        .routes(routes!(ops::audit))
        .routes(routes!(ops::reload))
        .routes(routes!(versions::next))
        .routes(routes!(releases::create, releases::list))
        .routes(routes!(quality::metrics))
        .routes(routes!(train::order_of))
        .routes(routes!(releases::show))
        .routes(routes!(releases::notes_of))
        .routes(routes!(releases::plan_of))
        .routes(routes!(releases::set_status))
        .routes(routes!(releases::approve))
        .routes(routes!(quality::stale_flags))
        .routes(routes!(unleash::sdk_instances))
        .route_layer(from_fn_with_state(state.clone(), auth::require_admin));
    let admin = match &state.admin_limit {
        Some(limiter) => admin.route_layer(from_fn_with_state((state.clone(), limiter.clone()), limits::limit)),
        None => admin,
    };
    // Unleash's server SDKs read flag definitions (targeting rules included): client and admin
    // tokens only, never frontend ones.
    let mut sdk = OpenApiRouter::new()
        .routes(routes!(unleash::client_features))
        .routes(routes!(unleash::client_register))
        .routes(routes!(unleash::client_metrics));
    if state.tokens.has_client_tokens() {
        sdk = sdk.route_layer(from_fn_with_state(state.clone(), auth::require_definitions));
    }
    if let Some(limiter) = &state.evaluation_limit {
        sdk = sdk.route_layer(from_fn_with_state((state.clone(), limiter.clone()), limits::limit));
    }
    let receiver = OpenApiRouter::new()
        .routes(routes!(alerts::receive))
        .route_layer(from_fn_with_state(state.clone(), auth::require_receiver));
    let open = OpenApiRouter::new()
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::flag_schema))
        .routes(routes!(ops::openapi))
        .routes(routes!(console::index))
        .routes(routes!(console::asset));
    let (routes, document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(evaluation)
        .merge(admin)
        .merge(sdk)
        .merge(receiver)
        .merge(open)
        .split_for_parts();
    let _ = state.openapi.set(document.to_json().expect("the OpenAPI document serialises"));
    let max_in_flight = state.max_concurrent_requests;
    let router = routes
        .route_layer(layers::ObserveLayer::new(&state.serving.metrics.http_duration, ROUTES, request_timeout))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    let router = if max_in_flight == 0 {
        router
    } else {
        router.layer(from_fn_with_state(Arc::new(tokio::sync::Semaphore::new(max_in_flight)), shed))
    };
    if cors_origins.is_empty() { router } else { router.layer(cors(cors_origins)) }
}

/// Load shedding: at most `max` requests in flight over all routes (one semaphore, taken without
/// waiting); the next is answered at once with 503 `overloaded` and `Retry-After: 1` rather than
/// queued behind them. Liveness, readiness and metrics are never shed: a probe that fails under
/// load restarts pods or drains every replica at once, and scrapes matter most then.
async fn shed(State(slots): State<Arc<tokio::sync::Semaphore>>, req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/health" | "/ready" | "/metrics") {
        return next.run(req).await;
    }
    match slots.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => axum::response::IntoResponse::into_response(
            ApiError::new(Code::Overloaded, "too many requests in flight; retry shortly").with_retry_after(1),
        ),
    }
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
        .allow_headers([
            AUTHORIZATION,
            CONTENT_TYPE,
            IF_NONE_MATCH,
            HeaderName::from_static("x-api-key"),
            // What Unleash's browser SDK sends.
            HeaderName::from_static("unleash-appname"),
            HeaderName::from_static("unleash-connection-id"),
            HeaderName::from_static("unleash-sdk"),
        ])
        .expose_headers([ETAG])
}

async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no such route")
}

/// 405; the router adds `Allow` with the methods the route takes.
async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "this route does not take that method; `Allow` lists the ones it does")
}

/// The request body in our error shape: 413 over `--body-limit`, 400 when it cannot be read.
/// Every route reads its body through this (the limit is applied here, not by a layer that
/// would tag every request).
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        use http_body_util::BodyExt as _;
        let limited = http_body_util::Limited::new(req.into_body(), state.body_limit);
        match limited.collect().await {
            Ok(collected) => Ok(RawBody(collected.to_bytes())),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::payload_too_large(state.body_limit)),
            Err(e) => {
                let cause = std::error::Error::source(&*e).map_or_else(|| e.to_string(), ToString::to_string);
                Err(ApiError::new(Code::InvalidBody, format!("the request body could not be read: {cause}")))
            }
        }
    }
}

/// The one path parameter of a route (a flag key, a console asset): a segment that does not
/// decode to UTF-8 (`/evaluate/%ff%fe`) is a 400 `invalid_request` in our JSON shape.
#[derive(Debug)]
pub struct KeyPath(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for KeyPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(key)) => Ok(KeyPath(key)),
            Err(e) => {
                Err(ApiError::new(Code::InvalidRequest, format!("the path's key is not valid: {}", e.body_text())))
            }
        }
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
