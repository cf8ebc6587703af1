//! Pod workers against the mock runtime and a recording API.

use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::mock::{Behaviour, MockRuntime};

#[derive(Default)]
struct RecordingApi {
    statuses: Mutex<Vec<(tokio::time::Instant, Value)>>,
    events: Mutex<Vec<(String, String)>>,
    deleted: Mutex<Vec<(tokio::time::Instant, String)>>,
}

#[async_trait::async_trait]
impl PodApi for RecordingApi {
    async fn write_status(&self, _pod: &Pod, status: &Value) -> Result<(), crate::AgentError> {
        self.statuses
            .lock()
            .unwrap()
            .push((tokio::time::Instant::now(), status.clone()));
        Ok(())
    }

    async fn event(&self, _pod: &Pod, _kind: EventType, reason: &str, message: &str) {
        self.events
            .lock()
            .unwrap()
            .push((reason.into(), message.into()));
    }

    async fn finish_delete(&self, pod: &Pod) -> Result<(), crate::AgentError> {
        self.deleted
            .lock()
            .unwrap()
            .push((tokio::time::Instant::now(), pod.uid().unwrap_or_default()));
        Ok(())
    }
}

impl RecordingApi {
    fn last_status(&self) -> Value {
        self.statuses
            .lock()
            .unwrap()
            .last()
            .map(|(_, s)| s.clone())
            .unwrap_or(Value::Null)
    }

    fn reasons(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(r, _)| r.clone())
            .collect()
    }

    fn has_event(&self, reason: &str, fragment: &str) -> bool {
        self.events
            .lock()
            .unwrap()
            .iter()
            .any(|(r, m)| r == reason && m.contains(fragment))
    }
}

struct Fixture {
    runtime: Arc<MockRuntime>,
    api: Arc<RecordingApi>,
    ctx: Arc<WorkerContext>,
}

fn fixture(drain: Duration) -> Fixture {
    let runtime = MockRuntime::new();
    runtime.add_image("app:v1");
    let api = Arc::new(RecordingApi::default());
    let ctx = Arc::new(WorkerContext {
        runtime: runtime.clone(),
        api: api.clone(),
        node_ip: "192.0.2.1".parse().unwrap(),
        drain_delay: drain,
        logs: Arc::new(LogRegistry::default()),
    });
    Fixture { runtime, api, ctx }
}

fn pod(uid: &str, spec: Value) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default", "uid": uid}, "spec": spec}),
        )
        .unwrap(),
    )
}

/// Poll `check` every 20 ms for up to 5 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..250 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn starts_a_pod_and_reports_it_ready() {
    let f = fixture(Duration::ZERO);
    let spec = json!({"nodeName": "n", "containers": [
        {"name": "a", "image": "app:v1", "env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]},
        {"name": "b", "image": "app:v1"},
    ]});
    let started = tokio::time::Instant::now();
    let _handle = spawn(f.ctx.clone(), pod("u1", spec), vec![]);
    eventually("Ready", || {
        f.api.last_status()["conditions"][2]["status"] == "True"
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a pod with local images is ready well under a second"
    );
    let status = f.api.last_status();
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["podIP"], "127.0.0.1");
    assert_eq!(status["hostIP"], "192.0.2.1");
    assert_eq!(
        status["containerStatuses"][0]["containerID"],
        "podium://u1/a/0"
    );
    assert_eq!(
        status["containerStatuses"][1]["imageID"],
        format!("sha256:{:0>64}", 6)
    );
    // Sandbox first, then the containers in spec order.
    let calls = f.runtime.calls();
    assert_eq!(
        calls[..3],
        ["create_sandbox u1", "start u1/a/0", "start u1/b/0"]
    );
    let spec = f
        .runtime
        .spec_of(&ContainerId {
            pod_uid: "u1".into(),
            name: "a".into(),
            attempt: 0,
        })
        .unwrap();
    assert_eq!(spec.env["IP"], "127.0.0.1");
    assert_eq!(f.api.reasons()[..3], ["Pulled", "Created", "Started"]);
    assert!(f.api.has_event("Pulled", "already present on machine"));
    // Nothing changed since: no second write of the same status.
    let writes = f.api.statuses.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.api.statuses.lock().unwrap().len(), writes);
    // The log endpoint knows the container.
    assert!(
        matches!(f.ctx.logs.lookup("default", "web", "a"), crate::logs::Lookup::Found(l) if l.running == Some(0))
    );
}

#[tokio::test]
async fn a_missing_image_waits_in_err_image_pull_then_back_off() {
    let f = fixture(Duration::ZERO);
    let p = pod(
        "u2",
        json!({"containers": [{"name": "a", "image": "missing:v9"}]}),
    );
    let handle = spawn(f.ctx.clone(), p.clone(), vec![]);
    eventually("ErrImagePull", || {
        f.api.last_status()["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
    })
    .await;
    let status = f.api.last_status();
    assert_eq!(status["phase"], "Pending");
    assert!(
        status["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("missing:v9")
    );
    assert!(
        f.api
            .has_event("Failed", "Failed to pull image \"missing:v9\"")
    );
    // The next sync, inside the back-off, shows ImagePullBackOff.
    handle.update(p);
    eventually("ImagePullBackOff", || {
        f.api.last_status()["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "ImagePullBackOff"
    })
    .await;
    assert!(
        f.api
            .has_event("BackOff", "Back-off pulling image \"missing:v9\"")
    );
    assert!(
        !f.runtime.calls().iter().any(|c| c.starts_with("start")),
        "no start without the image"
    );
}

#[tokio::test]
async fn a_crashing_container_restarts_at_once_then_backs_off() {
    let f = fixture(Duration::ZERO);
    f.runtime.behave(
        "a",
        Behaviour {
            exit_after: Some(Duration::from_millis(50)),
            exit_code: 2,
            failing_starts: 0,
        },
    );
    let _handle = spawn(
        f.ctx.clone(),
        pod(
            "u3",
            json!({"containers": [{"name": "a", "image": "app:v1"}]}),
        ),
        vec![],
    );
    eventually("CrashLoopBackOff", || {
        f.api.last_status()["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "CrashLoopBackOff"
    })
    .await;
    let status = f.api.last_status();
    let c = &status["containerStatuses"][0];
    // First exit: restarted at once (attempt 1); second exit: back-off 10 s.
    assert_eq!(c["restartCount"], 1);
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 2);
    assert_eq!(c["lastState"]["terminated"]["reason"], "Error");
    assert_eq!(
        c["lastState"]["terminated"]["containerID"],
        "podium://u3/a/1"
    );
    assert!(
        c["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("back-off 10s")
    );
    assert_eq!(status["phase"], "Running");
    assert!(
        f.api
            .has_event("BackOff", "Back-off restarting failed container a")
    );
    let starts: Vec<String> = f
        .runtime
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("start"))
        .collect();
    assert_eq!(starts, ["start u3/a/0", "start u3/a/1"]);
    // The first attempt was removed before the second started.
    assert!(f.runtime.calls().contains(&"remove u3/a/0".to_string()));
}

#[tokio::test]
async fn restart_policy_never_ends_in_succeeded_or_failed() {
    for (code, phase, reason) in [(0, "Succeeded", "Completed"), (3, "Failed", "Error")] {
        let f = fixture(Duration::ZERO);
        f.runtime.behave(
            "job",
            Behaviour {
                exit_after: Some(Duration::from_millis(30)),
                exit_code: code,
                failing_starts: 0,
            },
        );
        let _handle = spawn(
            f.ctx.clone(),
            pod(
                "u4",
                json!({"restartPolicy": "Never", "containers": [{"name": "job", "image": "app:v1"}]}),
            ),
            vec![],
        );
        eventually(phase, || f.api.last_status()["phase"] == phase).await;
        let c = &f.api.last_status()["containerStatuses"][0];
        assert_eq!(c["state"]["terminated"]["exitCode"], code);
        assert_eq!(c["state"]["terminated"]["reason"], reason);
        assert_eq!(c["restartCount"], 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            f.runtime
                .calls()
                .iter()
                .filter(|c| c.starts_with("start"))
                .count(),
            1
        );
    }
}

#[tokio::test]
async fn start_errors_are_reported_and_retried_with_back_off() {
    let f = fixture(Duration::ZERO);
    f.runtime.behave(
        "a",
        Behaviour {
            failing_starts: 1,
            ..Default::default()
        },
    );
    let _handle = spawn(
        f.ctx.clone(),
        pod(
            "u5",
            json!({"containers": [{"name": "a", "image": "app:v1"}]}),
        ),
        vec![],
    );
    eventually("RunContainerError", || {
        f.api.last_status()["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "RunContainerError"
    })
    .await;
    assert!(f.api.has_event("Failed", "mock start failure"));
    assert_eq!(f.api.last_status()["phase"], "Pending");
}

#[tokio::test]
async fn deletion_marks_not_ready_drains_stops_and_finishes() {
    let drain = Duration::from_millis(300);
    let f = fixture(drain);
    let spec = json!({"terminationGracePeriodSeconds": 30, "containers": [{"name": "a", "image": "app:v1"}]});
    let p = pod("u6", spec);
    let handle = spawn(f.ctx.clone(), p.clone(), vec![]);
    eventually("Ready", || {
        f.api.last_status()["conditions"][2]["status"] == "True"
    })
    .await;
    let mut deleting = (*p).clone();
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    );
    deleting.metadata.deletion_grace_period_seconds = Some(5);
    handle.update(Arc::new(deleting));
    eventually("the final delete", || {
        !f.api.deleted.lock().unwrap().is_empty()
    })
    .await;

    let statuses = f.api.statuses.lock().unwrap().clone();
    let (not_ready_at, not_ready) = statuses.last().unwrap();
    assert_eq!(not_ready["conditions"][2]["status"], "False");
    assert_eq!(not_ready["containerStatuses"][0]["ready"], false);
    let stop_at = f.runtime.call_time("stop u6/a/0").unwrap();
    assert!(
        stop_at.duration_since(*not_ready_at) >= drain,
        "containers stop only after the drain delay"
    );
    // The drain counts against the 5 s grace period.
    assert!(
        f.runtime.calls().contains(&"stop u6/a/0 4".to_string()),
        "{:?}",
        f.runtime.calls()
    );
    let removed_at = f.runtime.call_time("remove_sandbox u6").unwrap();
    let (deleted_at, uid) = f.api.deleted.lock().unwrap()[0].clone();
    assert!(stop_at <= removed_at && removed_at <= deleted_at);
    assert_eq!(uid, "u6");
    assert!(f.api.has_event("Killing", "Stopping container a"));
    eventually("the worker to end", || handle.is_finished()).await;
    assert!(matches!(
        f.ctx.logs.lookup("default", "web", "a"),
        crate::logs::Lookup::NoPod
    ));
}

#[tokio::test]
async fn a_pod_gone_from_the_api_is_stopped_without_a_delete() {
    let f = fixture(Duration::from_secs(5));
    let handle = spawn(
        f.ctx.clone(),
        pod(
            "u7",
            json!({"containers": [{"name": "a", "image": "app:v1"}]}),
        ),
        vec![],
    );
    eventually("running", || f.runtime.running().len() == 1).await;
    handle.gone();
    eventually("the worker to end", || handle.is_finished()).await;
    assert!(f.runtime.running().is_empty());
    assert!(f.runtime.calls().contains(&"remove_sandbox u7".to_string()));
    assert!(f.api.deleted.lock().unwrap().is_empty());
}

#[tokio::test]
async fn running_containers_are_adopted_not_restarted() {
    let f = fixture(Duration::ZERO);
    f.runtime.seed("u8", "a", 1, "app:v1", false);
    f.runtime.seed("u8", "a", 2, "app:v1", true);
    let recovered = f.runtime.recover().await.unwrap().containers;
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u8"},
        "spec": {"containers": [{"name": "a", "image": "app:v1"}]},
        "status": {"containerStatuses": [{"name": "a", "image": "app:v1", "imageID": "", "ready": true, "restartCount": 5,
            "lastState": {"terminated": {"exitCode": 1, "startedAt": "2024-01-01T00:00:00Z", "finishedAt": "2024-01-01T00:01:00Z", "containerID": "podium://u8/a/1"}}}]}
    }))
    .unwrap();
    let _handle = spawn(f.ctx.clone(), Arc::new(p), recovered);
    eventually("a status", || f.api.last_status()["phase"] == "Running").await;
    let c = &f.api.last_status()["containerStatuses"][0];
    assert_eq!(
        c["restartCount"], 5,
        "restart count kept from the pod status"
    );
    assert_eq!(c["containerID"], "podium://u8/a/2");
    assert_eq!(c["ready"], true);
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
    let calls = f.runtime.calls();
    assert!(!calls.iter().any(|c| c.starts_with("start")), "{calls:?}");
    assert!(
        calls.contains(&"remove u8/a/1".to_string()),
        "the stale attempt is removed: {calls:?}"
    );
    assert_eq!(f.runtime.running().len(), 1);
}

#[tokio::test]
async fn readiness_follows_the_probe() {
    let f = fixture(Duration::ZERO);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let spec = json!({"containers": [{"name": "a", "image": "app:v1",
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 1}}]});
    let _handle = spawn(f.ctx.clone(), pod("u9", spec), vec![]);
    eventually("ready", || {
        f.api.last_status()["containerStatuses"][0]["ready"] == true
    })
    .await;
    assert_eq!(f.api.last_status()["conditions"][2]["status"], "True");
    drop(listener);
    eventually("not ready", || {
        f.api.last_status()["containerStatuses"][0]["ready"] == false
    })
    .await;
    assert_eq!(f.api.last_status()["conditions"][2]["status"], "False");
    assert!(f.api.has_event("Unhealthy", "Readiness probe failed"));
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container() {
    let f = fixture(Duration::ZERO);
    // Nothing listens on the port the probe checks.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = json!({"terminationGracePeriodSeconds": 2, "containers": [{"name": "a", "image": "app:v1",
        "livenessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 1}}]});
    let _handle = spawn(f.ctx.clone(), pod("u10", spec), vec![]);
    eventually("a restart", || {
        f.api.last_status()["containerStatuses"][0]["restartCount"] == 1
    })
    .await;
    assert!(
        f.api
            .has_event("Killing", "failed liveness probe, will be restarted")
    );
    assert!(f.runtime.calls().contains(&"stop u10/a/0 2".to_string()));
    assert_eq!(
        f.api.last_status()["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        143
    );
}

#[tokio::test]
async fn an_image_change_restarts_the_container() {
    let f = fixture(Duration::ZERO);
    f.runtime.add_image("app:v2");
    let p = pod(
        "u11",
        json!({"containers": [{"name": "a", "image": "app:v1"}]}),
    );
    let handle = spawn(f.ctx.clone(), p.clone(), vec![]);
    eventually("running", || {
        f.api.last_status()["containerStatuses"][0]["started"] == true
    })
    .await;
    let mut changed = (*p).clone();
    if let Some(spec) = changed.spec.as_mut() {
        spec.containers[0].image = Some("app:v2".into());
    }
    handle.update(Arc::new(changed));
    eventually("the new image", || {
        f.api.last_status()["containerStatuses"][0]["image"] == "app:v2"
            && f.api.last_status()["containerStatuses"][0]["started"] == true
    })
    .await;
    assert!(f.api.has_event("Killing", "definition changed"));
    assert!(f.runtime.calls().contains(&"start u11/a/1".to_string()));
}
