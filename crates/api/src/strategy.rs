//! What is special about each kind when it is written: decoding against the real type
//! (unknown and mistyped fields), defaults, validation, which fields a field selector may
//! use, and what create resets. Upstream keeps these in each kind's `registry/.../strategy.go`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

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

fn roundtrip<T: DeserializeOwned + Serialize>(object: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Decode `object` as its kind's real type and back: mistyped fields fail, unknown fields
/// are dropped and reported (as warnings, or as an error under `Strict`).
pub fn normalize(
    resource: &ResourceInfo,
    object: &Value,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    use k8s_openapi::api::{
        apps::v1 as apps, coordination::v1 as coordination, core::v1 as core,
        discovery::v1 as discovery,
    };
    // Byte fields first: Go's base64 is more lenient than k8s-openapi's, and `stringData`
    // is only a way of writing `data`.
    let prepared;
    let object = match byte_fields(resource.kind, object) {
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
    let decoded = match resource.kind {
        "Namespace" => roundtrip::<core::Namespace>(object),
        "Node" => roundtrip::<core::Node>(object),
        "Pod" => roundtrip::<core::Pod>(object),
        "Service" => roundtrip::<core::Service>(object),
        "Endpoints" => roundtrip::<core::Endpoints>(object),
        "Event" => roundtrip::<core::Event>(object),
        "ConfigMap" => roundtrip::<core::ConfigMap>(object),
        "Secret" => roundtrip::<core::Secret>(object),
        "Deployment" => roundtrip::<apps::Deployment>(object),
        "ReplicaSet" => roundtrip::<apps::ReplicaSet>(object),
        "Lease" => roundtrip::<coordination::Lease>(object),
        "EndpointSlice" => roundtrip::<discovery::EndpointSlice>(object),
        other => {
            return Err(ApiError::internal(format!(
                "no type registered for kind {other}"
            )));
        }
    };
    // Upstream names the version alone here (`Deployment in version "v1"`), not the group.
    let undecodable = |problem: &dyn std::fmt::Display| {
        let (kind, version) = (resource.kind, resource.version);
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {problem}"
        ))
    };
    let decoded = decoded.map_err(|e| undecodable(&e))?;
    if let Some(problem) = quantity_problem(resource.kind, &decoded) {
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
    Ok((
        decoded,
        unknown
            .into_iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect(),
    ))
}

/// The `[]byte` maps of a kind (Secret `data`, ConfigMap `binaryData`) rewritten in the
/// canonical base64 k8s-openapi decodes, after decoding them as Go's `encoding/json` does
/// (line breaks ignored, unused bits unchecked); and a Secret's `stringData` merged into
/// `data` and dropped, as upstream's v1 → internal conversion does: a key in both takes
/// the `stringData` value. `None` when there is nothing to rewrite; the error names the
/// field and says what Go's decoder says.
fn byte_fields(kind: &str, object: &Value) -> Result<Option<Value>, String> {
    let field = match kind {
        "Secret" => "data",
        "ConfigMap" => "binaryData",
        _ => return Ok(None),
    };
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
    if kind == "Secret" {
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

/// Where a kind holds resource quantities: maps of name → quantity string.
fn quantity_maps<'a>(kind: &str, object: &'a Value) -> Vec<&'a Value> {
    let pod_spec = match kind {
        "Pod" => object.get("spec"),
        "Deployment" | "ReplicaSet" => object.pointer("/spec/template/spec"),
        "Node" => {
            return ["/status/capacity", "/status/allocatable"]
                .iter()
                .filter_map(|p| object.pointer(p))
                .collect();
        }
        _ => None,
    };
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|list| pod_spec?.get(list)?.as_array())
        .flatten();
    containers
        .flat_map(|c| ["/resources/limits", "/resources/requests"].map(|p| c.pointer(p)))
        .flatten()
        .collect()
}

/// The first resource quantity that does not parse, said as upstream's decoder says it
/// (a bad quantity fails decoding there, so it is a 400, not a 422).
fn quantity_problem(kind: &str, object: &Value) -> Option<String> {
    let text = quantity_maps(kind, object)
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
/// Success `Status`: upstream's registries that set `ReturnDeletedObject: true` (each
/// kind's `pkg/registry/<group>/<kind>/storage/storage.go`). Typed clients depend on it:
/// the Python client parses `delete_namespaced_service` as a `V1Service`. Deletes that only
/// mark the object (graceful pods, finalizers, namespaces terminating) answer with the
/// object for every kind.
pub fn returns_deleted_object(resource: &ResourceInfo) -> bool {
    matches!(
        (resource.group, resource.plural),
        (
            "",
            "pods"
                | "services"
                | "namespaces"
                | "serviceaccounts"
                | "persistentvolumes"
                | "persistentvolumeclaims"
        ) | ("storage.k8s.io", "storageclasses")
    )
}

/// Fields `?fieldSelector=` may use for a kind (upstream's per-kind field label conversions).
pub fn selectable_fields(resource: &ResourceInfo) -> &'static [&'static str] {
    match resource.kind {
        "Pod" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["metadata.name", "metadata.namespace", "type"],
        "Service" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.clusterIP",
            "spec.type",
        ],
        "Namespace" => &["metadata.name", "metadata.namespace", "status.phase"],
        "Node" => &["metadata.name", "metadata.namespace", "spec.unschedulable"],
        "ReplicaSet" => &["metadata.name", "metadata.namespace", "status.replicas"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

/// Kinds whose `metadata.generation` counts spec changes (what `observedGeneration` follows).
pub fn tracks_generation(resource: &ResourceInfo) -> bool {
    matches!(
        resource.kind,
        "Deployment" | "ReplicaSet" | "Service" | "Pod"
    )
}

/// What a create resets: status is the system's to write, except for kinds without a
/// status subresource (Events, Endpoints...) and Nodes, whose agent writes both.
pub fn prepare_for_create(resource: &ResourceInfo, object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    match resource.kind {
        "Pod" => {
            let qos = qos_class(map.get("spec").unwrap_or(&Value::Null));
            map.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos}),
            );
        }
        "Namespace" => {
            map.insert("status".into(), json!({"phase": "Active"}));
        }
        "Deployment" | "ReplicaSet" => {
            map.insert("status".into(), json!({}));
        }
        "Service" => {
            map.insert("status".into(), json!({"loadBalancer": {}}));
        }
        _ => {}
    }
}

/// Pod QoS class from requests and limits (upstream `GetPodQOS`, simplified to
/// cpu and memory on regular containers).
pub fn qos_class(spec: &Value) -> &'static str {
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        any |= requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty());
        for res in ["cpu", "memory"] {
            let quantity = |q: Option<&Value>| crate::quantity::Quantity::parse(q?.as_str()?);
            let limit = quantity(limits.and_then(|l| l.get(res)));
            let request = quantity(requests.and_then(|r| r.get(res))).or(limit);
            // Equal in value, however written: `1Gi` and `1073741824` are the same.
            if !limit.is_some_and(|l| request.is_some_and(|r| r.same_value(&l))) {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

fn default_probe(probe: &mut Value) {
    if let Some(p) = probe.as_object_mut() {
        set_default(p, "timeoutSeconds", json!(1));
        set_default(p, "periodSeconds", json!(10));
        set_default(p, "successThreshold", json!(1));
        set_default(p, "failureThreshold", json!(3));
        if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
            set_default(h, "path", json!("/"));
            set_default(h, "scheme", json!("HTTP"));
        }
    }
}

fn default_container(container: &mut Value) {
    let Some(c) = container.as_object_mut() else {
        return;
    };
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    let tag_is_latest = {
        let without_digest = image.split('@').next().unwrap_or("");
        let last = without_digest.rsplit('/').next().unwrap_or("");
        !image.contains('@') && last.split_once(':').is_none_or(|(_, tag)| tag == "latest")
    };
    set_default(
        c,
        "imagePullPolicy",
        json!(if tag_is_latest {
            "Always"
        } else {
            "IfNotPresent"
        }),
    );
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(port, "protocol", json!("TCP"));
        }
    }
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe) {
            default_probe(p);
        }
    }
}

fn default_pod_spec(spec: &mut Value) {
    let Some(s) = spec.as_object_mut() else {
        return;
    };
    set_default(s, "restartPolicy", json!("Always"));
    set_default(s, "terminationGracePeriodSeconds", json!(30));
    set_default(s, "dnsPolicy", json!("ClusterFirst"));
    set_default(s, "schedulerName", json!("default-scheduler"));
    set_default(s, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        if let Some(containers) = s.get_mut(list).and_then(Value::as_array_mut) {
            containers.iter_mut().for_each(default_container);
        }
    }
}

fn default_template(object: &mut Value) {
    if let Some(spec) = object.pointer_mut("/spec/template/spec") {
        default_pod_spec(spec);
    }
}

/// Fill in what the user left out, as upstream's `SetDefaults_*` do, so that readers
/// (kubectl describe, controllers, template comparison) see one canonical shape.
pub fn apply_defaults(resource: &ResourceInfo, object: &mut Value) {
    match resource.kind {
        "Pod" => {
            if let Some(spec) = object.get_mut("spec") {
                default_pod_spec(spec);
            }
        }
        "Deployment" => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
                set_default(spec, "strategy", json!({}));
                if let Some(strategy) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
                    set_default(strategy, "type", json!("RollingUpdate"));
                    if strategy.get("type") == Some(&json!("RollingUpdate")) {
                        set_default(strategy, "rollingUpdate", json!({}));
                        if let Some(ru) = strategy
                            .get_mut("rollingUpdate")
                            .and_then(Value::as_object_mut)
                        {
                            set_default(ru, "maxSurge", json!("25%"));
                            set_default(ru, "maxUnavailable", json!("25%"));
                        }
                    }
                }
            }
            default_template(object);
        }
        "ReplicaSet" => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(spec, "replicas", json!(1));
            }
            default_template(object);
        }
        "Service" => {
            let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
                return;
            };
            set_default(spec, "type", json!("ClusterIP"));
            let kind = spec
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP")
                .to_string();
            if kind != "ExternalName" {
                set_default(spec, "sessionAffinity", json!("None"));
                set_default(spec, "ipFamilies", json!(["IPv4"]));
                set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
                set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            if kind == "NodePort" || kind == "LoadBalancer" {
                set_default(spec, "externalTrafficPolicy", json!("Cluster"));
            }
            if kind == "LoadBalancer" {
                set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
            }
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                    set_default(port, "protocol", json!("TCP"));
                    if let Some(p) = port.get("port").cloned() {
                        set_default(port, "targetPort", p);
                    }
                }
            }
        }
        "Namespace" => {
            if let Some(map) = object.as_object_mut() {
                set_default(map, "spec", json!({"finalizers": ["kubernetes"]}));
            }
        }
        "Secret" => {
            if let Some(map) = object.as_object_mut() {
                set_default(map, "type", json!("Opaque"));
            }
        }
        _ => {}
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Upstream's `validation.DNS1123LabelErrorMsg` with its example and pattern.
const DNS_LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Validate a name for a kind; `None` when it is fine, else the message.
pub fn name_problem(resource: &ResourceInfo, name: &str) -> Option<String> {
    let label_only = matches!(resource.kind, "Namespace" | "Service");
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

fn label_problems(object: &Value, path: &str, causes: &mut Vec<Cause>) {
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

fn validate_pod_spec(spec: Option<&Value>, base: &str, causes: &mut Vec<Cause>) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        causes.push(cause(
            "FieldValueRequired",
            &format!("{base}.containers"),
            "Required value",
        ));
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            causes.push(cause(
                "FieldValueRequired",
                &format!("{base}.containers[{i}].name"),
                "Required value",
            ));
        } else if !is_dns_label(name) {
            causes.push(cause(
                "FieldValueInvalid",
                &format!("{base}.containers[{i}].name"),
                format!("Invalid value: {name:?}: {DNS_LABEL_MESSAGE}"),
            ));
        } else if !seen.insert(name.to_string()) {
            causes.push(cause(
                "FieldValueDuplicate",
                &format!("{base}.containers[{i}].name"),
                format!("Duplicate value: {name:?}"),
            ));
        }
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            causes.push(cause(
                "FieldValueRequired",
                &format!("{base}.containers[{i}].image"),
                "Required value",
            ));
        }
        for (j, p) in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let port = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
            port_in_range(
                port,
                &format!("{base}.containers[{i}].ports[{j}].containerPort"),
                causes,
            );
        }
    }
}

/// A port number must be 1–65535.
fn port_in_range(port: i64, field: &str, causes: &mut Vec<Cause>) {
    if !(1..=65535).contains(&port) {
        causes.push(cause(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
        ));
    }
}

fn non_negative(object: &Value, pointer: &str, causes: &mut Vec<Cause>) {
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

fn validate_selector_matches_template(object: &Value, causes: &mut Vec<Cause>) {
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
    match resource.kind {
        "Pod" => {
            validate_pod_spec(object.get("spec"), "spec", &mut causes);
            if let Some(old) = old {
                // Pod specs are immutable but for a few fields; the agent relies on it.
                let strip = |v: &Value| {
                    let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
                    if let Some(m) = s.as_object_mut() {
                        // nodeName is set once, by the binding.
                        for mutable in [
                            "activeDeadlineSeconds",
                            "tolerations",
                            "terminationGracePeriodSeconds",
                            "nodeName",
                        ] {
                            m.remove(mutable);
                        }
                        if let Some(cs) = m.get_mut("containers").and_then(Value::as_array_mut) {
                            cs.iter_mut()
                                .filter_map(Value::as_object_mut)
                                .for_each(|c| {
                                    c.remove("image");
                                });
                        }
                    }
                    s
                };
                let old_node = old
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !old_node.is_empty()
                    && object.pointer("/spec/nodeName").and_then(Value::as_str) != Some(old_node)
                {
                    causes.push(cause(
                        "FieldValueForbidden",
                        "spec.nodeName",
                        "Forbidden: a pod's node cannot change once it is bound",
                    ));
                }
                if strip(old) != strip(object) {
                    causes.push(cause("FieldValueForbidden", "spec", "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations) or `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
                }
            }
        }
        "Deployment" | "ReplicaSet" => {
            non_negative(object, "/spec/replicas", &mut causes);
            non_negative(object, "/spec/minReadySeconds", &mut causes);
            non_negative(object, "/spec/revisionHistoryLimit", &mut causes);
            validate_selector_matches_template(object, &mut causes);
            label_problems(object, "/spec/template/metadata/labels", &mut causes);
            validate_pod_spec(
                object.pointer("/spec/template/spec"),
                "spec.template.spec",
                &mut causes,
            );
            if let (Some(old), Some(new_sel)) = (old, object.pointer("/spec/selector")) {
                if old.pointer("/spec/selector").is_some_and(|s| s != new_sel) {
                    causes.push(cause(
                        "FieldValueInvalid",
                        "spec.selector",
                        "Invalid value: field is immutable",
                    ));
                }
            }
        }
        "EndpointSlice" => match object.get("addressType").and_then(Value::as_str) {
            None | Some("") => {
                causes.push(cause("FieldValueRequired", "addressType", "Required value"))
            }
            Some("IPv4" | "IPv6" | "FQDN") => {}
            Some(other) => causes.push(cause(
                "FieldValueNotSupported",
                "addressType",
                format!(
                    "Unsupported value: {other:?}: supported values: \"FQDN\", \"IPv4\", \"IPv6\""
                ),
            )),
        },
        "Service" => {
            let kind = object
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            if !matches!(
                kind,
                "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
            ) {
                causes.push(cause("FieldValueNotSupported", "spec.type", format!("Unsupported value: {kind:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"")));
            }
            let ports = object.pointer("/spec/ports").and_then(Value::as_array);
            if kind != "ExternalName"
                && ports.is_none_or(|p| p.is_empty())
                && object.pointer("/spec/clusterIP") != Some(&json!("None"))
            {
                causes.push(cause("FieldValueRequired", "spec.ports", "Required value"));
            }
            let mut port_names = std::collections::BTreeSet::new();
            for (i, p) in ports.into_iter().flatten().enumerate() {
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                port_in_range(port, &format!("spec.ports[{i}].port"), &mut causes);
                let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                if name.is_empty() {
                    if ports.is_some_and(|ps| ps.len() > 1) {
                        causes.push(cause(
                            "FieldValueRequired",
                            &format!("spec.ports[{i}].name"),
                            "Required value",
                        ));
                    }
                } else if !is_dns_label(name) {
                    causes.push(cause(
                        "FieldValueInvalid",
                        &format!("spec.ports[{i}].name"),
                        format!("Invalid value: {name:?}: {DNS_LABEL_MESSAGE}"),
                    ));
                } else if !port_names.insert(name) {
                    causes.push(cause(
                        "FieldValueDuplicate",
                        &format!("spec.ports[{i}].name"),
                        format!("Duplicate value: {name:?}"),
                    ));
                }
                let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                if !matches!(protocol, "TCP" | "UDP" | "SCTP") {
                    causes.push(cause("FieldValueNotSupported", &format!("spec.ports[{i}].protocol"), format!("Unsupported value: {protocol:?}: supported values: \"SCTP\", \"TCP\", \"UDP\"")));
                }
                if let Some(target) = p.get("targetPort").and_then(Value::as_i64) {
                    port_in_range(target, &format!("spec.ports[{i}].targetPort"), &mut causes);
                }
            }
        }
        _ => {}
    }
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
