//! The agent's error type.

use podium_runtime::RuntimeError;

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A call to the API server failed (transport, decoding, or an error status).
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The container runtime refused or failed an operation.
    #[error("runtime: {0}")]
    Runtime(#[from] RuntimeError),
    /// A local file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A probe in the pod spec cannot be run (no handler, or a port that names no container port).
    #[error("invalid probe: {0}")]
    InvalidProbe(String),
    /// An object the agent builds could not be turned into JSON or back.
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
}

impl AgentError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        AgentError::Io {
            context: context.into(),
            source,
        }
    }
}
