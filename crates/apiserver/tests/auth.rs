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

#[tokio::test]
async fn service_account_tokens_are_issued_and_accepted() {
    let (server, _dir) = common::api_server().await;
    let mut authenticator = Authenticator::new().with_service_accounts(&server);
    authenticator.add_token(
        "admin".into(),
        User {
            name: "admin".into(),
            uid: "0".into(),
            groups: vec!["system:masters".into()],
        },
    );
    let router = server.authenticated_router(Arc::new(authenticator));
    let (status, account) = call(
        &router,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts",
        Some("admin"),
        Some(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let token_url = "/api/v1/namespaces/default/serviceaccounts/robot/token";

    // Upstream's bounds and defaults.
    let (status, body) = call(&router, "POST", token_url, Some("admin"),
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 60}}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("may not specify a duration less than 10 minutes"),
        "{body}"
    );
    let (status, missing) = call(
        &router,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/nobody/token",
        Some("admin"),
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    let (status, request) = call(
        &router,
        "POST",
        token_url,
        Some("admin"),
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    assert_eq!(request["spec"]["expirationSeconds"], 3600);
    assert_eq!(
        request["spec"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    assert!(request["status"]["expirationTimestamp"].is_string());
    let token = request["status"]["token"].as_str().unwrap().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT");

    // The token authenticates as the ServiceAccount, with upstream's groups.
    let review = json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {}});
    let (status, whoami) = call(
        &router,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(&token),
        Some(review),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{whoami}");
    let info = &whoami["status"]["userInfo"];
    assert_eq!(info["username"], "system:serviceaccount:default:robot");
    assert_eq!(info["uid"], account["metadata"]["uid"]);
    assert_eq!(
        info["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );

    // A token for another audience, or tampered with, is refused.
    let (_, other) = call(&router, "POST", token_url, Some("admin"),
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": ["vault"]}}))).await;
    let other = other["status"]["token"].as_str().unwrap();
    let (status, _) = call(&router, "GET", "/api/v1/namespaces", Some(other), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Another subject in the claims, the signature kept.
    let parts: Vec<&str> = token.split('.').collect();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = String::from_utf8(engine.decode(parts[1]).unwrap()).unwrap();
    let forged = engine.encode(claims.replace(":robot", ":admin"));
    let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
    let (status, _) = call(&router, "GET", "/api/v1/namespaces", Some(&tampered), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // And a TokenReview says the same.
    let (status, reviewed) = call(&router, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", Some("admin"),
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}))).await;
    assert_eq!(status, StatusCode::CREATED, "{reviewed}");
    assert_eq!(reviewed["status"]["authenticated"], true);
    assert_eq!(
        reviewed["status"]["user"]["username"],
        "system:serviceaccount:default:robot"
    );

    // Deleted and made again, the account does not inherit its predecessor's tokens.
    let (status, _) = call(
        &router,
        "DELETE",
        "/api/v1/namespaces/default/serviceaccounts/robot",
        Some("admin"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&router, "GET", "/api/v1/namespaces", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &router,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts",
        Some("admin"),
        Some(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(&router, "GET", "/api/v1/namespaces", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
