//! Pod status from what the worker knows of its containers: phase, conditions, QoS class
//! and container statuses as the kubelet reports them. Pure, so it is tested on its own.

use k8s_openapi::api::core::v1::{Container, Pod, PodCondition};
use podium_api::quantity::Quantity;
use podium_runtime::ExitStatus;
use serde_json::{Value, json};

use crate::plan::{ContainerPhase, ContainerRecord, Terminated};

/// RFC 3339 with whole seconds, as `metav1.Time` serializes.
pub fn timestamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The container ID the status shows for one attempt: `podium://<uid>/<name>/<attempt>`.
pub fn container_id(pod_uid: &str, name: &str, attempt: u32) -> String {
    format!("podium://{pod_uid}/{name}/{attempt}")
}

/// The `reason` of a terminated state.
pub fn termination_reason(exit: &ExitStatus) -> &'static str {
    if exit.oom_killed {
        "OOMKilled"
    } else if exit.code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

fn terminated_state(t: &Terminated, pod_uid: &str, name: &str) -> Value {
    let mut state = json!({
        "exitCode": t.exit.code,
        "reason": termination_reason(&t.exit),
        "startedAt": timestamp(t.started_at),
        "finishedAt": timestamp(t.exit.finished_at),
        "containerID": container_id(pod_uid, name, t.attempt),
    });
    if let Some(signal) = t.exit.signal {
        state["signal"] = json!(signal);
    }
    state
}

/// The pod phase: upstream kubelet's `getPhase` for regular containers. `records` must
/// hold one entry per spec container.
pub fn phase(restart_policy: &str, records: &[ContainerRecord]) -> &'static str {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for record in records {
        match &record.phase {
            ContainerPhase::Running { .. } => running += 1,
            ContainerPhase::Terminated(t) => {
                stopped += 1;
                if t.exit.code == 0 {
                    succeeded += 1;
                }
            }
            ContainerPhase::Waiting { .. } if record.last.is_some() => stopped += 1,
            ContainerPhase::Waiting { .. } => waiting += 1,
        }
    }
    if records.is_empty() || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == records.len() {
        return match restart_policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        };
    }
    "Pending"
}

fn has_any(container: &Container, resource: &str) -> bool {
    let r = container.resources.as_ref();
    r.and_then(|r| r.requests.as_ref())
        .is_some_and(|m| m.contains_key(resource))
        || r.and_then(|r| r.limits.as_ref())
            .is_some_and(|m| m.contains_key(resource))
}

/// The QoS class (upstream `GetPodQOS`): BestEffort without any CPU or memory request or
/// limit, Guaranteed when every container limits both and requests (if given) equal the
/// limits, Burstable otherwise.
pub fn qos_class(containers: &[Container]) -> &'static str {
    if !containers
        .iter()
        .any(|c| has_any(c, "cpu") || has_any(c, "memory"))
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        ["cpu", "memory"].iter().all(|resource| {
            let Some(limit) = limits
                .and_then(|l| l.get(*resource))
                .and_then(|q| Quantity::parse(&q.0))
            else {
                return false;
            };
            match requests.and_then(|r| r.get(*resource)) {
                Some(request) => Quantity::parse(&request.0).is_some_and(|r| r.same_value(&limit)),
                None => true,
            }
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Everything besides the pod that the status depends on.
#[derive(Debug, Clone)]
pub struct StatusInputs<'a> {
    /// One record per spec container, in spec order.
    pub records: &'a [ContainerRecord],
    pub pod_ip: Option<&'a str>,
    pub host_ip: &'a str,
    pub start_time: jiff::Timestamp,
    pub sandbox_ready: bool,
    /// Conditions as last written (or as the pod shows them): their transition times are
    /// kept while their status stays the same.
    pub previous_conditions: &'a [PodCondition],
    pub now: jiff::Timestamp,
}

fn container_status(pod_uid: &str, record: &ContainerRecord) -> Value {
    let state = match &record.phase {
        ContainerPhase::Waiting { reason, message } => {
            let mut waiting = json!({"reason": reason});
            if !message.is_empty() {
                waiting["message"] = json!(message);
            }
            json!({"waiting": waiting})
        }
        ContainerPhase::Running { started_at } => {
            json!({"running": {"startedAt": timestamp(*started_at)}})
        }
        ContainerPhase::Terminated(t) => {
            json!({"terminated": terminated_state(t, pod_uid, &record.name)})
        }
    };
    let last = match &record.last {
        Some(t) => json!({"terminated": terminated_state(t, pod_uid, &record.name)}),
        None => json!({}),
    };
    let running = record.is_running();
    let mut status = json!({
        "name": record.name,
        "image": record.image,
        "imageID": record.image_id,
        "ready": running && record.ready,
        "started": running,
        "restartCount": record.restart_count,
        "state": state,
        "lastState": last,
    });
    let current = match &record.phase {
        ContainerPhase::Terminated(t) => Some(t.attempt),
        ContainerPhase::Running { .. } => record.attempt,
        ContainerPhase::Waiting { .. } => None,
    };
    if let Some(attempt) = current {
        status["containerID"] = json!(container_id(pod_uid, &record.name, attempt));
    }
    status
}

/// The status to write through `pods/<name>/status`.
pub fn compute(pod: &Pod, inputs: &StatusInputs<'_>) -> Value {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let restart_policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let now = timestamp(inputs.now);
    let condition = |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let transition = inputs
            .previous_conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| timestamp(t.0))
            .unwrap_or_else(|| now.clone());
        let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": transition});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        if let Some(m) = message {
            c["message"] = json!(m);
        }
        c
    };
    let phase = phase(&restart_policy, inputs.records);
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let unready: Vec<&str> = inputs
        .records
        .iter()
        .filter(|r| !(r.ready && r.is_running()))
        .map(|r| r.name.as_str())
        .collect();
    let containers_ready = !inputs.records.is_empty()
        && unready.is_empty()
        && pod.metadata.deletion_timestamp.is_none();
    let (not_ready_reason, not_ready_message) = if terminal {
        (Some("PodCompleted"), None)
    } else if containers_ready {
        (None, None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    // Readiness gates: Ready also waits for the conditions other controllers own.
    let pod_conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    let gates_open = spec.readiness_gates.iter().flatten().all(|gate| {
        pod_conditions.is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == gate.condition_type && c.status == "True")
        })
    });
    let ready = containers_ready && gates_open;
    let mut status = json!({
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", inputs.sandbox_ready, None, None),
            condition("Initialized", true, None, None),
            condition("Ready", ready, if ready { None } else { not_ready_reason.or(Some("ReadinessGatesNotReady")) }, if ready { None } else { not_ready_message.clone() }),
            condition("ContainersReady", containers_ready, not_ready_reason, not_ready_message),
            condition("PodScheduled", true, None, None),
        ],
        "hostIP": inputs.host_ip,
        "hostIPs": [{"ip": inputs.host_ip}],
        "startTime": timestamp(inputs.start_time),
        "containerStatuses": inputs.records.iter().map(|r| container_status(&uid, r)).collect::<Vec<_>>(),
        "qosClass": pod.status.as_ref().and_then(|s| s.qos_class.clone()).unwrap_or_else(|| qos_class(&spec.containers).to_string()),
    });
    // Conditions other writers own (readiness gates, DisruptionTarget) are kept as they are.
    const OURS: [&str; 5] = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    if let (Some(list), Some(foreign)) = (status["conditions"].as_array_mut(), pod_conditions) {
        for c in foreign.iter().filter(|c| !OURS.contains(&c.type_.as_str())) {
            if let Ok(value) = serde_json::to_value(c) {
                list.push(value);
            }
        }
    }
    if let Some(ip) = inputs.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;

    fn t(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn exit(code: i32) -> ExitStatus {
        ExitStatus {
            code,
            signal: None,
            oom_killed: false,
            finished_at: t(5),
        }
    }

    fn record(phase: ContainerPhase) -> ContainerRecord {
        let mut r = ContainerRecord::new("c", "app:v1");
        r.attempt = Some(1);
        r.image_id = "sha256:abc".into();
        r.phase = phase;
        r
    }

    fn terminated(code: i32) -> ContainerPhase {
        ContainerPhase::Terminated(Terminated {
            started_at: t(0),
            exit: exit(code),
            attempt: 1,
        })
    }

    fn pod(extra_spec: Value) -> Pod {
        let mut spec = json!({"containers": [{"name": "c", "image": "app:v1"}]});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
            s.extend(e.clone());
        }
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "default", "uid": "u1"}, "spec": spec}),
        )
        .unwrap()
    }

    fn inputs<'a>(
        records: &'a [ContainerRecord],
        previous: &'a [PodCondition],
    ) -> StatusInputs<'a> {
        StatusInputs {
            records,
            pod_ip: Some("10.42.0.2"),
            host_ip: "192.0.2.1",
            start_time: t(0),
            sandbox_ready: true,
            previous_conditions: previous,
            now: t(10),
        }
    }

    #[test]
    fn phases_follow_get_phase() {
        let waiting = ContainerPhase::Waiting {
            reason: "ErrImagePull".into(),
            message: String::new(),
        };
        let mut crash_looping = record(ContainerPhase::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: String::new(),
        });
        crash_looping.last = Some(Terminated {
            started_at: t(0),
            exit: exit(1),
            attempt: 0,
        });
        assert_eq!(phase("Always", &[record(waiting.clone())]), "Pending");
        assert_eq!(phase("Always", &[crash_looping.clone()]), "Running");
        assert_eq!(phase("OnFailure", &[crash_looping]), "Running");
        assert_eq!(
            phase(
                "Always",
                &[record(ContainerPhase::Running { started_at: t(0) })]
            ),
            "Running"
        );
        assert_eq!(
            phase(
                "Always",
                &[
                    record(ContainerPhase::Running { started_at: t(0) }),
                    record(waiting)
                ]
            ),
            "Pending"
        );
        assert_eq!(phase("Never", &[record(terminated(0))]), "Succeeded");
        assert_eq!(phase("Never", &[record(terminated(1))]), "Failed");
        assert_eq!(phase("OnFailure", &[record(terminated(0))]), "Succeeded");
        assert_eq!(phase("OnFailure", &[record(terminated(1))]), "Running");
        assert_eq!(phase("Always", &[record(terminated(0))]), "Running");
        assert_eq!(
            phase(
                "Never",
                &[
                    record(terminated(0)),
                    record(ContainerPhase::Running { started_at: t(0) })
                ]
            ),
            "Running"
        );
        assert_eq!(phase("Always", &[]), "Pending");
    }

    #[test]
    fn qos_classes() {
        let containers = |v: Value| -> Vec<Container> { serde_json::from_value(v).unwrap() };
        assert_eq!(qos_class(&containers(json!([{"name": "a"}]))), "BestEffort");
        assert_eq!(
            qos_class(&containers(
                json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}])
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&containers(
                json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}}])
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&containers(
                json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}])
            )),
            "Burstable"
        );
        assert_eq!(
            qos_class(&containers(
                json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}, {"name": "b"}])
            )),
            "Burstable"
        );
    }

    #[test]
    fn status_has_what_kubectl_and_the_python_client_need() {
        let mut r = record(ContainerPhase::Running { started_at: t(0) });
        r.ready = true;
        r.restart_count = 1;
        r.last = Some(Terminated {
            started_at: t(0),
            exit: ExitStatus {
                code: 137,
                signal: Some(9),
                oom_killed: true,
                finished_at: t(1),
            },
            attempt: 0,
        });
        let s = compute(&pod(json!({})), &inputs(std::slice::from_ref(&r), &[]));
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.42.0.2");
        assert_eq!(s["podIPs"][0]["ip"], "10.42.0.2");
        assert_eq!(s["hostIP"], "192.0.2.1");
        assert_eq!(s["qosClass"], "BestEffort");
        let c = &s["containerStatuses"][0];
        for field in ["name", "image", "imageID", "ready", "restartCount"] {
            assert!(c.get(field).is_some(), "{field}");
        }
        assert_eq!(c["ready"], true);
        assert_eq!(c["started"], true);
        assert_eq!(c["containerID"], "podium://u1/c/1");
        assert_eq!(c["lastState"]["terminated"]["reason"], "OOMKilled");
        assert_eq!(c["lastState"]["terminated"]["signal"], 9);
        assert_eq!(
            c["lastState"]["terminated"]["containerID"],
            "podium://u1/c/0"
        );
        let types: Vec<&str> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ]
        );
        assert_eq!(s["conditions"][2]["status"], "True");
        // The typed clients must be able to read it back.
        let typed: PodStatus = serde_json::from_value(s).unwrap();
        assert_eq!(typed.container_statuses.unwrap()[0].restart_count, 1);
    }

    #[test]
    fn unready_containers_and_deletion_clear_ready() {
        let r = record(ContainerPhase::Running { started_at: t(0) });
        let s = compute(&pod(json!({})), &inputs(std::slice::from_ref(&r), &[]));
        assert_eq!(s["conditions"][2]["status"], "False");
        assert_eq!(s["conditions"][2]["reason"], "ContainersNotReady");
        assert_eq!(
            s["conditions"][2]["message"],
            "containers with unready status: [c]"
        );
        let mut ready = r.clone();
        ready.ready = true;
        let mut deleting = pod(json!({}));
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(9)));
        let s = compute(&deleting, &inputs(std::slice::from_ref(&ready), &[]));
        assert_eq!(s["conditions"][2]["status"], "False");
        assert_eq!(s["containerStatuses"][0]["ready"], true);
    }

    #[test]
    fn readiness_gates_hold_ready_back() {
        let mut r = record(ContainerPhase::Running { started_at: t(0) });
        r.ready = true;
        let gated = pod(json!({"readinessGates": [{"conditionType": "example.com/lb"}]}));
        let s = compute(&gated, &inputs(std::slice::from_ref(&r), &[]));
        assert_eq!(s["conditions"][2]["status"], "False");
        assert_eq!(s["conditions"][3]["status"], "True");
        let mut opened = gated.clone();
        opened.status = Some(
            serde_json::from_value(
                json!({"conditions": [{"type": "example.com/lb", "status": "True"}]}),
            )
            .unwrap(),
        );
        let s = compute(&opened, &inputs(std::slice::from_ref(&r), &[]));
        assert_eq!(s["conditions"][2]["status"], "True");
        assert_eq!(
            s["conditions"][5]["type"], "example.com/lb",
            "foreign conditions are kept"
        );
    }

    #[test]
    fn transition_times_stay_while_the_status_does() {
        let r = record(terminated(0));
        let previous: Vec<PodCondition> =
            serde_json::from_value(json!([{"type": "Initialized", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}, {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}])).unwrap();
        let s = compute(
            &pod(json!({"restartPolicy": "Never"})),
            &inputs(std::slice::from_ref(&r), &previous),
        );
        assert_eq!(s["phase"], "Succeeded");
        assert_eq!(
            s["conditions"][1]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        // Ready flipped to False: a new transition time.
        assert_eq!(s["conditions"][2]["lastTransitionTime"], timestamp(t(10)));
        assert_eq!(s["conditions"][2]["reason"], "PodCompleted");
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert!(s["containerStatuses"][0].get("containerID").is_some());
    }
}
