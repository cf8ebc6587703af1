//! Nodes (`v1`, cluster-scoped): upstream's `pkg/registry/core/node` and `printNode`. The
//! agent writes both spec and status, so a create keeps the status it is given.

use serde_json::{Value, json};

use crate::kinds::{Kind, typed_as};
use crate::table::{AGE, Column, Doc, NAME, arr, col, name_and_age, or_none, s};

pub struct Node;

impl Kind for Node {
    typed_as!(k8s_openapi::api::core::v1::Node);

    fn quantity_maps<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        ["/status/capacity", "/status/allocatable"]
            .iter()
            .filter_map(|p| object.pointer(p))
            .collect()
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["metadata.name", "metadata.namespace", "spec.unschedulable"]
    }

    fn columns(&self) -> &[Column] {
        NODE
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let cells = vec![
            name,
            json!(node_status(o)),
            json!(node_roles(o)),
            age,
            json!(s(o, "/status/nodeInfo/kubeletVersion")),
            json!(node_address(o, "InternalIP")),
            json!(node_address(o, "ExternalIP")),
            json!(unknown_if_empty(s(o, "/status/nodeInfo/osImage"))),
            json!(unknown_if_empty(s(o, "/status/nodeInfo/kernelVersion"))),
            json!(unknown_if_empty(s(
                o,
                "/status/nodeInfo/containerRuntimeVersion"
            ))),
        ];
        (cells, None)
    }
}

const NODE: &[Column] = &[
    NAME,
    col("Status", "string", 0, Doc::Text("The status of the node")),
    col("Roles", "string", 0, Doc::Text("The roles of the node")),
    AGE,
    col(
        "Version",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.NodeSystemInfo", "kubeletVersion"),
    ),
    col(
        "Internal-IP",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.NodeStatus", "addresses"),
    ),
    col(
        "External-IP",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.NodeStatus", "addresses"),
    ),
    col(
        "OS-Image",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.NodeSystemInfo", "osImage"),
    ),
    col(
        "Kernel-Version",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.NodeSystemInfo", "kernelVersion"),
    ),
    col(
        "Container-Runtime",
        "string",
        1,
        Doc::Field(
            "io.k8s.api.core.v1.NodeSystemInfo",
            "containerRuntimeVersion",
        ),
    ),
];

/// Upstream's `printNode` STATUS: `Ready`/`NotReady`/`Unknown`, `,SchedulingDisabled`.
fn node_status(node: &Value) -> String {
    let mut status = match arr(node, "/status/conditions")
        .iter()
        .rev()
        .find(|c| c["type"] == "Ready")
    {
        Some(c) if c["status"] == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// Upstream's `findNodeRoles`: sorted and deduplicated.
fn node_roles(node: &Value) -> String {
    let roles: std::collections::BTreeSet<&str> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role),
            Some(_) => None,
            None if k == "kubernetes.io/role" => v.as_str().filter(|v| !v.is_empty()),
            None => None,
        })
        .collect();
    or_none(roles.into_iter().collect::<Vec<_>>().join(","))
}

fn node_address(node: &Value, kind: &str) -> String {
    arr(node, "/status/addresses")
        .iter()
        .find(|a| a["type"] == kind)
        .and_then(|a| a["address"].as_str())
        .unwrap_or("<none>")
        .to_string()
}

fn unknown_if_empty(s: &str) -> String {
    if s.is_empty() {
        "<unknown>".into()
    } else {
        s.to_string()
    }
}
