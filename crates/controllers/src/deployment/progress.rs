//! Deployment status and conditions (upstream `progress.go` and `sync.go`'s
//! `calculateStatus`): the replica counts `kubectl rollout status` reads, Available
//! (MinimumReplicasAvailable) and Progressing (NewReplicaSetCreated, FoundNewReplicaSet,
//! ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::sync::{Ops, Work};
use super::util::*;
use crate::error::Error;

/// Upstream's default `progressDeadlineSeconds` (the server defaults it; an absent
/// value here means the same).
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

/// The condition reasons upstream uses, spelled as it spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NewReplicaSetCreated,
    FoundNewReplicaSet,
    ReplicaSetUpdated,
    NewReplicaSetAvailable,
    ProgressDeadlineExceeded,
    FailedCreate,
    Paused,
    Resumed,
    MinimumReplicasAvailable,
    MinimumReplicasUnavailable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NewReplicaSetCreated => "NewReplicaSetCreated",
            Reason::FoundNewReplicaSet => "FoundNewReplicaSet",
            Reason::ReplicaSetUpdated => "ReplicaSetUpdated",
            Reason::NewReplicaSetAvailable => "NewReplicaSetAvailable",
            Reason::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            Reason::FailedCreate => "ReplicaSetCreateError",
            Reason::Paused => "DeploymentPaused",
            Reason::Resumed => "DeploymentResumed",
            Reason::MinimumReplicasAvailable => "MinimumReplicasAvailable",
            Reason::MinimumReplicasUnavailable => "MinimumReplicasUnavailable",
        }
    }
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: Reason,
    message: String,
) -> DeploymentCondition {
    let now = Some(Time(jiff::Timestamp::now()));
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.as_str().into()),
        message: Some(message),
        last_update_time: now.clone(),
        last_transition_time: now,
    }
}

pub fn status_condition<'a>(
    status: Option<&'a DeploymentStatus>,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn condition<'a>(d: &'a Deployment, type_: &str) -> Option<&'a DeploymentCondition> {
    status_condition(d.status.as_ref(), type_)
}

/// Upstream `SetDeploymentCondition`: same status and reason → unchanged; same status →
/// keep the transition time; the condition moves to the end.
pub fn set_status_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(current) = conditions.iter().find(|c| c.type_ == condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != condition.type_);
    conditions.push(condition);
}

pub fn set_condition(d: &mut Deployment, condition: DeploymentCondition) {
    set_status_condition(d.status.get_or_insert_with(Default::default), condition);
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
    }
}

fn progress_deadline(d: &Deployment) -> Option<i32> {
    match d.spec.as_ref().and_then(|s| s.progress_deadline_seconds) {
        Some(i32::MAX) => None,
        Some(s) => Some(s),
        None => Some(DEFAULT_PROGRESS_DEADLINE_SECONDS),
    }
}

pub fn has_progress_deadline(d: &Deployment) -> bool {
    progress_deadline(d).is_some()
}

/// Upstream `calculateStatus`.
pub fn calculate_status(
    all: &[Arc<ReplicaSet>],
    new: Option<&ReplicaSet>,
    d: &Deployment,
) -> DeploymentStatus {
    let available: i32 = all.iter().map(|r| available_of(r)).sum();
    let total: i32 = all.iter().map(|r| replicas_of(r)).sum();
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(all.iter().map(|r| actual_of(r)).sum()),
        updated_replicas: Some(new.map(actual_of).unwrap_or(0)),
        ready_replicas: Some(all.iter().map(|r| ready_of(r)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        conditions: old.conditions,
        collision_count: old.collision_count,
        terminating_replicas: old.terminating_replicas,
    };
    let condition = if available >= desired_of(d) - max_unavailable(d) {
        new_condition(
            "Available",
            "True",
            Reason::MinimumReplicasAvailable,
            "Deployment has minimum availability.".into(),
        )
    } else {
        new_condition(
            "Available",
            "False",
            Reason::MinimumReplicasUnavailable,
            "Deployment does not have minimum availability.".into(),
        )
    };
    set_status_condition(&mut status, condition);
    status
}

/// Upstream `DeploymentComplete`: what `kubectl rollout status` waits for.
pub fn deployment_complete(d: &Deployment, status: Option<&DeploymentStatus>) -> bool {
    let desired = desired_of(d);
    let Some(s) = status else { return false };
    s.updated_replicas == Some(desired)
        && s.replicas == Some(desired)
        && s.available_replicas == Some(desired)
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Upstream `DeploymentProgressing`: any counter moved the right way since last time.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// Upstream `DeploymentTimedOut`.
pub fn deployment_timed_out(
    d: &Deployment,
    status: &DeploymentStatus,
    now: jiff::Timestamp,
) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = status_condition(Some(status), "Progressing") else {
        return false;
    };
    if c.reason.as_deref() == Some(Reason::NewReplicaSetAvailable.as_str()) {
        return false;
    }
    if c.reason.as_deref() == Some(Reason::ProgressDeadlineExceeded.as_str()) {
        return true;
    }
    c.last_update_time
        .as_ref()
        .is_some_and(|t| now.duration_since(t.0).as_secs() > i64::from(deadline))
}

/// When to look again for a stuck rollout (upstream `requeueStuckDeployment`).
pub fn stuck_requeue(
    d: &Deployment,
    status: &DeploymentStatus,
    now: jiff::Timestamp,
) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let c = status_condition(Some(status), "Progressing")?;
    if deployment_complete(d, Some(status))
        || c.reason.as_deref() == Some(Reason::ProgressDeadlineExceeded.as_str())
    {
        return None;
    }
    let updated = c.last_update_time.as_ref()?.0;
    let elapsed = now.duration_since(updated).as_secs();
    let left = i64::from(deadline) - elapsed;
    Some(Duration::from_secs(left.max(0) as u64 + 1))
}

/// Upstream `syncRolloutStatus`'s new status: counts plus the Progressing verdict.
pub fn rollout_status(
    d: &Deployment,
    all: &[Arc<ReplicaSet>],
    new: Option<&ReplicaSet>,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(all, new, d);
    if !has_progress_deadline(d) {
        remove_condition(&mut status, "Progressing");
        return status;
    }
    let current = condition(d, "Progressing");
    let complete_already = status.replicas == status.updated_replicas
        && current
            .is_some_and(|c| c.reason.as_deref() == Some(Reason::NewReplicaSetAvailable.as_str()));
    if !complete_already {
        let rs_name = new.map(|n| n.name_any());
        let subject = |what: &str| match &rs_name {
            Some(n) => format!("ReplicaSet \"{n}\" {what}"),
            None => format!("Deployment \"{}\" {what}", d.name_any()),
        };
        if deployment_complete(d, Some(&status)) {
            set_status_condition(
                &mut status,
                new_condition(
                    "Progressing",
                    "True",
                    Reason::NewReplicaSetAvailable,
                    subject("has successfully progressed."),
                ),
            );
        } else if deployment_progressing(d, &status) {
            // Progress refreshes lastUpdateTime even with the same reason, which is what
            // the deadline is measured from.
            let mut c = new_condition(
                "Progressing",
                "True",
                Reason::ReplicaSetUpdated,
                subject("is progressing."),
            );
            if let Some(current) = current.filter(|c| c.status == "True") {
                c.last_transition_time = current.last_transition_time.clone();
            }
            remove_condition(&mut status, "Progressing");
            set_status_condition(&mut status, c);
        } else if deployment_timed_out(d, &status, now) {
            set_status_condition(
                &mut status,
                new_condition(
                    "Progressing",
                    "False",
                    Reason::ProgressDeadlineExceeded,
                    subject("has timed out progressing."),
                ),
            );
        }
    }
    // Carry a ReplicaSet's ReplicaFailure over (upstream `getReplicaFailures`).
    let failure = new
        .into_iter()
        .chain(all.iter().map(|r| r.as_ref()))
        .find_map(|r| {
            r.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "ReplicaFailure")
                .cloned()
        });
    match failure {
        Some(f) => set_status_condition(
            &mut status,
            DeploymentCondition {
                type_: "ReplicaFailure".into(),
                status: f.status,
                reason: f.reason,
                message: f.message,
                last_update_time: f.last_transition_time.clone(),
                last_transition_time: f.last_transition_time,
            },
        ),
        None => remove_condition(&mut status, "ReplicaFailure"),
    }
    status
}

/// Write `status` if it differs from what the cache had.
async fn write<O: Ops>(
    work: &mut Work,
    status: DeploymentStatus,
    ops: &mut O,
) -> Result<(), Error> {
    if work.original_status.as_ref() != Some(&status) {
        ops.update_status(&work.d, &status).await?;
        work.original_status = Some(status.clone());
    }
    work.d.status = Some(status);
    Ok(())
}

pub async fn sync_rollout_status<O: Ops>(
    work: &mut Work,
    all: &[Arc<ReplicaSet>],
    new: Option<&Arc<ReplicaSet>>,
    ops: &mut O,
) -> Result<(), Error> {
    let status = rollout_status(
        &work.d,
        all,
        new.map(|n| n.as_ref()),
        jiff::Timestamp::now(),
    );
    write(work, status, ops).await
}

/// Counts and Available only (upstream `syncDeploymentStatus`, for paused and scaling syncs).
pub async fn sync_status<O: Ops>(
    work: &mut Work,
    all: &[Arc<ReplicaSet>],
    new: Option<&ReplicaSet>,
    ops: &mut O,
) -> Result<(), Error> {
    let status = calculate_status(all, new, &work.d);
    write(work, status, ops).await
}

/// Upstream `checkPausedConditions`: Progressing Unknown while paused, and on resume.
pub fn check_paused_conditions(d: &mut Deployment) {
    if !has_progress_deadline(d) {
        return;
    }
    let current = condition(d, "Progressing").and_then(|c| c.reason.clone());
    if current.as_deref() == Some(Reason::ProgressDeadlineExceeded.as_str()) {
        return;
    }
    let paused_recorded = current.as_deref() == Some(Reason::Paused.as_str());
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    if paused && !paused_recorded {
        set_condition(
            d,
            new_condition(
                "Progressing",
                "Unknown",
                Reason::Paused,
                "Deployment is paused".into(),
            ),
        );
    } else if !paused && paused_recorded {
        set_condition(
            d,
            new_condition(
                "Progressing",
                "Unknown",
                Reason::Resumed,
                "Deployment is resumed".into(),
            ),
        );
    }
}
