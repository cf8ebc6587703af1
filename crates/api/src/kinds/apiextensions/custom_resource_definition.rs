//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`, cluster-scoped): upstream's
//! `SetDefaults_CustomResourceDefinition*` and `ValidateCustomResourceDefinition` (the
//! parts Podium serves), and the default table convertor (`NAME`, `CREATED AT`). The API
//! server's CRD controller serves what they define.

use serde_json::{Value, json};

use super::custom_resource::{compile_json_path, json_path_pointer};
use super::schema;
use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::{
    field_path, is_dns_label, is_dns_subdomain, required_str, set_default, supported,
};
use crate::table::{Column, NAME_AND_CREATED_AT, name_and_created_at, s};

pub struct CustomResourceDefinition;

/// The finalizer the CRD controller holds while it deletes a deleted CRD's objects.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

const COLUMN_TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];

impl Kind for CustomResourceDefinition {
    typed_as!(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition);

    fn apply_defaults(&self, object: &mut Value) {
        let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        set_default(spec, "conversion", json!({"strategy": "None"}));
        if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
            let kind = names
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if !kind.is_empty() {
                set_default(names, "singular", json!(kind.to_lowercase()));
                set_default(names, "listKind", json!(format!("{kind}List")));
            }
        }
    }

    fn prepare_for_create(&self, object: &mut serde_json::Map<String, Value>) {
        object.insert(
            "status".into(),
            json!({"acceptedNames": {"kind": "", "plural": ""}, "conditions": [], "storedVersions": []}),
        );
    }

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        let group = required_str(object, "/spec/group", causes).unwrap_or("");
        if !group.is_empty() && (!is_dns_subdomain(group) || !group.contains('.')) {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.group",
                format!("Invalid value: {group:?}: should be a domain with at least one dot"),
            ));
        }
        let plural = required_str(object, "/spec/names/plural", causes).unwrap_or("");
        if !plural.is_empty() && !is_dns_label(plural) {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.names.plural",
                format!("Invalid value: {plural:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
            ));
        }
        let singular = s(object, "/spec/names/singular");
        if !singular.is_empty() && !is_dns_label(singular) {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.names.singular",
                format!("Invalid value: {singular:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"),
            ));
        }
        required_str(object, "/spec/names/kind", causes);
        let name = s(object, "/metadata/name");
        if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
            causes.push(cause(
                "FieldValueInvalid",
                "metadata.name",
                format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
            ));
        }
        match object.pointer("/spec/scope").and_then(Value::as_str) {
            None | Some("") => {
                causes.push(cause("FieldValueRequired", "spec.scope", "Required value"))
            }
            Some(_) => supported(object, "/spec/scope", &["Cluster", "Namespaced"], causes),
        }
        if let Some(strategy) = object
            .pointer("/spec/conversion/strategy")
            .and_then(Value::as_str)
        {
            if strategy != "None" {
                causes.push(cause(
                    "FieldValueNotSupported",
                    "spec.conversion.strategy",
                    format!("Unsupported value: {strategy:?}: supported values: \"None\" (Podium does not call conversion webhooks)"),
                ));
            }
        }
        if object
            .pointer("/spec/preserveUnknownFields")
            .and_then(Value::as_bool)
            == Some(true)
        {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.preserveUnknownFields",
                "Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
            ));
        }
        validate_versions(object, causes);
        if let Some(old) = old {
            for pointer in ["/spec/group", "/spec/scope", "/spec/names/plural"] {
                if old.pointer(pointer) != object.pointer(pointer) {
                    let shown = object
                        .pointer(pointer)
                        .map(|v| v.to_string())
                        .unwrap_or_default();
                    causes.push(cause(
                        "FieldValueInvalid",
                        &field_path(pointer),
                        format!("Invalid value: {shown}: field is immutable"),
                    ));
                }
            }
        }
    }

    fn warnings(&self, object: &Value) -> Vec<String> {
        versions(object)
            .iter()
            .enumerate()
            .filter(|(_, v)| v.pointer("/schema/openAPIV3Schema").is_some_and(schema::has_cel_rules))
            .map(|(i, _)| {
                format!("spec.versions[{i}].schema.openAPIV3Schema: x-kubernetes-validations rules are not enforced by Podium yet; custom resources are checked against the rest of the schema")
            })
            .collect()
    }

    fn finalizers_on_delete(&self) -> &'static [&'static str] {
        &[CLEANUP_FINALIZER]
    }

    fn columns(&self) -> &[Column] {
        NAME_AND_CREATED_AT
    }

    fn row(&self, o: &Value, _now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        (name_and_created_at(o), None)
    }
}

fn versions(object: &Value) -> &[Value] {
    object
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn validate_versions(object: &Value, causes: &mut Vec<Cause>) {
    let versions = versions(object);
    let storage = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if storage != 1 {
        causes.push(cause(
            "FieldValueInvalid",
            "spec.versions",
            format!(
                "Invalid value: {}: must have exactly one version marked as storage version",
                if versions.is_empty() {
                    "null".to_string()
                } else {
                    "[...]".to_string()
                }
            ),
        ));
    }
    if !versions.is_empty() && !versions.iter().any(|v| v["served"].as_bool() == Some(true)) {
        causes.push(cause(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: \"[...]\": must have at least one version marked as served",
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, version) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        let name = version["name"].as_str().unwrap_or("");
        if name.is_empty() {
            causes.push(cause(
                "FieldValueRequired",
                &format!("{at}.name"),
                "Required value",
            ));
        } else if !is_dns_label(name) {
            causes.push(cause(
                "FieldValueInvalid",
                &format!("{at}.name"),
                format!("Invalid value: {name:?}: a DNS-1035 label must consist of lower case alphanumeric characters or '-'"),
            ));
        } else if seen.contains(&name) {
            causes.push(cause(
                "FieldValueDuplicate",
                &format!("{at}.name"),
                format!("Duplicate value: {name:?}"),
            ));
        }
        seen.push(name);
        match version.pointer("/schema/openAPIV3Schema") {
            None | Some(Value::Null) => causes.push(cause(
                "FieldValueRequired",
                &format!("{at}.schema.openAPIV3Schema"),
                "Required value: schemas are required",
            )),
            Some(schema_value) => schema::structural_problems(
                schema_value,
                &format!("{at}.schema.openAPIV3Schema"),
                causes,
            ),
        }
        for (j, column) in version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let at = format!("{at}.additionalPrinterColumns[{j}]");
            if column["name"].as_str().is_none_or(str::is_empty) {
                causes.push(cause(
                    "FieldValueRequired",
                    &format!("{at}.name"),
                    "Required value",
                ));
            }
            match column["type"].as_str() {
                Some(t) if COLUMN_TYPES.contains(&t) => {}
                Some(t) => causes.push(cause(
                    "FieldValueNotSupported",
                    &format!("{at}.type"),
                    format!("Unsupported value: {t:?}: supported values: \"boolean\", \"date\", \"integer\", \"number\", \"string\""),
                )),
                None => causes.push(cause("FieldValueRequired", &format!("{at}.type"), "Required value")),
            }
            match column["jsonPath"].as_str() {
                None | Some("") => causes.push(cause(
                    "FieldValueRequired",
                    &format!("{at}.jsonPath"),
                    "Required value",
                )),
                Some(path) => {
                    if let Err(e) = compile_json_path(path) {
                        causes.push(cause(
                            "FieldValueInvalid",
                            &format!("{at}.jsonPath"),
                            format!("Invalid value: {path:?}: must be a simple json path: {e}"),
                        ));
                    }
                }
            }
        }
        let selectable = version
            .get("selectableFields")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if selectable.len() > 8 {
            causes.push(cause(
                "FieldValueTooMany",
                &format!("{at}.selectableFields"),
                format!("Too many: {}: must have at most 8 items", selectable.len()),
            ));
        }
        for (j, field) in selectable.iter().enumerate() {
            let path = field["jsonPath"].as_str().unwrap_or("");
            if json_path_pointer(path).is_none() {
                causes.push(cause(
                    "FieldValueInvalid",
                    &format!("{at}.selectableFields[{j}].jsonPath"),
                    format!("Invalid value: {path:?}: must be a simple json path of fields, such as .spec.color"),
                ));
            }
        }
        if let Some(scale) = version.pointer("/subresources/scale") {
            for (field, under) in [
                ("specReplicasPath", "/spec/"),
                ("statusReplicasPath", "/status/"),
            ] {
                let path = scale[field].as_str().unwrap_or("");
                let ok = json_path_pointer(path).is_some_and(|p| p.starts_with(under));
                if !ok {
                    causes.push(cause(
                        "FieldValueInvalid",
                        &format!("{at}.subresources.scale.{field}"),
                        format!(
                            "Invalid value: {path:?}: should be a json path under .{}",
                            &under[1..under.len() - 1]
                        ),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::testing::problems;

    const GROUP: &str = "apiextensions.k8s.io";

    fn crd() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {"group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {"cronSpec": {"type": "string"}}}}}}}]}})
    }

    #[test]
    fn the_sample_crd_is_valid_and_defaulted() {
        assert_eq!(
            problems(GROUP, "CustomResourceDefinition", crd()),
            Vec::new()
        );
        let mut c = crd();
        CustomResourceDefinition.apply_defaults(&mut c);
        assert_eq!(c["spec"]["names"]["singular"], "crontab");
        assert_eq!(c["spec"]["names"]["listKind"], "CronTabList");
        assert_eq!(c["spec"]["conversion"]["strategy"], "None");
    }

    #[test]
    fn problems_name_their_fields() {
        let mut c = crd();
        c["metadata"]["name"] = json!("wrong");
        c["spec"]["versions"][0]["storage"] = json!(false);
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
            json!({"properties": {}});
        let found: Vec<String> = problems(GROUP, "CustomResourceDefinition", c)
            .into_iter()
            .map(|(field, message)| format!("{field}: {message}"))
            .collect();
        assert_eq!(
            found,
            vec![
                "metadata.name: Invalid value: \"wrong\": must be spec.names.plural+\".\"+spec.group",
                "spec.versions: Invalid value: [...]: must have exactly one version marked as storage version",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
            ]
        );
    }

    #[test]
    fn cel_rules_are_warned_about() {
        let mut c = crd();
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"] =
            json!([{"rule": "self.spec.x > 0"}]);
        assert_eq!(CustomResourceDefinition.warnings(&c).len(), 1);
        assert!(CustomResourceDefinition.warnings(&crd()).is_empty());
    }
}
