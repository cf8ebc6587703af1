//! Services and Endpoints → the listeners the proxy must run. Pure.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::ResourceExt;

/// One listening address and where its connections go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub listen: SocketAddr,
    /// `namespace/name` of the service.
    pub service: String,
    pub backends: Vec<SocketAddr>,
    /// Listens on a ClusterIP (which must be on the VIP interface first).
    pub cluster_ip: bool,
    /// The LoadBalancer port on the node IP.
    pub load_balancer: bool,
}

/// The ready backends of one service port, from its Endpoints.
fn backends(endpoints: Option<&Endpoints>, port_name: Option<&str>, single_port: bool) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for subset in endpoints.and_then(|e| e.subsets.as_ref()).into_iter().flatten() {
        let port = subset.ports.iter().flatten().find(|p| p.name.as_deref() == port_name || (single_port && subset.ports.as_ref().is_some_and(|ps| ps.len() == 1)));
        let Some(port) = port else { continue };
        for address in subset.addresses.iter().flatten() {
            if let (Ok(ip), Ok(p)) = (address.ip.parse::<IpAddr>(), u16::try_from(port.port)) {
                out.push(SocketAddr::new(ip, p));
            }
        }
    }
    out.sort();
    out
}

pub fn build(services: &[Arc<Service>], endpoints: &[Arc<Endpoints>], node_ip: IpAddr) -> Vec<Rule> {
    let mut rules = Vec::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else { continue };
        let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
        if kind == "ExternalName" {
            continue;
        }
        let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
        let ep = endpoints.iter().find(|e| e.namespace() == svc.namespace() && e.name_any() == svc.name_any());
        let ports = spec.ports.as_deref().unwrap_or(&[]);
        let cluster_ip = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok());
        for port in ports {
            if port.protocol.as_deref().unwrap_or("TCP") != "TCP" {
                continue; // UDP and SCTP need a datagram proxy: not yet.
            }
            let Ok(number) = u16::try_from(port.port) else { continue };
            let to = backends(ep.map(|e| e.as_ref()), port.name.as_deref(), ports.len() == 1);
            let mut add = |listen: SocketAddr, cluster_ip: bool, load_balancer: bool| {
                rules.push(Rule { listen, service: key.clone(), backends: to.clone(), cluster_ip, load_balancer });
            };
            if let Some(ip) = cluster_ip {
                add(SocketAddr::new(ip, number), true, false);
            }
            if kind == "NodePort" || kind == "LoadBalancer" {
                if let Some(np) = port.node_port.and_then(|n| u16::try_from(n).ok()) {
                    add(SocketAddr::new(node_ip, np), false, false);
                }
            }
            if kind == "LoadBalancer" {
                add(SocketAddr::new(node_ip, number), false, true);
            }
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_balancer_service_gets_cluster_ip_node_port_and_lb_port() {
        let svc: Service = serde_json::from_value(serde_json::json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.10", "ports": [{"port": 80, "targetPort": 8080, "nodePort": 31000, "protocol": "TCP"}]}})).unwrap();
        let ep: Endpoints = serde_json::from_value(serde_json::json!({"metadata": {"name": "web", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.42.0.3"}, {"ip": "10.42.0.2"}], "notReadyAddresses": [{"ip": "10.42.0.9"}], "ports": [{"port": 8080, "protocol": "TCP"}]}]})).unwrap();
        let rules = build(&[Arc::new(svc)], &[Arc::new(ep)], "127.0.0.1".parse().unwrap());
        let listens: Vec<String> = rules.iter().map(|r| r.listen.to_string()).collect();
        assert_eq!(listens, vec!["10.43.0.10:80", "127.0.0.1:31000", "127.0.0.1:80"]);
        assert_eq!(rules[2].backends.iter().map(|b| b.to_string()).collect::<Vec<_>>(), vec!["10.42.0.2:8080", "10.42.0.3:8080"]);
        assert!(rules[0].cluster_ip && rules[2].load_balancer);
    }
}
