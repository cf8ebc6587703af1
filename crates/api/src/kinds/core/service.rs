//! Services (`v1`): upstream's `pkg/registry/core/service`, `SetDefaults_Service`,
//! `ValidateService` (the parts Podium checks) and `printService`. Cluster IPs and node
//! ports are allocated by the API server, not here.

use serde_json::{Map, Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::{DNS_LABEL_MESSAGE, is_dns_label, port_in_range, set_default};
use crate::table::{AGE, Column, Doc, NAME, arr, col, format_labels, n, name_and_age, or_none, s};

pub struct Service;

impl Kind for Service {
    /// Upstream's registry sets `ReturnDeletedObject: true` for this kind.
    fn returns_deleted_object(&self) -> bool {
        true
    }

    typed_as!(k8s_openapi::api::core::v1::Service);

    fn selectable_fields(&self) -> &'static [&'static str] {
        &[
            "metadata.name",
            "metadata.namespace",
            "spec.clusterIP",
            "spec.type",
        ]
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert("status".into(), json!({"loadBalancer": {}}));
    }

    fn apply_defaults(&self, object: &mut Value) {
        let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        set_default(spec, "type", json!("ClusterIP"));
        let kind = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if kind != "ExternalName" {
            set_default(spec, "sessionAffinity", json!("None"));
            set_default(spec, "ipFamilies", json!(["IPv4"]));
            set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        }
        if kind == "NodePort" || kind == "LoadBalancer" {
            set_default(spec, "externalTrafficPolicy", json!("Cluster"));
        }
        if kind == "LoadBalancer" {
            set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
        }
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                set_default(port, "protocol", json!("TCP"));
                if let Some(p) = port.get("port").cloned() {
                    set_default(port, "targetPort", p);
                }
            }
        }
    }

    fn name_is_dns_label(&self) -> bool {
        true
    }

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        let kind = object
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        if !matches!(
            kind,
            "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
        ) {
            causes.push(cause("FieldValueNotSupported", "spec.type", format!("Unsupported value: {kind:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"")));
        }
        let ports = object.pointer("/spec/ports").and_then(Value::as_array);
        if kind != "ExternalName"
            && ports.is_none_or(|p| p.is_empty())
            && object.pointer("/spec/clusterIP") != Some(&json!("None"))
        {
            causes.push(cause("FieldValueRequired", "spec.ports", "Required value"));
        }
        let mut port_names = std::collections::BTreeSet::new();
        for (i, p) in ports.into_iter().flatten().enumerate() {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            port_in_range(port, &format!("spec.ports[{i}].port"), causes);
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                if ports.is_some_and(|ps| ps.len() > 1) {
                    causes.push(cause(
                        "FieldValueRequired",
                        &format!("spec.ports[{i}].name"),
                        "Required value",
                    ));
                }
            } else if !is_dns_label(name) {
                causes.push(cause(
                    "FieldValueInvalid",
                    &format!("spec.ports[{i}].name"),
                    format!("Invalid value: {name:?}: {DNS_LABEL_MESSAGE}"),
                ));
            } else if !port_names.insert(name) {
                causes.push(cause(
                    "FieldValueDuplicate",
                    &format!("spec.ports[{i}].name"),
                    format!("Duplicate value: {name:?}"),
                ));
            }
            let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            if !matches!(protocol, "TCP" | "UDP" | "SCTP") {
                causes.push(cause("FieldValueNotSupported", &format!("spec.ports[{i}].protocol"), format!("Unsupported value: {protocol:?}: supported values: \"SCTP\", \"TCP\", \"UDP\"")));
            }
            if let Some(target) = p.get("targetPort").and_then(Value::as_i64) {
                port_in_range(target, &format!("spec.ports[{i}].targetPort"), causes);
            }
        }
    }

    fn columns(&self) -> &[Column] {
        SERVICE
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let cells = vec![
            name,
            json!(s(o, "/spec/type")),
            json!(or_none(s(o, "/spec/clusterIPs/0").to_string())),
            json!(service_external_ip(o)),
            json!(service_ports(o)),
            age,
            json!(format_labels(o.pointer("/spec/selector"))),
        ];
        (cells, None)
    }
}

const SERVICE: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.ServiceSpec", "type"),
    ),
    col(
        "Cluster-IP",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.ServiceSpec", "clusterIP"),
    ),
    col(
        "External-IP",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.ServiceSpec", "externalIPs"),
    ),
    col(
        "Port(s)",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.ServiceSpec", "ports"),
    ),
    AGE,
    col(
        "Selector",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.ServiceSpec", "selector"),
    ),
];

/// Upstream's `getServiceExternalIP` with `wide` (no truncation): load-balancer ingress
/// addresses sorted and deduplicated, then `spec.externalIPs`.
pub(crate) fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = arr(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match s(svc, "/spec/type") {
        "ClusterIP" | "NodePort" => or_none(external.join(",")),
        "LoadBalancer" => {
            let ingress: std::collections::BTreeSet<&str> =
                arr(svc, "/status/loadBalancer/ingress")
                    .iter()
                    .filter_map(|i| {
                        i["ip"]
                            .as_str()
                            .filter(|ip| !ip.is_empty())
                            .or_else(|| i["hostname"].as_str().filter(|h| !h.is_empty()))
                    })
                    .collect();
            let all: Vec<&str> = ingress.into_iter().chain(external).collect();
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

/// Upstream's `makePortString`: `80/TCP`, or `80:31234/TCP` with a node port.
fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = p["protocol"].as_str().unwrap_or("");
            match n(p, "/nodePort") {
                node_port if node_port > 0 => format!("{}:{node_port}/{protocol}", n(p, "/port")),
                _ => format!("{}/{protocol}", n(p, "/port")),
            }
        })
        .collect();
    or_none(ports.join(","))
}
