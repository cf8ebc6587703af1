//! What is special about each kind when it is written: decoding against the real type
//! (unknown and mistyped fields), defaults, validation, which fields a field selector may
//! use, and what create resets. Upstream keeps these in each kind's `registry/.../strategy.go`.

#[cfg(test)]
use serde_json::json;
use serde_json::{Map, Value};

use crate::kinds::Kind;

use crate::resource::ResourceInfo;
use crate::status::{ApiError, Cause, cause};

/// `?fieldValidation=`: what to do with fields the type does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, not {other:?}"
            ))),
        }
    }
}

/// Decode `object` as its kind's real type and back: mistyped fields fail, unknown fields
/// are dropped and reported (as warnings, or as an error under `Strict`).
pub fn normalize(
    resource: &ResourceInfo,
    object: &Value,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let kind = resource.behaviour;
    // Byte fields first: Go's base64 is more lenient than k8s-openapi's, and `stringData`
    // is only a way of writing `data`.
    let prepared;
    let object = match kind.before_decode(object) {
        Ok(Some(rewritten)) => {
            prepared = rewritten;
            &prepared
        }
        Ok(None) => object,
        Err(problem) => {
            let (kind, version) = (resource.kind, resource.version);
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: {problem}"
            )));
        }
    };
    let decoded = kind.roundtrip(object);
    // Upstream names the version alone here (`Deployment in version "v1"`), not the group.
    let undecodable = |problem: &dyn std::fmt::Display| {
        let (kind, version) = (resource.kind, resource.version);
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {problem}"
        ))
    };
    let decoded = decoded.map_err(|e| undecodable(&e))?;
    if let Some(problem) = quantity_problem(kind, &decoded) {
        return Err(undecodable(&problem));
    }
    let mut unknown = Vec::new();
    if validation != FieldValidation::Ignore {
        unknown_fields(object, &decoded, "", &mut unknown);
    }
    if validation == FieldValidation::Strict && !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            list.join(", ")
        )));
    }
    let mut warnings: Vec<String> = unknown
        .into_iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    // Every write of a kind Podium stores but does not act on says so (kubectl prints it).
    warnings.extend(kind.not_acted_on().map(str::to_string));
    warnings.extend(kind.warnings(&decoded));
    Ok((decoded, warnings))
}

/// The first resource quantity that does not parse, said as upstream's decoder says it
/// (a bad quantity fails decoding there, so it is a 400, not a 422).
fn quantity_problem(kind: &dyn Kind, object: &Value) -> Option<String> {
    let text = kind
        .quantity_maps(object)
        .into_iter()
        .filter_map(Value::as_object)
        .flat_map(|map| map.values())
        .filter_map(Value::as_str)
        .find(|text| crate::quantity::Quantity::parse(text).is_none())?;
    // Upstream's `ParseQuantity` first matches the pattern, then parses the suffix.
    Some(if matches_quantity_pattern(text) {
        "unable to parse quantity's suffix".to_string()
    } else {
        format!("quantities must match the regular expression '{QUANTITY_PATTERN}'")
    })
}

const QUANTITY_PATTERN: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// Whether `text` matches [`QUANTITY_PATTERN`] (a regex engine for one pattern would be
/// more code than this).
fn matches_quantity_pattern(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    if number_len == 0 {
        return false;
    }
    let rest = unsigned[number_len..].trim_start_matches(|c: char| "eEinumkKMGTP".contains(c));
    let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    rest.bytes().all(|b| b.is_ascii_digit())
}

fn unknown_fields(input: &Value, decoded: &Value, path: &str, out: &mut Vec<String>) {
    match (input, decoded) {
        (Value::Object(i), Value::Object(d)) => {
            for (key, value) in i {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match d.get(key) {
                    Some(dv) => unknown_fields(value, dv, &child, out),
                    None if !value.is_null() => out.push(child),
                    None => {}
                }
            }
        }
        (Value::Array(i), Value::Array(d)) if i.len() == d.len() => {
            for (n, (iv, dv)) in i.iter().zip(d).enumerate() {
                unknown_fields(iv, dv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// Whether a DELETE that removes the object answers with the object rather than a
/// Success `Status` ([`crate::kinds::Kind::returns_deleted_object`]). Deletes that only
/// mark the object (graceful pods, finalizers, namespaces terminating) answer with the
/// object for every kind.
pub fn returns_deleted_object(resource: &ResourceInfo) -> bool {
    resource.behaviour.returns_deleted_object()
}

/// Fields `?fieldSelector=` may use for a kind (upstream's per-kind field label conversions).
pub fn selectable_fields(resource: &ResourceInfo) -> &'static [&'static str] {
    resource.behaviour.selectable_fields()
}

/// Kinds whose `metadata.generation` counts spec changes (what `observedGeneration` follows).
pub fn tracks_generation(resource: &ResourceInfo) -> bool {
    resource.behaviour.tracks_generation()
}

/// What a create resets: status is the system's to write, except for kinds without a
/// status subresource (Events, Endpoints...) and Nodes, whose agent writes both.
pub fn prepare_for_create(resource: &ResourceInfo, object: &mut Value) {
    if let Some(map) = object.as_object_mut() {
        resource.behaviour.prepare_for_create(map);
    }
}

/// Pod QoS class from requests and limits.
pub use crate::kinds::core::pod::qos_class;

pub(crate) fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// Fill in what the user left out, as upstream's `SetDefaults_*` do, so that readers
/// (kubectl describe, controllers, template comparison) see one canonical shape.
pub fn apply_defaults(resource: &ResourceInfo, object: &mut Value) {
    resource.behaviour.apply_defaults(object);
}

pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Upstream's `validation.DNS1123LabelErrorMsg` with its example and pattern.
pub(crate) const DNS_LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Validate a name for a kind; `None` when it is fine, else the message.
pub fn name_problem(resource: &ResourceInfo, name: &str) -> Option<String> {
    let label_only = resource.behaviour.name_is_dns_label();
    let ok = if label_only {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    (!ok).then(|| {
        if label_only {
            DNS_LABEL_MESSAGE.to_string()
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()
        }
    })
}

pub(crate) fn label_problems(object: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(labels) = object.pointer(path).and_then(Value::as_object) else {
        return;
    };
    let field = path.trim_start_matches('/').replace('/', ".");
    for (key, value) in labels {
        let (prefix, name) = key
            .rsplit_once('/')
            .map_or((None, key.as_str()), |(p, n)| (Some(p), n));
        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && name
                .bytes()
                .last()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if !name_ok || prefix.is_some_and(|p| !is_dns_subdomain(p)) {
            causes.push(cause("FieldValueInvalid", &field, format!("Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")));
        }
        let v = value.as_str().unwrap_or("");
        let value_ok = v.is_empty()
            || (v.len() <= 63
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && v.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric()));
        if !value_ok {
            causes.push(cause("FieldValueInvalid", &field, format!("Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")));
        }
    }
}

/// A port number must be 1–65535.
pub(crate) fn port_in_range(port: i64, field: &str, causes: &mut Vec<Cause>) {
    if !(1..=65535).contains(&port) {
        causes.push(cause(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
        ));
    }
}

pub(crate) fn non_negative(object: &Value, pointer: &str, causes: &mut Vec<Cause>) {
    if let Some(n) = object
        .pointer(pointer)
        .and_then(Value::as_i64)
        .filter(|n| *n < 0)
    {
        causes.push(cause(
            "FieldValueInvalid",
            &pointer.trim_start_matches('/').replace('/', "."),
            format!("Invalid value: {n}: must be greater than or equal to 0"),
        ));
    }
}

pub(crate) fn validate_selector_matches_template(object: &Value, causes: &mut Vec<Cause>) {
    let selector = object.pointer("/spec/selector");
    let Some(selector) = selector.filter(|s| s.as_object().is_some_and(|m| !m.is_empty())) else {
        causes.push(cause(
            "FieldValueRequired",
            "spec.selector",
            "Required value",
        ));
        return;
    };
    let labels =
        crate::selector::labels_of(object.pointer("/spec/template").unwrap_or(&Value::Null));
    if !label_selector_matches(selector, &labels) {
        let shown: Vec<String> = labels.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
        causes.push(cause(
            "FieldValueInvalid",
            "spec.template.metadata.labels",
            format!("Invalid value: map[string]string{{{}}}: `selector` does not match template `labels`", shown.join(", ")),
        ));
    }
}

/// A pointer (`/spec/template`) as the field path upstream's messages use (`spec.template`).
pub(crate) fn field_path(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

/// A string field that must be set: its value, or a `Required value` cause.
pub(crate) fn required_str<'a>(
    object: &'a Value,
    pointer: &str,
    causes: &mut Vec<Cause>,
) -> Option<&'a str> {
    match object.pointer(pointer).and_then(Value::as_str) {
        Some(text) if !text.is_empty() => Some(text),
        _ => {
            causes.push(cause(
                "FieldValueRequired",
                &field_path(pointer),
                "Required value",
            ));
            None
        }
    }
}

/// A field that must be there (any type), else a `Required value` cause.
pub(crate) fn required(object: &Value, pointer: &str, causes: &mut Vec<Cause>) {
    if object.pointer(pointer).is_none_or(Value::is_null) {
        causes.push(cause(
            "FieldValueRequired",
            &field_path(pointer),
            "Required value",
        ));
    }
}

/// A string field that, when set, must be one of `allowed` (upstream's
/// `field.NotSupported`).
pub(crate) fn supported(object: &Value, pointer: &str, allowed: &[&str], causes: &mut Vec<Cause>) {
    let Some(value) = object.pointer(pointer).and_then(Value::as_str) else {
        return;
    };
    if !allowed.contains(&value) {
        causes.push(not_supported(&field_path(pointer), value, allowed));
    }
}

/// `Unsupported value: "x": supported values: "a", "b"`, the values in the order given
/// (upstream passes a sorted set for most fields, a fixed list for some).
pub(crate) fn not_supported(field: &str, value: &str, allowed: &[&str]) -> Cause {
    let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    cause(
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {value:?}: supported values: {}",
            list.join(", ")
        ),
    )
}

/// An integer field that, when set, must be at least `min`.
pub(crate) fn at_least(object: &Value, pointer: &str, min: i64, causes: &mut Vec<Cause>) {
    if let Some(n) = object
        .pointer(pointer)
        .and_then(Value::as_i64)
        .filter(|n| *n < min)
    {
        let message = if min == 0 {
            format!("Invalid value: {n}: must be greater than or equal to 0")
        } else {
            format!("Invalid value: {n}: must be greater than or equal to {min}")
        };
        causes.push(cause("FieldValueInvalid", &field_path(pointer), message));
    }
}

/// Match a `metav1.LabelSelector` object (matchLabels + matchExpressions); a selector
/// with an unknown operator matches nothing.
pub fn label_selector_matches(
    selector: &Value,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    crate::selector::LabelSelector::from_object(selector).is_some_and(|s| s.matches(labels))
}

/// Check an object about to be stored (after defaults). `old` is the stored object on update.
pub fn validate(
    resource: &ResourceInfo,
    object: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut causes = Vec::new();
    if let Some(problem) = name_problem(resource, name) {
        causes.push(cause(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: {name:?}: {problem}"),
        ));
    }
    label_problems(object, "/metadata/labels", &mut causes);
    resource.behaviour.validate(object, old, &mut causes);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            resource.group,
            resource.kind,
            name,
            causes,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::find_kind;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "sample-app-deployment"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "sample-app-pods"}},
                "template": {"metadata": {"labels": {"app": "sample-app-pods"}},
                    "spec": {"containers": [{"name": "sample-app", "image": "sample-app:v1", "ports": [{"containerPort": 8080}]}]}}
            }
        })
    }

    #[test]
    fn secret_string_data_merges_into_data_and_go_base64_is_accepted() {
        let secret = find_kind("", "Secret").unwrap();
        let object = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"a": "YQ==", "both": "b2xk", "pem": "LS0tLS1C\nRUdJTg==\n"},
            "stringData": {"both": "new", "plain": "text"}});
        let (decoded, warnings) = normalize(secret, &object, FieldValidation::Strict).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(decoded.get("stringData"), None);
        assert_eq!(
            decoded["data"],
            json!({"a": "YQ==", "both": "bmV3", "pem": "LS0tLS1CRUdJTg==", "plain": "dGV4dA=="})
        );
        let only_strings = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "stringData": {"k": "v"}});
        let (decoded, _) = normalize(secret, &only_strings, FieldValidation::Strict).unwrap();
        assert_eq!(decoded["data"], json!({"k": "dg=="}));

        let bad = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"tls.key": "not base64!"}});
        let error = normalize(secret, &bad, FieldValidation::Warn).unwrap_err();
        assert_eq!(error.code(), 400);
        assert_eq!(
            error.message,
            "Secret in version \"v1\" cannot be handled as a Secret: data[tls.key]: illegal base64 data at input byte 3"
        );
        let config_map = find_kind("", "ConfigMap").unwrap();
        let binary = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "binaryData": {"b": "AAEC\r\nAw=="}});
        let (decoded, _) = normalize(config_map, &binary, FieldValidation::Strict).unwrap();
        assert_eq!(decoded["binaryData"], json!({"b": "AAECAw=="}));
    }

    #[test]
    fn normalize_reports_unknown_fields_and_rejects_them_when_strict() {
        let r = find_kind("apps", "Deployment").unwrap();
        let mut d = deployment();
        d["spec"]["replicaz"] = json!(3);
        let (_, warnings) = normalize(r, &d, FieldValidation::Warn).unwrap();
        assert_eq!(warnings, vec!["unknown field \"spec.replicaz\""]);
        let err = normalize(r, &d, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(
            err.message.contains("unknown field \"spec.replicaz\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn normalize_rejects_wrong_types() {
        let r = find_kind("apps", "Deployment").unwrap();
        let mut d = deployment();
        d["spec"]["replicas"] = json!("three");
        assert_eq!(
            normalize(r, &d, FieldValidation::Warn).unwrap_err().code(),
            400
        );
    }

    #[test]
    fn defaults_and_validation_of_the_sample_deployment() {
        let r = find_kind("apps", "Deployment").unwrap();
        let mut d = deployment();
        apply_defaults(r, &mut d);
        assert_eq!(
            d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
            Some(&json!("25%"))
        );
        assert_eq!(
            d.pointer("/spec/template/spec/containers/0/imagePullPolicy"),
            Some(&json!("IfNotPresent"))
        );
        assert_eq!(
            d.pointer("/spec/template/spec/containers/0/ports/0/protocol"),
            Some(&json!("TCP"))
        );
        validate(r, &d, None).unwrap();
        d["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
        d["spec"]["replicas"] = json!(-1);
        let err = validate(r, &d, None).unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(err.causes.len(), 2, "{err:?}");
    }

    #[test]
    fn names_are_checked() {
        let svc = find_kind("", "Service").unwrap();
        assert!(name_problem(svc, "web.v1").is_some());
        assert!(name_problem(find_kind("", "Pod").unwrap(), "web.v1").is_none());
        assert!(name_problem(svc, "Web").is_some());
    }

    #[test]
    fn service_ports_are_checked_as_upstream_checks_them() {
        let svc = find_kind("", "Service").unwrap();
        let with_ports = |ports: Value| {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                "spec": {"type": "ClusterIP", "ports": ports}})
        };
        let good = with_ports(json!([
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "metrics", "port": 9090, "targetPort": "metrics"},
        ]));
        assert!(validate(svc, &good, None).is_ok());
        let bad = with_ports(json!([
            {"name": "-1", "port": 80},
            {"name": "web", "port": 81, "protocol": "HTTP"},
            {"name": "web", "port": 82, "targetPort": 70000},
        ]));
        let err = validate(svc, &bad, None).unwrap_err();
        assert_eq!(err.code(), 422);
        let fields: Vec<(&str, &str)> = err
            .causes
            .iter()
            .map(|c| (c.field.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("spec.ports[0].name", "FieldValueInvalid"),
                ("spec.ports[1].protocol", "FieldValueNotSupported"),
                ("spec.ports[2].name", "FieldValueDuplicate"),
                ("spec.ports[2].targetPort", "FieldValueInvalid"),
            ]
        );
    }

    #[test]
    fn qos() {
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "a"}]})),
            "BestEffort"
        );
        assert_eq!(
            qos_class(
                &json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]})
            ),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {
                "requests": {"cpu": "1000m", "memory": "1073741824"},
                "limits": {"cpu": "1", "memory": "1Gi"},
            }}]})),
            "Guaranteed",
            "requests equal to limits in value, written differently"
        );
    }

    #[test]
    fn a_bad_quantity_fails_decoding_as_upstream_says_it() {
        let deployment = find_kind("apps", "Deployment").unwrap();
        let with = |quantity: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i",
                        "resources": {"limits": {"memory": quantity}}}]}}}})
        };
        let error = normalize(deployment, &with("lots"), FieldValidation::Strict).unwrap_err();
        assert_eq!(error.code(), 400);
        assert_eq!(
            error.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
        let error = normalize(deployment, &with("5Mi2"), FieldValidation::Strict).unwrap_err();
        assert!(
            error.message.ends_with("unable to parse quantity's suffix"),
            "{}",
            error.message
        );
        assert!(normalize(deployment, &with("128Mi"), FieldValidation::Strict).is_ok());
        for (text, shaped) in [("1e3", true), ("-1.5k", true), ("1Mb", false), ("x", false)] {
            assert_eq!(matches_quantity_pattern(text), shaped, "{text}");
        }
    }
}
