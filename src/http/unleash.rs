//! Unleash's APIs. For server SDKs: `GET /api/client/features`, the served flags projected into
//! Unleash's model ([`crate::export::unleash`]), rendered once per served state and second,
//! with `ETag`/304; `POST /api/client/register` and `/api/client/metrics` (202).
//!
//! Unleash's frontend API, as browser and mobile SDKs call it (and as Unleash Edge serves it):
//! `GET /api/frontend` (context in the query), `POST /api/frontend` (`{"context": {...}}`),
//! `GET /api/frontend/features/{name}`, and the SDKs' `client/metrics` and `client/register`
//! posts. Answers come from toggled's own evaluator over the served snapshot, so they are what
//! `/evaluate` answers for the same context.
//!
//! How an answer becomes an Unleash toggle (the list holds enabled toggles only):
//! - a boolean flag is listed when its value is `true`, with the variant `disabled` (what Unleash
//!   gives a feature without variants);
//! - a variant flag is listed when the context gets a live variant (reason `STATIC`,
//!   `TARGETING_MATCH`, `SPLIT` or `OVERRIDE`), with that variant and its value as the payload
//!   (`string`, `number`, or `json` for anything else; a variant named `disabled` is Unleash's
//!   answer without a variant: `enabled: false`, no payload); a flag that is off, killed, rolled back,
//!   past its sunset or outside its targeting is left out, so the SDK answers its own default.
//!
//! The context: `userId`, `sessionId`, `remoteAddress`, `appName`, `environment`, `currentTime`
//! as they are; `properties[name]=value` (query) or `properties: {...}` (body) both as
//! `properties.name` (what imported Unleash flags read) and as a top-level `name` (what
//! toggled's own flags read), the standard fields winning. `remoteAddress` is not filled from
//! the connection (as on `/evaluate`): send it when a flag targets addresses.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, ETAG};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;

use super::error::{ApiError, Code};
use super::{AppState, KeyPath, RawBody};
use crate::eval::context::Attr;
use crate::eval::{Context, Evaluation, Reason};
use crate::flags::Flag;
use crate::flags::snapshot::FlagKind;

/// Context fields Unleash defines at the top level; everything else is a property.
const STANDARD_FIELDS: [&str; 6] = ["userId", "sessionId", "remoteAddress", "appName", "environment", "currentTime"];

/// One toggle of the frontend API's answer.
#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Toggle<'a> {
    pub name: &'a str,
    pub enabled: bool,
    pub variant: ToggleVariant<'a>,
    #[serde(rename = "impressionData")]
    pub impression_data: bool,
}

#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ToggleVariant<'a> {
    pub name: &'a str,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Both spellings: SDKs read one or the other.
    pub feature_enabled: bool,
    #[serde(rename = "featureEnabled")]
    pub feature_enabled_camel: bool,
}

/// Pure: the toggle an answer is, or `None` when the toggle is off for this context.
pub fn toggle<'a>(flag: &'a Flag, e: &Evaluation<'a>) -> Option<Toggle<'a>> {
    let variant = match flag.kind {
        FlagKind::Boolean => {
            if *e.value != Value::Bool(true) {
                return None;
            }
            ToggleVariant {
                name: "disabled",
                enabled: false,
                payload: None,
                feature_enabled: true,
                feature_enabled_camel: true,
            }
        }
        FlagKind::Variant => {
            if !matches!(e.reason, Reason::Static | Reason::TargetingMatch | Reason::Split | Reason::Override) {
                return None;
            }
            let named = e.variant != crate::export::unleash::DISABLED;
            ToggleVariant {
                name: e.variant,
                enabled: named,
                payload: named.then(|| crate::export::unleash::payload(e.value)),
                feature_enabled: true,
                feature_enabled_camel: true,
            }
        }
    };
    Some(Toggle { name: &flag.key, enabled: true, variant, impression_data: false })
}

/// Builds the evaluation context from Unleash's fields and properties.
fn context_of<'c>(fields: Vec<(Cow<'c, str>, Cow<'c, str>)>, properties: Vec<(Cow<'c, str>, Attr<'c>)>) -> Context<'c> {
    let mut ctx = Context::new();
    for (name, value) in &properties {
        ctx.insert(name.clone(), value.clone());
    }
    if !properties.is_empty() {
        ctx.insert("properties", Attr::Object(properties));
    }
    for (name, value) in fields {
        ctx.insert(name, Attr::Str(value));
    }
    ctx
}

/// The context of a query string: `properties[name]=value` are properties, the standard fields
/// are fields, and any other name is a property too (as Edge reads it).
fn query_context(query: &str) -> Context<'_> {
    let (mut fields, mut properties) = (Vec::new(), Vec::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if let Some(prop) = name.strip_prefix("properties[").and_then(|n| n.strip_suffix(']')) {
            properties.push((Cow::Owned(prop.to_owned()), Attr::Str(value)));
        } else if STANDARD_FIELDS.contains(&name.as_ref()) {
            fields.push((name, value));
        } else {
            properties.push((name, Attr::Str(value)));
        }
    }
    context_of(fields, properties)
}

/// The context of a `POST /api/frontend` body: `{"context": {...}}` (a bare context object is
/// read the same way).
fn body_context(body: &Value) -> Result<Context<'_>, ApiError> {
    let object = match body.get("context").unwrap_or(body) {
        Value::Object(map) => map,
        Value::Null => return Ok(Context::new()),
        _ => return Err(ApiError::new(Code::InvalidContext, "`context` must be a JSON object")),
    };
    let (mut fields, mut properties) = (Vec::new(), Vec::new());
    for (name, value) in object {
        if name == "properties" {
            let Value::Object(props) = value else {
                return Err(ApiError::new(Code::InvalidContext, "`context.properties` must be a JSON object"));
            };
            properties.extend(props.iter().map(|(k, v)| (Cow::Borrowed(k.as_str()), Attr::of_json(v))));
        } else if STANDARD_FIELDS.contains(&name.as_str()) {
            match value {
                Value::String(s) => fields.push((Cow::Borrowed(name.as_str()), Cow::Borrowed(s.as_str()))),
                Value::Null => {}
                other => fields.push((Cow::Borrowed(name.as_str()), Cow::Owned(other.to_string()))),
            }
        } else {
            properties.push((Cow::Borrowed(name.as_str()), Attr::of_json(value)));
        }
    }
    Ok(context_of(fields, properties))
}

/// The frontend API's answer: the enabled toggles only.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Toggles<'a> {
    pub toggles: Vec<Toggle<'a>>,
}

/// Unleash's client features document, version 2 (rendered from [`crate::export::unleash`];
/// this type describes it for OpenAPI, and `tests/it/openapi.rs` checks real answers against it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientFeatures {
    /// 2.
    pub version: i64,
    /// Unleash features: `name`, `enabled`, `strategies` (ordered `flexibleRollout`s with
    /// constraints and variants), `dependencies`, ...
    pub features: Vec<serde_json::Map<String, Value>>,
    /// Always empty: segments are inlined into constraints.
    pub segments: Vec<serde_json::Map<String, Value>>,
    pub query: serde_json::Map<String, Value>,
    /// `revisionId`: a number that changes with the flag file.
    pub meta: serde_json::Map<String, Value>,
}

/// `GET /sdk-instances`, most recently seen first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SdkInstances {
    pub instances: Vec<crate::sdks::Instance>,
}

/// Every enabled toggle for `ctx`, from one snapshot, with an `ETag` of the body (304 when the
/// client has it).
fn answer_all(state: &AppState, ctx: &Context, headers: &HeaderMap) -> Result<Response, ApiError> {
    let served = state.serving.load();
    if !served.ready {
        return Err(ApiError::not_ready());
    }
    let now = Utc::now();
    let toggles = served
        .snapshot
        .flags
        .iter()
        .enumerate()
        .filter_map(|(idx, flag)| toggle(flag, &served.evaluate(&state.serving.metrics, idx, ctx, now)))
        .collect();
    let body = serde_json::to_vec(&Toggles { toggles }).expect("toggles serialise");
    let etag = super::etag::of(&body);
    let etag_header = HeaderValue::from_str(&etag).expect("an entity tag is ASCII");
    if super::etag::fresh(headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag_header)]).into_response());
    }
    Ok(([(CONTENT_TYPE, HeaderValue::from_static("application/json")), (ETAG, etag_header)], Bytes::from(body))
        .into_response())
}

/// Every enabled toggle for the context in the query string.
#[utoipa::path(
    operation_id = "unleash_frontend_get",
    get,
    path = "/api/frontend",
    tag = "unleash",
    security((), ("client" = []), ("frontend" = [])),
    params(("userId" = Option<String>, Query, description = "and sessionId, remoteAddress, appName, environment, currentTime, properties[name]")),
    responses(
        (status = 200, description = "enabled toggles only", body = Toggles),
        (status = 304, description = "the client's ETag is current"),
        crate::http::error::answers::Unauthenticated,
        crate::http::error::answers::NotLoaded,
    )
)]
pub async fn frontend_get(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Result<Response, ApiError> {
    let ctx = query_context(uri.query().unwrap_or_default());
    answer_all(&state, &ctx, &headers)
}

/// Every enabled toggle for the context in the body.
#[utoipa::path(
    operation_id = "unleash_frontend_post",
    post,
    path = "/api/frontend",
    tag = "unleash",
    security((), ("client" = []), ("frontend" = [])),
    request_body(content = serde_json::Value, description = "`{\"context\": {userId, sessionId, properties: {...}, ...}}`"),
    responses(
        (status = 200, description = "enabled toggles only", body = Toggles),
        (status = 304, description = "the client's ETag is current"),
        (status = 400, description = "malformed JSON or context", body = crate::http::error::ErrorBody),
        crate::http::error::answers::Unauthenticated,
        crate::http::error::answers::NotLoaded,
    )
)]
pub async fn frontend_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::new(Code::InvalidJson, format!("invalid JSON: {e}")))?
    };
    let ctx = body_context(&value)?;
    answer_all(&state, &ctx, &headers)
}

/// One toggle for the context in the query string; 404 when it is off (as Edge answers).
#[utoipa::path(
    operation_id = "unleash_frontend_feature",
    get,
    path = "/api/frontend/features/{name}",
    tag = "unleash",
    security((), ("client" = []), ("frontend" = [])),
    params(("name" = String, Path, description = "flag key")),
    responses(
        (status = 200, description = "the toggle", body = Toggle),
        crate::http::error::answers::Unauthenticated,
        (status = 404, description = "no such flag, or off for this context", body = crate::http::error::ErrorBody),
        crate::http::error::answers::NotLoaded,
    )
)]
pub async fn frontend_feature(
    State(state): State<AppState>,
    KeyPath(name): KeyPath,
    uri: Uri,
) -> Result<Response, ApiError> {
    let ctx = query_context(uri.query().unwrap_or_default());
    let served = state.serving.load();
    if !served.ready {
        return Err(ApiError::not_ready());
    }
    let idx = served.index(&name).ok_or_else(|| ApiError::flag_not_found(&name))?;
    let flag = &served.snapshot.flags[idx];
    let e = served.evaluate(&state.serving.metrics, idx, &ctx, Utc::now());
    let toggle = toggle(flag, &e).ok_or_else(|| ApiError::flag_not_found(&name))?;
    Ok(axum::Json(toggle).into_response())
}

/// One rendering of the client features document.
#[derive(Debug)]
pub struct Rendered {
    /// The served state it was rendered from (its address: a new state is a new allocation,
    /// and the cache holds this one alive, so the address is not reused meanwhile).
    served: Arc<crate::serving::Served>,
    second: i64,
    body: Bytes,
    etag: HeaderValue,
}

/// The last rendering: read without a lock; a stale one is replaced by whoever renders.
#[derive(Debug, Default)]
pub struct FeaturesCache(arc_swap::ArcSwapOption<Rendered>);

/// What Unleash's server SDKs poll: toggled's flags as Unleash features (see
/// [`crate::export::unleash`]), `ETag`/304 on `If-None-Match`.
#[utoipa::path(
    operation_id = "unleash_client_features",
    get,
    path = "/api/client/features",
    tag = "unleash",
    security((), ("client" = []), ("admin" = [])),
    responses(
        (status = 200, description = "Unleash's client features document, version 2", body = ClientFeatures),
        (status = 304, description = "the SDK's ETag is current"),
        crate::http::error::answers::Unauthenticated,
        (status = 403, description = "a frontend token: answers only, never definitions", body = crate::http::error::ErrorBody),
        crate::http::error::answers::NotLoaded,
    )
)]
pub async fn client_features(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let served = state.serving.load_full();
    if !served.ready {
        return Err(ApiError::not_ready());
    }
    let now = Utc::now();
    let second = now.timestamp();
    let cached = state.unleash_features.0.load_full().filter(|r| Arc::ptr_eq(&r.served, &served) && r.second == second);
    let rendered = match cached {
        Some(r) => r,
        None => {
            let projection = crate::export::unleash::project(&served.snapshot, |i| served.flags[i].state(), now);
            let body = Bytes::from(serde_json::to_vec(&projection.document).expect("a document serialises"));
            let etag = HeaderValue::from_str(&super::etag::of(&body)).expect("an entity tag is ASCII");
            let r = Arc::new(Rendered { served: served.clone(), second, body, etag });
            state.unleash_features.0.store(Some(r.clone()));
            r
        }
    };
    let etag = rendered.etag.to_str().unwrap_or_default();
    if super::etag::fresh(&headers, etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, rendered.etag.clone())]).into_response());
    }
    Ok((
        [(CONTENT_TYPE, HeaderValue::from_static("application/json")), (ETAG, rendered.etag.clone())],
        rendered.body.clone(),
    )
        .into_response())
}

/// A server SDK's registration: listed on `GET /sdk-instances` (202).
#[utoipa::path(
    operation_id = "unleash_client_register",
    post,
    path = "/api/client/register",
    tag = "unleash",
    security((), ("client" = []), ("admin" = [])),
    request_body(content = serde_json::Value, description = "Unleash client registration"),
    responses(
        (status = 202, description = "accepted"),
        crate::http::error::answers::NotJson,
        crate::http::error::answers::Unauthenticated,
    )
)]
pub async fn client_register(State(state): State<AppState>, RawBody(body): RawBody) -> Result<StatusCode, ApiError> {
    registered(&state, &body, "server")
}

/// A server SDK's evaluation counts: added to `toggled_sdk_evaluations_total` (202).
#[utoipa::path(
    operation_id = "unleash_client_metrics",
    post,
    path = "/api/client/metrics",
    tag = "unleash",
    security((), ("client" = []), ("admin" = [])),
    request_body(content = serde_json::Value, description = "Unleash client metrics"),
    responses(
        (status = 202, description = "accepted"),
        crate::http::error::answers::NotJson,
        crate::http::error::answers::Unauthenticated,
    )
)]
pub async fn client_metrics(State(state): State<AppState>, RawBody(body): RawBody) -> Result<StatusCode, ApiError> {
    reported(&state, &body, "server")
}

/// A registration: the instance is remembered (202).
fn registered(state: &AppState, body: &Bytes, kind: &'static str) -> Result<StatusCode, ApiError> {
    let r: crate::sdks::Registration = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(Code::InvalidJson, format!("not an Unleash registration: {e}")))?;
    state.sdks.seen(&r.app_name, &r.instance_id, r.sdk_version, kind);
    forward(state, crate::upstream::ReportKind::Registration, body);
    Ok(StatusCode::ACCEPTED)
}

/// Edge mode: the report goes on to the upstream too.
fn forward(state: &AppState, kind: crate::upstream::ReportKind, body: &Bytes) {
    if state.boards.upstream.forward(kind, body.clone()) {
        let labels = crate::metrics::OutcomeLabels { outcome: "dropped".to_owned() };
        state.serving.metrics.upstream_forwards.get_or_create(&labels).inc();
    }
}

/// A metrics report: counted as SDK evaluations of the served flags (202).
fn reported(state: &AppState, body: &Bytes, kind: &'static str) -> Result<StatusCode, ApiError> {
    let r: crate::sdks::Report = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(Code::InvalidJson, format!("not an Unleash metrics report: {e}")))?;
    state.sdks.seen(&r.app_name, &r.instance_id, None, kind);
    state.sdks.count(&state.serving, &r);
    forward(state, crate::upstream::ReportKind::Metrics, body);
    Ok(StatusCode::ACCEPTED)
}

/// The Unleash SDK instances that registered or reported, most recently seen first.
#[utoipa::path(
    operation_id = "unleash_sdk_instances",
    get,
    path = "/sdk-instances",
    tag = "unleash",
    security(("admin" = [])),
    responses(
        (status = 200, description = "SDK instances, most recently seen first", body = SdkInstances),
        crate::http::error::answers::AdminAuth,
    )
)]
pub async fn sdk_instances(State(state): State<AppState>) -> axum::Json<SdkInstances> {
    axum::Json(SdkInstances { instances: state.sdks.instances() })
}

/// A frontend SDK's evaluation counts: added to `toggled_sdk_evaluations_total` (202).
#[utoipa::path(
    operation_id = "unleash_frontend_metrics",
    post,
    path = "/api/frontend/client/metrics",
    tag = "unleash",
    security((), ("client" = []), ("frontend" = [])),
    request_body(content = serde_json::Value, description = "Unleash client metrics"),
    responses(
        (status = 202, description = "accepted"),
        crate::http::error::answers::NotJson,
        crate::http::error::answers::Unauthenticated,
    )
)]
pub async fn frontend_metrics(State(state): State<AppState>, RawBody(body): RawBody) -> Result<StatusCode, ApiError> {
    reported(&state, &body, "frontend")
}

/// A frontend SDK's registration: listed on `GET /sdk-instances` (202).
#[utoipa::path(
    operation_id = "unleash_frontend_register",
    post,
    path = "/api/frontend/client/register",
    tag = "unleash",
    security((), ("client" = []), ("frontend" = [])),
    request_body(content = serde_json::Value, description = "Unleash client registration"),
    responses(
        (status = 202, description = "accepted"),
        crate::http::error::answers::NotJson,
        crate::http::error::answers::Unauthenticated,
    )
)]
pub async fn frontend_register(State(state): State<AppState>, RawBody(body): RawBody) -> Result<StatusCode, ApiError> {
    registered(&state, &body, "frontend")
}
