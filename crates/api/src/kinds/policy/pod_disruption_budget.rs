//! PodDisruptionBudgets (`policy/v1`): upstream's `ValidatePodDisruptionBudget` (the parts
//! Podium checks) and `printPodDisruptionBudget`. Its status is the disruption controller's; `pods/eviction`
//! consults it.

use serde_json::{Map, Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::table::{AGE, Column, Doc, NAME, col, n, name_and_age};

pub struct PodDisruptionBudget;

impl Kind for PodDisruptionBudget {
    typed_as!(k8s_openapi::api::policy::v1::PodDisruptionBudget);

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        // The counts are not optional in the API (typed clients require them).
        object.insert(
            "status".into(),
            json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}),
        );
    }

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        let min = object
            .pointer("/spec/minAvailable")
            .filter(|v| !v.is_null());
        let max = object
            .pointer("/spec/maxUnavailable")
            .filter(|v| !v.is_null());
        if min.is_some() && max.is_some() {
            causes.push(cause(
                "FieldValueInvalid",
                "spec",
                format!(
                    "Invalid value: {}: minAvailable and maxUnavailable cannot be both set",
                    object["spec"]
                ),
            ));
        }
        for (value, field) in [(min, "spec.minAvailable"), (max, "spec.maxUnavailable")] {
            if let Some(problem) = value.and_then(int_or_percent_problem) {
                causes.push(cause("FieldValueInvalid", field, problem));
            }
        }
        let policy = object
            .pointer("/spec/unhealthyPodEvictionPolicy")
            .and_then(Value::as_str);
        if let Some(policy) = policy.filter(|p| !matches!(*p, "IfHealthyBudget" | "AlwaysAllow")) {
            causes.push(crate::strategy::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                policy,
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let text = |p: &str| match o.pointer(p) {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => "N/A".into(),
        };
        let cells = vec![
            name,
            json!(text("/spec/minAvailable")),
            json!(text("/spec/maxUnavailable")),
            json!(n(o, "/status/disruptionsAllowed")),
            age,
        ];
        (cells, None)
    }
}

/// An int-or-percent count: a non-negative integer, or a percentage of at most 100%.
fn int_or_percent_problem(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) if n.as_i64().is_some_and(|n| n < 0) => Some(format!(
            "Invalid value: {n}: must be greater than or equal to 0"
        )),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            None => Some(format!(
                "Invalid value: {s:?}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
            )),
            Some(p) if p > 100 => Some(format!(
                "Invalid value: {s:?}: must not be greater than 100%"
            )),
            Some(_) => None,
        },
        _ => None,
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Min Available",
        "string",
        0,
        Doc::Text("The minimum number of pods that must be available."),
    ),
    col(
        "Max Unavailable",
        "string",
        0,
        Doc::Text("The maximum number of pods that may be unavailable."),
    ),
    col(
        "Allowed Disruptions",
        "integer",
        0,
        Doc::Text("Calculated number of pods that may be disrupted at this time."),
    ),
    AGE,
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    #[test]
    fn row_and_validation() {
        let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "creationTimestamp": created()},
            "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}});
        let stored = created_object("policy", "PodDisruptionBudget", pdb.clone());
        assert_eq!(
            cells("policy", "PodDisruptionBudget", stored),
            json!(["web", "50%", "N/A", 0, "10m"])
        );
        assert!(problems("policy", "PodDisruptionBudget", pdb).is_empty());
        let bad = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "b"},
            "spec": {"minAvailable": 1, "maxUnavailable": "150%"}});
        let fields: Vec<String> = problems("policy", "PodDisruptionBudget", bad)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(fields, ["spec", "spec.maxUnavailable"]);
    }
}
