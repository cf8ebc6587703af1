//! Roles (`rbac.authorization.k8s.io/v1`): upstream's `ValidateRole` rules check; no
//! printer upstream, so `kubectl get` shows the name and creation time.

use serde_json::Value;

use crate::kinds::rbac::{NOT_AUTHORIZED, validate_rules};
use crate::kinds::{Kind, typed_as};
use crate::status::Cause;
use crate::table::{Column, NAME_AND_CREATED_AT, name_and_created_at};

pub struct Role;

impl Kind for Role {
    typed_as!(k8s_openapi::api::rbac::v1::Role);

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        validate_rules(object, true, causes);
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

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, problems};
    use serde_json::json;

    #[test]
    fn row_and_rule_validation() {
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "reader", "creationTimestamp": created()},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
        assert_eq!(
            cells("rbac.authorization.k8s.io", "Role", role.clone()),
            json!(["reader", "2026-01-01T00:00:00Z"])
        );
        assert!(problems("rbac.authorization.k8s.io", "Role", role).is_empty());
        let bad = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
            "rules": [{"resources": ["pods"]}, {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]});
        let fields: Vec<String> = problems("rbac.authorization.k8s.io", "Role", bad)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "rules[0].verbs",
                "rules[0].apiGroups",
                "rules[1].nonResourceURLs"
            ]
        );
    }
}
