//! The node's local image store.
//!
//! `podium image import` writes here from its own process while `podium up` reads, so
//! the store is plain files changed only by atomic renames, never a database the
//! server holds open.
//!
//! Layout under the store's root:
//! * `layers/<diff-id hex>/`: one unpacked layer (OCI whiteouts already turned into
//!   overlayfs ones), unpacked once into `tmp/` and renamed into place when complete
//! * `configs/<image-id hex>.json`: the image config blob, verbatim (its sha256 is the id)
//! * `index.json`: normalized reference (`docker.io/library/name:tag`) → image id,
//!   manifest digest, layer diff-ids and size; rewritten as temp file + fsync + rename
//!   while holding an exclusive `flock` on `index.lock`, so readers need no lock
//! * `tmp/<pid>.<random>/`: staging for an import in progress; an import removes the
//!   staging directories of processes that no longer exist (a crash leaves only these)
//!
//! Layers, once placed, are never removed: a container may still run on a layer whose
//! tag moved to another image.

mod archive;
mod layer;
mod reference;
mod store;
mod table;

pub use reference::normalize_reference;
pub use store::{ImageStore, ImageSummary};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Why an image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image with that reference has been imported.
    #[error("image {0:?} not found; import it with `podium image import --data-dir DIR FILE`")]
    NotFound(String),
    /// The archive is not a `docker save` tar or an OCI image layout.
    #[error("invalid image archive: {0}")]
    InvalidArchive(String),
    /// The reference does not follow the Docker reference grammar (kubelet's `InvalidImageName`).
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// Reading or writing the archive or the store failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// The parts of an image's config that decide how its process starts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// An image ready to run: its unpacked layers and its config.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `sha256:<hex of the config blob>`, as `docker images --no-trunc` shows it.
    pub id: String,
    /// Unpacked layer directories, lowest first (overlayfs wants them reversed).
    pub layers: Vec<PathBuf>,
    pub config: ImageConfig,
}

/// Anything that can turn an image reference into an [`Image`]: the local store, and
/// later a registry-backed puller.
pub trait ImageSource: Send + Sync + 'static {
    fn resolve(&self, reference: &str) -> Result<Image, ImageError>;
}
