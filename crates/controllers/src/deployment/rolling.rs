//! RollingUpdate (upstream `rolling.go`): grow the new ReplicaSet within maxSurge, then
//! shrink old ones without going under `replicas - maxUnavailable` available pods. One
//! step per sync; the ReplicaSets' status changes trigger the next.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::progress;
use super::sync::{Ops, Work, all_replicasets_and_sync_revision, cleanup, scale_and_record};
use super::util::*;
use crate::error::Error;

/// Upstream `NewRSNewReplicas`: the size the new ReplicaSet may grow to now.
pub fn new_rs_new_replicas(d: &Deployment, all: &[Arc<ReplicaSet>], new: &ReplicaSet) -> i32 {
    let desired = desired_of(d);
    if !is_rolling(d) {
        return desired;
    }
    let current: i32 = all.iter().map(|r| replicas_of(r)).sum();
    let max_total = desired + max_surge(d);
    if current >= max_total {
        return replicas_of(new);
    }
    let scale_up = (max_total - current).min(desired - replicas_of(new));
    replicas_of(new) + scale_up
}

/// The size to give the new ReplicaSet this step, if it should change.
pub fn new_replicaset_target(
    d: &Deployment,
    all: &[Arc<ReplicaSet>],
    new: &ReplicaSet,
) -> Option<i32> {
    let desired = desired_of(d);
    match replicas_of(new) {
        n if n == desired => None,
        n if n > desired => Some(desired),
        _ => Some(new_rs_new_replicas(d, all, new)),
    }
}

/// How far old ReplicaSets may shrink this step (upstream `reconcileOldReplicaSets`):
/// first their unhealthy replicas, then healthy ones while enough stay available.
/// Returns the new sizes, oldest ReplicaSet first.
pub fn old_replicaset_targets(
    d: &Deployment,
    all: &[Arc<ReplicaSet>],
    old: &[Arc<ReplicaSet>],
    new: &ReplicaSet,
) -> Vec<(Arc<ReplicaSet>, i32)> {
    let old_active = active(old);
    let old_count: i32 = old_active.iter().map(|r| replicas_of(r)).sum();
    if old_count == 0 {
        return Vec::new();
    }
    let all_count: i32 = all.iter().map(|r| replicas_of(r)).sum();
    let min_available = desired_of(d) - max_unavailable(d);
    let new_unavailable = replicas_of(new) - available_of(new);
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut sizes: Vec<(Arc<ReplicaSet>, i32)> = {
        let mut sorted = old_active;
        sort_by_creation(&mut sorted);
        sorted.into_iter().map(|r| {
            let size = replicas_of(&r);
            (r, size)
        })
    }
    .collect();

    // Unhealthy replicas first: they would otherwise block the rollout (kubernetes#16737).
    let mut cleaned = 0;
    for (rs, size) in sizes.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = *size - available_of(rs);
        if *size == 0 || unhealthy <= 0 {
            continue;
        }
        let cut = (max_scaled_down - cleaned).min(unhealthy);
        *size -= cut;
        cleaned += cut;
    }

    // Then healthy ones, only while more than minAvailable pods are available. Counted
    // over the active ReplicaSets as upstream does, and never more than a ReplicaSet's
    // size: a status not yet caught up with an earlier scale-down must not let us
    // take the same pods away twice.
    let available: i32 = sizes
        .iter()
        .map(|(r, _)| available_of(r).min(replicas_of(r)))
        .sum::<i32>()
        + available_of(new).min(replicas_of(new));
    if available > min_available {
        let budget = available - min_available;
        let mut cut_total = 0;
        for (_, size) in sizes.iter_mut() {
            if cut_total >= budget {
                break;
            }
            if *size == 0 {
                continue;
            }
            let cut = (*size).min(budget - cut_total);
            *size -= cut;
            cut_total += cut;
        }
    }
    sizes
        .into_iter()
        .filter(|(rs, size)| replicas_of(rs) != *size)
        .collect()
}

/// One RollingUpdate sync (upstream `rolloutRolling`).
pub async fn rollout<O: Ops>(
    work: &mut Work,
    replicasets: &[Arc<ReplicaSet>],
    ops: &mut O,
) -> Result<(), Error> {
    let (new, old) = all_replicasets_and_sync_revision(work, replicasets, true, ops).await?;
    let Some(new) = new else {
        return Ok(());
    };
    let mut all: Vec<Arc<ReplicaSet>> = old.clone();
    all.push(new.clone());

    if let Some(target) = new_replicaset_target(&work.d, &all, &new) {
        let (scaled, updated) = scale_and_record(&work.d, &new, target, ops).await?;
        if scaled {
            replace(&mut all, &updated);
            return progress::sync_rollout_status(work, &all, Some(&updated), ops).await;
        }
    }

    let mut scaled_down = false;
    for (rs, size) in old_replicaset_targets(&work.d, &all, &old, &new) {
        let (scaled, updated) = scale_and_record(&work.d, &rs, size, ops).await?;
        scaled_down |= scaled;
        replace(&mut all, &updated);
    }
    if scaled_down {
        return progress::sync_rollout_status(work, &all, Some(&new), ops).await;
    }
    if progress::deployment_complete(&work.d, work.d.status.as_ref()) {
        cleanup(&work.d, &old, ops).await?;
    }
    progress::sync_rollout_status(work, &all, Some(&new), ops).await
}

/// Swap the updated copy of a ReplicaSet into a list.
pub fn replace(list: &mut [Arc<ReplicaSet>], updated: &Arc<ReplicaSet>) {
    for rs in list.iter_mut() {
        if rs.metadata.uid == updated.metadata.uid {
            *rs = updated.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicaset(name: &str, created: i64, replicas: i32, available: i32) -> Arc<ReplicaSet> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "uid": name, "creationTimestamp": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::from_second(created).unwrap())},
                "spec": {"replicas": replicas, "selector": {}},
                "status": {"replicas": replicas, "availableReplicas": available}
            }))
            .unwrap(),
        )
    }

    fn deployment(surge: i32, unavailable: i32) -> Deployment {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "d"}, "spec": {"replicas": 3, "selector": {}, "template": {},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}}))
        .unwrap()
    }

    #[test]
    fn a_stale_status_cannot_take_the_same_pods_twice() {
        // The old ReplicaSet was already cut to 2 but its status still says 3 available.
        let d = deployment(3, 0);
        let old = replicaset("old", 1, 2, 3);
        let new = replicaset("new", 2, 3, 2);
        let all = vec![old.clone(), new.clone()];
        let targets: Vec<i32> = old_replicaset_targets(&d, &all, std::slice::from_ref(&old), &new)
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        // At most 2 old pods remain and 2 new are available: one more may go, not two.
        assert_eq!(targets, vec![1]);
    }

    #[test]
    fn unhealthy_old_pods_go_first_and_new_grows_within_surge() {
        let d = deployment(1, 0);
        let old = replicaset("old", 1, 3, 1);
        let new = replicaset("new", 2, 1, 0);
        let all = vec![old.clone(), new.clone()];
        // 4 pods, minAvailable 3, the new one unavailable: nothing may go yet…
        assert!(old_replicaset_targets(&d, &all, std::slice::from_ref(&old), &new).is_empty());
        // …and the new ReplicaSet may not grow past 3 + 1 in total.
        assert_eq!(new_replicaset_target(&d, &all, &new), Some(1));
        let d = deployment(1, 1);
        // minAvailable 2 with the new pod still unavailable: 4 - 2 - 1 = one of the two
        // unhealthy old pods may go, and no healthy one.
        let targets: Vec<i32> = old_replicaset_targets(&d, &all, std::slice::from_ref(&old), &new)
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(targets, vec![2]);
    }
}
