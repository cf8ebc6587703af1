//! cgroup v1: the same relative path under each controller's own mount.

use std::path::{Path, PathBuf};

use super::{
    CPU_PERIOD_MICROS, Cgroup, cpu_quota_micros, keyed_value, procs_in_tree, read_string, read_u64,
    write_string,
};
use crate::{LinuxError, Result};

/// The controllers Podium places processes in. `cpu` and `cpuacct` are often one mount
/// (`cpu,cpuacct` with symlinks); [`CgroupV1::new`] drops duplicates.
const CONTROLLERS: [&str; 4] = ["memory", "cpu", "cpuacct", "pids"];

/// A cgroup in the v1 hierarchies.
#[derive(Debug, Clone)]
pub struct CgroupV1 {
    relative: PathBuf,
    /// `(controller, directory of this cgroup under that controller's mount)`.
    dirs: Vec<(&'static str, PathBuf)>,
}

impl CgroupV1 {
    /// The cgroup `relative` under the controller mounts in `root`. Controllers that are not
    /// mounted are left out, except memory, whose absence [`Cgroup::create`] reports.
    pub fn new(root: &Path, relative: &Path) -> Self {
        let mut dirs: Vec<(&'static str, PathBuf)> = Vec::new();
        let mut seen_mounts: Vec<PathBuf> = Vec::new();
        for controller in CONTROLLERS {
            let mount = root.join(controller);
            let canonical = std::fs::canonicalize(&mount).unwrap_or_else(|_| mount.clone());
            if controller != "memory" && !mount.is_dir() {
                continue;
            }
            if seen_mounts.contains(&canonical) {
                continue;
            }
            seen_mounts.push(canonical);
            dirs.push((controller, mount.join(relative)));
        }
        CgroupV1 {
            relative: relative.to_path_buf(),
            dirs,
        }
    }

    /// This cgroup's directory under a controller that provides `controller`'s files (a
    /// joint `cpu,cpuacct` mount serves both).
    fn dir(&self, controller: &str) -> Result<&Path> {
        if let Some((_, dir)) = self.dirs.iter().find(|(c, _)| *c == controller) {
            return Ok(dir);
        }
        // `cpuacct` was dropped as a duplicate of the joint `cpu` mount.
        if controller == "cpuacct"
            && let Some((_, dir)) = self.dirs.iter().find(|(c, _)| *c == "cpu")
        {
            return Ok(dir);
        }
        Err(LinuxError::NoCgroupHierarchy(format!(
            "v1 controller {controller} is not mounted"
        )))
    }

    fn memory(&self) -> Result<&Path> {
        self.dir("memory")
    }
}

impl Cgroup for CgroupV1 {
    fn path(&self) -> &Path {
        &self.relative
    }

    fn create(&self) -> Result<()> {
        let memory = self.memory()?;
        if let Some(mount) = memory.ancestors().nth(self.relative.components().count())
            && !mount.is_dir()
        {
            return Err(LinuxError::NoCgroupHierarchy(mount.display().to_string()));
        }
        for (_, dir) in &self.dirs {
            std::fs::create_dir_all(dir).map_err(|e| LinuxError::io_at("create cgroup", dir, e))?;
        }
        Ok(())
    }

    fn exists(&self) -> bool {
        self.dirs.iter().any(|(_, dir)| dir.is_dir())
    }

    fn set_cpu_limit(&self, millis: Option<u64>) -> Result<()> {
        let dir = self.dir("cpu")?;
        match millis {
            Some(millis) => {
                write_string(
                    &dir.join("cpu.cfs_period_us"),
                    &CPU_PERIOD_MICROS.to_string(),
                )?;
                write_string(
                    &dir.join("cpu.cfs_quota_us"),
                    &cpu_quota_micros(millis).to_string(),
                )
            }
            None => write_string(&dir.join("cpu.cfs_quota_us"), "-1"),
        }
    }

    fn set_memory_limit(&self, bytes: Option<u64>) -> Result<()> {
        let value = bytes.map_or_else(|| "-1".to_string(), |b| b.to_string());
        write_string(&self.memory()?.join("memory.limit_in_bytes"), &value)
    }

    fn add_pid(&self, pid: u32) -> Result<()> {
        for (_, dir) in &self.dirs {
            write_string(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn pids(&self) -> Result<Vec<u32>> {
        procs_in_tree(self.memory()?)
    }

    fn memory_usage(&self) -> Result<u64> {
        let dir = self.memory()?;
        let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
        let stat = read_string(&dir.join("memory.stat"))?;
        Ok(usage.saturating_sub(keyed_value(&stat, "total_inactive_file")))
    }

    fn cpu_usage_nanos(&self) -> Result<u64> {
        read_u64(&self.dir("cpuacct")?.join("cpuacct.usage"))
    }

    fn oom_kill_count(&self) -> Result<u64> {
        let text = read_string(&self.memory()?.join("memory.oom_control"))?;
        Ok(keyed_value(&text, "oom_kill"))
    }

    fn directories(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, dir)| dir.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake v1 tree on a plain directory: the writes land in ordinary files.
    fn fake_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for controller in CONTROLLERS {
            std::fs::create_dir(root.path().join(controller)).unwrap();
        }
        root
    }

    #[test]
    fn limits_are_written_to_each_controller() {
        let root = fake_root();
        let cgroup = CgroupV1::new(root.path(), Path::new("podium/pod/c"));
        cgroup.create().unwrap();
        cgroup.set_memory_limit(Some(64 << 20)).unwrap();
        cgroup.set_cpu_limit(Some(500)).unwrap();
        let dir = |c: &str| root.path().join(c).join("podium/pod/c");
        assert_eq!(
            std::fs::read_to_string(dir("memory").join("memory.limit_in_bytes")).unwrap(),
            "67108864"
        );
        assert_eq!(
            std::fs::read_to_string(dir("cpu").join("cpu.cfs_quota_us")).unwrap(),
            "50000"
        );
        assert_eq!(
            std::fs::read_to_string(dir("cpu").join("cpu.cfs_period_us")).unwrap(),
            "100000"
        );
        cgroup.set_memory_limit(None).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir("memory").join("memory.limit_in_bytes")).unwrap(),
            "-1"
        );
        cgroup.add_pid(42).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir("pids").join("cgroup.procs")).unwrap(),
            "42"
        );
        assert_eq!(cgroup.pids().unwrap(), vec![42]);
    }

    #[test]
    fn counters_are_read() {
        let root = fake_root();
        let cgroup = CgroupV1::new(root.path(), Path::new("p"));
        cgroup.create().unwrap();
        let memory = root.path().join("memory/p");
        std::fs::write(
            memory.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        )
        .unwrap();
        std::fs::write(memory.join("memory.usage_in_bytes"), "1000\n").unwrap();
        std::fs::write(
            memory.join("memory.stat"),
            "cache 10\ntotal_inactive_file 300\n",
        )
        .unwrap();
        std::fs::write(root.path().join("cpuacct/p/cpuacct.usage"), "123456\n").unwrap();
        assert_eq!(cgroup.oom_kill_count().unwrap(), 3);
        assert_eq!(cgroup.memory_usage().unwrap(), 700);
        assert_eq!(cgroup.cpu_usage_nanos().unwrap(), 123456);
    }

    #[test]
    fn missing_memory_controller_is_reported() {
        let root = tempfile::tempdir().unwrap();
        let cgroup = CgroupV1::new(root.path(), Path::new("p"));
        assert!(matches!(
            cgroup.create(),
            Err(LinuxError::NoCgroupHierarchy(_))
        ));
    }
}
