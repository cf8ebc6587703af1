//! Deployments (`apps/v1`): upstream's `SetDefaults_Deployment`, `ValidateDeployment` (the
//! parts Podium checks) and `printDeployment`.

use serde_json::{Map, Value, json};

use crate::kinds::core::pod::{default_template, pod_spec_quantity_maps};
use crate::kinds::{Kind, typed_as};
use crate::status::Cause;
use crate::strategy::set_default;
use crate::table::{
    AGE, CONTAINERS, Column, Doc, IMAGES, NAME, col, containers_and_images, n, name_and_age,
};

pub struct Deployment;

impl Kind for Deployment {
    typed_as!(k8s_openapi::api::apps::v1::Deployment);

    fn quantity_maps<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        pod_spec_quantity_maps(object.pointer("/spec/template/spec"))
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
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(spec, "strategy", json!({}));
            if let Some(strategy) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
                set_default(strategy, "type", json!("RollingUpdate"));
                if strategy.get("type") == Some(&json!("RollingUpdate")) {
                    set_default(strategy, "rollingUpdate", json!({}));
                    if let Some(ru) = strategy
                        .get_mut("rollingUpdate")
                        .and_then(Value::as_object_mut)
                    {
                        set_default(ru, "maxSurge", json!("25%"));
                        set_default(ru, "maxUnavailable", json!("25%"));
                    }
                }
            }
        }
        default_template(object);
    }

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        validate_replicated(object, old, causes);
    }

    fn columns(&self) -> &[Column] {
        DEPLOYMENT
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let (containers, images) = containers_and_images(o.pointer("/spec/template/spec"));
        let selector = crate::selector::label_selector_string(o.pointer("/spec/selector"))
            .unwrap_or_else(|| "<invalid>".into());
        let cells = vec![
            name,
            json!(format!(
                "{}/{}",
                n(o, "/status/readyReplicas"),
                n(o, "/spec/replicas")
            )),
            json!(n(o, "/status/updatedReplicas")),
            json!(n(o, "/status/availableReplicas")),
            age,
            json!(containers),
            json!(images),
            json!(selector),
        ];
        (cells, None)
    }
}

/// What Deployments and ReplicaSets share: counts, a selector matching the template's
/// labels and immutable once set, and the template's pod spec.
pub(crate) fn validate_replicated(object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    use crate::strategy::{label_problems, non_negative, validate_selector_matches_template};
    non_negative(object, "/spec/replicas", causes);
    non_negative(object, "/spec/minReadySeconds", causes);
    non_negative(object, "/spec/revisionHistoryLimit", causes);
    validate_selector_matches_template(object, causes);
    label_problems(object, "/spec/template/metadata/labels", causes);
    crate::kinds::core::pod::validate_pod_spec(
        object.pointer("/spec/template/spec"),
        "spec.template.spec",
        causes,
    );
    if let (Some(old), Some(new_sel)) = (old, object.pointer("/spec/selector")) {
        if old.pointer("/spec/selector").is_some_and(|s| s != new_sel) {
            causes.push(crate::status::cause(
                "FieldValueInvalid",
                "spec.selector",
                "Invalid value: field is immutable",
            ));
        }
    }
}

const DEPLOYMENT: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        0,
        Doc::Text("Number of the pod with ready state"),
    ),
    col(
        "Up-to-date",
        "string",
        0,
        Doc::Field("io.k8s.api.apps.v1.DeploymentStatus", "updatedReplicas"),
    ),
    col(
        "Available",
        "string",
        0,
        Doc::Field("io.k8s.api.apps.v1.DeploymentStatus", "availableReplicas"),
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    col(
        "Selector",
        "string",
        1,
        Doc::Field("io.k8s.api.apps.v1.DeploymentSpec", "selector"),
    ),
];
