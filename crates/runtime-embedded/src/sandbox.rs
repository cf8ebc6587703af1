//! Pod sandboxes: pinned net/ipc/uts namespaces, a veth on the node bridge with an address
//! from the pod CIDR, the pod cgroup, and the generated /etc files containers bind in.
//! Every step is idempotent so a sandbox half-made before a crash is completed on retry.

use std::path::PathBuf;

use podium_linux::namespace::{self, NamespaceKind};
use podium_linux::net::{self, PodLink};
use podium_runtime::{SandboxSpec, SandboxStatus};

use crate::Inner;
use crate::error::{EmbeddedError, Result};
use crate::state::{
    Layout, SANDBOX_FILE, SandboxRecord, read_json, remove_dir_all, validate_component,
    write_json_atomic,
};

/// The Linux limit on a hostname (HOST_NAME_MAX).
const MAX_HOSTNAME: usize = 64;

impl Inner {
    pub(crate) fn read_sandbox(&self, pod_uid: &str) -> Result<Option<SandboxRecord>> {
        read_json(&self.layout.sandbox_dir(pod_uid).join(SANDBOX_FILE))
    }

    pub(crate) fn create_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxStatus> {
        validate_component("pod UID", &spec.pod_uid)?;
        validate_hostname(&spec.hostname)?;
        if let Some(record) = self.read_sandbox(&spec.pod_uid)?
            && sandbox_is_intact(&record)
        {
            return Ok(SandboxStatus {
                pod_uid: record.spec.pod_uid,
                ip: record.ip,
            });
        }
        match self.build_sandbox(spec) {
            Ok(record) => Ok(SandboxStatus {
                pod_uid: record.spec.pod_uid,
                ip: record.ip,
            }),
            Err(error) => {
                if let Err(cleanup) = self.teardown_sandbox(&spec.pod_uid) {
                    tracing::warn!(pod_uid = %spec.pod_uid, %cleanup, "cleaning up a failed sandbox");
                }
                Err(error)
            }
        }
    }

    fn build_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxRecord> {
        let uid = spec.pod_uid.as_str();
        let dir = self.layout.sandbox_dir(uid);
        std::fs::create_dir_all(&dir).map_err(|e| EmbeddedError::io_at("create", &dir, e))?;
        net::ensure_bridge(&self.config.bridge, &self.cidr)
            .map_err(|e| EmbeddedError::host(format!("bridge {}", self.config.bridge), e))?;
        let address = self.ipam.allocate(uid)?;

        let netns = Layout::netns_path(uid);
        let ipc_ns = self.layout.ns_path(uid, "ipc");
        let uts_ns = self.layout.ns_path(uid, "uts");
        namespace::prepare_shared_dir(std::path::Path::new(crate::state::NETNS_DIR))
            .map_err(|e| EmbeddedError::host("prepare netns directory", e))?;
        namespace::create_persistent(
            &[
                (NamespaceKind::Net, netns.clone()),
                (NamespaceKind::Ipc, ipc_ns.clone()),
                (NamespaceKind::Uts, uts_ns.clone()),
            ],
            &spec.hostname,
        )
        .map_err(|e| EmbeddedError::host("create pod namespaces", e))?;

        let host_veth = net::host_veth_name(uid);
        net::attach_pod(&PodLink {
            bridge: self.config.bridge.clone(),
            host_veth: host_veth.clone(),
            netns: Layout::netns_name(uid),
            address,
            cidr: self.cidr,
        })
        .map_err(|e| EmbeddedError::host("connect pod network", e))?;

        let cgroup_path = format!("{}/{uid}", self.config.cgroup_parent);
        let cgroup = self
            .hierarchy
            .cgroup(&cgroup_path)
            .map_err(|e| EmbeddedError::host("pod cgroup", e))?;
        cgroup
            .create()
            .map_err(|e| EmbeddedError::host("create pod cgroup", e))?;
        cgroup
            .set_memory_limit(spec.resources.memory_bytes)
            .map_err(|e| EmbeddedError::host("set pod memory limit", e))?;
        cgroup
            .set_cpu_limit(spec.resources.cpu_millis)
            .map_err(|e| EmbeddedError::host("set pod cpu limit", e))?;

        self.write_etc_files(spec, &address.to_string())?;
        let record = SandboxRecord {
            spec: spec.clone(),
            ip: address.to_string(),
            cidr: self.cidr.to_string(),
            bridge: self.config.bridge.clone(),
            host_veth,
            netns,
            ipc_ns,
            uts_ns,
            cgroup: cgroup_path,
            created_at: jiff::Timestamp::now(),
        };
        write_json_atomic(&dir.join(SANDBOX_FILE), &record)?;
        Ok(record)
    }

    /// `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` as kubelet writes them.
    fn write_etc_files(&self, spec: &SandboxSpec, ip: &str) -> Result<()> {
        let etc = self.layout.etc_dir(&spec.pod_uid);
        std::fs::create_dir_all(&etc).map_err(|e| EmbeddedError::io_at("create", &etc, e))?;
        let hosts = format!(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             {ip}\t{}\n",
            spec.hostname
        );
        let resolv: String = self
            .config
            .dns_servers
            .iter()
            .map(|s| format!("nameserver {s}\n"))
            .collect();
        for (name, content) in [
            ("hosts", hosts),
            ("hostname", format!("{}\n", spec.hostname)),
            ("resolv.conf", resolv),
        ] {
            let path = etc.join(name);
            std::fs::write(&path, content).map_err(|e| EmbeddedError::io_at("write", &path, e))?;
        }
        Ok(())
    }

    /// The host files bound into every container of the pod.
    pub(crate) fn etc_bind_files(&self, pod_uid: &str) -> Vec<(PathBuf, String)> {
        let etc = self.layout.etc_dir(pod_uid);
        ["hosts", "hostname", "resolv.conf"]
            .iter()
            .map(|name| (etc.join(name), format!("/etc/{name}")))
            .collect()
    }

    /// Release everything of a sandbox whose containers are gone. Works from the record
    /// when there is one and from names derived from the UID when there is not, so a
    /// sandbox that crashed half-made is cleaned too. Missing pieces are fine.
    pub(crate) fn teardown_sandbox(&self, pod_uid: &str) -> Result<()> {
        let record = self.read_sandbox(pod_uid).unwrap_or_else(|error| {
            tracing::warn!(%pod_uid, %error, "unreadable sandbox record; removing by derived names");
            None
        });
        let host_veth = record
            .as_ref()
            .map_or_else(|| net::host_veth_name(pod_uid), |r| r.host_veth.clone());
        net::delete_link(&host_veth).map_err(|e| EmbeddedError::host("delete pod veth", e))?;
        for path in [
            Layout::netns_path(pod_uid),
            self.layout.ns_path(pod_uid, "ipc"),
            self.layout.ns_path(pod_uid, "uts"),
        ] {
            namespace::remove_persistent(&path)
                .map_err(|e| EmbeddedError::host("remove pod namespace", e))?;
        }
        let cgroup_path = record.as_ref().map_or_else(
            || format!("{}/{pod_uid}", self.config.cgroup_parent),
            |r| r.cgroup.clone(),
        );
        self.hierarchy
            .cgroup(&cgroup_path)
            .and_then(|cgroup| cgroup.remove())
            .map_err(|e| EmbeddedError::host("remove pod cgroup", e))?;
        self.ipam.release(pod_uid)?;
        let dir = self.layout.sandbox_dir(pod_uid);
        podium_linux::mounts::unmount_under(&dir)
            .map_err(|e| EmbeddedError::host("unmount sandbox leftovers", e))?;
        remove_dir_all(&dir)?;
        if let Some(record) = record {
            remove_dir_all(&self.layout.pod_log_dir(&record.spec))?;
        }
        Ok(())
    }
}

/// Whether a recorded sandbox still has its namespaces and link (a host reboot loses
/// both while the record stays).
fn sandbox_is_intact(record: &SandboxRecord) -> bool {
    [&record.netns, &record.ipc_ns, &record.uts_ns]
        .iter()
        .all(|p| namespace::is_pinned(p))
        && net::link_exists(&record.host_veth).unwrap_or(false)
}

fn validate_hostname(hostname: &str) -> Result<()> {
    let ok = !hostname.is_empty()
        && hostname.len() <= MAX_HOSTNAME
        && hostname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(EmbeddedError::Invalid(format!("hostname {hostname:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_checked() {
        assert!(validate_hostname("web-0").is_ok());
        assert!(validate_hostname("").is_err());
        assert!(validate_hostname("a b").is_err());
        assert!(validate_hostname(&"a".repeat(65)).is_err());
    }
}
