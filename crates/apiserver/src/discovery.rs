//! Discovery (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`) and OpenAPI v3.
//! `/api` and `/apis` answer aggregated discovery (`apidiscovery.k8s.io/v2` and `v2beta1`)
//! when the client asks for it, as client-go does, and the legacy documents otherwise.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use podium_api::resource::{self, Subresource, group_versions};
use podium_api::status::{ApiError, Reason};
use serde_json::{Value, json};

use crate::ApiServer;
use crate::error::Failure;
use crate::handlers::json_response;

/// The Kubernetes version Podium speaks. `/usr/bin/kubectl` dispatches on the minor.
pub const KUBERNETES_MINOR: &str = "33";

pub async fn version() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": KUBERNETES_MINOR,
            "emulationMajor": "1",
            "emulationMinor": KUBERNETES_MINOR,
            "gitVersion": format!("v1.{KUBERNETES_MINOR}.0-podium.{}", env!("CARGO_PKG_VERSION")),
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "",
            "goVersion": "",
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
        }),
        &[],
    )
}

pub async fn api_versions(State(server): State<ApiServer>, headers: http::HeaderMap) -> Response {
    if let Some(version) = aggregated_version(&headers) {
        return aggregated_response(version, true, &headers);
    }
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server.config.advertise_address}],
        }),
        &[],
    )
}

pub async fn api_groups(headers: http::HeaderMap) -> Response {
    if let Some(version) = aggregated_version(&headers) {
        return aggregated_response(version, false, &headers);
    }
    let groups: Vec<Value> = grouped_versions()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                .collect();
            json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
        &[],
    )
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Resources served outside the resource table: the authentication reviews, which are
/// created and answered, never stored (group, version, plural, kind).
const REVIEWS: &[(&str, &str, &str, &str)] = &[
    (
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
    ),
    ("authentication.k8s.io", "v1", "tokenreviews", "TokenReview"),
];

/// One resource of a group-version as discovery shows it.
struct Served {
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    kind: &'static str,
    verbs: &'static [&'static str],
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: Vec<ServedSubresource>,
}

/// A subresource: its path segment, the kind its requests and answers carry (group and
/// version empty when they are the parent's) and its verbs.
struct ServedSubresource {
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
}

fn subresource(sub: Subresource, parent_kind: &'static str) -> ServedSubresource {
    const READ_WRITE: &[&str] = &["get", "patch", "update"];
    let (group, version, kind, verbs): (_, _, _, &'static [&'static str]) = match sub {
        Subresource::Status => ("", "", parent_kind, READ_WRITE),
        Subresource::Scale => ("autoscaling", "v1", "Scale", READ_WRITE),
        Subresource::Binding => ("", "", "Binding", &["create"]),
        Subresource::Log => ("", "", "Pod", &["get"]),
        Subresource::Eviction => ("policy", "v1", "Eviction", &["create"]),
        Subresource::Token => ("authentication.k8s.io", "v1", "TokenRequest", &["create"]),
        // Upstream lists proxy subresources with kind NodeProxyOptions etc.; the verbs are
        // every HTTP method it forwards.
        Subresource::Proxy => (
            "",
            "",
            match parent_kind {
                "Pod" => "PodProxyOptions",
                "Service" => "ServiceProxyOptions",
                _ => "NodeProxyOptions",
            },
            &["create", "delete", "get", "patch", "update"],
        ),
    };
    ServedSubresource {
        name: sub.path(),
        group,
        version,
        kind,
        verbs,
    }
}

/// Every resource served in a group-version, in table order.
fn served(group: &str, version: &str) -> Vec<Served> {
    let mut out: Vec<Served> = resource::all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| Served {
            plural: r.plural,
            singular: r.singular,
            namespaced: r.namespaced,
            kind: r.kind,
            verbs: VERBS,
            short_names: r.short_names,
            categories: r.categories,
            subresources: r
                .subresources
                .iter()
                .map(|sub| subresource(*sub, r.kind))
                .collect(),
        })
        .collect();
    for (g, v, plural, kind) in REVIEWS {
        if (*g, *v) == (group, version) {
            out.push(Served {
                plural,
                singular: "",
                namespaced: false,
                kind,
                verbs: &["create"],
                short_names: &[],
                categories: &[],
                subresources: Vec::new(),
            });
        }
    }
    out
}

/// Every group with its versions, preferred version first, core group first, in the
/// order the table (then the reviews) first names them.
fn grouped_versions() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    let pairs = group_versions()
        .into_iter()
        .chain(REVIEWS.iter().map(|(g, v, _, _)| (*g, *v)));
    for (group, version) in pairs {
        match out.iter_mut().find(|(g, _)| *g == group) {
            Some((_, versions)) if versions.contains(&version) => {}
            Some((_, versions)) => versions.push(version),
            None => out.push((group, vec![version])),
        }
    }
    for (_, versions) in &mut out {
        versions.sort_by(|a, b| version_priority(b).cmp(&version_priority(a)));
    }
    out
}

/// Kubernetes' version order (`v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha1`): GA
/// before beta before alpha, higher numbers first within each.
fn version_priority(version: &str) -> (u8, u32, u32) {
    let rest = version.strip_prefix('v').unwrap_or(version);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stage, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (stage, major, minor)
}

/// The APIResourceList of a group-version, with subresources; 404 for a group-version
/// that is not served, as upstream.
pub fn resource_list(group: &str, version: &str) -> Result<Response, ApiError> {
    let served = served(group, version);
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    if served.is_empty() {
        return Err(ApiError::new(
            Reason::NotFound,
            format!(
                "the server could not find the requested resource (group version {group_version:?} is not served)"
            ),
        ));
    }
    let mut resources = Vec::new();
    for r in &served {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in &r.subresources {
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if !sub.group.is_empty() {
                entry["group"] = json!(sub.group);
                entry["version"] = json!(sub.version);
            }
            resources.push(entry);
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
        &[],
    ))
}

/// Which aggregated discovery version (`v2` or `v2beta1`) the client asks for, if the
/// first Accept clause Podium can serve is one: client-go (kubectl 1.26+) asks for
/// `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList` and falls back
/// to the legacy documents when the answer is plain `application/json`. The protobuf
/// form of the same list is skipped: every client offers the JSON one too.
fn aggregated_version(headers: &http::HeaderMap) -> Option<&'static str> {
    let mut clauses: Vec<(f32, usize, Option<&'static str>)> = Vec::new();
    for value in headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for clause in value.split(',') {
            let mut parts = clause.split(';').map(str::trim);
            let essence = parts.next().unwrap_or("").to_ascii_lowercase();
            let (mut group, mut version, mut as_kind, mut quality) = ("", "", "", 1.0f32);
            for param in parts {
                match param.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                    Some(("g", v)) => group = v,
                    Some(("v", v)) => version = v,
                    Some(("as", v)) => as_kind = v,
                    Some(("q", v)) => quality = v.parse().unwrap_or(1.0),
                    _ => {}
                }
            }
            let serves_json = matches!(
                essence.as_str(),
                "application/json" | "*/*" | "application/*"
            );
            let choice = if as_kind.is_empty() && group.is_empty() {
                if !serves_json {
                    continue;
                }
                None
            } else if essence == "application/json"
                && group == "apidiscovery.k8s.io"
                && as_kind == "APIGroupDiscoveryList"
            {
                match version {
                    "v2" => Some("v2"),
                    "v2beta1" => Some("v2beta1"),
                    _ => continue,
                }
            } else {
                continue;
            };
            if quality > 0.0 {
                clauses.push((quality, clauses.len(), choice));
            }
        }
    }
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    clauses.first().and_then(|(_, _, choice)| *choice)
}

/// The APIGroupDiscoveryList of `/api` (the core group, named `""`) or `/apis` (every
/// other group): every group-version's resources in one document, so a client needs
/// one round trip per root instead of one per group-version.
pub fn aggregated_document(version: &str, core: bool) -> Value {
    let items: Vec<Value> = grouped_versions()
        .into_iter()
        .filter(|(group, _)| group.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> =
                        served(group, v).iter().map(aggregated_resource).collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(r: &Served) -> Value {
    let mut entry = json!({
        "resource": r.plural,
        "responseKind": {"group": "", "version": "", "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        let subresources: Vec<Value> = r
            .subresources
            .iter()
            .map(|sub| {
                json!({
                    "subresource": sub.name,
                    "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
                    "verbs": sub.verbs,
                })
            })
            .collect();
        entry["subresources"] = json!(subresources);
    }
    entry
}

/// The aggregated document with upstream's headers: the content type names the
/// discovery version (clients decide by it), an ETag of the body, and 304 when the
/// client already holds that ETag.
fn aggregated_response(version: &str, core: bool, headers: &http::HeaderMap) -> Response {
    let body = serde_json::to_vec(&aggregated_document(version, core)).unwrap_or_default();
    let etag = format!("\"{:016X}\"", fnv64(&body));
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, body).into_response()
    };
    let out = response.headers_mut();
    if let Ok(content_type) = HeaderValue::from_str(&format!(
        "application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
    )) {
        out.insert(header::CONTENT_TYPE, content_type);
    }
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, etag);
    }
    out.insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

fn fnv64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in bytes {
        hash = (hash ^ *b as u64).wrapping_mul(0x100000001b3);
    }
    hash
}

/// `/openapi/v2`, negotiated as kube-openapi does: the first Accept clause it can serve
/// wins, protobuf (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) or JSON
/// (`application/json`, `*/*`, no Accept); anything else is 406.
pub async fn openapi_v2(headers: http::HeaderMap) -> Response {
    let accept: Vec<String> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|clause| {
            clause
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|media| !media.is_empty())
        .collect();
    if accept.is_empty() {
        return openapi_v2_json();
    }
    for media in &accept {
        if media.starts_with("application/com.github.proto-openapi.spec.v2") {
            return openapi_v2_protobuf();
        }
        if matches!(media.as_str(), "application/json" | "*/*" | "application/*") {
            return openapi_v2_json();
        }
    }
    Failure(ApiError::new(
        Reason::NotAcceptable,
        format!(
            "only the following media types are accepted: application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf (got {:?})",
            accept.join(",")
        ),
    ))
    .into_response()
}

/// `/openapi/v2` as JSON (what the Python client's and other tools' validators read): a
/// swagger 2.0 document whose `definitions` are every served type's schema, taken from
/// the OpenAPI v3 documents (`#/components/schemas/` becomes `#/definitions/`). Built on
/// first use and kept as bytes only.
fn openapi_v2_json() -> Response {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let bytes = BYTES.get_or_init(|| {
        let mut definitions = serde_json::Map::new();
        for (group, version) in group_versions() {
            let Some((bytes, _)) = podium_api::openapi::group_version_bytes(group, version) else {
                continue;
            };
            let text =
                String::from_utf8_lossy(bytes).replace("#/components/schemas/", "#/definitions/");
            let Ok(document) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if let Some(Value::Object(schemas)) = document.pointer("/components/schemas").cloned() {
                definitions.extend(schemas);
            }
        }
        let document = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": format!("v1.{KUBERNETES_MINOR}.0")},
            "paths": {},
            "definitions": definitions,
        });
        serde_json::to_vec(&document).unwrap_or_default()
    });
    let mut response = (StatusCode::OK, bytes.clone()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `/openapi/v2` in protobuf: kubectl falls back to it to validate kinds it did not find in
/// the v3 documents. Podium describes its kinds in v3 only, so this is a valid, empty
/// gnostic `openapi_v2.Document` (swagger "2.0", info, no paths or definitions): kubectl
/// then finds no schema, skips client-side validation, and reports an unknown kind as
/// upstream does ("no matches for kind"). Encoded by hand: three fields are not worth a
/// protobuf dependency.
fn openapi_v2_protobuf() -> Response {
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let info = [
        field(1, b"Kubernetes"),
        field(2, format!("v1.{KUBERNETES_MINOR}.0").as_bytes()),
    ]
    .concat();
    let document = [field(1, b"2.0"), field(2, &info), field(8, &[])].concat();
    let mut response = (StatusCode::OK, document).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
    );
    response
}

pub async fn openapi_root() -> Response {
    json_response(StatusCode::OK, &podium_api::openapi::root_document(), &[])
}

pub async fn openapi_document(Path(path): Path<String>) -> Response {
    match podium_api::openapi::document_bytes(&path) {
        Some((bytes, hash)) => {
            let body = match bytes {
                std::borrow::Cow::Borrowed(b) => axum::body::Body::from(b),
                std::borrow::Cow::Owned(v) => axum::body::Body::from(v),
            };
            let mut response = (StatusCode::OK, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Ok(etag) = HeaderValue::from_str(&format!("\"{hash}\"")) {
                headers.insert(header::ETAG, etag);
            }
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, immutable"),
            );
            response
        }
        None => Failure(ApiError::new(
            Reason::NotFound,
            format!("no OpenAPI document at /openapi/v3/{path}"),
        ))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn negotiates_aggregated_discovery_as_client_go_asks() {
        // kubectl 1.30+ (protobuf first, which Podium skips for discovery).
        let kubectl_133 = "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(&accept(kubectl_133)), Some("v2"));
        // kubectl 1.27: v2beta1 only.
        let kubectl_127 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(&accept(kubectl_127)), Some("v2beta1"));
        assert_eq!(aggregated_version(&accept("application/json")), None);
        assert_eq!(aggregated_version(&http::HeaderMap::new()), None);
        assert_eq!(
            aggregated_version(&accept(
                "application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            )),
            None,
            "the client's first choice wins"
        );
        assert_eq!(
            aggregated_version(&accept(
                "application/json;q=0.5,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            )),
            Some("v2"),
            "a higher quality wins"
        );
        assert_eq!(
            aggregated_version(&accept(
                "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json"
            )),
            None,
            "an unknown discovery version is not served"
        );
    }

    #[test]
    fn aggregated_documents_hold_every_resource_once() {
        let core = aggregated_document("v2", true);
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = core["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "");
        let pods = items[0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["responseKind"]["kind"], "Pod");
        let subresources: Vec<&str> = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subresource"].as_str().unwrap())
            .collect();
        assert!(subresources.contains(&"status") && subresources.contains(&"eviction"));

        let groups = aggregated_document("v2beta1", false);
        let names: Vec<&str> = groups["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["metadata"]["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"apps") && names.contains(&"authentication.k8s.io"));
        assert!(!names.contains(&""), "the core group is only under /api");
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "each group once: {names:?}");
        let apps = &groups["items"][names.iter().position(|n| *n == "apps").unwrap()];
        let deployments = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deployments["shortNames"], json!(["deploy"]));
        let scale = deployments["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "scale")
            .unwrap();
        assert_eq!(
            scale["responseKind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
    }

    #[test]
    fn versions_in_kubernetes_priority_order() {
        let mut versions = vec!["v1beta1", "v1", "v2", "v1alpha1", "v2beta2", "v1beta2"];
        versions.sort_by(|a, b| version_priority(b).cmp(&version_priority(a)));
        assert_eq!(
            versions,
            ["v2", "v1", "v2beta2", "v1beta2", "v1beta1", "v1alpha1"]
        );
    }
}
