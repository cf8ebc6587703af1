//! Authentication in front of the API: tokens, anonymous access to the public paths, and
//! the authentication.k8s.io reviews.

mod common;

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use podium_apiserver::auth::{Authenticator, User};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn router() -> (axum::Router, tempfile::TempDir) {
    let (server, dir) = common::api_server().await;
    let mut authenticator = Authenticator::new();
    authenticator.add_token(
        "t0ken".into(),
        User {
            name: "alice".into(),
            uid: "1001".into(),
            groups: vec!["developers".into()],
        },
    );
    (server.authenticated_router(Arc::new(authenticator)), dir)
}

async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn anonymous_gets_401_except_public_paths() {
    let (router, _dir) = router().await;
    let (status, body) = call(&router, "GET", "/api/v1/namespaces", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let (status, _) = call(&router, "GET", path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, _) = call(&router, "GET", "/readyz", Some("wrong"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&router, "GET", "/api/v1/namespaces", Some("t0ken"), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn self_subject_review_names_the_caller() {
    let (router, _dir) = router().await;
    let review = json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {}});
    let (status, body) = call(
        &router,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some("t0ken"),
        Some(review.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["status"]["userInfo"],
        json!({"username": "alice", "uid": "1001", "groups": ["developers", "system:authenticated"]})
    );
    let (status, _) = call(
        &router,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        None,
        Some(review),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_review_checks_tokens() {
    let (router, _dir) = router().await;
    let review = |token: &str| json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "spec": {"token": token}});
    let (status, body) = call(
        &router,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        Some("t0ken"),
        Some(review("t0ken")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"]["authenticated"], true);
    assert_eq!(body["status"]["user"]["username"], "alice");
    let (_, body) = call(
        &router,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        Some("t0ken"),
        Some(review("nope")),
    )
    .await;
    assert!(body["status"].get("authenticated").is_none(), "{body}");
    assert!(body["status"]["error"].is_string());
}
