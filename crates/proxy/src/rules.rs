//! What the proxy should serve, computed from a snapshot of Services and Endpoints: the
//! listener rules, the ClusterIPs the interface must hold, and each LoadBalancer
//! service's status once its listeners are (or are not) bound.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointPort, Endpoints, LoadBalancerIngress, Service, ServicePort,
};
use kube::ResourceExt;

use crate::table::{Frontend, Rule, RuleKey};

/// The only protocol the userspace proxy forwards so far.
const TCP: &str = "TCP";

fn is_tcp(protocol: Option<&String>) -> bool {
    protocol.is_none_or(|p| p == TCP)
}

fn service_type(service: &Service) -> &str {
    service
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP")
}

/// The service's ClusterIP, unless it is headless, unset or not an address.
pub fn cluster_ip(service: &Service) -> Option<IpAddr> {
    service.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok()
}

/// Whether Podium's load balancer serves this service: type LoadBalancer and no
/// `loadBalancerClass` naming another implementation (as k3s's servicelb decides).
pub fn is_served_load_balancer(service: &Service) -> bool {
    service_type(service) == "LoadBalancer"
        && service
            .spec
            .as_ref()
            .is_some_and(|s| s.load_balancer_class.is_none())
}

/// A rule's port label: the service port's name, or its number when unnamed.
fn port_label(port: &ServicePort) -> String {
    match port.name.as_deref() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => port.port.to_string(),
    }
}

fn to_port(number: i32) -> Option<u16> {
    u16::try_from(number).ok().filter(|p| *p != 0)
}

/// The endpoint port of a subset that serves `service_port`: same name (unnamed = ""),
/// or the subset's single port when the service has a single port.
fn matching_port<'a>(
    ports: &'a [EndpointPort],
    service_port: &ServicePort,
    single_service_port: bool,
) -> Option<&'a EndpointPort> {
    let wanted = service_port.name.as_deref().unwrap_or("");
    ports
        .iter()
        .find(|p| p.name.as_deref().unwrap_or("") == wanted)
        .or_else(|| {
            if single_service_port && ports.len() == 1 {
                ports.first()
            } else {
                None
            }
        })
        .filter(|p| is_tcp(p.protocol.as_ref()))
}

/// The ready endpoints of one service port, in the Endpoints object's order, without
/// repeats.
pub fn backends(
    endpoints: Option<&Endpoints>,
    service_port: &ServicePort,
    single_service_port: bool,
) -> Vec<SocketAddr> {
    let mut result: Vec<SocketAddr> = Vec::new();
    for subset in endpoints
        .and_then(|e| e.subsets.as_ref())
        .into_iter()
        .flatten()
    {
        let Some(port) = matching_port(
            subset.ports.as_deref().unwrap_or_default(),
            service_port,
            single_service_port,
        ) else {
            continue;
        };
        let Some(port) = to_port(port.port) else {
            continue;
        };
        for address in subset.addresses.iter().flatten() {
            let Ok(ip) = address.ip.parse::<IpAddr>() else {
                continue;
            };
            let endpoint = SocketAddr::new(ip, port);
            if !result.contains(&endpoint) {
                result.push(endpoint);
            }
        }
    }
    result
}

/// Older services first, so that when two want the same address the one that had it
/// first keeps it (the table also never takes a bound address from its holder).
fn by_age(services: &[Arc<Service>]) -> Vec<&Service> {
    let mut sorted: Vec<&Service> = services.iter().map(|s| s.as_ref()).collect();
    sorted.sort_by(|a, b| {
        let age = |s: &Service| s.metadata.creation_timestamp.as_ref().map(|t| t.0);
        age(a)
            .cmp(&age(b))
            .then_with(|| a.namespace().cmp(&b.namespace()))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    sorted
}

/// The listener rules for every TCP port of every service: ClusterIP, NodePort and
/// LoadBalancer frontends, each forwarding to the port's ready endpoints.
pub fn desired_rules(
    services: &[Arc<Service>],
    endpoints: &[Arc<Endpoints>],
    node_ip: IpAddr,
) -> Vec<Rule> {
    let endpoints_by_name: HashMap<(String, String), &Endpoints> = endpoints
        .iter()
        .map(|e| {
            (
                (e.namespace().unwrap_or_default(), e.name_any()),
                e.as_ref(),
            )
        })
        .collect();
    let mut rules = Vec::new();
    for service in by_age(services) {
        let Some(spec) = service.spec.as_ref() else {
            continue;
        };
        if service_type(service) == "ExternalName" {
            continue;
        }
        let namespace = service.namespace().unwrap_or_default();
        let name = service.name_any();
        let own_endpoints = endpoints_by_name
            .get(&(namespace.clone(), name.clone()))
            .copied();
        let ports = spec.ports.as_deref().unwrap_or_default();
        let cluster_ip = cluster_ip(service);
        let node_ports = matches!(service_type(service), "NodePort" | "LoadBalancer");
        let load_balancer = is_served_load_balancer(service);
        for port in ports.iter().filter(|p| is_tcp(p.protocol.as_ref())) {
            let backends = backends(own_endpoints, port, ports.len() == 1);
            let key = |frontend| RuleKey {
                namespace: namespace.clone(),
                service: name.clone(),
                port: port_label(port),
                frontend,
            };
            let service_port = to_port(port.port);
            if let (Some(ip), Some(number)) = (cluster_ip, service_port) {
                rules.push(Rule {
                    key: key(Frontend::ClusterIp),
                    listen: SocketAddr::new(ip, number),
                    backends: backends.clone(),
                });
            }
            if let Some(number) = node_ports
                .then_some(port.node_port)
                .flatten()
                .and_then(to_port)
            {
                rules.push(Rule {
                    key: key(Frontend::NodePort),
                    listen: SocketAddr::new(node_ip, number),
                    backends: backends.clone(),
                });
            }
            if let Some(number) = service_port.filter(|_| load_balancer) {
                rules.push(Rule {
                    key: key(Frontend::LoadBalancer),
                    listen: SocketAddr::new(node_ip, number),
                    backends,
                });
            }
        }
    }
    rules
}

/// Every ClusterIP the interface must hold: one per service that has an address, whether
/// or not the proxy forwards its protocols, so the address answers consistently.
pub fn desired_cluster_ips(services: &[Arc<Service>]) -> BTreeSet<IpAddr> {
    services.iter().filter_map(|s| cluster_ip(s)).collect()
}

/// The ingress this node advertises for its load balancer.
fn node_ingress(node_ip: IpAddr) -> LoadBalancerIngress {
    LoadBalancerIngress {
        ip: Some(node_ip.to_string()),
        ip_mode: Some("VIP".into()),
        ..Default::default()
    }
}

/// The `status.loadBalancer.ingress` the service should have, or `None` if it is right
/// as it is. `all_bound` tells whether every LoadBalancer listener of the service is
/// bound. A served LoadBalancer gets the node's address once all its listeners are bound
/// and stays pending (no ingress) otherwise; a service no longer served loses an ingress
/// that is this node's.
pub fn ingress_update(
    service: &Service,
    all_bound: bool,
    node_ip: IpAddr,
) -> Option<Vec<LoadBalancerIngress>> {
    let current: &[LoadBalancerIngress] = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default();
    let ours = node_ingress(node_ip);
    let desired = if is_served_load_balancer(service) {
        if all_bound { vec![ours] } else { Vec::new() }
    } else if current.iter().any(|i| i.ip == ours.ip) {
        Vec::new()
    } else {
        return None;
    };
    (current != desired.as_slice()).then_some(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        EndpointAddress, EndpointSubset, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use serde_json::json;

    const NODE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 5, 10));

    fn service(value: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn endpoints(value: serde_json::Value) -> Arc<Endpoints> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn web_endpoints() -> Arc<Endpoints> {
        endpoints(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "subsets": [
                {"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}],
                 "notReadyAddresses": [{"ip": "10.42.0.7"}],
                 "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9090, "protocol": "TCP"}]}
            ]
        }))
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cluster_ip_service_listens_on_its_ip_and_forwards_to_ready_addresses_by_port_name() {
        let web = service(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.20", "ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "metrics", "port": 9000, "targetPort": "metrics"}
            ]}
        }));
        let rules = desired_rules(&[web], &[web_endpoints()], NODE);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].key.port, "http");
        assert_eq!(rules[0].key.frontend, Frontend::ClusterIp);
        assert_eq!(rules[0].listen, addr("10.43.0.20:80"));
        assert_eq!(
            rules[0].backends,
            [addr("10.42.0.5:8080"), addr("10.42.0.6:8080")]
        );
        assert_eq!(rules[1].listen, addr("10.43.0.20:9000"));
        assert_eq!(
            rules[1].backends,
            [addr("10.42.0.5:9090"), addr("10.42.0.6:9090")]
        );
    }

    #[test]
    fn a_single_unnamed_port_matches_the_single_endpoint_port() {
        let web = service(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.20", "ports": [{"port": 80}]}
        }));
        let eps = endpoints(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.42.0.5"}], "ports": [{"port": 8080}]},
                        {"addresses": [{"ip": "10.42.0.9"}], "ports": [{"port": 8081, "name": "odd"}]}]
        }));
        let rules = desired_rules(&[web], &[eps], NODE);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].key.port, "80");
        assert_eq!(
            rules[0].backends,
            [addr("10.42.0.5:8080"), addr("10.42.0.9:8081")]
        );
    }

    #[test]
    fn endpoints_of_another_namespace_are_not_used() {
        let web = service(json!({
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80}]}
        }));
        let rules = desired_rules(&[web], &[web_endpoints()], NODE);
        assert_eq!(rules.len(), 1);
        assert!(rules[0].backends.is_empty());
    }

    #[test]
    fn node_port_and_load_balancer_services_also_listen_on_the_node() {
        let lb = service(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.20",
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}
        }));
        let np = service(json!({
            "metadata": {"name": "api", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.21",
                     "ports": [{"name": "http", "port": 81, "nodePort": 30081}]}
        }));
        let rules = desired_rules(&[lb, np], &[web_endpoints()], NODE);
        let listens: Vec<(&str, Frontend, SocketAddr)> = rules
            .iter()
            .map(|r| (r.key.service.as_str(), r.key.frontend, r.listen))
            .collect();
        assert_eq!(
            listens,
            [
                ("api", Frontend::ClusterIp, addr("10.43.0.21:81")),
                ("api", Frontend::NodePort, addr("192.168.5.10:30081")),
                ("web", Frontend::ClusterIp, addr("10.43.0.20:80")),
                ("web", Frontend::NodePort, addr("192.168.5.10:30080")),
                ("web", Frontend::LoadBalancer, addr("192.168.5.10:80")),
            ]
        );
        assert!(
            rules
                .iter()
                .filter(|r| r.key.service == "web")
                .all(|r| r.backends.len() == 2)
        );
    }

    #[test]
    fn headless_external_name_udp_and_foreign_load_balancers_get_no_listener_there() {
        let headless = service(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}
        }));
        let external = service(json!({
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.org", "ports": [{"port": 80}]}
        }));
        let dns = service(json!({
            "metadata": {"name": "dns", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                                          {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}
        }));
        let foreign = service(json!({
            "metadata": {"name": "metal", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/metal", "clusterIP": "10.43.0.30",
                     "ports": [{"port": 443, "nodePort": 30443}]}
        }));
        let rules = desired_rules(
            &[headless.clone(), external, dns.clone(), foreign.clone()],
            &[],
            NODE,
        );
        let listens: Vec<SocketAddr> = rules.iter().map(|r| r.listen).collect();
        assert_eq!(
            listens,
            [
                addr("10.43.0.10:53"),
                addr("10.43.0.30:443"),
                addr("192.168.5.10:30443")
            ]
        );
        assert_eq!(rules[0].key.port, "dns-tcp");
        let ips = desired_cluster_ips(&[headless, dns, foreign]);
        assert_eq!(
            ips.into_iter().collect::<Vec<_>>(),
            [
                "10.43.0.10".parse::<IpAddr>().unwrap(),
                "10.43.0.30".parse().unwrap()
            ]
        );
    }

    #[test]
    fn older_services_come_first() {
        let mut young = serde_json::from_value::<Service>(json!({
            "metadata": {"name": "a-young", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.2", "ports": [{"port": 80}]}
        }))
        .unwrap();
        let mut old = young.clone();
        old.metadata.name = Some("b-old".into());
        old.spec.as_mut().unwrap().cluster_ip = Some("10.43.0.3".into());
        old.metadata.creation_timestamp = Some(Time("2024-01-01T00:00:00Z".parse().unwrap()));
        young.metadata.creation_timestamp = Some(Time("2025-01-01T00:00:00Z".parse().unwrap()));
        let rules = desired_rules(&[Arc::new(young), Arc::new(old)], &[], NODE);
        let lb: Vec<&str> = rules
            .iter()
            .filter(|r| r.key.frontend == Frontend::LoadBalancer)
            .map(|r| r.key.service.as_str())
            .collect();
        assert_eq!(lb, ["b-old", "a-young"]);
    }

    fn load_balancer(ingress: Option<Vec<LoadBalancerIngress>>, class: Option<&str>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_class: class.map(Into::into),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus { ingress }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_bound_load_balancer_gets_the_node_ip_once() {
        let pending = load_balancer(None, None);
        let update = ingress_update(&pending, true, NODE).unwrap();
        assert_eq!(
            update,
            [LoadBalancerIngress {
                ip: Some("192.168.5.10".into()),
                ip_mode: Some("VIP".into()),
                ..Default::default()
            }]
        );
        let done = load_balancer(Some(update), None);
        assert_eq!(ingress_update(&done, true, NODE), None);
    }

    #[test]
    fn a_load_balancer_with_a_busy_port_stays_or_goes_back_to_pending() {
        assert_eq!(
            ingress_update(&load_balancer(None, None), false, NODE),
            None
        );
        let advertised = load_balancer(Some(vec![node_ingress(NODE)]), None);
        assert_eq!(ingress_update(&advertised, false, NODE), Some(Vec::new()));
    }

    #[test]
    fn services_not_served_lose_only_this_nodes_ingress() {
        let mut was_lb = load_balancer(Some(vec![node_ingress(NODE)]), None);
        was_lb.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert_eq!(ingress_update(&was_lb, false, NODE), Some(Vec::new()));

        let foreign_ingress = vec![LoadBalancerIngress {
            ip: Some("203.0.113.7".into()),
            ..Default::default()
        }];
        let foreign = load_balancer(Some(foreign_ingress), Some("example.com/metal"));
        assert_eq!(ingress_update(&foreign, false, NODE), None);
    }

    #[test]
    fn addresses_that_do_not_parse_are_skipped() {
        let web = service(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "not-an-ip", "type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 70000}]}
        }));
        let eps = Arc::new(Endpoints {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            subsets: Some(vec![EndpointSubset {
                addresses: Some(vec![EndpointAddress {
                    ip: "garbage".into(),
                    ..Default::default()
                }]),
                ports: Some(vec![EndpointPort {
                    name: Some("http".into()),
                    port: 8080,
                    ..Default::default()
                }]),
                ..Default::default()
            }]),
        });
        assert!(desired_rules(std::slice::from_ref(&web), &[eps], NODE).is_empty());
        assert!(desired_cluster_ips(&[web]).is_empty());
    }
}
