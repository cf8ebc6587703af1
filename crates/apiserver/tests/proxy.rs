//! `pods|services|nodes/<name>/proxy/...`: requests reach the pod's IP, a service's ready
//! endpoint, or the node's agent (here a loopback HTTP server standing in for each), with
//! method, path, query and body, and without the caller's credentials.

mod common;

use axum::body::Bytes;
use common::{call, send};
use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::json;

/// A loopback HTTP server that answers with what it was asked.
async fn echo_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(
        |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
            let authorization = headers.get("authorization").is_some();
            (
                [("x-echo", "yes")],
                format!(
                    "{method} {uri} auth={authorization} body={}",
                    String::from_utf8_lossy(&body)
                ),
            )
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

async fn text(
    server: &podium_apiserver::ApiServer,
    method: &str,
    uri: &str,
) -> (StatusCode, String) {
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", "Bearer secret")
        .body(axum::body::Body::from("payload"))
        .unwrap();
    let response = tower::ServiceExt::oneshot(server.router(), request)
        .await
        .unwrap();
    let code = response.status();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, String::from_utf8_lossy(&bytes).to_string())
}

#[tokio::test]
async fn requests_reach_pods_services_and_nodes() {
    let (server, _dir) = common::api_server().await;
    let port = echo_server().await;

    // A pod, once it has an IP.
    let (code, pod) = call(&server, "POST", "/api/v1/namespaces/default/pods", json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"name": "http", "containerPort": port}]}]}})).await;
    assert_eq!(code, StatusCode::CREATED, "{pod}");
    let (code, answer) = text(
        &server,
        "GET",
        &format!("/api/v1/namespaces/default/pods/web:{port}/proxy/"),
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let mut status = pod.clone();
    status["status"] = json!({"phase": "Running", "podIP": "127.0.0.1"});
    let (code, _) = call(
        &server,
        "PUT",
        "/api/v1/namespaces/default/pods/web/status",
        status,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let (code, answer) = text(
        &server,
        "GET",
        &format!("/api/v1/namespaces/default/pods/web:{port}/proxy/hello/?x=1"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(answer, "GET /hello/?x=1 auth=false body=payload");
    let (_, answer) = text(
        &server,
        "POST",
        "/api/v1/namespaces/default/pods/web:http/proxy/form",
    )
    .await;
    assert_eq!(answer, "POST /form auth=false body=payload");

    // A service, through its endpoints, by port name or number.
    let (code, _) = call(&server, "POST", "/api/v1/namespaces/default/services", json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"}, "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}], "selector": {"app": "web"}}})).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, answer) = text(
        &server,
        "GET",
        "/api/v1/namespaces/default/services/web/proxy/a",
    )
    .await;
    assert_eq!(
        code,
        StatusCode::SERVICE_UNAVAILABLE,
        "no endpoints yet: {answer}"
    );
    let (code, body) = call(&server, "POST", "/api/v1/namespaces/default/endpoints", json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": port}]}]})).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    for name in ["web", "web:http", "web:80", "http:web:http"] {
        let (code, answer) = text(
            &server,
            "GET",
            &format!("/api/v1/namespaces/default/services/{name}/proxy/a"),
        )
        .await;
        assert_eq!(
            (code, answer.as_str()),
            (StatusCode::OK, "GET /a auth=false body=payload"),
            "{name}"
        );
    }
    let (code, _) = text(
        &server,
        "GET",
        "/api/v1/namespaces/default/services/web:nope/proxy/a",
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);

    // A node's agent.
    let (code, _) = call(&server, "POST", "/api/v1/nodes", json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}})).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, answer) = text(&server, "GET", "/api/v1/nodes/n1/proxy/healthz").await;
    assert_eq!(
        (code, answer.as_str()),
        (StatusCode::OK, "GET /healthz auth=false body=payload")
    );

    // Discovery lists the proxy subresources as upstream.
    let answer = send(
        &server,
        "GET",
        "/api/v1",
        "application/json",
        "application/json",
        None,
    )
    .await;
    let proxies: Vec<(String, String)> = answer.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"].as_str().unwrap().ends_with("/proxy"))
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        proxies,
        [
            ("nodes/proxy".to_string(), "NodeProxyOptions".to_string()),
            ("pods/proxy".to_string(), "PodProxyOptions".to_string()),
            (
                "services/proxy".to_string(),
                "ServiceProxyOptions".to_string()
            ),
        ]
    );
}
