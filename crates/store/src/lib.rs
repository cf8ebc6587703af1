//! The cluster's key-value store.
//!
//! [`Store`] is shaped like etcd's KV + Watch API (range, put-if-revision, delete,
//! watch-from-revision, compact). [`RedbStore`] is the embedded backend `podium up` uses;
//! [`EtcdStore`] keeps the cluster on an etcd cluster (`--datastore-endpoint`). See
//! `docs/architecture.md` for the data model.

mod etcd_store;
mod redb_store;

pub use etcd_store::EtcdStore;
pub use redb_store::{History, RedbStore, SharedRedbStore};

use std::sync::Arc;

/// A store revision: one global, strictly increasing counter bumped by every write.
pub type Revision = u64;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not exist (delete or update of a missing key).
    #[error("key {0:?} not found")]
    NotFound(String),
    /// A create found the key already present.
    #[error("key {0:?} already exists")]
    AlreadyExists(String),
    /// A compare-and-swap lost: the key's revision is not the expected one.
    #[error("key {key:?} is at revision {current}, not the expected {expected}")]
    Conflict {
        key: String,
        expected: Revision,
        current: Revision,
    },
    /// A read or watch asked for history that compaction has already dropped.
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// A read asked for a revision the store has not reached yet.
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// The backend failed (disk, corruption). The write, if any, did not happen.
    #[error("storage backend failed: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stored value with the revisions etcd reports for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Arc<[u8]>,
    /// Revision of the write that created the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key: a Kubernetes object's resourceVersion.
    pub mod_revision: Revision,
}

/// The precondition of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist (create).
    Absent,
    /// The key must exist with exactly this mod revision (optimistic concurrency).
    Revision(Revision),
    /// The key must exist, at any revision.
    Present,
    /// No precondition: create or overwrite.
    Any,
}

/// The result of a range read.
#[derive(Debug, Clone)]
pub struct Range {
    pub kvs: Vec<KeyValue>,
    /// The revision the range was read at.
    pub revision: Revision,
    /// More keys follow the last one returned.
    pub more: bool,
}

/// One change, as watchers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Created (`kv.create_revision == kv.mod_revision`) or updated; `prev` is the value
    /// before an update (needed to tell watchers with selectors that an object left their set).
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// Deleted at `revision`; `prev` is the last value the key had.
    Delete { prev: KeyValue, revision: Revision },
}

impl Event {
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// A stream of changes under a prefix, in revision order. It ends (yields `None`) when the
/// watcher fell too far behind or the store shut down: the caller re-lists and re-watches,
/// as etcd clients do.
pub struct Watch {
    receiver: tokio::sync::mpsc::Receiver<Arc<Event>>,
    progress: Box<dyn Fn() -> Revision + Send + Sync>,
    notices: Option<tokio::sync::watch::Receiver<Revision>>,
}

impl Watch {
    /// A watch fed through `receiver` by a backend. `progress` answers etcd's progress
    /// request: a revision R such that every change at or below R under the prefix is
    /// already in `receiver` (or was delivered before), so a watcher that drains the
    /// channel after asking knows it has seen the store as of R, even when nothing under
    /// its prefix changed for a long time.
    pub fn new(
        receiver: tokio::sync::mpsc::Receiver<Arc<Event>>,
        progress: Box<dyn Fn() -> Revision + Send + Sync>,
    ) -> Watch {
        Watch {
            receiver,
            progress,
            notices: None,
        }
    }

    /// For a backend whose progress arrives later than it is asked for (etcd answers a
    /// progress request on the watch stream): `notices` changes when it does.
    pub fn with_progress_notices(
        mut self,
        notices: tokio::sync::watch::Receiver<Revision>,
    ) -> Watch {
        self.notices = Some(notices);
        self
    }

    /// The progress notices, taken out (see [`Watch::with_progress_notices`]); None for a
    /// backend whose [`Watch::progress`] answers at once.
    pub fn take_progress_notices(&mut self) -> Option<tokio::sync::watch::Receiver<Revision>> {
        self.notices.take()
    }

    pub async fn next(&mut self) -> Option<Arc<Event>> {
        self.receiver.recv().await
    }

    /// The next change if one is already waiting; `Err(true)` when the watch has ended.
    pub fn try_next(&mut self) -> Result<Arc<Event>, bool> {
        use tokio::sync::mpsc::error::TryRecvError;
        self.receiver
            .try_recv()
            .map_err(|e| e == TryRecvError::Disconnected)
    }

    /// See [`Watch::new`]: every change up to the returned revision has been sent.
    pub fn progress(&self) -> Revision {
        (self.progress)()
    }
}

/// The store contract. Every write bumps the one global revision and is durable
/// before it returns.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current revision (for etcd, a round trip: what a quorum read would see).
    async fn revision(&self) -> Result<Revision>;

    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix`, in key order, after `start_after` if given, at most
    /// `limit` (0 = all), as they are now.
    async fn range(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Range> {
        // No key holds a NUL, so `after\0` is the first key after `after`.
        let start = start_after.map(|after| format!("{after}\0"));
        self.range_at(prefix, start.as_deref(), limit, 0).await
    }

    /// Keys starting with `prefix`, in key order, from `start` (inclusive) if given, at
    /// most `limit` (0 = all), as they were at `revision` (0 = now), as etcd's range at a
    /// revision. [`StoreError::Compacted`] if `revision` is below the compaction point,
    /// [`StoreError::FutureRevision`] if above the current revision. The result's
    /// `revision` is the one read at.
    async fn range_at(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
        revision: Revision,
    ) -> Result<Range>;

    /// Write `value` at `key` if `expect` holds; returns the stored key-value.
    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<KeyValue>;

    /// Delete `key` if `expect` holds (`Absent` is meaningless here and rejected);
    /// returns the last value and the revision of the delete.
    async fn delete(&self, key: &str, expect: Expect) -> Result<(KeyValue, Revision)>;

    /// Every change under `prefix` with a revision greater than `after`.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch>;

    /// Drop the change history at and below `revision`: reads at `revision` and later
    /// still work, older reads and watches get [`StoreError::Compacted`].
    async fn compact(&self, revision: Revision) -> Result<()>;
}
