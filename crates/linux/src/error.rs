//! The error type of every host operation in this crate.

use std::path::Path;

/// Why a host operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    /// A file operation (often on /proc, /sys/fs/cgroup or a state file) failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::Error,
    },
    /// An external command (iproute2) exited unsuccessfully.
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    /// No usable cgroup hierarchy is mounted on this host.
    #[error("no usable cgroup hierarchy at {0}")]
    NoCgroupHierarchy(String),
    /// An argument cannot be used as given (bad address, bad name, too many layers).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A caller broke a precondition that makes the operation unsafe (fork with threads).
    #[error("precondition not met: {0}")]
    Precondition(String),
}

impl LinuxError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LinuxError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn sys(context: impl Into<String>, source: nix::Error) -> Self {
        LinuxError::Sys {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io_at(action: &str, path: &Path, source: std::io::Error) -> Self {
        LinuxError::io(format!("{action} {}", path.display()), source)
    }

    /// Whether the underlying cause is "no such file, process or device".
    pub fn is_not_found(&self) -> bool {
        match self {
            LinuxError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            LinuxError::Sys { source, .. } => {
                matches!(
                    source,
                    nix::Error::ENOENT | nix::Error::ESRCH | nix::Error::ENODEV
                )
            }
            _ => false,
        }
    }

    /// The error as an `std::io::Error`, for callers whose own errors wrap io errors.
    pub fn into_io(self) -> std::io::Error {
        match self {
            LinuxError::Io { context, source } => {
                std::io::Error::new(source.kind(), format!("{context}: {source}"))
            }
            LinuxError::Sys { context, source } => std::io::Error::new(
                std::io::Error::from(source).kind(),
                format!("{context}: {source}"),
            ),
            other => std::io::Error::other(other.to_string()),
        }
    }
}

pub type Result<T, E = LinuxError> = std::result::Result<T, E>;
