//! The error type of the service proxy.

use std::net::SocketAddr;

/// Why a proxy operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A frontend could not listen on its address: the port is busy (`AddrInUse`), the
    /// address is not local (`AddrNotAvailable`), or the process lacks permission.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The table was used outside a tokio runtime, so no accept task could be started.
    #[error("the proxy table must be used inside a tokio runtime")]
    NoRuntime,
    /// Configuring the ClusterIP interface (iproute2) failed.
    #[error("cluster IP interface: {0}")]
    Interface(#[from] podium_linux::LinuxError),
    /// `ip -j` printed something that is not the JSON it documents.
    #[error("cannot read `ip -j addr` output: {0}")]
    InterfaceOutput(#[from] serde_json::Error),
    /// A call to the API server failed.
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    /// A blocking helper task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ProxyError {
    /// Whether the failure is a port already taken by another socket.
    pub fn is_address_in_use(&self) -> bool {
        matches!(self, ProxyError::Listen { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
    }
}

pub type Result<T, E = ProxyError> = std::result::Result<T, E>;
