//! One watch per kind, shared by every controller: a reflector cache plus a fan-out of
//! what changed, so several `kube::runtime::Controller`s read the same cache and are
//! woken by the same events.
//!
//! ```text
//!  watch ──► apply to Store ──► broadcast Seen::{Added, Modified, Deleted}
//!                                  │ (a re-list also reports objects that vanished)
//!                                  ├──► controller A trigger stream
//!                                  └──► controller B trigger stream
//! ```
//!
//! The store is updated *before* the change is broadcast, so a reconcile woken by a
//! change always reads a cache that has it. A subscriber that falls behind, or that
//! joins late, is handed every cached object again (level-triggered, nothing lost).

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

/// How far a subscriber may fall behind before it is re-synced from the cache.
const FAN_OUT_BUFFER: usize = 8192;

/// A change to one cached object.
#[derive(Debug)]
pub enum Seen<K> {
    /// New to the cache.
    Added(Arc<K>),
    /// Changed, or re-announced after a re-list or a lagging subscriber.
    Modified(Arc<K>),
    /// Gone from the cache (the last state the cache had).
    Deleted(Arc<K>),
}

impl<K> Clone for Seen<K> {
    fn clone(&self) -> Self {
        match self {
            Seen::Added(o) => Seen::Added(o.clone()),
            Seen::Modified(o) => Seen::Modified(o.clone()),
            Seen::Deleted(o) => Seen::Deleted(o.clone()),
        }
    }
}

impl<K> Seen<K> {
    pub fn object(&self) -> &Arc<K> {
        match self {
            Seen::Added(o) | Seen::Modified(o) | Seen::Deleted(o) => o,
        }
    }
}

/// A cache of one kind and the stream of its changes.
pub struct Informer<K>
where
    K: Resource<DynamicType = ()> + 'static,
{
    store: Store<K>,
    changes: broadcast::Sender<Seen<K>>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    /// Start watching; the cache fills in the background (see [`Informer::ready`]).
    pub fn start(api: Api<K>) -> Self {
        let (store, mut writer) = reflector::store::<K>();
        let (changes, _) = broadcast::channel(FAN_OUT_BUFFER);
        let sender = changes.clone();
        let reader = store.clone();
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                        continue;
                    }
                };
                // What the cache held before a re-list, to report objects that vanished
                // while the watch was down.
                let before: Option<Vec<Arc<K>>> =
                    matches!(event, watcher::Event::InitDone).then(|| reader.state());
                let previous = match &event {
                    watcher::Event::Apply(o) | watcher::Event::Delete(o) => {
                        reader.get(&ObjectRef::from_obj(o))
                    }
                    _ => None,
                };
                writer.apply_watcher_event(&event);
                match event {
                    watcher::Event::Apply(o) => {
                        let o = Arc::new(o);
                        let _ = sender.send(if previous.is_some() {
                            Seen::Modified(o)
                        } else {
                            Seen::Added(o)
                        });
                    }
                    watcher::Event::Delete(o) => {
                        let _ = sender.send(Seen::Deleted(Arc::new(o)));
                    }
                    watcher::Event::InitDone => {
                        let before = before.unwrap_or_default();
                        let known: HashSet<ObjectRef<K>> = before
                            .iter()
                            .map(|o| ObjectRef::from_obj(o.as_ref()))
                            .collect();
                        let now = reader.state();
                        let present: HashSet<ObjectRef<K>> = now
                            .iter()
                            .map(|o| ObjectRef::from_obj(o.as_ref()))
                            .collect();
                        for object in now {
                            let key = ObjectRef::from_obj(object.as_ref());
                            let _ = sender.send(if known.contains(&key) {
                                Seen::Modified(object)
                            } else {
                                Seen::Added(object)
                            });
                        }
                        for gone in before
                            .into_iter()
                            .filter(|o| !present.contains(&ObjectRef::from_obj(o.as_ref())))
                        {
                            let _ = sender.send(Seen::Deleted(gone));
                        }
                    }
                    watcher::Event::Init | watcher::Event::InitApply(_) => {}
                }
            }
        });
        Informer { store, changes }
    }

    /// The cache.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Wait until the first list has been cached.
    pub async fn ready(&self) -> bool {
        self.store.wait_until_ready().await.is_ok()
    }

    /// Every change from now on, starting with every object already cached.
    pub fn changes(&self) -> impl Stream<Item = Seen<K>> + Send + 'static {
        let receiver = self.changes.subscribe();
        let store = self.store.clone();
        let replay: Vec<Seen<K>> = store.state().into_iter().map(Seen::Modified).collect();
        let live = futures::stream::unfold((receiver, store), |(mut receiver, store)| async move {
            match receiver.recv().await {
                Ok(seen) => Some((vec![seen], (receiver, store))),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(kind = %K::kind(&()), missed, "subscriber lagged; re-syncing from the cache");
                    let all = store.state().into_iter().map(Seen::Modified).collect();
                    Some((all, (receiver, store)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        futures::stream::iter(replay).chain(live.flat_map(futures::stream::iter))
    }

    /// The changes as a `Controller` trigger stream.
    pub fn triggers(&self) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
        to_triggers(self.changes())
    }
}

/// Turn changes into the objects a `Controller` maps to reconcile requests.
pub fn to_triggers<K>(
    changes: impl Stream<Item = Seen<K>> + Send + 'static,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Clone + Send + Sync + 'static,
{
    changes.map(|seen| Ok((**seen.object()).clone()))
}
