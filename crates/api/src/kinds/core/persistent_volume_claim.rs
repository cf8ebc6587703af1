//! PersistentVolumeClaims (`v1`): upstream's `SetDefaults_PersistentVolumeClaim`,
//! `ValidatePersistentVolumeClaim` (the parts Podium checks) and
//! `printPersistentVolumeClaim`.

use serde_json::{Map, Value, json};

use crate::kinds::core::persistent_volume::{
    access_modes_text, unset_if_empty, validate_access_modes, volume_class,
};
use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::{set_default, supported};
use crate::table::{AGE, Column, Doc, NAME, arr, col, name_and_age, s};

pub struct PersistentVolumeClaim;

impl Kind for PersistentVolumeClaim {
    /// Upstream's registry sets `ReturnDeletedObject: true` for this kind.
    fn returns_deleted_object(&self) -> bool {
        true
    }

    typed_as!(k8s_openapi::api::core::v1::PersistentVolumeClaim);

    fn quantity_maps<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        ["/spec/resources/requests", "/spec/resources/limits"]
            .iter()
            .filter_map(|p| object.pointer(p))
            .collect()
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert("status".into(), json!({"phase": "Pending"}));
    }

    fn apply_defaults(&self, object: &mut Value) {
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            set_default(spec, "volumeMode", json!("Filesystem"));
        }
    }

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        validate_access_modes(object, "/spec/accessModes", causes);
        if object
            .pointer("/spec/resources/requests/storage")
            .is_none_or(Value::is_null)
        {
            causes.push(cause(
                "FieldValueRequired",
                "spec.resources[storage]",
                "Required value",
            ));
        }
        supported(object, "/spec/volumeMode", &["Block", "Filesystem"], causes);
        if let Some(old) = old {
            // Only the requested size (and a few others) may change once created.
            let strip = |v: &Value| {
                let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(m) = spec.as_object_mut() {
                    m.remove("resources");
                    m.remove("volumeAttributesClassName");
                    if v.pointer("/spec/volumeName").is_none_or(|n| n == "") {
                        m.remove("volumeName");
                    }
                }
                spec
            };
            if strip(old) != strip(object) {
                causes.push(cause(
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                ));
            }
        }
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let phase = if o
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
        {
            "Terminating"
        } else {
            s(o, "/status/phase")
        };
        // Capacity and modes are the bound volume's, shown once bound.
        let bound = !s(o, "/spec/volumeName").is_empty();
        let (capacity, modes) = if bound {
            (
                s(o, "/status/capacity/storage").to_string(),
                access_modes_text(arr(o, "/status/accessModes")),
            )
        } else {
            (String::new(), String::new())
        };
        let cells = vec![
            name,
            json!(phase),
            json!(s(o, "/spec/volumeName")),
            json!(capacity),
            json!(modes),
            json!(volume_class(o, "/spec/storageClassName")),
            json!(unset_if_empty(s(o, "/spec/volumeAttributesClassName"))),
            age,
            json!(unset_if_empty(s(o, "/spec/volumeMode"))),
        ];
        (cells, None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium does not bind or provision volumes yet: the PersistentVolumeClaim is stored but stays Pending, and pods that use it are not started",
        )
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Status",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "phase"),
    ),
    col(
        "Volume",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.PersistentVolumeClaimSpec", "volumeName"),
    ),
    col(
        "Capacity",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "capacity"),
    ),
    col(
        "Access Modes",
        "string",
        0,
        Doc::Field(
            "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
            "accessModes",
        ),
    ),
    col(
        "StorageClass",
        "string",
        0,
        Doc::Text("StorageClass of the pvc"),
    ),
    col(
        "VolumeAttributesClass",
        "string",
        0,
        Doc::Text("VolumeAttributesClass of the pvc"),
    ),
    AGE,
    col(
        "VolumeMode",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.PersistentVolumeClaimSpec", "volumeMode"),
    ),
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    fn pvc() -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "creationTimestamp": created()},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    }

    #[test]
    fn defaults_row_and_validation() {
        let stored = created_object("", "PersistentVolumeClaim", pvc());
        assert_eq!(stored["spec"]["volumeMode"], "Filesystem");
        assert_eq!(
            cells("", "PersistentVolumeClaim", stored),
            json!([
                "data",
                "Pending",
                "",
                "",
                "",
                "",
                "<unset>",
                "10m",
                "Filesystem"
            ])
        );
        assert!(problems("", "PersistentVolumeClaim", pvc()).is_empty());
        let found = problems(
            "",
            "PersistentVolumeClaim",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "x"}, "spec": {}}),
        );
        assert_eq!(
            found,
            [
                (
                    "spec.accessModes".to_string(),
                    "Required value: at least 1 access mode is required".to_string()
                ),
                (
                    "spec.resources[storage]".to_string(),
                    "Required value".to_string()
                ),
            ]
        );
    }
}
