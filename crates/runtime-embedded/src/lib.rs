//! The embedded runtime: pods as real processes in Linux namespaces and cgroups on an
//! image root filesystem, needing nothing installed on the host.
//!
//! * [`EmbeddedRuntime`] implements [`podium_runtime::Runtime`]; start with `sandbox.rs`
//!   (namespaces, veth, IP, pod cgroup) and `container.rs` (start/wait/stop/recover).
//! * [`shim_main`] is the per-container supervisor process (`shim.rs`), re-executed from
//!   the podium binary so containers survive the agent.
//! * `state.rs` documents the on-disk layout every operation works from.

mod container;
mod error;
mod ipam;
mod sandbox;
mod shim;
mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use podium_image::ImageSource;
use podium_linux::cgroup::Hierarchy;
use podium_linux::net::Ipv4Cidr;
use podium_runtime::{
    ContainerId, ContainerInfo, ContainerSpec, ExitStatus, Recovered, Result as RuntimeResult,
    Runtime, SandboxSpec, SandboxStatus, Stats,
};

pub use error::{EmbeddedError, Result};
pub use shim::shim_main;

/// `PATH` for containers whose image sets none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the embedded runtime keeps things and how it wires pods to the network.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// `<data-dir>/runtime`: per-sandbox and per-container state, rootfs upper dirs.
    pub state_dir: PathBuf,
    /// `<data-dir>/logs`: container logs `<namespace>_<pod>_<uid>/<container>/<attempt>.log`.
    pub log_dir: PathBuf,
    /// The node bridge, e.g. `podium0`.
    pub bridge: String,
    /// The pod network, e.g. `10.42.0.0/24`: gateway `.1` on the bridge, pods from `.2`.
    pub pod_cidr: String,
    /// Cgroup under which pods go: `<hierarchy>/<cgroup_parent>/<pod-uid>/<container>_<attempt>`.
    pub cgroup_parent: String,
    /// The binary re-executed as `<shim_exe> shim <container-state-dir>`.
    pub shim_exe: PathBuf,
    /// Nameservers written to each pod's /etc/resolv.conf (may be empty).
    pub dns_servers: Vec<String>,
}

/// The embedded runtime. Cheap to share: state lives on disk, not in this value.
pub struct EmbeddedRuntime {
    inner: Arc<Inner>,
}

/// What every operation needs, shared with blocking tasks.
pub(crate) struct Inner {
    config: EmbeddedConfig,
    layout: state::Layout,
    cidr: Ipv4Cidr,
    ipam: ipam::Ipam,
    hierarchy: Hierarchy,
    images: Arc<dyn ImageSource>,
    /// Serialises sandbox creation and removal: they share the bridge and the IP pool,
    /// and the agent must never see a sandbox half-made by a concurrent call.
    sandbox_lock: tokio::sync::Mutex<()>,
}

impl EmbeddedRuntime {
    /// Check the configuration, find the cgroup hierarchy and create the state directories.
    pub fn new(config: EmbeddedConfig, images: Arc<dyn ImageSource>) -> Result<Self> {
        let cidr: Ipv4Cidr = config
            .pod_cidr
            .parse()
            .map_err(|e| EmbeddedError::host(format!("pod CIDR {:?}", config.pod_cidr), e))?;
        podium_linux::net::validate_ifname(&config.bridge)
            .map_err(|e| EmbeddedError::host("bridge name", e))?;
        for part in config.cgroup_parent.split('/') {
            state::validate_component("cgroup parent", part)?;
        }
        for server in &config.dns_servers {
            server.parse::<std::net::IpAddr>().map_err(|_| {
                EmbeddedError::Invalid(format!("DNS server {server:?} is not an IP address"))
            })?;
        }
        let hierarchy =
            Hierarchy::detect().map_err(|e| EmbeddedError::host("find cgroup hierarchy", e))?;
        let layout = state::Layout {
            state_dir: config.state_dir.clone(),
            log_dir: config.log_dir.clone(),
        };
        for dir in [
            layout.sandboxes_dir(),
            layout.ipam_dir(),
            layout.log_dir.clone(),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| EmbeddedError::io_at("create", &dir, e))?;
        }
        let ipam = ipam::Ipam::new(layout.ipam_dir(), cidr);
        Ok(EmbeddedRuntime {
            inner: Arc::new(Inner {
                config,
                layout,
                cidr,
                ipam,
                hierarchy,
                images,
                sandbox_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Tear down everything this runtime holds on the node (`podium down`): every sandbox
    /// on disk, including ones a crash left half-created, then the bridge.
    pub async fn release_node(&self) -> Result<()> {
        let pod_uids = state::list_dir(&self.inner.layout.sandboxes_dir())?;
        for pod_uid in pod_uids {
            if state::validate_component("pod UID", &pod_uid).is_err() {
                continue;
            }
            self.remove_sandbox(&pod_uid)
                .await
                .map_err(|e| EmbeddedError::Io {
                    context: format!("remove sandbox {pod_uid}"),
                    source: std::io::Error::other(e.to_string()),
                })?;
        }
        let bridge = self.inner.config.bridge.clone();
        blocking(&self.inner, move |_| {
            podium_linux::net::delete_link(&bridge)
                .map_err(|e| EmbeddedError::host("delete bridge", e))
        })
        .await
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &EmbeddedConfig {
        &self.inner.config
    }
}

/// Run blocking host work off the async threads.
async fn blocking<T: Send + 'static>(
    inner: &Arc<Inner>,
    work: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
) -> Result<T> {
    let inner = Arc::clone(inner);
    tokio::task::spawn_blocking(move || work(&inner))
        .await
        .map_err(|e| EmbeddedError::io("runtime task", std::io::Error::other(e.to_string())))?
}

#[async_trait::async_trait]
impl Runtime for EmbeddedRuntime {
    fn name(&self) -> &'static str {
        "podium-embedded"
    }

    async fn create_sandbox(&self, spec: &SandboxSpec) -> RuntimeResult<SandboxStatus> {
        let _guard = self.inner.sandbox_lock.lock().await;
        let spec = spec.clone();
        Ok(blocking(&self.inner, move |inner| inner.create_sandbox(&spec)).await?)
    }

    async fn remove_sandbox(&self, pod_uid: &str) -> RuntimeResult<()> {
        state::validate_component("pod UID", pod_uid).map_err(EmbeddedError::into_runtime)?;
        let _guard = self.inner.sandbox_lock.lock().await;
        // remove() kills what still runs; the agent normally stopped them gracefully first.
        for id in container::list_containers(&self.inner.layout, pod_uid)? {
            container::remove(&self.inner, &id).await?;
        }
        let pod_uid = pod_uid.to_string();
        Ok(blocking(&self.inner, move |inner| inner.teardown_sandbox(&pod_uid)).await?)
    }

    async fn start(&self, spec: &ContainerSpec) -> RuntimeResult<ContainerInfo> {
        Ok(container::start(&self.inner, spec).await?)
    }

    async fn wait(&self, id: &ContainerId) -> RuntimeResult<ExitStatus> {
        Ok(container::wait(&self.inner, id).await?)
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> RuntimeResult<()> {
        Ok(container::stop(&self.inner, id, grace).await?)
    }

    async fn inspect(&self, id: &ContainerId) -> RuntimeResult<ContainerInfo> {
        Ok(container::inspect(&self.inner, id)?)
    }

    async fn remove(&self, id: &ContainerId) -> RuntimeResult<()> {
        Ok(container::remove(&self.inner, id).await?)
    }

    async fn stats(&self, id: &ContainerId) -> RuntimeResult<Stats> {
        Ok(container::stats(&self.inner, id)?)
    }

    async fn recover(&self) -> RuntimeResult<Recovered> {
        Ok(blocking(&self.inner, container::recover).await?)
    }

    async fn image_id(&self, image: &str) -> RuntimeResult<String> {
        let image = image.to_string();
        Ok(blocking(&self.inner, move |inner| {
            Ok(inner.images.resolve(&image)?.id)
        })
        .await?)
    }
}

impl EmbeddedError {
    fn into_runtime(self) -> podium_runtime::RuntimeError {
        self.into()
    }
}
