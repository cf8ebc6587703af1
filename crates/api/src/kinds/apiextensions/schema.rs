//! Structural schemas (a CRD version's `openAPIV3Schema`): what is checked of the schema
//! itself, and what it does to custom resources: unknown fields pruned, defaults filled,
//! values validated.
//!
//! Written here rather than taken from a JSON Schema crate because each step is
//! Kubernetes' own: pruning follows `x-kubernetes-preserve-unknown-fields` and
//! `x-kubernetes-embedded-resource`, nulls of non-nullable fields are dropped before
//! defaulting, `x-kubernetes-int-or-string` and list types are extensions, and the messages
//! and field paths must be kube-apiserver's (go-openapi's wording through apiextensions'
//! field errors) because users and tests read them.

use serde_json::{Map, Value};

use crate::status::{Cause, cause};

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn preserves_unknown(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-preserve-unknown-fields")
}

fn embedded(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-embedded-resource")
}

/// Remove what the schema does not declare, as upstream's pruning does: fields of objects
/// that list `properties` (unless they preserve unknown fields), and nulls where the schema
/// is not `nullable`. `root` keeps `apiVersion`, `kind` and `metadata`, as embedded
/// resources also do.
pub fn prune(value: &mut Value, schema: &Value, root: bool) {
    match value {
        Value::Object(map) => prune_object(map, schema, root || embedded(schema)),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prune(item, item_schema, false);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(map: &mut Map<String, Value>, schema: &Value, keep_type_meta: bool) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let preserve = preserves_unknown(schema);
    map.retain(|key, child| {
        if keep_type_meta && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            return true;
        }
        let child_schema = properties.and_then(|p| p.get(key)).or(additional);
        match child_schema {
            Some(s) => !(child.is_null() && !flag(s, "nullable")),
            None => preserve,
        }
    });
    for (key, child) in map.iter_mut() {
        if keep_type_meta && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(s) = properties.and_then(|p| p.get(key)).or(additional) {
            prune(child, s, false);
        }
    }
}

/// Fill in every `default` the schema declares where the field is missing, then descend, as
/// upstream's structural defaulting does (a default object is itself defaulted).
pub fn apply_defaults(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, property) in properties {
                    if !map.contains_key(key) {
                        if let Some(default) = property.get("default") {
                            map.insert(key.clone(), default.clone());
                        }
                    }
                }
                for (key, child) in map.iter_mut() {
                    if let Some(property) = properties.get(key) {
                        apply_defaults(child, property);
                    }
                }
            } else if let Some(additional) =
                schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for child in map.values_mut() {
                    apply_defaults(child, additional);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

/// go-openapi's name for the JSON type of a value, as its messages print it.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => is_integer(value),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    }
}

/// A value as a Go `%v`/field error prints it: strings quoted, numbers bare.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) | Value::Array(_) => "<object>".into(),
        other => other.to_string(),
    }
}

fn invalid(path: &str, value: &Value, message: String) -> Cause {
    cause(
        "FieldValueInvalid",
        path,
        format!("Invalid value: {}: {message}", shown(value)),
    )
}

/// Validate `value` against `schema`, adding field errors at `path` (`spec.replicas`,
/// `spec.items[0].name`). At the root, `apiVersion`, `kind` and `metadata` are checked by
/// the server itself and skipped here.
pub fn validate(value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    validate_at(value, schema, path, path.is_empty(), causes)
}

fn validate_at(value: &Value, schema: &Value, path: &str, root: bool, causes: &mut Vec<Cause>) {
    let shown_path = if path.is_empty() { "<root>" } else { path };
    if value.is_null() {
        if !flag(schema, "nullable") && schema.get("type").is_some() {
            causes.push(cause(
                "FieldValueTypeInvalid",
                shown_path,
                format!(
                    "Invalid value: \"null\": {shown_path} in body must be of type {}: \"null\"",
                    schema["type"].as_str().unwrap_or("object")
                ),
            ));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(value.is_string() || is_integer(value)) {
            causes.push(cause(
                "FieldValueTypeInvalid",
                shown_path,
                format!(
                    "Invalid value: \"{t}\": {shown_path} in body must be of type integer,string: \"{t}\"",
                    t = type_name(value)
                ),
            ));
            return;
        }
    } else if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        if !type_matches(expected, value) {
            let t = type_name(value);
            causes.push(cause(
                "FieldValueTypeInvalid",
                shown_path,
                format!("Invalid value: \"{t}\": {shown_path} in body must be of type {expected}: \"{t}\""),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(shown).collect();
            causes.push(cause(
                "FieldValueNotSupported",
                shown_path,
                format!(
                    "Unsupported value: {}: supported values: {}",
                    shown(value),
                    list.join(", ")
                ),
            ));
        }
    }
    match value {
        Value::String(s) => validate_string(s, value, schema, shown_path, causes),
        Value::Number(_) => validate_number(value, schema, shown_path, causes),
        Value::Array(items) => validate_array(items, value, schema, path, shown_path, causes),
        Value::Object(map) => validate_object(map, value, schema, path, root, causes),
        _ => {}
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        let Some(branches) = schema.get(combinator).and_then(Value::as_array) else {
            continue;
        };
        let results: Vec<Vec<Cause>> = branches
            .iter()
            .map(|branch| {
                let mut found = Vec::new();
                validate_at(value, branch, path, root, &mut found);
                found
            })
            .collect();
        let passing = results.iter().filter(|r| r.is_empty()).count();
        match combinator {
            "allOf" => causes.extend(results.into_iter().flatten()),
            "anyOf" if passing == 0 => causes.push(invalid(
                shown_path,
                value,
                format!("{shown_path} in body must be of type anyOf"),
            )),
            "oneOf" if passing != 1 => causes.push(invalid(
                shown_path,
                value,
                format!("{shown_path} in body must validate one and only one schema (oneOf)"),
            )),
            _ => {}
        }
    }
    if let Some(not) = schema.get("not") {
        let mut found = Vec::new();
        validate_at(value, not, path, root, &mut found);
        if found.is_empty() {
            causes.push(invalid(
                shown_path,
                value,
                format!("{shown_path} in body must not validate the schema (not)"),
            ));
        }
    }
}

fn validate_string(s: &str, value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let length = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if length > max {
            causes.push(cause(
                "FieldValueTooLong",
                path,
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
        if length < min {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body should be at least {min} chars long"),
            ));
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        // A pattern that does not compile was refused with the CRD; skip it here.
        if let Ok(re) = regex::Regex::new(pattern) {
            if !re.is_match(s) {
                causes.push(invalid(
                    path,
                    value,
                    format!("{path} in body should match '{pattern}'"),
                ));
            }
        }
    }
}

fn validate_number(value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(x) = value.as_f64() else { return };
    let exclusive = |name: &str| flag(schema, name);
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        if exclusive("exclusiveMaximum") && x >= max {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body should be less than {max}"),
            ));
        } else if x > max {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body should be less than or equal to {max}"),
            ));
        }
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        if exclusive("exclusiveMinimum") && x <= min {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body should be greater than {min}"),
            ));
        } else if x < min {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body should be greater than or equal to {min}"),
            ));
        }
    }
    if let Some(factor) = schema.get("multipleOf").and_then(Value::as_f64) {
        if factor > 0.0 && (x / factor).fract() != 0.0 {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body should be a multiple of {factor}"),
            ));
        }
    }
}

fn validate_array(
    items: &[Value],
    value: &Value,
    schema: &Value,
    path: &str,
    shown_path: &str,
    causes: &mut Vec<Cause>,
) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
        if items.len() as u64 > max {
            causes.push(cause(
                "FieldValueTooMany",
                shown_path,
                format!("Too many: {}: must have at most {max} items", items.len()),
            ));
        }
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
        if (items.len() as u64) < min {
            causes.push(invalid(
                shown_path,
                value,
                format!("{shown_path} in body should have at least {min} items"),
            ));
        }
    }
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    if flag(schema, "uniqueItems") || list_type == Some("set") {
        for (i, item) in items.iter().enumerate() {
            if items[..i].contains(item) {
                causes.push(cause(
                    "FieldValueDuplicate",
                    &format!("{path}[{i}]"),
                    format!("Duplicate value: {}", shown(item)),
                ));
            }
        }
    }
    if list_type == Some("map") {
        let keys: Vec<&str> = schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let key_of = |item: &Value| -> Vec<Value> {
            keys.iter()
                .map(|k| item.get(*k).cloned().unwrap_or(Value::Null))
                .collect()
        };
        for (i, item) in items.iter().enumerate() {
            let key = key_of(item);
            if items[..i].iter().any(|earlier| key_of(earlier) == key) {
                let shown_key: Vec<String> = keys
                    .iter()
                    .zip(&key)
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                causes.push(cause(
                    "FieldValueDuplicate",
                    &format!("{path}[{i}]"),
                    format!(
                        "Duplicate value: map[string]interface {{}}{{{}}}",
                        shown_key.join(", ")
                    ),
                ));
            }
        }
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate_at(item, item_schema, &format!("{path}[{i}]"), false, causes);
        }
    }
}

fn validate_object(
    map: &Map<String, Value>,
    value: &Value,
    schema: &Value,
    path: &str,
    root: bool,
    causes: &mut Vec<Cause>,
) {
    let skip =
        |key: &str| (root || embedded(schema)) && matches!(key, "apiVersion" | "kind" | "metadata");
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for key in required.iter().filter_map(Value::as_str) {
            if !skip(key) && !map.contains_key(key) {
                causes.push(cause(
                    "FieldValueRequired",
                    &join(path, key),
                    "Required value",
                ));
            }
        }
    }
    let shown_path = if path.is_empty() { "<root>" } else { path };
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
        if map.len() as u64 > max {
            causes.push(cause(
                "FieldValueTooMany",
                shown_path,
                format!("Too many: {}: must have at most {max} items", map.len()),
            ));
        }
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64) {
        if (map.len() as u64) < min {
            causes.push(invalid(
                shown_path,
                value,
                format!("{shown_path} in body should have at least {min} properties"),
            ));
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    for (key, child) in map {
        if skip(key) {
            continue;
        }
        let child_path = join(path, key);
        match properties.and_then(|p| p.get(key)) {
            Some(child_schema) => validate_at(child, child_schema, &child_path, false, causes),
            None => match additional {
                Some(s @ Value::Object(_)) => validate_at(child, s, &child_path, false, causes),
                Some(Value::Bool(false)) => causes.push(cause(
                    "FieldValueForbidden",
                    &child_path,
                    "Forbidden: additional properties are not allowed",
                )),
                _ => {}
            },
        }
    }
}

/// What upstream's structural-schema check refuses in a CRD's schema, with the field path
/// of the schema (`spec.versions[0].schema.openAPIV3Schema.properties[spec].type`).
pub fn structural_problems(schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    structural_at(schema, path, true, causes)
}

fn structural_at(schema: &Value, path: &str, root: bool, causes: &mut Vec<Cause>) {
    let Some(map) = schema.as_object() else {
        causes.push(cause(
            "FieldValueInvalid",
            path,
            "Invalid value: must be a schema object",
        ));
        return;
    };
    if map.contains_key("$ref") {
        causes.push(cause(
            "FieldValueForbidden",
            &format!("{path}.$ref"),
            "Forbidden: $ref is not supported",
        ));
    }
    let typed = map.get("type").and_then(Value::as_str);
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    if typed.is_none() && !int_or_string && !preserves_unknown(schema) {
        causes.push(cause(
            "FieldValueRequired",
            &format!("{path}.type"),
            "Required value: must not be empty for specified object fields",
        ));
    }
    if root && typed.is_some_and(|t| t != "object") {
        causes.push(cause(
            "FieldValueInvalid",
            &format!("{path}.type"),
            format!(
                "Invalid value: {:?}: must be object at the root",
                typed.unwrap_or("")
            ),
        ));
    }
    if let Some(t) = typed {
        if !matches!(
            t,
            "object" | "array" | "string" | "integer" | "number" | "boolean"
        ) {
            causes.push(cause(
                "FieldValueNotSupported",
                &format!("{path}.type"),
                format!("Unsupported value: {t:?}: supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""),
            ));
        }
    }
    if map.contains_key("properties")
        && map
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(true) && !a.is_null())
    {
        causes.push(cause(
            "FieldValueForbidden",
            &format!("{path}.additionalProperties"),
            "Forbidden: additionalProperties and properties are mutual exclusive",
        ));
    }
    if typed == Some("array") && !map.contains_key("items") {
        causes.push(cause(
            "FieldValueRequired",
            &format!("{path}.items"),
            "Required value: must be specified",
        ));
    }
    if let Some(pattern) = map.get("pattern").and_then(Value::as_str) {
        if let Err(e) = regex::Regex::new(pattern) {
            causes.push(cause(
                "FieldValueInvalid",
                &format!("{path}.pattern"),
                format!(
                    "Invalid value: {pattern:?}: must be a valid regular expression, but isn't: {e}"
                ),
            ));
        }
    }
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        for (key, child) in properties {
            structural_at(child, &format!("{path}.properties[{key}]"), false, causes);
        }
    }
    if let Some(items) = map.get("items") {
        structural_at(items, &format!("{path}.items"), false, causes);
    }
    if let Some(additional) = map.get("additionalProperties").filter(|a| a.is_object()) {
        structural_at(
            additional,
            &format!("{path}.additionalProperties"),
            false,
            causes,
        );
    }
}

/// Whether any schema node declares CEL rules (`x-kubernetes-validations`).
pub fn has_cel_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            map.contains_key("x-kubernetes-validations") || map.values().any(has_cel_rules)
        }
        Value::Array(items) => items.iter().any(has_cel_rules),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crontab_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["cronSpec"],
                    "properties": {
                        "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                        "image": {"type": "string"},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                        "mode": {"type": "string", "enum": ["fast", "slow"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            },
        })
    }

    fn problems(value: &Value) -> Vec<String> {
        let mut causes = Vec::new();
        validate(value, &crontab_schema(), "", &mut causes);
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn a_valid_object_passes() {
        let good = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "a"},
            "spec": {"cronSpec": "* * * * */5", "replicas": 3, "mode": "fast", "port": "http", "tags": ["a", "b"], "labels": {"x": "y"}}});
        assert_eq!(problems(&good), Vec::<String>::new());
    }

    #[test]
    fn problems_are_said_as_upstream_says_them() {
        let bad = json!({"spec": {"cronSpec": "nope", "replicas": "three", "mode": "medium", "port": true, "tags": ["a", "a"], "labels": {"x": 1}}});
        assert_eq!(
            problems(&bad),
            vec![
                "spec.cronSpec: Invalid value: \"nope\": spec.cronSpec in body should match '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'",
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
                "spec.mode: Unsupported value: \"medium\": supported values: \"fast\", \"slow\"",
                "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
                "spec.tags[1]: Duplicate value: \"a\"",
                "spec.labels.x: Invalid value: \"integer\": spec.labels.x in body must be of type string: \"integer\"",
            ]
        );
        assert_eq!(
            problems(&json!({"spec": {}})),
            vec!["spec.cronSpec: Required value"]
        );
        assert_eq!(
            problems(&json!({"spec": {"cronSpec": "* * * * *", "replicas": 11}})),
            vec![
                "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"
            ]
        );
    }

    #[test]
    fn pruning_drops_undeclared_fields_and_keeps_preserved_ones() {
        let mut object = json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "a"}, "junk": 1,
            "spec": {"cronSpec": "x", "unknown": true, "image": null, "extra": {"anything": {"goes": 1}}, "labels": {"a": "b"}}});
        prune(&mut object, &crontab_schema(), true);
        assert_eq!(
            object,
            json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "a"},
                "spec": {"cronSpec": "x", "extra": {"anything": {"goes": 1}}, "labels": {"a": "b"}}})
        );
    }

    #[test]
    fn defaults_fill_missing_fields_only() {
        let mut object = json!({"spec": {"cronSpec": "x"}});
        apply_defaults(&mut object, &crontab_schema());
        assert_eq!(object["spec"]["replicas"], 1);
        let mut object = json!({"spec": {"cronSpec": "x", "replicas": 4}});
        apply_defaults(&mut object, &crontab_schema());
        assert_eq!(object["spec"]["replicas"], 4);
    }

    #[test]
    fn non_structural_schemas_are_refused_with_paths() {
        let mut causes = Vec::new();
        structural_problems(
            &json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "array"}}}}}),
            "spec.versions[0].schema.openAPIV3Schema",
            &mut causes,
        );
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].type",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[a].items",
            ]
        );
    }
}
