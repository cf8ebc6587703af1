//! The scheduler. Placement is a pure function over a snapshot of nodes and pods
//! (Nomad's model: filter → score → pick), so it is tested without a cluster; the loop
//! around it watches, binds through `pods/binding`, and records events.
//!
//! ```text
//!  pending pod ──► filter (Ready, schedulable, untainted, fits cpu/memory/pods)
//!              ──► score (most-allocated: bin packing; ties by name) ──► bind
//!              └─► none fit: FailedScheduling event + PodScheduled=False, retried on change
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use podium_controllers::events::{EventType, Recorder};

use podium_api::quantity::{cpu_millis, memory_bytes};

/// A pod's requests: cpu in millicores, memory in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    pub cpu: i64,
    pub memory: i64,
}

pub fn requests_of(pod: &Pod) -> Requests {
    let mut total = Requests::default();
    for c in pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or(&[]) {
        let r = c.resources.as_ref();
        // A container with only limits requests its limits (upstream defaulting).
        let get = |name: &str| r.and_then(|r| r.requests.as_ref().and_then(|q| q.get(name)).or(r.limits.as_ref().and_then(|q| q.get(name))));
        total.cpu += get("cpu").and_then(|q| cpu_millis(&q.0)).unwrap_or(0);
        total.memory += get("memory").and_then(|q| memory_bytes(&q.0)).unwrap_or(0);
    }
    total
}

/// Why a node was filtered out, counted for the FailedScheduling message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unfit {
    NotReady,
    Unschedulable,
    Taint,
    Cpu,
    Memory,
    Pods,
}

impl Unfit {
    fn text(self) -> &'static str {
        match self {
            Unfit::NotReady => "node(s) were not ready",
            Unfit::Unschedulable => "node(s) were unschedulable",
            Unfit::Taint => "node(s) had untolerated taint",
            Unfit::Cpu => "Insufficient cpu",
            Unfit::Memory => "Insufficient memory",
            Unfit::Pods => "Too many pods",
        }
    }
}

fn node_ready(node: &Node) -> bool {
    node.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn tolerates(pod: &Pod, taint: &k8s_openapi::api::core::v1::Taint) -> bool {
    pod.spec.as_ref().and_then(|s| s.tolerations.as_ref()).is_some_and(|ts| {
        ts.iter().any(|t| {
            let key_ok = t.key.as_deref().is_none_or(|k| k.is_empty() || k == taint.key);
            let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == taint.effect);
            let value_ok = t.operator.as_deref() == Some("Exists") || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("");
            key_ok && effect_ok && value_ok
        })
    })
}

/// Used resources per node: the requests of the pods bound there that still run.
pub fn usage(pods: &[Arc<Pod>]) -> HashMap<String, (Requests, i64)> {
    let mut used: HashMap<String, (Requests, i64)> = HashMap::new();
    for pod in pods {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else { continue };
        if matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")) {
            continue;
        }
        let r = requests_of(pod);
        let entry = used.entry(node).or_default();
        entry.0.cpu += r.cpu;
        entry.0.memory += r.memory;
        entry.1 += 1;
    }
    used
}

/// Choose a node for `pod`, or say why none fits.
pub fn place(pod: &Pod, nodes: &[Arc<Node>], used: &HashMap<String, (Requests, i64)>) -> Result<String, Vec<Unfit>> {
    let want = requests_of(pod);
    let mut reasons = Vec::new();
    let mut best: Option<(i64, String)> = None;
    for node in nodes {
        let name = node.name_any();
        let verdict = (|| {
            if !node_ready(node) {
                return Err(Unfit::NotReady);
            }
            if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
                return Err(Unfit::Unschedulable);
            }
            let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[]);
            if taints.iter().any(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerates(pod, t)) {
                return Err(Unfit::Taint);
            }
            let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
            let cap_cpu = alloc.and_then(|a| a.get("cpu")).and_then(|q| cpu_millis(&q.0)).unwrap_or(0);
            let cap_mem = alloc.and_then(|a| a.get("memory")).and_then(|q| memory_bytes(&q.0)).unwrap_or(0);
            let cap_pods = alloc.and_then(|a| a.get("pods")).and_then(|q| q.0.parse::<i64>().ok()).unwrap_or(110);
            let (u, count) = used.get(&name).copied().unwrap_or_default();
            if count + 1 > cap_pods {
                return Err(Unfit::Pods);
            }
            if u.cpu + want.cpu > cap_cpu {
                return Err(Unfit::Cpu);
            }
            if u.memory + want.memory > cap_mem {
                return Err(Unfit::Memory);
            }
            // Most-allocated: prefer the fullest node that still fits (bin packing), in
            // per-mille of each resource, averaged.
            let score = ((u.cpu + want.cpu) * 1000 / cap_cpu.max(1) + (u.memory + want.memory) * 1000 / cap_mem.max(1)) / 2;
            Ok(score)
        })();
        match verdict {
            Ok(score) => {
                if best.as_ref().is_none_or(|(s, n)| score > *s || (score == *s && name < *n)) {
                    best = Some((score, name));
                }
            }
            Err(r) => reasons.push(r),
        }
    }
    best.map(|(_, n)| n).ok_or(reasons)
}

/// Upstream's message: "0/1 nodes are available: 1 Insufficient cpu."
pub fn unschedulable_message(total: usize, reasons: &[Unfit]) -> String {
    let mut counts: std::collections::BTreeMap<Unfit, usize> = Default::default();
    for r in reasons {
        *counts.entry(*r).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {}", r.text())).collect();
    if parts.is_empty() {
        format!("0/{total} nodes are available: no nodes registered.")
    } else {
        format!("0/{total} nodes are available: {}.", parts.join(", "))
    }
}

fn is_pending(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && spec.and_then(|s| s.node_name.as_deref()).is_none_or(str::is_empty)
        && spec.and_then(|s| s.scheduler_name.as_deref()).is_none_or(|n| n == "default-scheduler")
        && !matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

fn reflect<K>(api: Api<K>, kick: tokio::sync::mpsc::UnboundedSender<()>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => {
                    let _ = kick.send(());
                }
                Err(e) => tracing::warn!(error = %e, "scheduler watch failed; retrying"),
            }
        }
    });
    reader
}

/// Watch pods and nodes and bind pending pods until the watches end.
pub async fn run(client: Client) -> anyhow::Result<()> {
    let (kick, mut kicks) = tokio::sync::mpsc::unbounded_channel();
    let pods = reflect(Api::<Pod>::all(client.clone()), kick.clone());
    let nodes = reflect(Api::<Node>::all(client.clone()), kick);
    let recorder = Recorder::new(client.clone(), "default-scheduler");
    // Bound here but not yet seen bound in the cache: counted as used meanwhile.
    let mut assumed: HashMap<String, (String, Requests)> = HashMap::new();
    // Pods already told they do not fit, with the message, so events are not repeated.
    let mut reported: HashMap<String, String> = HashMap::new();
    while kicks.recv().await.is_some() {
        while kicks.try_recv().is_ok() {}
        let all_pods = pods.state();
        let all_nodes = nodes.state();
        let bound: HashSet<String> = all_pods.iter().filter(|p| !is_pending(p)).filter_map(|p| p.uid()).collect();
        assumed.retain(|uid, _| !bound.contains(uid) && all_pods.iter().any(|p| p.uid().as_deref() == Some(uid)));
        let mut used = usage(&all_pods);
        for (node, r) in assumed.values() {
            let e = used.entry(node.clone()).or_default();
            e.0.cpu += r.cpu;
            e.0.memory += r.memory;
            e.1 += 1;
        }
        let mut pending: Vec<&Arc<Pod>> = all_pods.iter().filter(|p| is_pending(p) && !assumed.contains_key(&p.uid().unwrap_or_default())).collect();
        pending.sort_by_key(|p| (p.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()).unwrap_or(0), p.name_any()));
        for pod in pending {
            let uid = pod.uid().unwrap_or_default();
            let ns = pod.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            match place(pod, &all_nodes, &used) {
                Ok(node) => {
                    let binding = Binding {
                        metadata: ObjectMeta { name: Some(pod.name_any()), namespace: Some(ns.clone()), uid: Some(uid.clone()), ..Default::default() },
                        target: ObjectReference { kind: Some("Node".into()), name: Some(node.clone()), api_version: Some("v1".into()), ..Default::default() },
                    };
                    match api.create_subresource::<Binding, serde_json::Value>("binding", &pod.name_any(), &PostParams::default(), &binding).await {
                        Ok(_) => {
                            let r = requests_of(pod);
                            let e = used.entry(node.clone()).or_default();
                            e.0.cpu += r.cpu;
                            e.0.memory += r.memory;
                            e.1 += 1;
                            assumed.insert(uid.clone(), (node.clone(), r));
                            reported.remove(&uid);
                            recorder.record(pod.as_ref(), EventType::Normal, "Scheduled", &format!("Successfully assigned {ns}/{} to {node}", pod.name_any())).await;
                        }
                        Err(e) => tracing::warn!(pod = %pod.name_any(), error = %e, "binding failed; will retry"),
                    }
                }
                Err(reasons) => {
                    let message = unschedulable_message(all_nodes.len(), &reasons);
                    if reported.get(&uid) != Some(&message) {
                        recorder.record(pod.as_ref(), EventType::Warning, "FailedScheduling", &message).await;
                        let condition = serde_json::json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": message, "lastTransitionTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}]}});
                        if let Err(e) = api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(&condition)).await {
                            tracing::debug!(error = %e, "could not mark pod unschedulable");
                        }
                        reported.insert(uid, message);
                    }
                }
            }
        }
        reported.retain(|uid, _| all_pods.iter().any(|p| p.uid().as_deref() == Some(uid)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cpu: &str, memory: &str, ready: bool) -> Arc<Node> {
        Arc::new(serde_json::from_value(serde_json::json!({"metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})).unwrap())
    }

    fn pod(cpu: &str, memory: &str, on: Option<&str>) -> Arc<Pod> {
        Arc::new(serde_json::from_value(serde_json::json!({"metadata": {"name": "p"},
            "spec": {"nodeName": on, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}})).unwrap())
    }

    #[test]
    fn bin_packs_onto_the_fullest_node_that_fits() {
        let nodes = vec![node("a", "4", "8Gi", true), node("b", "4", "8Gi", true)];
        let running = vec![pod("2", "1Gi", Some("b"))];
        assert_eq!(place(&pod("1", "1Gi", None), &nodes, &usage(&running)), Ok("b".into()));
        assert_eq!(place(&pod("3", "1Gi", None), &nodes, &usage(&running)), Ok("a".into()));
    }

    #[test]
    fn nothing_fits_explains_why() {
        let nodes = vec![node("a", "1", "1Gi", true), node("b", "8", "8Gi", false)];
        let err = place(&pod("2", "100Mi", None), &nodes, &HashMap::new()).unwrap_err();
        assert_eq!(unschedulable_message(2, &err), "0/2 nodes are available: 1 node(s) were not ready, 1 Insufficient cpu.");
        assert!(place(&pod("500m", "2Gi", None), &nodes[..1], &HashMap::new()).is_err());
    }

    #[test]
    fn pods_without_requests_fit_anywhere_ready() {
        let p: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})).unwrap();
        assert_eq!(place(&p, &[node("a", "1", "1Gi", true)], &HashMap::new()), Ok("a".into()));
    }
}
