//! The Node object and its heartbeat: a Lease in `kube-node-lease` renewed every 10 s, and
//! the Node's status (capacity, addresses, node info, pressure conditions) written when it
//! changes or every 60 s. What the status says is computed by pure functions from facts
//! read off the host.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::AgentConfig;
use crate::error::AgentError;
use crate::status::timestamp;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
const LEASE_SECONDS: i32 = 40;
const LEASE_RENEW: Duration = Duration::from_secs(10);
const STATUS_EVERY: Duration = Duration::from_secs(60);
pub const KUBELET_VERSION: &str = "v1.33.0-podium";
/// The kubelet's default pod capacity.
const MAX_PODS: u32 = 110;
/// Kubelet's default hard eviction thresholds: `memory.available<100Mi`, `nodefs.available<10%`.
const MEMORY_PRESSURE_BYTES: u64 = 100 << 20;
const DISK_PRESSURE_RATIO: f64 = 0.10;
/// PID pressure when this share of `pid_max` is in use.
const PID_PRESSURE_RATIO: f64 = 0.90;

/// What the node status reports, read off the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFacts {
    pub cpus: usize,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub disk_total_bytes: u64,
    pub disk_available_bytes: u64,
    pub processes: u64,
    pub pid_max: u64,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
}

/// A `/proc/meminfo` field in bytes.
pub fn meminfo_bytes(meminfo: &str, field: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// `PRETTY_NAME` from `/etc/os-release`.
pub fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// The number of processes from `/proc/loadavg` (`0.00 0.01 0.05 1/234 5678`).
pub fn loadavg_processes(loadavg: &str) -> Option<u64> {
    loadavg
        .split_whitespace()
        .nth(3)?
        .split('/')
        .nth(1)?
        .parse()
        .ok()
}

/// Go's architecture names, as `kubernetes.io/arch` uses them.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Read the facts from this host. Missing files give empty or zero values, never errors:
/// the node must register even in a minimal container.
pub fn read_host_facts() -> HostFacts {
    let meminfo = read("/proc/meminfo");
    let (disk_total_bytes, disk_available_bytes) = nix::sys::statvfs::statvfs("/")
        .map(|s| {
            (
                s.blocks().saturating_mul(s.fragment_size()),
                s.blocks_available().saturating_mul(s.fragment_size()),
            )
        })
        .unwrap_or_default();
    HostFacts {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_total_bytes: meminfo_bytes(&meminfo, "MemTotal").unwrap_or_default(),
        memory_available_bytes: meminfo_bytes(&meminfo, "MemAvailable").unwrap_or_default(),
        disk_total_bytes,
        disk_available_bytes,
        processes: loadavg_processes(&read("/proc/loadavg")).unwrap_or_default(),
        pid_max: read("/proc/sys/kernel/pid_max").parse().unwrap_or_default(),
        machine_id: read("/etc/machine-id"),
        system_uuid: read("/sys/class/dmi/id/product_uuid"),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
        kernel_version: read("/proc/sys/kernel/osrelease"),
        os_image: os_image(&read("/etc/os-release")),
    }
}

/// The labels the agent owns on its Node.
pub fn node_labels(node_name: &str) -> BTreeMap<String, String> {
    let arch = go_arch(std::env::consts::ARCH).to_string();
    [
        ("kubernetes.io/hostname", node_name.to_string()),
        ("kubernetes.io/os", "linux".into()),
        ("kubernetes.io/arch", arch.clone()),
        ("beta.kubernetes.io/os", "linux".into()),
        ("beta.kubernetes.io/arch", arch),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The Node status. `transitions` holds each condition's status and transition time as
/// last reported, so a transition time moves only when the status does.
pub fn node_status(
    facts: &HostFacts,
    config: &AgentConfig,
    runtime_name: &str,
    port: u16,
    transitions: &mut BTreeMap<String, (String, String)>,
    now: jiff::Timestamp,
) -> Value {
    let capacity = json!({
        "cpu": facts.cpus.to_string(),
        "memory": format!("{}Ki", facts.memory_total_bytes / 1024),
        "ephemeral-storage": format!("{}Ki", facts.disk_total_bytes / 1024),
        "pods": MAX_PODS.to_string(),
    });
    let now = timestamp(now);
    let memory_pressure =
        facts.memory_total_bytes > 0 && facts.memory_available_bytes < MEMORY_PRESSURE_BYTES;
    let disk_pressure = facts.disk_total_bytes > 0
        && (facts.disk_available_bytes as f64)
            < DISK_PRESSURE_RATIO * facts.disk_total_bytes as f64;
    let pid_pressure =
        facts.pid_max > 0 && (facts.processes as f64) >= PID_PRESSURE_RATIO * facts.pid_max as f64;
    let mut condition = |type_: &str, pressure: bool, reasons: [(&str, &str); 2]| {
        let status = if pressure { "True" } else { "False" };
        let (reason, message) = if pressure { reasons[1] } else { reasons[0] };
        let transition = match transitions.get(type_) {
            Some((previous, at)) if previous == status => at.clone(),
            _ => now.clone(),
        };
        transitions.insert(type_.to_string(), (status.to_string(), transition.clone()));
        json!({"type": type_, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now, "lastTransitionTime": transition})
    };
    let conditions = vec![
        condition(
            "MemoryPressure",
            memory_pressure,
            [
                (
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                (
                    "KubeletHasInsufficientMemory",
                    "kubelet has insufficient memory available",
                ),
            ],
        ),
        condition(
            "DiskPressure",
            disk_pressure,
            [
                ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("KubeletHasDiskPressure", "kubelet has disk pressure"),
            ],
        ),
        condition(
            "PIDPressure",
            pid_pressure,
            [
                (
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                (
                    "KubeletHasInsufficientPID",
                    "kubelet has insufficient PID available",
                ),
            ],
        ),
        // Ready is a positive condition: "pressure" here means ready.
        condition(
            "Ready",
            true,
            [
                ("KubeletNotReady", "kubelet is not ready"),
                ("KubeletReady", "kubelet is posting ready status"),
            ],
        ),
    ];
    json!({
        "capacity": capacity,
        "allocatable": capacity,
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip.to_string()},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.system_uuid,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel_version,
            "osImage": facts.os_image,
            "containerRuntimeVersion": format!("{runtime_name}://{}", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": go_arch(std::env::consts::ARCH),
        },
        "conditions": conditions,
    })
}

/// The status without heartbeat times: what "changed" means for the node status.
fn content(status: &Value) -> Value {
    let mut copy = status.clone();
    for condition in copy["conditions"].as_array_mut().into_iter().flatten() {
        if let Some(c) = condition.as_object_mut() {
            c.remove("lastHeartbeatTime");
        }
    }
    copy
}

/// Registers the Node and keeps its Lease and status current.
pub struct NodeReporter {
    client: Client,
    config: AgentConfig,
    runtime_name: &'static str,
    port: u16,
    transitions: BTreeMap<String, (String, String)>,
    node_uid: Option<String>,
}

impl NodeReporter {
    pub fn new(client: Client, config: AgentConfig, runtime_name: &'static str, port: u16) -> Self {
        NodeReporter {
            client,
            config,
            runtime_name,
            port,
            transitions: BTreeMap::new(),
            node_uid: None,
        }
    }

    fn status(&mut self) -> Value {
        node_status(
            &read_host_facts(),
            &self.config,
            self.runtime_name,
            self.port,
            &mut self.transitions,
            jiff::Timestamp::now(),
        )
    }

    /// Create the Node (or refresh its labels) and publish its status.
    pub async fn register(&mut self) -> Result<Value, AgentError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let name = self.config.node_name.clone();
        let labels = node_labels(&name);
        let node = match api.get_opt(&name).await? {
            Some(_) => {
                api.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": {"labels": labels}})),
                )
                .await?
            }
            None => {
                let node = Node {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        labels: Some(labels),
                        ..Default::default()
                    },
                    spec: Some(NodeSpec {
                        pod_cidr: Some(self.config.pod_cidr.clone()),
                        pod_cidrs: Some(vec![self.config.pod_cidr.clone()]),
                        ..Default::default()
                    }),
                    status: None,
                };
                match api.create(&PostParams::default(), &node).await {
                    Ok(node) => node,
                    Err(kube::Error::Api(e)) if e.code == 409 => api.get(&name).await?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        self.node_uid = node.uid();
        let status = self.status();
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await?;
        Ok(status)
    }

    async fn renew_lease(&self) -> Result<(), AgentError> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let name = &self.config.node_name;
        let now = MicroTime(jiff::Timestamp::now());
        match api.get_opt(name).await? {
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                spec.renew_time = Some(now);
                spec.holder_identity = Some(name.clone());
                spec.lease_duration_seconds = Some(LEASE_SECONDS);
                // The resourceVersion read above guards the write; a conflict waits for the next tick.
                api.replace(name, &PostParams::default(), &lease).await?;
            }
            None => {
                let owner = self.node_uid.clone().map(|uid| OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.clone(),
                    uid,
                    ..Default::default()
                });
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(LEASE_NAMESPACE.into()),
                        owner_references: owner.map(|o| vec![o]),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(name.clone()),
                        lease_duration_seconds: Some(LEASE_SECONDS),
                        renew_time: Some(now.clone()),
                        acquire_time: Some(now),
                        ..Default::default()
                    }),
                };
                api.create(&PostParams::default(), &lease).await?;
            }
        }
        Ok(())
    }

    /// Renew the Lease every 10 s and write the status when it changes or every 60 s, forever.
    pub async fn heartbeat(mut self, mut last: Value) {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut written_at = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(LEASE_RENEW).await;
            if let Err(e) = self.renew_lease().await {
                tracing::warn!(error = %e, "could not renew the node lease");
            }
            let status = self.status();
            if content(&status) == content(&last) && written_at.elapsed() < STATUS_EVERY {
                continue;
            }
            match api
                .patch_status(
                    &self.config.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({ "status": status })),
                )
                .await
            {
                Ok(_) => {
                    last = status;
                    written_at = tokio::time::Instant::now();
                }
                Err(e) => tracing::warn!(error = %e, "could not update node status"),
            }
        }
    }

    /// The first Lease, right after registering, so the node is not seen as stale.
    pub async fn first_lease(&self) {
        if let Err(e) = self.renew_lease().await {
            tracing::warn!(error = %e, "could not create the node lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AgentConfig {
        AgentConfig::new("node-a", "192.0.2.10".parse().unwrap(), "10.42.0.0/24")
    }

    fn facts() -> HostFacts {
        HostFacts {
            cpus: 2,
            memory_total_bytes: 24 << 30,
            memory_available_bytes: 12 << 30,
            disk_total_bytes: 100 << 30,
            disk_available_bytes: 50 << 30,
            processes: 300,
            pid_max: 4_194_304,
            machine_id: "m".into(),
            system_uuid: "s".into(),
            boot_id: "b".into(),
            kernel_version: "6.18.0".into(),
            os_image: "Debian GNU/Linux 13 (trixie)".into(),
        }
    }

    #[test]
    fn host_files_parse() {
        let meminfo =
            "MemTotal:       24576000 kB\nMemFree:  1000 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(meminfo_bytes(meminfo, "MemTotal"), Some(24_576_000 * 1024));
        assert_eq!(
            meminfo_bytes(meminfo, "MemAvailable"),
            Some(12_000_000 * 1024)
        );
        assert_eq!(meminfo_bytes(meminfo, "Mem"), None);
        assert_eq!(
            os_image("ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n"),
            "Debian GNU/Linux 13 (trixie)"
        );
        assert_eq!(os_image(""), "Linux");
        assert_eq!(loadavg_processes("0.00 0.01 0.05 1/234 5678"), Some(234));
        assert_eq!(loadavg_processes("junk"), None);
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        // On this host the real files are there.
        let real = read_host_facts();
        assert!(real.cpus >= 1 && real.memory_total_bytes > 0 && !real.kernel_version.is_empty());
    }

    #[test]
    fn status_reports_capacity_info_and_conditions() {
        let mut transitions = BTreeMap::new();
        let t0 = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let status = node_status(&facts(), &config(), "embedded", 10250, &mut transitions, t0);
        assert_eq!(status["capacity"]["cpu"], "2");
        assert_eq!(status["capacity"]["memory"], format!("{}Ki", 24u64 << 20));
        assert_eq!(status["capacity"]["pods"], "110");
        assert_eq!(status["allocatable"], status["capacity"]);
        assert_eq!(status["addresses"][0]["address"], "192.0.2.10");
        assert_eq!(status["addresses"][1]["type"], "Hostname");
        assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(status["nodeInfo"]["kubeletVersion"], "v1.33.0-podium");
        assert!(
            status["nodeInfo"]["containerRuntimeVersion"]
                .as_str()
                .unwrap()
                .starts_with("embedded://")
        );
        let types: Vec<&str> = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        assert_eq!(status["conditions"][3]["status"], "True");
        assert_eq!(status["conditions"][0]["status"], "False");
        let _: k8s_openapi::api::core::v1::NodeStatus =
            serde_json::from_value(status.clone()).unwrap();

        // A later heartbeat with nothing changed: same content, old transition times.
        let t1 = jiff::Timestamp::from_second(1_700_000_060).unwrap();
        let again = node_status(&facts(), &config(), "embedded", 10250, &mut transitions, t1);
        assert_eq!(content(&again), content(&status));
        assert_ne!(
            again["conditions"][0]["lastHeartbeatTime"],
            status["conditions"][0]["lastHeartbeatTime"]
        );

        // Low disk: DiskPressure flips, with a new transition time.
        let mut full = facts();
        full.disk_available_bytes = 1 << 30;
        let pressured = node_status(&full, &config(), "embedded", 10250, &mut transitions, t1);
        assert_eq!(pressured["conditions"][1]["status"], "True");
        assert_eq!(
            pressured["conditions"][1]["reason"],
            "KubeletHasDiskPressure"
        );
        assert_eq!(
            pressured["conditions"][1]["lastTransitionTime"],
            timestamp(t1)
        );
        assert_ne!(content(&pressured), content(&status));
    }

    #[test]
    fn labels_name_the_host_os_and_arch() {
        let labels = node_labels("node-a");
        assert_eq!(labels["kubernetes.io/hostname"], "node-a");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert!(!labels.contains_key("node-role.kubernetes.io/control-plane"));
    }
}

#[cfg(test)]
mod api_tests {
    use super::*;
    use crate::mock::{fake_client, not_found};

    #[tokio::test]
    async fn registers_the_node_and_creates_its_lease() {
        let (client, seen) = fake_client(|method, path, body| match (method, path) {
            ("GET", p) if p.starts_with("/api/v1/nodes/node-a") => not_found("nodes \"node-a\""),
            ("POST", p) if p.starts_with("/api/v1/nodes") => {
                let mut node = body.clone();
                node["metadata"]["uid"] = json!("node-uid");
                (201, node)
            }
            ("PATCH", p) if p.starts_with("/api/v1/nodes/node-a/status") => (
                200,
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}}),
            ),
            ("GET", p)
                if p.starts_with(
                    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-a",
                ) =>
            {
                not_found("leases \"node-a\"")
            }
            ("POST", p)
                if p.starts_with(
                    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                ) =>
            {
                (201, body.clone())
            }
            _ => (500, json!({})),
        });
        let mut config = AgentConfig::new("node-a", "192.0.2.10".parse().unwrap(), "10.42.0.0/24");
        config.drain_delay = Duration::ZERO;
        let mut reporter = NodeReporter::new(client, config, "mock", 41000);
        let status = reporter.register().await.unwrap();
        reporter.first_lease().await;
        assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 41000);

        let seen = seen.lock().unwrap().clone();
        let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["GET", "POST", "PATCH", "GET", "POST"], "{seen:?}");
        let created = &seen[1].body;
        assert_eq!(
            created["metadata"]["labels"]["kubernetes.io/hostname"],
            "node-a"
        );
        assert_eq!(created["spec"]["podCIDR"], "10.42.0.0/24");
        assert_eq!(created["spec"]["podCIDRs"][0], "10.42.0.0/24");
        assert_eq!(
            seen[2].body["status"]["addresses"][0]["address"],
            "192.0.2.10"
        );
        let lease = &seen[4].body;
        assert_eq!(lease["spec"]["holderIdentity"], "node-a");
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
        assert!(lease["spec"]["renewTime"].is_string());
        assert_eq!(lease["metadata"]["ownerReferences"][0]["uid"], "node-uid");
    }
}
