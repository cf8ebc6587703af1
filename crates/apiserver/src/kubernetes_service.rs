//! The `kubernetes` Service in `default`, as upstream's control plane keeps it
//! (`pkg/controlplane/controller/kubernetesservice` and the endpoint reconciler): a
//! selector-less ClusterIP Service on the first address of the service range, port 443
//! named `https` targeting the API server's port, with an Endpoints and an EndpointSlice
//! of the same name listing the API server's address. In-cluster clients (client-go's
//! `InClusterConfig`, every operator) find the API server through it. Created at start and
//! put back when changed or deleted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use podium_api::resource::{self, ResourceInfo};
use podium_api::status::{ApiError, Reason};
use serde_json::{Value, json};

use crate::ApiServer;

pub const NAME: &str = "kubernetes";
pub const NAMESPACE: &str = "default";

/// The first address of a service range, e.g. `10.43.0.1` for `10.43.0.0/16`; the
/// allocator never hands it out, so it is this Service's.
pub fn first_service_ip(cidr: &str) -> Ipv4Addr {
    let (ip, bits) = cidr.split_once('/').unwrap_or((cidr, "16"));
    let ip: Ipv4Addr = ip.parse().unwrap_or(Ipv4Addr::new(10, 43, 0, 0));
    let bits: u32 = bits.parse().unwrap_or(16).clamp(8, 30);
    Ipv4Addr::from((u32::from(ip) & (u32::MAX << (32 - bits))) + 1)
}

/// The API server's address and port from `advertise_address` (`host:port`).
fn api_endpoint(advertise: &str) -> (Option<IpAddr>, u16) {
    match advertise.parse::<SocketAddr>() {
        // An unspecified bind address (0.0.0.0) names no address to list.
        Ok(addr) => (
            Some(addr.ip()).filter(|ip| !ip.is_unspecified()),
            addr.port(),
        ),
        Err(_) => {
            let port = advertise
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(6443);
            (None, port)
        }
    }
}

fn labels() -> Value {
    json!({"component": "apiserver", "provider": "kubernetes"})
}

fn ports(port: u16) -> Value {
    json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}])
}

fn find(group: &str, plural: &str) -> Result<&'static ResourceInfo, ApiError> {
    resource::find(group, "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} not registered")))
}

/// Make `name` hold `desired` in the fields `owned` lists (top-level keys), creating it
/// if absent; leaves it alone when those fields already match.
async fn ensure(
    server: &ApiServer,
    resource: &'static ResourceInfo,
    desired: Value,
    owned: &'static [&'static str],
) -> Result<(), ApiError> {
    let registry = &server.registry;
    match registry.get(resource, Some(NAMESPACE), NAME).await {
        Err(e) if e.reason == Reason::NotFound => {
            match registry
                .create(
                    resource,
                    Some(NAMESPACE),
                    desired,
                    false,
                    &crate::field_manager::Ownership::Keep,
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.reason == Reason::AlreadyExists => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
        Ok(current) => {
            let differs = |field: &str| match field {
                "labels" => desired.pointer("/metadata/labels").is_some_and(|want| {
                    let have = current.pointer("/metadata/labels");
                    want.as_object()
                        .into_iter()
                        .flatten()
                        .any(|(k, v)| have.and_then(|h| h.get(k)) != Some(v))
                }),
                "spec.type" => current.pointer("/spec/type") != desired.pointer("/spec/type"),
                "spec.ports" => current.pointer("/spec/ports") != desired.pointer("/spec/ports"),
                other => current.get(other) != desired.get(other),
            };
            if !owned.iter().any(|f| differs(f)) {
                return Ok(());
            }
            registry
                .update_with(
                    resource,
                    Some(NAMESPACE),
                    NAME,
                    None,
                    false,
                    &crate::field_manager::Ownership::Keep,
                    |mut object| {
                        for field in owned {
                            match *field {
                                "labels" => {
                                    let labels = &mut object["metadata"]["labels"];
                                    if !labels.is_object() {
                                        *labels = json!({});
                                    }
                                    for (k, v) in desired["metadata"]["labels"]
                                        .as_object()
                                        .into_iter()
                                        .flatten()
                                    {
                                        labels[k] = v.clone();
                                    }
                                }
                                "spec.type" => {
                                    object["spec"]["type"] = desired["spec"]["type"].clone()
                                }
                                "spec.ports" => {
                                    object["spec"]["ports"] = desired["spec"]["ports"].clone()
                                }
                                other => object[other] = desired[other].clone(),
                            }
                        }
                        Ok(object)
                    },
                )
                .await
                .map(|_| ())
        }
    }
}

/// Create or repair the Service, its Endpoints and its EndpointSlice once.
pub async fn reconcile(server: &ApiServer) -> Result<(), ApiError> {
    let cluster_ip = first_service_ip(&server.config.service_cidr).to_string();
    let (address, port) = api_endpoint(&server.config.advertise_address);
    // Upstream reconciles the ports and type of an existing Service; its cluster IP is
    // immutable, and a Service somebody else made in its place is left as it is.
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels()},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
            "sessionAffinity": "None", "ports": ports(port)},
    });
    ensure(
        server,
        find("", "services")?,
        service,
        &["labels", "spec.type", "spec.ports"],
    )
    .await?;

    let Some(address) = address else {
        tracing::warn!(
            advertise = %server.config.advertise_address,
            "the API server listens on an unspecified address: the kubernetes Service has no endpoints"
        );
        return Ok(());
    };
    let endpoint_port = json!([{"name": "https", "port": port, "protocol": "TCP"}]);
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        // Upstream's reconciler writes the slice itself, so the mirroring controller skips it.
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address.to_string()}], "ports": endpoint_port}],
    });
    ensure(
        server,
        find("", "endpoints")?,
        endpoints,
        &["labels", "subsets"],
    )
    .await?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": NAME}},
        "addressType": if address.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [address.to_string()], "conditions": {"ready": true}}],
        "ports": endpoint_port,
    });
    ensure(
        server,
        find("discovery.k8s.io", "endpointslices")?,
        slice,
        &["labels", "addressType", "endpoints", "ports"],
    )
    .await
}

/// Reconcile every `period`, as upstream's controller does (every 10 s there).
pub async fn run(server: ApiServer, period: Duration) {
    loop {
        if let Err(e) = reconcile(&server).await {
            tracing::warn!(error = %e, "reconciling the kubernetes Service failed");
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_address_and_api_port() {
        assert_eq!(
            first_service_ip("10.43.0.0/16"),
            Ipv4Addr::new(10, 43, 0, 1)
        );
        assert_eq!(
            first_service_ip("10.96.5.7/12"),
            Ipv4Addr::new(10, 96, 0, 1)
        );
        assert_eq!(
            api_endpoint("192.168.1.5:6443"),
            (Some("192.168.1.5".parse().unwrap()), 6443)
        );
        assert_eq!(api_endpoint("0.0.0.0:7000"), (None, 7000));
    }
}
