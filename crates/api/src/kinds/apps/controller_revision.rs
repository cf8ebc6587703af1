//! ControllerRevisions (`apps/v1`): immutable snapshots of a controller's template;
//! upstream's `ValidateControllerRevision` and `printControllerRevision`.

use serde_json::{Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::table::{AGE, Column, Doc, NAME, arr, col, n, name_and_age, s};

pub struct ControllerRevision;

impl Kind for ControllerRevision {
    typed_as!(k8s_openapi::api::apps::v1::ControllerRevision);

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        if n(object, "/revision") < 0 {
            causes.push(cause(
                "FieldValueInvalid",
                "revision",
                format!(
                    "Invalid value: {}: must be greater than or equal to 0",
                    n(object, "/revision")
                ),
            ));
        }
        if let Some(old) = old {
            if old.get("data") != object.get("data") {
                causes.push(cause(
                    "FieldValueInvalid",
                    "data",
                    "Invalid value: field is immutable",
                ));
            }
        }
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        // `kind.group/name` of the controller, lower-cased, as `formatResourceName` does.
        let controller = arr(o, "/metadata/ownerReferences")
            .iter()
            .find(|r| r["controller"].as_bool() == Some(true))
            .map(|r| {
                let group = s(r, "/apiVersion").rsplit_once('/').map_or("", |(g, _)| g);
                let kind = s(r, "/kind");
                let group_kind = if group.is_empty() {
                    kind.to_string()
                } else {
                    format!("{kind}.{group}")
                };
                format!("{}/{}", group_kind.to_lowercase(), s(r, "/name"))
            })
            .unwrap_or_else(|| "<none>".into());
        (
            vec![name, json!(controller), json!(n(o, "/revision")), age],
            None,
        )
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Controller",
        "string",
        0,
        Doc::Text("Controller of the object"),
    ),
    col(
        "Revision",
        "string",
        0,
        Doc::Field("io.k8s.api.apps.v1.ControllerRevision", "revision"),
    ),
    AGE,
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created};
    use serde_json::json;

    #[test]
    fn row_names_the_controller() {
        let cr = json!({"metadata": {"name": "db-7d4b", "creationTimestamp": created(),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u", "controller": true}]},
            "revision": 2});
        assert_eq!(
            cells("apps", "ControllerRevision", cr),
            json!(["db-7d4b", "statefulset.apps/db", 2, "10m"])
        );
    }
}
