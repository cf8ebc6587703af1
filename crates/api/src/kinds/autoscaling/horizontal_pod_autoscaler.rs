//! HorizontalPodAutoscalers (`autoscaling/v2`): upstream's v2 `SetDefaults_HorizontalPodAutoscaler`,
//! `ValidateHorizontalPodAutoscaler` (the parts Podium checks) and
//! `printHorizontalPodAutoscaler`. Nothing reads metrics or scales yet.

use serde_json::{Map, Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::Cause;
use crate::strategy::{at_least, required_str, set_default};
use crate::table::{AGE, Column, Doc, NAME, arr, col, n, name_and_age, s};

pub struct HorizontalPodAutoscaler;

impl Kind for HorizontalPodAutoscaler {
    typed_as!(k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler);

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert("status".into(), json!({"desiredReplicas": 0}));
    }

    fn apply_defaults(&self, object: &mut Value) {
        let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        set_default(spec, "minReplicas", json!(1));
        // No metrics means 80% average CPU utilisation.
        if spec
            .get("metrics")
            .is_none_or(|m| m.as_array().is_none_or(Vec::is_empty))
        {
            spec.insert(
                "metrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
            );
        }
    }

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        required_str(object, "/spec/scaleTargetRef/kind", causes);
        required_str(object, "/spec/scaleTargetRef/name", causes);
        at_least(object, "/spec/minReplicas", 1, causes);
        at_least(object, "/spec/maxReplicas", 1, causes);
        let (min, max) = (
            n(object, "/spec/minReplicas"),
            n(object, "/spec/maxReplicas"),
        );
        if max >= 1 && min > max {
            causes.push(crate::status::cause(
                "FieldValueInvalid",
                "spec.maxReplicas",
                format!("Invalid value: {max}: must be greater than or equal to `minReplicas`"),
            ));
        }
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let reference = format!(
            "{}/{}",
            s(o, "/spec/scaleTargetRef/kind"),
            s(o, "/spec/scaleTargetRef/name")
        );
        let min = o
            .pointer("/spec/minReplicas")
            .and_then(Value::as_i64)
            .map_or("<unset>".to_string(), |m| m.to_string());
        let cells = vec![
            name,
            json!(reference),
            json!(metrics_text(o)),
            json!(min),
            json!(n(o, "/spec/maxReplicas")),
            json!(n(o, "/status/currentReplicas")),
            age,
        ];
        (cells, None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium does not autoscale yet: the HorizontalPodAutoscaler is stored, but no metrics are read and its target is not scaled",
        )
    }
}

/// Upstream's `formatHPAMetrics`: `current/target` per metric, at most two, then a count.
fn metrics_text(o: &Value) -> String {
    let specs = arr(o, "/spec/metrics");
    if specs.is_empty() {
        return "<none>".into();
    }
    let statuses = arr(o, "/status/currentMetrics");
    let quantity = |v: &Value, p: &str| {
        v.pointer(p)
            .map(|q| q.as_str().map_or(q.to_string(), str::to_string))
    };
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let status = statuses.get(i);
            let current = |p: &str| {
                status
                    .and_then(|st| quantity(st, p))
                    .unwrap_or_else(|| "<unknown>".into())
            };
            match s(spec, "/type") {
                kind @ ("Resource" | "ContainerResource") => {
                    let key = if kind == "Resource" {
                        "resource"
                    } else {
                        "containerResource"
                    };
                    let name = s(spec, &format!("/{key}/name"));
                    if let Some(target) = quantity(spec, &format!("/{key}/target/averageValue")) {
                        format!(
                            "{name}: {}/{target}",
                            current(&format!("/{key}/current/averageValue"))
                        )
                    } else {
                        let now = status
                            .and_then(|st| {
                                st.pointer(&format!("/{key}/current/averageUtilization"))
                            })
                            .and_then(Value::as_i64)
                            .map_or("<unknown>".to_string(), |u| format!("{u}%"));
                        let target = spec
                            .pointer(&format!("/{key}/target/averageUtilization"))
                            .and_then(Value::as_i64)
                            .map_or("<auto>".to_string(), |u| format!("{u}%"));
                        format!("{name}: {now}/{target}")
                    }
                }
                "Pods" => format!(
                    "{}/{}",
                    current("/pods/current/averageValue"),
                    quantity(spec, "/pods/target/averageValue").unwrap_or_default()
                ),
                kind @ ("Object" | "External") => {
                    let key = kind.to_lowercase();
                    match quantity(spec, &format!("/{key}/target/averageValue")) {
                        Some(target) => format!(
                            "{}/{target} (avg)",
                            current(&format!("/{key}/current/averageValue"))
                        ),
                        None => format!(
                            "{}/{}",
                            current(&format!("/{key}/current/value")),
                            quantity(spec, &format!("/{key}/target/value")).unwrap_or_default()
                        ),
                    }
                }
                _ => "<unknown type>".into(),
            }
        })
        .collect();
    if list.len() > 2 {
        format!("{} + {} more...", list[..2].join(", "), list.len() - 2)
    } else {
        list.join(", ")
    }
}

const SPEC: &str = "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec";
const COLUMNS: &[Column] = &[
    NAME,
    col("Reference", "string", 0, Doc::Field(SPEC, "scaleTargetRef")),
    col("Targets", "string", 0, Doc::Field(SPEC, "metrics")),
    col("MinPods", "string", 0, Doc::Field(SPEC, "minReplicas")),
    col("MaxPods", "string", 0, Doc::Field(SPEC, "maxReplicas")),
    col(
        "Replicas",
        "string",
        0,
        Doc::Field(
            "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
            "currentReplicas",
        ),
    ),
    AGE,
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    #[test]
    fn defaults_row_and_validation() {
        let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "creationTimestamp": created()},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5}});
        let stored = created_object("autoscaling", "HorizontalPodAutoscaler", hpa.clone());
        assert_eq!(stored["spec"]["minReplicas"], 1);
        assert_eq!(
            cells("autoscaling", "HorizontalPodAutoscaler", stored),
            json!([
                "web",
                "Deployment/web",
                "cpu: <unknown>/80%",
                "1",
                5,
                0,
                "10m"
            ])
        );
        assert!(problems("autoscaling", "HorizontalPodAutoscaler", hpa).is_empty());
        let bad = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "b"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": ""}, "maxReplicas": 0}});
        assert_eq!(
            problems("autoscaling", "HorizontalPodAutoscaler", bad),
            [
                (
                    "spec.scaleTargetRef.name".to_string(),
                    "Required value".to_string()
                ),
                (
                    "spec.maxReplicas".to_string(),
                    "Invalid value: 0: must be greater than or equal to 1".to_string()
                ),
            ]
        );
    }
}
