//! PersistentVolumes (`v1`, cluster-scoped): upstream's `SetDefaults_PersistentVolume`,
//! `ValidatePersistentVolume` (the parts Podium checks) and `printPersistentVolume`.

use serde_json::{Map, Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::{required, set_default, supported};
use crate::table::{AGE, Column, Doc, NAME, arr, col, name_and_age, s};

pub struct PersistentVolume;

/// The volume sources a PersistentVolume may name (exactly one).
const SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

pub(crate) const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

impl Kind for PersistentVolume {
    /// Upstream's registry sets `ReturnDeletedObject: true` for this kind.
    fn returns_deleted_object(&self) -> bool {
        true
    }

    typed_as!(k8s_openapi::api::core::v1::PersistentVolume);

    fn quantity_maps<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        object.pointer("/spec/capacity").into_iter().collect()
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert("status".into(), json!({"phase": "Pending"}));
    }

    fn apply_defaults(&self, object: &mut Value) {
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            set_default(spec, "volumeMode", json!("Filesystem"));
        }
    }

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        validate_access_modes(object, "/spec/accessModes", causes);
        if object
            .pointer("/spec/capacity/storage")
            .is_none_or(Value::is_null)
        {
            required(object, "/spec/capacity", causes);
        }
        let sources = SOURCES
            .iter()
            .filter(|source| object.pointer(&format!("/spec/{source}")).is_some())
            .count();
        if sources == 0 {
            causes.push(cause(
                "FieldValueRequired",
                "spec",
                "Required value: must specify a volume type",
            ));
        } else if sources > 1 {
            causes.push(cause(
                "FieldValueForbidden",
                "spec",
                "Forbidden: may not specify more than 1 volume type",
            ));
        }
        supported(
            object,
            "/spec/persistentVolumeReclaimPolicy",
            &["Delete", "Recycle", "Retain"],
            causes,
        );
        supported(object, "/spec/volumeMode", &["Block", "Filesystem"], causes);
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let claim = match o.pointer("/spec/claimRef") {
            Some(claim) if claim.is_object() => {
                format!("{}/{}", s(claim, "/namespace"), s(claim, "/name"))
            }
            _ => String::new(),
        };
        let phase = if o
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
        {
            "Terminating"
        } else {
            s(o, "/status/phase")
        };
        let cells = vec![
            name,
            json!(s(o, "/spec/capacity/storage")),
            json!(access_modes_text(arr(o, "/spec/accessModes"))),
            json!(s(o, "/spec/persistentVolumeReclaimPolicy")),
            json!(phase),
            json!(claim),
            json!(volume_class(o, "/spec/storageClassName")),
            json!(unset_if_empty(s(o, "/spec/volumeAttributesClassName"))),
            json!(s(o, "/status/reason")),
            age,
            json!(unset_if_empty(s(o, "/spec/volumeMode"))),
        ];
        (cells, None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium does not bind or mount PersistentVolumes yet: the PersistentVolume is stored, but no claim is bound to it",
        )
    }
}

/// At least one access mode, each a known one.
pub(crate) fn validate_access_modes(object: &Value, pointer: &str, causes: &mut Vec<Cause>) {
    let field = crate::strategy::field_path(pointer);
    let modes = arr(object, pointer);
    if modes.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            &field,
            "Required value: at least 1 access mode is required",
        ));
    }
    for mode in modes.iter().filter_map(Value::as_str) {
        if !ACCESS_MODES.contains(&mode) {
            causes.push(crate::strategy::not_supported(&field, mode, ACCESS_MODES));
        }
    }
}

/// Upstream's `GetAccessModesAsString`: short names in a fixed order.
pub(crate) fn access_modes_text(modes: &[Value]) -> String {
    let has = |mode: &str| modes.iter().any(|m| m == mode);
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// Upstream's `GetPersistentVolume(Claim)Class`: the beta annotation wins over the field.
pub(crate) fn volume_class(o: &Value, field: &str) -> String {
    let annotation = o
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .and_then(Value::as_str);
    annotation.unwrap_or_else(|| s(o, field)).to_string()
}

pub(crate) fn unset_if_empty(text: &str) -> String {
    if text.is_empty() {
        "<unset>".into()
    } else {
        text.to_string()
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Capacity",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.PersistentVolumeSpec", "capacity"),
    ),
    col(
        "Access Modes",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.PersistentVolumeSpec", "accessModes"),
    ),
    col(
        "Reclaim Policy",
        "string",
        0,
        Doc::Field(
            "io.k8s.api.core.v1.PersistentVolumeSpec",
            "persistentVolumeReclaimPolicy",
        ),
    ),
    col(
        "Status",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.PersistentVolumeStatus", "phase"),
    ),
    col(
        "Claim",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.PersistentVolumeSpec", "claimRef"),
    ),
    col(
        "StorageClass",
        "string",
        0,
        Doc::Text("StorageClass of the pv"),
    ),
    col(
        "VolumeAttributesClass",
        "string",
        0,
        Doc::Text("VolumeAttributesClass of the pv"),
    ),
    col(
        "Reason",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.PersistentVolumeStatus", "reason"),
    ),
    AGE,
    col(
        "VolumeMode",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.PersistentVolumeSpec", "volumeMode"),
    ),
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    fn pv() -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "pv1", "creationTimestamp": created()},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                "hostPath": {"path": "/data"}, "storageClassName": "manual",
                "claimRef": {"namespace": "default", "name": "data"}}})
    }

    #[test]
    fn defaults_row_and_validation() {
        let stored = created_object("", "PersistentVolume", pv());
        assert_eq!(stored["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(stored["status"]["phase"], "Pending");
        assert_eq!(
            cells("", "PersistentVolume", stored),
            json!([
                "pv1",
                "1Gi",
                "RWO,ROX",
                "Retain",
                "Pending",
                "default/data",
                "manual",
                "<unset>",
                "",
                "10m",
                "Filesystem"
            ])
        );
        assert!(problems("", "PersistentVolume", pv()).is_empty());
        let mut bad = pv();
        bad["spec"] = json!({"accessModes": ["ReadWriteSometimes"]});
        let found = problems("", "PersistentVolume", bad);
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.accessModes", "spec.capacity", "spec"],
            "{found:?}"
        );
        assert!(
            found[0]
                .1
                .starts_with("Unsupported value: \"ReadWriteSometimes\"")
        );
    }
}
