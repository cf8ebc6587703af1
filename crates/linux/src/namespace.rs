//! Persistent namespaces: created by a short-lived thread, kept alive by bind-mounting
//! `/proc/thread-self/ns/<kind>` onto a file (as `ip netns add` does), joined with `setns`.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::statfs::{NSFS_MAGIC, statfs};

use crate::{LinuxError, Result};

/// The namespaces a pod sandbox shares between its containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceKind {
    Net,
    Ipc,
    Uts,
}

impl NamespaceKind {
    /// The name under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            NamespaceKind::Net => "net",
            NamespaceKind::Ipc => "ipc",
            NamespaceKind::Uts => "uts",
        }
    }

    fn clone_flag(self) -> CloneFlags {
        match self {
            NamespaceKind::Net => CloneFlags::CLONE_NEWNET,
            NamespaceKind::Ipc => CloneFlags::CLONE_NEWIPC,
            NamespaceKind::Uts => CloneFlags::CLONE_NEWUTS,
        }
    }
}

/// Create a fresh namespace of each kind and pin it at its path. Paths that already pin a
/// namespace are kept, so a sandbox half-created before a crash is completed, not doubled.
/// `hostname` is set in a newly created UTS namespace.
pub fn create_persistent(targets: &[(NamespaceKind, PathBuf)], hostname: &str) -> Result<()> {
    let missing: Vec<(NamespaceKind, PathBuf)> = targets
        .iter()
        .filter(|(_, path)| !is_pinned(path))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    for (_, path) in &missing {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| LinuxError::io_at("create", parent, e))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o444)
            .open(path)
            .map_err(|e| LinuxError::io_at("create mount point", path, e))?;
    }
    let hostname = hostname.to_string();
    // unshare of net/ipc/uts changes only the calling thread, so a thread of our own (not a
    // pooled one that would be reused) can enter the new namespaces and then just end.
    let worker = std::thread::Builder::new()
        .name("podium-unshare".into())
        .spawn(move || -> Result<()> {
            let flags = missing
                .iter()
                .fold(CloneFlags::empty(), |f, (k, _)| f | k.clone_flag());
            unshare(flags).map_err(|e| LinuxError::sys("unshare sandbox namespaces", e))?;
            if missing.iter().any(|(k, _)| *k == NamespaceKind::Uts) {
                nix::unistd::sethostname(&hostname)
                    .map_err(|e| LinuxError::sys(format!("sethostname {hostname:?}"), e))?;
            }
            for (kind, path) in &missing {
                let source = format!("/proc/thread-self/ns/{}", kind.proc_name());
                mount(
                    Some(source.as_str()),
                    path.as_path(),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| {
                    LinuxError::sys(format!("bind {source} onto {}", path.display()), e)
                })?;
            }
            Ok(())
        })
        .map_err(|e| LinuxError::io("spawn namespace thread", e))?;
    worker
        .join()
        .map_err(|_| LinuxError::Precondition("namespace thread panicked".into()))?
}

/// Whether `path` currently pins a namespace (a bind mount of nsfs).
pub fn is_pinned(path: &Path) -> bool {
    statfs(path).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC)
}

/// Join the namespace pinned at `path` with the calling thread.
pub fn join(kind: NamespaceKind, path: &Path) -> Result<()> {
    let file = File::open(path).map_err(|e| LinuxError::io_at("open namespace", path, e))?;
    setns(&file, kind.clone_flag())
        .map_err(|e| LinuxError::sys(format!("setns {}", path.display()), e))
}

/// Unpin and delete a namespace file. Missing or already unmounted is fine; the namespace
/// itself dies with its last process.
pub fn remove_persistent(path: &Path) -> Result<()> {
    // A file can carry stacked mounts if two creators raced; unmount until none is left.
    for _ in 0..8 {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => break,
            Err(e) => return Err(LinuxError::sys(format!("unmount {}", path.display()), e)),
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LinuxError::io_at("remove", path, e)),
    }
}

/// Make `dir` a shared mount point, as `ip netns add` does with `/run/netns`, so namespace
/// files mounted in it propagate to (and are unmounted from) mount namespaces copied later.
pub fn prepare_shared_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| LinuxError::io_at("create", dir, e))?;
    let make_shared = || {
        mount(
            None::<&str>,
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match make_shared() {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself first.
            mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| LinuxError::sys(format!("bind {} onto itself", dir.display()), e))?;
            make_shared().map_err(|e| LinuxError::sys(format!("make {} shared", dir.display()), e))
        }
        Err(e) => Err(LinuxError::sys(format!("make {} shared", dir.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root: creates real namespaces.
    #[test]
    fn namespaces_are_pinned_joined_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net");
        let uts = dir.path().join("uts");
        let targets = [
            (NamespaceKind::Net, net.clone()),
            (NamespaceKind::Uts, uts.clone()),
        ];
        create_persistent(&targets, "pinned-host").expect("create namespaces (needs root)");
        assert!(is_pinned(&net) && is_pinned(&uts));
        // Idempotent: a second call keeps the same namespace.
        let inode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .unwrap()
        };
        let first = inode(&net);
        create_persistent(&targets, "pinned-host").unwrap();
        assert_eq!(inode(&net), first);
        let host_net = inode(Path::new("/proc/self/ns/net"));
        assert_ne!(first, host_net);
        let seen = std::thread::spawn(move || {
            join(NamespaceKind::Uts, &uts).unwrap();
            nix::unistd::gethostname().unwrap().into_string().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(seen, "pinned-host");
        for (_, path) in &targets {
            remove_persistent(path).unwrap();
            remove_persistent(path).unwrap();
            assert!(!path.exists());
        }
    }
}
