//! Upstream's small contracts (issue 9 item 14), each as kube-apiserver answers what
//! upstream clients send: trailing-slash paths, Secret `stringData` and Go's base64, the
//! object in DELETE answers, bad query values and bodies, health checks.

mod common;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use podium_apiserver::ApiServer;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Harness {
    server: ApiServer,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let (server, dir) = common::api_server().await;
    Harness { server, _dir: dir }
}

impl Harness {
    async fn raw(
        &self,
        method: &str,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        let response = self.server.router().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, bytes.to_vec())
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let content_type = if method == "PATCH" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, bytes) = self.raw(method, uri, content_type, body).await;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, None).await
    }
}

#[tokio::test]
async fn trailing_slash_paths_answer_as_without() {
    let h = harness().await;
    for (with, without) in [
        ("/version/", "/version"),
        ("/api/", "/api"),
        ("/apis/", "/apis"),
        ("/api/v1/", "/api/v1"),
        ("/apis/apps/v1/", "/apis/apps/v1"),
        ("/api/v1/namespaces/default/", "/api/v1/namespaces/default"),
    ] {
        let (code, slashed) = h.get(with).await;
        assert_eq!(code, StatusCode::OK, "GET {with}: {slashed}");
        let (_, plain) = h.get(without).await;
        assert_eq!(slashed, plain, "GET {with} differs from GET {without}");
    }
    // As upstream: health subpaths are named checks, and an unknown root is still 404.
    let (code, _) = h.get("/nothing/").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

/// The Kubernetes docs' TLS Secret, base64 wrapped at 64 columns as `base64` prints it.
const WRAPPED_CERT: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM2ekNDQWRPZ0F3SUJBZ0lK\nQUxoS0E2b0pTdGpvTUEwR0NTcUdTSWIzRFFFQkN3VUFNQUF3SGhjTk1qUXdNVEF4\nCg==\n";

#[tokio::test]
async fn secret_string_data_is_merged_into_data_on_create_update_and_patch() {
    let h = harness().await;
    let (code, created) = h
        .call(
            "POST",
            "/api/v1/namespaces/default/secrets",
            Some(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
                "data": {"tls.crt": WRAPPED_CERT, "tls.key": "b2xk"},
                "stringData": {"tls.key": "secret", "extra": "x"}})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert!(created.get("stringData").is_none(), "{created}");
    assert_eq!(created["data"]["tls.key"], "c2VjcmV0");
    assert_eq!(created["data"]["extra"], "eA==");
    assert_eq!(
        created["data"]["tls.crt"],
        WRAPPED_CERT.replace('\n', ""),
        "line breaks are dropped, the bytes kept"
    );
    let (_, stored) = h.get("/api/v1/namespaces/default/secrets/tls").await;
    assert_eq!(stored["data"], created["data"]);
    assert!(stored.get("stringData").is_none());

    // PUT: stringData overrides the data sent beside it.
    let mut replaced = stored.clone();
    replaced["stringData"] = json!({"extra": "y"});
    let (code, updated) = h
        .call(
            "PUT",
            "/api/v1/namespaces/default/secrets/tls",
            Some(replaced),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_eq!(updated["data"]["extra"], "eQ==");
    assert!(updated.get("stringData").is_none());

    // PATCH with only stringData (what `kubectl patch secret -p '{"stringData":...}'` sends).
    let (code, patched) = h
        .call(
            "PATCH",
            "/api/v1/namespaces/default/secrets/tls",
            Some(json!({"stringData": {"added": "z"}})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    assert_eq!(patched["data"]["added"], "eg==");
    assert_eq!(patched["data"]["extra"], "eQ==");
    assert!(patched.get("stringData").is_none());
}

#[tokio::test]
async fn secret_with_invalid_base64_is_refused_naming_the_field() {
    let h = harness().await;
    let (code, status) = h
        .call(
            "POST",
            "/api/v1/namespaces/default/secrets",
            Some(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"},
                "data": {"password": "c2VjcmV0"}, "stringData": {}}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{status}");
    let (code, status) = h
        .call(
            "POST",
            "/api/v1/namespaces/default/secrets",
            Some(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad2"},
                "data": {"password": "c2VjcmV0!"}}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        "Secret in version \"v1\" cannot be handled as a Secret: data[password]: illegal base64 data at input byte 8"
    );
    let (code, _) = h.get("/api/v1/namespaces/default/secrets/bad2").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_answers_with_the_object_where_upstream_does() {
    let h = harness().await;
    let (code, _) = h
        .call(
            "POST",
            "/api/v1/namespaces/default/services",
            Some(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    // What client-go and the Python client send: DeleteOptions in the body.
    let options =
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"});
    let (code, deleted) = h
        .call(
            "DELETE",
            "/api/v1/namespaces/default/services/web",
            Some(options.clone()),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["kind"], "Service", "{deleted}");
    assert_eq!(deleted["metadata"]["name"], "web");
    assert!(deleted["spec"]["clusterIP"].is_string(), "{deleted}");

    // An unscheduled pod goes at once, and is answered as a Pod.
    let (code, _) = h
        .call(
            "POST",
            "/api/v1/namespaces/default/pods",
            Some(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "i:1"}]}}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, deleted) = h
        .call(
            "DELETE",
            "/api/v1/namespaces/default/pods/p",
            Some(options.clone()),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["kind"], "Pod", "{deleted}");
    let (code, _) = h.get("/api/v1/namespaces/default/pods/p").await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // A namespace answers with itself, terminating.
    let (code, _) = h
        .call(
            "POST",
            "/api/v1/namespaces",
            Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, deleted) = h
        .call("DELETE", "/api/v1/namespaces/gone", Some(options.clone()))
        .await;
    assert_eq!(code, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["kind"], "Namespace", "{deleted}");
    assert!(deleted["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(deleted["status"]["phase"], "Terminating");

    // A cluster-scoped kind of another group that upstream answers with the object.
    let (code, _) = h
        .call(
            "POST",
            "/apis/storage.k8s.io/v1/storageclasses",
            Some(
                json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": "fast"}, "provisioner": "example.com/x"}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, deleted) = h
        .call(
            "DELETE",
            "/apis/storage.k8s.io/v1/storageclasses/fast",
            Some(options.clone()),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["kind"], "StorageClass", "{deleted}");

    // ConfigMaps (no ReturnDeletedObject upstream) answer with a Success Status.
    let (code, _) = h
        .call(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, status) = h
        .call(
            "DELETE",
            "/api/v1/namespaces/default/configmaps/c",
            Some(options),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Success");
    assert_eq!(status["details"]["name"], "c");
    assert_eq!(status["details"]["kind"], "configmaps");
}

#[tokio::test]
async fn non_numeric_resource_versions_are_bad_requests() {
    let h = harness().await;
    for uri in [
        "/api/v1/namespaces/default?resourceVersion=abc",
        "/api/v1/namespaces/default/pods?resourceVersion=abc",
        "/api/v1/namespaces/default/pods?watch=true&resourceVersion=abc",
        "/api/v1/namespaces/default/pods?resourceVersion=-1",
    ] {
        let (code, status) = h.get(uri).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "GET {uri}: {status}");
        assert_eq!(status["kind"], "Status", "GET {uri}");
        assert_eq!(status["reason"], "BadRequest", "GET {uri}");
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("resourceVersion"),
            "GET {uri}: {status}"
        );
    }
    // Numeric ones, and the empty string, are fine.
    for uri in [
        "/api/v1/namespaces/default?resourceVersion=0",
        "/api/v1/namespaces/default?resourceVersion=",
        "/api/v1/namespaces/default/pods?resourceVersion=0",
    ] {
        let (code, status) = h.get(uri).await;
        assert_eq!(code, StatusCode::OK, "GET {uri}: {status}");
    }
}

#[tokio::test]
async fn oversized_and_pathological_bodies_get_a_status() {
    let h = harness().await;
    // Over upstream's 3 MiB request limit: 413 with a Status.
    let mut big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
        "data": {"k": "x".repeat(4 * 1024 * 1024)}});
    let (code, status) = h
        .call(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some(big.clone()),
        )
        .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "RequestEntityTooLarge");
    assert_eq!(status["code"], 413);
    big["data"]["k"] = json!("x");
    let (code, _) = h
        .call("POST", "/api/v1/namespaces/default/configmaps", Some(big))
        .await;
    assert_eq!(code, StatusCode::CREATED, "the server still serves");

    // 10,000-deep nesting: a clean 400, in JSON and in YAML.
    let deep = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"deep\",\"annotations\":{}1{}}}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    for content_type in ["application/json", "application/yaml"] {
        let (code, body) = h
            .raw(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                content_type,
                deep.clone().into_bytes(),
            )
            .await;
        let status: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(code, StatusCode::BAD_REQUEST, "{content_type}: {status}");
        assert_eq!(status["kind"], "Status");
    }
    let (code, body) = h
        .raw(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/big",
            "application/merge-patch+json",
            deep.clone().into_bytes(),
        )
        .await;
    assert_eq!(
        code,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );

    // A YAML alias bomb ("billion laughs"): refused by the decoder's budget, not expanded.
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\na0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(",");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    bomb.push_str("data: {k: *a9}\n");
    let (code, body) = h
        .raw(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/yaml",
            bomb.into_bytes(),
        )
        .await;
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, StatusCode::BAD_REQUEST, "{status}");
    assert_eq!(status["kind"], "Status");

    // A 100,000-operation JSON patch: applied or refused, never a crash or a 5xx.
    let operations: Vec<Value> = (0..100_000)
        .map(|i| json!({"op": "add", "path": format!("/data/k{}", i % 100), "value": "v"}))
        .collect();
    let (code, body) = h
        .raw(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/big",
            "application/json-patch+json",
            serde_json::to_vec(&operations).unwrap(),
        )
        .await;
    assert!(
        code == StatusCode::OK || code.is_client_error(),
        "{code}: {}",
        String::from_utf8_lossy(&body)
    );
    let status: Value = serde_json::from_slice(&body).unwrap();
    if code != StatusCode::OK {
        assert_eq!(status["kind"], "Status", "{status}");
    }
    let (code, _) = h.get("/api/v1/namespaces/default/configmaps/big").await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn health_endpoints_run_named_checks_as_upstream() {
    let h = harness().await;
    let text = |(code, body): (StatusCode, Vec<u8>)| (code, String::from_utf8(body).unwrap());
    for endpoint in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(
            text(h.raw("GET", endpoint, "", vec![]).await),
            (StatusCode::OK, "ok".to_string())
        );
        let (code, body) = text(
            h.raw("GET", &format!("{endpoint}?verbose"), "", vec![])
                .await,
        );
        assert_eq!(code, StatusCode::OK);
        assert!(
            body.starts_with("[+]ping ok\n[+]log ok\n[+]etcd ok\n"),
            "{body}"
        );
        assert!(
            body.ends_with(&format!("{} check passed\n", &endpoint[1..])),
            "{body}"
        );
        assert_eq!(
            text(h.raw("GET", &format!("{endpoint}/etcd"), "", vec![]).await),
            (StatusCode::OK, "ok".to_string())
        );
        let (code, _) = text(
            h.raw("GET", &format!("{endpoint}/nothing"), "", vec![])
                .await,
        );
        assert_eq!(code, StatusCode::NOT_FOUND);
    }
    let (code, body) = text(
        h.raw(
            "GET",
            "/readyz?verbose&exclude=etcd&exclude=nope",
            "",
            vec![],
        )
        .await,
    );
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        body,
        "[+]ping ok\n[+]log ok\n[+]etcd excluded: ok\n[+]shutdown ok\nwarn: some health checks cannot be excluded: no matches for \"nope\"\nreadyz check passed\n"
    );
}

#[tokio::test]
async fn the_kubernetes_service_points_at_the_api_server() {
    let h = harness().await;
    let (code, service) = h
        .get("/api/v1/namespaces/default/services/kubernetes")
        .await;
    assert_eq!(code, StatusCode::OK, "{service}");
    assert_eq!(service["spec"]["clusterIP"], "10.43.0.1");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
    );
    assert!(service["spec"].get("selector").is_none());
    assert_eq!(service["metadata"]["labels"]["component"], "apiserver");
    assert_eq!(service["metadata"]["labels"]["provider"], "kubernetes");

    let (code, endpoints) = h
        .get("/api/v1/namespaces/default/endpoints/kubernetes")
        .await;
    assert_eq!(code, StatusCode::OK, "{endpoints}");
    assert_eq!(
        endpoints["subsets"],
        json!([{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
    );
    let (code, slice) = h
        .get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes")
        .await;
    assert_eq!(code, StatusCode::OK, "{slice}");
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(slice["endpoints"][0]["addresses"], json!(["127.0.0.1"]));
    assert_eq!(
        slice["metadata"]["labels"]["kubernetes.io/service-name"],
        "kubernetes"
    );

    // Nobody else gets the first address.
    let (code, status) = h
        .call(
            "POST",
            "/api/v1/namespaces/default/services",
            Some(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "thief"},
                "spec": {"clusterIP": "10.43.0.1", "ports": [{"port": 80}]}}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");

    // Changed or deleted, it is put back by the next reconcile.
    let (code, _) = h
        .call(
            "PATCH",
            "/api/v1/namespaces/default/services/kubernetes",
            Some(json!({"spec": {"ports": [{"name": "https", "port": 443, "targetPort": 1}]}})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    h.call(
        "DELETE",
        "/api/v1/namespaces/default/endpoints/kubernetes",
        None,
    )
    .await;
    podium_apiserver::kubernetes_service::reconcile(&h.server)
        .await
        .unwrap();
    let (_, service) = h
        .get("/api/v1/namespaces/default/services/kubernetes")
        .await;
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 6443);
    let (code, _) = h
        .get("/api/v1/namespaces/default/endpoints/kubernetes")
        .await;
    assert_eq!(code, StatusCode::OK);
    // A second start finds everything in place.
    h.server.bootstrap().await.unwrap();
}

#[tokio::test]
async fn pods_eviction_is_a_graceful_delete_answered_201() {
    let h = harness().await;
    let (_, discovery) = h.get("/api/v1").await;
    let entry = discovery["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods/eviction")
        .cloned()
        .expect("pods/eviction in discovery");
    assert_eq!(
        (
            &entry["group"],
            &entry["version"],
            &entry["kind"],
            &entry["verbs"]
        ),
        (
            &json!("policy"),
            &json!("v1"),
            &json!("Eviction"),
            &json!(["create"])
        )
    );

    for (name, node) in [("bound", Some("n1")), ("pending", None)] {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
        if let Some(node) = node {
            pod["spec"]["nodeName"] = json!(node);
        }
        let (code, _) = h
            .call("POST", "/api/v1/namespaces/default/pods", Some(pod))
            .await;
        assert_eq!(code, StatusCode::CREATED);
    }
    // What kubectl drain sends (as JSON here; protobuf from kubectl 1.32+).
    let eviction = |name: &str| {
        json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": name, "namespace": "default"},
            "deleteOptions": {"gracePeriodSeconds": 5}})
    };
    let (code, status) = h
        .call(
            "POST",
            "/api/v1/namespaces/default/pods/bound/eviction",
            Some(eviction("bound")),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{status}");
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    );
    // A pod on a node ends gracefully, with the eviction's grace period.
    let (code, pod) = h.get("/api/v1/namespaces/default/pods/bound").await;
    assert_eq!(code, StatusCode::OK);
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 5);
    // A pod on no node goes at once.
    let (code, _) = h
        .call(
            "POST",
            "/api/v1/namespaces/default/pods/pending/eviction",
            Some(eviction("pending")),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, _) = h.get("/api/v1/namespaces/default/pods/pending").await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    let (code, status) = h
        .call(
            "POST",
            "/api/v1/namespaces/default/pods/bound/eviction",
            Some(eviction("other")),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{status}");
    assert_eq!(
        status["message"],
        "name in URL does not match name in Eviction object"
    );
    let (code, status) = h
        .call(
            "POST",
            "/api/v1/namespaces/default/pods/nope/eviction",
            Some(eviction("nope")),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{status}");
    assert_eq!(status["message"], "pods \"nope\" not found");
}

#[tokio::test]
async fn openapi_v2_is_negotiated() {
    let h = harness().await;
    let get = |accept: &'static str| {
        let router = h.server.router();
        async move {
            let mut request = Request::builder().uri("/openapi/v2");
            if !accept.is_empty() {
                request = request.header("accept", accept);
            }
            let response = router
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, content_type, body)
        }
    };
    for accept in ["", "application/json", "*/*", "application/json, */*"] {
        let (status, content_type, body) = get(accept).await;
        assert_eq!(status, StatusCode::OK, "Accept {accept:?}");
        assert_eq!(content_type, "application/json");
        let document: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(document["swagger"], "2.0");
        let pod = &document["definitions"]["io.k8s.api.core.v1.Pod"];
        assert!(pod["properties"]["spec"].is_object(), "{pod}");
        assert!(
            !String::from_utf8_lossy(&body).contains("#/components/"),
            "v3 references left"
        );
    }
    // kubectl's Accept: the protobuf document.
    let (status, content_type, _) =
        get("application/com.github.proto-openapi.spec.v2@v1.0+protobuf").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.contains("protobuf"), "{content_type}");
    let (status, _, body) = get("application/yaml").await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["reason"], "NotAcceptable");
}
