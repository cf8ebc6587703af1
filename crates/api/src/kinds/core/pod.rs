//! Pods (`v1`): upstream's `pkg/registry/core/pod`, `SetDefaults_Pod`, `ValidatePod` and
//! `printPod`. The pod spec helpers here also serve every kind with a pod template.

use serde_json::{Map, Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::{DNS_LABEL_MESSAGE, is_dns_label, port_in_range, set_default};
use crate::table::{
    AGE, Column, Doc, NAME, age_of, arr, col, condition_true, later, n, or_none, s, since,
    timestamp,
};

pub struct Pod;

impl Kind for Pod {
    /// Upstream's registry sets `ReturnDeletedObject: true` for this kind.
    fn returns_deleted_object(&self) -> bool {
        true
    }

    typed_as!(k8s_openapi::api::core::v1::Pod);

    fn quantity_maps<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        pod_spec_quantity_maps(object.get("spec"))
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        let qos = qos_class(object.get("spec").unwrap_or(&Value::Null));
        object.insert(
            "status".into(),
            json!({"phase": "Pending", "qosClass": qos}),
        );
    }

    fn apply_defaults(&self, object: &mut Value) {
        if let Some(spec) = object.get_mut("spec") {
            default_pod_spec(spec);
        }
    }

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        validate_pod_spec(object.get("spec"), "spec", causes);
        let Some(old) = old else {
            return;
        };
        // Pod specs are immutable but for a few fields; the agent relies on it.
        let strip = |v: &Value| {
            let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
            if let Some(m) = s.as_object_mut() {
                // nodeName is set once, by the binding.
                for mutable in [
                    "activeDeadlineSeconds",
                    "tolerations",
                    "terminationGracePeriodSeconds",
                    "nodeName",
                ] {
                    m.remove(mutable);
                }
                if let Some(cs) = m.get_mut("containers").and_then(Value::as_array_mut) {
                    cs.iter_mut()
                        .filter_map(Value::as_object_mut)
                        .for_each(|c| {
                            c.remove("image");
                        });
                }
            }
            s
        };
        let old_node = old
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !old_node.is_empty()
            && object.pointer("/spec/nodeName").and_then(Value::as_str) != Some(old_node)
        {
            causes.push(cause(
                "FieldValueForbidden",
                "spec.nodeName",
                "Forbidden: a pod's node cannot change once it is bound",
            ));
        }
        if strip(old) != strip(object) {
            causes.push(cause("FieldValueForbidden", "spec", "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations) or `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
        }
    }

    fn columns(&self) -> &[Column] {
        POD
    }

    fn row(&self, object: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        pod_row(object, now)
    }
}

/// Where a pod spec holds resource quantities: each container's limits and requests.
pub(crate) fn pod_spec_quantity_maps(pod_spec: Option<&Value>) -> Vec<&Value> {
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|list| pod_spec?.get(list)?.as_array())
        .flatten();
    containers
        .flat_map(|c| ["/resources/limits", "/resources/requests"].map(|p| c.pointer(p)))
        .flatten()
        .collect()
}

/// Pod QoS class from requests and limits (upstream `GetPodQOS`, simplified to
/// cpu and memory on regular containers).
pub fn qos_class(spec: &Value) -> &'static str {
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        any |= requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty());
        for res in ["cpu", "memory"] {
            let quantity = |q: Option<&Value>| crate::quantity::Quantity::parse(q?.as_str()?);
            let limit = quantity(limits.and_then(|l| l.get(res)));
            let request = quantity(requests.and_then(|r| r.get(res))).or(limit);
            // Equal in value, however written: `1Gi` and `1073741824` are the same.
            if !limit.is_some_and(|l| request.is_some_and(|r| r.same_value(&l))) {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn default_probe(probe: &mut Value) {
    if let Some(p) = probe.as_object_mut() {
        set_default(p, "timeoutSeconds", json!(1));
        set_default(p, "periodSeconds", json!(10));
        set_default(p, "successThreshold", json!(1));
        set_default(p, "failureThreshold", json!(3));
        if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
            set_default(h, "path", json!("/"));
            set_default(h, "scheme", json!("HTTP"));
        }
    }
}

fn default_container(container: &mut Value) {
    let Some(c) = container.as_object_mut() else {
        return;
    };
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    let tag_is_latest = {
        let without_digest = image.split('@').next().unwrap_or("");
        let last = without_digest.rsplit('/').next().unwrap_or("");
        !image.contains('@') && last.split_once(':').is_none_or(|(_, tag)| tag == "latest")
    };
    set_default(
        c,
        "imagePullPolicy",
        json!(if tag_is_latest {
            "Always"
        } else {
            "IfNotPresent"
        }),
    );
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(port, "protocol", json!("TCP"));
        }
    }
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe) {
            default_probe(p);
        }
    }
}

pub(crate) fn default_pod_spec(spec: &mut Value) {
    let Some(s) = spec.as_object_mut() else {
        return;
    };
    set_default(s, "restartPolicy", json!("Always"));
    set_default(s, "terminationGracePeriodSeconds", json!(30));
    set_default(s, "dnsPolicy", json!("ClusterFirst"));
    set_default(s, "schedulerName", json!("default-scheduler"));
    set_default(s, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        if let Some(containers) = s.get_mut(list).and_then(Value::as_array_mut) {
            containers.iter_mut().for_each(default_container);
        }
    }
}

/// Defaults of the pod template at `spec.template` (Deployments, ReplicaSets...).
pub(crate) fn default_template(object: &mut Value) {
    if let Some(spec) = object.pointer_mut("/spec/template/spec") {
        default_pod_spec(spec);
    }
}

pub(crate) fn validate_pod_spec(spec: Option<&Value>, base: &str, causes: &mut Vec<Cause>) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        causes.push(cause(
            "FieldValueRequired",
            &format!("{base}.containers"),
            "Required value",
        ));
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            causes.push(cause(
                "FieldValueRequired",
                &format!("{base}.containers[{i}].name"),
                "Required value",
            ));
        } else if !is_dns_label(name) {
            causes.push(cause(
                "FieldValueInvalid",
                &format!("{base}.containers[{i}].name"),
                format!("Invalid value: {name:?}: {DNS_LABEL_MESSAGE}"),
            ));
        } else if !seen.insert(name.to_string()) {
            causes.push(cause(
                "FieldValueDuplicate",
                &format!("{base}.containers[{i}].name"),
                format!("Duplicate value: {name:?}"),
            ));
        }
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            causes.push(cause(
                "FieldValueRequired",
                &format!("{base}.containers[{i}].image"),
                "Required value",
            ));
        }
        for (j, p) in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let port = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
            port_in_range(
                port,
                &format!("{base}.containers[{i}].ports[{j}].containerPort"),
                causes,
            );
        }
    }
}

const POD: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        0,
        Doc::Text("The aggregate readiness state of this pod for accepting traffic."),
    ),
    col(
        "Status",
        "string",
        0,
        Doc::Text("The aggregate status of the containers in this pod."),
    ),
    col(
        "Restarts",
        "string",
        0,
        Doc::Text(
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
    ),
    AGE,
    col(
        "IP",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.PodStatus", "podIP"),
    ),
    col(
        "Node",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.PodSpec", "nodeName"),
    ),
    col(
        "Nominated Node",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.PodStatus", "nominatedNodeName"),
    ),
    col(
        "Readiness Gates",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.PodSpec", "readinessGates"),
    ),
];

fn terminated_reason(terminated: &Value, prefix: &str) -> String {
    let reason = s(terminated, "/reason");
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    match n(terminated, "/signal") {
        0 => format!("{prefix}ExitCode:{}", n(terminated, "/exitCode")),
        signal => format!("{prefix}Signal:{signal}"),
    }
}

/// Upstream's `printPod`: the cells and the row conditions of a finished pod.
fn pod_row(pod: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
    let phase = s(pod, "/status/phase");
    let mut reason = if s(pod, "/status/reason").is_empty() {
        phase.to_string()
    } else {
        s(pod, "/status/reason").to_string()
    };
    let conditions = arr(pod, "/status/conditions");
    if conditions
        .iter()
        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let row_conditions = match phase {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    };

    // Sidecars: init containers with `restartPolicy: Always` run for the pod's life.
    let init_specs = arr(pod, "/spec/initContainers");
    let restartable = |name: &Value| {
        init_specs
            .iter()
            .any(|c| &c["name"] == name && c["restartPolicy"] == "Always")
    };
    let total = arr(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| c["restartPolicy"] == "Always")
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart = None;
    let mut last_sidecar_restart = None;
    let finished = |c: &Value| {
        timestamp(
            c.pointer("/lastState/terminated/finishedAt")
                .and_then(Value::as_str),
        )
    };

    let mut initializing = false;
    for (i, c) in arr(pod, "/status/initContainerStatuses").iter().enumerate() {
        restarts += n(c, "/restartCount");
        last_restart = later(last_restart, finished(c));
        let is_sidecar = restartable(&c["name"]);
        if is_sidecar {
            sidecar_restarts += n(c, "/restartCount");
            last_sidecar_restart = later(last_sidecar_restart, finished(c));
        }
        let terminated = c.pointer("/state/terminated");
        let waiting_reason = s(c, "/state/waiting/reason");
        if terminated.is_some_and(|t| n(t, "/exitCode") == 0) {
            continue;
        }
        if is_sidecar && c["started"].as_bool() == Some(true) {
            if c["ready"].as_bool() == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            terminated_reason(t, "Init:")
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += n(c, "/restartCount");
            last_restart = later(last_restart, finished(c));
            let waiting_reason = s(c, "/state/waiting/reason");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = c.pointer("/state/terminated") {
                reason = terminated_reason(t, "");
            } else if c["ready"].as_bool() == Some(true) && c.pointer("/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        if s(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };
    let gates = arr(pod, "/spec/readinessGates");
    let gates_text = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let passing = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| c["type"] == g["conditionType"])
                    .is_some_and(|c| c["status"] == "True")
            })
            .count();
        format!("{passing}/{}", gates.len())
    };
    let cells = vec![
        json!(s(pod, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_text),
        json!(age_of(
            pod.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str),
            now
        )),
        json!(or_none(s(pod, "/status/podIPs/0/ip").to_string())),
        json!(or_none(s(pod, "/spec/nodeName").to_string())),
        json!(or_none(s(pod, "/status/nominatedNodeName").to_string())),
        json!(gates_text),
    ];
    (cells, row_conditions)
}

/// Defaults of the pod spec at `pointer` (`/spec/jobTemplate/spec/template/spec`...).
pub(crate) fn default_pod_spec_at(object: &mut Value, pointer: &str) {
    if let Some(spec) = object.pointer_mut(pointer) {
        default_pod_spec(spec);
    }
}

/// Check the pod template at `pointer` (`/spec/template`): its labels and its pod spec,
/// with field paths from the object root.
pub(crate) fn validate_template_at(object: &Value, pointer: &str, causes: &mut Vec<Cause>) {
    crate::strategy::label_problems(object, &format!("{pointer}/metadata/labels"), causes);
    let base = crate::strategy::field_path(pointer);
    validate_pod_spec(
        object.pointer(&format!("{pointer}/spec")),
        &format!("{base}.spec"),
        causes,
    );
}
