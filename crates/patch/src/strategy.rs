//! Which lists merge how under a strategic merge patch, from the Go struct tags of the
//! Kubernetes types (`patchStrategy:"merge" patchMergeKey:"name"`): one table, read by the
//! patcher and by the OpenAPI generator.

/// How a list field merges under a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// Atomic: the patch's list replaces the original.
    Replace,
    /// Lists of objects merged item by item on this key.
    MergeByKey(&'static str),
    /// Lists of scalars merged as a set.
    MergePrimitives,
}

/// Where the pod spec sits inside an object of `kind`, as a path of field names.
fn pod_spec_prefix(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&["spec"]),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicationController" | "PodTemplate" => Some(&["spec", "template", "spec"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

/// Lists inside a pod spec, by path relative to it.
fn pod_spec_list(rel: &[&str]) -> Option<ListStrategy> {
    use ListStrategy::*;
    let containers = ["containers", "initContainers", "ephemeralContainers"];
    Some(match rel {
        [c] if containers.contains(c) => MergeByKey("name"),
        ["volumes"] => MergeByKey("name"),
        ["imagePullSecrets"] => MergeByKey("name"),
        ["hostAliases"] => MergeByKey("ip"),
        ["resourceClaims"] => MergeByKey("name"),
        ["schedulingGates"] => MergeByKey("name"),
        [c, "env"] if containers.contains(c) => MergeByKey("name"),
        [c, "ports"] if containers.contains(c) => MergeByKey("containerPort"),
        [c, "volumeMounts"] if containers.contains(c) => MergeByKey("mountPath"),
        [c, "volumeDevices"] if containers.contains(c) => MergeByKey("devicePath"),
        [c, "resizePolicy"] if containers.contains(c) => Replace,
        _ => return None,
    })
}

/// The strategy of the list at `path` (field names from the object root, no indices) in an
/// object of `kind`. Unknown lists are atomic (`Replace`), as for types without tags.
pub fn list_strategy(kind: &str, path: &[&str]) -> ListStrategy {
    use ListStrategy::*;
    if let Some(prefix) = pod_spec_prefix(kind) {
        if path.len() > prefix.len() && path[..prefix.len()] == *prefix {
            if let Some(s) = pod_spec_list(&path[prefix.len()..]) {
                return s;
            }
        }
    }
    match (kind, path) {
        (_, ["metadata", "ownerReferences"]) => MergeByKey("uid"),
        (_, ["metadata", "finalizers"]) => MergePrimitives,
        (_, ["status", "conditions"]) => MergeByKey("type"),
        ("Pod", ["status", "podIPs"]) => MergeByKey("ip"),
        ("Pod", ["status", "hostIPs"]) => MergeByKey("ip"),
        ("Service", ["spec", "ports"]) => MergeByKey("port"),
        ("Node", ["status", "addresses"]) => MergeByKey("type"),
        ("Node", ["spec", "podCIDRs"]) => MergePrimitives,
        ("Node", ["spec", "taints"]) => Replace,
        ("Namespace", ["spec", "finalizers"]) => Replace,
        _ => Replace,
    }
}

/// Whether the map at `path` uses the `retainKeys` strategy.
pub fn retains_keys(kind: &str, path: &[&str]) -> bool {
    if let Some(prefix) = pod_spec_prefix(kind) {
        if path.len() == prefix.len() + 1 && path[..prefix.len()] == *prefix && path[prefix.len()] == "volumes" {
            return true;
        }
    }
    matches!((kind, path), ("Deployment", ["spec", "strategy"]) | ("DaemonSet", ["spec", "updateStrategy"]))
}
