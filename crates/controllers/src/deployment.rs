//! The Deployment controller: rolling updates and recreates over ReplicaSets, revisions,
//! rollbacks (`kubectl rollout undo` puts an old template back; its ReplicaSet becomes the
//! new one again) and the status `kubectl rollout status` reads. Ported from upstream's
//! `pkg/controller/deployment/{sync,rolling,recreate,progress}.go`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::events::{EventType, Recorder};
use crate::replicaset::controller_uid;
use crate::runner::{Caches, Change, key_of, run_controller, split_key};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Upstream's `rand.SafeEncodeString`: no vowels, no look-alikes.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes().map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char).collect()
}

/// The pod-template-hash: FNV-32a of the template's canonical JSON and the collision count.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let mut hash: u32 = 0x811c9dc5;
    let mut feed = |data: &[u8]| {
        for b in data {
            hash ^= *b as u32;
            hash = hash.wrapping_mul(0x01000193);
        }
    };
    feed(&bytes);
    if let Some(c) = collision_count {
        feed(c.to_string().as_bytes());
    }
    safe_encode(&hash.to_string())
}

fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    t
}

/// Upstream's `EqualIgnoreHash`.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

pub fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations().get(REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// Resolve maxSurge / maxUnavailable against `replicas` (surge rounds up, unavailable down;
/// both zero would deadlock, so unavailable becomes 1).
pub fn surge_and_unavailable(surge: Option<&IntOrString>, unavailable: Option<&IntOrString>, replicas: i32) -> (i32, i32) {
    let resolve = |v: Option<&IntOrString>, default: &str, round_up: bool| -> i32 {
        let percent = |p: &str| -> i32 {
            let n: f64 = p.trim_end_matches('%').parse().unwrap_or(0.0);
            let raw = n * replicas as f64 / 100.0;
            (if round_up { raw.ceil() } else { raw.floor() }) as i32
        };
        match v {
            Some(IntOrString::Int(n)) => *n,
            Some(IntOrString::String(s)) => percent(s),
            None => percent(default),
        }
    };
    let surge = resolve(surge, "25%", true).max(0);
    let mut unavailable = resolve(unavailable, "25%", false).max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas.max(0)))
}

fn replicas_of(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn available_of(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

/// The rolling-update plan for one step: the new ReplicaSet's target size, and how many
/// old replicas may go. Pure, so it can be checked exhaustively.
pub fn rolling_step(desired: i32, surge: i32, unavailable: i32, new_replicas: i32, new_available: i32, old: &[(i32, i32)]) -> (i32, i32) {
    let old_total: i32 = old.iter().map(|(r, _)| r).sum();
    let all = old_total + new_replicas;
    // Scale up the new ReplicaSet within maxSurge.
    let new_target = if new_replicas >= desired {
        desired
    } else {
        let room = (desired + surge - all).max(0);
        new_replicas + room.min(desired - new_replicas)
    };
    // Scale down old ones without going under desired - maxUnavailable available.
    let min_available = desired - unavailable;
    let new_unavailable = (new_target - new_available).max(0);
    let all_after = old_total + new_target;
    let max_down = (all_after - min_available - new_unavailable).max(0);
    (new_target, max_down.min(old_total))
}

struct Ctx {
    client: Client,
    caches: Arc<Caches>,
    recorder: Recorder,
}

fn owned_replicasets(caches: &Caches, d: &Deployment) -> Vec<Arc<ReplicaSet>> {
    let uid = d.uid().unwrap_or_default();
    let ns = d.namespace();
    let mut list: Vec<Arc<ReplicaSet>> =
        caches.replicasets.state().into_iter().filter(|r| r.namespace() == ns && controller_uid(r.as_ref()) == Some(uid.as_str())).collect();
    list.sort_by_key(|r| (r.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()).unwrap_or(0), r.name_any()));
    list
}

impl Ctx {
    async fn scale(&self, d: &Deployment, rs: &ReplicaSet, to: i32, max_replicas: i32) -> anyhow::Result<()> {
        let from = replicas_of(rs);
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let annotations_current = rs.annotations().get(DESIRED_REPLICAS) == Some(&desired.to_string())
            && rs.annotations().get(MAX_REPLICAS) == Some(&max_replicas.to_string());
        if from == to && annotations_current {
            return Ok(());
        }
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &rs.namespace().unwrap_or_default());
        let patch = serde_json::json!({
            "metadata": {"annotations": {DESIRED_REPLICAS: desired.to_string(), MAX_REPLICAS: max_replicas.to_string()}},
            "spec": {"replicas": to},
        });
        api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
        if from != to {
            let direction = if to > from { "up" } else { "down" };
            self.recorder
                .record(d, EventType::Normal, "ScalingReplicaSet", &format!("Scaled {direction} replica set {} from {from} to {to}", rs.name_any()))
                .await;
        }
        Ok(())
    }

    /// Find the ReplicaSet of the current template, creating it (or bumping a rolled-back
    /// one's revision) as needed. Returns it and the revision the deployment is at.
    async fn new_replicaset(&self, d: &Deployment, all: &[Arc<ReplicaSet>], initial: i32) -> anyhow::Result<(ReplicaSet, i64)> {
        let spec = d.spec.as_ref().ok_or_else(|| anyhow::anyhow!("deployment has no spec"))?;
        let ns = d.namespace().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let existing = all.iter().find(|r| r.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| equal_ignore_hash(t, &spec.template)));
        let max_old = all.iter().filter(|r| existing.is_none_or(|e| e.uid() != r.uid())).map(|r| revision_of(r)).max().unwrap_or(0);
        let copied: BTreeMap<String, String> = d
            .annotations()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(rs) = existing {
            let current = revision_of(rs);
            if current <= max_old {
                // A rollback: the old template is current again, so its ReplicaSet gets the next revision.
                let revision = max_old + 1;
                let mut history: Vec<String> = rs.annotations().get(REVISION_HISTORY).map(|h| h.split(',').map(str::to_string).collect()).unwrap_or_default();
                if current > 0 {
                    history.push(current.to_string());
                }
                let mut annotations = copied.clone();
                annotations.insert(REVISION.into(), revision.to_string());
                annotations.insert(REVISION_HISTORY.into(), history.join(","));
                let patch = serde_json::json!({"metadata": {"annotations": annotations}});
                let updated = api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
                return Ok((updated, revision));
            }
            return Ok(((**rs).clone(), current));
        }
        let collisions = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&spec.template, collisions);
        let mut template = spec.template.clone();
        template.metadata.get_or_insert_with(Default::default).labels.get_or_insert_with(Default::default).insert(HASH_LABEL.into(), hash.clone());
        let mut selector: LabelSelector = spec.selector.clone();
        selector.match_labels.get_or_insert_with(Default::default).insert(HASH_LABEL.into(), hash.clone());
        let revision = max_old + 1;
        let mut annotations = copied;
        let desired = spec.replicas.unwrap_or(1);
        let (surge, _) = self.surge(d);
        annotations.insert(REVISION.into(), revision.to_string());
        annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
        annotations.insert(MAX_REPLICAS.into(), (desired + surge).to_string());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", d.name_any())),
                namespace: Some(ns.clone()),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: d.name_any(),
                    uid: d.uid().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec { replicas: Some(initial), min_ready_seconds: spec.min_ready_seconds, selector, template: Some(template) }),
            status: None,
        };
        match api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                self.recorder.record(d, EventType::Normal, "ScalingReplicaSet", &format!("Scaled up replica set {} from 0 to {initial}", created.name_any())).await;
                Ok((created, revision))
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // A ReplicaSet of that name with another template: a hash collision. Bump the
                // count so the next attempt hashes differently (upstream's collisionCount).
                let count = collisions.unwrap_or(0) + 1;
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
                api.patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(&serde_json::json!({"status": {"collisionCount": count}}))).await?;
                anyhow::bail!("pod-template-hash collision for {}; retrying with collisionCount {count}", d.name_any())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn surge(&self, d: &Deployment) -> (i32, i32) {
        let spec = d.spec.as_ref();
        let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
        let rolling = spec.and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
        surge_and_unavailable(rolling.and_then(|r| r.max_surge.as_ref()), rolling.and_then(|r| r.max_unavailable.as_ref()), desired)
    }
}

fn condition(type_: &str, status: bool, reason: &str, message: String, old: Option<&DeploymentCondition>) -> DeploymentCondition {
    let status = if status { "True" } else { "False" }.to_string();
    let now = Time(jiff::Timestamp::now());
    let transition = match old {
        Some(o) if o.status == status => o.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    let update = match old {
        Some(o) if o.status == status && o.reason.as_deref() == Some(reason) => o.last_update_time.clone(),
        _ => Some(now),
    };
    DeploymentCondition { type_: type_.into(), status, reason: Some(reason.into()), message: Some(message), last_transition_time: transition, last_update_time: update }
}

async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Option<Duration>> {
    let (ns, name) = split_key(&key);
    let Some(d) = ctx.caches.deployments.state().into_iter().find(|x| x.namespace().as_deref() == Some(ns) && x.name_any() == name) else {
        return Ok(None);
    };
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let spec = d.spec.clone().ok_or_else(|| anyhow::anyhow!("deployment has no spec"))?;
    let desired = spec.replicas.unwrap_or(1);
    let (surge, unavailable) = ctx.surge(&d);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let all = owned_replicasets(&ctx.caches, &d);
    let has_new = all.iter().any(|r| r.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| equal_ignore_hash(t, &spec.template)));
    let old_active: i32 = all.iter().filter(|r| !r.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| equal_ignore_hash(t, &spec.template))).map(|r| replicas_of(r)).sum();
    let initial = if has_new {
        0
    } else if recreate {
        0
    } else {
        let (target, _) = rolling_step(desired, surge, unavailable, 0, 0, &[(old_active, 0)]);
        target
    };
    let (new_rs, revision) = ctx.new_replicaset(&d, &all, initial).await?;
    let old: Vec<Arc<ReplicaSet>> = all.iter().filter(|r| r.uid() != new_rs.uid()).cloned().collect();

    if !spec.paused.unwrap_or(false) {
        if recreate {
            let old_running: i32 = old.iter().map(|r| r.status.as_ref().map(|s| s.replicas).unwrap_or(0)).sum();
            for rs in old.iter().filter(|r| replicas_of(r) > 0) {
                ctx.scale(&d, rs, 0, desired).await?;
            }
            if old_running == 0 && old.iter().all(|r| replicas_of(r) == 0) {
                ctx.scale(&d, &new_rs, desired, desired).await?;
            }
        } else {
            let old_sizes: Vec<(i32, i32)> = old.iter().map(|r| (replicas_of(r), available_of(r))).collect();
            let (new_target, mut scale_down) = rolling_step(desired, surge, unavailable, replicas_of(&new_rs), available_of(&new_rs), &old_sizes);
            ctx.scale(&d, &new_rs, new_target, desired + surge).await?;
            // Unhealthy old replicas go first, then the oldest ReplicaSets.
            let mut order: Vec<&Arc<ReplicaSet>> = old.iter().filter(|r| replicas_of(r) > 0).collect();
            order.sort_by_key(|r| (available_of(r) >= replicas_of(r), revision_of(r)));
            for rs in order {
                if scale_down == 0 {
                    break;
                }
                let unhealthy = (replicas_of(rs) - available_of(rs)).max(0);
                let cut = if unhealthy > 0 { unhealthy.min(scale_down) } else { replicas_of(rs).min(scale_down) };
                ctx.scale(&d, rs, replicas_of(rs) - cut, desired + surge).await?;
                scale_down -= cut;
            }
        }
        // Keep only revisionHistoryLimit old, empty ReplicaSets.
        let limit = spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        let mut empty: Vec<&Arc<ReplicaSet>> =
            old.iter().filter(|r| replicas_of(r) == 0 && r.status.as_ref().map(|s| s.replicas).unwrap_or(0) == 0).collect();
        if empty.len() > limit {
            empty.sort_by_key(|r| revision_of(r));
            let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
            for rs in &empty[..empty.len() - limit] {
                let _ = api.delete(&rs.name_any(), &DeleteParams::background()).await;
            }
        }
    }

    // The deployment carries the revision of its current ReplicaSet.
    if d.annotations().get(REVISION) != Some(&revision.to_string()) {
        let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
        let patch = serde_json::json!({"metadata": {"annotations": {REVISION: revision.to_string()}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }

    // Status from the cache (the ReplicaSet controller keeps their status current).
    let fresh = owned_replicasets(&ctx.caches, &d);
    let status_of = |r: &ReplicaSet| r.status.clone().unwrap_or_default();
    let total: i32 = fresh.iter().map(|r| status_of(r).replicas).sum();
    let ready: i32 = fresh.iter().map(|r| status_of(r).ready_replicas.unwrap_or(0)).sum();
    let available: i32 = fresh.iter().map(|r| status_of(r).available_replicas.unwrap_or(0)).sum();
    let new_fresh = fresh.iter().find(|r| r.uid() == new_rs.uid()).map(|r| (**r).clone()).unwrap_or(new_rs.clone());
    let updated = status_of(&new_fresh).replicas;
    let old_status = d.status.clone().unwrap_or_default();
    let old_condition = |t: &str| old_status.conditions.as_ref().and_then(|c| c.iter().find(|c| c.type_ == t).cloned());
    let min_available = desired - unavailable;
    let available_cond = if available >= min_available {
        condition("Available", true, "MinimumReplicasAvailable", "Deployment has minimum availability.".into(), old_condition("Available").as_ref())
    } else {
        condition("Available", false, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".into(), old_condition("Available").as_ref())
    };
    let complete = updated == desired && total == desired && status_of(&new_fresh).available_replicas.unwrap_or(0) == desired;
    let progressing = if complete {
        condition("Progressing", true, "NewReplicaSetAvailable", format!("ReplicaSet \"{}\" has successfully progressed.", new_rs.name_any()), old_condition("Progressing").as_ref())
    } else {
        condition("Progressing", true, "ReplicaSetUpdated", format!("ReplicaSet \"{}\" is progressing.", new_rs.name_any()), old_condition("Progressing").as_ref())
    };
    let status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired - available).max(0)),
        conditions: Some(vec![available_cond, progressing]),
        collision_count: old_status.collision_count,
        terminating_replicas: None,
    };
    let differs = |a: &DeploymentStatus, b: &DeploymentStatus| {
        let strip = |s: &DeploymentStatus| {
            let mut s = s.clone();
            for c in s.conditions.iter_mut().flatten() {
                c.last_update_time = None;
            }
            s
        };
        strip(a) != strip(b)
    };
    if differs(&old_status, &status) {
        let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&serde_json::json!({"status": status}))).await?;
    }
    Ok(None)
}

pub async fn run(client: Client, caches: Arc<Caches>, recorder: Recorder) -> anyhow::Result<()> {
    let ctx = Arc::new(Ctx { client, caches: caches.clone(), recorder });
    run_controller(
        "deployment",
        caches,
        |c: &Caches| c.deployments.state().iter().map(|d| key_of(d.as_ref())).collect(),
        |c: &Caches, change: &Change| match change {
            Change::Deployment(d) => vec![key_of(d.as_ref())],
            Change::ReplicaSet(rs) => match controller_uid(rs.as_ref()) {
                Some(uid) => c.deployments.state().iter().filter(|d| d.uid().as_deref() == Some(uid)).map(|d| key_of(d.as_ref())).collect(),
                None => Vec::new(),
            },
            _ => Vec::new(),
        },
        move |key| reconcile(ctx.clone(), key),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surge_rounds_up_and_unavailable_down() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(surge_and_unavailable(None, None, 3), (1, 0));
        assert_eq!(surge_and_unavailable(Some(&IntOrString::Int(3)), Some(&IntOrString::Int(0)), 3), (3, 0));
        assert_eq!(surge_and_unavailable(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 3), (0, 1));
        assert_eq!(surge_and_unavailable(Some(&pct("50%")), Some(&pct("50%")), 3), (2, 1));
    }

    /// Simulate a rollout step by step (pods become available one step after they exist)
    /// and check the invariants: never under desired - maxUnavailable available, never over
    /// desired + maxSurge pods, and it finishes.
    fn simulate(desired: i32, surge: i32, unavailable: i32) {
        let (mut new_r, mut new_avail, mut old_r, mut old_avail) = (0, 0, desired, desired);
        for _ in 0..100 {
            let (target, down) = rolling_step(desired, surge, unavailable, new_r, new_avail, &[(old_r, old_avail)]);
            new_r = target;
            old_r -= down;
            old_avail = old_avail.min(old_r);
            assert!(new_r + old_r <= desired + surge, "surge exceeded");
            assert!(new_avail + old_avail >= desired - unavailable, "availability broken: new {new_avail} old {old_avail}");
            if new_r == desired && old_r == 0 && new_avail == desired {
                return;
            }
            new_avail = new_r;
        }
        panic!("rollout did not finish");
    }

    #[test]
    fn rolling_updates_keep_their_promises() {
        for desired in 1..6 {
            for surge in 0..4 {
                for unavailable in 0..3 {
                    if surge == 0 && unavailable == 0 {
                        continue;
                    }
                    simulate(desired, surge, unavailable.min(desired));
                }
            }
        }
    }

    #[test]
    fn the_sample_rollout_surges_three_and_keeps_three_available() {
        assert_eq!(rolling_step(3, 3, 0, 0, 0, &[(3, 3)]), (3, 0));
        assert_eq!(rolling_step(3, 3, 0, 3, 2, &[(3, 3)]), (3, 2));
        assert_eq!(rolling_step(3, 3, 0, 3, 3, &[(3, 3)]), (3, 3));
    }

    #[test]
    fn hash_ignores_nothing_but_is_stable() {
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}})).unwrap();
        assert_eq!(template_hash(&t, None), template_hash(&t.clone(), None));
        assert_ne!(template_hash(&t, None), template_hash(&t, Some(1)));
        let mut with_hash = t.clone();
        with_hash.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert(HASH_LABEL.into(), "abc".into());
        assert!(equal_ignore_hash(&t, &with_hash));
        assert!(template_hash(&t, None).chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
