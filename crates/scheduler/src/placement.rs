//! Placement as a pure function over a snapshot (Nomad's model): filter the nodes a pod
//! fits on, score them for bin packing, pick the best with a stable tie-break. When
//! nothing fits, say why in upstream's words.
//!
//! ```text
//!  nodes ──filter──► Ready? schedulable? taints tolerated? pods/cpu/memory fit?
//!        ──score───► most-allocated: mean over cpu and memory of (used + request) / allocatable
//!        ──pick────► highest score, then lowest name
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use kube::ResourceExt;

use podium_api::quantity::{cpu_millis, units};

/// Pods a node takes when its allocatable does not say (the kubelet's default).
pub const DEFAULT_MAX_PODS: i64 = 110;

/// Requested resources: CPU in millicores, memory in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    pub cpu: i64,
    pub memory: i64,
}

impl Requests {
    fn add(&mut self, other: Requests) {
        self.cpu = self.cpu.saturating_add(other.cpu);
        self.memory = self.memory.saturating_add(other.memory);
    }

    fn max(self, other: Requests) -> Requests {
        Requests {
            cpu: self.cpu.max(other.cpu),
            memory: self.memory.max(other.memory),
        }
    }
}

fn container_requests(
    resources: Option<&k8s_openapi::api::core::v1::ResourceRequirements>,
) -> Requests {
    // A resource with only a limit requests its limit (the API server's defaulting).
    let get = |name: &str| {
        resources.and_then(|r| {
            r.requests
                .as_ref()
                .and_then(|q| q.get(name))
                .or_else(|| r.limits.as_ref().and_then(|q| q.get(name)))
        })
    };
    Requests {
        cpu: get("cpu").and_then(|q| cpu_millis(&q.0)).unwrap_or(0),
        memory: get("memory").and_then(|q| units(&q.0)).unwrap_or(0),
    }
}

/// A pod's effective requests (upstream `PodRequests`): the sum over its containers, at
/// least the largest init container, plus the pod overhead.
pub fn requests_of(pod: &Pod) -> Requests {
    let Some(spec) = pod.spec.as_ref() else {
        return Requests::default();
    };
    let mut total = Requests::default();
    for c in &spec.containers {
        total.add(container_requests(c.resources.as_ref()));
    }
    for c in spec.init_containers.iter().flatten() {
        total = total.max(container_requests(c.resources.as_ref()));
    }
    if let Some(overhead) = spec.overhead.as_ref() {
        total.add(Requests {
            cpu: overhead
                .get("cpu")
                .and_then(|q| cpu_millis(&q.0))
                .unwrap_or(0),
            memory: overhead
                .get("memory")
                .and_then(|q| units(&q.0))
                .unwrap_or(0),
        });
    }
    total
}

/// What is already placed on one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub requested: Requests,
    pub pods: i64,
}

impl Usage {
    pub fn add(&mut self, requests: Requests) {
        self.requested.add(requests);
        self.pods += 1;
    }
}

/// Per node, the requests of the pods bound there that have not finished.
pub fn usage(pods: &[Arc<Pod>]) -> HashMap<String, Usage> {
    let mut used: HashMap<String, Usage> = HashMap::new();
    for pod in pods {
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        if matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            continue;
        }
        used.entry(node).or_default().add(requests_of(pod));
    }
    used
}

/// Why a node was filtered out, worded as upstream's scheduler plugins word it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unfit {
    NotReady,
    Unschedulable,
    Taint { key: String, value: String },
    TooManyPods,
    Cpu,
    Memory,
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::NotReady => write!(f, "node(s) were not ready"),
            Unfit::Unschedulable => write!(f, "node(s) were unschedulable"),
            Unfit::Taint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Unfit::TooManyPods => write!(f, "Too many pods"),
            Unfit::Cpu => write!(f, "Insufficient cpu"),
            Unfit::Memory => write!(f, "Insufficient memory"),
        }
    }
}

/// Upstream `Toleration.ToleratesTaint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration
        .effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if toleration
        .key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match toleration.operator.as_deref() {
        None | Some("") | Some("Equal") => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        Some("Exists") => true,
        Some(_) => false,
    }
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Allocatable (cpu millicores, memory bytes, pods) of a node.
pub fn allocatable(node: &Node) -> (i64, i64, i64) {
    let alloc = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
    let get = |name: &str| alloc.and_then(|a| a.get(name)).map(|q| q.0.as_str());
    (
        get("cpu").and_then(cpu_millis).unwrap_or(0),
        get("memory").and_then(units).unwrap_or(0),
        get("pods").and_then(units).unwrap_or(DEFAULT_MAX_PODS),
    )
}

/// Why `pod` cannot go on `node` (empty: it fits).
pub fn filter(pod: &Pod, want: Requests, node: &Node, used: Usage) -> Vec<Unfit> {
    if !node_ready(node) {
        return vec![Unfit::NotReady];
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        return vec![Unfit::Unschedulable];
    }
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    if let Some(t) = taints.iter().find(|t| {
        (t.effect == "NoSchedule" || t.effect == "NoExecute")
            && !tolerations.iter().any(|tol| tolerates(tol, t))
    }) {
        return vec![Unfit::Taint {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
        }];
    }
    // Resource fit reports every shortage at once, as upstream's NodeResourcesFit does.
    let (cpu, memory, pods) = allocatable(node);
    let mut reasons = Vec::new();
    if used.pods + 1 > pods {
        reasons.push(Unfit::TooManyPods);
    }
    if want.cpu > 0 && used.requested.cpu.saturating_add(want.cpu) > cpu {
        reasons.push(Unfit::Cpu);
    }
    if want.memory > 0 && used.requested.memory.saturating_add(want.memory) > memory {
        reasons.push(Unfit::Memory);
    }
    reasons
}

/// Most-allocated score in 0..=100 (upstream `MostAllocated`, cpu and memory weighted 1).
pub fn score(want: Requests, node: &Node, used: Usage) -> i64 {
    let (cpu, memory, _) = allocatable(node);
    let part = |requested: i64, capacity: i64| {
        if capacity <= 0 {
            0
        } else {
            (requested.saturating_mul(100) / capacity).min(100)
        }
    };
    (part(used.requested.cpu.saturating_add(want.cpu), cpu)
        + part(used.requested.memory.saturating_add(want.memory), memory))
        / 2
}

/// The outcome of placing one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Bind to this node.
    Node(String),
    /// Nothing fits; the reasons of every node, for the FailedScheduling message.
    Unschedulable { nodes: usize, reasons: Vec<Unfit> },
}

/// Choose a node for `pod` given what each node already runs.
pub fn place(pod: &Pod, nodes: &[Arc<Node>], used: &HashMap<String, Usage>) -> Placement {
    let want = requests_of(pod);
    let mut reasons = Vec::new();
    let mut best: Option<(i64, String)> = None;
    for node in nodes {
        let name = node.name_any();
        let usage = used.get(&name).copied().unwrap_or_default();
        let unfit = filter(pod, want, node, usage);
        if !unfit.is_empty() {
            reasons.extend(unfit);
            continue;
        }
        let s = score(want, node, usage);
        if best
            .as_ref()
            .is_none_or(|(b, n)| s > *b || (s == *b && name < *n))
        {
            best = Some((s, name));
        }
    }
    match best {
        Some((_, name)) => Placement::Node(name),
        None => Placement::Unschedulable {
            nodes: nodes.len(),
            reasons,
        },
    }
}

/// Upstream's `FitError` message: "0/1 nodes are available: 1 Insufficient cpu."
/// (counts per reason, sorted as strings).
pub fn unschedulable_message(nodes: usize, reasons: &[Unfit]) -> String {
    if nodes == 0 {
        return "no nodes available to schedule pods".to_string();
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r.to_string()).or_default() += 1;
    }
    let mut parts: Vec<String> = counts
        .into_iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    parts.sort();
    format!("0/{nodes} nodes are available: {}.", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cpu: &str, memory: &str, extra: serde_json::Value) -> Arc<Node> {
        let mut n = serde_json::json!({"metadata": {"name": name}, "spec": {},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "3"}, "conditions": [{"type": "Ready", "status": "True"}]}});
        if let (Some(base), Some(extra)) = (n.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        Arc::new(serde_json::from_value(n).unwrap())
    }

    fn pod(cpu: &str, memory: &str, on: Option<&str>) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p"},
                "spec": {"nodeName": on, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}))
            .unwrap(),
        )
    }

    fn plain() -> serde_json::Value {
        serde_json::json!({})
    }

    #[test]
    fn bin_packs_onto_the_fullest_node_that_fits() {
        let nodes = vec![
            node("a", "4", "8Gi", plain()),
            node("b", "4", "8Gi", plain()),
        ];
        let running = vec![pod("2", "1Gi", Some("b"))];
        assert_eq!(
            place(&pod("1", "1Gi", None), &nodes, &usage(&running)),
            Placement::Node("b".into())
        );
        assert_eq!(
            place(&pod("3", "1Gi", None), &nodes, &usage(&running)),
            Placement::Node("a".into())
        );
        // Equal scores: the lower name, every time.
        assert_eq!(
            place(&pod("1", "1Gi", None), &nodes, &HashMap::new()),
            Placement::Node("a".into())
        );
    }

    #[test]
    fn nothing_fits_explains_why_in_upstream_words() {
        let nodes = vec![
            node("a", "1", "1Gi", plain()),
            node(
                "b",
                "8",
                "8Gi",
                serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            ),
        ];
        let Placement::Unschedulable { nodes: n, reasons } =
            place(&pod("2", "100Mi", None), &nodes, &HashMap::new())
        else {
            panic!("placed")
        };
        assert_eq!(
            unschedulable_message(n, &reasons),
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were not ready."
        );
        let Placement::Unschedulable { nodes: n, reasons } =
            place(&pod("2", "2Gi", None), &nodes[..1], &HashMap::new())
        else {
            panic!("placed")
        };
        assert_eq!(
            unschedulable_message(n, &reasons),
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."
        );
        assert_eq!(
            unschedulable_message(0, &[]),
            "no nodes available to schedule pods"
        );
    }

    #[test]
    fn counts_pods_and_ignores_finished_ones() {
        let nodes = vec![node("a", "4", "8Gi", plain())];
        let mut done = (*pod("0", "0", Some("a"))).clone();
        done.status =
            Some(serde_json::from_value(serde_json::json!({"phase": "Succeeded"})).unwrap());
        let full = vec![
            pod("0", "0", Some("a")),
            pod("0", "0", Some("a")),
            pod("0", "0", Some("a")),
            Arc::new(done),
        ];
        let Placement::Unschedulable { reasons, .. } =
            place(&pod("0", "0", None), &nodes, &usage(&full))
        else {
            panic!("placed")
        };
        assert_eq!(reasons, vec![Unfit::TooManyPods]);
        assert_eq!(
            place(&pod("0", "0", None), &nodes, &usage(&full[1..])),
            Placement::Node("a".into())
        );
    }

    #[test]
    fn taints_cordons_and_tolerations() {
        let tainted = node(
            "t",
            "4",
            "8Gi",
            serde_json::json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
        );
        let cordoned = node(
            "c",
            "4",
            "8Gi",
            serde_json::json!({"spec": {"unschedulable": true}}),
        );
        let Placement::Unschedulable { nodes, reasons } = place(
            &pod("1", "1Gi", None),
            &[tainted.clone(), cordoned],
            &HashMap::new(),
        ) else {
            panic!("placed")
        };
        assert_eq!(
            unschedulable_message(nodes, &reasons),
            "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable."
        );
        let mut tolerant = (*pod("1", "1Gi", None)).clone();
        tolerant.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }]);
        assert_eq!(
            place(&tolerant, std::slice::from_ref(&tainted), &HashMap::new()),
            Placement::Node("t".into())
        );
        let wrong_value = Toleration {
            key: Some("dedicated".into()),
            value: Some("cpu".into()),
            ..Default::default()
        };
        let taint = &tainted.spec.as_ref().unwrap().taints.as_ref().unwrap()[0];
        assert!(!tolerates(&wrong_value, taint));
        assert!(tolerates(
            &Toleration {
                operator: Some("Exists".into()),
                ..Default::default()
            },
            taint
        ));
        let prefer = node(
            "p",
            "4",
            "8Gi",
            serde_json::json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}),
        );
        assert_eq!(
            place(&pod("1", "1Gi", None), &[prefer], &HashMap::new()),
            Placement::Node("p".into())
        );
    }

    #[test]
    fn requests_count_limits_init_containers_and_overhead() {
        let p: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "700m", "memory": "64Mi"}}}, {"name": "b", "resources": {"requests": {"cpu": "100m"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}],
            "overhead": {"cpu": "10m"}}})).unwrap();
        assert_eq!(
            requests_of(&p),
            Requests {
                cpu: 2010,
                memory: 64 << 20
            }
        );
    }

    /// Property: whatever is placed fits, and placing pods one by one onto the returned
    /// nodes never overcommits any node.
    #[test]
    fn placements_never_overcommit() {
        let nodes = vec![
            node("a", "2", "4Gi", plain()),
            node("b", "1500m", "2Gi", plain()),
            node("c", "1", "8Gi", plain()),
        ];
        let sizes = ["100m", "250m", "500m", "700m", "1"];
        let memories = ["64Mi", "512Mi", "1Gi", "3Gi"];
        for seed in 0..200usize {
            let mut used: HashMap<String, Usage> = HashMap::new();
            for i in 0..12 {
                let p = pod(
                    sizes[(seed * 7 + i * 3) % sizes.len()],
                    memories[(seed * 5 + i) % memories.len()],
                    None,
                );
                if let Placement::Node(n) = place(&p, &nodes, &used) {
                    used.entry(n).or_default().add(requests_of(&p));
                }
            }
            for n in &nodes {
                let u = used.get(&n.name_any()).copied().unwrap_or_default();
                let (cpu, memory, pods) = allocatable(n);
                assert!(
                    u.requested.cpu <= cpu && u.requested.memory <= memory && u.pods <= pods,
                    "seed {seed}: {} over: {u:?}",
                    n.name_any()
                );
            }
        }
    }
}
