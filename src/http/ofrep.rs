//! OpenFeature Remote Evaluation Protocol (OFREP): `POST /ofrep/v1/evaluate/flags/{key}` and
//! `POST /ofrep/v1/evaluate/flags`, shaped the way the official providers parse them.
//!
//! Success: `{key, value, reason, variant, metadata}`, with reasons mapped into OpenFeature's set
//! (our own reason in `metadata.toggledReason`) and metadata values that are strings, numbers or
//! booleans only. A flag with `fallback: caller` answers `DISABLED` and `DEFAULT` without `value`
//! (and with a null `variant`): the provider returns the caller's default (as flagd's OFREP
//! server does).
//! Errors: `{key?, errorCode, errorDetails}` with status 400, 404 or 500 only.
//! Bulk answers carry an `ETag` (a hash of the body) and honour `If-None-Match` with 304.

use super::KeyPath;
use std::io::Write as _;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, ETAG};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;

use super::error::{OfrepCode, OfrepError};
use super::{AppState, RawBody, parse_body};
use crate::eval::context::ContextField;
use crate::eval::{Context, Evaluation, Reason, body};
use crate::flags::Flag;
use crate::serving::Served;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
struct OfrepRequest<'a> {
    /// The evaluation context: a JSON object.
    #[serde(borrow)]
    #[schema(value_type = Option<Object>)]
    context: Option<ContextField<'a>>,
}

fn invalid_context(key: Option<&str>, details: impl Into<String>) -> OfrepError {
    OfrepError::new(OfrepCode::InvalidContext, key, details)
}

fn general(key: Option<&str>, details: impl Into<String>) -> OfrepError {
    OfrepError::new(OfrepCode::General, key, details)
}

/// The context of an OFREP request: an empty body or a missing `context` is an empty context.
fn context_of<'a>(key: Option<&str>, bytes: &'a [u8]) -> Result<Context<'a>, OfrepError> {
    let req: OfrepRequest<'_> = parse_body(bytes).map_err(|_| {
        let parse = serde_json::from_slice::<Value>(bytes).err().map_or_else(String::new, |e| e.to_string());
        invalid_context(key, format!("the body must be {{\"context\": {{...}}}}: {parse}"))
    })?;
    ContextField::into_context(req.context)
        .map_err(|kind| invalid_context(key, format!("`context` must be a JSON object, not {kind}")))
}

/// The request body, or OFREP's answer when it cannot be read.
fn body_of(key: Option<&str>, body: Result<RawBody, super::error::ApiError>) -> Result<Bytes, OfrepError> {
    body.map(|RawBody(bytes)| bytes).map_err(|e| invalid_context(key, e.message()))
}

/// OpenFeature's reason for ours; `None` when it maps exactly.
fn openfeature_reason(reason: Reason) -> (&'static str, bool) {
    match reason {
        Reason::Static => ("STATIC", true),
        Reason::TargetingMatch => ("TARGETING_MATCH", true),
        Reason::Split => ("SPLIT", true),
        Reason::Default => ("DEFAULT", true),
        Reason::Disabled => ("DISABLED", true),
        Reason::Override => ("STATIC", false),
        Reason::RolledBack | Reason::Sunset => ("DISABLED", false),
        Reason::RateLimited | Reason::PrerequisiteFailed => ("DEFAULT", false),
    }
}

/// `metadata`: the flag's primitive metadata, then ours.
struct Metadata<'a> {
    flag: &'a Flag,
    e: Evaluation<'a>,
    revision: &'a str,
}

impl Metadata<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        let (flag, e) = (self.flag, &self.e);
        let phase = e.sunset.and_then(|s| s.phase);
        // Ours win over the flag's own metadata of the same name.
        let ours = |k: &str| match k {
            "toggledReason" => !openfeature_reason(e.reason).1,
            "owner" => flag.owner.is_some(),
            "description" => flag.description.is_some(),
            "stage" => e.stage.is_some(),
            "sunsetPhase" => phase.is_some(),
            "revision" => true,
            _ => false,
        };
        let mut separator = b'{';
        let mut key = |out: &mut Vec<u8>, k: &str| {
            out.push(separator);
            separator = b',';
            body::text(out, k);
            out.push(b':');
        };
        for (k, v) in &flag.metadata {
            if !ours(k) && matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                key(out, k);
                serde_json::to_writer(&mut *out, v).expect("a JSON value serialises");
            }
        }
        if !openfeature_reason(e.reason).1 {
            key(out, "toggledReason");
            body::text(out, e.reason.as_str());
        }
        if let Some(owner) = &flag.owner {
            key(out, "owner");
            body::text(out, owner);
        }
        if let Some(description) = &flag.description {
            key(out, "description");
            body::text(out, description);
        }
        if let Some(stage) = e.stage {
            key(out, "stage");
            let _ = write!(out, "{stage}");
        }
        if let Some(phase) = phase {
            key(out, "sunsetPhase");
            body::text(out, phase.kind.as_str());
        }
        key(out, "revision");
        body::text(out, self.revision);
        out.push(b'}');
    }
}

/// What an OFREP evaluation answers (`Answer::write_json` writes it field by field; this type
/// describes it for OpenAPI, and `tests/it/openapi.rs` checks real answers against it).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfrepEvaluation {
    pub key: String,
    /// Absent when the caller's default applies (`fallback: caller`).
    pub value: Option<Value>,
    /// OpenFeature's reason (`STATIC`, `TARGETING_MATCH`, `SPLIT`, `DISABLED`, `DEFAULT`, ...).
    pub reason: String,
    /// Null when the caller's default applies.
    pub variant: Option<String>,
    /// The flag's scalar metadata, and toggled's: `toggledReason` (when OpenFeature has no
    /// reason of that name), `owner`, `description`, `stage`, `sunsetPhase`, `revision`.
    pub metadata: serde_json::Map<String, Value>,
    /// Bulk answers only, for a flag that could not be evaluated.
    pub error_code: Option<String>,
    pub error_details: Option<String>,
}

/// What an OFREP bulk evaluation answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfrepBulk {
    pub flags: Vec<OfrepEvaluation>,
    /// Where a static-context (browser) provider hears that something changed:
    /// `[{"type": "sse", "url": "/events"}]`.
    pub event_streams: Vec<EventStream>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EventStream {
    /// `sse`.
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
}

/// An OFREP error: `{key?, errorCode, errorDetails}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfrepErrorBody {
    pub key: Option<String>,
    /// `INVALID_CONTEXT`, `PARSE_ERROR`, `FLAG_NOT_FOUND`, `GENERAL`, ...
    pub error_code: String,
    pub error_details: String,
}

/// One OFREP answer: `{key, value, reason, variant, metadata}`, written field by field (as
/// `/evaluate`'s answers: see `eval::body`).
struct Answer<'a> {
    key: &'a str,
    /// `None` (with no variant): the caller's default (`fallback: caller`).
    value: Option<(&'a Value, &'a str)>,
    reason: &'static str,
    metadata: Metadata<'a>,
}

impl Answer<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"key\":");
        body::text(out, self.key);
        if let Some((value, _)) = self.value {
            out.extend_from_slice(b",\"value\":");
            serde_json::to_writer(&mut *out, value).expect("a JSON value serialises");
        }
        out.extend_from_slice(b",\"reason\":");
        body::text(out, self.reason);
        // The official Python provider reads `variant` as a required key: null without a value.
        out.extend_from_slice(b",\"variant\":");
        match self.value {
            Some((_, variant)) => body::text(out, variant),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"metadata\":");
        self.metadata.write_json(out);
        out.push(b'}');
    }
}

/// Evaluates flag `idx`: its OFREP answer.
fn answer<'a>(
    served: &'a Served,
    state: &AppState,
    idx: usize,
    ctx: &Context,
    now: chrono::DateTime<Utc>,
) -> Answer<'a> {
    let flag = &served.snapshot.flags[idx];
    let e = served.evaluate(&state.serving.metrics, idx, ctx, now);
    let callers = flag.caller_fallback && matches!(e.reason, Reason::Disabled | Reason::Default);
    Answer {
        key: &flag.key,
        value: (!callers).then_some((e.value, e.variant)),
        reason: openfeature_reason(e.reason).0,
        metadata: Metadata { flag, e, revision: &served.snapshot.revision },
    }
}

#[utoipa::path(
    operation_id = "ofrep_evaluate_flag",
    post,
    path = "/ofrep/v1/evaluate/flags/{key}",
    tag = "openfeature",
    security((), ("client" = [])),
    request_body = OfrepRequest,
    params(("key" = String, Path, description = "the flag key")),
    responses(
        (status = 200, description = "OFREP evaluation", body = OfrepEvaluation),
        (status = 400, description = "INVALID_CONTEXT", body = OfrepErrorBody),
        (status = 404, description = "FLAG_NOT_FOUND", body = OfrepErrorBody),
        (status = 500, description = "GENERAL (no valid flag file yet)", body = OfrepErrorBody),
    )
)]
pub async fn evaluate_flag(
    State(state): State<AppState>,
    KeyPath(key): KeyPath,
    body: Result<RawBody, super::error::ApiError>,
) -> Response {
    let bytes = match body_of(Some(&key), body) {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    let ctx = match context_of(Some(&key), &bytes) {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(),
    };
    let served = state.serving.load();
    if !served.ready {
        return general(Some(&key), "no valid flag file has been loaded yet").into_response();
    }
    let Some(idx) = served.index(&key) else {
        return OfrepError::new(OfrepCode::FlagNotFound, Some(&key), format!("flag {key:?} was not found"))
            .into_response();
    };
    let body = super::evaluate::scratch(|out| answer(&served, &state, idx, &ctx, Utc::now()).write_json(out));
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

#[utoipa::path(
    operation_id = "ofrep_evaluate_flags",
    post,
    path = "/ofrep/v1/evaluate/flags",
    tag = "openfeature",
    security((), ("client" = [])),
    request_body = OfrepRequest,
    params(("If-None-Match" = Option<String>, Header, description = "the ETag of the last answer")),
    responses(
        (status = 200, description = "OFREP bulk evaluation, with ETag", body = OfrepBulk),
        (status = 304, description = "unchanged since If-None-Match"),
        (status = 400, description = "INVALID_CONTEXT", body = OfrepErrorBody),
        (status = 500, description = "GENERAL", body = OfrepErrorBody),
    )
)]
pub async fn evaluate_flags(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<RawBody, super::error::ApiError>,
) -> Response {
    let bytes = match body_of(None, body) {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    let ctx = match context_of(None, &bytes) {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(),
    };
    let served = state.serving.load();
    if !served.ready {
        return general(None, "no valid flag file has been loaded yet").into_response();
    }
    let now = Utc::now();
    let count = served.snapshot.flags.len();
    let mut body = Vec::with_capacity(count * 200 + 64);
    body.extend_from_slice(b"{\"flags\":[");
    for idx in 0..count {
        if idx > 0 {
            body.push(b',');
        }
        answer(&served, &state, idx, &ctx, now).write_json(&mut body);
    }
    // Static-context (browser) providers refetch when `/events` says something changed.
    body.extend_from_slice(b"],\"eventStreams\":[{\"type\":\"sse\",\"url\":\"/events\"}]}");
    let etag = super::etag::of(&body);
    let matches = super::etag::fresh(&headers, &etag);
    let etag_value = HeaderValue::from_str(&etag).expect("a quoted hex string is a valid header value");
    if matches {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(ETAG, etag_value)
            .body(Body::empty())
            .expect("a static response builds");
    }
    ([(CONTENT_TYPE, HeaderValue::from_static("application/json")), (ETAG, etag_value)], body).into_response()
}

impl super::RequestBody for OfrepRequest<'_> {
    const INVALID: super::error::Code = super::error::Code::InvalidContext;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The written answer is JSON with every field where OpenFeature expects it, escapes included,
    /// and ours win over the flag's metadata of the same name.
    #[test]
    fn an_answer_is_written_as_json() {
        let snapshot = crate::flags::compile(concat!(
            "feature_flags:\n  odd~key:\n    description: \"line\\nbreak \\\"quoted\\\"\"\n",
            "    owner: team-é\n    metadata: {\"we\\\\ird\": 1.5, owner: shadowed, ok: true, nested: {a: 1}}\n",
            "    rollout_strategy:\n      type: gradual\n      stages: [{percentage: 50, duration: 1d}, {percentage: 100}]\n",
        ))
        .expect("compiles");
        let flag = &snapshot.flags[0];
        let now = chrono::Utc::now();
        let e = crate::eval::evaluate(flag, &Context::new(), now, &crate::eval::FlagState::default());
        let answer = Answer {
            key: &flag.key,
            value: Some((e.value, e.variant)),
            reason: openfeature_reason(e.reason).0,
            metadata: Metadata { flag, e, revision: "r\u{1}" },
        };
        let mut out = Vec::new();
        answer.write_json(&mut out);
        let got: Value = serde_json::from_slice(&out).expect("valid JSON");
        let expected = serde_json::json!({
            "key": "odd~key", "value": e.value, "reason": openfeature_reason(e.reason).0, "variant": e.variant,
            "metadata": {"we\\ird": 1.5, "ok": true, "owner": "team-é", "description": "line\nbreak \"quoted\"",
                         "stage": 1, "revision": "r\u{1}"},
        });
        assert_eq!(got, expected);
    }
}
