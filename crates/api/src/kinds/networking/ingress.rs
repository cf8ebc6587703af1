//! Ingresses (`networking.k8s.io/v1`): upstream's `ValidateIngress` (the parts Podium
//! checks) and `printIngress`. Podium has no ingress controller yet.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::not_supported;
use crate::table::{AGE, Column, Doc, NAME, arr, col, name_and_age, or_none, s};

pub struct Ingress;

impl Kind for Ingress {
    typed_as!(k8s_openapi::api::networking::v1::Ingress);

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert("status".into(), json!({"loadBalancer": {}}));
    }

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        let rules = arr(object, "/spec/rules");
        let default_backend = object
            .pointer("/spec/defaultBackend")
            .filter(|b| !b.is_null());
        if rules.is_empty() && default_backend.is_none() {
            causes.push(cause(
                "FieldValueInvalid",
                "spec",
                format!(
                    "Invalid value: {}: either `defaultBackend` or `rules` must be specified",
                    object.get("spec").cloned().unwrap_or(json!({}))
                ),
            ));
        }
        if let Some(backend) = default_backend {
            validate_backend(backend, "spec.defaultBackend", causes);
        }
        for (i, rule) in rules.iter().enumerate() {
            let host = s(rule, "/host");
            if host.contains('*') && !host.starts_with("*.") {
                causes.push(cause(
                    "FieldValueInvalid",
                    &format!("spec.rules[{i}].host"),
                    format!("Invalid value: {host:?}: a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain"),
                ));
            }
            for (j, path) in arr(rule, "/http/paths").iter().enumerate() {
                let field = format!("spec.rules[{i}].http.paths[{j}]");
                match path.get("pathType").and_then(Value::as_str) {
                    None => causes.push(cause(
                        "FieldValueRequired",
                        &format!("{field}.pathType"),
                        "Required value: pathType must be specified",
                    )),
                    Some("Exact" | "Prefix") => {
                        let p = s(path, "/path");
                        if !p.starts_with('/') {
                            causes.push(cause(
                                "FieldValueInvalid",
                                &format!("{field}.path"),
                                format!("Invalid value: {p:?}: must be an absolute path"),
                            ));
                        }
                    }
                    Some("ImplementationSpecific") => {}
                    Some(other) => causes.push(not_supported(
                        &format!("{field}.pathType"),
                        other,
                        &["Exact", "ImplementationSpecific", "Prefix"],
                    )),
                }
                match path.get("backend") {
                    Some(backend) => validate_backend(backend, &format!("{field}.backend"), causes),
                    None => causes.push(cause(
                        "FieldValueRequired",
                        &format!("{field}.backend"),
                        "Required value",
                    )),
                }
            }
        }
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let rules = arr(o, "/spec/rules");
        // Upstream's `formatHosts`: the first three hosts, then how many rules more.
        let hosts: Vec<&str> = rules
            .iter()
            .map(|r| s(r, "/host"))
            .filter(|h| !h.is_empty())
            .take(3)
            .collect();
        let hosts_text = if hosts.is_empty() {
            "*".to_string()
        } else if rules.len() > 3 {
            format!("{} + {} more...", hosts.join(","), rules.len() - 3)
        } else {
            hosts.join(",")
        };
        let addresses: BTreeSet<&str> = arr(o, "/status/loadBalancer/ingress")
            .iter()
            .filter_map(|i| {
                i["ip"]
                    .as_str()
                    .filter(|ip| !ip.is_empty())
                    .or_else(|| i["hostname"].as_str().filter(|h| !h.is_empty()))
            })
            .collect();
        let ports = if arr(o, "/spec/tls").is_empty() {
            "80"
        } else {
            "80, 443"
        };
        let cells = vec![
            name,
            json!(or_none(s(o, "/spec/ingressClassName").to_string())),
            json!(hosts_text),
            json!(addresses.into_iter().collect::<Vec<_>>().join(",")),
            json!(ports),
            age,
        ];
        (cells, None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium has no ingress controller yet: the Ingress is stored, but no traffic is routed by it",
        )
    }
}

/// A backend names a service (with a port name or number) or a resource, not both.
fn validate_backend(backend: &Value, field: &str, causes: &mut Vec<Cause>) {
    let service = backend.get("service").filter(|v| !v.is_null());
    let resource = backend.get("resource").filter(|v| !v.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => causes.push(cause(
            "FieldValueInvalid",
            field,
            "Invalid value: \"\": cannot set both resource and service backends",
        )),
        (None, None) => causes.push(cause(
            "FieldValueInvalid",
            field,
            "Invalid value: \"\": resource or service backend is required",
        )),
        (Some(service), None) => {
            if s(service, "/name").is_empty() {
                causes.push(cause(
                    "FieldValueRequired",
                    &format!("{field}.service.name"),
                    "Required value",
                ));
            }
            let name = s(service, "/port/name");
            let number = service.pointer("/port/number").and_then(Value::as_i64);
            match (name.is_empty(), number) {
                (true, None) => causes.push(cause(
                    "FieldValueInvalid",
                    &format!("{field}.service.port"),
                    "Invalid value: \"\": port name or number is required",
                )),
                (false, Some(_)) => causes.push(cause(
                    "FieldValueInvalid",
                    &format!("{field}.service.port"),
                    "Invalid value: \"\": cannot set both port name & port number",
                )),
                (true, Some(n)) => crate::strategy::port_in_range(
                    n,
                    &format!("{field}.service.port.number"),
                    causes,
                ),
                (false, None) => {}
            }
        }
        (None, Some(_)) => {}
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Class",
        "string",
        0,
        Doc::Text(
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
    ),
    col(
        "Hosts",
        "string",
        0,
        Doc::Text("Hosts that incoming requests are matched against before the ingress rule"),
    ),
    col(
        "Address",
        "string",
        0,
        Doc::Text("Address is a list containing ingress points for the load-balancer"),
    ),
    col(
        "Ports",
        "string",
        0,
        Doc::Text("Ports of TLS configurations that open"),
    ),
    AGE,
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    fn ingress() -> serde_json::Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "creationTimestamp": created()},
            "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example"]}],
                "rules": [{"host": "a.example", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
    }

    #[test]
    fn row_and_validation() {
        let stored = created_object("networking.k8s.io", "Ingress", ingress());
        assert_eq!(
            cells("networking.k8s.io", "Ingress", stored),
            json!(["web", "nginx", "a.example", "", "80, 443", "10m"])
        );
        assert!(problems("networking.k8s.io", "Ingress", ingress()).is_empty());
        let mut bad = ingress();
        bad["spec"]["rules"][0]["http"]["paths"][0] = json!({"path": "api", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {}}}});
        let fields: Vec<String> = problems("networking.k8s.io", "Ingress", bad)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.rules[0].http.paths[0].path",
                "spec.rules[0].http.paths[0].backend.service.port"
            ]
        );
    }
}
