//! The load benchmark's ceiling: a bare axum handler that reads the request body and answers
//! `POST /evaluate` with a fixed JSON body the size of a real evaluation answer.
//! `cargo run --release --example ceiling -- 127.0.0.1:8081`

use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;

const BODY: &str = r#"{"flag":"flag_0001","value":true,"variant":"on","enabled":true,"reason":"TARGETING_MATCH","stage":2,"revision":"66d7061a00ee2201"}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8081".to_owned());
    let app = Router::new().route(
        "/evaluate",
        post(|body: Bytes| async move {
            std::hint::black_box(body);
            ([(CONTENT_TYPE, "application/json")], BODY)
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
