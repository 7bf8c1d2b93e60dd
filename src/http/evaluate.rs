//! Evaluation routes: `POST /evaluate`, `POST /evaluate/all`, `GET /evaluate/{key}`.

use super::KeyPath;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use super::error::{ApiError, Code};
use super::{AppState, RawBody, parse_body};
use crate::eval::context::{Attr, ContextField};
use crate::eval::{Context, body};

/// Read borrowed from the request body: the flag key and the context's names and strings are
/// not copied.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EvaluateRequest<'a> {
    #[serde(borrow)]
    flag: Option<std::borrow::Cow<'a, str>>,
    /// The evaluation context: a JSON object.
    #[serde(borrow)]
    #[schema(value_type = Option<Object>)]
    context: Option<ContextField<'a>>,
    /// Adds the evaluator's steps to the answer.
    #[serde(default)]
    explain: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EvaluateAllRequest<'a> {
    /// The evaluation context: a JSON object.
    #[serde(borrow)]
    #[schema(value_type = Option<Object>)]
    context: Option<ContextField<'a>>,
}

/// The context object of a request; absent or `null` is an empty context.
fn context_of(field: Option<ContextField<'_>>) -> Result<Context<'_>, ApiError> {
    ContextField::into_context(field)
        .map_err(|kind| ApiError::new(Code::InvalidContext, format!("`context` must be a JSON object, not {kind}")))
}

fn json_response(body: impl IntoResponse) -> Response {
    ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// A single answer as one allocation of exactly its size, written first into this thread's
/// scratch buffer (a `Vec` with room to spare would become a body with a second, shared
/// allocation, and grow while being written).
pub(super) fn scratch(write: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
    }
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        write(buf);
        let body = Bytes::copy_from_slice(buf);
        // An unusually large answer (explain) does not stay allocated per thread.
        if buf.capacity() > 64 * 1024 {
            *buf = Vec::with_capacity(1024);
        }
        body
    })
}

fn evaluate_one(state: &AppState, key: &str, ctx: &Context, explain: bool) -> Result<Response, ApiError> {
    let served = state.serving.load();
    if !served.ready {
        return Err(ApiError::not_ready());
    }
    let idx = served.index(key).ok_or_else(|| ApiError::flag_not_found(key))?;
    let flag = &served.snapshot.flags[idx];
    let now = Utc::now();
    let mut steps = Vec::new();
    let e = if explain {
        served.evaluate_traced(&state.serving.metrics, idx, ctx, now, &mut steps)
    } else {
        served.evaluate(&state.serving.metrics, idx, ctx, now)
    };
    let mut body = e.body(flag, &served.snapshot.revision);
    if explain {
        body.explain = Some(&steps);
    }
    let mut response = json_response(scratch(|out| body.write_json(out)));
    if let Some(sunset) = e.sunset {
        for (name, value) in sunset.headers() {
            if let Ok(value) = HeaderValue::from_str(value) {
                response.headers_mut().insert(HeaderName::from_static(header_name(name)), value);
            }
        }
    }
    Ok(response)
}

fn header_name(name: &'static str) -> &'static str {
    match name {
        "Deprecation" => "deprecation",
        "Sunset" => "sunset",
        _ => "link",
    }
}

#[utoipa::path(
    operation_id = "evaluate_post_one",
    post,
    path = "/evaluate",
    tag = "evaluation",
    security((), ("client" = [])),
    request_body = EvaluateRequest,
    responses(
        (status = 200, description = "one answer", body = crate::eval::EvaluationBody),
        crate::http::error::answers::Malformed,
        crate::http::error::answers::Unauthenticated,
        crate::http::error::answers::NotFound,
        crate::http::error::answers::TooLarge,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn post_one(State(state): State<AppState>, RawBody(body): RawBody) -> Result<Response, ApiError> {
    let req: EvaluateRequest<'_> = parse_body(&body)?;
    let key = req.flag.ok_or_else(|| ApiError::new(Code::InvalidRequest, "`flag` (the flag key) is required"))?;
    let ctx = context_of(req.context)?;
    evaluate_one(&state, &key, &ctx, req.explain)
}

#[utoipa::path(
    operation_id = "evaluate_get_one",
    get,
    path = "/evaluate/{key}",
    tag = "evaluation",
    security((), ("client" = [])),
    params(("key" = String, Path, description = "the flag key"), ("explain" = Option<bool>, Query, description = "add the evaluator's steps; every other query parameter is a context attribute")),
    responses(
        (status = 200, description = "one answer", body = crate::eval::EvaluationBody),
        crate::http::error::answers::Malformed,
        crate::http::error::answers::Unauthenticated,
        crate::http::error::answers::NotFound,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn get_one(State(state): State<AppState>, KeyPath(key): KeyPath, uri: Uri) -> Result<Response, ApiError> {
    // `explain` is the one reserved query key: `explain=true` asks for the steps. Names and
    // values borrow the query string unless they are percent-encoded.
    let mut explain = false;
    let ctx: Context = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .filter(|(k, v)| {
            let reserved = k == "explain";
            explain |= reserved && matches!(v.as_ref(), "true" | "1" | "");
            !reserved
        })
        .map(|(k, v)| (k, Attr::Str(v)))
        .collect();
    evaluate_one(&state, &key, &ctx, explain)
}

#[utoipa::path(
    operation_id = "evaluate_post_all",
    post,
    path = "/evaluate/all",
    tag = "evaluation",
    security((), ("client" = [])),
    request_body = EvaluateAllRequest,
    responses(
        (status = 200, description = "every flag's answer from one snapshot", body = AllAnswers),
        crate::http::error::answers::Malformed,
        crate::http::error::answers::Unauthenticated,
        crate::http::error::answers::TooLarge,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn post_all(State(state): State<AppState>, RawBody(body): RawBody) -> Result<Response, ApiError> {
    let req: EvaluateAllRequest<'_> = parse_body(&body)?;
    let ctx = context_of(req.context)?;
    let served = state.serving.load();
    if !served.ready {
        return Err(ApiError::not_ready());
    }
    // `{"flags": {key: answer}, "revision"}`, each answer written as it is evaluated: no JSON
    // tree is built per flag.
    let (now, revision) = (Utc::now(), served.snapshot.revision.as_str());
    let mut buf = Vec::with_capacity(served.snapshot.flags.len() * 160 + 64);
    buf.extend_from_slice(b"{\"flags\":{");
    for (idx, flag) in served.snapshot.flags.iter().enumerate() {
        if idx > 0 {
            buf.push(b',');
        }
        body::text(&mut buf, &flag.key);
        buf.push(b':');
        served.evaluate(&state.serving.metrics, idx, &ctx, now).body(flag, revision).write_json(&mut buf);
    }
    buf.extend_from_slice(b"},\"revision\":");
    body::text(&mut buf, revision);
    buf.push(b'}');
    Ok(json_response(buf))
}

/// What `POST /evaluate/all` answers (written flag by flag as each is evaluated; this type
/// describes it for OpenAPI, and `tests/it/openapi.rs` checks real answers against it).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AllAnswers {
    /// Every flag's answer by key.
    pub flags: std::collections::BTreeMap<String, crate::eval::EvaluationBody<'static>>,
    /// The revision every answer was evaluated from.
    pub revision: String,
}

impl super::RequestBody for EvaluateRequest<'_> {
    const INVALID: Code = Code::InvalidRequest;
}

impl super::RequestBody for EvaluateAllRequest<'_> {
    const INVALID: Code = Code::InvalidRequest;
}
