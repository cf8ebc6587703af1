//! Kinds served at two versions over one storage, as upstream converts them: core and
//! `events.k8s.io/v1` Events, `autoscaling/v2` and `v1` HorizontalPodAutoscalers. Each
//! object written at one version reads at the other, by GET, LIST and watch.

mod common;

use common::call;
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn events_read_at_both_versions() {
    let (server, _dir) = common::api_server().await;
    let core = "/api/v1/namespaces/default/events";
    let new = "/apis/events.k8s.io/v1/namespaces/default/events";
    let (code, made) = call(
        &server,
        "POST",
        core,
        json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "old-style"}, "involvedObject": {"kind": "Pod", "name": "web"},
        "reason": "Started", "message": "started web", "type": "Normal", "count": 2,
        "firstTimestamp": "2026-01-01T00:00:00Z", "source": {"component": "kubelet"}}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{made}");
    let (code, seen) = call(&server, "GET", &format!("{new}/old-style"), None).await;
    assert_eq!(code, StatusCode::OK, "{seen}");
    assert_eq!(seen["apiVersion"], "events.k8s.io/v1");
    assert_eq!(seen["regarding"]["name"], "web");
    assert_eq!(seen["note"], "started web");
    assert_eq!(seen["deprecatedCount"], 2);
    assert_eq!(seen["deprecatedSource"]["component"], "kubelet");
    assert_eq!(seen["eventTime"], "2026-01-01T00:00:00.000000Z");

    // The events API's own rules on create.
    let (code, refused) = call(
        &server,
        "POST",
        new,
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "bad"}, "note": "x"}),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (code, made) = call(&server, "POST", new, json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "new-style"}, "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Node", "name": "n1"}, "reportingController": "podium.io/test",
        "reportingInstance": "test-1", "action": "Check", "reason": "Checked", "type": "Normal", "note": "fine"})).await;
    assert_eq!(code, StatusCode::CREATED, "{made}");
    assert_eq!(made["apiVersion"], "events.k8s.io/v1");
    let (_, as_core) = call(&server, "GET", &format!("{core}/new-style"), None).await;
    assert_eq!(as_core["apiVersion"], "v1");
    assert_eq!(as_core["involvedObject"]["name"], "n1");
    assert_eq!(as_core["message"], "fine");
    assert_eq!(as_core["reportingComponent"], "podium.io/test");

    // Lists (from each version's watch cache) carry each version's shape.
    let (_, listed) = call(&server, "GET", new, None).await;
    assert_eq!(listed["kind"], "EventList");
    let notes: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["note"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["fine", "started web"]);
    let (_, listed) = call(&server, "GET", core, None).await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["apiVersion"] == "v1" && e.get("note").is_none())
    );
}

#[tokio::test]
async fn horizontal_pod_autoscalers_read_at_both_versions() {
    let (server, _dir) = common::api_server().await;
    let v1 = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers";
    let v2 = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers";
    let (code, made) = call(&server, "POST", v1, json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "maxReplicas": 5, "targetCPUUtilizationPercentage": 60}})).await;
    assert_eq!(code, StatusCode::CREATED, "{made}");
    assert_eq!(made["spec"]["targetCPUUtilizationPercentage"], 60);
    assert_eq!(made["spec"]["minReplicas"], 1);
    let (_, as_v2) = call(&server, "GET", &format!("{v2}/web"), None).await;
    assert_eq!(as_v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        as_v2["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}])
    );
    // What v1 cannot say (behavior) travels in upstream's annotation, and back.
    let mut changed = as_v2.clone();
    changed["spec"]["behavior"] = json!({"scaleDown": {"stabilizationWindowSeconds": 30}});
    let (code, body) = call(&server, "PUT", &format!("{v2}/web"), changed).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (_, as_v1) = call(&server, "GET", &format!("{v1}/web"), None).await;
    let annotation = as_v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/behavior"]
        .as_str()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(annotation).unwrap()["scaleDown"]["stabilizationWindowSeconds"],
        30
    );
    let (code, body) = call(&server, "PUT", &format!("{v1}/web"), as_v1).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (_, again) = call(&server, "GET", &format!("{v2}/web"), None).await;
    assert_eq!(
        again["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        30
    );
    assert!(again["metadata"].get("annotations").is_none(), "{again}");
}
