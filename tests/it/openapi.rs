//! The OpenAPI document, from the router in-process: valid 3.1 (checked by
//! `openapi-spec-validator`), every answer described field by field, and real answers as
//! described. (That every documented operation is routed is in `routing.rs`.)

use std::process::Command;

use axum::http::Method;
use serde_json::Value;

use crate::routing::App;
use crate::support::ADMIN;

/// The document, from the router in-process.
fn document(app: &App) -> Value {
    let (status, doc) = app.call(Method::GET, "/openapi.json", None, None);
    assert_eq!(status, 200);
    doc
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let app = App::new();
    let doc = document(&app);
    assert_eq!(doc["openapi"], Value::from("3.1.0"));
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write");
    let python = std::env::var("TOGGLED_OFREP_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/ofrep-venv/bin/python").to_owned());
    let out = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi/check.py"))
        .arg(&file)
        .output()
        .expect("python runs (.ci/deps installs openapi-spec-validator in target/ofrep-venv)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && report.trim() == "valid", "{report}{}", String::from_utf8_lossy(&out.stderr));
    // What clients rely on is described with real types.
    let evaluate = &doc["paths"]["/evaluate"]["post"];
    assert!(evaluate["requestBody"].is_object(), "{evaluate}");
    let schemas = &doc["components"]["schemas"];
    for name in ["EvaluationBody", "ErrorBody", "Reason", "OverrideRequest", "CreateRelease"] {
        assert!(
            schemas[name].is_object(),
            "{name} is described: {}",
            schemas.as_object().map_or(0, serde_json::Map::len)
        );
    }
    assert_eq!(doc["paths"]["/flags/{key}"]["put"]["security"][0]["admin"], Value::Array(vec![]));
}

/// Every successful JSON answer is described with its fields: no operation answers an object
/// without properties (or an untyped value).
#[test]
fn every_successful_answer_describes_its_fields() {
    let doc = document(&App::new());
    let schemas = &doc["components"]["schemas"];
    let resolve = |schema: &Value| -> Value {
        match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
            Some(name) => schemas[name].clone(),
            None => schema.clone(),
        }
    };
    let mut undescribed = Vec::new();
    let mut described = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("methods") {
            for (status, response) in op["responses"].as_object().expect("responses") {
                if !status.starts_with('2') {
                    continue;
                }
                let Some(schema) = response["content"]["application/json"].get("schema") else { continue };
                let schema = resolve(schema);
                let fields = |s: &Value| s["properties"].as_object().is_some_and(|p| !p.is_empty());
                let parts = schema["allOf"].as_array().or_else(|| schema["oneOf"].as_array());
                let ok = fields(&schema) || parts.is_some_and(|p| p.iter().all(|s| fields(&resolve(s))));
                if ok {
                    described += 1;
                } else {
                    undescribed.push(format!("{method} {path} {status}: {schema}"));
                }
            }
        }
    }
    assert!(undescribed.is_empty(), "answers without described fields:\n{}", undescribed.join("\n"));
    assert!(described >= 30, "{described} answers described");
}

/// The fields (and required fields) a schema describes, through `$ref` and `allOf`.
fn described(doc: &Value, schema: &Value) -> (std::collections::BTreeSet<String>, std::collections::BTreeSet<String>) {
    let schema = match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &doc["components"]["schemas"][name],
        None => schema,
    };
    let mut all: std::collections::BTreeSet<String> =
        schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
    let mut required: std::collections::BTreeSet<String> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (a, r) = described(doc, part);
        all.extend(a);
        required.extend(r);
    }
    (all, required)
}

/// Real answers carry exactly the fields their operation describes: every field an answer has
/// is described, and every required one is there (including answers written by hand on the hot
/// path: `/evaluate/all`, OFREP, Unleash's documents).
#[test]
fn real_answers_match_their_described_fields() {
    let app = App::new();
    let doc = document(&app);
    let context = serde_json::json!({"context": {"targetingKey": "user-7", "email": "dev@example.com"}});
    let cases: [(&str, &str, &str, Option<Value>); 12] = [
        ("get", "/health", "/health", None),
        ("get", "/ready", "/ready", None),
        ("get", "/flags", "/flags", None),
        ("get", "/flags/new_payment_flow", "/flags/{key}", None),
        ("post", "/evaluate/all", "/evaluate/all", Some(context.clone())),
        ("post", "/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags", Some(context.clone())),
        ("post", "/ofrep/v1/evaluate/flags/enhanced_search", "/ofrep/v1/evaluate/flags/{key}", Some(context.clone())),
        ("get", "/api/frontend?userId=u1", "/api/frontend", None),
        ("get", "/api/client/features", "/api/client/features", None),
        ("get", "/audit", "/audit", None),
        ("get", "/schedules", "/schedules", None),
        ("get", "/releases", "/releases", None),
    ];
    for (method, url, path, body) in cases {
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
        let body = body.map(|b| b.to_string());
        let (status, answer) = app.call(m, url, Some(ADMIN), body.as_deref());
        assert_eq!(status, 200, "{method} {url}: {answer}");
        let schema = &doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"];
        let (all, required) = described(&doc, schema);
        let got: std::collections::BTreeSet<String> = answer.as_object().expect("an object").keys().cloned().collect();
        let undescribed: Vec<&String> = got.difference(&all).collect();
        let absent: Vec<&String> = required.difference(&got).collect();
        assert!(
            undescribed.is_empty() && absent.is_empty(),
            "{method} {url}: undescribed {undescribed:?}, absent {absent:?}"
        );
    }
}
