//! ReplicaSets (`apps/v1`): upstream's `SetDefaults_ReplicaSet`, `ValidateReplicaSet` (the
//! parts Podium checks) and `printReplicaSet`.

use serde_json::{Map, Value, json};

use crate::kinds::apps::deployment::validate_replicated;
use crate::kinds::core::pod::{default_template, pod_spec_quantity_maps};
use crate::kinds::{Kind, typed_as};
use crate::status::Cause;
use crate::strategy::set_default;
use crate::table::{
    AGE, CONTAINERS, Column, Doc, IMAGES, NAME, col, containers_and_images, n, name_and_age,
    or_none,
};

pub struct ReplicaSet;

impl Kind for ReplicaSet {
    typed_as!(k8s_openapi::api::apps::v1::ReplicaSet);

    fn quantity_maps<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        pod_spec_quantity_maps(object.pointer("/spec/template/spec"))
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["metadata.name", "metadata.namespace", "status.replicas"]
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert("status".into(), json!({}));
    }

    fn apply_defaults(&self, object: &mut Value) {
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            set_default(spec, "replicas", json!(1));
        }
        default_template(object);
    }

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        validate_replicated(object, old, causes);
    }

    fn columns(&self) -> &[Column] {
        REPLICA_SET
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let (containers, images) = containers_and_images(o.pointer("/spec/template/spec"));
        // `metav1.FormatLabelSelector`: `<none>` when empty, `<error>` when invalid.
        let selector = crate::selector::label_selector_string(o.pointer("/spec/selector"))
            .map(or_none)
            .unwrap_or_else(|| "<error>".into());
        let cells = vec![
            name,
            json!(n(o, "/spec/replicas")),
            json!(n(o, "/status/replicas")),
            json!(n(o, "/status/readyReplicas")),
            age,
            json!(containers),
            json!(images),
            json!(selector),
        ];
        (cells, None)
    }
}

const REPLICA_SET: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        0,
        Doc::Field("io.k8s.api.apps.v1.ReplicaSetSpec", "replicas"),
    ),
    col(
        "Current",
        "integer",
        0,
        Doc::Field("io.k8s.api.apps.v1.ReplicaSetStatus", "replicas"),
    ),
    col(
        "Ready",
        "integer",
        0,
        Doc::Field("io.k8s.api.apps.v1.ReplicaSetStatus", "readyReplicas"),
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    col(
        "Selector",
        "string",
        1,
        Doc::Field("io.k8s.api.apps.v1.ReplicaSetSpec", "selector"),
    ),
];
