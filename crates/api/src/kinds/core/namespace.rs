//! Namespaces (`v1`, cluster-scoped): upstream's `pkg/registry/core/namespace`.

use serde_json::{Map, Value, json};

use crate::kinds::{Kind, typed_as};
use crate::strategy::set_default;
use crate::table::{AGE, Column, Doc, NAME, col, name_and_age, s};

pub struct Namespace;

impl Kind for Namespace {
    /// Upstream's registry sets `ReturnDeletedObject: true` for this kind.
    fn returns_deleted_object(&self) -> bool {
        true
    }

    typed_as!(k8s_openapi::api::core::v1::Namespace);

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["metadata.name", "metadata.namespace", "status.phase"]
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert("status".into(), json!({"phase": "Active"}));
    }

    fn apply_defaults(&self, object: &mut Value) {
        if let Some(map) = object.as_object_mut() {
            set_default(map, "spec", json!({"finalizers": ["kubernetes"]}));
        }
    }

    fn name_is_dns_label(&self) -> bool {
        true
    }

    fn columns(&self) -> &[Column] {
        NAMESPACE
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        (vec![name, json!(s(o, "/status/phase")), age], None)
    }
}

const NAMESPACE: &[Column] = &[
    NAME,
    col(
        "Status",
        "string",
        0,
        Doc::Text("The status of the namespace"),
    ),
    AGE,
];
