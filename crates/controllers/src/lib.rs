//! The controllers that keep desired state: each is one `reconcile(key)` that reads the
//! watched caches, acts through the API, and is safe to run again at any time.
//!
//! * [`runner`]: watch → cache → queue → reconcile, with retry on error.
//! * [`replicaset`]: keeps `spec.replicas` pods of a template (with expectations).
//! * [`deployment`]: rolling updates, rollbacks and revisions over ReplicaSets.
//! * [`endpoints`]: the ready pod addresses behind each Service.
//! * [`events`]: core/v1 Events, as `kubectl describe` lists them.
//! * [`labels`]: label selector matching for the typed objects.

pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod labels;
pub mod replicaset;
pub mod runner;

use std::sync::Arc;

use runner::Caches;

/// Run every controller until one fails.
pub async fn run(client: kube::Client) -> anyhow::Result<()> {
    let caches = Arc::new(Caches::start(client.clone()).await);
    let recorder = events::Recorder::new(client.clone(), "deployment-controller");
    tokio::try_join!(
        replicaset::run(client.clone(), caches.clone(), recorder.with_component("replicaset-controller")),
        deployment::run(client.clone(), caches.clone(), recorder.clone()),
        endpoints::run(client.clone(), caches.clone()),
    )?;
    Ok(())
}
