//! The JSON answer of one evaluation (`POST /evaluate`, `GET /evaluate/{key}`, each entry of
//! `POST /evaluate/all`).
//!
//! [`EvaluationBody::write_json`] writes the common answer (no sunset, no explain) straight into
//! a buffer, field by field: the serde path costs ~0.5 µs a request in the load benchmark, most of
//! it generic struct machinery. Answers with a sunset or explain go through serde; both give the
//! same bytes (tested over every example flag).

use std::io::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::explain::Step;
use super::{Evaluation, Reason, SunsetBody};
use crate::flags::Flag;

impl<'a> Evaluation<'a> {
    /// The JSON body of an evaluation response.
    pub fn body(&self, flag: &'a Flag, revision: &'a str) -> EvaluationBody<'a> {
        EvaluationBody {
            flag: &flag.key,
            value: self.value,
            variant: self.variant,
            enabled: self.enabled,
            reason: self.reason,
            stage: self.stage,
            sunset: self.sunset.map(|s| s.body()),
            notice: self.sunset.and_then(|s| s.notice()),
            redirect: self.sunset.and_then(|s| s.redirect()),
            rule: self.rule,
            metadata: (!flag.metadata.is_empty()).then_some(&flag.metadata),
            revision,
            explain: None,
        }
    }
}

/// `{"flag","value","variant","enabled","reason","stage"?,"sunset"?,"notice"?,"redirect"?,"rule"?,"metadata"?,"revision"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EvaluationBody<'a> {
    pub flag: &'a str,
    /// The value served: any JSON value.
    #[schema(value_type = serde_json::Value)]
    pub value: &'a Value,
    pub variant: &'a str,
    pub enabled: bool,
    pub reason: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sunset: Option<SunsetBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<&'a str>,
    /// The name of the rule that decided, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'a str>,
    /// The flag's `metadata`, when it has any (as OFREP's answer carries it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<&'a serde_json::Map<String, Value>>,
    pub revision: &'a str,
    /// The steps the evaluator took, when asked for (`explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<&'a [Step]>,
}

impl EvaluationBody<'_> {
    /// Appends the answer's JSON to `out`: the same bytes as serde's, without its machinery for
    /// the common shape.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        if self.sunset.is_some() || self.notice.is_some() || self.redirect.is_some() || self.explain.is_some() {
            serde_json::to_writer(out, self).expect("an evaluation serialises");
            return;
        }
        out.extend_from_slice(b"{\"flag\":");
        text(out, self.flag);
        out.extend_from_slice(b",\"value\":");
        serde_json::to_writer(&mut *out, self.value).expect("a JSON value serialises");
        out.extend_from_slice(b",\"variant\":");
        text(out, self.variant);
        out.extend_from_slice(if self.enabled { b",\"enabled\":true" } else { b",\"enabled\":false" });
        out.extend_from_slice(b",\"reason\":\"");
        out.extend_from_slice(self.reason.as_str().as_bytes());
        out.push(b'"');
        if let Some(stage) = self.stage {
            let _ = write!(out, ",\"stage\":{stage}");
        }
        if let Some(rule) = self.rule {
            out.extend_from_slice(b",\"rule\":");
            text(out, rule);
        }
        if let Some(metadata) = self.metadata {
            out.extend_from_slice(b",\"metadata\":");
            serde_json::to_writer(&mut *out, metadata).expect("a JSON map serialises");
        }
        out.extend_from_slice(b",\"revision\":");
        text(out, self.revision);
        out.push(b'}');
    }
}

/// Appends a JSON string: as it is when nothing in it needs escaping (the usual key, variant
/// or revision), through serde's escaping otherwise.
pub fn text(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, s).expect("a string serialises");
    }
}
