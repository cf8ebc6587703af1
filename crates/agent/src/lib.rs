//! The node agent (our kubelet): registers the Node, runs the pods bound to it through a
//! [`podium_runtime::Runtime`], probes them, reports their status and serves their logs.
//!
//! * [`node`]: the Node, its Lease, capacity and conditions.
//! * [`worker`]: one worker per pod applying [`plan`]'s decisions (sandbox, containers in
//!   order, restarts with back-off, probes, graceful deletion).
//! * [`status`]: pod status from what the worker knows (pure).
//! * [`spec`]: environment, limits and runtime specs from the pod spec (pure).
//! * [`probe`]: httpGet / tcpSocket probes and their thresholds.
//! * [`logs`]: the log endpoint the API server proxies `pods/<name>/log` to.
//! * [`events`]: core/v1 Events; [`pod_api`]: the worker's API calls.
//!
//! The agent talks to the cluster only through the Kubernetes API and to containers only
//! through the runtime trait: it knows nothing of namespaces or Docker.

pub mod error;
pub mod logs;
#[cfg(test)]
mod mock;
pub mod node;
pub mod plan;
pub mod pod_api;
pub mod probe;
pub mod spec;
pub mod status;
pub mod worker;

pub use error::AgentError;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use podium_runtime::{ContainerInfo, Recovered, Runtime};

use crate::logs::LogRegistry;
use crate::node::NodeReporter;
use crate::pod_api::KubePodApi;
use crate::worker::{Handle, WorkerContext};

/// The default time a terminating pod keeps serving after it is marked not ready.
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::from_secs(1);
/// Wait between tries to register the Node while the API server is not answering.
const REGISTER_RETRY: Duration = Duration::from_secs(2);

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    pub node_ip: IpAddr,
    /// Reported as `Node.spec.podCIDR(s)`.
    pub pod_cidr: String,
    /// The log endpoint (kubelet's :10250 role); port 0 picks one, reported in the Node's
    /// `status.daemonEndpoints.kubeletEndpoint.Port`.
    pub agent_listen: SocketAddr,
    /// How long a terminating pod keeps serving after it is marked not ready, so that
    /// endpoints and proxies stop sending it traffic first (busybox-style servers die on
    /// SIGTERM mid-request; a zero-downtime rolling update needs the proxy to move away).
    /// Bounded by the pod's grace period.
    pub drain_delay: Duration,
}

impl AgentConfig {
    /// A config with the log endpoint on an ephemeral port of the node IP (where the API
    /// server finds it: InternalIP and `daemonEndpoints`) and the default drain delay.
    pub fn new(node_name: &str, node_ip: IpAddr, pod_cidr: &str) -> Self {
        AgentConfig {
            node_name: node_name.to_string(),
            node_ip,
            pod_cidr: pod_cidr.to_string(),
            agent_listen: SocketAddr::new(node_ip, 0),
            drain_delay: DEFAULT_DRAIN_DELAY,
        }
    }
}

/// The pods (by UID) the runtime holds something of that the API no longer has: they were
/// deleted while the agent was down.
pub fn orphans(recovered: &Recovered, live: &HashSet<String>) -> BTreeSet<String> {
    recovered
        .sandboxes
        .iter()
        .map(|s| &s.pod_uid)
        .chain(recovered.containers.iter().map(|c| &c.id.pod_uid))
        .filter(|uid| !live.contains(*uid))
        .cloned()
        .collect()
}

/// Stop and remove what the runtime kept of pods that no longer exist.
async fn remove_orphans(runtime: Arc<dyn Runtime>, recovered: Recovered, uids: BTreeSet<String>) {
    for uid in uids {
        tracing::info!(pod_uid = %uid, "removing the containers and sandbox of a pod that no longer exists");
        // Removing the sandbox stops its containers; containers without one are removed singly.
        if let Err(e) = runtime.remove_sandbox(&uid).await {
            tracing::warn!(pod_uid = %uid, error = %e, "could not remove an orphaned sandbox");
        }
        for container in recovered.containers.iter().filter(|c| c.id.pod_uid == uid) {
            let _ = runtime.stop(&container.id, Duration::ZERO).await;
            match runtime.remove(&container.id).await {
                Ok(()) | Err(podium_runtime::RuntimeError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(container = %container.id, error = %e, "could not remove an orphaned container")
                }
            }
        }
    }
}

/// Run the agent: serve logs, register the Node, re-adopt what the runtime kept, and run a
/// worker for every pod bound to the node until the pod watch ends.
pub async fn run(
    client: Client,
    config: AgentConfig,
    runtime: Arc<dyn Runtime>,
) -> anyhow::Result<()> {
    let registry = Arc::new(LogRegistry::default());
    let listener = tokio::net::TcpListener::bind(config.agent_listen)
        .await
        .map_err(|e| AgentError::io(format!("bind {}", config.agent_listen), e))?;
    let port = listener
        .local_addr()
        .map_err(|e| AgentError::io("agent listener address", e))?
        .port();
    tokio::spawn(logs::serve(listener, registry.clone()));

    let mut reporter = NodeReporter::new(client.clone(), config.clone(), runtime.name(), port);
    let status = loop {
        match reporter.register().await {
            Ok(status) => break status,
            Err(e) => {
                tracing::warn!(node = %config.node_name, error = %e, "could not register the node; retrying");
                tokio::time::sleep(REGISTER_RETRY).await;
            }
        }
    };
    reporter.first_lease().await;
    tokio::spawn(reporter.heartbeat(status));
    tracing::info!(node = %config.node_name, port, "node registered");

    let recovered = runtime.recover().await?;
    let mut adoptable: HashMap<String, Vec<ContainerInfo>> = HashMap::new();
    for container in &recovered.containers {
        adoptable
            .entry(container.id.pod_uid.clone())
            .or_default()
            .push(container.clone());
    }
    let mut recovered = Some(recovered);

    let ctx = Arc::new(WorkerContext {
        runtime: runtime.clone(),
        api: Arc::new(KubePodApi::new(client.clone(), &config.node_name)),
        node_ip: config.node_ip,
        drain_delay: config.drain_delay,
        logs: registry,
    });
    let api: Api<Pod> = Api::all(client);
    let selector = format!("spec.nodeName={}", config.node_name);
    let stream = watcher(api, watcher::Config::default().fields(&selector)).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut workers: HashMap<String, Handle> = HashMap::new();
    // UIDs seen in the current (re-)list: after a re-list, pods missing from it are gone
    // even though the watcher sends no Delete for them.
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                continue;
            }
        };
        match event {
            watcher::Event::Init => listed.clear(),
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let Some(uid) = pod.uid() else { continue };
                listed.insert(uid.clone());
                let pod = Arc::new(pod);
                match workers.get(&uid) {
                    Some(handle) if !handle.is_finished() => handle.update(pod),
                    _ => {
                        let adopted = adoptable.remove(&uid).unwrap_or_default();
                        workers.insert(uid, worker::spawn(ctx.clone(), pod, adopted));
                    }
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some(handle) = pod.uid().and_then(|uid| workers.get(&uid)) {
                    handle.gone();
                }
            }
            watcher::Event::InitDone => {
                for (uid, handle) in &workers {
                    if !listed.contains(uid) {
                        handle.gone();
                    }
                }
                if let Some(recovered) = recovered.take() {
                    let uids = orphans(&recovered, &listed);
                    adoptable.retain(|uid, _| !uids.contains(uid));
                    tokio::spawn(remove_orphans(runtime.clone(), recovered, uids));
                }
            }
        }
        workers.retain(|_, handle| !handle.is_finished());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use podium_runtime::{ContainerId, ContainerState, SandboxStatus};

    #[test]
    fn orphans_are_pods_the_api_no_longer_has() {
        let container = |uid: &str| ContainerInfo {
            id: ContainerId {
                pod_uid: uid.into(),
                name: "c".into(),
                attempt: 0,
            },
            image: "i".into(),
            image_id: "sha256:x".into(),
            state: ContainerState::Running {
                pid: 1,
                started_at: jiff::Timestamp::UNIX_EPOCH,
            },
            log_path: "/l".into(),
        };
        let recovered = Recovered {
            sandboxes: vec![
                SandboxStatus {
                    pod_uid: "live".into(),
                    ip: "10.0.0.2".into(),
                },
                SandboxStatus {
                    pod_uid: "dead".into(),
                    ip: "10.0.0.3".into(),
                },
            ],
            containers: vec![
                container("live"),
                container("dead"),
                container("no-sandbox"),
            ],
        };
        let live: HashSet<String> = ["live".to_string()].into();
        assert_eq!(
            orphans(&recovered, &live),
            BTreeSet::from(["dead".to_string(), "no-sandbox".to_string()])
        );
    }

    #[tokio::test]
    async fn orphans_are_stopped_and_removed() {
        let runtime = mock::MockRuntime::new();
        runtime.seed("dead", "c", 0, "app:v1", true);
        runtime.seed("live", "c", 0, "app:v1", true);
        let recovered = runtime.recover().await.unwrap();
        let uids = orphans(&recovered, &["live".to_string()].into());
        remove_orphans(runtime.clone(), recovered, uids).await;
        let left: Vec<String> = runtime
            .running()
            .iter()
            .map(|id| id.pod_uid.clone())
            .collect();
        assert_eq!(left, vec!["live".to_string()]);
        assert!(runtime.calls().contains(&"remove_sandbox dead".to_string()));
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;
    use crate::mock::{MockRuntime, fake_client, not_found};
    use serde_json::json;

    /// Poll `check` every 20 ms for up to 5 s.
    async fn eventually(what: &str, check: impl Fn() -> bool) {
        for _ in 0..250 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn the_agent_registers_runs_its_pods_and_removes_orphans() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "9"},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "app:v1"}]}});
        let listed = pod.clone();
        let (client, seen) = fake_client(move |method, path, body| match (method, path) {
            ("GET", p) if p.starts_with("/api/v1/nodes/") || p.contains("/leases/") => {
                not_found("it")
            }
            ("POST", _) => (201, body.clone()),
            ("PATCH", p) if p.starts_with("/api/v1/nodes/node-a/status") => (
                200,
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}}),
            ),
            ("PATCH", p) if p.starts_with("/api/v1/namespaces/default/pods/web/status") => {
                (200, listed.clone())
            }
            ("GET", p) if p.starts_with("/api/v1/pods?") && p.contains("watch=true") => {
                // No changes: the watch ends with a Bookmark-free empty stream.
                (200, json!(null))
            }
            ("GET", p) if p.starts_with("/api/v1/pods?") => {
                assert!(p.contains("fieldSelector=spec.nodeName%3Dnode-a"), "{p}");
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "10"}, "items": [listed.clone()]}),
                )
            }
            _ => (500, json!({})),
        });
        let runtime = MockRuntime::new();
        runtime.add_image("app:v1");
        runtime.seed("deleted-while-down", "c", 0, "app:v1", true);
        let mut config = AgentConfig::new("node-a", "127.0.0.1".parse().unwrap(), "10.42.0.0/24");
        config.drain_delay = Duration::ZERO;
        let agent = tokio::spawn(run(client, config, runtime.clone()));

        eventually("the pod's container", || {
            runtime.running().iter().any(|id| id.pod_uid == "u1")
        })
        .await;
        eventually("the orphan removed", || {
            !runtime
                .running()
                .iter()
                .any(|id| id.pod_uid == "deleted-while-down")
        })
        .await;
        let ready_written = || {
            seen.lock().unwrap().iter().any(|r| {
                r.path
                    .starts_with("/api/v1/namespaces/default/pods/web/status")
                    && r.body["status"]["conditions"][2]["status"] == "True"
            })
        };
        eventually("a Ready status", ready_written).await;
        let port = seen
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.path.starts_with("/api/v1/nodes/node-a/status"))
            .and_then(|r| r.body["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64())
            .expect("the node status names the agent port");
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port as u16))
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /containerLogs/default/web/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 200") && reply.contains("attempt 0"),
            "{reply}"
        );
        agent.abort();
    }
}
