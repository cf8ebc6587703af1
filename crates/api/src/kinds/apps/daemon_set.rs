//! DaemonSets (`apps/v1`): upstream's `SetDefaults_DaemonSet`, `ValidateDaemonSet` (the
//! parts Podium checks) and `printDaemonSet`. No controller runs them yet.

use serde_json::{Map, Value, json};

use crate::kinds::core::pod::{default_pod_spec_at, pod_spec_quantity_maps, validate_template_at};
use crate::kinds::{Kind, typed_as};
use crate::status::Cause;
use crate::strategy::{
    at_least, not_supported, set_default, supported, validate_selector_matches_template,
};
use crate::table::{
    AGE, CONTAINERS, Column, Doc, IMAGES, NAME, col, containers_and_images, format_labels, n,
    name_and_age, or_none,
};

pub struct DaemonSet;

impl Kind for DaemonSet {
    typed_as!(k8s_openapi::api::apps::v1::DaemonSet);

    fn quantity_maps<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        pod_spec_quantity_maps(object.pointer("/spec/template/spec"))
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        // The counts are not optional in the API (typed clients require them).
        object.insert(
            "status".into(),
            json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0}),
        );
    }

    fn apply_defaults(&self, object: &mut Value) {
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "updateStrategy", json!({}));
            if let Some(strategy) = spec
                .get_mut("updateStrategy")
                .and_then(Value::as_object_mut)
            {
                set_default(strategy, "type", json!("RollingUpdate"));
                if strategy.get("type") == Some(&json!("RollingUpdate")) {
                    set_default(strategy, "rollingUpdate", json!({}));
                    if let Some(ru) = strategy
                        .get_mut("rollingUpdate")
                        .and_then(Value::as_object_mut)
                    {
                        set_default(ru, "maxUnavailable", json!(1));
                        set_default(ru, "maxSurge", json!(0));
                    }
                }
            }
        }
        default_pod_spec_at(object, "/spec/template/spec");
    }

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        validate_selector_matches_template(object, causes);
        validate_template_at(object, "/spec/template", causes);
        always_restarts(object, "/spec/template/spec/restartPolicy", causes);
        at_least(object, "/spec/minReadySeconds", 0, causes);
        at_least(object, "/spec/revisionHistoryLimit", 0, causes);
        supported(
            object,
            "/spec/updateStrategy/type",
            &["OnDelete", "RollingUpdate"],
            causes,
        );
        selector_immutable(object, old, causes);
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let (containers, images) = containers_and_images(o.pointer("/spec/template/spec"));
        let cells = vec![
            name,
            json!(n(o, "/status/desiredNumberScheduled")),
            json!(n(o, "/status/currentNumberScheduled")),
            json!(n(o, "/status/numberReady")),
            json!(n(o, "/status/updatedNumberScheduled")),
            json!(n(o, "/status/numberAvailable")),
            json!(format_labels(o.pointer("/spec/template/spec/nodeSelector"))),
            age,
            json!(containers),
            json!(images),
            json!(selector_text(o)),
        ];
        (cells, None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some("Podium does not run DaemonSets yet: the DaemonSet is stored but no pods are created")
    }
}

/// `metav1.FormatLabelSelector` of `spec.selector`: `<none>` when empty, `<error>` when invalid.
pub(crate) fn selector_text(o: &Value) -> String {
    crate::selector::label_selector_string(o.pointer("/spec/selector"))
        .map(or_none)
        .unwrap_or_else(|| "<error>".into())
}

/// Pods of a controller that keeps them running must restart always.
pub(crate) fn always_restarts(object: &Value, pointer: &str, causes: &mut Vec<Cause>) {
    let policy = object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("Always");
    if policy != "Always" {
        causes.push(not_supported(
            &crate::strategy::field_path(pointer),
            policy,
            &["Always"],
        ));
    }
}

/// `spec.selector` cannot change once set.
pub(crate) fn selector_immutable(object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    if let (Some(old), Some(new_sel)) = (old, object.pointer("/spec/selector")) {
        if old.pointer("/spec/selector").is_some_and(|s| s != new_sel) {
            causes.push(crate::status::cause(
                "FieldValueInvalid",
                "spec.selector",
                format!(
                    "Invalid value: {}: field is immutable",
                    crate::selector::label_selector_string(Some(new_sel)).unwrap_or_default()
                ),
            ));
        }
    }
}

const DS: &str = "io.k8s.api.apps.v1.DaemonSetStatus";
const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        0,
        Doc::Field(DS, "desiredNumberScheduled"),
    ),
    col(
        "Current",
        "integer",
        0,
        Doc::Field(DS, "currentNumberScheduled"),
    ),
    col("Ready", "integer", 0, Doc::Field(DS, "numberReady")),
    col(
        "Up-to-date",
        "integer",
        0,
        Doc::Field(DS, "updatedNumberScheduled"),
    ),
    col("Available", "integer", 0, Doc::Field(DS, "numberAvailable")),
    col(
        "Node Selector",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.PodSpec", "nodeSelector"),
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    col(
        "Selector",
        "string",
        1,
        Doc::Field("io.k8s.api.apps.v1.DaemonSetSpec", "selector"),
    ),
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    fn ds() -> serde_json::Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "creationTimestamp": created()},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                        "containers": [{"name": "a", "image": "agent:1"}]}}}})
    }

    #[test]
    fn defaults_row_and_validation() {
        let stored = created_object("apps", "DaemonSet", ds());
        assert_eq!(
            stored["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
            1
        );
        assert_eq!(
            stored["spec"]["template"]["spec"]["restartPolicy"],
            "Always"
        );
        assert_eq!(
            cells("apps", "DaemonSet", stored),
            json!([
                "agent",
                0,
                0,
                0,
                0,
                0,
                "kubernetes.io/os=linux",
                "10m",
                "a",
                "agent:1",
                "app=agent"
            ])
        );
        assert!(problems("apps", "DaemonSet", ds()).is_empty());
        let mut bad = ds();
        bad["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            problems("apps", "DaemonSet", bad),
            [(
                "spec.template.spec.restartPolicy".to_string(),
                "Unsupported value: \"Never\": supported values: \"Always\"".to_string()
            )]
        );
    }
}
