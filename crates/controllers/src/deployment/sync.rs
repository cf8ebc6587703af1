//! The steps every deployment sync shares (upstream `sync.go`): find or create the new
//! ReplicaSet and sync revisions, scale (proportionally while a rollout is in flight),
//! and clean up old ReplicaSets beyond `revisionHistoryLimit`.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::progress::{self, Reason};
use super::rollback::new_replicaset_annotations;
use super::util::*;
use crate::error::Error;
use crate::podutil::{controller_ref, key_of};
use podium_client::events::EventType;

/// The writes a deployment sync makes. The controller sends them to the API server;
/// tests apply them to an in-memory cluster.
#[async_trait]
pub trait Ops: Send {
    /// Create a ReplicaSet; `Ok(None)` if one of that name exists already.
    async fn create_replicaset(&mut self, rs: &ReplicaSet) -> Result<Option<ReplicaSet>, Error>;
    /// Read a ReplicaSet from the server.
    async fn get_replicaset(
        &mut self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ReplicaSet>, Error>;
    /// Set a ReplicaSet's replicas, annotations and minReadySeconds, failing with a
    /// conflict if it changed since `rs` was read.
    async fn update_replicaset(&mut self, rs: &ReplicaSet) -> Result<ReplicaSet, Error>;
    async fn delete_replicaset(&mut self, rs: &ReplicaSet) -> Result<(), Error>;
    /// Set the deployment's `deployment.kubernetes.io/revision` annotation.
    async fn set_deployment_revision(
        &mut self,
        d: &Deployment,
        revision: &str,
    ) -> Result<(), Error>;
    async fn update_status(
        &mut self,
        d: &Deployment,
        status: &DeploymentStatus,
    ) -> Result<(), Error>;
    fn event(&mut self, d: &Deployment, type_: EventType, reason: &str, message: &str);
}

/// The deployment being synced: a working copy whose status conditions the steps
/// update as upstream's do, written once at the end.
pub struct Work {
    pub d: Deployment,
    /// The status as the cache had it, to know whether anything needs writing.
    pub original_status: Option<DeploymentStatus>,
}

impl Work {
    pub fn new(d: Deployment) -> Self {
        let original_status = d.status.clone();
        Work { d, original_status }
    }
}

/// Split the deployment's ReplicaSets into the new one and the old ones, syncing the new
/// one's revision and annotations, and creating it if `create` (upstream
/// `getAllReplicaSetsAndSyncRevision`).
pub async fn all_replicasets_and_sync_revision<O: Ops>(
    work: &mut Work,
    replicasets: &[Arc<ReplicaSet>],
    create: bool,
    ops: &mut O,
) -> Result<(Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>), Error> {
    let found = find_new(&work.d, replicasets);
    let old: Vec<Arc<ReplicaSet>> = replicasets
        .iter()
        .filter(|r| found.as_ref().is_none_or(|n| n.uid() != r.uid()))
        .cloned()
        .collect();
    let new = new_replicaset(work, found, &old, create, ops).await?;
    Ok((new, old))
}

async fn new_replicaset<O: Ops>(
    work: &mut Work,
    existing: Option<Arc<ReplicaSet>>,
    old: &[Arc<ReplicaSet>],
    create: bool,
    ops: &mut O,
) -> Result<Option<Arc<ReplicaSet>>, Error> {
    let new_revision = max_revision(old) + 1;
    let d = &work.d;
    if let Some(existing) = existing {
        let annotations = new_replicaset_annotations(d, &existing, new_revision, true);
        let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        let min_ready_changed = existing
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
            != min_ready.unwrap_or(0);
        if annotations.is_some() || min_ready_changed {
            let mut updated = (*existing).clone();
            if let Some(a) = annotations {
                updated.metadata.annotations = Some(a);
            }
            if let Some(spec) = updated.spec.as_mut() {
                spec.min_ready_seconds = min_ready;
            }
            // Upstream returns here and lets the next sync carry on from the update.
            return Ok(Some(Arc::new(ops.update_replicaset(&updated).await?)));
        }
        let revision = existing
            .annotations()
            .get(REVISION)
            .cloned()
            .unwrap_or_default();
        sync_deployment_revision(work, &revision, ops).await?;
        if progress::has_progress_deadline(&work.d)
            && progress::condition(&work.d, "Progressing").is_none()
        {
            let message = format!("Found new replica set \"{}\"", existing.name_any());
            progress::set_condition(
                &mut work.d,
                progress::new_condition("Progressing", "True", Reason::FoundNewReplicaSet, message),
            );
        }
        return Ok(Some(existing));
    }
    if !create {
        return Ok(None);
    }

    let spec = d.spec.as_ref().ok_or_else(|| Error::Invalid {
        kind: "Deployment",
        key: key_of(d),
        field: "spec",
    })?;
    let collisions = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash(&spec.template, collisions);
    let mut template = spec.template.clone();
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.clone());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.clone());
    let mut rs = ReplicaSet {
        metadata: ObjectMeta {
            // Deterministic, so a retried sync can never make two.
            name: Some(format!("{}-{hash}", d.name_any())),
            namespace: d.namespace(),
            owner_references: Some(vec![controller_ref(d)]),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    };
    let mut all: Vec<Arc<ReplicaSet>> = old.to_vec();
    all.push(Arc::new(rs.clone()));
    let replicas = super::rolling::new_rs_new_replicas(d, &all, &rs);
    if let Some(s) = rs.spec.as_mut() {
        s.replicas = Some(replicas);
    }
    rs.metadata.annotations = new_replicaset_annotations(d, &rs, new_revision, false);

    let (created, already_existed) = match ops.create_replicaset(&rs).await {
        Ok(Some(created)) => (created, false),
        Ok(None) => {
            // A slow cache, or a hash collision with another template.
            let name = rs.name_any();
            let current = ops
                .get_replicaset(&d.namespace().unwrap_or_default(), &name)
                .await?;
            let ours = current.filter(|c| {
                crate::podutil::controller_of(c)
                    .is_some_and(|o| Some(&o.uid) == d.metadata.uid.as_ref())
                    && template_of(c).is_some_and(|t| equal_ignore_hash(t, &spec.template))
            });
            match ours {
                Some(current) => (current, true),
                None => {
                    let count = collisions.unwrap_or(0) + 1;
                    let mut status = work.d.status.clone().unwrap_or_default();
                    status.collision_count = Some(count);
                    ops.update_status(&work.d, &status).await?;
                    return Err(Error::HashCollision {
                        deployment: key_of(&work.d),
                        count,
                    });
                }
            }
        }
        Err(e) => {
            let message = format!(
                "Failed to create new replica set \"{}\": {e}",
                rs.name_any()
            );
            if progress::has_progress_deadline(&work.d) {
                progress::set_condition(
                    &mut work.d,
                    progress::new_condition(
                        "Progressing",
                        "False",
                        Reason::FailedCreate,
                        message.clone(),
                    ),
                );
                let status = work.d.status.clone().unwrap_or_default();
                // Best effort: the error below is what matters.
                let _ = ops.update_status(&work.d, &status).await;
            }
            ops.event(
                &work.d,
                EventType::Warning,
                Reason::FailedCreate.as_str(),
                &message,
            );
            return Err(e);
        }
    };
    if !already_existed && replicas > 0 {
        ops.event(
            &work.d,
            EventType::Normal,
            "ScalingReplicaSet",
            &format!(
                "Scaled up replica set {} from 0 to {replicas}",
                created.name_any()
            ),
        );
    }
    sync_deployment_revision(work, &new_revision.to_string(), ops).await?;
    if !already_existed && progress::has_progress_deadline(&work.d) {
        let message = format!("Created new replica set \"{}\"", created.name_any());
        progress::set_condition(
            &mut work.d,
            progress::new_condition("Progressing", "True", Reason::NewReplicaSetCreated, message),
        );
    }
    Ok(Some(Arc::new(created)))
}

/// Upstream `SetDeploymentRevision`, written at once.
async fn sync_deployment_revision<O: Ops>(
    work: &mut Work,
    revision: &str,
    ops: &mut O,
) -> Result<(), Error> {
    if revision.is_empty()
        || work.d.annotations().get(REVISION).map(String::as_str) == Some(revision)
    {
        return Ok(());
    }
    ops.set_deployment_revision(&work.d, revision).await?;
    work.d
        .annotations_mut()
        .insert(REVISION.into(), revision.to_string());
    Ok(())
}

/// Set a ReplicaSet's size and replica annotations (upstream `scaleReplicaSet`);
/// returns whether the size changed and the updated ReplicaSet.
pub async fn scale_replicaset<O: Ops>(
    d: &Deployment,
    rs: &Arc<ReplicaSet>,
    new_scale: i32,
    operation: &str,
    ops: &mut O,
) -> Result<(bool, Arc<ReplicaSet>), Error> {
    let desired = desired_of(d);
    let max = desired + max_surge(d);
    let old_scale = replicas_of(rs);
    let size_changed = old_scale != new_scale;
    if !size_changed && !replicas_annotations_need_update(rs, desired, max) {
        return Ok((false, rs.clone()));
    }
    let mut updated = (**rs).clone();
    if let Some(spec) = updated.spec.as_mut() {
        spec.replicas = Some(new_scale);
    }
    let annotations = updated.annotations_mut();
    annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
    annotations.insert(MAX_REPLICAS.into(), max.to_string());
    let updated = ops.update_replicaset(&updated).await?;
    if size_changed {
        ops.event(
            d,
            EventType::Normal,
            "ScalingReplicaSet",
            &format!(
                "Scaled {operation} replica set {} from {old_scale} to {new_scale}",
                updated.name_any()
            ),
        );
    }
    Ok((size_changed, Arc::new(updated)))
}

/// Upstream `scaleReplicaSetAndRecordEvent`: nothing to do if the size is right.
pub async fn scale_and_record<O: Ops>(
    d: &Deployment,
    rs: &Arc<ReplicaSet>,
    new_scale: i32,
    ops: &mut O,
) -> Result<(bool, Arc<ReplicaSet>), Error> {
    if replicas_of(rs) == new_scale {
        return Ok((false, rs.clone()));
    }
    let operation = if replicas_of(rs) < new_scale {
        "up"
    } else {
        "down"
    };
    scale_replicaset(d, rs, new_scale, operation, ops).await
}

/// Upstream `GetReplicaSetProportion`: this ReplicaSet's share of `to_add`.
pub fn replicaset_proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if replicas_of(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replicaset_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn replicaset_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let desired = desired_of(d);
    if desired == 0 {
        return -replicas_of(rs);
    }
    let max_now = desired + max_surge(d);
    let max_before = match max_replicas_annotation(rs).filter(|m| *m != 0) {
        Some(m) => m,
        None => d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
    };
    if max_before == 0 {
        return 0;
    }
    let scaled = f64::from(replicas_of(rs)) * f64::from(max_now) / f64::from(max_before);
    scaled.round() as i32 - replicas_of(rs)
}

/// The sizes upstream's `scale` gives each ReplicaSet when the deployment's replicas
/// change: all to the only active one; old ones to zero once the new one is saturated;
/// otherwise proportionally, leftovers to the largest. Returns (ReplicaSet, size, "up"|"down").
pub fn scale_plan(
    d: &Deployment,
    new: Option<&Arc<ReplicaSet>>,
    old: &[Arc<ReplicaSet>],
) -> Vec<(Arc<ReplicaSet>, i32, &'static str)> {
    let desired = desired_of(d);
    let mut everyone: Vec<Arc<ReplicaSet>> = old.to_vec();
    sort_by_creation(&mut everyone);
    everyone.reverse();
    if let Some(n) = new {
        everyone.push(n.clone());
    }
    let active_sets = active(&everyone);
    let only = match active_sets.len() {
        0 => new.cloned().or_else(|| everyone.first().cloned()),
        1 => active_sets.first().cloned(),
        _ => None,
    };
    if let Some(rs) = only {
        if replicas_of(&rs) == desired {
            return Vec::new();
        }
        let op = if replicas_of(&rs) < desired {
            "up"
        } else {
            "down"
        };
        return vec![(rs, desired, op)];
    }
    if new.is_some_and(|n| is_saturated(d, n)) {
        return active(old).into_iter().map(|r| (r, 0, "down")).collect();
    }
    if !is_rolling(d) {
        return Vec::new();
    }
    let mut sets = active_sets;
    let current: i32 = sets.iter().map(|r| replicas_of(r)).sum();
    let allowed = if desired > 0 {
        desired + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - current;
    let created = |r: &ReplicaSet| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
    // Larger first; among equals, newer first when growing and older first when shrinking.
    sets.sort_by(|a, b| {
        replicas_of(b).cmp(&replicas_of(a)).then_with(|| {
            if to_add > 0 {
                created(b).cmp(&created(a))
            } else {
                created(a).cmp(&created(b))
            }
        })
    });
    let op = if to_add > 0 { "up" } else { "down" };
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(sets.len());
    for rs in &sets {
        if to_add != 0 {
            let share = replicaset_proportion(rs, d, to_add, added);
            sizes.push(replicas_of(rs) + share);
            added += share;
        } else {
            sizes.push(replicas_of(rs));
        }
    }
    if let Some(first) = sizes.first_mut().filter(|_| to_add != 0) {
        *first = (*first + to_add - added).max(0);
    }
    sets.into_iter()
        .zip(sizes)
        .map(|(rs, size)| (rs, size, op))
        .collect()
}

/// Upstream `IsSaturated`.
pub fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let desired = desired_of(d);
    desired_annotation(rs) == Some(desired)
        && available_of(rs) == desired
        && replicas_of(rs) == desired
}

/// Apply [`scale_plan`].
pub async fn scale<O: Ops>(
    d: &Deployment,
    new: Option<&Arc<ReplicaSet>>,
    old: &[Arc<ReplicaSet>],
    ops: &mut O,
) -> Result<(), Error> {
    for (rs, size, op) in scale_plan(d, new, old) {
        scale_replicaset(d, &rs, size, op, ops).await?;
    }
    Ok(())
}

/// Whether the deployment's replicas changed since its active ReplicaSets were sized
/// (upstream `isScalingEvent`).
pub fn is_scaling_event(
    d: &Deployment,
    new: Option<&Arc<ReplicaSet>>,
    old: &[Arc<ReplicaSet>],
) -> bool {
    let desired = desired_of(d);
    new.into_iter()
        .chain(old.iter())
        .filter(|r| replicas_of(r) > 0)
        .any(|r| desired_annotation(r).is_some_and(|a| a != desired))
}

/// The old ReplicaSets to delete beyond `revisionHistoryLimit` (upstream
/// `cleanupDeployment`): lowest revisions first, only empty, settled ones.
pub fn cleanup_plan(d: &Deployment, old: &[Arc<ReplicaSet>]) -> Vec<Arc<ReplicaSet>> {
    let limit = i64::from(
        d.spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0),
    );
    let mut alive: Vec<Arc<ReplicaSet>> = old
        .iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    let excess = alive.len() as i64 - limit;
    if excess <= 0 {
        return Vec::new();
    }
    alive.sort_by(|a, b| {
        revision_of(a)
            .cmp(&revision_of(b))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    alive
        .into_iter()
        .take(excess as usize)
        .filter(|r| {
            let observed = r
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            actual_of(r) == 0
                && replicas_of(r) == 0
                && r.metadata.generation.unwrap_or(0) <= observed
        })
        .collect()
}

pub async fn cleanup<O: Ops>(
    d: &Deployment,
    old: &[Arc<ReplicaSet>],
    ops: &mut O,
) -> Result<(), Error> {
    for rs in cleanup_plan(d, old) {
        ops.delete_replicaset(&rs).await?;
    }
    Ok(())
}

/// A paused deployment or a scaling event: resize, no rollout (upstream `sync`).
pub async fn sync<O: Ops>(
    work: &mut Work,
    replicasets: &[Arc<ReplicaSet>],
    ops: &mut O,
) -> Result<(), Error> {
    let (new, old) = all_replicasets_and_sync_revision(work, replicasets, false, ops).await?;
    scale(&work.d, new.as_ref(), &old, ops).await?;
    if work.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
        cleanup(&work.d, &old, ops).await?;
    }
    let mut all = old;
    all.extend(new.clone());
    progress::sync_status(work, &all, new.as_deref(), ops).await
}
