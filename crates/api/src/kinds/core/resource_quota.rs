//! ResourceQuotas (`v1`): upstream's `ValidateResourceQuota` (the parts Podium checks) and
//! `printResourceQuota`. Usage is not tracked or limited yet.

use serde_json::{Map, Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::table::{AGE, Column, Doc, NAME, col, name_and_age};

pub struct ResourceQuota;

impl Kind for ResourceQuota {
    typed_as!(k8s_openapi::api::core::v1::ResourceQuota);

    fn quantity_maps<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        ["/spec/hard", "/status/hard", "/status/used"]
            .iter()
            .filter_map(|p| object.pointer(p))
            .collect()
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert("status".into(), json!({}));
    }

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        let hard = object.pointer("/spec/hard").and_then(Value::as_object);
        for (resource, quantity) in hard.into_iter().flatten() {
            let negative = quantity
                .as_str()
                .and_then(crate::quantity::Quantity::parse)
                .is_some_and(|q| q.milli_value() < 0);
            if negative {
                causes.push(cause(
                    "FieldValueInvalid",
                    &format!("spec.hard[{resource}]"),
                    format!("Invalid value: {quantity}: must be greater than or equal to 0"),
                ));
            }
        }
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        // `resource: used/hard` for every resource of `status.hard`, sorted, limits apart.
        let hard = o.pointer("/status/hard").and_then(Value::as_object);
        let used = o.pointer("/status/used").and_then(Value::as_object);
        let mut resources: Vec<&String> = hard.into_iter().flat_map(|h| h.keys()).collect();
        resources.sort();
        let (mut requests, mut limits) = (Vec::new(), Vec::new());
        for resource in resources {
            let text = |m: Option<&Map<String, Value>>| {
                m.and_then(|m| m.get(resource.as_str()))
                    .and_then(Value::as_str)
                    .unwrap_or("0")
                    .to_string()
            };
            let entry = format!("{resource}: {}/{}", text(used), text(hard));
            if resource.starts_with("limits.") {
                limits.push(entry);
            } else {
                requests.push(entry);
            }
        }
        (
            vec![
                name,
                json!(requests.join(", ")),
                json!(limits.join(", ")),
                age,
            ],
            None,
        )
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium does not enforce ResourceQuotas yet: the quota is stored, but usage is not counted or limited",
        )
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Request",
        "string",
        0,
        Doc::Text(
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
    ),
    col(
        "Limit",
        "string",
        0,
        Doc::Text(
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        ),
    ),
    AGE,
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, problems};
    use serde_json::json;

    #[test]
    fn row_and_validation() {
        let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "q", "creationTimestamp": created()},
            "spec": {"hard": {"pods": "10"}},
            "status": {"hard": {"pods": "10", "limits.cpu": "2"}, "used": {"pods": "3"}}});
        assert_eq!(
            cells("", "ResourceQuota", quota),
            json!(["q", "pods: 3/10", "limits.cpu: 0/2", "10m"])
        );
        let bad = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": {"pods": "-1"}}});
        assert_eq!(problems("", "ResourceQuota", bad)[0].0, "spec.hard[pods]");
    }
}
