//! LimitRanges (`v1`): upstream's `ValidateLimitRange` type check; no printer upstream, so
//! `kubectl get` shows the name and creation time. Not applied to pods yet.

use serde_json::Value;

use crate::kinds::{Kind, typed_as};
use crate::status::Cause;
use crate::strategy::not_supported;
use crate::table::{Column, NAME_AND_CREATED_AT, arr, name_and_created_at, s};

pub struct LimitRange;

impl Kind for LimitRange {
    typed_as!(k8s_openapi::api::core::v1::LimitRange);

    fn quantity_maps<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        arr(object, "/spec/limits")
            .iter()
            .flat_map(|l| {
                [
                    "max",
                    "min",
                    "default",
                    "defaultRequest",
                    "maxLimitRequestRatio",
                ]
                .map(|f| l.get(f))
            })
            .flatten()
            .collect()
    }

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        for (i, limit) in arr(object, "/spec/limits").iter().enumerate() {
            let kind = s(limit, "/type");
            if !matches!(kind, "Container" | "Pod" | "PersistentVolumeClaim") {
                causes.push(not_supported(
                    &format!("spec.limits[{i}].type"),
                    kind,
                    &["Container", "PersistentVolumeClaim", "Pod"],
                ));
            }
        }
    }

    fn columns(&self) -> &[Column] {
        NAME_AND_CREATED_AT
    }

    fn row(&self, o: &Value, _now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        (name_and_created_at(o), None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium does not apply LimitRanges yet: the LimitRange is stored, but pods get no defaults or limits from it",
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, problems};
    use serde_json::json;

    #[test]
    fn row_and_validation() {
        let lr = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits", "creationTimestamp": created()},
            "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}}]}});
        assert_eq!(
            cells("", "LimitRange", lr.clone()),
            json!(["limits", "2026-01-01T00:00:00Z"])
        );
        assert!(problems("", "LimitRange", lr).is_empty());
        let bad = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l"}, "spec": {"limits": [{"type": "Node"}]}});
        assert_eq!(problems("", "LimitRange", bad)[0].0, "spec.limits[0].type");
    }
}
