//! An exclusive lock on a data dir, so two processes never run one cluster's state.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Held for as long as the value lives; the kernel releases it when the process dies,
/// however it dies, so a `kill -9` never leaves a stale lock behind.
pub struct DirLock {
    _file: Flock<File>,
    path: PathBuf,
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it; its pid as it wrote it, when readable.
    #[error("{path} is locked by another process{}", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held { path: PathBuf, holder: Option<u32> },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl DirLock {
    /// Take `dir/<name>` without waiting, and write this process's pid into it.
    /// The file is opened close-on-exec (std's default): shims and containers started
    /// from this process never inherit it, so they cannot keep it held.
    pub fn try_lock(dir: &Path, name: &str) -> Result<DirLock, LockError> {
        let path = dir.join(name);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    path,
                    holder: text.trim().parse().ok(),
                });
            }
            Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
        };
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DirLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::try_lock(dir.path(), "lock").unwrap();
        match DirLock::try_lock(dir.path(), "lock") {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("the lock was taken twice"),
        }
        drop(first);
        DirLock::try_lock(dir.path(), "lock").expect("free again once dropped");
    }

    #[test]
    fn the_lock_file_is_not_inherited_across_exec() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DirLock::try_lock(dir.path(), "lock").unwrap();
        // A child lists its open descriptors' targets: the lock file must not be one.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("ls -l /proc/self/fd/")
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            !listing.contains(&*lock.path().to_string_lossy()),
            "the child holds the lock file: {listing}"
        );
    }
}
