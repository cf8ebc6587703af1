//! `pods|services|nodes/<name>/proxy/<path>`: the API server forwards an HTTP request to a
//! pod, to a ready endpoint of a service, or to a node's agent, and streams the answer
//! back (what `kubectl get --raw .../proxy/...` and dashboards use), as upstream's proxy
//! REST handlers do.
//!
//! The name may carry a port: `pod:8080`, `service:http` (a port name) or
//! `https:service:443`; without one, a pod is reached on port 80 and a service on its
//! first port. The caller's credentials are not passed on. Plain HTTP only: an `https:`
//! scheme is refused until the proxy can verify the target.

use std::net::IpAddr;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{Method, header};
use http_body_util::BodyExt;
use podium_api::resource::{self, ResourceInfo};
use podium_api::status::{ApiError, Reason};
use serde_json::Value;

use crate::error::ApiResult;
use crate::handlers::Call;

/// Request headers that describe the hop, not the request (RFC 9110 §7.6.1), plus the
/// caller's credentials, which are the API server's to check and not the target's.
const NOT_FORWARDED: &[&str] = &[
    "authorization",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

fn unavailable(message: String) -> ApiError {
    ApiError::new(Reason::ServiceUnavailable, message)
}

/// `https:web:443` → (Some("https"), "web", Some("443")); `web:8080` → (None, "web", Some("8080")).
fn split_name(name: &str) -> (Option<&str>, &str, Option<&str>) {
    let parts: Vec<&str> = name.split(':').collect();
    match parts.as_slice() {
        [scheme @ ("http" | "https"), object, port] => {
            (Some(*scheme), *object, (!port.is_empty()).then_some(*port))
        }
        [scheme @ ("http" | "https"), object] => (Some(*scheme), *object, None),
        [object, port] => (None, *object, (!port.is_empty()).then_some(*port)),
        _ => (None, name, None),
    }
}

fn parse_port(text: &str) -> Option<u16> {
    text.parse().ok().filter(|p| *p > 0)
}

/// Where a pod is reached.
async fn pod_target(
    call: &Call,
    pods: &ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    port: Option<&str>,
) -> Result<(IpAddr, u16), ApiError> {
    let pod = call.server.registry.get(pods, namespace, name).await?;
    let ip = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| {
            unavailable(format!(
                "pod {name} has no IP address yet: wait until it is running"
            ))
        })?;
    let port = match port {
        None => 80,
        Some(p) => match parse_port(p) {
            Some(n) => n,
            // A container port by name.
            None => pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                .find(|port| port["name"] == p)
                .and_then(|port| port["containerPort"].as_u64())
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("pod {name} has no container port named {p:?}"))
                })?,
        },
    };
    Ok((ip, port))
}

/// A ready endpoint of a service, on the target port of the service port asked for.
async fn service_target(
    call: &Call,
    services: &ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    port: Option<&str>,
) -> Result<(IpAddr, u16), ApiError> {
    let service = call.server.registry.get(services, namespace, name).await?;
    let ports = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let chosen = match port {
        None => ports.first(),
        Some(p) => ports.iter().find(|sp| {
            sp["name"] == p
                || parse_port(p).is_some_and(|n| sp["port"].as_u64() == Some(u64::from(n)))
        }),
    }
    .ok_or_else(|| {
        ApiError::new(
            Reason::ServiceUnavailable,
            format!(
                "no service port {:?} found for service \"{name}\"",
                port.unwrap_or("")
            ),
        )
    })?;
    let port_name = chosen["name"].as_str().unwrap_or("");
    let endpoints_info = resource::find("", "v1", "endpoints")
        .ok_or_else(|| ApiError::internal("endpoints are not served"))?;
    let endpoints = call
        .server
        .registry
        .get(endpoints_info, namespace, name)
        .await
        .map_err(|_| unavailable(format!("no endpoints available for service \"{name}\"")))?;
    for subset in endpoints["subsets"].as_array().into_iter().flatten() {
        let subset_ports = subset["ports"].as_array().cloned().unwrap_or_default();
        let target = subset_ports
            .iter()
            .find(|p| p["name"].as_str().unwrap_or("") == port_name)
            .or_else(|| (subset_ports.len() == 1).then(|| &subset_ports[0]))
            .and_then(|p| p["port"].as_u64())
            .and_then(|n| u16::try_from(n).ok());
        let address = subset["addresses"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|a| a["ip"].as_str())
            .and_then(|ip| ip.parse().ok());
        if let (Some(ip), Some(port)) = (address, target) {
            return Ok((ip, port));
        }
    }
    Err(unavailable(format!(
        "no endpoints available for service \"{name}\""
    )))
}

/// A node's agent.
async fn node_target(
    call: &Call,
    nodes: &ResourceInfo,
    name: &str,
    port: Option<&str>,
) -> Result<(IpAddr, u16), ApiError> {
    let node = call.server.registry.get(nodes, None, name).await?;
    let (ip, agent_port) = crate::subresources::agent_endpoint(&node)
        .ok_or_else(|| unavailable(format!("node {name} reports no InternalIP")))?;
    let port = match port {
        None => agent_port,
        Some(p) => {
            parse_port(p).ok_or_else(|| ApiError::bad_request(format!("{p:?} is not a port")))?
        }
    };
    Ok((ip, port))
}

/// Forward the request and stream the target's answer back, status and headers as it
/// sent them.
pub async fn forward(
    call: &Call,
    method: Method,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    path: &str,
    query: Option<&str>,
) -> ApiResult<Response> {
    let (scheme, object, port) = split_name(name);
    if scheme == Some("https") {
        return Err(ApiError::bad_request(format!(
            "proxying to {name} over https is not supported: name the target without \"https:\""
        ))
        .into());
    }
    let (ip, port) = match resource.plural {
        "pods" => pod_target(call, resource, namespace, object, port).await?,
        "services" => service_target(call, resource, namespace, object, port).await?,
        _ => node_target(call, resource, object, port).await?,
    };
    let target = match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    };
    let stream = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect((ip, port)),
    )
    .await
    .map_err(|_| unavailable(format!("connecting to {ip}:{port} timed out")))?
    .map_err(|e| unavailable(format!("error trying to reach {ip}:{port}: {e}")))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(format!("error trying to reach {ip}:{port}: {e}")))?;
    tokio::spawn(connection);
    let mut request = http::Request::builder().method(method).uri(&target);
    for (key, value) in &call.headers {
        if !NOT_FORWARDED.contains(&key.as_str()) {
            request = request.header(key, value);
        }
    }
    let host = if ip.is_ipv6() {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    let request = request
        .header(header::HOST, host)
        .body(http_body_util::Full::new(Bytes::clone(&call.body)))
        .map_err(|e| ApiError::bad_request(format!("cannot forward this request: {e}")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unavailable(format!("error trying to reach {ip}:{port}: {e}")))?;
    let (parts, body) = response.into_parts();
    let mut out = Response::new(Body::new(body.map_err(axum::Error::new)));
    *out.status_mut() = parts.status;
    for (key, value) in &parts.headers {
        if !NOT_FORWARDED.contains(&key.as_str()) {
            out.headers_mut().append(key, value.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_scheme_and_port() {
        assert_eq!(split_name("web"), (None, "web", None));
        assert_eq!(split_name("web:8080"), (None, "web", Some("8080")));
        assert_eq!(
            split_name("http:web:http"),
            (Some("http"), "web", Some("http"))
        );
        assert_eq!(split_name("https:web:"), (Some("https"), "web", None));
    }
}
