//! `pods/eviction` honours PodDisruptionBudgets as upstream: it spends an allowed
//! disruption, answers 429 when none is left, and ignores budgets for pods that are not
//! running.

mod common;

use common::call;
use http::StatusCode;
use podium_apiserver::ApiServer;
use serde_json::{Value, json};

const PODS: &str = "/api/v1/namespaces/default/pods";
const BUDGETS: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";

/// A pod with the given phase and readiness (as the agent would report them).
async fn pod(server: &ApiServer, name: &str, phase: &str, ready: bool) {
    let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}});
    let (code, created) = call(server, "POST", PODS, body).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let mut status = created.clone();
    status["status"] = json!({"phase": phase, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]});
    let (code, body) = call(server, "PUT", &format!("{PODS}/{name}/status"), status).await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

fn eviction(name: &str) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}})
}

async fn evict(server: &ApiServer, name: &str) -> (StatusCode, Value) {
    call(
        server,
        "POST",
        &format!("{PODS}/{name}/eviction"),
        eviction(name),
    )
    .await
}

/// A budget over `app=web` whose status (as the disruption controller writes it) allows
/// `allowed` disruptions.
async fn budget(server: &ApiServer, allowed: i64, observed: i64) {
    let body = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
    let (code, created) = call(server, "POST", BUDGETS, body).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let mut status = created;
    status["status"] = json!({"observedGeneration": observed, "currentHealthy": 2, "desiredHealthy": 1,
        "expectedPods": 2, "disruptionsAllowed": allowed});
    let (code, body) = call(server, "PUT", &format!("{BUDGETS}/web/status"), status).await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_eviction_spends_a_disruption_and_the_next_gets_429() {
    let (server, _dir) = common::api_server().await;
    pod(&server, "a", "Running", true).await;
    pod(&server, "b", "Running", true).await;
    budget(&server, 1, 1).await;

    let (code, body) = evict(&server, "a").await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (_, pdb) = call(&server, "GET", &format!("{BUDGETS}/web"), Value::Null).await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0, "{pdb}");
    assert!(pdb["status"]["disruptedPods"]["a"].is_string(), "{pdb}");
    let (_, a) = call(&server, "GET", &format!("{PODS}/a"), Value::Null).await;
    assert!(
        a["metadata"]["deletionTimestamp"].is_string(),
        "the evicted pod is being deleted: {a}"
    );

    let (code, status) = evict(&server, "b").await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{status}");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(
        status["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(status["details"]["causes"][0]["reason"], "DisruptionBudget");
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "The disruption budget web needs 1 healthy pods and has 2 currently"
    );
    let (_, b) = call(&server, "GET", &format!("{PODS}/b"), Value::Null).await;
    assert!(
        b["metadata"]["deletionTimestamp"].is_null(),
        "a refused eviction deleted the pod: {b}"
    );
}

#[tokio::test]
async fn a_budget_not_yet_processed_refuses_and_unscheduled_or_unready_pods_go() {
    let (server, _dir) = common::api_server().await;
    pod(&server, "ready", "Running", true).await;
    pod(&server, "pending", "Pending", false).await;
    pod(&server, "unready", "Running", false).await;
    budget(&server, 5, 0).await;
    // observedGeneration 0 < generation 1: the controller has not counted it yet.
    let (code, status) = evict(&server, "ready").await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "The disruption budget web is still being processed by the server."
    );
    // A pending pod disrupts nothing; an unready one is evictable while the budget is met
    // (currentHealthy 2 >= desiredHealthy 1), and neither spends a disruption.
    assert_eq!(evict(&server, "pending").await.0, StatusCode::CREATED);
    assert_eq!(evict(&server, "unready").await.0, StatusCode::CREATED);
    let (_, pdb) = call(&server, "GET", &format!("{BUDGETS}/web"), Value::Null).await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 5, "{pdb}");
}

#[tokio::test]
async fn two_budgets_over_one_pod_are_an_error_and_none_lets_it_go() {
    let (server, _dir) = common::api_server().await;
    pod(&server, "free", "Running", true).await;
    assert_eq!(
        evict(&server, "free").await.0,
        StatusCode::CREATED,
        "no budget: evicted"
    );
    pod(&server, "a", "Running", true).await;
    budget(&server, 1, 1).await;
    let second = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "also"},
        "spec": {"maxUnavailable": 1, "selector": {}}});
    assert_eq!(
        call(&server, "POST", BUDGETS, second).await.0,
        StatusCode::CREATED
    );
    let (code, status) = evict(&server, "a").await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("more than one PodDisruptionBudget")
    );
}
