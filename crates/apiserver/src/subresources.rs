//! Subresources: `/status`, `/scale` (autoscaling/v1 Scale), `pods/binding` (the
//! scheduler's placement) and `pods/log` (proxied to the node agent that runs the pod).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use podium_api::resource::{self, ResourceInfo};
use podium_api::status::{ApiError, Reason};
use podium_api::strategy::{self, FieldValidation};
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::handlers::{Call, check_type, object_response};
use crate::registry::{meta_str, now_rfc3339, revision_precondition};

pub async fn put_status(
    call: &Call,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Response> {
    let mut object = call.body_value()?;
    check_type(resource, &mut object)?;
    let precondition = revision_precondition(&object)?;
    let (object, warnings) = strategy::normalize(
        resource,
        &object,
        FieldValidation::parse(call.param("fieldValidation"))?,
    )?;
    let status = object.get("status").cloned();
    let updated = call
        .server
        .registry
        .update_with(
            resource,
            namespace,
            name,
            precondition,
            call.dry_run(),
            &call.ownership(resource, Some("status")),
            |mut old| {
                crate::handlers::set_status(&mut old, status.clone());
                Ok(old)
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

/// Set the value at a JSON pointer, making the objects on the way.
fn set_pointer(object: &mut Value, pointer: &str, value: Value) {
    let mut at = object;
    for part in pointer.trim_start_matches('/').split('/') {
        if !at.is_object() {
            *at = json!({});
        }
        at = at
            .as_object_mut()
            .map(|m| m.entry(part.to_string()).or_insert(Value::Null))
            .expect("made an object above");
    }
    *at = value;
}

fn scale_of(resource: &ResourceInfo, object: &Value) -> Value {
    let meta = &object["metadata"];
    if let Some(paths) = resource.behaviour.scale_paths() {
        // A custom resource's scale, from the paths its CRD names (upstream's
        // `customresource.ScaleREST`).
        return json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": object.pointer(paths.spec_replicas).cloned().unwrap_or(json!(0))},
            "status": {
                "replicas": object.pointer(paths.status_replicas).cloned().unwrap_or(json!(0)),
                "selector": paths.label_selector.and_then(|p| object.pointer(p)).and_then(Value::as_str).unwrap_or(""),
            },
        });
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            // Upstream prints it as `labels.Selector.String()` does, as `kubectl get` shows it.
            "selector": podium_api::selector::label_selector_string(object.pointer("/spec/selector")).unwrap_or_default(),
        },
    })
}

pub async fn get_scale(
    call: &Call,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Response> {
    let object = call.server.registry.get(resource, namespace, name).await?;
    Ok(call.respond(StatusCode::OK, &scale_of(resource, &object), &[]))
}

pub async fn write_scale(
    call: &Call,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Response> {
    let is_patch = call
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("patch"));
    let body = if is_patch {
        serde_json::from_slice::<Value>(&call.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
    } else {
        call.body_value()?
    };
    let precondition = revision_precondition(&body)?;
    let updated = call
        .server
        .registry
        .update_with(
            resource,
            namespace,
            name,
            precondition,
            call.dry_run(),
            &call.ownership(resource, Some("scale")),
            |mut object| {
                let scale = if is_patch {
                    crate::handlers::apply_patch(
                        call,
                        resource,
                        &scale_of(resource, &object),
                        &body,
                    )?
                } else {
                    body.clone()
                };
                let replicas = scale
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if replicas < 0 {
                    return Err(ApiError::invalid(
                        "autoscaling",
                        "Scale",
                        name,
                        vec![podium_api::status::cause(
                            "FieldValueInvalid",
                            "spec.replicas",
                            format!(
                                "Invalid value: {replicas}: must be greater than or equal to 0"
                            ),
                        )],
                    ));
                }
                match resource.behaviour.scale_paths() {
                    Some(paths) => set_pointer(&mut object, paths.spec_replicas, json!(replicas)),
                    None => object["spec"]["replicas"] = json!(replicas),
                }
                Ok(object)
            },
        )
        .await?;
    Ok(call.respond(StatusCode::OK, &scale_of(resource, &updated), &[]))
}

pub async fn bind(
    call: &Call,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Response> {
    let binding = call.body_value()?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "",
                "Binding",
                name,
                vec![podium_api::status::cause(
                    "FieldValueRequired",
                    "target.name",
                    "Required value",
                )],
            )
        })?;
    let uid_precondition = binding
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    call.server
        .registry
        .update_with(resource, namespace, name, None, call.dry_run(), &call.ownership(resource, None), |mut pod| {
            if let Some(uid) = &uid_precondition {
                if meta_str(&pod, "uid") != Some(uid.as_str()) {
                    return Err(ApiError::conflict("", "pods", name, "the UID in the binding does not match the pod"));
                }
            }
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(ApiError::conflict("", "pods", name, "the pod is being deleted"));
            }
            match pod.pointer("/spec/nodeName").and_then(Value::as_str) {
                Some(existing) if !existing.is_empty() => {
                    return Err(ApiError::conflict("", "pods", name, &format!("pod {name} is already assigned to node \"{existing}\"")));
                }
                _ => {}
            }
            pod["spec"]["nodeName"] = json!(node);
            let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
            conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()}));
            pod["status"]["conditions"] = json!(conditions);
            Ok(pod)
        })
        .await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(call.respond(StatusCode::CREATED, &status, &[]))
}

/// `POST pods/<name>/eviction` with a `policy/v1` Eviction: what `kubectl drain` and
/// client-go's `EvictV1` send. As upstream (`pkg/registry/core/pod/storage/eviction.go`):
/// the pod's PodDisruptionBudget (kept current by the disruption controller) must allow
/// one more disruption, which the eviction spends (`disruptionsAllowed - 1`, the pod in
/// `disruptedPods`) in the same compare-and-swap as it checks it; otherwise 429, which
/// `kubectl drain` retries. Then the pod's delete with the Eviction's `deleteOptions`
/// (graceful, as any pod delete). The answer is upstream's: 201 with a Success `Status`.
pub async fn evict(
    call: &Call,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Response> {
    let eviction = call.body_value()?;
    match (
        eviction.get("apiVersion").and_then(Value::as_str),
        eviction.get("kind").and_then(Value::as_str),
    ) {
        (None | Some("policy/v1" | "policy/v1beta1"), None | Some("Eviction")) => {}
        (version, kind) => {
            return Err(ApiError::bad_request(format!(
                "the body of pods/eviction must be a policy/v1 Eviction, not {} {}",
                version.unwrap_or(""),
                kind.unwrap_or("")
            ))
            .into());
        }
    }
    if meta_str(&eviction, "name").is_some_and(|given| given != name) {
        return Err(
            ApiError::bad_request("name in URL does not match name in Eviction object").into(),
        );
    }
    let options = eviction
        .get("deleteOptions")
        .filter(|o| !o.is_null())
        .cloned()
        .unwrap_or_else(|| json!({}));
    let request = crate::handlers::delete_request(call, &options)?;
    let pod = call.server.registry.get(resource, namespace, name).await?;
    if !can_ignore_budgets(&pod) {
        spend_disruption(call, namespace.unwrap_or_default(), name, &pod).await?;
    }
    crate::handlers::delete_object(
        &call.server,
        resource,
        namespace,
        name,
        &request,
        call.dry_run(),
    )
    .await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(call.respond(StatusCode::CREATED, &status, &[]))
}

/// Pods whose eviction disrupts nothing (upstream's `canIgnorePDB`): finished, not yet
/// running, or already being deleted.
fn can_ignore_budgets(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    matches!(phase, Some("Succeeded" | "Failed" | "Pending"))
        || pod
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Upstream's answer when a budget forbids the eviction (`createTooManyRequestsError`).
fn budget_forbids(cause_message: String) -> ApiError {
    let mut e = ApiError::new(
        podium_api::status::Reason::TooManyRequests,
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    e.causes.push(podium_api::status::Cause {
        reason: "DisruptionBudget".into(),
        message: cause_message,
        field: String::new(),
    });
    e
}

/// The most `disruptedPods` entries a budget may hold before its controller confirms them.
const MAX_DISRUPTED_PODS: usize = 2000;

/// Check the pod's budget and spend one of its allowed disruptions.
async fn spend_disruption(
    call: &Call,
    namespace: &str,
    pod_name: &str,
    pod: &Value,
) -> Result<(), ApiError> {
    let budgets = resource::find("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("poddisruptionbudgets not registered"))?;
    let listed = call
        .server
        .registry
        .list(
            budgets,
            Some(namespace),
            &podium_api::selector::LabelSelector::default(),
            &podium_api::selector::FieldSelector::default(),
            0,
            None,
        )
        .await?;
    let labels = pod
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(Value::Null);
    let matching: Vec<&Value> = listed
        .items
        .iter()
        .filter(|pdb| selects(pdb.pointer("/spec/selector"), &labels))
        .collect();
    let pdb = match matching.as_slice() {
        [] => return Ok(()),
        [one] => *one,
        _ => {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let pdb_name = meta_str(pdb, "name").unwrap_or_default().to_string();
    let count = |p: &str| pdb.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    if !is_ready(pod) {
        // An unhealthy pod does not lower the healthy count: evictable when the policy
        // says always, or when the budget is met without it.
        let policy = pdb
            .pointer("/spec/unhealthyPodEvictionPolicy")
            .and_then(Value::as_str);
        let desired = count("/status/desiredHealthy");
        if policy == Some("AlwaysAllow")
            || (count("/status/currentHealthy") >= desired && desired > 0)
        {
            return Ok(());
        }
    }
    let now = crate::registry::now_rfc3339();
    call.server
        .registry
        .update_with(budgets, Some(namespace), &pdb_name, None, call.dry_run(), &crate::field_manager::Ownership::Keep, |mut pdb| {
            let count = |p: &str| pdb.pointer(p).and_then(Value::as_i64).unwrap_or(0);
            let generation = count("/metadata/generation");
            if count("/status/observedGeneration") < generation {
                return Err(budget_forbids(format!(
                    "The disruption budget {pdb_name} is still being processed by the server."
                )));
            }
            let allowed = count("/status/disruptionsAllowed");
            if allowed < 0 {
                return Err(ApiError::new(podium_api::status::Reason::Forbidden, "pdb disruptions allowed is negative"));
            }
            let disrupted = pdb.pointer("/status/disruptedPods").and_then(Value::as_object).map_or(0, |d| d.len());
            if disrupted > MAX_DISRUPTED_PODS {
                return Err(ApiError::new(
                    podium_api::status::Reason::Forbidden,
                    "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
                ));
            }
            if allowed == 0 {
                return Err(budget_forbids(format!(
                    "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                    count("/status/desiredHealthy"),
                    count("/status/currentHealthy")
                )));
            }
            pdb["status"]["disruptionsAllowed"] = json!(allowed - 1);
            if !pdb["status"]["disruptedPods"].is_object() {
                pdb["status"]["disruptedPods"] = json!({});
            }
            pdb["status"]["disruptedPods"][pod_name] = json!(now);
            Ok(pdb)
        })
        .await?;
    Ok(())
}

/// Whether a policy/v1 budget's selector selects pods with these labels: an empty
/// selector selects every pod of the namespace, a missing one none.
fn selects(selector: Option<&Value>, labels: &Value) -> bool {
    let Some(selector) = selector.filter(|s| s.is_object()) else {
        return false;
    };
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let by_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let by_expressions = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str() {
                Some("In") => label(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => label(key).is_some(),
                Some("DoesNotExist") => label(key).is_none(),
                _ => false,
            }
        });
    by_labels && by_expressions
}

/// Which container a log request means: `?container=`, the default-container
/// annotation, or the only one.
fn log_container(call: &Call, pod: &Value, name: &str) -> Result<String, ApiError> {
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    if let Some(c) = call.param("container") {
        return if containers.iter().any(|x| x == c) {
            Ok(c.to_string())
        } else {
            Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        };
    }
    if let Some(c) = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str)
    {
        return Ok(c.to_string());
    }
    match containers.as_slice() {
        [only] => Ok(only.clone()),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

pub async fn log(
    call: &Call,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Response> {
    let pod = call.server.registry.get(resource, namespace, name).await?;
    let container = log_container(call, &pod, name)?;
    let node_name = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()).ok_or_else(|| {
        ApiError::bad_request(format!("container \"{container}\" in pod \"{name}\" is waiting to start: the pod has not been scheduled to a node yet"))
    })?;
    let nodes = resource::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes not registered"))?;
    let node = call.server.registry.get(nodes, None, node_name).await?;
    let (address, port) = agent_endpoint(&node).ok_or_else(|| {
        ApiError::new(
            Reason::ServiceUnavailable,
            format!("node {node_name} reports no InternalIP to fetch logs from"),
        )
    })?;
    let address = address.to_string();
    let mut query: Vec<String> = Vec::new();
    for key in [
        "follow",
        "tailLines",
        "previous",
        "limitBytes",
        "sinceSeconds",
        "sinceTime",
        "timestamps",
    ] {
        if let Some(v) = call.param(key) {
            query.push(format!("{key}={}", v.replace(['&', '#', ' '], "")));
        }
    }
    let path = format!(
        "/containerLogs/{}/{name}/{container}?{}",
        namespace.unwrap_or("default"),
        query.join("&")
    );
    proxy_get(&address, port, &path).await.map_err(Into::into)
}

/// Where a node's agent listens: its InternalIP and its kubelet endpoint port (10250 if
/// it reports none).
pub(crate) fn agent_endpoint(node: &Value) -> Option<(std::net::IpAddr, u16)> {
    let address = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())?
        .parse()
        .ok()?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(10250);
    Some((address, port))
}

/// GET from a node agent and stream the answer back (errors become a `Status`).
async fn proxy_get(address: &str, port: u16, path: &str) -> Result<Response, ApiError> {
    let unavailable = |e: String| {
        ApiError::new(
            Reason::ServiceUnavailable,
            format!("could not reach the node agent at {address}:{port}: {e}"),
        )
    };
    let host: std::net::IpAddr = address
        .parse()
        .map_err(|_| unavailable("bad address".into()))?;
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, format!("{address}:{port}"))
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let (parts, body) = response.into_parts();
    if parts.status.is_success() {
        let mut out = Response::new(Body::new(body));
        *out.status_mut() = parts.status;
        out.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        return Ok(out);
    }
    let text = http_body_util::BodyExt::collect(body)
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
        .unwrap_or_default();
    let reason = match parts.status.as_u16() {
        404 => Reason::NotFound,
        400 => Reason::BadRequest,
        _ => Reason::InternalError,
    };
    Err(ApiError::new(reason, text))
}

pub fn into_response(r: Result<Response, ApiError>) -> Response {
    match r {
        Ok(r) => r,
        Err(e) => crate::error::Failure(e).into_response(),
    }
}
