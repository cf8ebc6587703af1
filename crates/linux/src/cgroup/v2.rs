//! cgroup v2: one unified tree; controllers are enabled for children through each
//! ancestor's `cgroup.subtree_control`.

use std::path::{Path, PathBuf};

use super::{
    CPU_PERIOD_MICROS, Cgroup, SETTLE_ATTEMPTS, SETTLE_PAUSE, cpu_quota_micros, keyed_value,
    procs_in_tree, read_string, read_u64, write_string,
};
use crate::{LinuxError, Result};

/// The controllers Podium enables down to its cgroups.
const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// A cgroup in the unified hierarchy.
#[derive(Debug, Clone)]
pub struct CgroupV2 {
    root: PathBuf,
    relative: PathBuf,
    dir: PathBuf,
}

impl CgroupV2 {
    pub fn new(root: &Path, relative: &Path) -> Self {
        CgroupV2 {
            root: root.to_path_buf(),
            relative: relative.to_path_buf(),
            dir: root.join(relative),
        }
    }

    /// Enable our controllers in `parent`'s `cgroup.subtree_control` so that its children
    /// get the interface files; only those the parent itself has are asked for.
    fn enable_controllers(parent: &Path) -> Result<()> {
        let available = read_string(&parent.join("cgroup.controllers"))?;
        let enabled = read_string(&parent.join("cgroup.subtree_control")).unwrap_or_default();
        for controller in CONTROLLERS {
            let has = |list: &str| list.split_whitespace().any(|c| c == controller);
            if has(&available) && !has(&enabled) {
                write_string(
                    &parent.join("cgroup.subtree_control"),
                    &format!("+{controller}"),
                )?;
            }
        }
        Ok(())
    }
}

impl Cgroup for CgroupV2 {
    fn path(&self) -> &Path {
        &self.relative
    }

    fn create(&self) -> Result<()> {
        if !self.root.join("cgroup.controllers").is_file() {
            return Err(LinuxError::NoCgroupHierarchy(
                self.root.display().to_string(),
            ));
        }
        let mut current = self.root.clone();
        for component in self.relative.components() {
            Self::enable_controllers(&current)?;
            current.push(component);
            match std::fs::create_dir(&current) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(LinuxError::io_at("create cgroup", &current, e)),
            }
        }
        Ok(())
    }

    fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    fn set_cpu_limit(&self, millis: Option<u64>) -> Result<()> {
        let quota = millis.map_or_else(|| "max".to_string(), |m| cpu_quota_micros(m).to_string());
        write_string(
            &self.dir.join("cpu.max"),
            &format!("{quota} {CPU_PERIOD_MICROS}"),
        )
    }

    fn set_memory_limit(&self, bytes: Option<u64>) -> Result<()> {
        let value = bytes.map_or_else(|| "max".to_string(), |b| b.to_string());
        write_string(&self.dir.join("memory.max"), &value)
    }

    fn add_pid(&self, pid: u32) -> Result<()> {
        write_string(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    fn pids(&self) -> Result<Vec<u32>> {
        procs_in_tree(&self.dir)
    }

    fn memory_usage(&self) -> Result<u64> {
        let usage = read_u64(&self.dir.join("memory.current"))?;
        let stat = read_string(&self.dir.join("memory.stat"))?;
        Ok(usage.saturating_sub(keyed_value(&stat, "inactive_file")))
    }

    fn cpu_usage_nanos(&self) -> Result<u64> {
        let stat = read_string(&self.dir.join("cpu.stat"))?;
        Ok(keyed_value(&stat, "usage_usec").saturating_mul(1000))
    }

    fn oom_kill_count(&self) -> Result<u64> {
        Ok(keyed_value(
            &read_string(&self.dir.join("memory.events"))?,
            "oom_kill",
        ))
    }

    fn directories(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    /// `cgroup.kill` (Linux 5.14+) kills the whole subtree atomically, so no process can
    /// fork its way out; older kernels fall back to signalling each pid.
    fn kill_all(&self) -> Result<()> {
        let kill_file = self.dir.join("cgroup.kill");
        if !kill_file.is_file() {
            return super::kill_listed_pids(self);
        }
        write_string(&kill_file, "1")?;
        for _ in 0..SETTLE_ATTEMPTS {
            if self.pids()?.is_empty() {
                return Ok(());
            }
            std::thread::sleep(SETTLE_PAUSE);
        }
        Err(LinuxError::Precondition(format!(
            "processes of cgroup {} did not exit after cgroup.kill",
            self.relative.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_are_enabled_down_the_path_and_limits_written() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        std::fs::write(root.path().join("cgroup.subtree_control"), "").unwrap();
        // The fake has no kernel to fill in children's files, so pre-create the first level.
        std::fs::create_dir(root.path().join("podium")).unwrap();
        std::fs::write(
            root.path().join("podium/cgroup.controllers"),
            "cpu memory pids\n",
        )
        .unwrap();
        std::fs::write(root.path().join("podium/cgroup.subtree_control"), "").unwrap();
        let cgroup = CgroupV2::new(root.path(), Path::new("podium/pod"));
        cgroup.create().unwrap();
        // A real subtree_control accumulates; the fake file keeps the last write.
        assert_eq!(
            std::fs::read_to_string(root.path().join("podium/cgroup.subtree_control")).unwrap(),
            "+pids"
        );
        cgroup.set_cpu_limit(Some(1500)).unwrap();
        cgroup.set_memory_limit(Some(1 << 20)).unwrap();
        let dir = root.path().join("podium/pod");
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.max")).unwrap(),
            "150000 100000"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).unwrap(),
            "1048576"
        );
        cgroup.set_cpu_limit(None).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.max")).unwrap(),
            "max 100000"
        );
        std::fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(dir.join("cpu.stat"), "usage_usec 250\nuser_usec 200\n").unwrap();
        assert_eq!(cgroup.oom_kill_count().unwrap(), 1);
        assert_eq!(cgroup.cpu_usage_nanos().unwrap(), 250_000);
    }
}
