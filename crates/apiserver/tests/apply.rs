//! Server-side apply and managedFields, as kube-apiserver answers them: apply creates and
//! merges, managers own what they applied, conflicts are 409 with the contested fields
//! unless forced, fields a manager stops applying go, updates take the fields they change.

mod common;

use common::{call, send};
use http::StatusCode;
use podium_apiserver::ApiServer;
use serde_json::{Value, json};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const APPLY: &str = "application/apply-patch+yaml";

async fn apply(server: &ApiServer, uri: &str, manager: &str, body: Value) -> common::Answer {
    let sep = if uri.contains('?') { '&' } else { '?' };
    send(
        server,
        "PATCH",
        &format!("{uri}{sep}fieldManager={manager}"),
        APPLY,
        "application/json",
        body,
    )
    .await
}

fn configmap(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data})
}

/// (manager, operation, fieldsV1) of every entry.
fn managers(object: &Value) -> Vec<(String, String, Value)> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().to_string(),
                        e["operation"].as_str().unwrap().to_string(),
                        e["fieldsV1"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn managers_own_what_they_apply_and_conflict_over_it() {
    let (server, _dir) = common::api_server().await;
    let item = format!("{CONFIGMAPS}/cfg");

    // Apply creates.
    let created = apply(&server, &item, "alice", configmap(json!({"a": "1"}))).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        managers(&created.body),
        vec![(
            "alice".into(),
            "Apply".into(),
            json!({"f:data": {"f:a": {}}})
        )]
    );
    let entry = &created.body["metadata"]["managedFields"][0];
    assert_eq!(entry["apiVersion"], "v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert!(entry["time"].is_string());

    // The same configuration again changes nothing.
    let again = apply(&server, &item, "alice", configmap(json!({"a": "1"}))).await;
    assert_eq!(again.code, StatusCode::OK);
    assert_eq!(
        again.body["metadata"]["resourceVersion"],
        created.body["metadata"]["resourceVersion"]
    );

    // Another manager setting the same value shares it; another value conflicts.
    let shared = apply(&server, &item, "bob", configmap(json!({"a": "1"}))).await;
    assert_eq!(shared.code, StatusCode::OK, "{}", shared.body);
    let conflict = apply(&server, &item, "carol", configmap(json!({"a": "2"}))).await;
    assert_eq!(conflict.code, StatusCode::CONFLICT, "{}", conflict.body);
    assert_eq!(conflict.body["reason"], "Conflict");
    assert_eq!(
        conflict.body["message"],
        "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .data.a\nconflicts with \"bob\":\n- .data.a"
    );
    assert_eq!(
        conflict.body["details"]["causes"][0],
        json!({"reason": "FieldManagerConflict", "message": "conflict with \"alice\"", "field": ".data.a"})
    );

    // Forced, the field changes hands.
    let forced = apply(
        &server,
        &format!("{item}?force=true"),
        "carol",
        configmap(json!({"a": "2"})),
    )
    .await;
    assert_eq!(forced.code, StatusCode::OK, "{}", forced.body);
    assert_eq!(forced.body["data"], json!({"a": "2"}));
    assert_eq!(
        managers(&forced.body),
        vec![(
            "carol".into(),
            "Apply".into(),
            json!({"f:data": {"f:a": {}}})
        )]
    );

    // A field its only applier stops applying goes; one someone else owns stays.
    apply(&server, &item, "alice", configmap(json!({"b": "1"}))).await;
    let dropped = apply(&server, &item, "alice", configmap(json!({"c": "1"}))).await;
    assert_eq!(
        dropped.body["data"],
        json!({"a": "2", "c": "1"}),
        "{}",
        dropped.body
    );

    // An update takes the fields it changes from their appliers (no conflict for updates).
    let mut current = dropped.body.clone();
    current["data"]["a"] = json!("3");
    let updated = send(
        &server,
        "PUT",
        &format!("{item}?fieldManager=dave"),
        "application/json",
        "application/json",
        current,
    )
    .await;
    assert_eq!(updated.code, StatusCode::OK, "{}", updated.body);
    let owners = managers(&updated.body);
    assert!(
        owners.contains(&(
            "dave".into(),
            "Update".into(),
            json!({"f:data": {"f:a": {}}})
        )),
        "{owners:?}"
    );
    assert!(!owners.iter().any(|(m, _, _)| m == "carol"), "{owners:?}");
    let conflict = apply(&server, &item, "carol", configmap(json!({"a": "2"}))).await;
    assert_eq!(
        conflict.body["message"],
        "Apply failed with 1 conflict: conflict with \"dave\" using v1: .data.a"
    );

    // dryRun answers what would be stored and stores nothing.
    let dry = apply(
        &server,
        &format!("{item}?dryRun=All&force=true"),
        "carol",
        configmap(json!({"a": "dry"})),
    )
    .await;
    assert_eq!(dry.code, StatusCode::OK);
    assert_eq!(dry.body["data"]["a"], "dry");
    let (_, stored) = call(&server, "GET", &item, None).await;
    assert_eq!(stored["data"]["a"], "3");
}

#[tokio::test]
async fn apply_needs_a_field_manager_and_the_right_object() {
    let (server, _dir) = common::api_server().await;
    let item = format!("{CONFIGMAPS}/cfg");
    let missing = send(
        &server,
        "PATCH",
        &item,
        APPLY,
        "application/json",
        configmap(json!({})),
    )
    .await;
    assert_eq!(
        missing.code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        missing.body
    );
    assert_eq!(
        missing.body["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let mut other = configmap(json!({}));
    other["metadata"]["name"] = json!("other");
    assert_eq!(
        apply(&server, &item, "m", other).await.code,
        StatusCode::BAD_REQUEST
    );
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  k: v\n";
    let request = http::Request::builder()
        .method("PATCH")
        .uri(format!("{item}?fieldManager=m"))
        .header("content-type", APPLY)
        .body(axum::body::Body::from(yaml))
        .unwrap();
    let response = tower::ServiceExt::oneshot(server.router(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let forced_merge = send(
        &server,
        "PATCH",
        &format!("{item}?force=true"),
        "application/merge-patch+json",
        "application/json",
        json!({"data": {}}),
    )
    .await;
    assert_eq!(
        forced_merge.code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        forced_merge.body
    );
}

#[tokio::test]
async fn lists_merge_by_key_and_subresource_managers_are_named() {
    let (server, _dir) = common::api_server().await;
    let item = format!("{DEPLOYMENTS}/web");
    let deployment = |image: &str, replicas: Option<i64>| {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}});
        if let Some(r) = replicas {
            d["spec"]["replicas"] = json!(r);
        }
        d
    };
    let created = apply(&server, &item, "alice", deployment("nginx:1", None)).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    let fields = &created.body["metadata"]["managedFields"][0]["fieldsV1"];
    assert_eq!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}})
    );
    // A sidecar applied by another manager merges into the list by name.
    let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "log", "image": "busybox"}]}}}});
    let merged = apply(&server, &item, "bob", sidecar).await;
    assert_eq!(merged.code, StatusCode::OK, "{}", merged.body);
    let names: Vec<&str> = merged.body["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "log"]);
    // Alice's next apply keeps bob's container.
    let next = apply(&server, &item, "alice", deployment("nginx:2", None)).await;
    let containers = &next.body["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "nginx:2");
    assert_eq!(containers[1]["name"], "log");

    // Scaled through /scale, then applied with replicas: a conflict naming the subresource.
    let scaled = send(
        &server,
        "PATCH",
        &format!("{item}/scale?fieldManager=scaler"),
        "application/merge-patch+json",
        "application/json",
        json!({"spec": {"replicas": 5}}),
    )
    .await;
    assert_eq!(scaled.code, StatusCode::OK, "{}", scaled.body);
    let conflict = apply(&server, &item, "alice", deployment("nginx:2", Some(2))).await;
    assert_eq!(conflict.code, StatusCode::CONFLICT, "{}", conflict.body);
    assert_eq!(
        conflict.body["message"],
        "Apply failed with 1 conflict: conflict with \"scaler\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
    // Status written through /status is owned there, not by the main resource's appliers.
    let (_, live) = call(&server, "GET", &item, None).await;
    let mut with_status = live.clone();
    with_status["status"] = json!({"observedGeneration": 1});
    let status = send(
        &server,
        "PUT",
        &format!("{item}/status?fieldManager=controller"),
        "application/json",
        "application/json",
        with_status,
    )
    .await;
    assert_eq!(status.code, StatusCode::OK, "{}", status.body);
    let entry = status.body["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "controller")
        .cloned()
        .unwrap();
    assert_eq!(entry["subresource"], "status");
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:status": {"f:observedGeneration": {}}})
    );
}
