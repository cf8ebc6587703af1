//! The ReplicaSet controller (upstream `pkg/controller/replicaset/replica_set.go`): keep
//! `spec.replicas` active pods matching the selector and owned by the ReplicaSet.
//!
//! ```text
//!  reconcile(rs):
//!    expectations met? ─┐
//!    claim pods ────────┤ adopt matching orphans, release owned pods that stopped matching
//!    manage replicas ◄──┘ (only when expectations are met)
//!        too few:  create in slow-start batches 1, 2, 4, … from the template
//!        too many: delete the lowest-ranked (unscheduled, pending, not ready, doubled up,
//!                  ready for less time, restarted more, youngest)
//!    status: replicas, fullyLabeled, ready, available (minReadySeconds), observedGeneration,
//!            ReplicaFailure condition while creates/deletes fail
//! ```

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use crate::error::{Context, Error, status_code};
use crate::expectations::Expectations;
use crate::informer::{Informer, Seen, to_triggers};
use crate::labels;
use crate::podutil::{
    controller_of, controller_ref, is_active, is_available, is_ready, key_of, phase, ready_since,
    until_available,
};
use crate::retry::Backoff;
use podium_client::events::{EventType, Recorder};

/// Upstream's `BurstReplicas`: the most pods created or deleted in one sync.
pub const BURST_REPLICAS: usize = 500;
/// Annotation lowering a pod's cost of deletion (upstream `PodDeletionCost`).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// Which pods a ReplicaSet keeps, takes and lets go (upstream `ClaimPods`).
#[derive(Debug, Default)]
pub struct Claim {
    pub owned: Vec<Arc<Pod>>,
    pub adopt: Vec<Arc<Pod>>,
    pub release: Vec<Arc<Pod>>,
}

/// Sort active pods of `rs`'s namespace into owned, to adopt, and to release.
pub fn claim(rs: &ReplicaSet, pods: &[Arc<Pod>]) -> Claim {
    let uid = rs.uid().unwrap_or_default();
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let selector = rs.spec.as_ref().map(|s| &s.selector);
    let matches = |pod: &Pod| selector.is_some_and(|s| labels::matches(s, pod.labels()));
    let mut claim = Claim::default();
    for pod in pods
        .iter()
        .filter(|p| p.namespace() == rs.namespace() && is_active(p))
    {
        match controller_of(pod.as_ref()) {
            Some(owner) if owner.uid != uid => {}
            Some(_) if matches(pod) => claim.owned.push(pod.clone()),
            Some(_) if !deleting => claim.release.push(pod.clone()),
            Some(_) => {}
            None if !deleting && matches(pod) => claim.adopt.push(pod.clone()),
            None => {}
        }
    }
    claim
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i64 {
    pod.annotations()
        .get(POD_DELETION_COST)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// Upstream's `afterOrZero`: a missing time sorts first, then the later one.
fn after_or_zero(a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

/// Upstream's `ActivePodsWithRanks.Less`: which of two pods to delete first. `rank` is
/// how many related pods share the pod's node.
fn delete_first(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    let (node_a, node_b) = (node(a), node(b));
    if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
        return if node_a.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    phase_ordinal(a)
        .cmp(&phase_ordinal(b))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(|| {
            if is_ready(a) && is_ready(b) {
                after_or_zero(ready_since(a), ready_since(b))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
        .then_with(|| {
            after_or_zero(
                a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
            )
        })
}

/// The `count` pods to delete from `pods`, ranked against `related` pods (those of
/// the ReplicaSet's siblings too) sharing their node.
pub fn pods_to_delete(pods: &[Arc<Pod>], related: &[Arc<Pod>], count: usize) -> Vec<Arc<Pod>> {
    let mut on_node: HashMap<String, usize> = HashMap::new();
    for pod in related.iter().filter(|p| is_active(p)) {
        *on_node
            .entry(
                pod.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default(),
            )
            .or_default() += 1;
    }
    let rank = |p: &Pod| {
        on_node
            .get(
                &p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default(),
            )
            .copied()
            .unwrap_or(0)
    };
    let mut ranked: Vec<(usize, Arc<Pod>)> = pods.iter().map(|p| (rank(p), p.clone())).collect();
    ranked.sort_by(|(ra, a), (rb, b)| delete_first(a, *ra, b, *rb));
    ranked.into_iter().take(count).map(|(_, p)| p).collect()
}

/// A pod from the ReplicaSet's template (upstream `GetPodFromTemplate`).
pub fn pod_from_template(rs: &ReplicaSet) -> Result<Pod, Error> {
    let invalid = |field| Error::Invalid {
        kind: "ReplicaSet",
        key: key_of(rs),
        field,
    };
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| invalid("spec.template"))?;
    let meta = template.metadata.unwrap_or_default();
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(rs)]),
            ..Default::default()
        },
        spec: Some(template.spec.ok_or_else(|| invalid("spec.template.spec"))?),
        status: None,
    })
}

/// Batch sizes for creating `count` pods: 1, 2, 4, … (upstream `slowStartBatch`), so a
/// template the server rejects costs one request, not hundreds.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let (mut left, mut size) = (count, 1);
    while left > 0 {
        let batch = size.min(left);
        batches.push(batch);
        left -= batch;
        size *= 2;
    }
    batches
}

/// The status upstream's `calculateStatus` computes from the owned active pods.
pub fn calculate_status(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    manage_error: Option<&Error>,
    now: jiff::Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let wanted = spec.and_then(|s| s.replicas).unwrap_or(1);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut status = rs.status.clone().unwrap_or_default();
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas = Some(
        pods.iter()
            .filter(|p| {
                template_labels
                    .iter()
                    .all(|(k, v)| p.labels().get(k) == Some(v))
            })
            .count() as i32,
    );
    status.ready_replicas = Some(pods.iter().filter(|p| is_ready(p)).count() as i32);
    status.available_replicas = Some(
        pods.iter()
            .filter(|p| is_available(p, min_ready, now))
            .count() as i32,
    );
    status.observed_generation = rs.metadata.generation;
    let mut conditions = status.conditions.take().unwrap_or_default();
    let failing = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match manage_error {
        Some(e) if !failing => {
            let reason = match (pods.len() as i32).cmp(&wanted) {
                Ordering::Less => "FailedCreate",
                Ordering::Greater => "FailedDelete",
                Ordering::Equal => "",
            };
            conditions.push(ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(e.to_string()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if failing => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    status
}

/// The ReplicaSet controller's caches and clients.
pub struct Ctx {
    client: Client,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
    recorder: Recorder,
    expectations: Expectations,
    backoff: Backoff,
}

/// Lower expectations from a pod change (upstream `addPod`/`updatePod`/`deletePod`).
pub fn observe(expectations: &Expectations, seen: &Seen<Pod>) {
    let pod = seen.object();
    let Some(owner) = controller_of(pod.as_ref()).filter(|o| o.kind == "ReplicaSet") else {
        return;
    };
    let rs_key = format!("{}/{}", pod.namespace().unwrap_or_default(), owner.name);
    match seen {
        Seen::Added(p) if p.metadata.deletion_timestamp.is_none() => {
            expectations.creation_observed(&rs_key)
        }
        Seen::Modified(p) | Seen::Added(p) if p.metadata.deletion_timestamp.is_none() => {}
        _ => expectations.deletion_observed(&rs_key, &key_of(pod.as_ref())),
    }
}

/// Pods related to `rs` for ranking: its own and those of ReplicaSets with the same owner.
fn related_pods(ctx: &Ctx, rs: &ReplicaSet, pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    let owner = controller_of(rs).map(|o| o.uid.clone());
    let mut family: Vec<String> = vec![rs.uid().unwrap_or_default()];
    if let Some(owner) = owner {
        family.extend(
            ctx.replicasets
                .state()
                .iter()
                .filter(|r| {
                    r.namespace() == rs.namespace()
                        && controller_of(r.as_ref()).is_some_and(|o| o.uid == owner)
                })
                .filter_map(|r| r.uid()),
        );
    }
    pods.iter()
        .filter(|p| controller_of(p.as_ref()).is_some_and(|o| family.contains(&o.uid)))
        .cloned()
        .collect()
}

async fn create_pods(ctx: &Ctx, rs: &ReplicaSet, key: &str, count: usize) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let pod = pod_from_template(rs)?;
    ctx.expectations
        .expect_creations(key, count, Instant::now());
    let params = PostParams::default();
    let mut done = 0;
    let mut errors = Vec::new();
    for batch in slow_start_batches(count) {
        let results =
            futures::future::join_all((0..batch).map(|_| api.create(&params, &pod))).await;
        done += batch;
        for result in results {
            match result {
                Ok(created) => ctx.recorder.record(
                    rs,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created pod: {}", created.name_any()),
                ),
                Err(e) => {
                    // This creation will never be observed.
                    ctx.expectations.creation_observed(key);
                    ctx.recorder.record(
                        rs,
                        EventType::Warning,
                        "FailedCreate",
                        &format!("Error creating: {e}"),
                    );
                    errors.push(e.to_string());
                }
            }
        }
        if !errors.is_empty() {
            break;
        }
    }
    for _ in done..count {
        ctx.expectations.creation_observed(key);
    }
    match errors.first() {
        None => Ok(()),
        Some(first) => Err(Error::Pods {
            verb: "create",
            failed: errors.len(),
            attempted: count,
            first: first.clone(),
        }),
    }
}

async fn delete_pods(
    ctx: &Ctx,
    rs: &ReplicaSet,
    key: &str,
    victims: &[Arc<Pod>],
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    ctx.expectations.expect_deletions(
        key,
        victims.iter().map(|p| key_of(p.as_ref())),
        Instant::now(),
    );
    let results = futures::future::join_all(victims.iter().map(|pod| {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        let api = api.clone();
        async move { (pod, api.delete(&pod.name_any(), &params).await) }
    }))
    .await;
    let mut errors = Vec::new();
    for (pod, result) in results {
        match result {
            Ok(_) => ctx.recorder.record(
                rs,
                EventType::Normal,
                "SuccessfulDelete",
                &format!("Deleted pod: {}", pod.name_any()),
            ),
            Err(e) => {
                ctx.expectations
                    .deletion_observed(key, &key_of(pod.as_ref()));
                if status_code(&e) != Some(404) {
                    ctx.recorder.record(
                        rs,
                        EventType::Warning,
                        "FailedDelete",
                        &format!("Error deleting: {e}"),
                    );
                    errors.push(e.to_string());
                }
            }
        }
    }
    match errors.first() {
        None => Ok(()),
        Some(first) => Err(Error::Pods {
            verb: "delete",
            failed: errors.len(),
            attempted: victims.len(),
            first: first.clone(),
        }),
    }
}

/// Adopt or release pods by patching their owner references (upstream's patches, with
/// the pod's uid as precondition so a recreated namesake is never touched).
async fn claim_pods(ctx: &Ctx, rs: &ReplicaSet, claim: Claim) -> Result<Vec<Arc<Pod>>, Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let mut owned = claim.owned;
    for pod in claim.adopt {
        let patch = serde_json::json!({"metadata": {"ownerReferences": [controller_ref(rs)], "uid": pod.uid()}});
        match api
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(adopted) => owned.push(Arc::new(adopted)),
            Err(e) if matches!(status_code(&e), Some(404 | 409 | 422)) => {}
            Err(e) => return Err(e).context(|| format!("adopting pod {}", pod.name_any())),
        }
    }
    for pod in claim.release {
        let patch = serde_json::json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": rs.uid()}], "uid": pod.uid()}});
        match api
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if matches!(status_code(&e), Some(404 | 409 | 422)) => {}
            Err(e) => return Err(e).context(|| format!("releasing pod {}", pod.name_any())),
        }
    }
    Ok(owned)
}

/// One sync of one ReplicaSet (upstream `syncReplicaSet`).
pub async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let key = key_of(rs.as_ref());
    // Expectations first, then the pod list: anything they observed is in that list.
    let needs_sync = ctx.expectations.satisfied(&key, Instant::now());
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace() == rs.namespace())
        .collect();
    let owned = claim_pods(&ctx, &rs, claim(&rs, &pods)).await?;

    let wanted = rs
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    let mut manage_error = None;
    if needs_sync && rs.metadata.deletion_timestamp.is_none() {
        let result = if owned.len() < wanted {
            create_pods(&ctx, &rs, &key, (wanted - owned.len()).min(BURST_REPLICAS)).await
        } else if owned.len() > wanted {
            let victims = pods_to_delete(
                &owned,
                &related_pods(&ctx, &rs, &pods),
                (owned.len() - wanted).min(BURST_REPLICAS),
            );
            delete_pods(&ctx, &rs, &key, &victims).await
        } else {
            Ok(())
        };
        manage_error = result.err();
    }

    let now = jiff::Timestamp::now();
    let status = calculate_status(&rs, &owned, manage_error.as_ref(), now);
    if rs.status.as_ref() != Some(&status) {
        let api: Api<ReplicaSet> =
            Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
        let mut body = serde_json::json!({"status": status});
        if status.conditions.is_none() {
            body["status"]["conditions"] = serde_json::Value::Null;
        }
        api.patch_status(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await
        .context(|| format!("updating status of replicaset {key}"))?;
    }
    if let Some(e) = manage_error {
        return Err(e);
    }
    ctx.backoff.succeeded(&key);
    // minReadySeconds: look again when the next ready pod becomes available.
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    Ok(requeue_delay_for(&owned, min_ready, now)
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

pub fn error_policy(rs: Arc<ReplicaSet>, error: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.backoff.requeue(&key_of(rs.as_ref()), error)
}

/// Which ReplicaSets a pod change concerns: its owner, or for an orphan every
/// ReplicaSet whose selector matches it (it may be adopted).
fn replicasets_for_pod(replicasets: &Store<ReplicaSet>, pod: &Pod) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    match controller_of(pod) {
        Some(owner) if owner.kind == "ReplicaSet" => vec![ObjectRef::new(&owner.name).within(&ns)],
        Some(_) => Vec::new(),
        None => replicasets
            .state()
            .iter()
            .filter(|r| {
                r.namespace().as_deref() == Some(ns.as_str())
                    && r.spec
                        .as_ref()
                        .is_some_and(|s| labels::matches(&s.selector, pod.labels()))
            })
            .map(|r| ObjectRef::from_obj(r.as_ref()))
            .collect(),
    }
}

/// Run the ReplicaSet controller over the shared informers until they stop.
pub async fn run(
    client: Client,
    pods: &Informer<Pod>,
    replicasets: &Informer<ReplicaSet>,
    recorder: Recorder,
) {
    let ctx = Arc::new(Ctx {
        client,
        pods: pods.store(),
        replicasets: replicasets.store(),
        recorder,
        expectations: Expectations::default(),
        backoff: Backoff::default(),
    });
    let observer = ctx.clone();
    let pod_changes = pods
        .changes()
        .inspect(move |seen| observe(&observer.expectations, seen));
    let store = replicasets.store();
    Controller::for_stream(replicasets.triggers(), replicasets.store())
        .watches_stream(to_triggers(pod_changes), move |pod: Pod| {
            replicasets_for_pod(&store, &pod)
        })
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "replicaset controller");
            }
            std::future::ready(())
        })
        .await;
}

/// How long until the next of `pods` that is ready becomes available.
pub fn requeue_delay_for(
    pods: &[Arc<Pod>],
    min_ready_seconds: i32,
    now: jiff::Timestamp,
) -> Option<Duration> {
    pods.iter()
        .filter_map(|p| until_available(p, min_ready_seconds, now))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool, created: i64) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web"},
                    "creationTimestamp": Time(jiff::Timestamp::from_second(created).unwrap())},
                "spec": {"nodeName": node, "containers": []},
                "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                    "lastTransitionTime": Time(jiff::Timestamp::from_second(created + 1).unwrap())}]}
            }))
            .unwrap(),
        )
    }

    fn rs(replicas: i32) -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "rs-uid", "generation": 3},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }))
        .unwrap()
    }

    fn owned_by(mut p: Arc<Pod>, uid: &str) -> Arc<Pod> {
        let mut owner = controller_ref(&rs(1));
        owner.uid = uid.into();
        Arc::make_mut(&mut p).metadata.owner_references = Some(vec![owner]);
        p
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn scale_down_follows_upstream_ranking() {
        let pods = vec![
            pod("ready-old", Some("n"), "Running", true, 1),
            pod("ready-young", Some("n"), "Running", true, 5),
            pod("unready", Some("n"), "Running", false, 2),
            pod("pending", Some("n"), "Pending", false, 3),
            pod("unscheduled", None, "Pending", false, 4),
        ];
        assert_eq!(
            names(&pods_to_delete(&pods, &pods, 5)),
            vec![
                "unscheduled",
                "pending",
                "unready",
                "ready-young",
                "ready-old"
            ]
        );
        assert_eq!(
            names(&pods_to_delete(&pods, &pods, 2)),
            vec!["unscheduled", "pending"]
        );
    }

    #[test]
    fn doubled_up_pods_and_deletion_cost_go_first() {
        let a = pod("alone", Some("n1"), "Running", true, 5);
        let b = pod("crowded", Some("n2"), "Running", true, 1);
        let c = pod("crowded-too", Some("n2"), "Running", true, 1);
        assert_eq!(
            names(&pods_to_delete(
                &[a.clone(), b.clone()],
                &[a.clone(), b.clone(), c],
                1
            )),
            vec!["crowded"]
        );
        let mut cheap = (*pod("cheap", Some("n1"), "Running", true, 0)).clone();
        cheap.metadata.annotations =
            Some([(POD_DELETION_COST.to_string(), "-5".to_string())].into());
        let cheap = Arc::new(cheap);
        assert_eq!(
            names(&pods_to_delete(&[a.clone(), cheap.clone()], &[a, cheap], 1)),
            vec!["cheap"]
        );
    }

    #[test]
    fn claims_adopt_orphans_and_release_strays() {
        let mine = owned_by(pod("mine", Some("n"), "Running", true, 1), "rs-uid");
        let theirs = owned_by(pod("theirs", Some("n"), "Running", true, 1), "other");
        let orphan = pod("orphan", Some("n"), "Running", true, 1);
        let mut stray = (*owned_by(pod("stray", Some("n"), "Running", true, 1), "rs-uid")).clone();
        stray.metadata.labels = Some([("app".to_string(), "debug".to_string())].into());
        let mut done = (*owned_by(pod("done", Some("n"), "Running", true, 1), "rs-uid")).clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let c = claim(
            &rs(3),
            &[mine, theirs, orphan, Arc::new(stray), Arc::new(done)],
        );
        assert_eq!(names(&c.owned), vec!["mine"]);
        assert_eq!(names(&c.adopt), vec!["orphan"]);
        assert_eq!(names(&c.release), vec!["stray"]);
    }

    #[test]
    fn pods_come_from_the_template_with_a_controller_reference() {
        let p = pod_from_template(&rs(1)).unwrap();
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("ns"));
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.uid.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("ReplicaSet", "rs-uid", Some(true), Some(true))
        );
        assert_eq!(p.labels().get("tier").map(String::as_str), Some("front"));
    }

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
    }

    #[test]
    fn status_counts_and_failure_condition() {
        let now = jiff::Timestamp::from_second(100).unwrap();
        let mut set = rs(3);
        set.spec.as_mut().unwrap().min_ready_seconds = Some(10);
        let pods = vec![
            pod("a", Some("n"), "Running", true, 10),
            pod("b", Some("n"), "Running", true, 95),
            pod("c", Some("n"), "Pending", false, 99),
        ];
        let err = Error::Pods {
            verb: "create",
            failed: 1,
            attempted: 1,
            first: "quota".into(),
        };
        let s = calculate_status(&set, &pods[..2], Some(&err), now);
        assert_eq!(
            (
                s.replicas,
                s.ready_replicas,
                s.available_replicas,
                s.fully_labeled_replicas
            ),
            (2, Some(2), Some(1), Some(0))
        );
        assert_eq!(s.observed_generation, Some(3));
        let failure = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (failure.type_.as_str(), failure.reason.as_deref()),
            ("ReplicaFailure", Some("FailedCreate"))
        );
        set.status = Some(s);
        let healed = calculate_status(&set, &pods, None, now);
        assert_eq!(healed.conditions, None);
        assert_eq!(
            requeue_delay_for(&pods, 10, now),
            Some(Duration::from_secs(6))
        );
    }

    #[test]
    fn pod_changes_lower_expectations() {
        let e = Expectations::default();
        let t = Instant::now();
        let p = owned_by(pod("a", Some("n"), "Running", true, 1), "rs-uid");
        e.expect_creations("ns/web", 1, t);
        observe(&e, &Seen::Modified(p.clone()));
        assert!(!e.satisfied("ns/web", t));
        observe(&e, &Seen::Added(p.clone()));
        assert!(e.satisfied("ns/web", t));
        e.expect_deletions("ns/web", ["ns/a".to_string()], t);
        let mut going = (*p).clone();
        going.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        observe(&e, &Seen::Modified(Arc::new(going)));
        assert!(e.satisfied("ns/web", t));
    }
}
