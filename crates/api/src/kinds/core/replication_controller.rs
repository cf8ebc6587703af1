//! ReplicationControllers (`v1`): upstream's `SetDefaults_ReplicationController`,
//! `ValidateReplicationController` (the parts Podium checks) and
//! `printReplicationController`. No controller runs them (Deployments do the same job).

use serde_json::{Map, Value, json};

use crate::kinds::apps::daemon_set::always_restarts;
use crate::kinds::core::pod::{default_pod_spec_at, pod_spec_quantity_maps, validate_template_at};
use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::{at_least, set_default};
use crate::table::{
    AGE, CONTAINERS, Column, Doc, IMAGES, NAME, col, containers_and_images, format_labels, n,
    name_and_age,
};

pub struct ReplicationController;

impl Kind for ReplicationController {
    typed_as!(k8s_openapi::api::core::v1::ReplicationController);

    fn quantity_maps<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        pod_spec_quantity_maps(object.pointer("/spec/template/spec"))
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert("status".into(), json!({"replicas": 0}));
    }

    fn apply_defaults(&self, object: &mut Value) {
        // An empty selector and empty labels both come from the template's labels.
        let labels = object.pointer("/spec/template/metadata/labels").cloned();
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            set_default(spec, "replicas", json!(1));
            if let Some(labels) = labels.filter(|l| l.as_object().is_some_and(|m| !m.is_empty())) {
                if spec
                    .get("selector")
                    .is_none_or(|s| s.as_object().is_none_or(Map::is_empty))
                {
                    spec.insert("selector".into(), labels.clone());
                }
            }
        }
        let labels = object.pointer("/spec/template/metadata/labels").cloned();
        if let (Some(labels), Some(meta)) = (
            labels,
            object.get_mut("metadata").and_then(Value::as_object_mut),
        ) {
            if meta
                .get("labels")
                .is_none_or(|l| l.as_object().is_none_or(Map::is_empty))
            {
                meta.insert("labels".into(), labels);
            }
        }
        default_pod_spec_at(object, "/spec/template/spec");
    }

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        at_least(object, "/spec/replicas", 0, causes);
        at_least(object, "/spec/minReadySeconds", 0, causes);
        let selector = object.pointer("/spec/selector").and_then(Value::as_object);
        match selector.filter(|s| !s.is_empty()) {
            None => causes.push(cause(
                "FieldValueRequired",
                "spec.selector",
                "Required value",
            )),
            Some(selector) => {
                let labels = object
                    .pointer("/spec/template/metadata/labels")
                    .and_then(Value::as_object);
                let matches = selector
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
                if !matches {
                    causes.push(cause(
                        "FieldValueInvalid",
                        "spec.template.metadata.labels",
                        format!(
                            "Invalid value: {}: `selector` does not match template `labels`",
                            json!(labels)
                        ),
                    ));
                }
            }
        }
        if object.pointer("/spec/template").is_none_or(Value::is_null) {
            causes.push(cause(
                "FieldValueRequired",
                "spec.template",
                "Required value",
            ));
        } else {
            validate_template_at(object, "/spec/template", causes);
            always_restarts(object, "/spec/template/spec/restartPolicy", causes);
        }
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let (containers, images) = containers_and_images(o.pointer("/spec/template/spec"));
        let cells = vec![
            name,
            json!(n(o, "/spec/replicas")),
            json!(n(o, "/status/replicas")),
            json!(n(o, "/status/readyReplicas")),
            age,
            json!(containers),
            json!(images),
            json!(format_labels(o.pointer("/spec/selector"))),
        ];
        (cells, None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium does not run ReplicationControllers yet: the ReplicationController is stored but no pods are created (a Deployment does the same and is run)",
        )
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        0,
        Doc::Field("io.k8s.api.core.v1.ReplicationControllerSpec", "replicas"),
    ),
    col(
        "Current",
        "integer",
        0,
        Doc::Field("io.k8s.api.core.v1.ReplicationControllerStatus", "replicas"),
    ),
    col(
        "Ready",
        "integer",
        0,
        Doc::Field(
            "io.k8s.api.core.v1.ReplicationControllerStatus",
            "readyReplicas",
        ),
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    col(
        "Selector",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.ReplicationControllerSpec", "selector"),
    ),
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    #[test]
    fn defaults_row_and_validation() {
        let rc = json!({"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "nginx", "creationTimestamp": created()},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}});
        let stored = created_object("", "ReplicationController", rc.clone());
        assert_eq!(stored["spec"]["selector"], json!({"app": "nginx"}));
        assert_eq!(stored["metadata"]["labels"], json!({"app": "nginx"}));
        assert_eq!(
            cells("", "ReplicationController", stored),
            json!(["nginx", 2, 0, 0, "10m", "nginx", "nginx:1.27", "app=nginx"])
        );
        assert!(problems("", "ReplicationController", rc).is_empty());
        let mut bad = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "x"},
            "spec": {"selector": {"app": "a"}, "template": {"metadata": {"labels": {"app": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        bad["spec"]["replicas"] = json!(-2);
        let fields: Vec<String> = problems("", "ReplicationController", bad)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(fields, ["spec.replicas", "spec.template.metadata.labels"]);
    }
}
