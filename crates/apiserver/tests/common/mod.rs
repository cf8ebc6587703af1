//! What the in-process API tests share: a bootstrapped server on a fresh store.

#![allow(dead_code)] // Each test binary uses a part of what is shared.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use podium_apiserver::{ApiConfig, ApiServer};
use serde_json::Value;
use tower::ServiceExt;

/// A server on a new redb file in a temporary dir (kept alive by the returned guard).
pub async fn api_server() -> (ApiServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = podium_store::RedbStore::open(dir.path().join("db"))
        .unwrap()
        .shared();
    let server = ApiServer::new(
        Arc::new(store),
        ApiConfig {
            service_cidr: "10.43.0.0/16".into(),
            advertise_address: "127.0.0.1:6443".into(),
        },
    );
    server.bootstrap().await.unwrap();
    (server, dir)
}

/// What the server answered: code, body (Null when not JSON) and `Warning:` headers.
pub struct Answer {
    pub code: StatusCode,
    pub body: Value,
    pub warnings: Vec<String>,
}

/// One request through the router, as a client sends it. A `None` or null body is empty.
pub async fn send(
    server: &ApiServer,
    method: &str,
    uri: &str,
    content_type: &str,
    accept: &str,
    body: impl Into<Option<Value>>,
) -> Answer {
    let body = match body.into() {
        None | Some(Value::Null) => Body::empty(),
        Some(value) => Body::from(value.to_string()),
    };
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .header("accept", accept)
        .body(body)
        .unwrap();
    let response = server.router().oneshot(request).await.unwrap();
    let code = response.status();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_string())
        .collect();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        code,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        warnings,
    }
}

/// A JSON request; the code and the body.
pub async fn call(
    server: &ApiServer,
    method: &str,
    uri: &str,
    body: impl Into<Option<Value>>,
) -> (StatusCode, Value) {
    let answer = send(
        server,
        method,
        uri,
        "application/json",
        "application/json",
        body,
    )
    .await;
    (answer.code, answer.body)
}
