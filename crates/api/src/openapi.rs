//! OpenAPI v3 documents (`/openapi/v3` and its per-path documents), generated once from the k8s-openapi types and the resource table.
//!
//! The schemas come from k8s-openapi's `schemars` implementations, which carry upstream's
//! names (`io.k8s.api.core.v1.Pod`) and descriptions; the operations are laid out like
//! upstream's (`api/openapi-spec/v3/api__v1_openapi.json`): list/create/deletecollection on
//! the collection path, read/replace/patch/delete on the item path, and the `/status`,
//! `/scale`, `/binding` and `/log` subresources the table declares.
//!
//! What clients read:
//! * kubectl's default `--validate=strict` looks, per group-version, for the PATCH operation
//!   tagged with the kind's `x-kubernetes-group-version-kind` and its `fieldValidation`
//!   parameter (cli-runtime `query_param_verifier_v3.go`);
//! * `kubectl explain` finds the schema whose `x-kubernetes-group-version-kind` list holds
//!   the kind and prints its `description`s;
//! * strategic-merge-patch clients read `x-kubernetes-patch-strategy` and
//!   `x-kubernetes-patch-merge-key`, written here from [`podium_patch::list_strategy`] and
//!   [`podium_patch::retains_keys`] so the documents say what the server's patcher does.
//!
//! The documents are kept only as serialized bytes (about 0.85 MB in all; generating them
//! takes some 30 ms in a release build): the server sends bytes, and the parsed trees would
//! take about 4 MB.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher;
use std::sync::OnceLock;

use podium_patch::ListStrategy;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::resource::{ResourceInfo, Subresource, group_versions};

/// `info.version` of every document: the Kubernetes version whose types the workspace's
/// k8s-openapi feature (`v1_33`) builds.
const KUBERNETES_VERSION: &str = "v1.33.0";

const SCHEMA_PREFIX: &str = "#/components/schemas/";
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// One generated document, serialized; the tree is dropped after serialization.
struct Document {
    bytes: Vec<u8>,
    hash: String,
}

fn add_document(out: &mut BTreeMap<String, Document>, path: String, document: Value) {
    // A `Value` has only string keys, so serializing it cannot fail.
    let bytes = serde_json::to_vec(&document).unwrap_or_default();
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(&bytes);
    let hash = format!("{:016X}", hasher.finish());
    out.insert(path, Document { bytes, hash });
}

/// The documents of group-versions and their groups (`apis/apps/v1`, `apis/apps`).
fn add_group_versions(
    out: &mut BTreeMap<String, Document>,
    pairs: &[(&'static str, &'static str)],
    known_groups: &BTreeSet<&str>,
) {
    let mut groups = BTreeSet::new();
    for &(group, version) in pairs {
        add_document(
            out,
            document_path(group, version),
            group_version(group, version),
        );
        if !group.is_empty() && !known_groups.contains(group) && groups.insert(group) {
            add_document(out, format!("apis/{group}"), group_document(group));
        }
    }
}

/// The built-in table's group-versions, in table order.
fn builtin_group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for r in crate::resource::RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The built-in documents by their path under `/openapi/v3/` (`api/v1`, `apis/apps/v1`,
/// `api`, `apis`, `apis/apps`), made once.
fn documents() -> &'static BTreeMap<String, Document> {
    static DOCUMENTS: OnceLock<BTreeMap<String, Document>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let mut out = BTreeMap::new();
        add_document(&mut out, "api".into(), legacy_root_document());
        add_document(&mut out, "apis".into(), groups_root_document());
        add_group_versions(&mut out, &builtin_group_versions(), &BTreeSet::new());
        out
    })
}

/// The documents of custom resources' group-versions, made again whenever the run-time
/// rows of the resource table change (a CRD is created, changed or deleted).
fn custom_documents() -> std::sync::Arc<BTreeMap<String, Document>> {
    type Cached = Option<(u64, std::sync::Arc<BTreeMap<String, Document>>)>;
    static CUSTOM: std::sync::RwLock<Cached> = std::sync::RwLock::new(None);
    let generation = crate::resource::generation();
    if let Some((made_at, documents)) = &*CUSTOM.read().unwrap_or_else(|p| p.into_inner()) {
        if *made_at == generation {
            return documents.clone();
        }
    }
    let builtin = builtin_group_versions();
    let known_groups: BTreeSet<&str> = builtin.iter().map(|(g, _)| *g).collect();
    let custom: Vec<(&'static str, &'static str)> = group_versions()
        .into_iter()
        .filter(|gv| !builtin.contains(gv))
        .collect();
    let mut out = BTreeMap::new();
    add_group_versions(&mut out, &custom, &known_groups);
    let documents = std::sync::Arc::new(out);
    *CUSTOM.write().unwrap_or_else(|p| p.into_inner()) = Some((generation, documents.clone()));
    documents
}

/// `api/v1` or `apis/apps/v1`: the key in the root document and the URL under `/openapi/v3/`.
fn document_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The `/openapi/v3` discovery document: every document's path and its hash-pinned URL.
pub fn root_document() -> Value {
    let custom = custom_documents();
    let mut all: Vec<(&String, &Document)> = documents().iter().chain(custom.iter()).collect();
    all.sort_by(|a, b| a.0.cmp(b.0));
    let paths: Map<String, Value> = all
        .into_iter()
        .map(|(path, doc)| {
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.hash)}),
            )
        })
        .collect();
    json!({"paths": paths})
}

/// The document of one group-version (`group` "" for core), None if not served.
///
/// Parsed from the bytes on first use and then kept (about 4 MB for all documents): meant
/// for tests and tools; the server sends [`group_version_bytes`] and never pays for the trees.
pub fn group_version_document(group: &str, version: &str) -> Option<&'static Value> {
    static PARSED: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    PARSED
        .get_or_init(|| {
            documents()
                .iter()
                .filter_map(|(path, doc)| {
                    Some((path.clone(), serde_json::from_slice(&doc.bytes).ok()?))
                })
                .collect()
        })
        .get(&document_path(group, version))
}

/// Serialized bytes + a stable hash (hex) of a group-version document, for ETag/caching headers.
pub fn group_version_bytes(group: &str, version: &str) -> Option<(&'static [u8], &'static str)> {
    documents()
        .get(&document_path(group, version))
        .map(|d| (d.bytes.as_slice(), d.hash.as_str()))
}

/// Any document the root lists, by its path under `/openapi/v3/` (`api/v1`,
/// `apis/apps/v1`, and the discovery documents `api`, `apis`, `apis/apps`): its bytes and
/// their hash. Built-in documents are borrowed; a custom resource's is copied.
pub fn document_bytes(path: &str) -> Option<(std::borrow::Cow<'static, [u8]>, String)> {
    if let Some(d) = documents().get(path) {
        return Some((
            std::borrow::Cow::Borrowed(d.bytes.as_slice()),
            d.hash.clone(),
        ));
    }
    custom_documents()
        .get(path)
        .map(|d| (std::borrow::Cow::Owned(d.bytes.clone()), d.hash.clone()))
}

/// The document of a custom resource's group-version, parsed (for tests and tools).
pub fn custom_group_version_document(group: &str, version: &str) -> Option<Value> {
    custom_documents()
        .get(&document_path(group, version))
        .and_then(|d| serde_json::from_slice(&d.bytes).ok())
}

fn reference(schema: &str) -> Value {
    json!({"$ref": format!("{SCHEMA_PREFIX}{schema}")})
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// The skeleton every document shares.
fn document(paths: Map<String, Value>, schemas: Map<String, Value>) -> Value {
    let sorted: BTreeMap<String, Value> = schemas.into_iter().collect();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": sorted},
    })
}

/// A one-operation discovery document (`/api/`, `/apis/`, `/apis/<group>/`).
fn discovery_document<T: JsonSchema>(
    path: &str,
    operation_id: &str,
    tag: &str,
    description: &str,
) -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let schema = T::schema_name().to_string();
    generator.subschema_for::<T>();
    let mut paths = Map::new();
    paths.insert(
        path.into(),
        json!({"get": {
            "description": description,
            "operationId": operation_id,
            "tags": [tag],
            "responses": responses(&schema, &["200"]),
        }}),
    );
    document(paths, generator.take_definitions(true))
}

fn legacy_root_document() -> Value {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIVersions;
    discovery_document::<APIVersions>(
        "/api/",
        "getCoreAPIVersions",
        "core",
        "get available API versions",
    )
}

fn groups_root_document() -> Value {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroupList;
    discovery_document::<APIGroupList>(
        "/apis/",
        "getAPIVersions",
        "apis",
        "get available API versions",
    )
}

fn group_document(group: &str) -> Value {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroup;
    let token = group_token(group);
    discovery_document::<APIGroup>(
        &format!("/apis/{group}/"),
        &format!("get{token}APIGroup"),
        &tag_group(group),
        "get information of a group",
    )
}

/// `Core`, `Apps`, `Coordination`: the group's part of upstream's operation ids.
fn group_token(group: &str) -> String {
    let first = if group.is_empty() {
        "core"
    } else {
        group.split('.').next().unwrap_or(group)
    };
    capitalize(first)
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `core`, `apps`, `coordination`: upstream's tag prefix.
fn tag_group(group: &str) -> String {
    if group.is_empty() {
        "core".into()
    } else {
        group.split('.').next().unwrap_or(group).to_string()
    }
}

fn query(name: &str, kind: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": kind, "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn pretty() -> Value {
    query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).",
    )
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
    )
}

fn field_manager() -> Value {
    query(
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
    )
}

fn field_validation() -> Value {
    query(
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
    )
}

fn write_params() -> Vec<Value> {
    vec![dry_run(), field_manager(), field_validation()]
}

fn list_params() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion.",
        ),
        query(
            "continue",
            "string",
            "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue).",
        ),
        query(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
        ),
        query(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        ),
        query(
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results.",
        ),
        query(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        query(
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
        ),
        query(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
        ),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        dry_run(),
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.",
        ),
    ]
}

fn json_content(schema: &str) -> Value {
    json!({"application/json": {"schema": reference(schema)}})
}

fn request_body(schema: &str) -> Value {
    json!({"content": json_content(schema), "required": true})
}

/// The PATCH body: upstream describes every patch type with the opaque `Patch` schema.
/// The patch formats a PATCH accepts. kubectl 1.29+ reads them: it sends a strategic
/// merge patch only where the document lists one (custom resources get merge patches).
fn patch_body(strategic: bool) -> Value {
    let schema = json!({"schema": reference(&format!("{META}.Patch"))});
    let mut content = Map::new();
    content.insert("application/apply-patch+yaml".into(), schema.clone());
    content.insert("application/json-patch+json".into(), schema.clone());
    content.insert("application/merge-patch+json".into(), schema.clone());
    if strategic {
        content.insert("application/strategic-merge-patch+json".into(), schema);
    }
    json!({"content": content, "required": true})
}

fn responses(schema: &str, codes: &[&str]) -> Value {
    let mut out = Map::new();
    for code in codes {
        let description = match *code {
            "201" => "Created",
            "202" => "Accepted",
            _ => "OK",
        };
        out.insert(
            code.to_string(),
            json!({"description": description, "content": json_content(schema)}),
        );
    }
    out.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(out)
}

/// Everything an operation carries besides its body and responses.
struct Operation<'a> {
    id: String,
    action: &'a str,
    gvk: &'a Value,
    tag: &'a str,
    description: String,
    parameters: Vec<Value>,
}

impl Operation<'_> {
    fn with(self, extra: Value) -> Value {
        let mut op = json!({
            "description": self.description,
            "operationId": self.id,
            "parameters": self.parameters,
            "tags": [self.tag],
            "x-kubernetes-action": self.action,
            "x-kubernetes-group-version-kind": self.gvk,
        });
        if let (Some(op), Value::Object(extra)) = (op.as_object_mut(), extra) {
            op.extend(extra);
        }
        op
    }
}

/// The paths of one served resource, as upstream lays them out.
fn resource_paths(
    r: &ResourceInfo,
    schema: &str,
    list_schema: &str,
    paths: &mut Map<String, Value>,
) {
    let kind_gvk = gvk(r.group, r.version, r.kind);
    let tag = format!("{}_{}", tag_group(r.group), r.version);
    let token = format!("{}{}", group_token(r.group), capitalize(r.version));
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let base = r.group_version_path();
    let (collection, scope_params) = if r.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", r.plural),
            vec![path_param(
                "namespace",
                "object name and auth scope, such as for teams and projects",
            )],
        )
    } else {
        (format!("{base}/{}", r.plural), vec![])
    };
    let item = format!("{collection}/{{name}}");
    let kind = r.kind;
    let plural = r.plural;
    let strategic = r.behaviour.accepts_strategic_merge_patch();
    let op = |verb: &str,
              action: &'static str,
              suffix: &str,
              description: String,
              parameters: Vec<Value>| Operation {
        id: format!("{verb}{token}{scope}{kind}{suffix}"),
        action,
        gvk: &kind_gvk,
        tag: &tag,
        description,
        parameters,
    };

    let mut collection_params = scope_params.clone();
    collection_params.push(pretty());
    let mut deletecollection_params = delete_params();
    deletecollection_params.extend(
        list_params()
            .into_iter()
            .filter(|p| p["name"] != "watch" && p["name"] != "allowWatchBookmarks"),
    );
    paths.insert(
        collection.clone(),
        json!({
            "get": op("list", "list", "", format!("list or watch objects of kind {kind}"), list_params()).with(json!({"responses": responses(list_schema, &["200"])})),
            "post": op("create", "post", "", format!("create a {kind}"), write_params()).with(json!({"requestBody": request_body(schema), "responses": responses(schema, &["200", "201", "202"])})),
            "delete": op("delete", "deletecollection", "", format!("delete collection of {kind}"), deletecollection_params).with(json!({
                "requestBody": {"content": json_content(&format!("{META}.DeleteOptions"))},
                "responses": responses(&format!("{META}.Status"), &["200"]),
            })),
            "parameters": collection_params,
        }),
    );

    if r.namespaced {
        let all = format!("{base}/{plural}");
        let list_all = Operation {
            id: format!("list{token}{kind}ForAllNamespaces"),
            action: "list",
            gvk: &kind_gvk,
            tag: &tag,
            description: format!("list or watch objects of kind {kind}"),
            parameters: list_params(),
        };
        paths.insert(all, json!({"get": list_all.with(json!({"responses": responses(list_schema, &["200"])})), "parameters": [pretty()]}));
    }

    let mut item_params = vec![path_param("name", &format!("name of the {kind}"))];
    item_params.extend(scope_params);
    item_params.push(pretty());
    let mut patch_params = write_params();
    patch_params.push(query("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests."));
    paths.insert(
        item.clone(),
        json!({
            "get": op("read", "get", "", format!("read the specified {kind}"), vec![]).with(json!({"responses": responses(schema, &["200"])})),
            "put": op("replace", "put", "", format!("replace the specified {kind}"), write_params()).with(json!({"requestBody": request_body(schema), "responses": responses(schema, &["200", "201"])})),
            "patch": op("patch", "patch", "", format!("partially update the specified {kind}"), patch_params.clone()).with(json!({"requestBody": patch_body(strategic), "responses": responses(schema, &["200", "201"])})),
            "delete": op("delete", "delete", "", format!("delete a {kind}"), delete_params()).with(json!({
                "requestBody": {"content": json_content(&format!("{META}.DeleteOptions"))},
                "responses": responses(schema, &["200", "202"]),
            })),
            "parameters": item_params,
        }),
    );

    for sub in r.subresources {
        let path = format!("{item}/{}", sub.path());
        let entry = match sub {
            Subresource::Status => json!({
                "get": op("read", "get", "Status", format!("read status of the specified {kind}"), vec![]).with(json!({"responses": responses(schema, &["200"])})),
                "put": op("replace", "put", "Status", format!("replace status of the specified {kind}"), write_params()).with(json!({"requestBody": request_body(schema), "responses": responses(schema, &["200", "201"])})),
                "patch": op("patch", "patch", "Status", format!("partially update status of the specified {kind}"), patch_params.clone()).with(json!({"requestBody": patch_body(strategic), "responses": responses(schema, &["200", "201"])})),
            }),
            Subresource::Scale => {
                let scale = "io.k8s.api.autoscaling.v1.Scale";
                let scale_gvk = gvk("autoscaling", "v1", "Scale");
                let scale_op = |verb: &str,
                                action: &'static str,
                                description: String,
                                parameters: Vec<Value>| Operation {
                    id: format!("{verb}{token}{scope}{kind}Scale"),
                    action,
                    gvk: &scale_gvk,
                    tag: &tag,
                    description,
                    parameters,
                };
                json!({
                    "get": scale_op("read", "get", format!("read scale of the specified {kind}"), vec![]).with(json!({"responses": responses(scale, &["200"])})),
                    "put": scale_op("replace", "put", format!("replace scale of the specified {kind}"), write_params()).with(json!({"requestBody": request_body(scale), "responses": responses(scale, &["200", "201"])})),
                    "patch": scale_op("patch", "patch", format!("partially update scale of the specified {kind}"), patch_params.clone()).with(json!({"requestBody": patch_body(strategic), "responses": responses(scale, &["200", "201"])})),
                })
            }
            Subresource::Binding => {
                let binding = "io.k8s.api.core.v1.Binding";
                let binding_gvk = gvk("", "v1", "Binding");
                let create = Operation {
                    id: format!("create{token}{scope}{kind}Binding"),
                    action: "post",
                    gvk: &binding_gvk,
                    tag: &tag,
                    description: format!("create binding of a {kind}"),
                    parameters: write_params(),
                };
                json!({"post": create.with(json!({"requestBody": request_body(binding), "responses": responses(binding, &["200", "201", "202"])}))})
            }
            Subresource::Proxy => {
                let text = json!({
                    "200": {"description": "OK", "content": {"*/*": {"schema": {"type": "string"}}}},
                    "401": {"description": "Unauthorized"},
                });
                let mut entry = Map::new();
                for method in ["get", "put", "post", "delete", "patch"] {
                    entry.insert(
                        method.into(),
                        json!({
                            "description": format!("connect {} requests to proxy of {kind}", method.to_uppercase()),
                            "operationId": format!("connect{token}{}{scope}{kind}Proxy", capitalize(method)),
                            "tags": [tag.clone()],
                            "responses": text.clone(),
                            "x-kubernetes-action": "connect",
                        }),
                    );
                }
                Value::Object(entry)
            }
            Subresource::Token => {
                let request = "io.k8s.api.authentication.v1.TokenRequest";
                let request_gvk = gvk("authentication.k8s.io", "v1", "TokenRequest");
                let create = Operation {
                    id: format!("create{token}{scope}{kind}Token"),
                    action: "post",
                    gvk: &request_gvk,
                    tag: &tag,
                    description: format!("create token of a {kind}"),
                    parameters: write_params(),
                };
                json!({"post": create.with(json!({"requestBody": request_body(request), "responses": responses(request, &["200", "201", "202"])}))})
            }
            Subresource::Eviction => {
                let eviction = "io.k8s.api.policy.v1.Eviction";
                let eviction_gvk = gvk("policy", "v1", "Eviction");
                let create = Operation {
                    id: format!("create{token}{scope}{kind}Eviction"),
                    action: "post",
                    gvk: &eviction_gvk,
                    tag: &tag,
                    description: format!("create eviction of a {kind}"),
                    parameters: write_params(),
                };
                json!({"post": create.with(json!({"requestBody": request_body(eviction), "responses": responses(eviction, &["200", "201", "202"])}))})
            }
            Subresource::Log => {
                let parameters = vec![
                    query(
                        "container",
                        "string",
                        "The container for which to stream logs. Defaults to only container if there is one container in the pod.",
                    ),
                    query(
                        "follow",
                        "boolean",
                        "Follow the log stream of the pod. Defaults to false.",
                    ),
                    query(
                        "limitBytes",
                        "integer",
                        "If set, the number of bytes to read from the server before terminating the log output.",
                    ),
                    query(
                        "previous",
                        "boolean",
                        "Return previous terminated container logs. Defaults to false.",
                    ),
                    query(
                        "sinceSeconds",
                        "integer",
                        "A relative time in seconds before the current time from which to show logs.",
                    ),
                    query(
                        "tailLines",
                        "integer",
                        "If set, the number of lines from the end of the logs to show.",
                    ),
                    query(
                        "timestamps",
                        "boolean",
                        "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output. Defaults to false.",
                    ),
                ];
                let read = op(
                    "read",
                    "get",
                    "Log",
                    format!("read log of the specified {kind}"),
                    parameters,
                );
                json!({"get": read.with(json!({"responses": {
                    "200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "401": {"description": "Unauthorized"},
                }}))})
            }
        };
        let mut entry = entry;
        let mut params = vec![path_param(
            "name",
            &format!("name of the {}", sub_object(*sub, kind)),
        )];
        if r.namespaced {
            params.push(path_param(
                "namespace",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        params.push(pretty());
        entry["parameters"] = json!(params);
        paths.insert(path, entry);
    }
}

/// The object a subresource path's `{name}` names, as upstream words it.
fn sub_object(sub: Subresource, kind: &str) -> String {
    match sub {
        Subresource::Scale => "Scale".into(),
        Subresource::Binding => "Binding".into(),
        Subresource::Eviction => "Eviction".into(),
        Subresource::Token => "TokenRequest".into(),
        Subresource::Proxy => format!("{kind}ProxyOptions"),
        Subresource::Status | Subresource::Log => kind.into(),
    }
}

/// The `<Kind>List` schema: k8s-openapi's generic `List<T>` has no schema of its own.
fn list_schema(r: &ResourceInfo, item_schema: &str, schemas: &Map<String, Value>) -> Value {
    let item_properties = &schemas
        .get(item_schema)
        .map(|s| s["properties"].clone())
        .unwrap_or(Value::Null);
    json!({
        "description": format!("{}List is a list of {} objects.", r.kind, r.kind),
        "properties": {
            "apiVersion": item_properties["apiVersion"],
            "items": {
                "description": format!("List of {}.", r.plural),
                "items": {"allOf": [reference(item_schema)], "default": {}},
                "type": "array",
            },
            "kind": item_properties["kind"],
            "metadata": {
                "allOf": [reference(&format!("{META}.ListMeta"))],
                "default": {},
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            },
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [gvk(r.group, r.version, &format!("{}List", r.kind))],
    })
}

fn group_version(group: &str, version: &str) -> Value {
    use k8s_openapi::api::{autoscaling::v1::Scale, core::v1::Binding};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

    let mut generator = SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::Patch>();
    generator.subschema_for::<meta::ListMeta>();
    generator.subschema_for::<meta::APIResourceList>();
    let served: Vec<(&ResourceInfo, String)> = crate::resource::all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .filter_map(|r| r.behaviour.schema(&mut generator).map(|schema| (r, schema)))
        .collect();
    for (r, _) in &served {
        if r.has(Subresource::Scale) {
            generator.subschema_for::<Scale>();
        }
        if r.has(Subresource::Binding) {
            generator.subschema_for::<Binding>();
        }
        if r.has(Subresource::Token) {
            generator.subschema_for::<k8s_openapi::api::authentication::v1::TokenRequest>();
        }
        if r.has(Subresource::Eviction) {
            generator.subschema_for::<k8s_openapi::api::policy::v1::Eviction>();
        }
    }
    let mut schemas = generator.take_definitions(true);

    let mut paths = Map::new();
    let token = format!("{}{}", group_token(group), capitalize(version));
    let base = if group.is_empty() {
        format!("/api/{version}/")
    } else {
        format!("/apis/{group}/{version}/")
    };
    paths.insert(
        base,
        json!({"get": {
            "description": "get available resources",
            "operationId": format!("get{token}APIResources"),
            "tags": [format!("{}_{version}", tag_group(group))],
            "responses": responses(&format!("{META}.APIResourceList"), &["200"]),
        }}),
    );
    for (r, schema) in &served {
        let list = format!("{schema}List");
        let list_value = list_schema(r, schema, &schemas);
        schemas.insert(list.clone(), list_value);
        resource_paths(r, schema, &list, &mut paths);
        if let Some(s) = schemas.get_mut(schema).and_then(Value::as_object_mut) {
            s.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([gvk(r.group, r.version, r.kind)]),
            );
        }
    }
    let mut tag_kind = |schema: &str, gvks: Value| {
        if let Some(s) = schemas.get_mut(schema).and_then(Value::as_object_mut) {
            s.insert("x-kubernetes-group-version-kind".into(), gvks);
        }
    };
    tag_kind(
        "io.k8s.api.autoscaling.v1.Scale",
        json!([gvk("autoscaling", "v1", "Scale")]),
    );
    tag_kind(
        "io.k8s.api.core.v1.Binding",
        json!([gvk("", "v1", "Binding")]),
    );
    tag_kind(&format!("{META}.Status"), json!([gvk("", "v1", "Status")]));
    tag_kind(
        "io.k8s.api.authentication.v1.TokenRequest",
        json!([gvk("authentication.k8s.io", "v1", "TokenRequest")]),
    );
    let delete_options: Vec<Value> = group_versions()
        .into_iter()
        .map(|(g, v)| gvk(g, v, "DeleteOptions"))
        .collect();
    tag_kind(&format!("{META}.DeleteOptions"), json!(delete_options));

    let rules = PatchRules {
        list_strategy: &podium_patch::list_strategy,
        retains_keys: &podium_patch::retains_keys,
    };
    for (r, schema) in &served {
        annotate_patch_strategies(&mut schemas, r.kind, schema, &rules);
    }
    document(paths, schemas)
}

/// The strategic-merge-patch rules the documents describe (the patcher's, in production).
struct PatchRules<'a> {
    list_strategy: &'a dyn Fn(&str, &[&str]) -> ListStrategy,
    retains_keys: &'a dyn Fn(&str, &[&str]) -> bool,
}

/// Compound list-map keys upstream declares where the merge key alone is not unique
/// (`+listMapKey=containerPort` and `+listMapKey=protocol`); the merge key comes first.
fn list_map_keys(schema: &str, property: &str, merge_key: &'static str) -> Vec<&'static str> {
    match (schema, property) {
        ("io.k8s.api.core.v1.Container" | "io.k8s.api.core.v1.EphemeralContainer", "ports") => {
            vec![merge_key, "protocol"]
        }
        ("io.k8s.api.core.v1.ServiceSpec", "ports") => vec![merge_key, "protocol"],
        _ => vec![merge_key],
    }
}

/// The vendor extensions a property gets, if any.
fn patch_extensions(
    schema: &str,
    property: &str,
    is_list: bool,
    path: &[&str],
    kind: &str,
    rules: &PatchRules,
) -> Option<Map<String, Value>> {
    let retains = (rules.retains_keys)(kind, path);
    let mut ext = Map::new();
    if is_list {
        match (rules.list_strategy)(kind, path) {
            ListStrategy::MergeByKey(key) => {
                ext.insert(
                    "x-kubernetes-list-map-keys".into(),
                    json!(list_map_keys(schema, property, key)),
                );
                ext.insert("x-kubernetes-list-type".into(), json!("map"));
                ext.insert("x-kubernetes-patch-merge-key".into(), json!(key));
                ext.insert(
                    "x-kubernetes-patch-strategy".into(),
                    json!(if retains { "merge,retainKeys" } else { "merge" }),
                );
            }
            ListStrategy::MergePrimitives => {
                ext.insert("x-kubernetes-list-type".into(), json!("set"));
                ext.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
            }
            ListStrategy::Replace => {
                ext.insert("x-kubernetes-list-type".into(), json!("atomic"));
            }
        }
    } else if retains {
        ext.insert("x-kubernetes-patch-strategy".into(), json!("retainKeys"));
    }
    (!ext.is_empty()).then_some(ext)
}

/// The schema a property points at: `{"$ref"}` or upstream's `{"allOf": [{"$ref"}]}`.
fn referenced(property: &Value) -> Option<&str> {
    property
        .get("$ref")
        .or_else(|| property.pointer("/allOf/0/$ref"))
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(SCHEMA_PREFIX))
}

/// Walk a kind's schema tree along field paths and write the patch extensions of every
/// list (and retainKeys map) into the shared schemas. Upstream keys these by Go type, the
/// patcher by path from the object root; a type reached along several paths (ObjectMeta
/// at `metadata` and at `spec.template.metadata`) takes the first merging answer, since a
/// type-level schema can hold only one.
fn annotate_patch_strategies(
    schemas: &mut Map<String, Value>,
    kind: &str,
    root: &str,
    rules: &PatchRules,
) {
    let mut found: BTreeMap<(String, String), Map<String, Value>> = BTreeMap::new();
    let mut path = Vec::new();
    let mut stack = Vec::new();
    collect_patch_extensions(
        schemas, kind, root, rules, &mut path, &mut stack, &mut found,
    );
    for ((schema, property), ext) in found {
        if let Some(prop) = schemas
            .get_mut(&schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(&property))
            .and_then(Value::as_object_mut)
        {
            prop.extend(ext);
        }
    }
}

/// Deeper than any Kubernetes object nests; guards against a self-referencing schema.
const MAX_DEPTH: usize = 24;

fn collect_patch_extensions<'s>(
    schemas: &'s Map<String, Value>,
    kind: &str,
    schema: &'s str,
    rules: &PatchRules,
    path: &mut Vec<&'s str>,
    stack: &mut Vec<&'s str>,
    found: &mut BTreeMap<(String, String), Map<String, Value>>,
) {
    if path.len() > MAX_DEPTH || stack.contains(&schema) {
        return;
    }
    let Some(properties) = schemas
        .get(schema)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return;
    };
    stack.push(schema);
    for (name, property) in properties {
        path.push(name.as_str());
        let is_list = property.get("type").and_then(Value::as_str) == Some("array");
        if let Some(ext) = patch_extensions(schema, name, is_list, path, kind, rules) {
            let key = (schema.to_string(), name.clone());
            let merges = ext.contains_key("x-kubernetes-patch-strategy");
            match found.get(&key) {
                Some(existing)
                    if existing.contains_key("x-kubernetes-patch-strategy") || !merges => {}
                _ => {
                    found.insert(key, ext);
                }
            }
        }
        let next = if is_list {
            property.get("items").and_then(referenced)
        } else {
            referenced(property)
        };
        if let Some(next) = next {
            collect_patch_extensions(schemas, kind, next, rules, path, stack, found);
        }
        path.pop();
    }
    stack.pop();
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

    fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
        &doc["components"]["schemas"][name]
    }

    #[test]
    fn root_lists_every_group_version_with_its_hash() {
        let root = root_document();
        let paths = root["paths"].as_object().unwrap();
        for (g, v) in group_versions() {
            let path = document_path(g, v);
            let (_, hash) = group_version_bytes(g, v).unwrap();
            assert_eq!(
                paths[&path]["serverRelativeURL"],
                format!("/openapi/v3/{path}?hash={hash}")
            );
        }
        for path in ["api", "apis", "apis/apps", "apis/coordination.k8s.io"] {
            let url = paths[path]["serverRelativeURL"].as_str().unwrap();
            assert!(
                url.starts_with(&format!("/openapi/v3/{path}?hash=")),
                "{url}"
            );
            let (bytes, _) = document_bytes(path).unwrap();
            let doc: Value = serde_json::from_slice(&bytes).unwrap();
            assert!(
                doc["paths"]
                    .as_object()
                    .unwrap()
                    .values()
                    .all(|p| p["get"]["operationId"].is_string())
            );
        }
        // Every document the root names is served, and nothing else is.
        assert_eq!(paths.len(), documents().len());
        assert!(group_version_bytes("apps", "v2").is_none());
        assert!(group_version_document("batch", "v2").is_none());
    }

    #[test]
    fn every_kind_has_a_patch_with_its_gvk_and_field_validation() {
        for (g, v) in group_versions() {
            let doc = group_version_document(g, v).unwrap();
            assert_eq!(doc["openapi"], "3.0.0");
            for r in crate::resource::all()
                .into_iter()
                .filter(|r| r.group == g && r.version == v)
            {
                let want = gvk(r.group, r.version, r.kind);
                // kubectl stops at the first PATCH carrying the GVK, in map order: all must pass.
                let patches: Vec<&Value> = doc["paths"]
                    .as_object()
                    .unwrap()
                    .values()
                    .filter(|p| p["patch"]["x-kubernetes-group-version-kind"] == want)
                    .collect();
                assert!(!patches.is_empty(), "no PATCH for {}", r.kind);
                for p in patches {
                    assert!(
                        p["patch"]["parameters"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|q| q["name"] == "fieldValidation" && q["in"] == "query"),
                        "{}",
                        r.kind
                    );
                    assert_eq!(p["patch"]["x-kubernetes-action"], "patch");
                }
                // `kubectl explain` finds the schema by the GVK in its list.
                let explained = doc["components"]["schemas"]
                    .as_object()
                    .unwrap()
                    .values()
                    .filter(|s| {
                        s["x-kubernetes-group-version-kind"]
                            .as_array()
                            .is_some_and(|l| l.contains(&want))
                    })
                    .count();
                assert_eq!(explained, 1, "{}", r.kind);
            }
        }
    }

    #[test]
    fn operations_follow_upstream_layout() {
        let core = group_version_document("", "v1").unwrap();
        let pods = &core["paths"]["/api/v1/namespaces/{namespace}/pods"];
        assert_eq!(pods["get"]["operationId"], "listCoreV1NamespacedPod");
        assert_eq!(pods["get"]["x-kubernetes-action"], "list");
        assert_eq!(
            pods["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.PodList"
        );
        assert_eq!(pods["delete"]["x-kubernetes-action"], "deletecollection");
        let pod = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
        assert_eq!(pod["patch"]["operationId"], "patchCoreV1NamespacedPod");
        assert!(
            pod["patch"]["requestBody"]["content"]["application/strategic-merge-patch+json"]
                .is_object()
        );
        assert_eq!(
            core["paths"]["/api/v1/pods"]["get"]["operationId"],
            "listCoreV1PodForAllNamespaces"
        );
        assert_eq!(
            core["paths"]["/api/v1/nodes/{name}/status"]["patch"]["operationId"],
            "patchCoreV1NodeStatus"
        );
        assert_eq!(
            core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"]["operationId"],
            "readCoreV1NamespacedPodLog"
        );
        assert_eq!(
            core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"]["x-kubernetes-group-version-kind"],
            gvk("", "v1", "Binding")
        );
        assert_eq!(
            schema(core, "io.k8s.api.core.v1.PodList")["x-kubernetes-group-version-kind"],
            json!([gvk("", "v1", "PodList")])
        );

        let apps = group_version_document("apps", "v1").unwrap();
        let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
            ["patch"];
        assert_eq!(scale["operationId"], "patchAppsV1NamespacedDeploymentScale");
        assert_eq!(
            scale["x-kubernetes-group-version-kind"],
            gvk("autoscaling", "v1", "Scale")
        );
        assert_eq!(
            schema(apps, "io.k8s.api.autoscaling.v1.Scale")["x-kubernetes-group-version-kind"],
            json!([gvk("autoscaling", "v1", "Scale")])
        );
        let lease = group_version_document("coordination.k8s.io", "v1").unwrap();
        assert_eq!(
            lease["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"]["get"]
                ["operationId"],
            "readCoordinationV1NamespacedLease"
        );
    }

    #[test]
    fn every_ref_resolves_inside_its_document() {
        for path in documents().keys() {
            let doc: Value = serde_json::from_slice(&document_bytes(path).unwrap().0).unwrap();
            let mut all = Vec::new();
            refs(&doc, &mut all);
            assert!(!all.is_empty(), "{path}");
            for r in all {
                let name = r
                    .strip_prefix(SCHEMA_PREFIX)
                    .unwrap_or_else(|| panic!("{path}: foreign ref {r}"));
                assert!(
                    doc["components"]["schemas"].get(name).is_some(),
                    "{path}: dangling {r}"
                );
            }
        }
    }

    #[test]
    fn patch_strategies_come_from_the_patcher() {
        let core = group_version_document("", "v1").unwrap();
        let containers = &schema(core, "io.k8s.api.core.v1.PodSpec")["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        let volumes = &schema(core, "io.k8s.api.core.v1.PodSpec")["properties"]["volumes"];
        assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
        let ports = &schema(core, "io.k8s.api.core.v1.Container")["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        assert_eq!(
            schema(core, "io.k8s.api.core.v1.Container")["properties"]["args"]["x-kubernetes-list-type"],
            "atomic"
        );
        assert_eq!(
            schema(core, "io.k8s.api.core.v1.ServiceSpec")["properties"]["ports"]["x-kubernetes-patch-merge-key"],
            "port"
        );
        let meta = &schema(core, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")["properties"];
        assert_eq!(
            meta["ownerReferences"]["x-kubernetes-patch-merge-key"],
            "uid"
        );
        assert_eq!(meta["finalizers"]["x-kubernetes-list-type"], "set");
        assert_eq!(meta["finalizers"]["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(
            schema(core, "io.k8s.api.core.v1.PodStatus")["properties"]["conditions"]["x-kubernetes-patch-merge-key"],
            "type"
        );

        let apps = group_version_document("apps", "v1").unwrap();
        assert_eq!(
            schema(apps, "io.k8s.api.core.v1.PodSpec")["properties"]["containers"]["x-kubernetes-patch-merge-key"],
            "name"
        );
        assert_eq!(
            schema(apps, "io.k8s.api.apps.v1.DeploymentSpec")["properties"]["strategy"]["x-kubernetes-patch-strategy"],
            "retainKeys"
        );
        assert_eq!(
            schema(apps, "io.k8s.api.apps.v1.DeploymentStatus")["properties"]["conditions"]["x-kubernetes-patch-merge-key"],
            "type"
        );
    }

    #[test]
    fn the_walk_follows_the_rules_it_is_given() {
        let mut generator = SchemaSettings::openapi3().into_generator();
        let root = crate::resource::find_kind("", "Pod")
            .unwrap()
            .behaviour
            .schema(&mut generator)
            .unwrap();
        let mut schemas = generator.take_definitions(true);
        let list_strategy = |_: &str, path: &[&str]| match path {
            ["spec", "containers", "env"] => ListStrategy::MergeByKey("value"),
            ["spec", "tolerations"] => ListStrategy::MergePrimitives,
            _ => ListStrategy::Replace,
        };
        let retains_keys = |_: &str, path: &[&str]| path == ["spec", "securityContext"];
        annotate_patch_strategies(
            &mut schemas,
            "Pod",
            &root,
            &PatchRules {
                list_strategy: &list_strategy,
                retains_keys: &retains_keys,
            },
        );
        let prop = |s: &str, p: &str| schemas[s]["properties"][p].clone();
        assert_eq!(
            prop("io.k8s.api.core.v1.Container", "env")["x-kubernetes-patch-merge-key"],
            "value"
        );
        assert_eq!(
            prop("io.k8s.api.core.v1.PodSpec", "tolerations")["x-kubernetes-list-type"],
            "set"
        );
        assert_eq!(
            prop("io.k8s.api.core.v1.PodSpec", "containers")["x-kubernetes-list-type"],
            "atomic"
        );
        assert!(
            prop("io.k8s.api.core.v1.PodSpec", "containers")
                .get("x-kubernetes-patch-strategy")
                .is_none()
        );
        assert_eq!(
            prop("io.k8s.api.core.v1.PodSpec", "securityContext")["x-kubernetes-patch-strategy"],
            "retainKeys"
        );
        // Descriptions survive next to the rewritten references.
        assert!(
            prop("io.k8s.api.core.v1.Pod", "spec")["description"]
                .as_str()
                .unwrap()
                .contains("desired behavior")
        );
        assert!(
            prop("io.k8s.api.core.v1.Pod", "spec")["allOf"][0]["$ref"]
                .as_str()
                .unwrap()
                .ends_with("PodSpec")
        );
    }

    #[test]
    fn the_patchers_answers_do_not_conflict_between_paths() {
        // A type reached along two paths must not get two different merging answers.
        let mut generator = SchemaSettings::openapi3().into_generator();
        let kinds: Vec<(&str, String)> = crate::resource::all()
            .into_iter()
            .filter_map(|r| r.behaviour.schema(&mut generator).map(|s| (r.kind, s)))
            .collect();
        let schemas = generator.take_definitions(true);
        let rules = PatchRules {
            list_strategy: &podium_patch::list_strategy,
            retains_keys: &podium_patch::retains_keys,
        };
        let mut seen: BTreeMap<(String, String), Map<String, Value>> = BTreeMap::new();
        for (kind, root) in &kinds {
            let mut found = BTreeMap::new();
            collect_patch_extensions(
                &schemas,
                kind,
                root,
                &rules,
                &mut Vec::new(),
                &mut Vec::new(),
                &mut found,
            );
            for (key, ext) in found {
                if !ext.contains_key("x-kubernetes-patch-strategy") {
                    continue;
                }
                if let Some(previous) = seen.get(&key) {
                    assert_eq!(previous, &ext, "{key:?} differs for {kind}");
                }
                seen.insert(key, ext);
            }
        }
        assert!(seen.len() >= 15, "{}", seen.len());
    }

    #[test]
    fn generation_cost() {
        let start = std::time::Instant::now();
        let total: usize = documents().values().map(|d| d.bytes.len()).sum();
        let elapsed = start.elapsed();
        for (path, d) in documents() {
            println!("{path}: {} bytes", d.bytes.len());
        }
        println!(
            "all documents: {total} bytes, generated in {elapsed:?} (or earlier by another test)"
        );
        // The documents are held for the process's life: keep them well inside the budget.
        assert!(total < 4 << 20, "{total}");
    }
}
