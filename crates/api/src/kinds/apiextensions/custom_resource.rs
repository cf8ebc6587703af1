//! Custom resources: one [`CustomResource`] per served version of a
//! CustomResourceDefinition, built from the CRD at run time (upstream's
//! `apiextensions-apiserver/pkg/registry/customresource` strategy and table convertor).
//! Objects are JSON as the user wrote them, pruned, defaulted and validated by the
//! version's structural schema.

use schemars::generate::SchemaGenerator;
use serde_json::{Map, Value, json};

use super::schema;
use crate::kinds::{Kind, ScalePaths};
use crate::status::Cause;
use crate::table::{Column, Doc, NAME, col, human_duration};

/// A printer column: its JSON path, compiled, and its declared type.
struct Printer {
    path: Option<serde_json_path::JsonPath>,
    kind: String,
}

/// `/scale` of a custom resource, as JSON pointers into the object.
pub struct CustomScale {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// Everything served for one version of a CRD.
pub struct CustomResource {
    group: String,
    /// The version's `openAPIV3Schema`; Null when the version has none.
    schema: Value,
    /// `com.example.stable.v1.CronTab`: the schema's name in OpenAPI documents.
    schema_name: String,
    has_status: bool,
    scale: Option<CustomScale>,
    columns: Vec<Column>,
    printers: Vec<Printer>,
    /// `metadata.name`, `metadata.namespace` and the version's `selectableFields`.
    selectable: &'static [&'static str],
}

fn leak(text: &str) -> &'static str {
    // Rows of the resource table live for the whole process (see `resource::register`);
    // their texts are leaked with them, once per distinct CRD version.
    Box::leak(text.to_string().into_boxed_str())
}

/// A CRD's `.spec.replicas`-style path as a JSON pointer (`/spec/replicas`).
pub fn json_path_pointer(path: &str) -> Option<String> {
    let trimmed = path.strip_prefix('.')?;
    if trimmed.is_empty() || trimmed.contains(['[', ']', '*', '?', '@', '{', '}']) {
        return None;
    }
    Some(format!("/{}", trimmed.replace('.', "/")))
}

/// Kubernetes' JSONPath (`.status.conditions[?(@.type=="Ready")].status`, optionally in
/// `{}`) in RFC 9535 form (`$.status...`), which serde_json_path reads.
pub fn compile_json_path(path: &str) -> Result<serde_json_path::JsonPath, String> {
    let inner = path
        .trim()
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path.trim());
    let rfc = if inner.starts_with('$') {
        inner.to_string()
    } else if inner.starts_with('.') || inner.starts_with('[') {
        format!("${inner}")
    } else {
        format!("$.{inner}")
    };
    serde_json_path::JsonPath::parse(&rfc).map_err(|e| e.to_string())
}

impl CustomResource {
    /// Build from the CRD's group and kind and one entry of `spec.versions`.
    pub fn new(group: &str, kind: &str, version: &Value) -> CustomResource {
        let name = version["name"].as_str().unwrap_or("");
        let reversed: Vec<&str> = group.split('.').rev().collect();
        let mut columns = vec![NAME];
        let mut printers = Vec::new();
        let declared = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // Upstream's default when a version declares none: the age.
        let declared = if declared.is_empty() {
            vec![
                json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                "description": "CreationTimestamp is a timestamp representing the server time when this object was created."}),
            ]
        } else {
            declared
        };
        for column in &declared {
            let kind = column["type"].as_str().unwrap_or("string");
            columns.push(col(
                leak(column["name"].as_str().unwrap_or("")),
                leak(kind),
                column["priority"].as_u64().unwrap_or(0).min(255) as u8,
                Doc::Text(leak(column["description"].as_str().unwrap_or(""))),
            ));
            printers.push(Printer {
                path: compile_json_path(column["jsonPath"].as_str().unwrap_or("")).ok(),
                kind: kind.to_string(),
            });
        }
        let subresources = &version["subresources"];
        let scale = subresources.get("scale").map(|s| CustomScale {
            spec_replicas: s["specReplicasPath"]
                .as_str()
                .and_then(json_path_pointer)
                .unwrap_or_else(|| "/spec/replicas".into()),
            status_replicas: s["statusReplicasPath"]
                .as_str()
                .and_then(json_path_pointer)
                .unwrap_or_else(|| "/status/replicas".into()),
            label_selector: s["labelSelectorPath"].as_str().and_then(json_path_pointer),
        });
        let mut selectable = vec!["metadata.name", "metadata.namespace"];
        for field in version
            .get("selectableFields")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if let Some(path) = field["jsonPath"].as_str().and_then(|p| p.strip_prefix('.')) {
                selectable.push(leak(path));
            }
        }
        CustomResource {
            selectable: Box::leak(selectable.into_boxed_slice()),
            group: group.to_string(),
            schema: version
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .unwrap_or(Value::Null),
            schema_name: format!("{}.{name}.{kind}", reversed.join(".")),
            has_status: subresources.get("status").is_some(),
            scale,
            columns,
            printers,
        }
    }

    fn cell(&self, printer: &Printer, object: &Value, now: jiff::Timestamp) -> Value {
        let Some(path) = &printer.path else {
            return Value::Null;
        };
        let Some(found) = path.query(object).first() else {
            return Value::Null;
        };
        // As upstream's `cellForJSONValue`: a value of the wrong type is an empty cell.
        match printer.kind.as_str() {
            "integer" => found
                .as_i64()
                .or_else(|| found.as_f64().map(|f| f as i64))
                .map_or(Value::Null, |i| json!(i)),
            "number" => found.as_f64().map_or(Value::Null, |f| json!(f)),
            "boolean" => found.as_bool().map_or(Value::Null, |b| json!(b)),
            "date" => found
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map_or(Value::Null, |t| {
                    json!(human_duration(now.duration_since(t).as_secs()))
                }),
            _ => match found {
                Value::String(s) => json!(s),
                Value::Null => Value::Null,
                // Go's jsonpath printer writes other values as JSON.
                other => json!(other.to_string()),
            },
        }
    }
}

impl Kind for CustomResource {
    /// Custom resources have no typed decode: the schema prunes what it does not declare
    /// (reported as unknown fields), and `metadata` is read as ObjectMeta.
    fn roundtrip(&self, object: &Value) -> Result<Value, String> {
        let mut out = object.clone();
        if let Some(meta) = out.get_mut("metadata") {
            *meta = crate::kinds::roundtrip::<
                k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            >(meta)
            .map_err(|e| format!("metadata: {e}"))?;
        }
        if !self.schema.is_null() {
            schema::prune(&mut out, &self.schema, true);
        }
        Ok(out)
    }

    fn schema(&self, generator: &mut SchemaGenerator) -> Option<String> {
        let meta =
            generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
        let mut definition = match &self.schema {
            Value::Object(map) => map.clone(),
            _ => Map::from_iter([("type".to_string(), json!("object"))]),
        };
        let properties = definition.entry("properties").or_insert_with(|| json!({}));
        if let Some(properties) = properties.as_object_mut() {
            properties.insert("apiVersion".into(), json!({"type": "string",
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
            properties.insert("kind".into(), json!({"type": "string",
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
            properties.insert("metadata".into(), json!({"allOf": [meta], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}));
        }
        generator
            .definitions_mut()
            .insert(self.schema_name.clone(), Value::Object(definition));
        Some(self.schema_name.clone())
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        self.selectable
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        // Upstream: with a status subresource, status is the controller's to write.
        if self.has_status {
            object.remove("status");
        }
    }

    fn apply_defaults(&self, object: &mut Value) {
        if !self.schema.is_null() {
            schema::apply_defaults(object, &self.schema);
        }
    }

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        if !self.schema.is_null() {
            schema::validate(object, &self.schema, "", causes);
        }
        if let Some(scale) = &self.scale {
            let field = scale.spec_replicas[1..].replace('/', ".");
            if let Some(replicas) = object.pointer(&scale.spec_replicas) {
                // Said once: the schema may already have refused the value's type.
                if !replicas.is_i64() && !causes.iter().any(|c| c.field == field) {
                    causes.push(crate::status::cause(
                        "FieldValueInvalid",
                        &field,
                        format!("Invalid value: {replicas}: must be an integer"),
                    ));
                }
            }
        }
    }

    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn row(&self, object: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let mut cells = vec![json!(crate::table::s(object, "/metadata/name"))];
        cells.extend(self.printers.iter().map(|p| self.cell(p, object, now)));
        (cells, None)
    }

    fn returns_deleted_object(&self) -> bool {
        true
    }

    fn accepts_strategic_merge_patch(&self) -> bool {
        false
    }

    /// From the schema: `x-kubernetes-list-type` (`map` with its keys, `set`), atomic
    /// otherwise, as upstream reads it.
    fn list_type(&self, path: &[&str]) -> Option<podium_patch::fields::ListType> {
        use podium_patch::fields::ListType;
        let mut node = &self.schema;
        for field in path {
            // Fields of list items are read through the list's item schema.
            while node.get("type").and_then(Value::as_str) == Some("array") {
                match node.get("items") {
                    Some(items) => node = items,
                    None => return Some(ListType::Atomic),
                }
            }
            let next = node
                .pointer(&format!("/properties/{field}"))
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()));
            node = match next {
                Some(n) => n,
                None => return Some(ListType::Atomic),
            };
        }
        let list = if node.get("type").and_then(Value::as_str) == Some("array") {
            node
        } else {
            return Some(ListType::Atomic);
        };
        Some(
            match list.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => ListType::Set,
                Some("map") => ListType::Map(
                    list.get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|keys| keys.iter().filter_map(Value::as_str).map(leak).collect())
                        .unwrap_or_default(),
                ),
                _ => ListType::Atomic,
            },
        )
    }

    fn storage_group(&self) -> Option<&str> {
        Some(&self.group)
    }

    fn scale_paths(&self) -> Option<ScalePaths<'_>> {
        self.scale.as_ref().map(|s| ScalePaths {
            spec_replicas: &s.spec_replicas,
            status_replicas: &s.status_replicas,
            label_selector: s.label_selector.as_deref(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version() -> Value {
        json!({
            "name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"cronSpec": {"type": "string"}, "replicas": {"type": "integer", "default": 1}}},
                "status": {"type": "object", "properties": {"replicas": {"type": "integer"}, "selector": {"type": "string"},
                    "conditions": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
            }}},
            "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"}},
            "additionalPrinterColumns": [
                {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
        })
    }

    #[test]
    fn printer_columns_read_json_paths() {
        let kind = CustomResource::new("stable.example.com", "CronTab", &version());
        let names: Vec<&str> = kind.columns().iter().map(Column::name).collect();
        assert_eq!(names, ["Name", "Spec", "Replicas", "Ready", "Age"]);
        let now: jiff::Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        let object = json!({"metadata": {"name": "a", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"cronSpec": "* * * * */5", "replicas": 3},
            "status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        let (cells, _) = kind.row(&object, now);
        assert_eq!(
            cells,
            vec![
                json!("a"),
                json!("* * * * */5"),
                json!(3),
                json!("True"),
                json!("10m")
            ]
        );
        let (cells, _) = kind.row(&json!({"metadata": {"name": "b"}}), now);
        assert_eq!(
            cells,
            vec![
                json!("b"),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null
            ]
        );
    }

    #[test]
    fn a_version_without_columns_shows_its_age() {
        let mut v = version();
        v.as_object_mut()
            .unwrap()
            .remove("additionalPrinterColumns");
        let kind = CustomResource::new("stable.example.com", "CronTab", &v);
        let names: Vec<&str> = kind.columns().iter().map(Column::name).collect();
        assert_eq!(names, ["Name", "Age"]);
    }

    #[test]
    fn scale_paths_and_schema_name() {
        let kind = CustomResource::new("stable.example.com", "CronTab", &version());
        let paths = kind.scale_paths().unwrap();
        assert_eq!(paths.spec_replicas, "/spec/replicas");
        assert_eq!(paths.label_selector, Some("/status/selector"));
        assert_eq!(kind.schema_name, "com.example.stable.v1.CronTab");
        assert_eq!(json_path_pointer(".spec.x[0]"), None);
    }

    #[test]
    fn selectable_fields_are_the_versions_own() {
        let mut v = version();
        v["selectableFields"] = json!([{"jsonPath": ".spec.cronSpec"}]);
        let kind = CustomResource::new("stable.example.com", "CronTab", &v);
        assert_eq!(
            kind.selectable_fields(),
            ["metadata.name", "metadata.namespace", "spec.cronSpec"]
        );
    }

    #[test]
    fn roundtrip_prunes_and_checks_metadata() {
        let kind = CustomResource::new("stable.example.com", "CronTab", &version());
        let out = kind
            .roundtrip(&json!({"metadata": {"name": "a", "bogus": 1}, "spec": {"cronSpec": "x", "nope": 2}}))
            .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"name": "a"}, "spec": {"cronSpec": "x"}})
        );
        assert!(kind.roundtrip(&json!({"metadata": {"labels": 3}})).is_err());
    }
}
