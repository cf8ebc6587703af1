//! The controllers that keep desired state. Each is a `kube::runtime::Controller` with
//! one idempotent, level-triggered `reconcile(Arc<K>, Arc<Ctx>) -> Result<Action, Error>`
//! and an `error_policy`, reading caches shared through [`informer`].
//!
//! * [`replicaset`]: keeps `spec.replicas` pods of a template (claims, expectations).
//! * [`deployment`]: rolling updates, recreates, revisions, rollbacks and rollout status.
//! * [`endpoints`]: the ready and not-ready pod addresses behind each Service.
//! * [`endpointslice`]: the same as `discovery.k8s.io` EndpointSlices, with conditions.
//! * [`serviceaccount`]: a `default` ServiceAccount in every namespace.
//! * [`disruption`]: PodDisruptionBudget status, which evictions consult.
//! * [`informer`]: one watch per kind, fanned out to every controller.
//! * [`expectations`]: never act twice on a cache that has not seen our last writes.
//! * [`labels`], [`podutil`], [`retry`]: selectors, pod facts, error backoff.
//! * [`error`]: the [`Error`] every reconcile returns.

pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod error;
pub mod expectations;
pub mod informer;
pub mod labels;
pub mod podutil;
pub mod replicaset;
pub mod retry;
pub mod serviceaccount;

pub use error::Error;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::{Api, Client};
use podium_client::events::{Recorder, Reporter};

use informer::Informer;

/// Run the ReplicaSet, Deployment, Endpoints, EndpointSlice and ServiceAccounts controllers
/// until their watches end.
pub async fn run(client: Client) -> anyhow::Result<()> {
    let pods = Informer::start(Api::<Pod>::all(client.clone()));
    let replicasets = Informer::start(Api::<ReplicaSet>::all(client.clone()));
    let deployments = Informer::start(Api::<Deployment>::all(client.clone()));
    let services = Informer::start(Api::<Service>::all(client.clone()));
    let endpoints = Informer::start(Api::<Endpoints>::all(client.clone()));
    let slices = Informer::start(Api::<EndpointSlice>::all(client.clone()));
    let namespaces = Informer::start(Api::<Namespace>::all(client.clone()));
    let accounts = Informer::start(Api::<ServiceAccount>::all(client.clone()));
    let budgets = Informer::start(Api::<PodDisruptionBudget>::all(client.clone()));
    let statefulsets = Informer::start(Api::<StatefulSet>::all(client.clone()));
    // Every cache must have listed once before any controller acts: a ReplicaSet
    // reconciled against an empty pod cache would create its pods all over again.
    let ready = [
        pods.ready().await,
        replicasets.ready().await,
        deployments.ready().await,
        services.ready().await,
        endpoints.ready().await,
        slices.ready().await,
        namespaces.ready().await,
        accounts.ready().await,
        budgets.ready().await,
        statefulsets.ready().await,
    ];
    if ready.contains(&false) {
        anyhow::bail!("a watch stopped before its cache was filled");
    }
    tokio::join!(
        replicaset::run(
            client.clone(),
            &pods,
            &replicasets,
            Recorder::new(client.clone(), Reporter::component("replicaset-controller"))
        ),
        deployment::run(
            client.clone(),
            &deployments,
            &replicasets,
            &pods,
            Recorder::new(client.clone(), Reporter::component("deployment-controller"))
        ),
        endpoints::run(client.clone(), &services, &pods, &endpoints),
        endpointslice::run(client.clone(), &services, &pods, &slices),
        serviceaccount::run(client.clone(), &namespaces, &accounts),
        disruption::run(
            client.clone(),
            &budgets,
            &pods,
            &replicasets,
            &deployments,
            &statefulsets
        ),
    );
    anyhow::bail!("the controllers stopped: their watches ended")
}
