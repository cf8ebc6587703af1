//! The Deployment controller (upstream `pkg/controller/deployment`): rolling updates and
//! recreates over ReplicaSets, revisions and rollbacks, and the status
//! `kubectl rollout status` reads.
//!
//! ```text
//!  reconcile(deployment)
//!    deleting ─────────────► status only
//!    paused / scaling event ► sync: resize ReplicaSets (proportionally mid-rollout)
//!    RollingUpdate ─────────► rolling: grow new within maxSurge | shrink old within maxUnavailable
//!    Recreate ──────────────► recreate: old to 0, wait for their pods, new to replicas
//!    then: status + Available/Progressing conditions, cleanup beyond revisionHistoryLimit
//! ```
//!
//! Modules follow upstream's files: [`sync`] (new ReplicaSet, scaling, cleanup),
//! [`rolling`], [`recreate`], [`rollback`] (revisions), [`progress`] (status),
//! [`util`] (hash, fenceposts, annotations). The sync is written against the [`Ops`]
//! trait so it runs unchanged against an in-memory cluster in tests.

pub mod progress;
pub mod recreate;
pub mod rollback;
pub mod rolling;
pub mod sync;
pub mod util;

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

pub use sync::{Ops, Work};

use crate::error::{Context, Error, status_code};
use crate::informer::Informer;
use crate::podutil::{controller_of, key_of};
use crate::retry::Backoff;
use podium_client::events::{EventType, Recorder};

/// One sync of one deployment (upstream `syncDeployment`) over a cache snapshot.
pub async fn sync_deployment<O: Ops>(
    work: &mut Work,
    replicasets: &[Arc<ReplicaSet>],
    pods: &[Arc<Pod>],
    ops: &mut O,
) -> Result<(), Error> {
    if work.d.metadata.deletion_timestamp.is_some() {
        let (new, old) =
            sync::all_replicasets_and_sync_revision(work, replicasets, false, ops).await?;
        let all: Vec<Arc<ReplicaSet>> = old.into_iter().chain(new.clone()).collect();
        return progress::sync_status(work, &all, new.as_deref(), ops).await;
    }
    progress::check_paused_conditions(&mut work.d);
    if work.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
        return sync::sync(work, replicasets, ops).await;
    }
    let new = util::find_new(&work.d, replicasets);
    let old: Vec<Arc<ReplicaSet>> = replicasets
        .iter()
        .filter(|r| new.as_ref().is_none_or(|n| n.uid() != r.uid()))
        .cloned()
        .collect();
    if sync::is_scaling_event(&work.d, new.as_ref(), &old) {
        return sync::sync(work, replicasets, ops).await;
    }
    if util::is_rolling(&work.d) {
        rolling::rollout(work, replicasets, ops).await
    } else {
        recreate::rollout(work, replicasets, pods, ops).await
    }
}

/// [`Ops`] against the API server.
pub struct KubeOps {
    client: Client,
    recorder: Recorder,
}

#[async_trait]
impl Ops for KubeOps {
    async fn create_replicaset(&mut self, rs: &ReplicaSet) -> Result<Option<ReplicaSet>, Error> {
        let api: Api<ReplicaSet> =
            Api::namespaced(self.client.clone(), &rs.namespace().unwrap_or_default());
        match api.create(&PostParams::default(), rs).await {
            Ok(created) => Ok(Some(created)),
            Err(e) if status_code(&e) == Some(409) => Ok(None),
            Err(e) => Err(e).context(|| format!("creating replicaset {}", key_of(rs))),
        }
    }

    async fn get_replicaset(
        &mut self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ReplicaSet>, Error> {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name)
            .await
            .context(|| format!("reading replicaset {namespace}/{name}"))
    }

    async fn update_replicaset(&mut self, rs: &ReplicaSet) -> Result<ReplicaSet, Error> {
        let api: Api<ReplicaSet> =
            Api::namespaced(self.client.clone(), &rs.namespace().unwrap_or_default());
        // resourceVersion in a patch is a precondition: a stale copy gets 409.
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": rs.resource_version(), "annotations": rs.metadata.annotations},
            "spec": {"replicas": util::replicas_of(rs), "minReadySeconds": rs.spec.as_ref().and_then(|s| s.min_ready_seconds)},
        });
        api.patch(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .context(|| format!("updating replicaset {}", key_of(rs)))
    }

    async fn delete_replicaset(&mut self, rs: &ReplicaSet) -> Result<(), Error> {
        let api: Api<ReplicaSet> =
            Api::namespaced(self.client.clone(), &rs.namespace().unwrap_or_default());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: rs.uid(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&rs.name_any(), &params).await {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(e).context(|| format!("deleting replicaset {}", key_of(rs))),
        }
    }

    async fn set_deployment_revision(
        &mut self,
        d: &Deployment,
        revision: &str,
    ) -> Result<(), Error> {
        let api: Api<Deployment> =
            Api::namespaced(self.client.clone(), &d.namespace().unwrap_or_default());
        let patch = serde_json::json!({"metadata": {"annotations": {util::REVISION: revision}}});
        api.patch(
            &d.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .context(|| format!("setting revision of deployment {}", key_of(d)))?;
        Ok(())
    }

    async fn update_status(
        &mut self,
        d: &Deployment,
        status: &DeploymentStatus,
    ) -> Result<(), Error> {
        let api: Api<Deployment> =
            Api::namespaced(self.client.clone(), &d.namespace().unwrap_or_default());
        let patch = serde_json::json!({"status": status});
        api.patch_status(
            &d.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .context(|| format!("updating status of deployment {}", key_of(d)))?;
        Ok(())
    }

    fn event(&mut self, d: &Deployment, type_: EventType, reason: &str, message: &str) {
        self.recorder.record(d, type_, reason, message);
    }
}

/// The Deployment controller's caches and clients.
pub struct Ctx {
    client: Client,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    recorder: Recorder,
    backoff: Backoff,
}

fn owned_by<K: kube::Resource>(items: Vec<Arc<K>>, owner: &Deployment) -> Vec<Arc<K>> {
    let uid = owner.uid().unwrap_or_default();
    items
        .into_iter()
        .filter(|i| {
            i.meta().namespace == owner.namespace()
                && controller_of(i.as_ref()).is_some_and(|o| o.uid == uid)
        })
        .collect()
}

pub async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let replicasets = owned_by(ctx.replicasets.state(), &d);
    let uids: Vec<String> = replicasets.iter().filter_map(|r| r.uid()).collect();
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.namespace() == d.namespace()
                && controller_of(p.as_ref()).is_some_and(|o| uids.contains(&o.uid))
        })
        .collect();
    let mut ops = KubeOps {
        client: ctx.client.clone(),
        recorder: ctx.recorder.clone(),
    };
    let mut work = Work::new((*d).clone());
    sync_deployment(&mut work, &replicasets, &pods, &mut ops).await?;
    ctx.backoff.succeeded(&key_of(d.as_ref()));
    let requeue = work
        .d
        .status
        .as_ref()
        .and_then(|s| progress::stuck_requeue(&work.d, s, jiff::Timestamp::now()));
    Ok(requeue
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

pub fn error_policy(d: Arc<Deployment>, error: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.backoff.requeue(&key_of(d.as_ref()), error)
}

/// A pod change matters to a Recreate deployment waiting for old pods to go.
fn deployment_for_pod(
    replicasets: &Store<ReplicaSet>,
    deployments: &Store<Deployment>,
    pod: &Pod,
) -> Option<ObjectRef<Deployment>> {
    let ns = pod.namespace()?;
    let rs_owner = controller_of(pod).filter(|o| o.kind == "ReplicaSet")?;
    let rs = replicasets.get(&ObjectRef::new(&rs_owner.name).within(&ns))?;
    let d_owner = controller_of(rs.as_ref()).filter(|o| o.kind == "Deployment")?;
    let d = deployments.get(&ObjectRef::new(&d_owner.name).within(&ns))?;
    (!util::is_rolling(&d)).then(|| ObjectRef::from_obj(d.as_ref()))
}

/// Run the Deployment controller over the shared informers until they stop.
pub async fn run(
    client: Client,
    deployments: &Informer<Deployment>,
    replicasets: &Informer<ReplicaSet>,
    pods: &Informer<Pod>,
    recorder: Recorder,
) {
    let ctx = Arc::new(Ctx {
        client,
        replicasets: replicasets.store(),
        pods: pods.store(),
        recorder,
        backoff: Backoff::default(),
    });
    let (rs_store, d_store) = (replicasets.store(), deployments.store());
    Controller::for_stream(deployments.triggers(), deployments.store())
        .owns_stream(replicasets.triggers())
        .watches_stream(pods.triggers(), move |pod: Pod| {
            deployment_for_pod(&rs_store, &d_store, &pod)
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "deployment controller");
            }
            std::future::ready(())
        })
        .await;
}

#[cfg(test)]
mod tests;
