//! ServiceAccounts (`v1`): upstream's `pkg/registry/core/serviceaccount` and
//! `printServiceAccount`. A `default` one is made in every namespace by the controllers.

use serde_json::{Value, json};

use crate::kinds::{Kind, typed_as};
use crate::table::{AGE, Column, Doc, NAME, arr, col, name_and_age};

pub struct ServiceAccount;

impl Kind for ServiceAccount {
    /// Upstream's registry sets `ReturnDeletedObject: true` for this kind.
    fn returns_deleted_object(&self) -> bool {
        true
    }

    typed_as!(k8s_openapi::api::core::v1::ServiceAccount);

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        (vec![name, json!(arr(o, "/secrets").len()), age], None)
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Secrets",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.ServiceAccount", "secrets"),
    ),
    AGE,
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created};
    use serde_json::json;

    #[test]
    fn row_counts_secrets() {
        let sa = json!({"metadata": {"name": "default", "creationTimestamp": created()},
            "secrets": [{"name": "t"}]});
        assert_eq!(
            cells("", "ServiceAccount", sa),
            json!(["default", 1, "10m"])
        );
    }
}
