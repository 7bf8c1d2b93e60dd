//! `ApiError`: the one place an HTTP status is chosen. Errors are
//! `{"error": {"code": "snake_case", "message": "..."}}`; codes are stable and part of the API,
//! and every one of them is in [`Code`] with its status: call sites name a code, never a status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// Every error code the API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    InvalidBody,
    InvalidContext,
    InvalidJson,
    InvalidPayload,
    InvalidQuery,
    InvalidRequest,
    Unauthorized,
    Forbidden,
    FlagNotFound,
    NotFound,
    ReleaseNotFound,
    ScheduleNotFound,
    MethodNotAllowed,
    InvalidTransition,
    NotGradual,
    ReleaseBlocked,
    ReleaseConflicts,
    DependencyCycle,
    RequirementUnsatisfied,
    PayloadTooLarge,
    RateLimited,
    InvalidAction,
    InvalidApproval,
    InvalidFlagFile,
    InvalidOption,
    InvalidOverride,
    InvalidReason,
    InvalidSchedule,
    InvalidRelease,
    InvalidRequirement,
    InvalidStatus,
    InvalidType,
    InvalidValue,
    InvalidVersion,
    NothingToRelease,
    TypeMismatch,
    UnknownFlag,
    UnknownVariant,
    VersionNotNewer,
    NotReady,
    Overloaded,
    RequestTimeout,
    StoreUnavailable,
    TooManySubscribers,
}

/// The table: code, its stable string, its status.
const CODES: &[(Code, &str, StatusCode)] = &[
    (Code::InvalidBody, "invalid_body", StatusCode::BAD_REQUEST),
    (Code::InvalidContext, "invalid_context", StatusCode::BAD_REQUEST),
    (Code::InvalidJson, "invalid_json", StatusCode::BAD_REQUEST),
    (Code::InvalidPayload, "invalid_payload", StatusCode::BAD_REQUEST),
    (Code::InvalidQuery, "invalid_query", StatusCode::BAD_REQUEST),
    (Code::InvalidRequest, "invalid_request", StatusCode::BAD_REQUEST),
    (Code::Unauthorized, "unauthorized", StatusCode::UNAUTHORIZED),
    (Code::Forbidden, "forbidden", StatusCode::FORBIDDEN),
    (Code::FlagNotFound, "flag_not_found", StatusCode::NOT_FOUND),
    (Code::NotFound, "not_found", StatusCode::NOT_FOUND),
    (Code::ReleaseNotFound, "release_not_found", StatusCode::NOT_FOUND),
    (Code::ScheduleNotFound, "schedule_not_found", StatusCode::NOT_FOUND),
    (Code::MethodNotAllowed, "method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
    (Code::InvalidTransition, "invalid_transition", StatusCode::CONFLICT),
    (Code::NotGradual, "not_gradual", StatusCode::CONFLICT),
    (Code::ReleaseBlocked, "release_blocked", StatusCode::CONFLICT),
    (Code::ReleaseConflicts, "release_conflicts", StatusCode::CONFLICT),
    (Code::DependencyCycle, "dependency_cycle", StatusCode::CONFLICT),
    (Code::RequirementUnsatisfied, "requirement_unsatisfied", StatusCode::CONFLICT),
    (Code::RequestTimeout, "request_timeout", StatusCode::REQUEST_TIMEOUT),
    (Code::PayloadTooLarge, "payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
    (Code::RateLimited, "rate_limited", StatusCode::TOO_MANY_REQUESTS),
    (Code::InvalidAction, "invalid_action", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::InvalidApproval, "invalid_approval", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::InvalidFlagFile, "invalid_flag_file", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::InvalidOption, "invalid_option", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::InvalidOverride, "invalid_override", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::InvalidReason, "invalid_reason", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::InvalidSchedule, "invalid_schedule", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::InvalidRelease, "invalid_release", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::InvalidRequirement, "invalid_requirement", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::InvalidStatus, "invalid_status", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::InvalidType, "invalid_type", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::InvalidValue, "invalid_value", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::InvalidVersion, "invalid_version", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::NothingToRelease, "nothing_to_release", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::TypeMismatch, "type_mismatch", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::UnknownFlag, "unknown_flag", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::UnknownVariant, "unknown_variant", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::VersionNotNewer, "version_not_newer", StatusCode::UNPROCESSABLE_ENTITY),
    (Code::NotReady, "not_ready", StatusCode::SERVICE_UNAVAILABLE),
    (Code::Overloaded, "overloaded", StatusCode::SERVICE_UNAVAILABLE),
    (Code::StoreUnavailable, "store_unavailable", StatusCode::SERVICE_UNAVAILABLE),
    (Code::TooManySubscribers, "too_many_subscribers", StatusCode::SERVICE_UNAVAILABLE),
];

impl Code {
    /// Every code, in the table's order (by status).
    pub fn all() -> impl Iterator<Item = Code> {
        CODES.iter().map(|(c, _, _)| *c)
    }

    fn row(self) -> &'static (Code, &'static str, StatusCode) {
        CODES.iter().find(|(c, _, _)| *c == self).expect("every code is in the table (tested)")
    }

    /// The stable snake_case string clients match on.
    pub fn as_str(self) -> &'static str {
        self.row().1
    }

    /// The HTTP status this code is answered with.
    pub fn status(self) -> u16 {
        self.row().2.as_u16()
    }
}

#[derive(Debug)]
pub struct ApiError {
    code: Code,
    message: String,
    details: Option<serde_json::Value>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this code and message; the status follows from the code.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None, retry_after: None }
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Adds `Retry-After: seconds` (429, 503).
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 401: no token, or a token nobody issued.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthorized, message)
    }

    /// 403: a valid token of the wrong role.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, message)
    }

    /// 404: no such flag in the file being served.
    pub fn flag_not_found(key: &str) -> Self {
        Self::new(Code::FlagNotFound, format!("no flag {key:?} in the flag file being served"))
    }

    /// 413: the body is over the limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(Code::PayloadTooLarge, format!("the request body is over {limit} bytes"))
    }

    /// 503: no flag file loaded yet.
    pub fn not_ready() -> Self {
        Self::new(Code::NotReady, "no valid flag file has been loaded yet")
    }

    /// 503: the store could not be reached; nothing was changed.
    pub fn store(err: &StoreError) -> Self {
        tracing::error!("store: {err}");
        // The driver's text stays in the log: it can name hosts, users and files.
        Self::new(Code::StoreUnavailable, "the store failed, nothing was changed (the server's log says why)")
    }
}

impl From<&StoreError> for ApiError {
    fn from(err: &StoreError) -> Self {
        Self::store(err)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self::store(&err)
    }
}

/// The body of every error answer: `{"error": {"code", "message", "details"?}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code (docs/api.md's table).
    pub code: &'static str,
    pub message: String,
    /// More about the error, where there is more (every flag-file error, the reload status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (_, code, status) = *self.code.row();
        let body = ErrorBody { error: ErrorDetail { code, message: self.message, details: self.details } };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// The error answers routes share, described once for OpenAPI (`responses(..., AdminAuth)`).
/// A route lists the sets it can answer besides its own specific errors.
pub mod answers {
    use super::ErrorBody;

    /// 401 and 403: an admin route's token checks.
    #[derive(Debug, utoipa::IntoResponses)]
    pub enum AdminAuth {
        #[response(status = 401, description = "no or unknown token")]
        Unauthorized(ErrorBody),
        #[response(status = 403, description = "a token of the wrong role")]
        Forbidden(ErrorBody),
    }

    /// 401: a route that takes a token once tokens of its kind are configured.
    #[derive(Debug, utoipa::IntoResponses)]
    pub enum Unauthenticated {
        #[response(status = 401, description = "no or unknown token")]
        Unauthorized(ErrorBody),
    }

    /// 400: the body, context or query string does not parse.
    #[derive(Debug, utoipa::IntoResponses)]
    pub enum Malformed {
        #[response(status = 400, description = "malformed JSON, context or query")]
        Malformed(ErrorBody),
    }

    /// 400: the body is not JSON.
    #[derive(Debug, utoipa::IntoResponses)]
    pub enum NotJson {
        #[response(status = 400, description = "not JSON")]
        NotJson(ErrorBody),
    }

    /// 404: no such flag or release.
    #[derive(Debug, utoipa::IntoResponses)]
    pub enum NotFound {
        #[response(status = 404, description = "no such flag or release")]
        NotFound(ErrorBody),
    }

    /// 409: the change conflicts with the current state.
    #[derive(Debug, utoipa::IntoResponses)]
    pub enum Conflict {
        #[response(status = 409, description = "conflicts with the current state")]
        Conflict(ErrorBody),
    }

    /// 413: the body is over `--body-limit`.
    #[derive(Debug, utoipa::IntoResponses)]
    pub enum TooLarge {
        #[response(status = 413, description = "body over the limit")]
        TooLarge(ErrorBody),
    }

    /// 422: well-formed but invalid input.
    #[derive(Debug, utoipa::IntoResponses)]
    pub enum Invalid {
        #[response(status = 422, description = "well-formed but invalid input, naming the field")]
        Invalid(ErrorBody),
    }

    /// 503 for a change: nothing was changed.
    #[derive(Debug, utoipa::IntoResponses)]
    pub enum NotChanged {
        #[response(status = 503, description = "not ready, or the store failed (nothing changed)")]
        Unavailable(ErrorBody),
    }

    /// 503 for a read of the store.
    #[derive(Debug, utoipa::IntoResponses)]
    pub enum StoreFailed {
        #[response(status = 503, description = "the store failed")]
        Unavailable(ErrorBody),
    }

    /// 503 before the first valid flag file.
    #[derive(Debug, utoipa::IntoResponses)]
    pub enum NotLoaded {
        #[response(status = 503, description = "no flag file loaded yet")]
        Unavailable(ErrorBody),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_in_the_table_once() {
        let mut seen = std::collections::HashSet::new();
        for (code, text, _) in CODES {
            assert!(seen.insert(*text), "{text} twice");
            assert_eq!(code.as_str(), *text);
            assert!(text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{text} is snake_case");
        }
        assert_eq!(Code::MethodNotAllowed.status(), 405);
    }
}

/// OpenFeature OFREP's error codes, each with its status: OFREP allows only 400, 404 and 500,
/// and its errors have their own shape (`{key?, errorCode, errorDetails}`), so they are a
/// second, small table beside [`Code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfrepCode {
    InvalidContext,
    FlagNotFound,
    General,
}

const OFREP_CODES: &[(OfrepCode, &str, StatusCode)] = &[
    (OfrepCode::InvalidContext, "INVALID_CONTEXT", StatusCode::BAD_REQUEST),
    (OfrepCode::FlagNotFound, "FLAG_NOT_FOUND", StatusCode::NOT_FOUND),
    (OfrepCode::General, "GENERAL", StatusCode::INTERNAL_SERVER_ERROR),
];

/// An OFREP error answer.
#[derive(Debug)]
pub struct OfrepError {
    code: OfrepCode,
    key: Option<String>,
    details: String,
}

impl OfrepError {
    pub fn new(code: OfrepCode, key: Option<&str>, details: impl Into<String>) -> Self {
        Self { code, key: key.map(str::to_owned), details: details.into() }
    }
}

impl IntoResponse for OfrepError {
    fn into_response(self) -> Response {
        let (_, code, status) =
            OFREP_CODES.iter().find(|(c, _, _)| *c == self.code).expect("every OFREP code is in the table");
        let mut body = serde_json::json!({"errorCode": code, "errorDetails": self.details});
        if let Some(key) = self.key {
            body["key"] = serde_json::json!(key);
        }
        (*status, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}
