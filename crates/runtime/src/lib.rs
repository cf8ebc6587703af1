//! The contract between the node agent and the container runtimes that run its pods.
//!
//! Modelled on Nomad's `drivers/`: the agent speaks only this trait, so it knows
//! nothing of namespaces, cgroups or Docker. A driver owns two kinds of things:
//!
//! * a **sandbox** per pod: the network, IPC and UTS namespaces that all of a pod's
//!   containers share, with the pod's IP and its cgroup parent;
//! * **containers** inside a sandbox: one process tree each, started from an image.
//!
//! Everything a driver creates survives a restart of the agent; [`Runtime::recover`]
//! hands it back so the agent can re-adopt instead of duplicating.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The image is not in the node's image store; the pod cannot start until it is imported.
    #[error("image {0:?} not found in the local image store")]
    ImageNotFound(String),
    /// The sandbox or container named does not exist (or no longer exists).
    #[error("{0} not found")]
    NotFound(String),
    /// The request itself is wrong (bad command, bad limits); retrying will not help.
    #[error("invalid container spec: {0}")]
    Invalid(String),
    /// A host operation (mount, cgroup, netlink, exec of the shim) failed.
    #[error("{context}: {source}")]
    Host {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    pub fn host(context: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Host {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// What the agent asks for when a pod lands on the node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SandboxSpec {
    /// The pod's UID: the sandbox's identity across agent restarts.
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    /// The pod's hostname inside its UTS namespace.
    pub hostname: String,
    /// Pod-level resource limits (sum of the containers'), applied to the pod cgroup.
    pub resources: Resources,
}

/// A running sandbox as the runtime sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SandboxStatus {
    pub pod_uid: String,
    /// The pod IP on the node's bridge.
    pub ip: String,
}

/// CPU and memory limits. `None` means unlimited.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    /// CPU limit in millicores.
    pub cpu_millis: Option<u64>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<u64>,
}

/// One container to start in a sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerSpec {
    pub pod_uid: String,
    /// The container's name within the pod.
    pub name: String,
    /// How many times this container has been started before (0 for the first start);
    /// names the log file so that `kubectl logs --previous` can find the last one.
    pub attempt: u32,
    /// Image reference as written in the pod spec, e.g. `sample-app:v1`.
    pub image: String,
    /// Overrides the image's entrypoint when non-empty (Kubernetes `command`).
    pub command: Vec<String>,
    /// Overrides the image's cmd when non-empty (Kubernetes `args`).
    pub args: Vec<String>,
    /// Environment added to (and overriding) the image's.
    pub env: BTreeMap<String, String>,
    /// Working directory; the image's when `None`.
    pub working_dir: Option<String>,
    pub resources: Resources,
}

/// Identifies a container across agent restarts: `<pod_uid>/<name>/<attempt>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId {
    pub pod_uid: String,
    pub name: String,
    pub attempt: u32,
}

impl std::fmt::Display for ContainerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.pod_uid, self.name, self.attempt)
    }
}

/// How a container's main process ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExitStatus {
    /// Exit code; 128+N when killed by signal N, as a shell reports it.
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// The kernel's OOM killer ended it (Kubernetes reason `OOMKilled`).
    pub oom_killed: bool,
    pub finished_at: jiff::Timestamp,
}

/// The state of a container as the runtime knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ContainerState {
    Running {
        pid: u32,
        started_at: jiff::Timestamp,
    },
    Exited {
        started_at: jiff::Timestamp,
        exit: ExitStatus,
    },
}

/// A container found by [`Runtime::recover`] or returned by [`Runtime::inspect`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerInfo {
    pub id: ContainerId,
    pub image: String,
    /// Image ID (`sha256:<config digest>`), shown as `imageID` in pod status.
    pub image_id: String,
    pub state: ContainerState,
    /// The file the container's stdout and stderr go to.
    pub log_path: PathBuf,
}

/// Resource usage of one container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub cpu_usage_nanos: u64,
    pub memory_bytes: u64,
}

/// What survives an agent restart: every sandbox and container the runtime holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Recovered {
    pub sandboxes: Vec<SandboxStatus>,
    pub containers: Vec<ContainerInfo>,
}

/// A container runtime driver. All methods are idempotent where that makes sense:
/// creating a sandbox that exists returns it; removing a missing one is Ok.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// A short name for logs and `Node.status.nodeInfo.containerRuntimeVersion`.
    fn name(&self) -> &'static str;

    /// Create (or return the existing) sandbox of a pod.
    async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxStatus>;

    /// Stop every container of the pod and release its namespaces, IP and cgroup.
    async fn remove_sandbox(&self, pod_uid: &str) -> Result<()>;

    /// Start a container in its pod's sandbox. The process outlives the agent.
    async fn start(&self, spec: &ContainerSpec) -> Result<ContainerInfo>;

    /// Resolve when the container exits (immediately if it already has).
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus>;

    /// Send SIGTERM, then SIGKILL after `grace`; resolves once the container has exited.
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()>;

    /// The container's current state.
    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo>;

    /// Forget an exited container: remove its root filesystem and state, keep nothing but
    /// what `logs` of a later attempt needs.
    async fn remove(&self, id: &ContainerId) -> Result<()>;

    /// Current CPU and memory usage.
    async fn stats(&self, id: &ContainerId) -> Result<Stats>;

    /// Everything this runtime left running or exited on the node, for re-adoption.
    async fn recover(&self) -> Result<Recovered>;

    /// Whether an image is present locally, and its ID.
    async fn image_id(&self, image: &str) -> Result<String>;
}
