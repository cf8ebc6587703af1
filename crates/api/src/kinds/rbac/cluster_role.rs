//! ClusterRoles (`rbac.authorization.k8s.io/v1`): upstream's `ValidateClusterRole` rules check; no
//! printer upstream, so `kubectl get` shows the name and creation time.

use serde_json::Value;

use crate::kinds::rbac::{NOT_AUTHORIZED, validate_rules};
use crate::kinds::{Kind, typed_as};
use crate::status::Cause;
use crate::table::{Column, NAME_AND_CREATED_AT, name_and_created_at};

pub struct ClusterRole;

impl Kind for ClusterRole {
    typed_as!(k8s_openapi::api::rbac::v1::ClusterRole);

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        validate_rules(object, false, causes);
    }

    fn columns(&self) -> &[Column] {
        NAME_AND_CREATED_AT
    }

    fn row(&self, o: &Value, _now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        (name_and_created_at(o), None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(NOT_AUTHORIZED)
    }
}
