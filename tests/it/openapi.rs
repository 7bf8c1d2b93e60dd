//! The OpenAPI document: valid 3.1 (checked by `openapi-spec-validator`), and in step with the
//! router: every documented operation is routed, and every route is documented.

use std::process::Command;

use reqwest::Method;
use serde_json::Value;

use crate::support::{ADMIN, Server, Workdir, http};

fn document(server: &Server) -> Value {
    let r = http().get(server.url("/openapi.json")).send().expect("request");
    assert_eq!(r.status(), 200);
    r.json().expect("JSON")
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let dir = Workdir::new(include_str!("../../flags/feature-flags.yaml"));
    let server = Server::start(&dir, &[]);
    let doc = document(&server);
    assert_eq!(doc["openapi"], Value::from("3.1.0"));
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

#[test]
fn every_documented_operation_is_routed_and_every_route_documented() {
    let dir = Workdir::new(include_str!("../../flags/feature-flags.yaml"));
    let server = Server::start(&dir, &[]);
    let doc = document(&server);
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path.replace("{key}", "new_payment_flow").replace("{id}", "1").replace("{asset}", "app.js");
        for method in item.as_object().expect("methods").keys() {
            operations += 1;
            if path == "/events" {
                continue; // a stream that stays open: routed, as the SSE tests show
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let r = http().request(m, server.url(&concrete)).bearer_auth(ADMIN).body("{}").send().expect("request");
            let status = r.status().as_u16();
            let body: Value = r.json().unwrap_or(Value::Null);
            assert!(
                status != 405 && body["error"]["code"] != "not_found",
                "{method} {path} is documented but not routed: {status} {body}"
            );
        }
    }
    assert!(operations >= 28, "{operations} operations");
    // The other direction: every route is registered through `routes!`, which documents it;
    // the only plain routes are the OFREP trailing-slash aliases.
    let source = include_str!("../../src/http/mod.rs");
    let plain: Vec<&str> = source.lines().filter(|l| l.trim_start().starts_with(".route(\"")).collect();
    assert_eq!(plain.len(), 2, "{plain:#?}");
    assert!(plain.iter().all(|l| l.contains("/ofrep/v1/evaluate/flags")), "{plain:#?}");
    for handler in source.lines().filter_map(|l| l.trim_start().strip_prefix(".routes(routes!(")) {
        for name in handler.trim_end_matches(';').trim_end_matches("))").split(", ") {
            let (module, function) = name.split_once("::").expect("module::handler");
            let file = std::fs::read_to_string(format!("{}/src/http/{module}.rs", env!("CARGO_MANIFEST_DIR")))
                .expect("handler module");
            let at = file.find(&format!("pub async fn {function}(")).unwrap_or_else(|| panic!("the handler {name}"));
            assert!(file[..at].rfind("#[utoipa::path(").is_some(), "{name} has a path description");
        }
    }
}
