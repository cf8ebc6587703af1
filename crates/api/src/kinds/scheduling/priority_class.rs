//! PriorityClasses (`scheduling.k8s.io/v1`, cluster-scoped): upstream's
//! `SetDefaults_PriorityClass`, `ValidatePriorityClass` and `printPriorityClass`.

use serde_json::{Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::{set_default, supported};
use crate::table::{AGE, Column, Doc, NAME, col, n, name_and_age, s};

pub struct PriorityClass;

/// The highest value a user-defined class may have (`HighestUserDefinablePriority`).
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

impl Kind for PriorityClass {
    typed_as!(k8s_openapi::api::scheduling::v1::PriorityClass);

    fn apply_defaults(&self, object: &mut Value) {
        if let Some(map) = object.as_object_mut() {
            set_default(map, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
    }

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        let name = s(object, "/metadata/name");
        if name.starts_with("system-") {
            causes.push(cause(
                "FieldValueInvalid",
                "metadata.name",
                format!("Invalid value: {name:?}: priority class names with 'system-' prefix are reserved"),
            ));
        }
        if n(object, "/value") > HIGHEST_USER_PRIORITY {
            causes.push(cause(
                "FieldValueForbidden",
                "value",
                format!("Forbidden: maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
            ));
        }
        supported(
            object,
            "/preemptionPolicy",
            &["Never", "PreemptLowerPriority"],
            causes,
        );
        if let Some(old) = old {
            if old.get("value") != object.get("value") {
                causes.push(cause(
                    "FieldValueForbidden",
                    "value",
                    "Forbidden: may not be changed in an update.",
                ));
            }
        }
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let global = o
            .get("globalDefault")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        (
            vec![
                name,
                json!(n(o, "/value")),
                json!(global),
                age,
                json!(s(o, "/preemptionPolicy")),
            ],
            None,
        )
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium does not schedule or preempt by priority yet: the PriorityClass is stored, but pods do not get its priority",
        )
    }
}

const PC: &str = "io.k8s.api.scheduling.v1.PriorityClass";
const COLUMNS: &[Column] = &[
    NAME,
    col("Value", "integer", 0, Doc::Field(PC, "value")),
    col(
        "Global-Default",
        "boolean",
        0,
        Doc::Field(PC, "globalDefault"),
    ),
    AGE,
    col(
        "PreemptionPolicy",
        "string",
        1,
        Doc::Field(PC, "preemptionPolicy"),
    ),
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    #[test]
    fn defaults_row_and_validation() {
        let pc = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "high", "creationTimestamp": created()}, "value": 1000});
        let stored = created_object("scheduling.k8s.io", "PriorityClass", pc.clone());
        assert_eq!(
            cells("scheduling.k8s.io", "PriorityClass", stored),
            json!(["high", 1000, false, "10m", "PreemptLowerPriority"])
        );
        assert!(problems("scheduling.k8s.io", "PriorityClass", pc).is_empty());
        let bad = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "system-mine"}, "value": 2000000000});
        let fields: Vec<String> = problems("scheduling.k8s.io", "PriorityClass", bad)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(fields, ["metadata.name", "value"]);
    }
}
