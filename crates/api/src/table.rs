//! `meta.k8s.io/v1` Table rendering: the columns `kubectl get` prints, computed on the
//! server as upstream's `pkg/printers/internalversion/printers.go` does.

use serde_json::{Value, json};

use crate::resource::ResourceInfo;

/// `?includeObject=`: what each row carries besides its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

/// apimachinery's `duration.HumanDuration`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < 0 {
        return "<invalid>".into();
    }
    let s = seconds;
    if s < 60 * 2 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 10 {
        let rem = s % 60;
        return if rem == 0 { format!("{minutes}m") } else { format!("{minutes}m{rem}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = s / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{days}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(ts: Option<&str>, now: jiff::Timestamp) -> String {
    match ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(now.duration_since(t).as_secs()),
        None => "<unknown>".into(),
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn n(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn none_if_empty(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

struct Column(&'static str, &'static str, i32);

fn selector_text(selector: &Value) -> String {
    let mut parts: Vec<String> = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    for e in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let values: Vec<&str> = e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        parts.push(match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    none_if_empty(parts.join(","))
}

fn map_selector_text(selector: Option<&Value>) -> String {
    let parts: Vec<String> = selector
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    none_if_empty(parts.join(","))
}

/// Pod STATUS as upstream's `printPod` computes it.
fn pod_status(pod: &Value) -> String {
    let mut reason = s(pod, "/status/phase").to_string();
    if !s(pod, "/status/reason").is_empty() {
        reason = s(pod, "/status/reason").to_string();
    }
    let init = arr(pod, "/status/initContainerStatuses");
    let mut initializing = false;
    for (i, c) in init.iter().enumerate() {
        if let Some(t) = c.pointer("/state/terminated") {
            if t["exitCode"].as_i64() == Some(0) {
                continue;
            }
            reason = if !s(t, "/reason").is_empty() {
                format!("Init:{}", s(t, "/reason"))
            } else if t["signal"].as_i64().unwrap_or(0) != 0 {
                format!("Init:Signal:{}", t["signal"])
            } else {
                format!("Init:ExitCode:{}", t["exitCode"])
            };
            initializing = true;
        } else if c.pointer("/state/waiting/reason").and_then(Value::as_str).is_some_and(|r| r != "PodInitializing") {
            reason = format!("Init:{}", s(c, "/state/waiting/reason"));
            initializing = true;
        } else {
            reason = format!("Init:{i}/{}", arr(pod, "/spec/initContainers").len());
            initializing = true;
        }
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str).filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if let Some(t) = c.pointer("/state/terminated") {
                reason = if !s(t, "/reason").is_empty() {
                    s(t, "/reason").to_string()
                } else if t["signal"].as_i64().unwrap_or(0) != 0 {
                    format!("Signal:{}", t["signal"])
                } else {
                    format!("ExitCode:{}", t["exitCode"])
                };
            } else if c.pointer("/state/running").is_some() && c["ready"].as_bool() == Some(true) {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            let ready = arr(pod, "/status/conditions").iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
            reason = if ready { "Running".into() } else { "NotReady".into() };
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = if s(pod, "/status/reason") == "NodeLost" { "Unknown".into() } else { "Terminating".into() };
    }
    if reason.is_empty() { "Pending".into() } else { reason }
}

fn pod_row(pod: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let statuses = arr(pod, "/status/containerStatuses");
    let total = arr(pod, "/spec/containers").len();
    let ready = statuses.iter().filter(|c| c["ready"].as_bool() == Some(true)).count();
    let restarts: i64 = statuses.iter().map(|c| c["restartCount"].as_i64().unwrap_or(0)).sum();
    let last_restart = statuses.iter().filter_map(|c| c.pointer("/lastState/terminated/finishedAt").and_then(Value::as_str)).max();
    let restarts_text = match last_restart {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", age(Some(t), now)),
        _ => restarts.to_string(),
    };
    let ip = none_if_empty(s(pod, "/status/podIP").to_string());
    let node = none_if_empty(s(pod, "/spec/nodeName").to_string());
    let nominated = none_if_empty(s(pod, "/status/nominatedNodeName").to_string());
    let gates = arr(pod, "/spec/readinessGates");
    let gates_text = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_gates = gates
            .iter()
            .filter(|g| arr(pod, "/status/conditions").iter().any(|c| c["type"] == g["conditionType"] && c["status"] == "True"))
            .count();
        format!("{true_gates}/{}", gates.len())
    };
    vec![
        json!(s(pod, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(pod_status(pod)),
        json!(restarts_text),
        json!(age(pod.pointer("/metadata/creationTimestamp").and_then(Value::as_str), now)),
        json!(ip),
        json!(node),
        json!(nominated),
        json!(gates_text),
    ]
}

fn containers_and_images(template_spec: Option<&Value>) -> (String, String) {
    let containers = template_spec.and_then(|s| s.get("containers")).and_then(Value::as_array).cloned().unwrap_or_default();
    let names: Vec<&str> = containers.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = containers.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

fn service_external_ip(svc: &Value) -> String {
    let ingress: Vec<String> = arr(svc, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()).map(str::to_string))
        .collect();
    let external: Vec<String> = arr(svc, "/spec/externalIPs").iter().filter_map(|i| i.as_str().map(str::to_string)).collect();
    match s(svc, "/spec/type") {
        "ClusterIP" | "" | "NodePort" => none_if_empty(external.join(",")),
        "LoadBalancer" => {
            let all: Vec<String> = ingress.into_iter().chain(external).collect();
            if all.is_empty() { "<pending>".into() } else { all.join(",") }
        }
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(np) if np != 0 => format!("{}:{np}/{proto}", p["port"]),
                _ => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    none_if_empty(ports.join(","))
}

fn endpoints_text(ep: &Value) -> String {
    let mut list = Vec::new();
    for subset in arr(ep, "/subsets") {
        let ports = subset["ports"].as_array().cloned().unwrap_or_default();
        for addr in subset["addresses"].as_array().into_iter().flatten() {
            let ip = addr["ip"].as_str().unwrap_or("");
            if ports.is_empty() {
                list.push(ip.to_string());
            }
            for p in &ports {
                list.push(format!("{ip}:{}", p["port"]));
            }
        }
    }
    let total = list.len();
    if total == 0 {
        return "<none>".into();
    }
    if total > 3 {
        return format!("{} + {} more...", list[..3].join(","), total - 3);
    }
    list.join(",")
}

fn node_status(node: &Value) -> String {
    let ready = arr(node, "/status/conditions").iter().find(|c| c["type"] == "Ready");
    let mut status = match ready.and_then(|c| c["status"].as_str()) {
        Some("True") => "Ready".to_string(),
        _ => "NotReady".to_string(),
    };
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn node_roles(node: &Value) -> String {
    let roles: Vec<String> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            k.strip_prefix("node-role.kubernetes.io/").map(str::to_string).or_else(|| (k == "kubernetes.io/role").then(|| v.as_str().unwrap_or("").to_string()))
        })
        .collect();
    none_if_empty(roles.join(","))
}

fn columns_and_row(resource: &ResourceInfo, o: &Value, now: jiff::Timestamp) -> (Vec<Column>, Vec<Value>) {
    let name = json!(s(o, "/metadata/name"));
    let created = age(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str), now);
    match resource.kind {
        "Pod" => (
            vec![
                Column("Name", "string", 0),
                Column("Ready", "string", 0),
                Column("Status", "string", 0),
                Column("Restarts", "string", 0),
                Column("Age", "string", 0),
                Column("IP", "string", 1),
                Column("Node", "string", 1),
                Column("Nominated Node", "string", 1),
                Column("Readiness Gates", "string", 1),
            ],
            pod_row(o, now),
        ),
        "Deployment" => {
            let (c, i) = containers_and_images(o.pointer("/spec/template/spec"));
            (
                vec![
                    Column("Name", "string", 0),
                    Column("Ready", "string", 0),
                    Column("Up-to-date", "integer", 0),
                    Column("Available", "integer", 0),
                    Column("Age", "string", 0),
                    Column("Containers", "string", 1),
                    Column("Images", "string", 1),
                    Column("Selector", "string", 1),
                ],
                vec![
                    name,
                    json!(format!("{}/{}", n(o, "/status/readyReplicas"), n(o, "/spec/replicas"))),
                    json!(n(o, "/status/updatedReplicas")),
                    json!(n(o, "/status/availableReplicas")),
                    json!(created),
                    json!(c),
                    json!(i),
                    json!(selector_text(o.pointer("/spec/selector").unwrap_or(&Value::Null))),
                ],
            )
        }
        "ReplicaSet" => {
            let (c, i) = containers_and_images(o.pointer("/spec/template/spec"));
            (
                vec![
                    Column("Name", "string", 0),
                    Column("Desired", "integer", 0),
                    Column("Current", "integer", 0),
                    Column("Ready", "integer", 0),
                    Column("Age", "string", 0),
                    Column("Containers", "string", 1),
                    Column("Images", "string", 1),
                    Column("Selector", "string", 1),
                ],
                vec![
                    name,
                    json!(n(o, "/spec/replicas")),
                    json!(n(o, "/status/replicas")),
                    json!(n(o, "/status/readyReplicas")),
                    json!(created),
                    json!(c),
                    json!(i),
                    json!(selector_text(o.pointer("/spec/selector").unwrap_or(&Value::Null))),
                ],
            )
        }
        "Service" => (
            vec![
                Column("Name", "string", 0),
                Column("Type", "string", 0),
                Column("Cluster-IP", "string", 0),
                Column("External-IP", "string", 0),
                Column("Port(s)", "string", 0),
                Column("Age", "string", 0),
                Column("Selector", "string", 1),
            ],
            vec![
                name,
                json!(if s(o, "/spec/type").is_empty() { "ClusterIP" } else { s(o, "/spec/type") }),
                json!(none_if_empty(s(o, "/spec/clusterIP").to_string())),
                json!(service_external_ip(o)),
                json!(service_ports(o)),
                json!(created),
                json!(map_selector_text(o.pointer("/spec/selector"))),
            ],
        ),
        "Node" => {
            let internal = arr(o, "/status/addresses").iter().find(|a| a["type"] == "InternalIP").and_then(|a| a["address"].as_str()).unwrap_or("<none>");
            (
                vec![
                    Column("Name", "string", 0),
                    Column("Status", "string", 0),
                    Column("Roles", "string", 0),
                    Column("Age", "string", 0),
                    Column("Version", "string", 0),
                    Column("Internal-IP", "string", 1),
                    Column("External-IP", "string", 1),
                    Column("OS-Image", "string", 1),
                    Column("Kernel-Version", "string", 1),
                    Column("Container-Runtime", "string", 1),
                ],
                vec![
                    name,
                    json!(node_status(o)),
                    json!(node_roles(o)),
                    json!(created),
                    json!(s(o, "/status/nodeInfo/kubeletVersion")),
                    json!(internal),
                    json!("<none>"),
                    json!(none_if_empty(s(o, "/status/nodeInfo/osImage").to_string())),
                    json!(none_if_empty(s(o, "/status/nodeInfo/kernelVersion").to_string())),
                    json!(none_if_empty(s(o, "/status/nodeInfo/containerRuntimeVersion").to_string())),
                ],
            )
        }
        "Namespace" => (
            vec![Column("Name", "string", 0), Column("Status", "string", 0), Column("Age", "string", 0)],
            vec![name, json!(s(o, "/status/phase")), json!(created)],
        ),
        "Endpoints" => (
            vec![Column("Name", "string", 0), Column("Endpoints", "string", 0), Column("Age", "string", 0)],
            vec![name, json!(endpoints_text(o)), json!(created)],
        ),
        "Event" => {
            let last = o
                .pointer("/lastTimestamp")
                .and_then(Value::as_str)
                .or(o.pointer("/eventTime").and_then(Value::as_str))
                .or(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str));
            let object = format!("{}/{}", s(o, "/involvedObject/kind").to_lowercase(), s(o, "/involvedObject/name"));
            (
                vec![
                    Column("Last Seen", "string", 0),
                    Column("Type", "string", 0),
                    Column("Reason", "string", 0),
                    Column("Object", "string", 0),
                    Column("Message", "string", 0),
                ],
                vec![json!(age(last, now)), json!(s(o, "/type")), json!(s(o, "/reason")), json!(object), json!(s(o, "/message").trim())],
            )
        }
        "ConfigMap" => {
            let data = o.get("data").and_then(Value::as_object).map_or(0, |m| m.len()) + o.get("binaryData").and_then(Value::as_object).map_or(0, |m| m.len());
            (vec![Column("Name", "string", 0), Column("Data", "string", 0), Column("Age", "string", 0)], vec![name, json!(data), json!(created)])
        }
        "Secret" => {
            let data = o.get("data").and_then(Value::as_object).map_or(0, |m| m.len());
            (
                vec![Column("Name", "string", 0), Column("Type", "string", 0), Column("Data", "string", 0), Column("Age", "string", 0)],
                vec![name, json!(s(o, "/type")), json!(data), json!(created)],
            )
        }
        "Lease" => (
            vec![Column("Name", "string", 0), Column("Holder", "string", 0), Column("Age", "string", 0)],
            vec![name, json!(s(o, "/spec/holderIdentity")), json!(created)],
        ),
        _ => (vec![Column("Name", "string", 0), Column("Age", "string", 0)], vec![name, json!(created)]),
    }
}

fn partial_metadata(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object.get("metadata").cloned().unwrap_or(json!({}))})
}

/// Render objects as a Table. `include_column_definitions` is false for all but the first
/// event of a watch, as upstream sends them.
pub fn render(
    resource: &ResourceInfo,
    items: &[Value],
    list_metadata: Value,
    include: IncludeObject,
    now: jiff::Timestamp,
    include_column_definitions: bool,
) -> Value {
    let (columns, _) = columns_and_row(resource, &json!({}), now);
    let definitions: Vec<Value> = columns
        .iter()
        .map(|Column(name, kind, priority)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({"name": name, "type": kind, "format": format, "description": "", "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let (_, cells) = columns_and_row(resource, item, now);
            let mut row = json!({"cells": cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(item),
                IncludeObject::Object => row["object"] = item.clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": if include_column_definitions { json!(definitions) } else { json!([]) },
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::find_kind;

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    #[test]
    fn human_durations_like_upstream() {
        for (secs, want) in [(5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600, "3h"), (3 * 3600 + 60 * 5, "3h5m"), (50 * 3600, "2d2h"), (24 * 3600 * 30, "30d"), (24 * 3600 * 800, "2y70d")] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn running_pod_with_restarts() {
        let pod = json!({"metadata": {"name": "web-1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.42.0.5", "containerStatuses": [{"name": "c", "ready": true, "restartCount": 2,
                "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 137, "finishedAt": "2026-01-01T00:09:30Z"}}}]}});
        let t = render(find_kind("", "Pod").unwrap(), &[pod], json!({"resourceVersion": "9"}), IncludeObject::Metadata, now(), true);
        assert_eq!(t["rows"][0]["cells"], json!(["web-1", "1/1", "Running", "2 (30s ago)", "10m", "10.42.0.5", "n1", "<none>", "<none>"]));
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
    }

    #[test]
    fn pending_terminating_and_waiting_pods() {
        let pod = |status: Value, deleting: bool| {
            let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}, "status": status});
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            pod_status(&p)
        };
        assert_eq!(pod(json!({"phase": "Pending"}), false), "Pending");
        assert_eq!(pod(json!({"phase": "Running"}), true), "Terminating");
        assert_eq!(pod(json!({"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]}), false), "ImagePullBackOff");
    }

    #[test]
    fn deployment_and_load_balancer_service() {
        let d = json!({"metadata": {"name": "d", "creationTimestamp": "2026-01-01T00:09:00Z"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "i:v1"}]}}}, "status": {"readyReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3}});
        let t = render(find_kind("apps", "Deployment").unwrap(), &[d], json!({}), IncludeObject::None, now(), true);
        assert_eq!(t["rows"][0]["cells"], json!(["d", "3/3", 3, 3, "60s", "c", "i:v1", "app=x"]));
        let svc = json!({"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.9", "selector": {"app": "x"},
            "ports": [{"port": 80, "nodePort": 31234, "protocol": "TCP"}]}, "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}});
        let t = render(find_kind("", "Service").unwrap(), &[svc.clone()], json!({}), IncludeObject::None, now(), true);
        assert_eq!(t["rows"][0]["cells"].as_array().unwrap()[1..5], json!(["LoadBalancer", "10.43.0.9", "127.0.0.1", "80:31234/TCP"]).as_array().unwrap()[..]);
        let mut pending = svc;
        pending["status"] = json!({});
        assert_eq!(service_external_ip(&pending), "<pending>");
    }
}
