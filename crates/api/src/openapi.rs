//! OpenAPI v3 documents, generated once from the k8s-openapi types (their `schemars`
//! implementations carry upstream's names and descriptions) and the resource table.
//!
//! kubectl's default `--validate=strict` needs them: it looks for each kind's PATCH
//! operation (tagged with `x-kubernetes-group-version-kind`) and its `fieldValidation`
//! parameter, then lets the server validate. `kubectl apply` reads list merge keys from
//! `x-kubernetes-patch-merge-key`, and `kubectl explain` reads the descriptions.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::resource::{RESOURCES, ResourceInfo, Subresource, group_versions};

/// A generated group-version document: serialized once, the tree is not kept.
struct Document {
    bytes: Vec<u8>,
    hash: String,
}

fn fnv64(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in bytes {
        hash = (hash ^ *b as u64).wrapping_mul(0x100000001b3);
    }
    format!("{hash:016X}")
}

/// The schema name of a kind, and a generator call that registers it.
fn register_kind(generator: &mut schemars::SchemaGenerator, kind: &str) -> Option<String> {
    use k8s_openapi::api::{apps::v1 as apps, coordination::v1 as coordination, core::v1 as core};
    macro_rules! reg {
        ($t:ty) => {{
            generator.subschema_for::<$t>();
            <$t as schemars::JsonSchema>::schema_name().to_string()
        }};
    }
    Some(match kind {
        "Namespace" => reg!(core::Namespace),
        "Node" => reg!(core::Node),
        "Pod" => reg!(core::Pod),
        "Service" => reg!(core::Service),
        "Endpoints" => reg!(core::Endpoints),
        "Event" => reg!(core::Event),
        "ConfigMap" => reg!(core::ConfigMap),
        "Secret" => reg!(core::Secret),
        "Deployment" => reg!(apps::Deployment),
        "ReplicaSet" => reg!(apps::ReplicaSet),
        "Lease" => reg!(coordination::Lease),
        _ => return None,
    })
}

/// List fields whose merge strategy kubectl must know, by schema and property
/// (upstream's `patchStrategy`/`patchMergeKey` struct tags).
const PATCH_META: &[(&str, &str, &str, Option<&str>)] = &[
    ("io.k8s.api.core.v1.PodSpec", "containers", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "volumes", "merge,retainKeys", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", "merge", Some("ip")),
    ("io.k8s.api.core.v1.Container", "env", "merge", Some("name")),
    ("io.k8s.api.core.v1.Container", "ports", "merge", Some("containerPort")),
    ("io.k8s.api.core.v1.Container", "volumeMounts", "merge", Some("mountPath")),
    ("io.k8s.api.core.v1.Container", "volumeDevices", "merge", Some("devicePath")),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", "merge", Some("port")),
    ("io.k8s.api.core.v1.PodStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.NodeStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.NodeStatus", "addresses", "merge", Some("type")),
    ("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy", "retainKeys", None),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", "merge", Some("uid")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", "merge", None),
];

fn annotate_patch_meta(schemas: &mut Map<String, Value>) {
    for (schema, property, strategy, key) in PATCH_META {
        if let Some(prop) = schemas.get_mut(*schema).and_then(|s| s.pointer_mut(&format!("/properties/{property}"))).and_then(Value::as_object_mut) {
            prop.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
            if let Some(key) = key {
                prop.insert("x-kubernetes-patch-merge-key".into(), json!(key));
                prop.insert("x-kubernetes-list-type".into(), json!("map"));
                prop.insert("x-kubernetes-list-map-keys".into(), json!([key]));
            }
        }
    }
}

fn query_param(name: &str, description: &str, kind: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": kind, "uniqueItems": true}})
}

fn write_params() -> Vec<Value> {
    vec![
        query_param("dryRun", "When present, indicates that modifications should not be persisted.", "string"),
        query_param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes.", "string"),
        query_param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict.", "string"),
    ]
}

fn list_params() -> Vec<Value> {
    vec![
        query_param("labelSelector", "A selector to restrict the list of returned objects by their labels.", "string"),
        query_param("fieldSelector", "A selector to restrict the list of returned objects by their fields.", "string"),
        query_param("limit", "limit is a maximum number of responses to return for a list call.", "integer"),
        query_param("continue", "The continue option should be set when retrieving more results from the server.", "string"),
        query_param("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served from.", "string"),
        query_param("watch", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.", "boolean"),
        query_param("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    ]
}

fn body(reference: &str) -> Value {
    json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{reference}")}}}, "required": true})
}

fn ok(reference: &str, codes: &[&str]) -> Value {
    let mut responses = Map::new();
    for code in codes {
        responses.insert(code.to_string(), json!({"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{reference}")}}}}));
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(responses)
}

fn patch_body(reference: &str) -> Value {
    let schema = json!({"$ref": format!("#/components/schemas/{reference}")});
    json!({"content": {
        "application/json-patch+json": {"schema": schema},
        "application/merge-patch+json": {"schema": schema},
        "application/strategic-merge-patch+json": {"schema": schema},
    }, "required": true})
}

fn operations(r: &ResourceInfo, schema: &str, paths: &mut BTreeMap<String, Value>) {
    let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let base = r.group_version_path();
    let (collection, item, path_params) = if r.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", r.plural),
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural),
            json!([{"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}]),
        )
    } else {
        (format!("{base}/{}", r.plural), format!("{base}/{}/{{name}}", r.plural), json!([]))
    };
    let name_param = json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}});
    let mut item_params = path_params.as_array().cloned().unwrap_or_default();
    item_params.insert(0, name_param);
    let op = |action: &str, verb: &str, extra: Value| {
        let mut o = json!({
            "operationId": format!("{verb}{}", r.kind),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "tags": [if r.group.is_empty() { "core_v1".to_string() } else { format!("{}_{}", r.group.replace('.', "_"), r.version) }],
        });
        if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
            o.extend(extra.clone());
        }
        o
    };
    paths.insert(
        collection,
        json!({
            "get": op("list", "list", json!({"parameters": list_params(), "responses": {"200": {"description": "OK"}}})),
            "post": op("post", "create", json!({"parameters": write_params(), "requestBody": body(schema), "responses": ok(schema, &["200", "201", "202"])})),
            "parameters": path_params,
        }),
    );
    paths.insert(
        item.clone(),
        json!({
            "get": op("get", "read", json!({"responses": ok(schema, &["200"])})),
            "put": op("put", "replace", json!({"parameters": write_params(), "requestBody": body(schema), "responses": ok(schema, &["200", "201"])})),
            "patch": op("patch", "patch", json!({"parameters": write_params(), "requestBody": patch_body(schema), "responses": ok(schema, &["200", "201"])})),
            "delete": op("delete", "delete", json!({"parameters": [query_param("gracePeriodSeconds", "The duration in seconds before the object should be deleted.", "integer"), query_param("propagationPolicy", "Whether and how garbage collection will be performed.", "string")], "responses": ok("io.k8s.apimachinery.pkg.apis.meta.v1.Status", &["200", "202"])})),
            "parameters": item_params,
        }),
    );
    for sub in r.subresources {
        let (sub_schema, sub_gvk) = match sub {
            Subresource::Status => (schema.to_string(), gvk.clone()),
            Subresource::Scale => ("io.k8s.api.autoscaling.v1.Scale".to_string(), json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})),
            // Not PATCHable; documented so `kubectl explain` and clients see them.
            Subresource::Binding | Subresource::Log => continue,
        };
        let path = format!("{item}/{}", sub.path());
        let suffix = if *sub == Subresource::Status { "Status" } else { "Scale" };
        let mk = |action: &str, verb: &str, extra: Value| {
            let mut o = json!({"operationId": format!("{verb}{}{suffix}", r.kind), "x-kubernetes-action": action, "x-kubernetes-group-version-kind": sub_gvk});
            if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
                o.extend(extra.clone());
            }
            o
        };
        paths.insert(
            path,
            json!({
                "get": mk("get", "read", json!({"responses": ok(&sub_schema, &["200"])})),
                "put": mk("put", "replace", json!({"parameters": write_params(), "requestBody": body(&sub_schema), "responses": ok(&sub_schema, &["200", "201"])})),
                "patch": mk("patch", "patch", json!({"parameters": write_params(), "requestBody": patch_body(&sub_schema), "responses": ok(&sub_schema, &["200", "201"])})),
            }),
        );
    }
}

fn generate(group: &str, version: &str) -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut paths = BTreeMap::new();
    let mut kinds = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        if let Some(schema) = register_kind(&mut generator, r.kind) {
            operations(r, &schema, &mut paths);
            kinds.push((schema, r));
            if r.has(Subresource::Scale) {
                generator.subschema_for::<k8s_openapi::api::autoscaling::v1::Scale>();
            }
        }
    }
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>();
    let mut schemas = generator.take_definitions(true);
    for (schema, r) in &kinds {
        if let Some(s) = schemas.get_mut(schema).and_then(Value::as_object_mut) {
            s.insert("x-kubernetes-group-version-kind".into(), json!([{"group": r.group, "kind": r.kind, "version": r.version}]));
        }
    }
    if let Some(s) = schemas.get_mut("io.k8s.api.autoscaling.v1.Scale").and_then(Value::as_object_mut) {
        s.insert("x-kubernetes-group-version-kind".into(), json!([{"group": "autoscaling", "kind": "Scale", "version": "v1"}]));
    }
    annotate_patch_meta(&mut schemas);
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn documents() -> &'static BTreeMap<(String, String), Document> {
    static DOCS: OnceLock<BTreeMap<(String, String), Document>> = OnceLock::new();
    DOCS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(g, v)| {
                let bytes = serde_json::to_vec(&generate(g, v)).unwrap_or_default();
                let hash = fnv64(&bytes);
                ((g.to_string(), v.to_string()), Document { bytes, hash })
            })
            .collect()
    })
}

fn url_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// The `/openapi/v3` discovery document.
pub fn root_document() -> &'static Value {
    static ROOT: OnceLock<Value> = OnceLock::new();
    ROOT.get_or_init(|| {
        let mut paths = Map::new();
        for ((group, version), doc) in documents() {
            let path = url_path(group, version);
            paths.insert(path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.hash)}));
        }
        json!({"paths": paths})
    })
}

/// Serialized bytes and a stable hash of a group-version document.
pub fn group_version_bytes(group: &str, version: &str) -> Option<(&'static [u8], &'static str)> {
    documents().get(&(group.to_string(), version.to_string())).map(|d| (d.bytes.as_slice(), d.hash.as_str()))
}

/// The document of one group-version, parsed (tests and tools; the server sends bytes).
pub fn group_version_document(group: &str, version: &str) -> Option<Value> {
    group_version_bytes(group, version).and_then(|(b, _)| serde_json::from_slice(b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    out.push(r);
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_kind_has_a_patch_with_field_validation_and_refs_resolve() {
        let root = root_document();
        for (g, v) in group_versions() {
            let url = root["paths"][url_path(g, v)]["serverRelativeURL"].as_str().unwrap();
            assert!(url.contains("?hash="), "{url}");
            let doc = group_version_document(g, v).unwrap();
            for r in RESOURCES.iter().filter(|r| r.group == g && r.version == v) {
                let found = doc["paths"].as_object().unwrap().values().any(|p| {
                    p["patch"]["x-kubernetes-group-version-kind"] == json!({"group": r.group, "version": r.version, "kind": r.kind})
                        && p["patch"]["parameters"].as_array().unwrap().iter().any(|q| q["name"] == "fieldValidation" && q["in"] == "query")
                });
                assert!(found, "no PATCH for {}", r.kind);
            }
            let mut all = Vec::new();
            refs(&doc, &mut all);
            for r in all {
                let name = r.strip_prefix("#/components/schemas/").unwrap();
                assert!(doc["components"]["schemas"].get(name).is_some(), "dangling {r}");
            }
        }
        let core = group_version_document("", "v1").unwrap();
        let containers = &core["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert!(core["components"]["schemas"]["io.k8s.api.core.v1.Pod"]["description"].as_str().unwrap().contains("collection of containers"));
    }
}
