//! Watch → cache → queue → reconcile.
//!
//! One reflector per kind feeds a shared cache; every change is broadcast so each
//! controller maps it to the keys it owns (a pod change wakes its ReplicaSet, a
//! ReplicaSet change its Deployment). A reflector updates its store *before* it yields
//! the event, so a reconcile woken by a change always reads a cache that has it.
//! Each controller has one queue and one worker: a key is never reconciled twice at
//! once, and a change during a reconcile queues it again.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::{broadcast, mpsc};

/// Something changed in the cache.
#[derive(Clone, Debug)]
pub enum Change {
    Pod(Arc<Pod>),
    ReplicaSet(Arc<ReplicaSet>),
    Deployment(Arc<Deployment>),
    Service(Arc<Service>),
    /// A watch re-listed or a subscriber fell behind: reconcile everything.
    Resync,
}

/// The watched objects every controller reads.
pub struct Caches {
    pub pods: Store<Pod>,
    pub replicasets: Store<ReplicaSet>,
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub endpoints: Store<Endpoints>,
    changes: broadcast::Sender<Change>,
}

fn reflect<K>(api: Api<K>, changes: broadcast::Sender<Change>, wrap: fn(Arc<K>) -> Option<Change>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o)) => {
                    if let Some(change) = wrap(Arc::new(o)) {
                        let _ = changes.send(change);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let _ = changes.send(Change::Resync);
                }
                Ok(watcher::Event::Init) => {}
                Err(e) => tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying"),
            }
        }
    });
    reader
}

impl Caches {
    /// Start the reflectors and wait until each has listed once.
    pub async fn start(client: Client) -> Self {
        let (changes, _) = broadcast::channel(4096);
        let caches = Caches {
            pods: reflect(Api::<Pod>::all(client.clone()), changes.clone(), |o| Some(Change::Pod(o))),
            replicasets: reflect(Api::<ReplicaSet>::all(client.clone()), changes.clone(), |o| Some(Change::ReplicaSet(o))),
            deployments: reflect(Api::<Deployment>::all(client.clone()), changes.clone(), |o| Some(Change::Deployment(o))),
            services: reflect(Api::<Service>::all(client.clone()), changes.clone(), |o| Some(Change::Service(o))),
            endpoints: reflect(Api::<Endpoints>::all(client.clone()), changes.clone(), |_| None),
            changes,
        };
        for ready in [
            caches.pods.wait_until_ready().await.is_ok(),
            caches.replicasets.wait_until_ready().await.is_ok(),
            caches.deployments.wait_until_ready().await.is_ok(),
            caches.services.wait_until_ready().await.is_ok(),
            caches.endpoints.wait_until_ready().await.is_ok(),
        ] {
            if !ready {
                tracing::warn!("a cache stopped before it was ready");
            }
        }
        caches
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

/// `namespace/name`.
pub fn key_of<K: Resource>(object: &K) -> String {
    format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any())
}

pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// A de-duplicating work queue.
#[derive(Clone)]
pub struct Queue {
    pending: Arc<Mutex<HashSet<String>>>,
    sender: mpsc::UnboundedSender<String>,
}

impl Queue {
    pub fn add(&self, key: String) {
        let fresh = self.pending.lock().map(|mut p| p.insert(key.clone())).unwrap_or(true);
        if fresh {
            let _ = self.sender.send(key);
        }
    }

    pub fn add_after(&self, key: String, delay: Duration) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }
}

/// Run a controller: `map` turns cache changes into keys (`None` for a resync of all),
/// `reconcile` handles one key and may ask to be called again after a delay.
pub async fn run_controller<M, R, Fut>(name: &'static str, caches: Arc<Caches>, all_keys: impl Fn(&Caches) -> Vec<String> + Send + 'static, map: M, reconcile: R) -> anyhow::Result<()>
where
    M: Fn(&Caches, &Change) -> Vec<String> + Send + 'static,
    R: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Option<Duration>>> + Send,
{
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let queue = Queue { pending: Arc::default(), sender };
    let mut changes = caches.subscribe();
    for key in all_keys(&caches) {
        queue.add(key);
    }
    let feeder_queue = queue.clone();
    let feeder_caches = caches.clone();
    tokio::spawn(async move {
        loop {
            let keys = match changes.recv().await {
                Ok(Change::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => all_keys(&feeder_caches),
                Ok(change) => map(&feeder_caches, &change),
                Err(broadcast::error::RecvError::Closed) => return,
            };
            for key in keys {
                feeder_queue.add(key);
            }
        }
    });
    let mut failures: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    while let Some(key) = receiver.recv().await {
        if let Ok(mut pending) = queue.pending.lock() {
            pending.remove(&key);
        }
        match reconcile(key.clone()).await {
            Ok(requeue) => {
                failures.remove(&key);
                if let Some(delay) = requeue {
                    queue.add_after(key, delay);
                }
            }
            Err(e) => {
                let n = failures.entry(key.clone()).or_insert(0);
                *n += 1;
                let delay = Duration::from_millis(100u64 << (*n).min(9));
                tracing::warn!(controller = name, key, error = %e, retry_in = ?delay, "reconcile failed");
                queue.add_after(key, delay);
            }
        }
    }
    Ok(())
}
