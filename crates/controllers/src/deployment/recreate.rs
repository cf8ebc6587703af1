//! Recreate (upstream `recreate.go`): scale every old ReplicaSet to zero, wait until none
//! of their pods runs, then create or scale up the new one.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::progress;
use super::sync::{Ops, Work, all_replicasets_and_sync_revision, cleanup, scale_and_record};
use super::util::*;
use crate::error::Error;
use crate::podutil::{controller_of, is_finished};

/// Upstream `oldPodsRunning`: old ReplicaSets still report pods, or one of their pods
/// (in `pods`) has not finished.
pub fn old_pods_running(
    new: Option<&ReplicaSet>,
    old: &[Arc<ReplicaSet>],
    pods: &[Arc<Pod>],
) -> bool {
    if old.iter().map(|r| actual_of(r)).sum::<i32>() > 0 {
        return true;
    }
    let old_uids: Vec<String> = old.iter().filter_map(|r| r.uid()).collect();
    let new_uid = new.and_then(|n| n.uid());
    pods.iter().any(|p| {
        controller_of(p.as_ref())
            .is_some_and(|o| old_uids.contains(&o.uid) && Some(&o.uid) != new_uid.as_ref())
            && !is_finished(p)
    })
}

/// One Recreate sync.
pub async fn rollout<O: Ops>(
    work: &mut Work,
    replicasets: &[Arc<ReplicaSet>],
    pods: &[Arc<Pod>],
    ops: &mut O,
) -> Result<(), Error> {
    // Do not create the new ReplicaSet yet, so nothing scales up before old pods are gone.
    let (mut new, mut old) =
        all_replicasets_and_sync_revision(work, replicasets, false, ops).await?;
    let mut all: Vec<Arc<ReplicaSet>> = old.iter().cloned().chain(new.clone()).collect();

    let mut scaled_down = false;
    for rs in active(&old) {
        let (scaled, updated) = scale_and_record(&work.d, &rs, 0, ops).await?;
        scaled_down |= scaled;
        super::rolling::replace(&mut all, &updated);
    }
    if scaled_down || old_pods_running(new.as_deref(), &old, pods) {
        return progress::sync_rollout_status(work, &all, new.as_ref(), ops).await;
    }
    if new.is_none() {
        (new, old) = all_replicasets_and_sync_revision(work, replicasets, true, ops).await?;
        all = old.iter().cloned().chain(new.clone()).collect();
    }
    if let Some(n) = new.clone() {
        let (_, updated) = scale_and_record(&work.d, &n, desired_of(&work.d), ops).await?;
        super::rolling::replace(&mut all, &updated);
        new = Some(updated);
    }
    if progress::deployment_complete(&work.d, work.d.status.as_ref()) {
        cleanup(&work.d, &old, ops).await?;
    }
    progress::sync_rollout_status(work, &all, new.as_ref(), ops).await
}
