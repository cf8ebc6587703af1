//! NetworkPolicies (`networking.k8s.io/v1`): upstream's `SetDefaults_NetworkPolicy`,
//! `ValidateNetworkPolicy` (the parts Podium checks) and `printNetworkPolicy`. Not
//! enforced yet.

use serde_json::{Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::Cause;
use crate::strategy::{not_supported, set_default};
use crate::table::{AGE, Column, Doc, NAME, arr, col, name_and_age, or_none};

pub struct NetworkPolicy;

impl Kind for NetworkPolicy {
    typed_as!(k8s_openapi::api::networking::v1::NetworkPolicy);

    fn tracks_generation(&self) -> bool {
        true
    }

    fn apply_defaults(&self, object: &mut Value) {
        let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        set_default(spec, "podSelector", json!({}));
        // Ingress always; Egress when egress rules are given.
        if spec
            .get("policyTypes")
            .is_none_or(|t| t.as_array().is_none_or(Vec::is_empty))
        {
            let mut types = vec![json!("Ingress")];
            if spec
                .get("egress")
                .is_some_and(|e| e.as_array().is_some_and(|r| !r.is_empty()))
            {
                types.push(json!("Egress"));
            }
            spec.insert("policyTypes".into(), json!(types));
        }
        for direction in ["ingress", "egress"] {
            for rule in spec
                .get_mut(direction)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                for port in rule
                    .get_mut("ports")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(port) = port.as_object_mut() {
                        set_default(port, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        for (i, kind) in arr(object, "/spec/policyTypes").iter().enumerate() {
            let kind = kind.as_str().unwrap_or("");
            if !matches!(kind, "Ingress" | "Egress") {
                causes.push(not_supported(
                    &format!("spec.policyTypes[{i}]"),
                    kind,
                    &["Ingress", "Egress"],
                ));
            }
        }
        for direction in ["ingress", "egress"] {
            for (i, rule) in arr(object, &format!("/spec/{direction}"))
                .iter()
                .enumerate()
            {
                for (j, port) in arr(rule, "/ports").iter().enumerate() {
                    let field = format!("spec.{direction}[{i}].ports[{j}]");
                    let protocol = port
                        .get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("TCP");
                    if !matches!(protocol, "TCP" | "UDP" | "SCTP") {
                        causes.push(not_supported(
                            &format!("{field}.protocol"),
                            protocol,
                            &["SCTP", "TCP", "UDP"],
                        ));
                    }
                    if let Some(n) = port.get("port").and_then(Value::as_i64) {
                        crate::strategy::port_in_range(n, &format!("{field}.port"), causes);
                    }
                }
            }
        }
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let selector = crate::selector::label_selector_string(o.pointer("/spec/podSelector"))
            .map(or_none)
            .unwrap_or_else(|| "<error>".into());
        (vec![name, json!(selector), age], None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium does not enforce NetworkPolicies yet: the policy is stored, but all pod traffic is still allowed",
        )
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Pod-Selector",
        "string",
        0,
        Doc::Field("io.k8s.api.networking.v1.NetworkPolicySpec", "podSelector"),
    ),
    AGE,
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    #[test]
    fn defaults_row_and_validation() {
        let policy = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "db", "creationTimestamp": created()},
            "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                "ingress": [{"ports": [{"port": 5432}]}], "egress": [{}]}});
        let stored = created_object("networking.k8s.io", "NetworkPolicy", policy.clone());
        assert_eq!(stored["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(stored["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            cells("networking.k8s.io", "NetworkPolicy", stored),
            json!(["db", "app=db", "10m"])
        );
        let mut bad = policy;
        bad["spec"]["ingress"][0]["ports"][0] = json!({"port": 70000, "protocol": "ICMP"});
        let fields: Vec<String> = problems("networking.k8s.io", "NetworkPolicy", bad)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.ingress[0].ports[0].protocol",
                "spec.ingress[0].ports[0].port"
            ]
        );
    }
}
