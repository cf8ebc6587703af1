//! The watch cache, as kube-apiserver's cacher: per resource, one store watch feeds a map
//! of decoded objects and a window of recent events, and LISTs and watches are served
//! from memory instead of each decoding the store.
//!
//! ```text
//!  store ──range + watch(prefix)──► feeder ──► objects (key → Arc<Value>), pods by node
//!                                     │    └─► window (last WINDOW events)
//!                                     └─► live broadcast ──► every watcher (never blocks)
//! ```
//! * Consistent reads: a LIST without a resourceVersion asks the feeder for the store's
//!   progress (every change up to the store's current revision has reached the cache) and
//!   waits for it, so it sees every write acknowledged before it started, as etcd would.
//! * A quiet resource still advances: the feeder asks for progress every second, so
//!   bookmarks carry a current revision and a resumed watch never falls behind compaction.
//! * Each event is encoded once per encoding and shared by every watcher that sees it as
//!   it happened (selectors can turn it into an ADDED or DELETED of their own).
//! * A watcher that falls more than [`LIVE_BUFFER`] events behind is ended with an ERROR
//!   event; writers never wait for it.
//! * When the store drops the feeder's watch, the cache re-lists and every watcher is
//!   ended (clients resume from their last resourceVersion).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use podium_api::resource::ResourceInfo;
use podium_api::selector::{FieldSelector, LabelSelector};
use podium_api::status::ApiError;
use podium_store::{Event, Revision, Store};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast, watch};

use crate::registry::{decode, prefix};

/// Recent events kept per resource for watches that resume from a resourceVersion: at
/// most this many, and none older than [`WINDOW_AGE`] (upstream's 75 s freshness), so a
/// resource that changes often (node status, leases) does not hold old copies forever.
const WINDOW: usize = 1024;
const WINDOW_AGE: Duration = Duration::from_secs(75);
/// How far a watcher may fall behind the live stream before it is ended.
pub const LIVE_BUFFER: usize = 2048;
/// How often a quiet resource's cache learns the store's revision.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long a read waits for the cache to reach a revision, as upstream's 3 s.
const WAIT_FOR_REVISION: Duration = Duration::from_secs(3);

/// The field an index answers directly: pods by node, the agent's and scheduler's query.
const NODE_NAME: &str = "spec.nodeName";

/// One change as the cache saw it.
pub struct CachedEvent {
    pub revision: Revision,
    /// The object after the change; for a delete, its last state at the delete's revision.
    pub object: Arc<Value>,
    /// The object before the change (None for a create).
    pub prev: Option<Arc<Value>>,
    pub deleted: bool,
    at: tokio::time::Instant,
    json: OnceLock<Bytes>,
    protobuf: OnceLock<Option<Bytes>>,
}

impl CachedEvent {
    /// The event's own type: ADDED, MODIFIED or DELETED.
    pub fn natural_type(&self) -> &'static str {
        match (self.deleted, &self.prev) {
            (true, _) => "DELETED",
            (false, None) => "ADDED",
            (false, Some(_)) => "MODIFIED",
        }
    }

    /// The JSON watch line of the event's own type, encoded once for every watcher.
    pub fn json_line(&self) -> Bytes {
        self.json
            .get_or_init(|| {
                let mut line = serde_json::to_vec(
                    &json!({"type": self.natural_type(), "object": &*self.object}),
                )
                .unwrap_or_default();
                line.push(b'\n');
                Bytes::from(line)
            })
            .clone()
    }

    /// The protobuf watch frame of the event's own type, encoded once; None if the
    /// object has no protobuf form.
    pub fn protobuf_frame(&self) -> Option<Bytes> {
        self.protobuf
            .get_or_init(|| {
                crate::negotiate::watch_frame(self.natural_type(), &self.object)
                    .ok()
                    .map(Bytes::from)
            })
            .clone()
    }

    /// Whether the object before and after the change matched, for a watcher's selectors.
    pub fn membership(&self, labels: &LabelSelector, fields: &FieldSelector) -> (bool, bool) {
        let matches = |o: &Value| labels.matches_object(o) && fields.matches(o);
        let before = self.prev.as_deref().is_some_and(matches);
        let after = !self.deleted && matches(&self.object);
        let before = if self.deleted {
            matches(&self.object)
        } else {
            before
        };
        (before, after)
    }
}

/// What a watcher of the cache starts from.
pub struct Subscription {
    /// Events to send first: a snapshot as ADDED (`initial`) or a replay from the window.
    pub initial: Vec<Arc<Value>>,
    pub replay: Vec<Arc<CachedEvent>>,
    /// The revision the snapshot or replay reaches.
    pub revision: Revision,
    pub live: broadcast::Receiver<Arc<CachedEvent>>,
    /// The cache's revision as it advances (for bookmarks).
    pub progress: watch::Receiver<Revision>,
}

struct State {
    objects: BTreeMap<String, Arc<Value>>,
    /// Pod keys by `spec.nodeName` (pods only).
    by_node: HashMap<String, BTreeSet<String>>,
    /// Keys by the uid of each of their `ownerReferences`: the garbage collector's graph
    /// (upstream's graph builder keeps the same edges from its informers).
    by_owner: HashMap<String, BTreeSet<String>>,
    window: VecDeque<Arc<CachedEvent>>,
    /// Every change after this revision is in `window`.
    window_from: Revision,
    /// The cache holds the store's state as of this revision.
    revision: Revision,
    ready: bool,
    live: broadcast::Sender<Arc<CachedEvent>>,
}

/// The cache of one resource (every namespace).
pub struct WatchCache {
    resource: &'static ResourceInfo,
    prefix: String,
    state: RwLock<State>,
    progress: watch::Sender<Revision>,
    progress_wanted: Notify,
}

fn owners_of(object: &Value) -> Vec<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| refs.iter().filter_map(|r| r["uid"].as_str()).collect())
        .unwrap_or_default()
}

fn node_of(object: &Value) -> Option<&str> {
    object
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

impl State {
    /// Drop the window's events beyond its size or age; a watch from before the oldest
    /// one left is served by the store.
    fn trim(&mut self) {
        let now = tokio::time::Instant::now();
        while let Some(oldest) = self.window.front() {
            if self.window.len() <= WINDOW && now.duration_since(oldest.at) <= WINDOW_AGE {
                break;
            }
            self.window_from = oldest.revision;
            self.window.pop_front();
        }
    }

    /// The objects under `scope` (a key prefix) that the selectors match, in key order.
    fn scoped(
        &self,
        scope: &str,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Arc<Value>> {
        self.objects
            .range::<str, _>((Bound::Included(scope), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(scope))
            .map(|(_, o)| o)
            .filter(|o| labels.matches_object(o) && fields.matches(o))
            .cloned()
            .collect()
    }

    fn index(&mut self, indexed: bool, key: &str, old: Option<&Value>, new: Option<&Value>) {
        let (old_owners, new_owners) = (
            old.map(owners_of).unwrap_or_default(),
            new.map(owners_of).unwrap_or_default(),
        );
        if old_owners != new_owners {
            for uid in old_owners.iter().filter(|u| !new_owners.contains(u)) {
                if let Some(keys) = self.by_owner.get_mut(*uid) {
                    keys.remove(key);
                    if keys.is_empty() {
                        self.by_owner.remove(*uid);
                    }
                }
            }
            for uid in new_owners {
                self.by_owner
                    .entry(uid.to_string())
                    .or_default()
                    .insert(key.to_string());
            }
        }
        if !indexed {
            return;
        }
        let (old_node, new_node) = (old.and_then(node_of), new.and_then(node_of));
        if old_node == new_node {
            return;
        }
        if let Some(node) = old_node {
            if let Some(keys) = self.by_node.get_mut(node) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_node.remove(node);
                }
            }
        }
        if let Some(node) = new_node {
            self.by_node
                .entry(node.to_string())
                .or_default()
                .insert(key.to_string());
        }
    }
}

impl WatchCache {
    fn new(resource: &'static ResourceInfo) -> WatchCache {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        WatchCache {
            resource,
            prefix: prefix(resource, None),
            state: RwLock::new(State {
                objects: BTreeMap::new(),
                by_node: HashMap::new(),
                by_owner: HashMap::new(),
                window: VecDeque::new(),
                window_from: 0,
                revision: 0,
                ready: false,
                live,
            }),
            progress: watch::channel(0).0,
            progress_wanted: Notify::new(),
        }
    }

    fn indexed(&self) -> bool {
        self.resource.group.is_empty() && self.resource.plural == "pods"
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep the cache in step with the store, forever: list, watch, apply; re-list when
    /// the store ends the watch.
    async fn feed(self: Arc<Self>, store: Arc<dyn Store>) {
        let mut failures = 0u32;
        loop {
            match self.sync_once(&*store).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(resource = self.resource.plural, error = %e, "watch cache re-listing");
                }
            }
            tokio::time::sleep(Duration::from_millis(100 * u64::from(failures.min(20)))).await;
        }
    }

    async fn sync_once(&self, store: &dyn Store) -> Result<(), String> {
        let range = store
            .range_at(&self.prefix, None, 0, 0)
            .await
            .map_err(|e| e.to_string())?;
        let mut watch = store
            .watch(&self.prefix, range.revision)
            .await
            .map_err(|e| e.to_string())?;
        {
            let mut state = self.write();
            state.objects.clear();
            state.by_node.clear();
            state.by_owner.clear();
            for kv in &range.kvs {
                let Ok(object) = decode(self.resource, kv) else {
                    tracing::warn!(
                        key = kv.key,
                        "skipping a stored object that does not decode"
                    );
                    continue;
                };
                let object = Arc::new(object);
                state.index(self.indexed(), &kv.key, None, Some(&object));
                state.objects.insert(kv.key.clone(), object);
            }
            state.window.clear();
            state.window_from = range.revision;
            state.revision = range.revision;
            state.ready = true;
            // Watchers of the previous generation may have missed events: end them.
            state.live = broadcast::channel(LIVE_BUFFER).0;
        }
        self.progress.send_replace(range.revision);
        let mut ticker = tokio::time::interval(PROGRESS_EVERY);
        // etcd answers a progress request later, on its watch stream: catch up then too.
        let mut notices = watch.take_progress_notices();
        let noticed = async |notices: &mut Option<tokio::sync::watch::Receiver<Revision>>| {
            if let Some(n) = notices.as_mut() {
                if n.changed().await.is_ok() {
                    return;
                }
            }
            std::future::pending::<()>().await
        };
        loop {
            tokio::select! {
                event = watch.next() => match event {
                    Some(event) => self.apply(&event),
                    None => return Err("the store ended the watch".into()),
                },
                _ = self.progress_wanted.notified() => self.catch_up(&mut watch)?,
                _ = noticed(&mut notices) => self.catch_up(&mut watch)?,
                _ = ticker.tick() => self.catch_up(&mut watch)?,
            }
        }
    }

    /// Apply everything the store has already sent, then advance to the store's progress.
    fn catch_up(&self, watch: &mut podium_store::Watch) -> Result<(), String> {
        let reached = watch.progress();
        loop {
            match watch.try_next() {
                Ok(event) => self.apply(&event),
                Err(true) => return Err("the store ended the watch".into()),
                Err(false) => break,
            }
        }
        let revision = {
            let mut state = self.write();
            state.trim();
            state.revision = state.revision.max(reached);
            state.revision
        };
        self.progress.send_if_modified(|current| {
            let advanced = *current < revision;
            *current = revision;
            advanced
        });
        Ok(())
    }

    fn apply(&self, event: &Event) {
        let revision = event.revision();
        let key = event.key().to_string();
        let decoded = match event {
            Event::Put { kv, .. } => decode(self.resource, kv).map(|object| (object, false)),
            Event::Delete { prev, revision } => decode(self.resource, prev).map(|mut object| {
                crate::registry::set_resource_version(&mut object, *revision);
                (object, true)
            }),
        };
        let mut state = self.write();
        let (object, deleted) = match decoded {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::warn!(key, error = %e, "watch cache skipping an event that does not decode");
                state.revision = state.revision.max(revision);
                return;
            }
        };
        let object = Arc::new(object);
        let prev = if deleted {
            state.objects.remove(&key)
        } else {
            state.objects.insert(key.clone(), object.clone())
        };
        let after = (!deleted).then_some(&*object);
        state.index(self.indexed(), &key, prev.as_deref(), after);
        let cached = Arc::new(CachedEvent {
            revision,
            object,
            prev: if deleted { None } else { prev },
            deleted,
            at: tokio::time::Instant::now(),
            json: OnceLock::new(),
            protobuf: OnceLock::new(),
        });
        state.window.push_back(cached.clone());
        state.trim();
        state.revision = state.revision.max(revision);
        // Under the write lock: a subscriber either saw this event in its snapshot or
        // receives it live, never both, never neither.
        let _ = state.live.send(cached);
        drop(state);
        self.progress.send_replace(revision);
    }

    /// Wait until the cache holds the store as of `revision`: 504 (too large resource
    /// version) after 3 s, as upstream.
    async fn wait_for(&self, revision: Revision) -> Result<(), ApiError> {
        let mut progress = self.progress.subscribe();
        let reached = |r: &Revision| *r >= revision;
        if !reached(&progress.borrow()) || !self.read().ready {
            self.progress_wanted.notify_one();
        }
        let waited = tokio::time::timeout(WAIT_FOR_REVISION, async {
            loop {
                if reached(&progress.borrow_and_update()) && self.read().ready {
                    return;
                }
                if progress.changed().await.is_err() {
                    return;
                }
                self.progress_wanted.notify_one();
            }
        })
        .await;
        match waited {
            Ok(()) => Ok(()),
            Err(_) => Err(crate::list::too_large(revision, *self.progress.borrow())),
        }
    }

    /// A consistent read: wait for the store's current revision (the cache's progress).
    pub async fn wait_consistent(&self, store: &dyn Store) -> Result<(), ApiError> {
        let revision = store
            .revision()
            .await
            .map_err(crate::error::store_failure)?;
        self.wait_for(revision).await
    }

    /// The objects (in `namespace`, None: all) that name `uid` among their owners, as of
    /// the store's current revision.
    pub async fn owned_by(
        &self,
        store: &dyn podium_store::Store,
        uid: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Arc<Value>>, ApiError> {
        self.wait_consistent(store).await?;
        let state = self.read();
        let scope = prefix(self.resource, namespace);
        Ok(state
            .by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter(|key| key.starts_with(&scope))
            .filter_map(|key| state.objects.get(key))
            .cloned()
            .collect())
    }

    /// The objects of `namespace` (None: all) matching the selectors, as of the cache's
    /// revision: by the node index when the field selector names a node.
    pub async fn list(
        &self,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        at_least: Revision,
    ) -> Result<(Vec<Arc<Value>>, Revision), ApiError> {
        self.wait_for(at_least).await?;
        let state = self.read();
        let matches = |o: &Value| labels.matches_object(o) && fields.matches(o);
        let scope = prefix(self.resource, namespace);
        let items: Vec<Arc<Value>> = match fields
            .required_value(NODE_NAME)
            .filter(|node| self.indexed() && !node.is_empty())
        {
            Some(node) => state
                .by_node
                .get(node)
                .into_iter()
                .flatten()
                .filter(|key| key.starts_with(&scope))
                .filter_map(|key| state.objects.get(key))
                .filter(|o| matches(o))
                .cloned()
                .collect(),
            None => state.scoped(&scope, labels, fields),
        };
        Ok((items, state.revision))
    }

    /// Start a watch. `from`: None for a snapshot of the current objects (as ADDED) then
    /// live events; Some(rv) to replay the window after rv. `Ok(None)` when rv is older
    /// than the window: the caller watches the store instead.
    pub async fn subscribe(
        &self,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        from: Option<Revision>,
        consistent_with: Revision,
    ) -> Result<Option<Subscription>, ApiError> {
        self.wait_for(from.unwrap_or(0).max(consistent_with))
            .await?;
        let state = self.read();
        let scope = prefix(self.resource, namespace);
        let (initial, replay) = match from {
            None => (state.scoped(&scope, labels, fields), Vec::new()),
            Some(rv) if rv < state.window_from => return Ok(None),
            Some(rv) => {
                let replay = state
                    .window
                    .iter()
                    .filter(|e| e.revision > rv)
                    .cloned()
                    .collect();
                (Vec::new(), replay)
            }
        };
        Ok(Some(Subscription {
            initial,
            replay,
            revision: state.revision,
            live: state.live.subscribe(),
            progress: self.progress.subscribe(),
        }))
    }

    /// Whether the key is in the watcher's scope (namespace).
    pub fn in_scope(&self, namespace: Option<&str>, object: &Value) -> bool {
        match namespace.filter(|_| self.resource.namespaced) {
            Some(ns) => {
                object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    == Some(ns)
            }
            None => true,
        }
    }
}

/// Every resource's cache, each started on first use.
pub struct Caches {
    store: Arc<dyn Store>,
    /// By group, version and plural: every version of a custom resource has its own
    /// cache, whose objects carry that version's `apiVersion`.
    caches: Mutex<HashMap<(&'static str, &'static str, &'static str), Arc<WatchCache>>>,
}

impl Caches {
    pub fn new(store: Arc<dyn Store>) -> Caches {
        Caches {
            store,
            caches: Mutex::new(HashMap::new()),
        }
    }

    /// The cache of `resource`, started (listing and watching the store) on first use.
    pub fn of(&self, resource: &'static ResourceInfo) -> Arc<WatchCache> {
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        caches
            .entry((resource.group, resource.version, resource.plural))
            .or_insert_with(|| {
                let cache = Arc::new(WatchCache::new(resource));
                tokio::spawn(cache.clone().feed(self.store.clone()));
                cache
            })
            .clone()
    }
}
