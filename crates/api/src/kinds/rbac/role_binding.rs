//! RoleBindings (`rbac.authorization.k8s.io/v1`): upstream's `ValidateRoleBinding` and
//! `printRoleBinding`.

use serde_json::Value;

use crate::kinds::rbac::{NOT_AUTHORIZED, ROLE_BINDING_COLUMNS, binding_row, validate_binding};
use crate::kinds::{Kind, typed_as};
use crate::status::Cause;
use crate::table::Column;

pub struct RoleBinding;

impl Kind for RoleBinding {
    typed_as!(k8s_openapi::api::rbac::v1::RoleBinding);

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        validate_binding(object, old, &["Role", "ClusterRole"], false, causes);
    }

    fn columns(&self) -> &[Column] {
        ROLE_BINDING_COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        (binding_row(o, now), None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(NOT_AUTHORIZED)
    }
}

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, problems};
    use serde_json::json;

    #[test]
    fn row_and_validation() {
        let rb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "read-pods", "creationTimestamp": created()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "default", "namespace": "ns"}]});
        assert_eq!(
            cells("rbac.authorization.k8s.io", "RoleBinding", rb.clone()),
            json!(["read-pods", "Role/reader", "10m", "jane", "", "ns/default"])
        );
        assert!(problems("rbac.authorization.k8s.io", "RoleBinding", rb).is_empty());
        let bad = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Secret", "name": "x"},
            "subjects": [{"kind": "Robot", "name": "r2"}]});
        assert_eq!(
            problems("rbac.authorization.k8s.io", "RoleBinding", bad),
            [
                ("roleRef.kind".to_string(), "Unsupported value: \"Secret\": supported values: \"Role\", \"ClusterRole\"".to_string()),
                ("subjects[0].kind".to_string(), "Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"".to_string()),
            ]
        );
    }
}
