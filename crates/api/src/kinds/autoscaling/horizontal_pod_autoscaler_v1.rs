//! HorizontalPodAutoscalers of `autoscaling/v1`: the same objects as `autoscaling/v2` (the
//! storage version), with a CPU utilization target only. What v1 cannot say travels in
//! upstream's annotations (`autoscaling.alpha.kubernetes.io/behavior`, `/conditions`), as
//! upstream's `pkg/apis/autoscaling/v1` conversion does; other metrics than CPU
//! utilization are not shown in v1.

use serde_json::{Map, Value, json};

use super::horizontal_pod_autoscaler::HorizontalPodAutoscaler as V2;
use crate::kinds::{Kind, typed_as};
use crate::status::Cause;
use crate::table::Column;

pub struct HorizontalPodAutoscaler;

const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

fn is_cpu_utilization(metric: &Value) -> bool {
    metric["type"] == "Resource"
        && metric.pointer("/resource/name") == Some(&json!("cpu"))
        && metric.pointer("/resource/target/type") == Some(&json!("Utilization"))
}

fn annotations(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = object.get_mut("metadata")?.as_object_mut()?;
    meta.entry("annotations")
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

/// v1 → v2.
fn to_v2(object: Value) -> Value {
    let mut out = object;
    let behavior = annotations(&mut out).and_then(|a| a.remove(BEHAVIOR));
    let conditions = annotations(&mut out).and_then(|a| a.remove(CONDITIONS));
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        if meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            meta.remove("annotations");
        }
    }
    out["apiVersion"] = json!("autoscaling/v2");
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(target) = spec.remove("targetCPUUtilizationPercentage") {
            spec.insert(
                "metrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}]),
            );
        }
        if let Some(behavior) =
            behavior.and_then(|b| serde_json::from_str::<Value>(b.as_str()?).ok())
        {
            spec.insert("behavior".into(), behavior);
        }
    }
    if let Some(status) = out.get_mut("status").and_then(Value::as_object_mut) {
        if let Some(current) = status.remove("currentCPUUtilizationPercentage") {
            status.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}}]),
            );
        }
        if let Some(conditions) =
            conditions.and_then(|c| serde_json::from_str::<Value>(c.as_str()?).ok())
        {
            status.insert("conditions".into(), conditions);
        }
    }
    out
}

/// v2 → v1.
fn from_v2(stored: Value) -> Value {
    let mut out = stored;
    out["apiVersion"] = json!("autoscaling/v1");
    let mut behavior = None;
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        let metrics = spec.remove("metrics");
        if let Some(target) = metrics
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|m| m.iter().find(|m| is_cpu_utilization(m)))
            .and_then(|m| m.pointer("/resource/target/averageUtilization").cloned())
        {
            spec.insert("targetCPUUtilizationPercentage".into(), target);
        }
        behavior = spec.remove("behavior");
    }
    let mut conditions = None;
    // v1 writes both replica counts always (no omitempty), as its typed clients expect.
    if let Some(map) = out.as_object_mut() {
        let status = map.entry("status").or_insert_with(|| json!({}));
        if let Some(status) = status.as_object_mut() {
            status.entry("currentReplicas").or_insert(json!(0));
            status.entry("desiredReplicas").or_insert(json!(0));
        }
    }
    if let Some(status) = out.get_mut("status").and_then(Value::as_object_mut) {
        let current = status.remove("currentMetrics");
        if let Some(value) = current
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|m| {
                m.iter().find(|m| {
                    m["type"] == "Resource" && m.pointer("/resource/name") == Some(&json!("cpu"))
                })
            })
            .and_then(|m| m.pointer("/resource/current/averageUtilization").cloned())
        {
            status.insert("currentCPUUtilizationPercentage".into(), value);
        }
        conditions = status.remove("conditions");
    }
    if let Some(a) = annotations(&mut out) {
        if let Some(b) = behavior {
            a.insert(BEHAVIOR.into(), json!(b.to_string()));
        }
        if let Some(c) = conditions.filter(|c| c.as_array().is_some_and(|l| !l.is_empty())) {
            a.insert(CONDITIONS.into(), json!(c.to_string()));
        }
    }
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        if meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            meta.remove("annotations");
        }
    }
    out
}

impl Kind for HorizontalPodAutoscaler {
    typed_as!(k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler);

    fn to_storage(&self, object: Value) -> Value {
        to_v2(object)
    }

    fn from_storage(&self, stored: Value) -> Value {
        from_v2(stored)
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert(
            "status".into(),
            json!({"currentReplicas": 0, "desiredReplicas": 0}),
        );
    }

    fn apply_defaults(&self, object: &mut Value) {
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            crate::strategy::set_default(spec, "minReplicas", json!(1));
        }
    }

    /// The v2 rules, on the v2 form.
    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        let old = old.map(|o| to_v2(o.clone()));
        V2.validate(&to_v2(object.clone()), old.as_ref(), causes);
    }

    fn columns(&self) -> &[Column] {
        V2.columns()
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        V2.row(&to_v2(o.clone()), now)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        V2.not_acted_on()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_the_cpu_target_and_keeps_what_v1_cannot_say() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}, "minReplicas": 1, "maxReplicas": 5,
                "targetCPUUtilizationPercentage": 50}});
        let v2 = to_v2(v1.clone());
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        let mut read_back = v1.clone();
        // v1 always writes both replica counts.
        read_back["status"] = json!({"currentReplicas": 0, "desiredReplicas": 0});
        assert_eq!(from_v2(v2.clone()), read_back);
        let mut with_behavior = v2;
        with_behavior["spec"]["behavior"] =
            json!({"scaleDown": {"stabilizationWindowSeconds": 60}});
        with_behavior["status"] = json!({"conditions": [{"type": "AbleToScale", "status": "True"}], "currentReplicas": 1, "desiredReplicas": 1});
        let back = from_v2(with_behavior.clone());
        assert!(back["metadata"]["annotations"][BEHAVIOR].is_string());
        assert!(back["metadata"]["annotations"][CONDITIONS].is_string());
        assert_eq!(to_v2(back), with_behavior);
    }
}
