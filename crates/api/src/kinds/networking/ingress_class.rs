//! IngressClasses (`networking.k8s.io/v1`, cluster-scoped): upstream's
//! `ValidateIngressClass` and `printIngressClass`.

use serde_json::{Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::required_str;
use crate::table::{AGE, Column, Doc, NAME, col, name_and_age, s};

pub struct IngressClass;

impl Kind for IngressClass {
    typed_as!(k8s_openapi::api::networking::v1::IngressClass);

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        required_str(object, "/spec/controller", causes);
        if let Some(old) = old {
            if old.pointer("/spec/controller") != object.pointer("/spec/controller") {
                causes.push(cause(
                    "FieldValueInvalid",
                    "spec.controller",
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
        let parameters = match o.pointer("/spec/parameters").filter(|p| p.is_object()) {
            Some(p) => {
                let kind = match s(p, "/apiGroup") {
                    "" if p.get("apiGroup").is_none() => s(p, "/kind").to_string(),
                    group => format!("{}.{group}", s(p, "/kind")),
                };
                format!("{kind}/{}", s(p, "/name"))
            }
            None => "<none>".into(),
        };
        (
            vec![
                name,
                json!(s(o, "/spec/controller")),
                json!(parameters),
                age,
            ],
            None,
        )
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium has no ingress controller yet: the IngressClass is stored, but no controller implements it",
        )
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Controller",
        "string",
        0,
        Doc::Text("Controller that is responsible for handling this class"),
    ),
    col(
        "Parameters",
        "string",
        0,
        Doc::Text("A reference to a resource with additional parameters"),
    ),
    AGE,
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, problems};
    use serde_json::json;

    #[test]
    fn row_and_validation() {
        let class = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "nginx", "creationTimestamp": created()},
            "spec": {"controller": "k8s.io/ingress-nginx",
                "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
        assert_eq!(
            cells("networking.k8s.io", "IngressClass", class.clone()),
            json!([
                "nginx",
                "k8s.io/ingress-nginx",
                "IngressParameters.k8s.example.com/external-lb",
                "10m"
            ])
        );
        assert!(problems("networking.k8s.io", "IngressClass", class).is_empty());
        let bad = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "x"}, "spec": {}});
        assert_eq!(
            problems("networking.k8s.io", "IngressClass", bad),
            [("spec.controller".to_string(), "Required value".to_string())]
        );
    }
}
