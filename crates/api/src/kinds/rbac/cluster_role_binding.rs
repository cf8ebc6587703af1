//! ClusterRoleBindings (`rbac.authorization.k8s.io/v1`): upstream's
//! `ValidateClusterRoleBinding` and `printClusterRoleBinding`.

use serde_json::Value;

use crate::kinds::rbac::{
    CLUSTER_ROLE_BINDING_COLUMNS, NOT_AUTHORIZED, binding_row, validate_binding,
};
use crate::kinds::{Kind, typed_as};
use crate::status::Cause;
use crate::table::Column;

pub struct ClusterRoleBinding;

impl Kind for ClusterRoleBinding {
    typed_as!(k8s_openapi::api::rbac::v1::ClusterRoleBinding);

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        // A cluster binding's service accounts must say their namespace.
        validate_binding(object, old, &["ClusterRole"], true, causes);
    }

    fn columns(&self) -> &[Column] {
        CLUSTER_ROLE_BINDING_COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        (binding_row(o, now), None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(NOT_AUTHORIZED)
    }
}
