//! StatefulSets (`apps/v1`): upstream's `SetDefaults_StatefulSet`, `ValidateStatefulSet`
//! (the parts Podium checks) and `printStatefulSet`. No controller runs them yet.

use serde_json::{Map, Value, json};

use crate::kinds::apps::daemon_set::{always_restarts, selector_immutable};
use crate::kinds::core::pod::{default_pod_spec_at, pod_spec_quantity_maps, validate_template_at};
use crate::kinds::{Kind, typed_as};
use crate::status::Cause;
use crate::strategy::{at_least, set_default, supported, validate_selector_matches_template};
use crate::table::{
    AGE, CONTAINERS, Column, Doc, IMAGES, NAME, col, containers_and_images, n, name_and_age,
};

pub struct StatefulSet;

impl Kind for StatefulSet {
    typed_as!(k8s_openapi::api::apps::v1::StatefulSet);

    fn quantity_maps<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        pod_spec_quantity_maps(object.pointer("/spec/template/spec"))
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert(
            "status".into(),
            json!({"replicas": 0, "availableReplicas": 0}),
        );
    }

    fn apply_defaults(&self, object: &mut Value) {
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            set_default(spec, "replicas", json!(1));
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "updateStrategy", json!({}));
            set_default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
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
                        set_default(ru, "partition", json!(0));
                    }
                }
            }
            if let Some(claims) = spec
                .get_mut("volumeClaimTemplates")
                .and_then(Value::as_array_mut)
            {
                for claim in claims.iter_mut() {
                    if let Some(claim_spec) = claim.get_mut("spec").and_then(Value::as_object_mut) {
                        set_default(claim_spec, "volumeMode", json!("Filesystem"));
                    }
                    if let Some(c) = claim.as_object_mut() {
                        set_default(c, "apiVersion", json!("v1"));
                        set_default(c, "kind", json!("PersistentVolumeClaim"));
                        set_default(c, "status", json!({"phase": "Pending"}));
                    }
                }
            }
        }
        default_pod_spec_at(object, "/spec/template/spec");
    }

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        at_least(object, "/spec/replicas", 0, causes);
        at_least(object, "/spec/minReadySeconds", 0, causes);
        at_least(object, "/spec/revisionHistoryLimit", 0, causes);
        supported(
            object,
            "/spec/podManagementPolicy",
            &["OrderedReady", "Parallel"],
            causes,
        );
        supported(
            object,
            "/spec/updateStrategy/type",
            &["OnDelete", "RollingUpdate"],
            causes,
        );
        validate_selector_matches_template(object, causes);
        validate_template_at(object, "/spec/template", causes);
        always_restarts(object, "/spec/template/spec/restartPolicy", causes);
        selector_immutable(object, old, causes);
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let (containers, images) = containers_and_images(o.pointer("/spec/template/spec"));
        let ready = format!(
            "{}/{}",
            n(o, "/status/readyReplicas"),
            n(o, "/spec/replicas")
        );
        (
            vec![name, json!(ready), age, json!(containers), json!(images)],
            None,
        )
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium does not run StatefulSets yet: the StatefulSet is stored but no pods or volume claims are created",
        )
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        0,
        Doc::Text("Number of the pod with ready state"),
    ),
    AGE,
    CONTAINERS,
    IMAGES,
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    fn sts() -> serde_json::Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "creationTimestamp": created()},
            "spec": {"serviceName": "db", "replicas": 3, "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}}})
    }

    #[test]
    fn defaults_row_and_validation() {
        let stored = created_object("apps", "StatefulSet", sts());
        assert_eq!(stored["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            stored["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
            0
        );
        assert_eq!(
            cells("apps", "StatefulSet", stored),
            json!(["db", "0/3", "10m", "db", "postgres:16"])
        );
        assert!(problems("apps", "StatefulSet", sts()).is_empty());
        let mut bad = sts();
        bad["spec"]["replicas"] = json!(-1);
        bad["spec"]["podManagementPolicy"] = json!("Random");
        let fields: Vec<String> = problems("apps", "StatefulSet", bad)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(fields, ["spec.replicas", "spec.podManagementPolicy"]);
    }
}
