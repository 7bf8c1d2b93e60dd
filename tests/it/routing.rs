//! The router in-process (`tower::ServiceExt::oneshot`, no process, no socket): routing, the
//! error answers, and the OpenAPI table against the routes. Tests that need a process — signals,
//! files, crashes, replicas, the listener's own limits — start the binary (`support::Server`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::support::ADMIN;

const SEED: &str = include_str!("../../flags/feature-flags.yaml");

/// The router over a real SQLite store and the example flags, loaded as the server loads them.
pub struct App {
    router: axum::Router,
    runtime: tokio::runtime::Runtime,
    _shutdown: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl App {
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let flags = dir.path().join("flags.yaml");
        std::fs::write(&flags, SEED).expect("flag file");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let router = runtime.block_on(async {
            let store: Arc<dyn toggled::store::Store> =
                Arc::from(toggled::store::open(&url).await.expect("the store opens"));
            let metrics = Arc::new(toggled::metrics::Metrics::new());
            let serving = Arc::new(toggled::serving::Serving::new(store, metrics).await.expect("serving"));
            let reloader = Arc::new(toggled::reload::Reloader::new(serving.clone(), flags));
            let loaded = toggled::reload::reload(&reloader, "startup").await;
            assert_eq!(loaded.label(), "applied");
            let boards = toggled::http::Boards {
                reloader,
                tasks: toggled::tasks::TaskBoard::default(),
                upstream: Arc::default(),
                alerts: toggled::monitor::AlertBoard::default(),
            };
            let tokens = toggled::access::Tokens::new(vec![("ops".into(), ADMIN.into())], Vec::new());
            let state = toggled::http::AppState::new(serving, boards, tokens, 64 * 1024, rx);
            toggled::http::app(state, Duration::from_secs(10), &[])
        });
        Self { router, runtime, _shutdown: tx, _dir: dir }
    }

    /// One request: its status and its body as JSON (null when it is not JSON).
    pub fn call(&self, method: Method, uri: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Body::from(body.unwrap_or_default().to_owned())).expect("a request");
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.expect("an answer");
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 24).await.expect("a body");
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        })
    }
}

/// A request (method, path, token, body) and the status and error code it gets.
type Case<'a> = (Method, &'a str, Option<&'a str>, Option<&'a str>, u16, &'a str);

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[test]
fn routes_answer_and_errors_are_json_with_their_code() {
    let app = App::new();
    let (status, body) = app.call(
        Method::POST,
        "/evaluate",
        None,
        Some(r#"{"flag":"enhanced_search","context":{"targetingKey":"607"}}"#),
    );
    assert_eq!((status, &body["variant"], &body["reason"]), (200, &json!("control"), &json!("SPLIT")), "{body}");
    let cases: [Case<'_>; 10] = [
        (Method::GET, "/no-such-route", None, None, 404, "not_found"),
        (Method::DELETE, "/evaluate", None, None, 405, "method_not_allowed"),
        (Method::POST, "/evaluate", None, Some("{not json"), 400, "invalid_json"),
        (Method::POST, "/evaluate", None, Some(r#"{"flag":"nope","context":{}}"#), 404, "flag_not_found"),
        (Method::GET, "/flags", None, None, 401, "unauthorized"),
        (Method::GET, "/flags", Some("wrong-secret"), None, 401, "unauthorized"),
        (
            Method::PUT,
            "/flags/new_payment_flow",
            Some(ADMIN),
            Some(r#"{"enabled":false,"variant":"x"}"#),
            422,
            "invalid_override",
        ),
        (Method::GET, "/releases/999", Some(ADMIN), None, 404, "release_not_found"),
        // A release status is a word of a closed set: another word, or not a word, is refused.
        (Method::POST, "/releases/1/status", Some(ADMIN), Some(r#"{"status":"shipped"}"#), 422, "invalid_status"),
        (Method::POST, "/releases/1/status", Some(ADMIN), Some(r#"{"status":5}"#), 422, "invalid_status"),
    ];
    for (method, uri, token, body, want_status, want_code) in cases {
        let (status, answer) = app.call(method.clone(), uri, token, body);
        assert_eq!((status, code(&answer)), (want_status, want_code), "{method} {uri}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{method} {uri}: every error says what is wrong: {answer}");
    }
    // A change through the router is in the audit log, by the token's name.
    let (status, _) = app.call(
        Method::PUT,
        "/flags/new_payment_flow",
        Some(ADMIN),
        Some(r#"{"enabled":false,"reason":"in-process"}"#),
    );
    assert_eq!(status, 200);
    let (_, audit) = app.call(Method::GET, "/audit?flag=new_payment_flow", Some(ADMIN), None);
    assert_eq!((&audit["entries"][0]["actor"], &audit["entries"][0]["reason"]), (&json!("ops"), &json!("in-process")));
}

#[test]
fn every_documented_operation_is_routed_and_every_route_documented() {
    let app = App::new();
    let (status, doc) = app.call(Method::GET, "/openapi.json", None, None);
    assert_eq!(status, 200);
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path.replace("{key}", "new_payment_flow").replace("{id}", "1").replace("{asset}", "app.js");
        for method in item.as_object().expect("methods").keys() {
            operations += 1;
            if path == "/events" {
                continue; // a stream that stays open: routed, as the SSE tests show
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let (status, body) = app.call(m, &concrete, Some(ADMIN), Some("{}"));
            assert!(
                status != 405 && code(&body) != "not_found",
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
