//! The REST contract of the API server, exercised in process through its router.

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
    async fn call(
        &self,
        method: &str,
        uri: &str,
        content_type: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, bytes) = self
            .raw(
                method,
                uri,
                content_type,
                body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            )
            .await;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

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
        (
            status,
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", uri, "application/json", Some(body)).await
    }
    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, "application/json", None).await
    }
}

fn pod(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "sample-app:v1"}]}})
}

#[tokio::test]
async fn create_get_conflict_and_list_with_selectors() {
    let h = harness().await;
    let (code, created) = h
        .post(
            "/api/v1/namespaces/default/pods",
            pod("a", json!({"app": "web"})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert!(created["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert_eq!(created["status"]["phase"], "Pending");
    assert_eq!(created["spec"]["restartPolicy"], "Always");
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let (code, body) = h
        .raw(
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            pod("a", json!({})).to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods \\\"a\\\" already exists\",\"reason\":\"AlreadyExists\",\"details\":{\"name\":\"a\",\"kind\":\"pods\"},\"code\":409}\n"
    );

    h.post(
        "/api/v1/namespaces/default/pods",
        pod("b", json!({"app": "db"})),
    )
    .await;
    let (_, list) = h
        .get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
        .await;
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, list) = h
        .get("/api/v1/pods?labelSelector=app%20in%20(web,db)")
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (code, err) = h.get("/api/v1/pods?fieldSelector=spec.bogus%3D1").await;
    assert_eq!(
        (code, err["message"].as_str().unwrap()),
        (
            StatusCode::BAD_REQUEST,
            "field label not supported: spec.bogus"
        )
    );

    // Stale resourceVersion on PUT.
    let mut stale = created.clone();
    stale["metadata"]["labels"] = json!({"app": "web2"});
    let (code, _) = h
        .call(
            "PUT",
            "/api/v1/namespaces/default/pods/a",
            "application/json",
            Some(stale.clone()),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, err) = h
        .call(
            "PUT",
            "/api/v1/namespaces/default/pods/a",
            "application/json",
            Some(stale),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified"),
        "{err}"
    );
    assert_ne!(rv, "");
}

#[tokio::test]
async fn bad_input_gets_a_status_and_stores_nothing() {
    let h = harness().await;
    let (code, _) = h
        .raw(
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = h
        .raw(
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            vec![b' '; 4 * 1024 * 1024],
        )
        .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    let mut unknown = pod("u", json!({}));
    unknown["spec"]["bogus"] = json!(1);
    let (code, err) = h
        .post(
            "/api/v1/namespaces/default/pods?fieldValidation=Strict",
            unknown,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.bogus\"")
    );
    let mut bad = pod("Bad_Name", json!({}));
    bad["spec"]["containers"] = json!([]);
    let (code, err) = h.post("/api/v1/namespaces/default/pods", bad).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["reason"], "Invalid");
    let (code, _) = h
        .post("/api/v1/namespaces/nope/pods", pod("x", json!({})))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = h.get("/api/v1/namespaces/default/widgets").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (_, list) = h.get("/api/v1/namespaces/default/pods").await;
    assert_eq!(list["items"], json!([]));
    let mut deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}});
    let (code, err) = h
        .post(
            "/apis/apps/v1/namespaces/default/deployments",
            deploy.clone(),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("`selector` does not match template `labels`"),
        "{err}"
    );
    deploy["kind"] = json!("Widget");
    let (code, _) = h
        .post("/apis/apps/v1/namespaces/default/deployments", deploy)
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn watch_from_a_revision_and_from_zero() {
    let h = harness().await;
    let (_, a) = h
        .post(
            "/api/v1/namespaces/default/pods",
            pod("a", json!({"app": "web"})),
        )
        .await;
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    h.post(
        "/api/v1/namespaces/default/pods",
        pod("b", json!({"app": "db"})),
    )
    .await;
    let (code, _) = h
        .call(
            "DELETE",
            "/api/v1/namespaces/default/pods/a",
            "application/json",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let uri =
        format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&timeoutSeconds=1");
    let (code, body) = h.raw("GET", &uri, "application/json", vec![]).await;
    assert_eq!(code, StatusCode::OK);
    let events: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, vec![("ADDED", "b"), ("DELETED", "a")]);

    let (_, body) = h
        .raw(
            "GET",
            "/api/v1/namespaces/default/pods?watch=true&labelSelector=app%3Ddb&timeoutSeconds=1",
            "application/json",
            vec![],
        )
        .await;
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "ADDED");
}

#[tokio::test]
async fn graceful_pod_delete_binding_and_final_delete() {
    let h = harness().await;
    h.post("/api/v1/namespaces/default/pods", pod("p", json!({})))
        .await;
    let (code, _) = h.post("/api/v1/namespaces/default/pods/p/binding", json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}})).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, _) = h
        .post(
            "/api/v1/namespaces/default/pods/p/binding",
            json!({"target": {"kind": "Node", "name": "n2"}}),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (_, bound) = h.get("/api/v1/namespaces/default/pods/p").await;
    assert_eq!(bound["spec"]["nodeName"], "n1");
    let (code, deleting) = h
        .call(
            "DELETE",
            "/api/v1/namespaces/default/pods/p",
            "application/json",
            Some(json!({"propagationPolicy": "Background"})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        deleting["metadata"]["deletionTimestamp"].is_string(),
        "{deleting}"
    );
    assert_eq!(deleting["metadata"]["deletionGracePeriodSeconds"], 30);
    let (code, _) = h.get("/api/v1/namespaces/default/pods/p").await;
    assert_eq!(code, StatusCode::OK);
    // Pods are answered with the deleted object (upstream's ReturnDeletedObject).
    let (code, deleted) = h
        .call(
            "DELETE",
            "/api/v1/namespaces/default/pods/p?gracePeriodSeconds=0",
            "application/json",
            None,
        )
        .await;
    assert_eq!(
        (code, deleted["kind"].as_str()),
        (StatusCode::OK, Some("Pod"))
    );
    let (code, _) = h.get("/api/v1/namespaces/default/pods/p").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn services_get_cluster_ips_and_node_ports() {
    let h = harness().await;
    let svc = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}]}})
    };
    let (code, a) = h
        .post("/api/v1/namespaces/default/services", svc("a"))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{a}");
    let (_, b) = h
        .post("/api/v1/namespaces/default/services", svc("b"))
        .await;
    let ip = a["spec"]["clusterIP"].as_str().unwrap();
    assert!(ip.starts_with("10.43."), "{ip}");
    assert_ne!(a["spec"]["clusterIP"], b["spec"]["clusterIP"]);
    let port = a["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&port));
    assert_ne!(
        a["spec"]["ports"][0]["nodePort"],
        b["spec"]["ports"][0]["nodePort"]
    );
    // An update that leaves the cluster IP out keeps it.
    let mut update = a.clone();
    update["spec"].as_object_mut().unwrap().remove("clusterIP");
    update["spec"].as_object_mut().unwrap().remove("clusterIPs");
    let (code, updated) = h
        .call(
            "PUT",
            "/api/v1/namespaces/default/services/a",
            "application/json",
            Some(update),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_eq!(updated["spec"]["clusterIP"], a["spec"]["clusterIP"]);
}

#[tokio::test]
async fn deleting_an_owner_collects_its_dependents() {
    let h = harness().await;
    let (_, cm) = h
        .post(
            "/api/v1/namespaces/default/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}),
        )
        .await;
    let uid = cm["metadata"]["uid"].as_str().unwrap();
    let mut dependent = pod("dep", json!({}));
    dependent["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "controller": true}]);
    h.post("/api/v1/namespaces/default/pods", dependent).await;
    let (code, _) = h
        .call(
            "DELETE",
            "/api/v1/namespaces/default/configmaps/owner",
            "application/json",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    for _ in 0..100 {
        let (code, _) = h.get("/api/v1/namespaces/default/pods/dep").await;
        if code == StatusCode::NOT_FOUND {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the dependent pod was not collected");
}

#[tokio::test]
async fn scale_subresource_and_discovery() {
    let h = harness().await;
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}});
    let (code, created) = h
        .post("/apis/apps/v1/namespaces/default/deployments", deploy)
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    let (code, scale) = h
        .call(
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/d/scale",
            "application/merge-patch+json",
            Some(json!({"spec": {"replicas": 5}})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{scale}");
    assert_eq!(
        (
            scale["kind"].as_str(),
            scale["spec"]["replicas"].as_i64(),
            scale["status"]["selector"].as_str()
        ),
        (Some("Scale"), Some(5), Some("app=x"))
    );
    let (_, d) = h
        .get("/apis/apps/v1/namespaces/default/deployments/d")
        .await;
    assert_eq!(
        (
            d["spec"]["replicas"].as_i64(),
            d["metadata"]["generation"].as_i64()
        ),
        (Some(5), Some(2))
    );

    let (_, resources) = h.get("/apis/apps/v1").await;
    let names: Vec<&str> = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"deployments/scale") && names.contains(&"replicasets"),
        "{names:?}"
    );
    let (_, version) = h.get("/version").await;
    assert_eq!(version["major"], "1");
}

#[tokio::test]
async fn the_collector_follows_owner_references_as_they_change() {
    let h = harness().await;
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let secrets = "/api/v1/namespaces/default/secrets";
    let (_, owner) = h
        .post(
            configmaps,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}),
        )
        .await;
    let uid = owner["metadata"]["uid"].as_str().unwrap().to_string();
    let reference = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]);
    // A dependent that gains its owner reference by an update, and one made with it.
    let (_, later) = h
        .post(
            secrets,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later"}}),
        )
        .await;
    let mut later = later;
    later["metadata"]["ownerReferences"] = reference.clone();
    let (code, _) = h
        .call(
            "PUT",
            &format!("{secrets}/later"),
            "application/json",
            Some(later),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    h.post(configmaps, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "child", "ownerReferences": reference}}))
        .await;
    // One that lost it again is not collected.
    let (_, loose) = h
        .post(secrets, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "loose", "ownerReferences": reference}}))
        .await;
    let mut loose = loose;
    loose["metadata"]["ownerReferences"] = json!([]);
    let (code, _) = h
        .call(
            "PUT",
            &format!("{secrets}/loose"),
            "application/json",
            Some(loose),
        )
        .await;
    assert_eq!(code, StatusCode::OK);

    let (code, _) = h
        .call(
            "DELETE",
            &format!("{configmaps}/owner"),
            "application/json",
            Some(json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let mut gone = false;
    for _ in 0..150 {
        let owner = h.get(&format!("{configmaps}/owner")).await.0;
        let later = h.get(&format!("{secrets}/later")).await.0;
        let child = h.get(&format!("{configmaps}/child")).await.0;
        if [owner, later, child]
            .iter()
            .all(|c| *c == StatusCode::NOT_FOUND)
        {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        gone,
        "the owner and its two dependents were not all collected"
    );
    assert_eq!(h.get(&format!("{secrets}/loose")).await.0, StatusCode::OK);
}
