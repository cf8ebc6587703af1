//! Secrets (`v1`): `data` read as Go's base64 reads it and `stringData` merged into it;
//! `type` defaults to `Opaque`; upstream's `printSecret`.

use serde_json::{Map, Value, json};

use crate::kinds::{Kind, typed_as};
use crate::strategy::set_default;
use crate::table::{AGE, Column, Doc, NAME, col, name_and_age, s};

pub struct Secret;

impl Kind for Secret {
    typed_as!(k8s_openapi::api::core::v1::Secret);

    fn before_decode(&self, object: &Value) -> Result<Option<Value>, String> {
        byte_fields("data", true, object)
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["metadata.name", "metadata.namespace", "type"]
    }

    fn apply_defaults(&self, object: &mut Value) {
        if let Some(map) = object.as_object_mut() {
            set_default(map, "type", json!("Opaque"));
        }
    }

    fn columns(&self) -> &[Column] {
        SECRET
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let cells = vec![
            name,
            json!(s(o, "/type")),
            json!(o.get("data").and_then(Value::as_object).map_or(0, Map::len)),
            age,
        ];
        (cells, None)
    }
}

const SECRET: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.Secret", "type"),
    ),
    col(
        "Data",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.Secret", "data"),
    ),
    AGE,
];

/// A `[]byte` map (Secret `data`, ConfigMap `binaryData`) rewritten in the
/// canonical base64 k8s-openapi decodes, after decoding them as Go's `encoding/json` does
/// (line breaks ignored, unused bits unchecked); and a Secret's `stringData` merged into
/// `data` and dropped, as upstream's v1 → internal conversion does: a key in both takes
/// the `stringData` value. `None` when there is nothing to rewrite; the error names the
/// field and says what Go's decoder says.
pub(crate) fn byte_fields(
    field: &str,
    with_string_data: bool,
    object: &Value,
) -> Result<Option<Value>, String> {
    let Some(map) = object.as_object() else {
        return Ok(None);
    };
    let string_data = map.get("stringData").filter(|v| !v.is_null());
    if map.get(field).is_none_or(|v| !v.is_object()) && string_data.is_none() {
        return Ok(None);
    }
    let mut object = object.clone();
    let fields = object.as_object_mut().expect("checked above");
    let mut bytes = match fields.remove(field) {
        Some(Value::Object(entries)) => entries,
        Some(other) if !other.is_null() => {
            // Not a map: leave it for the typed decoder to report.
            fields.insert(field.into(), other);
            return Ok(Some(object));
        }
        _ => Map::new(),
    };
    for (key, value) in bytes.iter_mut() {
        if let Value::String(text) = value {
            let decoded = crate::base64::decode(text)
                .map_err(|at| format!("{field}[{key}]: illegal base64 data at input byte {at}"))?;
            *text = crate::base64::encode(&decoded);
        }
    }
    if with_string_data {
        match fields.remove("stringData") {
            Some(Value::Object(strings)) => {
                for (key, value) in strings {
                    let Value::String(text) = value else {
                        return Err(format!("stringData[{key}]: expected a string, got {value}"));
                    };
                    bytes.insert(key, json!(crate::base64::encode(text.as_bytes())));
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => {
                return Err(format!(
                    "stringData: expected a map of strings, got {other}"
                ));
            }
        }
    }
    if !bytes.is_empty() || map.contains_key(field) {
        fields.insert(field.into(), Value::Object(bytes));
    }
    Ok(Some(object))
}
