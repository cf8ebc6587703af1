//! Service cluster IPs and node ports. Upstream keeps allocation bitmaps in etcd; with one
//! API server, a set rebuilt from the stored Services at first use, guarded by a lock,
//! gives the same guarantee (no two Services share an IP or a node port).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use podium_api::resource;
use podium_api::selector::{FieldSelector, LabelSelector};
use podium_api::status::{ApiError, cause};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::registry::Registry;

pub const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

pub(crate) struct ServiceAllocator {
    network: u32,
    size: u32,
    state: Mutex<Option<Allocated>>,
}

#[derive(Default)]
struct Allocated {
    ips: BTreeSet<u32>,
    node_ports: BTreeSet<u16>,
}

fn parse_cidr(cidr: &str) -> (u32, u32) {
    let (ip, bits) = cidr.split_once('/').unwrap_or((cidr, "16"));
    let ip: Ipv4Addr = ip.parse().unwrap_or(Ipv4Addr::new(10, 43, 0, 0));
    let bits: u32 = bits.parse().unwrap_or(16).clamp(8, 30);
    let mask = u32::MAX << (32 - bits);
    (u32::from(ip) & mask, 1 << (32 - bits))
}

fn ips_of(service: &Value) -> Vec<u32> {
    let mut out: Vec<u32> = service
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|s| s.parse::<Ipv4Addr>().ok())
        .map(u32::from)
        .collect();
    if let Some(ip) = service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Ipv4Addr>().ok())
    {
        out.push(u32::from(ip));
    }
    out.sort();
    out.dedup();
    out
}

fn node_ports_of(service: &Value) -> Vec<u16> {
    service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .map(|p| p as u16)
        .collect()
}

impl ServiceAllocator {
    pub fn new(cidr: &str) -> Self {
        let (network, size) = parse_cidr(cidr);
        ServiceAllocator {
            network,
            size,
            state: Mutex::new(None),
        }
    }

    async fn load(
        &self,
        registry: &Registry,
        state: &mut Option<Allocated>,
    ) -> Result<(), ApiError> {
        if state.is_some() {
            return Ok(());
        }
        let services = resource::find("", "v1", "services")
            .ok_or_else(|| ApiError::internal("services not registered"))?;
        let listed = registry
            .list(
                services,
                None,
                &LabelSelector::default(),
                &FieldSelector::default(),
                0,
                None,
            )
            .await?;
        let mut allocated = Allocated::default();
        for svc in &listed.items {
            allocated.ips.extend(ips_of(svc));
            allocated.node_ports.extend(node_ports_of(svc));
        }
        *state = Some(allocated);
        Ok(())
    }

    /// Give a Service its cluster IP and node ports, keeping those of `old` on update.
    pub async fn allocate(
        &self,
        registry: &Registry,
        service: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let mut guard = self.state.lock().await;
        self.load(registry, &mut guard).await?;
        let Some(state) = guard.as_mut() else {
            return Ok(());
        };
        let name = service
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let kind = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        let invalid = |field: &str, message: String| {
            ApiError::invalid(
                "",
                "Service",
                &name,
                vec![cause("FieldValueInvalid", field, message)],
            )
        };

        if kind == "ExternalName" {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        } else {
            let requested = spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let old_ip = old
                .and_then(|o| o.pointer("/spec/clusterIP"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let ip = match (requested.as_str(), old_ip) {
                ("", Some(old_ip)) => old_ip,
                (requested, Some(old_ip)) if requested != old_ip => {
                    return Err(invalid(
                        "spec.clusterIP",
                        format!("Invalid value: {requested:?}: field is immutable"),
                    ));
                }
                ("None", _) => "None".to_string(),
                ("", None) => {
                    // Offset 1, the range's first address, is the `kubernetes` Service's.
                    let mut rng = rand::rng();
                    let free = (0..256)
                        .map(|_| self.network + rng.random_range(2..self.size - 1))
                        .find(|ip| !state.ips.contains(ip));
                    let free = free.or_else(|| {
                        (2..self.size - 1)
                            .map(|o| self.network + o)
                            .find(|ip| !state.ips.contains(ip))
                    });
                    let ip = free.ok_or_else(|| {
                        ApiError::internal("no free cluster IP left in the service range")
                    })?;
                    state.ips.insert(ip);
                    Ipv4Addr::from(ip).to_string()
                }
                (requested, _) => {
                    let parsed: Ipv4Addr = requested.parse().map_err(|_| {
                        invalid(
                            "spec.clusterIP",
                            format!("Invalid value: {requested:?}: must be a valid IP address"),
                        )
                    })?;
                    let n = u32::from(parsed);
                    if n < self.network || n >= self.network + self.size {
                        return Err(invalid(
                            "spec.clusterIP",
                            format!(
                                "Invalid value: {requested:?}: provided IP is not in the valid range"
                            ),
                        ));
                    }
                    if old.is_none() && !state.ips.insert(n) {
                        return Err(invalid(
                            "spec.clusterIP",
                            format!(
                                "Invalid value: {requested:?}: provided IP is already allocated"
                            ),
                        ));
                    }
                    requested.to_string()
                }
            };
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
        }

        let wants_node_ports = kind == "NodePort" || kind == "LoadBalancer";
        let old_ports: Vec<(i64, u16)> = old
            .and_then(|o| o.pointer("/spec/ports"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p.get("port")?.as_i64()?,
                    p.get("nodePort")?.as_u64()? as u16,
                ))
            })
            .collect();
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for (i, port) in ports.iter_mut().enumerate() {
                let Some(port) = port.as_object_mut() else {
                    continue;
                };
                if !wants_node_ports {
                    port.remove("nodePort");
                    continue;
                }
                let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
                match port.get("nodePort").and_then(Value::as_u64) {
                    Some(requested) => {
                        let requested = requested as u16;
                        if !NODE_PORT_RANGE.contains(&requested) {
                            return Err(invalid(
                                &format!("spec.ports[{i}].nodePort"),
                                format!(
                                    "Invalid value: {requested}: provided port is not in the valid range. The range of valid ports is 30000-32767"
                                ),
                            ));
                        }
                        let kept = old_ports.iter().any(|(_, np)| *np == requested);
                        if !kept && !state.node_ports.insert(requested) {
                            return Err(invalid(
                                &format!("spec.ports[{i}].nodePort"),
                                format!(
                                    "Invalid value: {requested}: provided port is already allocated"
                                ),
                            ));
                        }
                    }
                    None => {
                        let np = match old_ports.iter().find(|(p, _)| *p == number) {
                            Some((_, np)) => *np,
                            None => {
                                let mut rng = rand::rng();
                                let free = (0..256)
                                    .map(|_| rng.random_range(NODE_PORT_RANGE))
                                    .find(|p| !state.node_ports.contains(p));
                                let free = free.or_else(|| {
                                    NODE_PORT_RANGE
                                        .into_iter()
                                        .find(|p| !state.node_ports.contains(p))
                                });
                                let np = free
                                    .ok_or_else(|| ApiError::internal("no free node port left"))?;
                                state.node_ports.insert(np);
                                np
                            }
                        };
                        port.insert("nodePort".into(), json!(np));
                    }
                }
            }
        }
        Ok(())
    }

    /// Return a deleted Service's IP and ports to the pool.
    pub async fn release(&self, service: &Value) {
        if let Some(state) = self.state.lock().await.as_mut() {
            for ip in ips_of(service) {
                state.ips.remove(&ip);
            }
            for port in node_ports_of(service) {
                state.node_ports.remove(&port);
            }
        }
    }
}
