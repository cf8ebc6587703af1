//! The errors of the embedded runtime and how they map onto the runtime contract's.

use std::path::Path;

use podium_runtime::RuntimeError;

/// Why an embedded-runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// A host operation (namespace, mount, cgroup, link) failed.
    #[error("{context}: {source}")]
    Host {
        context: String,
        #[source]
        source: podium_linux::LinuxError,
    },
    /// Reading or writing runtime state on disk failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A state file exists but cannot be parsed (written by an incompatible version).
    #[error("corrupt state file {path}: {source}")]
    CorruptState {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// The configuration or a request cannot be used as given.
    #[error("{0}")]
    Invalid(String),
    /// The sandbox or container named does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The image could not be resolved.
    #[error(transparent)]
    Image(#[from] podium_image::ImageError),
    /// Every address of the pod CIDR is taken.
    #[error("no free address left in {0}")]
    AddressesExhausted(String),
    /// The shim could not start the container; the message is the shim's.
    #[error("shim: {0}")]
    Shim(String),
}

impl EmbeddedError {
    pub(crate) fn host(context: impl Into<String>, source: podium_linux::LinuxError) -> Self {
        EmbeddedError::Host {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EmbeddedError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io_at(action: &str, path: &Path, source: std::io::Error) -> Self {
        EmbeddedError::io(format!("{action} {}", path.display()), source)
    }
}

impl From<EmbeddedError> for RuntimeError {
    fn from(error: EmbeddedError) -> Self {
        match error {
            EmbeddedError::NotFound(what) => RuntimeError::NotFound(what),
            EmbeddedError::Invalid(why) => RuntimeError::Invalid(why),
            EmbeddedError::Image(podium_image::ImageError::NotFound(reference)) => {
                RuntimeError::ImageNotFound(reference)
            }
            EmbeddedError::Image(other) => {
                RuntimeError::host("resolve image", std::io::Error::other(other.to_string()))
            }
            EmbeddedError::Host { context, source } => {
                RuntimeError::host(context, source.into_io())
            }
            EmbeddedError::Io { context, source } => RuntimeError::host(context, source),
            other => {
                let context = match &other {
                    EmbeddedError::CorruptState { .. } => "read runtime state",
                    EmbeddedError::AddressesExhausted(_) => "allocate pod IP",
                    _ => "start container",
                };
                RuntimeError::host(context, std::io::Error::other(other.to_string()))
            }
        }
    }
}

pub type Result<T, E = EmbeddedError> = std::result::Result<T, E>;
