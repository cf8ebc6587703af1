//! Discovery (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`) and OpenAPI v3.
//! Legacy discovery only: kubectl asks for aggregated discovery first and falls back
//! when the reply is plain `application/json`.

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

pub async fn api_versions(State(server): State<ApiServer>) -> Response {
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

pub async fn api_groups() -> Response {
    let groups: Vec<Value> = group_versions()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(group, version)| {
            let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
            json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
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

/// The APIResourceList of a group-version, with subresources.
pub fn resource_list(group: &str, version: &str) -> Result<Response, ApiError> {
    let mut resources = Vec::new();
    for r in resource::all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in r.subresources {
            let name = format!("{}/{}", r.plural, sub.path());
            let entry = match sub {
                Subresource::Status => {
                    json!({"name": name, "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]})
                }
                Subresource::Scale => {
                    json!({"name": name, "singularName": "", "namespaced": r.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
                }
                Subresource::Binding => {
                    json!({"name": name, "singularName": "", "namespaced": r.namespaced, "kind": "Binding", "verbs": ["create"]})
                }
                Subresource::Log => {
                    json!({"name": name, "singularName": "", "namespaced": r.namespaced, "kind": "Pod", "verbs": ["get"]})
                }
                Subresource::Eviction => {
                    json!({"name": name, "singularName": "", "namespaced": r.namespaced, "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]})
                }
            };
            resources.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
        &[],
    ))
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
    json_response(StatusCode::OK, podium_api::openapi::root_document(), &[])
}

pub async fn openapi_document(Path(path): Path<String>) -> Response {
    match podium_api::openapi::document_bytes(&path) {
        Some((bytes, hash)) => {
            let mut response = (StatusCode::OK, bytes).into_response();
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
