//! On-disk state: where everything lives under `state_dir`, the JSON records, and
//! atomic writes (temp file, fsync, rename, fsync of the directory).
//!
//! ```text
//! <state_dir>/ipam/<ip>                                   pod UID owning the address
//! <state_dir>/sandboxes/<uid>/sandbox.json                SandboxRecord
//! <state_dir>/sandboxes/<uid>/ns/{ipc,uts}                pinned namespaces
//! <state_dir>/sandboxes/<uid>/etc/{hosts,hostname,resolv.conf}
//! <state_dir>/sandboxes/<uid>/containers/<name>/<attempt>/
//!     container.json   ContainerRecord: written by the runtime, read by the shim
//!     running.json     RunningRecord: written by the shim once the init runs
//!     exit.json        ExitStatus: written by the shim when the init has exited
//!     shim.log, upper/, work/, rootfs/
//! /run/netns/podium-<uid>                                 pinned network namespace
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use podium_runtime::{ContainerId, ContainerSpec, SandboxSpec};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{EmbeddedError, Result};

/// Where `ip netns` looks for named network namespaces; pinning pods' there lets
/// `ip -n podium-<uid> ...` inspect them.
pub const NETNS_DIR: &str = "/run/netns";

pub const SANDBOX_FILE: &str = "sandbox.json";
pub const CONTAINER_FILE: &str = "container.json";
pub const RUNNING_FILE: &str = "running.json";
pub const EXIT_FILE: &str = "exit.json";
pub const SHIM_LOG_FILE: &str = "shim.log";

/// Paths under the runtime's state directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
}

impl Layout {
    pub fn ipam_dir(&self) -> PathBuf {
        self.state_dir.join("ipam")
    }

    pub fn sandboxes_dir(&self) -> PathBuf {
        self.state_dir.join("sandboxes")
    }

    pub fn sandbox_dir(&self, pod_uid: &str) -> PathBuf {
        self.sandboxes_dir().join(pod_uid)
    }

    pub fn netns_name(pod_uid: &str) -> String {
        format!("podium-{pod_uid}")
    }

    pub fn netns_path(pod_uid: &str) -> PathBuf {
        Path::new(NETNS_DIR).join(Self::netns_name(pod_uid))
    }

    pub fn ns_path(&self, pod_uid: &str, kind: &str) -> PathBuf {
        self.sandbox_dir(pod_uid).join("ns").join(kind)
    }

    pub fn etc_dir(&self, pod_uid: &str) -> PathBuf {
        self.sandbox_dir(pod_uid).join("etc")
    }

    pub fn containers_dir(&self, pod_uid: &str) -> PathBuf {
        self.sandbox_dir(pod_uid).join("containers")
    }

    pub fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.containers_dir(&id.pod_uid)
            .join(&id.name)
            .join(id.attempt.to_string())
    }

    /// `<log_dir>/<namespace>_<pod>_<uid>/`, kubelet's pod log directory naming.
    pub fn pod_log_dir(&self, sandbox: &SandboxSpec) -> PathBuf {
        self.log_dir.join(format!(
            "{}_{}_{}",
            sandbox.namespace, sandbox.name, sandbox.pod_uid
        ))
    }

    pub fn log_path(&self, sandbox: &SandboxSpec, id: &ContainerId) -> PathBuf {
        self.pod_log_dir(sandbox)
            .join(&id.name)
            .join(format!("{}.log", id.attempt))
    }
}

/// Refuse names that would escape a directory when used as a path component.
pub fn validate_component(what: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value != "."
        && value != ".."
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(EmbeddedError::Invalid(format!(
            "{what} {value:?} is not a valid name"
        )))
    }
}

/// A pod sandbox as created; enough to tear it down without anything else.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SandboxRecord {
    pub spec: SandboxSpec,
    pub ip: String,
    pub cidr: String,
    pub bridge: String,
    pub host_veth: String,
    pub netns: PathBuf,
    pub ipc_ns: PathBuf,
    pub uts_ns: PathBuf,
    /// The pod cgroup, relative to the hierarchy root.
    pub cgroup: String,
    pub created_at: jiff::Timestamp,
}

/// Everything the shim needs to start one container, resolved by the runtime.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerRecord {
    pub spec: ContainerSpec,
    pub image_id: String,
    pub log_path: PathBuf,
    /// Image layer directories, lowest first.
    pub layers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub rootfs: PathBuf,
    /// The resolved command line (Kubernetes `command`/`args` over the image's).
    pub argv: Vec<String>,
    /// `KEY=value`, image environment overridden by the spec's.
    pub env: Vec<String>,
    pub working_dir: String,
    /// The image's `user` (`uid[:gid]` or names from the image's /etc/passwd).
    pub user: Option<String>,
    pub netns: PathBuf,
    pub ipc_ns: PathBuf,
    pub uts_ns: PathBuf,
    /// The container cgroup, relative to the hierarchy root.
    pub cgroup: String,
    /// `(file on the host, path inside the container)` bound into the root.
    pub bind_files: Vec<(PathBuf, String)>,
}

/// Written by the shim once the container's init runs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RunningRecord {
    pub shim_pid: u32,
    /// Start time of the shim in clock ticks since boot: tells it from a reused pid.
    pub shim_start_time: u64,
    /// The container init's pid on the host.
    pub init_pid: u32,
    pub init_start_time: u64,
    pub started_at: jiff::Timestamp,
}

/// Write `value` as JSON so that readers see the old or the new file, never a torn one,
/// and the new one survives a crash once this returns.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let dir = path.parent().ok_or_else(|| {
        EmbeddedError::Invalid(format!("state path {} has no parent", path.display()))
    })?;
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| {
        EmbeddedError::io(
            format!("encode {}", path.display()),
            std::io::Error::other(e),
        )
    })?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut file =
        std::fs::File::create(&temp).map_err(|e| EmbeddedError::io_at("create", &temp, e))?;
    file.write_all(&bytes)
        .map_err(|e| EmbeddedError::io_at("write", &temp, e))?;
    file.sync_all()
        .map_err(|e| EmbeddedError::io_at("fsync", &temp, e))?;
    drop(file);
    std::fs::rename(&temp, path).map_err(|e| EmbeddedError::io_at("rename onto", path, e))?;
    let dir_handle = std::fs::File::open(dir).map_err(|e| EmbeddedError::io_at("open", dir, e))?;
    dir_handle
        .sync_all()
        .map_err(|e| EmbeddedError::io_at("fsync", dir, e))
}

/// Read a JSON record; `None` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EmbeddedError::io_at("read", path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| EmbeddedError::CorruptState {
            path: path.display().to_string(),
            source,
        })
}

/// Directory entries' names, sorted; an absent directory has none.
pub fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EmbeddedError::io_at("list", dir, e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// Remove a directory tree; missing is fine.
pub fn remove_dir_all(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EmbeddedError::io_at("remove", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podium_runtime::ExitStatus;

    #[test]
    fn atomic_write_round_trips_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit.json");
        let exit = ExitStatus {
            code: 137,
            signal: Some(9),
            oom_killed: false,
            finished_at: jiff::Timestamp::now(),
        };
        write_json_atomic(&path, &exit).unwrap();
        assert_eq!(read_json::<ExitStatus>(&path).unwrap(), Some(exit));
        assert_eq!(list_dir(dir.path()).unwrap(), vec!["exit.json".to_string()]);
        assert_eq!(
            read_json::<ExitStatus>(&dir.path().join("absent.json")).unwrap(),
            None
        );
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(
            read_json::<ExitStatus>(&path),
            Err(EmbeddedError::CorruptState { .. })
        ));
    }

    #[test]
    fn names_cannot_escape() {
        for bad in ["", ".", "..", "a/b", "a b", "x\0"] {
            assert!(validate_component("name", bad).is_err(), "{bad:?}");
        }
        assert!(validate_component("uid", "0b9f0c6e-1111-2222-3333-444455556666").is_ok());
    }
}
