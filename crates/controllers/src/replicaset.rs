//! The ReplicaSet controller: keep `spec.replicas` pods of the template running.
//!
//! Expectations (upstream's `ControllerExpectations`): after creating or deleting pods,
//! the controller does not act on that ReplicaSet again until the cache has seen those
//! changes (or a timeout passes), so a stale cache never makes it over-create.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client, Resource, ResourceExt};

use crate::events::{EventType, Recorder};
use crate::labels;
use crate::runner::{Caches, Change, key_of, run_controller, split_key};

const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Expected {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    since: Option<Instant>,
}

/// A pod counts toward replicas until it is deleted or has finished.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Ready for at least `min_ready_seconds`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    let since = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    since.is_some_and(|t| now.duration_since(t).as_secs() >= min_ready_seconds as i64)
}

pub fn controller_uid<K: Resource>(object: &K) -> Option<&str> {
    object.meta().owner_references.as_ref()?.iter().find(|r| r.controller == Some(true)).map(|r| r.uid.as_str())
}

/// The pods a ReplicaSet owns, from the cache.
pub fn owned_pods(caches: &Caches, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
    let uid = rs.uid().unwrap_or_default();
    let ns = rs.namespace();
    caches.pods.state().into_iter().filter(|p| p.namespace() == ns && controller_uid(p.as_ref()) == Some(uid.as_str())).collect()
}

/// Which pods to delete first when scaling down (upstream's `ActivePodsWithRanks` order):
/// unscheduled, then pending, then not ready, then the youngest.
pub fn deletion_order(pods: &mut [Arc<Pod>]) {
    pods.sort_by_key(|p| {
        let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()).unwrap_or(0);
        (scheduled, running, is_ready(p), std::cmp::Reverse(created))
    });
}

fn pod_from_template(rs: &ReplicaSet) -> anyhow::Result<Pod> {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone()).ok_or_else(|| anyhow::anyhow!("replicaset has no template"))?;
    let meta = template.metadata.unwrap_or_default();
    let owner = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: rs.name_any(),
        uid: rs.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: meta.labels,
            annotations: meta.annotations,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    })
}

pub(crate) fn compute_status(rs: &ReplicaSet, pods: &[Arc<Pod>]) -> ReplicaSetStatus {
    let now = jiff::Timestamp::now();
    let min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = rs.spec.as_ref().and_then(|s| s.template.as_ref()).and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone()).unwrap_or_default();
    let active: Vec<&Arc<Pod>> = pods.iter().filter(|p| is_active(p)).collect();
    let old = rs.status.clone().unwrap_or_default();
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(active.iter().filter(|p| template_labels.iter().all(|(k, v)| p.labels().get(k) == Some(v))).count() as i32),
        ready_replicas: Some(active.iter().filter(|p| is_ready(p)).count() as i32),
        available_replicas: Some(active.iter().filter(|p| is_available(p, min_ready, now)).count() as i32),
        observed_generation: rs.metadata.generation,
        conditions: old.conditions,
        terminating_replicas: None,
    }
}

struct Ctx {
    client: Client,
    caches: Arc<Caches>,
    recorder: Recorder,
    expected: Mutex<HashMap<String, Expected>>,
}

impl Ctx {
    /// Whether the cache has caught up with what we did last time.
    fn satisfied(&self, key: &str, pods: &[Arc<Pod>]) -> bool {
        let Ok(mut expected) = self.expected.lock() else { return true };
        let Some(e) = expected.get_mut(key) else { return true };
        let present: HashMap<String, &Arc<Pod>> = pods.iter().map(|p| (p.name_any(), p)).collect();
        e.creates.retain(|name| !present.contains_key(name));
        e.deletes.retain(|name| present.get(name).is_some_and(|p| p.metadata.deletion_timestamp.is_none()));
        let timed_out = e.since.is_some_and(|s| s.elapsed() > EXPECTATION_TIMEOUT);
        if (e.creates.is_empty() && e.deletes.is_empty()) || timed_out {
            expected.remove(key);
            return true;
        }
        false
    }

    fn expect(&self, key: &str, creates: Vec<String>, deletes: Vec<String>) {
        if let Ok(mut expected) = self.expected.lock() {
            let e = expected.entry(key.to_string()).or_default();
            e.creates.extend(creates);
            e.deletes.extend(deletes);
            e.since = Some(Instant::now());
        }
    }
}

async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Option<Duration>> {
    let (ns, name) = split_key(&key);
    let Some(rs) = ctx.caches.replicasets.state().into_iter().find(|r| r.namespace().as_deref() == Some(ns) && r.name_any() == name) else {
        if let Ok(mut e) = ctx.expected.lock() {
            e.remove(&key);
        }
        return Ok(None);
    };
    if rs.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let mut pods = owned_pods(&ctx.caches, &rs);

    // Adopt orphans the selector matches, as upstream's ClaimPods does.
    if let Some(selector) = rs.spec.as_ref().map(|s| &s.selector) {
        for orphan in ctx.caches.pods.state().into_iter().filter(|p| {
            p.namespace().as_deref() == Some(ns) && p.owner_references().is_empty() && is_active(p) && labels::matches(selector, p.labels())
        }) {
            let owner = serde_json::json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs.name_any(),
                "uid": rs.uid(), "controller": true, "blockOwnerDeletion": true}], "uid": orphan.uid()}});
            if pods_api.patch(&orphan.name_any(), &PatchParams::default(), &Patch::Strategic(&owner)).await.is_ok() {
                pods.push(orphan);
            }
        }
    }

    let wanted = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
    let mut requeue = None;
    if ctx.satisfied(&key, &pods) {
        let mut active: Vec<Arc<Pod>> = pods.iter().filter(|p| is_active(p)).cloned().collect();
        if active.len() < wanted {
            let template = pod_from_template(&rs)?;
            let mut created = Vec::new();
            let mut failure = None;
            for _ in 0..(wanted - active.len()) {
                match pods_api.create(&PostParams::default(), &template).await {
                    Ok(pod) => {
                        ctx.recorder.record(rs.as_ref(), EventType::Normal, "SuccessfulCreate", &format!("Created pod: {}", pod.name_any())).await;
                        created.push(pod.name_any());
                    }
                    Err(e) => {
                        ctx.recorder.record(rs.as_ref(), EventType::Warning, "FailedCreate", &format!("Error creating: {e}")).await;
                        failure = Some(e);
                        break;
                    }
                }
            }
            ctx.expect(&key, created, Vec::new());
            if let Some(e) = failure {
                return Err(e.into());
            }
        } else if active.len() > wanted {
            deletion_order(&mut active);
            let mut deleted = Vec::new();
            for pod in active.iter().take(active.len() - wanted) {
                let params = DeleteParams { preconditions: Some(Preconditions { uid: pod.uid(), resource_version: None }), ..DeleteParams::background() };
                match pods_api.delete(&pod.name_any(), &params).await {
                    Ok(_) => {
                        ctx.recorder.record(rs.as_ref(), EventType::Normal, "SuccessfulDelete", &format!("Deleted pod: {}", pod.name_any())).await;
                        deleted.push(pod.name_any());
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            ctx.expect(&key, Vec::new(), deleted);
        }
    } else {
        requeue = Some(Duration::from_secs(1));
    }

    let status = compute_status(&rs, &owned_pods(&ctx.caches, &rs));
    if rs.status.as_ref() != Some(&status) {
        let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&serde_json::json!({"status": status}))).await?;
    }
    // minReadySeconds: look again when pods may have become available.
    let min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    if min_ready > 0 && status.available_replicas.unwrap_or(0) < status.ready_replicas.unwrap_or(0) {
        requeue = Some(Duration::from_secs(1));
    }
    Ok(requeue)
}

pub async fn run(client: Client, caches: Arc<Caches>, recorder: Recorder) -> anyhow::Result<()> {
    let ctx = Arc::new(Ctx { client, caches: caches.clone(), recorder, expected: Mutex::default() });
    run_controller(
        "replicaset",
        caches,
        |c: &Caches| c.replicasets.state().iter().map(|r| key_of(r.as_ref())).collect(),
        |c: &Caches, change: &Change| match change {
            Change::ReplicaSet(rs) => vec![key_of(rs.as_ref())],
            Change::Pod(pod) => {
                let ns = pod.namespace();
                match controller_uid(pod.as_ref()) {
                    Some(uid) => c.replicasets.state().iter().filter(|r| r.uid().as_deref() == Some(uid)).map(|r| key_of(r.as_ref())).collect(),
                    // An orphan may be adopted by a ReplicaSet whose selector matches it.
                    None => c
                        .replicasets
                        .state()
                        .iter()
                        .filter(|r| r.namespace() == ns && r.spec.as_ref().is_some_and(|s| labels::matches(&s.selector, pod.labels())))
                        .map(|r| key_of(r.as_ref()))
                        .collect(),
                }
            }
            _ => Vec::new(),
        },
        move |key| reconcile(ctx.clone(), key),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool, created: i64) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta { name: Some(name.into()), creation_timestamp: Some(Time(jiff::Timestamp::from_second(created).unwrap())), ..Default::default() },
            spec: Some(PodSpec { node_name: node.map(str::to_string), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition { type_: "Ready".into(), status: if ready { "True" } else { "False" }.into(), ..Default::default() }]),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn scale_down_prefers_unscheduled_then_pending_then_unready_then_youngest() {
        let mut pods = vec![
            pod("ready-old", Some("n"), "Running", true, 1),
            pod("ready-young", Some("n"), "Running", true, 5),
            pod("unready", Some("n"), "Running", false, 2),
            pod("pending", Some("n"), "Pending", false, 3),
            pod("unscheduled", None, "Pending", false, 4),
        ];
        deletion_order(&mut pods);
        let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
        assert_eq!(names, vec!["unscheduled", "pending", "unready", "ready-young", "ready-old"]);
    }

    #[test]
    fn availability_honours_min_ready_seconds() {
        let mut p = (*pod("p", Some("n"), "Running", true, 0)).clone();
        p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time = Some(Time(jiff::Timestamp::from_second(100).unwrap()));
        assert!(is_available(&p, 0, jiff::Timestamp::from_second(100).unwrap()));
        assert!(!is_available(&p, 10, jiff::Timestamp::from_second(105).unwrap()));
        assert!(is_available(&p, 10, jiff::Timestamp::from_second(111).unwrap()));
    }
}
