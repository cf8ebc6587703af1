//! The scheduler: binds pending pods to nodes. Placement ([`placement`]) is a pure
//! function over a snapshot of nodes and pods; this loop around it watches, binds through
//! `pods/binding`, and reports.
//!
//! ```text
//!  pod/node change ──► snapshot ──► for each pending pod (oldest first):
//!                                    place ──► node: assume it there, bind (concurrently), Event Scheduled
//!                                          └─► none: Event FailedScheduling + PodScheduled=False,
//!                                              retried on the next pod or node change
//! ```
//!
//! A bound pod is *assumed* on its node until the watch shows it bound, so the next
//! placement in the same burst already counts it (upstream's scheduler cache).

pub mod placement;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use podium_client::events::{EventType, Recorder, Reporter};
use tokio::sync::mpsc;

use placement::{Placement, Requests, Usage, place, requests_of, unschedulable_message, usage};

/// The scheduler name pods ask for (or leave empty).
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// How soon a failed binding is tried again.
const BIND_RETRY: Duration = Duration::from_millis(200);

/// What can go wrong while scheduling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pod or node watch ended before its cache was filled.
    #[error("the {0} watch stopped before its cache was filled")]
    CacheNeverReady(&'static str),
    /// Binding a pod to its node failed.
    #[error("binding {pod} to {node}: {source}")]
    Bind {
        pod: String,
        node: String,
        #[source]
        source: kube::Error,
    },
}

/// Whether this scheduler should place `pod`: unbound, ours, not terminating or finished.
pub fn is_pending(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && spec
            .and_then(|s| s.node_name.as_deref())
            .is_none_or(str::is_empty)
        && spec
            .and_then(|s| s.scheduler_name.as_deref())
            .is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME)
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// The pending pods in the order they are placed: oldest first, then by name.
pub fn queue<'a>(pods: &'a [Arc<Pod>], skip: &HashSet<String>) -> Vec<&'a Arc<Pod>> {
    let mut pending: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| is_pending(p) && !p.uid().is_some_and(|u| skip.contains(&u)))
        .collect();
    pending.sort_by(|a, b| {
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| a.namespace().cmp(&b.namespace()))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    pending
}

fn watch<K>(api: Api<K>, kick: mpsc::UnboundedSender<()>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .boxed();
    tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => {
                    let _ = kick.send(());
                }
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "scheduler watch failed; retrying")
                }
            }
        }
    });
    reader
}

/// One pod placed in a pass, to be bound.
struct Decision {
    pod: Arc<Pod>,
    node: String,
    requests: Requests,
}

async fn bind(client: &Client, pod: &Pod, node: &str) -> Result<(), Error> {
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.name_any()),
            namespace: Some(ns.clone()),
            uid: pod.uid(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    api.create_subresource::<Binding, serde_json::Value>(
        "binding",
        &pod.name_any(),
        &PostParams::default(),
        &binding,
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::Bind {
        pod: format!("{ns}/{}", pod.name_any()),
        node: node.to_string(),
        source,
    })
}

async fn mark_unschedulable(client: &Client, pod: &Pod, message: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let patch = serde_json::json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastProbeTime": null, "lastTransitionTime": Time(jiff::Timestamp::now())}]}});
    if let Err(e) = api
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        tracing::debug!(pod = %pod.name_any(), error = %e, "could not mark pod unschedulable");
    }
}

/// Watch pods and nodes and bind pending pods until the watches end.
pub async fn run(client: Client) -> anyhow::Result<()> {
    let (kick, mut kicks) = mpsc::unbounded_channel();
    let pods = watch(Api::<Pod>::all(client.clone()), kick.clone());
    let nodes = watch(Api::<Node>::all(client.clone()), kick.clone());
    pods.wait_until_ready()
        .await
        .map_err(|_| Error::CacheNeverReady("pod"))?;
    nodes
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheNeverReady("node"))?;
    let recorder = Recorder::new(client.clone(), Reporter::component(SCHEDULER_NAME));
    // uid → (node, requests): bound by us, not yet seen bound in the cache.
    let mut assumed: HashMap<String, (String, Requests)> = HashMap::new();
    // uid → message: pods already told they do not fit, so the event is not repeated.
    let mut reported: HashMap<String, String> = HashMap::new();
    let _ = kick.send(());
    while kicks.recv().await.is_some() {
        // Many changes arrive together; one pass covers them all.
        while kicks.try_recv().is_ok() {}
        let all_pods = pods.state();
        let all_nodes = nodes.state();
        let present: HashMap<String, &Arc<Pod>> = all_pods
            .iter()
            .filter_map(|p| p.uid().map(|u| (u, p)))
            .collect();
        assumed.retain(|uid, _| present.get(uid).is_some_and(|p| is_pending(p)));
        reported.retain(|uid, _| present.get(uid).is_some_and(|p| is_pending(p)));

        let mut used: HashMap<String, Usage> = usage(&all_pods);
        for (node, requests) in assumed.values() {
            used.entry(node.clone()).or_default().add(*requests);
        }
        let skip: HashSet<String> = assumed.keys().cloned().collect();
        let mut decisions = Vec::new();
        for pod in queue(&all_pods, &skip) {
            let uid = pod.uid().unwrap_or_default();
            match place(pod, &all_nodes, &used) {
                Placement::Node(node) => {
                    let requests = requests_of(pod);
                    used.entry(node.clone()).or_default().add(requests);
                    assumed.insert(uid, (node.clone(), requests));
                    decisions.push(Decision {
                        pod: pod.clone(),
                        node,
                        requests,
                    });
                }
                Placement::Unschedulable { nodes, reasons } => {
                    let message = unschedulable_message(nodes, &reasons);
                    if reported.get(&uid) != Some(&message) {
                        recorder.record(
                            pod.as_ref(),
                            EventType::Warning,
                            "FailedScheduling",
                            &message,
                        );
                        mark_unschedulable(&client, pod, &message).await;
                        reported.insert(uid, message);
                    }
                }
            }
        }
        // Bind the whole burst at once: a 3-replica deployment is bound in one round trip.
        let results =
            futures::future::join_all(decisions.iter().map(|d| bind(&client, &d.pod, &d.node)))
                .await;
        for (decision, result) in decisions.iter().zip(results) {
            let pod = &decision.pod;
            match result {
                Ok(()) => {
                    let message = format!(
                        "Successfully assigned {}/{} to {}",
                        pod.namespace().unwrap_or_default(),
                        pod.name_any(),
                        decision.node
                    );
                    recorder.record(pod.as_ref(), EventType::Normal, "Scheduled", &message);
                }
                Err(e) => {
                    tracing::warn!(error = %e, requests = ?decision.requests, "binding failed; will retry");
                    assumed.remove(&pod.uid().unwrap_or_default());
                    let kick = kick.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(BIND_RETRY).await;
                        let _ = kick.send(());
                    });
                }
            }
        }
    }
    anyhow::bail!("the scheduler's watches ended")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, created: i64, extra: serde_json::Value) -> Arc<Pod> {
        let mut p = serde_json::json!({"metadata": {"name": name, "namespace": "default", "uid": name,
            "creationTimestamp": Time(jiff::Timestamp::from_second(created).unwrap())}, "spec": {"containers": []}});
        if let Some(spec) = extra.as_object() {
            for (k, v) in spec {
                p["spec"][k] = v.clone();
            }
        }
        Arc::new(serde_json::from_value(p).unwrap())
    }

    #[test]
    fn queues_only_our_unbound_pods_oldest_first() {
        let pods = vec![
            pod("young", 5, serde_json::json!({})),
            pod("old", 1, serde_json::json!({})),
            pod("bound", 0, serde_json::json!({"nodeName": "n"})),
            pod(
                "other-scheduler",
                0,
                serde_json::json!({"schedulerName": "custom"}),
            ),
            pod(
                "ours-by-name",
                3,
                serde_json::json!({"schedulerName": "default-scheduler"}),
            ),
            pod("assumed", 0, serde_json::json!({})),
        ];
        let skip: HashSet<String> = ["assumed".to_string()].into();
        let names: Vec<String> = queue(&pods, &skip).iter().map(|p| p.name_any()).collect();
        assert_eq!(names, vec!["old", "ours-by-name", "young"]);
    }
}
