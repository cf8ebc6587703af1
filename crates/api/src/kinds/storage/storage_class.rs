//! StorageClasses (`storage.k8s.io/v1`, cluster-scoped): upstream's
//! `SetDefaults_StorageClass`, `ValidateStorageClass` and `printStorageClass`.

use serde_json::{Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::{required_str, set_default, supported};
use crate::table::{AGE, Column, Doc, NAME, col, name_and_age, s};

pub struct StorageClass;

impl Kind for StorageClass {
    /// Upstream's registry sets `ReturnDeletedObject: true` for this kind.
    fn returns_deleted_object(&self) -> bool {
        true
    }

    typed_as!(k8s_openapi::api::storage::v1::StorageClass);

    fn apply_defaults(&self, object: &mut Value) {
        if let Some(map) = object.as_object_mut() {
            set_default(map, "reclaimPolicy", json!("Delete"));
            set_default(map, "volumeBindingMode", json!("Immediate"));
        }
    }

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        required_str(object, "/provisioner", causes);
        supported(object, "/reclaimPolicy", &["Delete", "Retain"], causes);
        supported(
            object,
            "/volumeBindingMode",
            &["Immediate", "WaitForFirstConsumer"],
            causes,
        );
        if let Some(old) = old {
            for field in [
                "parameters",
                "provisioner",
                "reclaimPolicy",
                "volumeBindingMode",
            ] {
                if old.get(field) != object.get(field) {
                    causes.push(cause(
                        "FieldValueForbidden",
                        field,
                        format!("Forbidden: updates to {field} are forbidden."),
                    ));
                }
            }
        }
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [_, age] = name_and_age(o, now);
        let annotations = o.pointer("/metadata/annotations");
        let is_default = [
            "storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class",
        ]
        .iter()
        .any(|a| annotations.and_then(|m| m.get(a)).and_then(Value::as_str) == Some("true"));
        let mut name = s(o, "/metadata/name").to_string();
        if is_default {
            name.push_str(" (default)");
        }
        let or = |pointer: &str, default: &str| match s(o, pointer) {
            "" => default.to_string(),
            value => value.to_string(),
        };
        let cells = vec![
            json!(name),
            json!(s(o, "/provisioner")),
            json!(or("/reclaimPolicy", "Delete")),
            json!(or("/volumeBindingMode", "Immediate")),
            json!(
                o.get("allowVolumeExpansion")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age,
        ];
        (cells, None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium does not provision volumes yet: the StorageClass is stored, but no volume is made for claims that name it",
        )
    }
}

const SC: &str = "io.k8s.api.storage.v1.StorageClass";
const COLUMNS: &[Column] = &[
    NAME,
    col("Provisioner", "string", 0, Doc::Field(SC, "provisioner")),
    col(
        "ReclaimPolicy",
        "string",
        0,
        Doc::Field(SC, "reclaimPolicy"),
    ),
    col(
        "VolumeBindingMode",
        "string",
        0,
        Doc::Field(SC, "volumeBindingMode"),
    ),
    col(
        "AllowVolumeExpansion",
        "string",
        0,
        Doc::Field(SC, "allowVolumeExpansion"),
    ),
    AGE,
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    #[test]
    fn defaults_row_and_validation() {
        let sc = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "local", "creationTimestamp": created(),
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "kubernetes.io/no-provisioner"});
        let stored = created_object("storage.k8s.io", "StorageClass", sc.clone());
        assert_eq!(
            cells("storage.k8s.io", "StorageClass", stored),
            json!([
                "local (default)",
                "kubernetes.io/no-provisioner",
                "Delete",
                "Immediate",
                false,
                "10m"
            ])
        );
        assert!(problems("storage.k8s.io", "StorageClass", sc).is_empty());
        let found = problems(
            "storage.k8s.io",
            "StorageClass",
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "x"}, "reclaimPolicy": "Recycle"}),
        );
        assert_eq!(found[0], ("provisioner".into(), "Required value".into()));
        assert_eq!(found[1].0, "reclaimPolicy");
    }
}
