//! Control groups: one [`Cgroup`] trait over the v1 and v2 hierarchies, picked at run time.
//!
//! A cgroup is named by a path relative to the hierarchy root (`podium/<pod-uid>/<container>`);
//! on v1 that path exists once per controller (`/sys/fs/cgroup/memory/podium/...`), on v2
//! once in the unified tree.

mod v1;
mod v2;

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::statfs::{CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, statfs};
use nix::unistd::Pid;

use crate::{LinuxError, Result};

pub use v1::CgroupV1;
pub use v2::CgroupV2;

/// The CFS period Kubernetes uses; a CPU limit of N millicores is a quota of N/1000 periods.
const CPU_PERIOD_MICROS: u64 = 100_000;
/// The smallest quota the kernel accepts (1 ms), as kubelet's `MinQuotaPeriod`.
const MIN_CPU_QUOTA_MICROS: u64 = 1_000;

/// How often and how long [`Cgroup::kill_all`] and [`Cgroup::remove`] retry while the
/// kernel finishes tearing processes down.
const SETTLE_ATTEMPTS: u32 = 100;
const SETTLE_PAUSE: Duration = Duration::from_millis(20);

/// One control group, created on demand. Every method is safe to call on a cgroup that
/// does not exist yet or no longer exists, except the readers, which then fail.
pub trait Cgroup: Send + Sync + std::fmt::Debug {
    /// The path relative to the hierarchy root.
    fn path(&self) -> &Path;
    /// Create the cgroup (and its parents). Existing is fine.
    fn create(&self) -> Result<()>;
    /// Whether the cgroup directory exists.
    fn exists(&self) -> bool;
    /// CPU limit in millicores; `None` removes the limit.
    fn set_cpu_limit(&self, millis: Option<u64>) -> Result<()>;
    /// Memory limit in bytes; `None` removes the limit.
    fn set_memory_limit(&self, bytes: Option<u64>) -> Result<()>;
    /// Move a process (host pid) into the cgroup.
    fn add_pid(&self, pid: u32) -> Result<()>;
    /// The processes in this cgroup and its descendants.
    fn pids(&self) -> Result<Vec<u32>>;
    /// The working set in bytes: usage minus inactive file cache, as kubelet reports it.
    fn memory_usage(&self) -> Result<u64>;
    /// Total CPU time consumed, in nanoseconds.
    fn cpu_usage_nanos(&self) -> Result<u64>;
    /// How many processes the kernel OOM killer has killed in this cgroup.
    fn oom_kill_count(&self) -> Result<u64>;
    /// Every file of the cgroup's directory for one controller, for tests and diagnostics.
    fn directories(&self) -> Vec<PathBuf>;
    /// SIGKILL every process in the cgroup and its descendants, and wait until they are gone.
    fn kill_all(&self) -> Result<()> {
        kill_listed_pids(self)
    }
    /// Kill what is left and remove the cgroup with its descendants. Missing is fine.
    fn remove(&self) -> Result<()> {
        if !self.exists() {
            return Ok(());
        }
        self.kill_all()?;
        for dir in self.directories() {
            remove_tree(&dir)?;
        }
        Ok(())
    }
}

/// Which cgroup hierarchy the host uses, with where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// One mount per controller under `root` (`root/memory`, `root/cpu`, ...).
    V1 { root: PathBuf },
    /// The unified hierarchy mounted at `root`.
    V2 { root: PathBuf },
}

impl Hierarchy {
    /// The hierarchy mounted at `/sys/fs/cgroup`: v2 when that is a cgroup2 mount, v1 when
    /// the v1 memory controller is mounted below it (a hybrid host's `unified` mount without
    /// controllers is ignored).
    pub fn detect() -> Result<Hierarchy> {
        Self::detect_at(Path::new("/sys/fs/cgroup"))
    }

    /// [`Hierarchy::detect`] with another mount point.
    pub fn detect_at(root: &Path) -> Result<Hierarchy> {
        let unified =
            statfs(root).map_err(|e| LinuxError::sys(format!("statfs {}", root.display()), e))?;
        if unified.filesystem_type() == CGROUP2_SUPER_MAGIC {
            return Ok(Hierarchy::V2 {
                root: root.to_path_buf(),
            });
        }
        let memory = root.join("memory");
        match statfs(&memory) {
            Ok(fs) if fs.filesystem_type() == CGROUP_SUPER_MAGIC => Ok(Hierarchy::V1 {
                root: root.to_path_buf(),
            }),
            _ => Err(LinuxError::NoCgroupHierarchy(root.display().to_string())),
        }
    }

    /// The cgroup at `relative` (e.g. `podium/<pod-uid>`). Rejects `..` and absolute paths
    /// so that a name from an API object cannot point outside the hierarchy.
    pub fn cgroup(&self, relative: impl AsRef<Path>) -> Result<Box<dyn Cgroup>> {
        let relative = relative.as_ref();
        if relative.as_os_str().is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(LinuxError::Invalid(format!(
                "cgroup path {:?} must be relative without `..`",
                relative
            )));
        }
        Ok(match self {
            Hierarchy::V1 { root } => Box::new(CgroupV1::new(root, relative)),
            Hierarchy::V2 { root } => Box::new(CgroupV2::new(root, relative)),
        })
    }
}

/// SIGKILL the pids a cgroup lists until it lists none. A process forking at the same
/// moment can need another round, hence the loop.
fn kill_listed_pids<C: Cgroup + ?Sized>(cgroup: &C) -> Result<()> {
    for _ in 0..SETTLE_ATTEMPTS {
        let pids = cgroup.pids()?;
        if pids.is_empty() {
            return Ok(());
        }
        for pid in pids {
            let Ok(raw) = i32::try_from(pid) else {
                continue;
            };
            // ESRCH only means it exited between the read and the kill.
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
        std::thread::sleep(SETTLE_PAUSE);
    }
    Err(LinuxError::Precondition(format!(
        "processes of cgroup {} did not exit after SIGKILL",
        cgroup.path().display()
    )))
}

/// The quota in microseconds per [`CPU_PERIOD_MICROS`] for a limit in millicores.
fn cpu_quota_micros(millis: u64) -> u64 {
    (millis.saturating_mul(CPU_PERIOD_MICROS) / 1000).max(MIN_CPU_QUOTA_MICROS)
}

fn read_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| LinuxError::io_at("read", path, e))
}

fn write_string(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value)
        .map_err(|e| LinuxError::io_at(&format!("write {value:?} to"), path, e))
}

fn read_u64(path: &Path) -> Result<u64> {
    let text = read_string(path)?;
    text.trim().parse().map_err(|_| {
        LinuxError::Invalid(format!(
            "{}: not a number: {:?}",
            path.display(),
            text.trim()
        ))
    })
}

/// The value of `key` in a flat-keyed file such as `memory.stat` or `memory.events`
/// (`key value` per line); 0 when the key is absent, as the kernel omits zero counters
/// on some versions.
fn keyed_value(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The directory and all directories below it, deepest first.
fn subtree_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(subtree_dirs(&entry.path()));
            }
        }
    }
    if dir.is_dir() {
        out.push(dir.to_path_buf());
    }
    out
}

/// Pids listed in `cgroup.procs` of a directory and its descendants.
fn procs_in_tree(dir: &Path) -> Result<Vec<u32>> {
    let mut pids = Vec::new();
    for sub in subtree_dirs(dir) {
        match std::fs::read_to_string(sub.join("cgroup.procs")) {
            Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LinuxError::io_at("read", &sub.join("cgroup.procs"), e)),
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// rmdir a cgroup directory and its descendants (cgroupfs removes the control files with
/// the directory). A cgroup whose last process just died can stay busy for a moment.
fn remove_tree(dir: &Path) -> Result<()> {
    for sub in subtree_dirs(dir) {
        let mut attempt = 0;
        loop {
            match std::fs::remove_dir(&sub) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < SETTLE_ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(SETTLE_PAUSE);
                }
                Err(e) => return Err(LinuxError::io_at("remove cgroup", &sub, e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quota_follows_kubelet() {
        assert_eq!(cpu_quota_micros(1000), 100_000);
        assert_eq!(cpu_quota_micros(250), 25_000);
        assert_eq!(cpu_quota_micros(1), MIN_CPU_QUOTA_MICROS);
    }

    #[test]
    fn keyed_values_are_parsed() {
        let text = "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n";
        assert_eq!(keyed_value(text, "oom_kill"), 1);
        assert_eq!(keyed_value(text, "oom"), 2);
        assert_eq!(keyed_value(text, "absent"), 0);
    }

    #[test]
    fn paths_outside_the_hierarchy_are_refused() {
        let hierarchy = Hierarchy::V2 {
            root: PathBuf::from("/nonexistent"),
        };
        assert!(hierarchy.cgroup("../etc").is_err());
        assert!(hierarchy.cgroup("/etc").is_err());
        assert!(hierarchy.cgroup("").is_err());
        assert!(hierarchy.cgroup("podium/a/b").is_ok());
    }

    #[test]
    fn this_host_has_a_hierarchy() {
        let detected = Hierarchy::detect().expect("a cgroup hierarchy at /sys/fs/cgroup");
        assert!(matches!(
            detected,
            Hierarchy::V1 { .. } | Hierarchy::V2 { .. }
        ));
    }

    #[test]
    fn subtree_lists_children_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        let dirs = subtree_dirs(&dir.path().join("a"));
        assert_eq!(dirs, vec![dir.path().join("a/b"), dir.path().join("a")]);
    }
}
