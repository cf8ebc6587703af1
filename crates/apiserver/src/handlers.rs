//! The verbs: one router entry point turns a URL into a target and calls the handler of
//! its verb. Content negotiation (JSON, YAML bodies; Table output) lives here too.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, Uri, header};
use podium_api::resource::{ResourceInfo, Subresource};
use podium_api::selector::{FieldSelector, LabelSelector};
use podium_api::status::{ApiError, Reason};
use podium_api::strategy::{self, FieldValidation};
use podium_api::table::{self, IncludeObject};
use podium_store::Expect;
use serde_json::{Value, json};

use crate::ApiServer;
use crate::error::{ApiResult, Failure};
use crate::registry::{meta_str, parse_revision, revision_precondition};
use crate::request::{Target, parse_query, parse_target};
use crate::{discovery, gc, negotiate, subresources, watch};

/// Request bodies above this get 413, as upstream's 3 MiB limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Everything a handler needs from the request.
pub struct Call {
    pub server: ApiServer,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Call {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Who this request writes as, for managedFields.
    pub fn manager(
        &self,
        resource: &ResourceInfo,
        subresource: Option<&'static str>,
    ) -> crate::field_manager::Manager {
        crate::field_manager::Manager::of_request(
            self.param("fieldManager"),
            self.headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            resource,
            subresource,
        )
    }

    /// managedFields of a client's write.
    pub fn ownership(
        &self,
        resource: &ResourceInfo,
        subresource: Option<&'static str>,
    ) -> crate::field_manager::Ownership {
        crate::field_manager::Ownership::Update(self.manager(resource, subresource))
    }

    pub fn dry_run(&self) -> bool {
        self.param("dryRun").is_some()
    }

    pub fn wants_table(&self) -> bool {
        self.headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .next()
                    .is_some_and(|first| first.contains("as=Table"))
            })
    }

    pub fn include_object(&self) -> IncludeObject {
        match self.param("includeObject") {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
    }

    /// The body as a JSON value, from JSON, YAML or Kubernetes protobuf.
    pub fn body_value(&self) -> Result<Value, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request(
                "the request body is empty; send the object as JSON or YAML",
            ));
        }
        if negotiate::is_protobuf_body(&self.headers) {
            return negotiate::decode_body(&self.body);
        }
        let text = std::str::from_utf8(&self.body)
            .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
        if self.content_type().contains("yaml") {
            let options = serde_saphyr::options! { budget: serde_saphyr::budget! { max_depth: 200, max_reader_input_bytes: Some(MAX_BODY) } };
            serde_saphyr::from_str_with_options::<Value>(text, options)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}")))
        } else {
            serde_json::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))
        }
    }
}

/// JSON response with a status code (and `Warning` headers for dropped fields).
pub fn json_response(code: StatusCode, value: &Value, warnings: &[String]) -> Response {
    negotiate::respond(negotiate::Format::Json, code, value, warnings)
}

impl Call {
    /// An object (or list, or Status) in the encoding the client prefers: JSON, or
    /// protobuf for kinds that have a message.
    pub fn respond(&self, code: StatusCode, value: &Value, warnings: &[String]) -> Response {
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = value.get("kind").and_then(Value::as_str);
        match negotiate::response_format(&self.headers, api_version, kind) {
            Ok(format) => negotiate::respond(format, code, value, warnings),
            Err(e) => Failure(e).into_response(),
        }
    }
}

/// An object, or a one-row Table when the client asked for tables.
pub fn object_response(
    call: &Call,
    resource: &ResourceInfo,
    code: StatusCode,
    object: &Value,
    warnings: &[String],
) -> Response {
    if call.wants_table() {
        let meta = json!({"resourceVersion": meta_str(object, "resourceVersion").unwrap_or("")});
        let table = table::render(
            resource,
            std::slice::from_ref(object),
            meta,
            call.include_object(),
            jiff::Timestamp::now(),
            true,
        );
        return json_response(code, &table, warnings);
    }
    call.respond(code, object, warnings)
}

pub async fn not_found(uri: Uri) -> Response {
    let _ = uri;
    Failure(ApiError::new(
        Reason::NotFound,
        "the server could not find the requested resource",
    ))
    .into_response()
}

/// The one entry point of `/api/...` and `/apis/...`.
pub async fn dispatch(
    State(server): State<ApiServer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match route(server, method, uri, headers, body).await {
        Ok(response) => response,
        Err(failure) => failure.into_response(),
    }
}

async fn route(
    server: ApiServer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let path = uri.path();
    let (legacy, rest) = match path.strip_prefix("/api/") {
        Some(rest) => (true, rest),
        None => (false, path.strip_prefix("/apis/").unwrap_or("")),
    };
    let target = parse_target(legacy, rest)?;
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            Reason::RequestEntityTooLarge,
            format!("the request body is too large: the limit is {MAX_BODY} bytes"),
        )
    })?;
    let call = Call {
        server,
        query: parse_query(uri.query()),
        headers,
        body,
    };
    // Reads name a revision as a decimal integer; anything else is the client's mistake
    // (400), whichever read it is (get, list or watch).
    if method == Method::GET {
        if let Some(rv) = call.param("resourceVersion") {
            parse_revision(rv)?;
        }
    }
    let method_name = method.to_string();
    let not_allowed = || {
        Failure(ApiError::new(
            Reason::MethodNotAllowed,
            format!(
                "the server does not allow this method on the requested resource: {method_name}"
            ),
        ))
    };
    match target {
        Target::Proxy {
            resource,
            namespace,
            name,
            path,
        } => {
            crate::proxy::forward(
                &call,
                method,
                resource,
                namespace.as_deref(),
                &name,
                &path,
                uri.query(),
            )
            .await
        }
        Target::GroupVersion { group, version } if method == Method::GET => {
            Ok(discovery::resource_list(&group, &version)?)
        }
        Target::GroupVersion { .. } => Err(not_allowed()),
        Target::Collection {
            resource,
            namespace,
        } => match method {
            Method::GET if call.param("watch").is_some_and(|w| w == "true" || w == "1") => {
                watch::serve(call, resource, namespace).await
            }
            Method::GET => list(&call, resource, namespace.as_deref()).await,
            Method::POST => create(&call, resource, namespace.as_deref()).await,
            Method::DELETE => delete_collection(&call, resource, namespace.as_deref()).await,
            _ => Err(not_allowed()),
        },
        Target::Object {
            resource,
            namespace,
            name,
            sub,
        } => {
            let ns = namespace.as_deref();
            match (sub, method) {
                (None, Method::GET) => {
                    let object = call.server.registry.get(resource, ns, &name).await?;
                    Ok(object_response(
                        &call,
                        resource,
                        StatusCode::OK,
                        &object,
                        &[],
                    ))
                }
                (None, Method::PUT) => update(&call, resource, ns, &name).await,
                (None, Method::PATCH) => patch(&call, resource, ns, &name, PatchTarget::Main).await,
                (None, Method::DELETE) => delete(&call, resource, ns, &name).await,
                (Some(Subresource::Status), Method::GET) => {
                    let object = call.server.registry.get(resource, ns, &name).await?;
                    Ok(object_response(
                        &call,
                        resource,
                        StatusCode::OK,
                        &object,
                        &[],
                    ))
                }
                (Some(Subresource::Status), Method::PUT) => {
                    subresources::put_status(&call, resource, ns, &name).await
                }
                (Some(Subresource::Status), Method::PATCH) => {
                    patch(&call, resource, ns, &name, PatchTarget::Status).await
                }
                (Some(Subresource::Scale), Method::GET) => {
                    subresources::get_scale(&call, resource, ns, &name).await
                }
                (Some(Subresource::Scale), Method::PUT | Method::PATCH) => {
                    subresources::write_scale(&call, resource, ns, &name).await
                }
                (Some(Subresource::Binding), Method::POST) => {
                    subresources::bind(&call, resource, ns, &name).await
                }
                (Some(Subresource::Eviction), Method::POST) => {
                    subresources::evict(&call, resource, ns, &name).await
                }
                (Some(Subresource::Token), Method::POST) => {
                    crate::service_account_token::request(&call, resource, ns, &name).await
                }
                (Some(Subresource::Log), Method::GET) => {
                    subresources::log(&call, resource, ns, &name).await
                }
                _ => Err(not_allowed()),
            }
        }
    }
}

/// `pods` list kinds are `PodList`.
/// A JSON list written straight from the cache's shared objects: no copy of any object,
/// one pass of serialization into the answer's buffer (the same bytes `json!` and
/// `to_vec` would give).
fn json_list_response(
    resource: &ResourceInfo,
    kind: &str,
    revision: podium_store::Revision,
    items: &[std::sync::Arc<Value>],
) -> Response {
    let mut body = Vec::with_capacity(256 + items.len() * 1024);
    let head = json!({"kind": kind, "apiVersion": resource.api_version(), "metadata": {"resourceVersion": revision.to_string()}});
    let head = serde_json::to_vec(&head).unwrap_or_default();
    // `{...}` without its closing brace, then the items.
    body.extend_from_slice(&head[..head.len() - 1]);
    body.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        if serde_json::to_writer(&mut body, &**item).is_err() {
            return Failure(ApiError::internal("encoding a cached object failed")).into_response();
        }
    }
    body.extend_from_slice(b"]}\n");
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn list_kind(resource: &ResourceInfo) -> String {
    format!("{}List", resource.kind)
}

/// Parse `?labelSelector=` and `?fieldSelector=` for a resource.
pub fn selectors(
    call: &Call,
    resource: &ResourceInfo,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(call.param("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(
        call.param("fieldSelector").unwrap_or(""),
        strategy::selectable_fields(resource),
    )?;
    Ok((labels, fields))
}

async fn list(
    call: &Call,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
) -> ApiResult<Response> {
    let (labels, fields) = selectors(call, resource)?;
    let prefix = crate::registry::prefix(resource, namespace);
    let options = crate::list::parse(|k| call.param(k).map(str::to_string), &prefix)?;
    let registry = &call.server.registry;
    let listed = match crate::list::from_cache(&options, call.param("resourceVersion")) {
        Some(at_least) => {
            let cache = registry.caches.of(resource);
            let at_least = match at_least {
                Some(r) => r,
                None => registry
                    .store
                    .revision()
                    .await
                    .map_err(crate::error::store_failure)?,
            };
            let (items, revision) = cache.list(namespace, &labels, &fields, at_least).await?;
            let kind = list_kind(resource);
            let json = !call.wants_table()
                && negotiate::response_format(&call.headers, &resource.api_version(), Some(&kind))?
                    == negotiate::Format::Json;
            if json {
                return Ok(json_list_response(resource, &kind, revision, &items));
            }
            crate::registry::Listed {
                items: items.iter().map(|o| Value::clone(o)).collect(),
                revision,
                continue_after: None,
            }
        }
        None => {
            crate::list::read(
                &*registry.store,
                resource,
                &prefix,
                &labels,
                &fields,
                &options,
            )
            .await?
        }
    };
    let mut metadata = json!({"resourceVersion": listed.revision.to_string()});
    if let Some(last) = &listed.continue_after {
        let token =
            crate::list::encode_continue(&format!("{last}\0"), &prefix, listed.revision as i64);
        metadata["continue"] = json!(token);
    }
    if call.wants_table() {
        let table = table::render(
            resource,
            &listed.items,
            metadata,
            call.include_object(),
            jiff::Timestamp::now(),
            true,
        );
        return Ok(json_response(StatusCode::OK, &table, &[]));
    }
    let list = json!({
        "kind": list_kind(resource),
        "apiVersion": resource.api_version(),
        "metadata": metadata,
        "items": listed.items,
    });
    Ok(call.respond(StatusCode::OK, &list, &[]))
}

/// Check a body's apiVersion/kind against the endpoint's, filling them in when absent.
pub fn check_type(resource: &ResourceInfo, object: &mut Value) -> Result<(), ApiError> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON or YAML object"))?;
    match map.get("kind").and_then(Value::as_str) {
        Some(kind) if kind != resource.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({}) of this endpoint",
                resource.kind
            )));
        }
        _ => {}
    }
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != resource.api_version() => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({})",
                resource.api_version()
            )));
        }
        _ => {}
    }
    map.insert("kind".into(), json!(resource.kind));
    map.insert("apiVersion".into(), json!(resource.api_version()));
    if !map.get("metadata").is_some_and(Value::is_object) {
        map.insert("metadata".into(), json!({}));
    }
    Ok(())
}

fn check_namespace(
    resource: &ResourceInfo,
    object: &Value,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    if !resource.namespaced {
        return Ok(());
    }
    match (meta_str(object, "namespace"), namespace) {
        (Some(given), Some(url)) if !given.is_empty() && given != url => {
            Err(ApiError::bad_request(format!(
                "the namespace of the provided object ({given}) does not match the namespace sent on the request ({url})"
            )))
        }
        _ => Ok(()),
    }
}

async fn create(
    call: &Call,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
) -> ApiResult<Response> {
    if resource.namespaced && namespace.is_none() {
        return Err(ApiError::new(
            Reason::MethodNotAllowed,
            format!(
                "create {} in a namespace: POST /.../namespaces/<ns>/{}",
                resource.plural, resource.plural
            ),
        )
        .into());
    }
    let mut object = call.body_value()?;
    check_type(resource, &mut object)?;
    check_namespace(resource, &object, namespace)?;
    let validation = FieldValidation::parse(call.param("fieldValidation"))?;
    let (object, warnings) = strategy::normalize(resource, &object, validation)?;
    let created = call
        .server
        .registry
        .create(
            resource,
            namespace,
            object,
            call.dry_run(),
            &call.ownership(resource, None),
        )
        .await?;
    Ok(object_response(
        call,
        resource,
        StatusCode::CREATED,
        &created,
        &warnings,
    ))
}

/// Status is written only through `/status` for kinds that have it.
pub fn keep_status(resource: &ResourceInfo, old: &Value, new: &mut Value) {
    if resource.has(Subresource::Status) {
        set_status(new, old.get("status").cloned());
    }
}

/// Give `object` exactly this status: `None` removes the field.
pub fn set_status(object: &mut Value, status: Option<Value>) {
    match status {
        Some(status) => object["status"] = status,
        None => {
            if let Some(fields) = object.as_object_mut() {
                fields.remove("status");
            }
        }
    }
}

async fn update(
    call: &Call,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Response> {
    let mut object = call.body_value()?;
    check_type(resource, &mut object)?;
    check_namespace(resource, &object, namespace)?;
    if let Some(given) = meta_str(&object, "name").filter(|n| *n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        ))
        .into());
    }
    let precondition = revision_precondition(&object)?;
    let validation = FieldValidation::parse(call.param("fieldValidation"))?;
    let (object, warnings) = strategy::normalize(resource, &object, validation)?;
    let updated = call
        .server
        .registry
        .update_with(
            resource,
            namespace,
            name,
            precondition,
            call.dry_run(),
            &call.ownership(resource, None),
            |old| {
                let mut new = object.clone();
                keep_status(resource, &old, &mut new);
                Ok(new)
            },
        )
        .await?;
    Ok(object_response(
        call,
        resource,
        StatusCode::OK,
        &updated,
        &warnings,
    ))
}

/// What a PATCH changes: the object (status kept) or only its status.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PatchTarget {
    Main,
    Status,
}

impl PatchTarget {
    /// The managedFields subresource of writes through this target.
    fn subresource(self) -> Option<&'static str> {
        (self == PatchTarget::Status).then_some("status")
    }

    /// Confine `new` to what this target may change of `old`: all but status (for a kind
    /// with a status subresource), or status alone. The managedFields `new` carries stay.
    fn confine(self, resource: &ResourceInfo, old: &Value, mut new: Value) -> Value {
        match self {
            PatchTarget::Main => keep_status(resource, old, &mut new),
            PatchTarget::Status => {
                let status = new.get("status").cloned();
                let entries = new.pointer("/metadata/managedFields").cloned();
                new = old.clone();
                set_status(&mut new, status);
                if let Some(entries) = entries {
                    new["metadata"]["managedFields"] = entries;
                }
            }
        }
        new
    }
}

/// Apply a patch document of the request's content type to `old`.
pub fn apply_patch(
    call: &Call,
    resource: &ResourceInfo,
    old: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    let content_type = call.content_type().split(';').next().unwrap_or("").trim();
    let result = match content_type {
        "application/json-patch+json" => podium_patch::json_patch(old, patch),
        "application/merge-patch+json" => podium_patch::merge_patch(old, patch),
        "application/strategic-merge-patch+json"
            if resource.behaviour.accepts_strategic_merge_patch() =>
        {
            podium_patch::strategic_merge_patch(resource.kind, old, patch)
        }
        "application/strategic-merge-patch+json" => {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        "application/apply-patch+cbor" => {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
            ));
        }
        other => {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"
                ),
            ));
        }
    };
    result.map_err(|e| ApiError::new(Reason::Invalid, e.to_string()))
}

async fn patch(
    call: &Call,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    target: PatchTarget,
) -> ApiResult<Response> {
    let content_type = call.content_type().split(';').next().unwrap_or("").trim();
    if content_type == "application/apply-patch+yaml" {
        return server_side_apply(call, resource, namespace, name, target).await;
    }
    if call.param("force").is_some() {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            vec![podium_api::status::cause(
                "FieldValueForbidden",
                "force",
                "Forbidden: may not be specified for non-apply patch",
            )],
        )
        .into());
    }
    if negotiate::is_protobuf_body(&call.headers) {
        // Upstream has no protobuf patch format either.
        return Err(ApiError::new(
            Reason::UnsupportedMediaType,
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
        )
        .into());
    }
    let text = std::str::from_utf8(&call.body)
        .map_err(|_| ApiError::bad_request("the patch is not UTF-8"))?;
    let patch: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let precondition = revision_precondition(&patch)?;
    let validation = FieldValidation::parse(call.param("fieldValidation"))?;
    let mut warnings = Vec::new();
    let updated = call
        .server
        .registry
        .update_with(
            resource,
            namespace,
            name,
            precondition,
            call.dry_run(),
            &call.ownership(resource, target.subresource()),
            |old| {
                let mut patched = apply_patch(call, resource, &old, &patch)?;
                check_type(resource, &mut patched)?;
                let (normalized, w) = strategy::normalize(resource, &patched, validation)?;
                warnings = w;
                Ok(target.confine(resource, &old, normalized))
            },
        )
        .await?;
    Ok(object_response(
        call,
        resource,
        StatusCode::OK,
        &updated,
        &warnings,
    ))
}

/// Server-side apply (`application/apply-patch+yaml`): merge the applied configuration
/// into the live object, or create it, with the manager's managedFields.
async fn server_side_apply(
    call: &Call,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    target: PatchTarget,
) -> ApiResult<Response> {
    use crate::field_manager::{self, Ownership};
    let Some(manager_name) = call.param("fieldManager") else {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            vec![podium_api::status::cause(
                "FieldValueRequired",
                "fieldManager",
                "Required value: is required for apply patch",
            )],
        )
        .into());
    };
    field_manager::check_field_manager(Some(manager_name))?;
    let force = match call.param("force") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "force must be true or false, not {other:?}"
            ))
            .into());
        }
    };
    let mut applied = call.body_value()?;
    check_type(resource, &mut applied)?;
    match meta_str(&applied, "name") {
        Some(given) if given != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            ))
            .into());
        }
        Some(_) => {}
        None => applied["metadata"]["name"] = json!(name),
    }
    check_namespace(resource, &applied, namespace)?;
    let manager = call.manager(resource, target.subresource());
    let validation = FieldValidation::parse(call.param("fieldValidation"))?;
    let mut warnings = Vec::new();
    let updated = call
        .server
        .registry
        .update_with(
            resource,
            namespace,
            name,
            None,
            call.dry_run(),
            &Ownership::Given,
            |old| {
                let merged = field_manager::apply(resource, Some(&old), &applied, &manager, force)?;
                let (normalized, w) = strategy::normalize(resource, &merged, validation)?;
                warnings = w;
                Ok(target.confine(resource, &old, normalized))
            },
        )
        .await;
    match updated {
        Ok(updated) => Ok(object_response(
            call,
            resource,
            StatusCode::OK,
            &updated,
            &warnings,
        )),
        // Applying an object that does not exist creates it, as upstream.
        Err(e) if e.reason == Reason::NotFound && target == PatchTarget::Main => {
            let merged = field_manager::apply(resource, None, &applied, &manager, force)?;
            let (normalized, warnings) = strategy::normalize(resource, &merged, validation)?;
            let created = call
                .server
                .registry
                .create(
                    resource,
                    namespace,
                    normalized,
                    call.dry_run(),
                    &Ownership::Given,
                )
                .await?;
            Ok(object_response(
                call,
                resource,
                StatusCode::CREATED,
                &created,
                &warnings,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// `DeleteOptions` from the body and the query.
struct DeleteOptions {
    grace: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<u64>,
}

fn delete_options(call: &Call) -> Result<DeleteOptions, ApiError> {
    let body = if call.body.is_empty() {
        json!({})
    } else {
        call.body_value()?
    };
    delete_options_from(call, &body)
}

/// A delete's options, from a `DeleteOptions` body (or an Eviction's `deleteOptions`) and
/// the query, the query winning as upstream.
pub fn delete_request(call: &Call, body: &Value) -> Result<gc::DeleteRequest, ApiError> {
    delete_options_from(call, body).map(|o| options_to_request(&o))
}

fn delete_options_from(call: &Call, body: &Value) -> Result<DeleteOptions, ApiError> {
    let grace = match call.param("gracePeriodSeconds") {
        Some(g) => Some(g.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("gracePeriodSeconds: Invalid value: {g:?}"))
        })?),
        None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
    };
    let propagation = call
        .param("propagationPolicy")
        .map(str::to_string)
        .or_else(|| {
            body.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(
            || match body.get("orphanDependents").and_then(Value::as_bool) {
                Some(true) => Some("Orphan".into()),
                _ => None,
            },
        );
    if let Some(p) = &propagation {
        if !matches!(p.as_str(), "Background" | "Foreground" | "Orphan") {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {p:?}: supported values: \"Background\", \"Foreground\", \"Orphan\""
            )));
        }
    }
    let uid = body
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    let resource_version = body
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .map(parse_revision)
        .transpose()?;
    Ok(DeleteOptions {
        grace,
        propagation,
        uid,
        resource_version,
    })
}

fn success_status(resource: &ResourceInfo, object: &Value) -> Value {
    let mut details =
        json!({"name": meta_str(object, "name").unwrap_or(""), "kind": resource.plural});
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    if let Some(uid) = meta_str(object, "uid") {
        details["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

async fn delete(
    call: &Call,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Response> {
    let options = delete_options(call)?;
    let (object, finished) = delete_object(
        &call.server,
        resource,
        namespace,
        name,
        &options_to_request(&options),
        call.dry_run(),
    )
    .await?;
    if finished && !strategy::returns_deleted_object(resource) {
        return Ok(call.respond(StatusCode::OK, &success_status(resource, &object), &[]));
    }
    Ok(object_response(
        call,
        resource,
        StatusCode::OK,
        &object,
        &[],
    ))
}

fn options_to_request(o: &DeleteOptions) -> gc::DeleteRequest {
    gc::DeleteRequest {
        grace: o.grace,
        propagation: o.propagation.clone(),
        uid: o.uid.clone(),
        resource_version: o.resource_version,
    }
}

/// Delete one object by the rules of its kind; returns the object and whether it is gone.
pub async fn delete_object(
    server: &ApiServer,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    request: &gc::DeleteRequest,
    dry_run: bool,
) -> Result<(Value, bool), ApiError> {
    let registry = &server.registry;
    let current = registry.get(resource, namespace, name).await?;
    if let Some(uid) = &request.uid {
        if meta_str(&current, "uid") != Some(uid.as_str()) {
            return Err(ApiError::conflict(
                resource.group,
                resource.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&current, "uid").unwrap_or("")
                ),
            ));
        }
    }
    let expect = match request.resource_version {
        Some(rv) => Expect::Revision(rv),
        None => Expect::Present,
    };
    if dry_run {
        return Ok((current, false));
    }
    let uid = meta_str(&current, "uid").unwrap_or("").to_string();
    let propagation = request
        .propagation
        .clone()
        .unwrap_or_else(|| "Background".into());

    // Namespaces empty themselves before they go.
    if resource.kind == "Namespace" {
        if matches!(
            name,
            "default" | "kube-system" | "kube-public" | "kube-node-lease"
        ) {
            return Err(ApiError::new(
                Reason::Conflict,
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            ));
        }
        let object = registry
            .update_deletion(resource, None, name, request.resource_version, |mut ns| {
                if ns.pointer("/metadata/deletionTimestamp").is_none() {
                    ns["metadata"]["deletionTimestamp"] = json!(crate::registry::now_rfc3339());
                }
                ns["status"] = json!({"phase": "Terminating"});
                Ok(ns)
            })
            .await?;
        gc::spawn_namespace_cleanup(server.clone(), name.to_string());
        return Ok((object, false));
    }

    // Pods on a node end gracefully: the agent stops them and finishes the delete.
    if resource.kind == "Pod" {
        let bound = current
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let terminal = matches!(
            current.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        let default_grace = current
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        let grace = request.grace.unwrap_or(default_grace).max(0);
        if bound && !terminal && grace > 0 {
            let existing = current
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if existing.is_some_and(|g| g <= grace) {
                return Ok((current, false));
            }
            let object = registry
                .update_deletion(
                    resource,
                    namespace,
                    name,
                    request.resource_version,
                    |mut pod| {
                        let deadline =
                            jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                        pod["metadata"]["deletionTimestamp"] =
                            json!(deadline.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
                        pod["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                        Ok(pod)
                    },
                )
                .await?;
            return Ok((object, false));
        }
    }

    let has_finalizers = current
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let added_on_delete = resource.behaviour.finalizers_on_delete();
    if has_finalizers || !added_on_delete.is_empty() || propagation == "Foreground" {
        let object = registry
            .update_deletion(
                resource,
                namespace,
                name,
                request.resource_version,
                |mut obj| {
                    if obj.pointer("/metadata/deletionTimestamp").is_none() {
                        obj["metadata"]["deletionTimestamp"] =
                            json!(crate::registry::now_rfc3339());
                        obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                    }
                    let mut finalizers = obj["metadata"]["finalizers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let foreground: &[&str] = if propagation == "Foreground" {
                        &["foregroundDeletion"]
                    } else {
                        &[]
                    };
                    for finalizer in added_on_delete.iter().chain(foreground) {
                        if !finalizers.contains(&json!(finalizer)) {
                            finalizers.push(json!(finalizer));
                        }
                    }
                    if !finalizers.is_empty() {
                        obj["metadata"]["finalizers"] = json!(finalizers);
                    }
                    Ok(obj)
                },
            )
            .await?;
        if propagation == "Foreground" {
            gc::spawn_foreground(
                server.clone(),
                resource,
                namespace.map(str::to_string),
                name.to_string(),
                uid,
            );
        }
        return Ok((object, false));
    }

    if propagation == "Orphan" {
        gc::orphan_dependents(server, namespace, &uid).await?;
    }
    let object = registry.remove(resource, namespace, name, expect).await?;
    if propagation == "Background" {
        gc::spawn_collect(server.clone(), namespace.map(str::to_string), uid);
    }
    Ok((object, true))
}

async fn delete_collection(
    call: &Call,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
) -> ApiResult<Response> {
    let (labels, fields) = selectors(call, resource)?;
    let options = options_to_request(&delete_options(call)?);
    let listed = call
        .server
        .registry
        .list(resource, namespace, &labels, &fields, 0, None)
        .await?;
    let mut deleted = Vec::new();
    for item in &listed.items {
        let name = meta_str(item, "name").unwrap_or("").to_string();
        let ns = meta_str(item, "namespace").map(str::to_string);
        match delete_object(
            &call.server,
            resource,
            ns.as_deref(),
            &name,
            &options,
            call.dry_run(),
        )
        .await
        {
            Ok((object, _)) => deleted.push(object),
            Err(e) if e.reason == Reason::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    let list = json!({"kind": list_kind(resource), "apiVersion": resource.api_version(), "metadata": {"resourceVersion": listed.revision.to_string()}, "items": deleted});
    Ok(call.respond(StatusCode::OK, &list, &[]))
}
