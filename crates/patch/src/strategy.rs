//! Which fields merge how under a strategic merge patch: the Go struct tags of the
//! Kubernetes types (`patchStrategy:"merge" patchMergeKey:"name"`, `retainKeys`, `replace`)
//! as one table, read by the patcher and by the OpenAPI generator.
//!
//! Sources: `k8s.io/api` `core/v1`, `apps/v1`, `batch/v1`, `policy/v1`, `networking/v1`
//! `types.go` and `k8s.io/apimachinery` `pkg/apis/meta/v1/types.go` (ObjectMeta).
//! A list absent from the table has no tag upstream and is atomic (`Replace`): that is the
//! case of tolerations, envFrom, args/command, Node taints, Endpoints subsets, Namespace
//! spec.finalizers, container resizePolicy, and every list of ConfigMap, Secret, Event, Lease.

/// How a list field merges under a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// Atomic: the patch's list replaces the original.
    Replace,
    /// A list of objects merged item by item on this key (`patchMergeKey`).
    MergeByKey(&'static str),
    /// A list of scalars merged as a set (`patchStrategy:"merge"` without a key).
    MergePrimitives,
}

use ListStrategy::{MergeByKey, MergePrimitives};

/// Kinds that carry a pod spec, and where it sits (dotted field path from the object root).
const POD_SPEC_LOCATIONS: &[(&str, &str)] = &[
    ("Pod", "spec"),
    ("PodTemplate", "template.spec"),
    ("ReplicationController", "spec.template.spec"),
    ("Deployment", "spec.template.spec"),
    ("ReplicaSet", "spec.template.spec"),
    ("StatefulSet", "spec.template.spec"),
    ("DaemonSet", "spec.template.spec"),
    ("Job", "spec.template.spec"),
    ("CronJob", "spec.jobTemplate.spec.template.spec"),
];

/// The fields of a pod spec that hold containers (`Container` / `EphemeralContainer`).
const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// Lists of `PodSpec`, relative to the pod spec.
const POD_SPEC_LISTS: &[(&str, ListStrategy)] = &[
    ("containers", MergeByKey("name")),
    ("initContainers", MergeByKey("name")),
    ("ephemeralContainers", MergeByKey("name")),
    ("volumes", MergeByKey("name")), // merge,retainKeys
    ("imagePullSecrets", MergeByKey("name")),
    ("hostAliases", MergeByKey("ip")),
    ("topologySpreadConstraints", MergeByKey("topologyKey")),
    ("schedulingGates", MergeByKey("name")),
    ("resourceClaims", MergeByKey("name")), // merge,retainKeys
];

/// Lists of `Container` (and `EphemeralContainerCommon`), relative to one container.
const CONTAINER_FIELD_LISTS: &[(&str, ListStrategy)] = &[
    ("ports", MergeByKey("containerPort")),
    ("env", MergeByKey("name")),
    ("volumeMounts", MergeByKey("mountPath")),
    ("volumeDevices", MergeByKey("devicePath")),
];

/// Lists of `ObjectMeta`, the same in every kind.
const OBJECT_META_LISTS: &[(&str, ListStrategy)] = &[
    ("metadata.finalizers", MergePrimitives),
    ("metadata.ownerReferences", MergeByKey("uid")),
];

/// Lists of particular kinds, from the object root.
const KIND_LISTS: &[(&str, &str, ListStrategy)] = &[
    ("Pod", "status.conditions", MergeByKey("type")),
    ("Pod", "status.podIPs", MergeByKey("ip")),
    ("Pod", "status.hostIPs", MergeByKey("ip")),
    ("Pod", "status.resourceClaimStatuses", MergeByKey("name")), // merge,retainKeys
    ("Service", "spec.ports", MergeByKey("port")),
    ("Service", "status.conditions", MergeByKey("type")),
    ("Node", "spec.podCIDRs", MergePrimitives),
    ("Node", "status.conditions", MergeByKey("type")),
    ("Node", "status.addresses", MergeByKey("type")),
    ("Namespace", "status.conditions", MergeByKey("type")),
    ("ServiceAccount", "secrets", MergeByKey("name")),
    (
        "PersistentVolumeClaim",
        "status.conditions",
        MergeByKey("type"),
    ),
    (
        "ReplicationController",
        "status.conditions",
        MergeByKey("type"),
    ),
    ("ComponentStatus", "conditions", MergeByKey("type")),
    ("Deployment", "status.conditions", MergeByKey("type")),
    ("ReplicaSet", "status.conditions", MergeByKey("type")),
    ("StatefulSet", "status.conditions", MergeByKey("type")),
    ("DaemonSet", "status.conditions", MergeByKey("type")),
    ("Job", "status.conditions", MergeByKey("type")),
    (
        "PodDisruptionBudget",
        "status.conditions",
        MergeByKey("type"),
    ),
    ("ServiceCIDR", "status.conditions", MergeByKey("type")),
];

/// Maps (or the items of lists) tagged `retainKeys`, from the object root; `{podSpec}`
/// stands for the kind's pod spec location.
const RETAIN_KEYS: &[(&str, &str)] = &[
    ("Deployment", "spec.strategy"),
    ("Pod", "status.resourceClaimStatuses"),
    ("*", "{podSpec}.volumes"),
    ("*", "{podSpec}.resourceClaims"),
];

/// Maps tagged `patchStrategy:"replace"`: the patch's map replaces the original wholesale.
const REPLACED_MAPS: &[(&str, &str)] = &[("PodDisruptionBudget", "spec.selector")];

/// Whether `path` is exactly the dotted `pattern`.
fn is_path(path: &[&str], pattern: &str) -> bool {
    pattern.split('.').eq(path.iter().copied())
}

/// The part of `path` below the pod spec of an object of `kind`, if `path` is inside it.
fn under_pod_spec<'p, 'a>(kind: &str, path: &'p [&'a str]) -> Option<&'p [&'a str]> {
    let (_, location) = POD_SPEC_LOCATIONS.iter().find(|(k, _)| *k == kind)?;
    let depth = location.split('.').count();
    (path.len() > depth && is_path(&path[..depth], location)).then(|| &path[depth..])
}

fn pod_spec_list(relative: &[&str]) -> Option<ListStrategy> {
    match relative {
        [field] => POD_SPEC_LISTS
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, s)| *s),
        [container, field] if CONTAINER_LISTS.contains(container) => CONTAINER_FIELD_LISTS
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, s)| *s),
        _ => None,
    }
}

/// The strategy of the list at `path` (field names from the object root, no list indices,
/// e.g. `["spec","template","spec","containers","env"]`) in an object of `kind`. Lists
/// the Kubernetes types do not tag, and every list of an unknown kind except those of
/// `metadata`, are atomic (`Replace`).
pub fn list_strategy(kind: &str, path: &[&str]) -> ListStrategy {
    if let Some(strategy) = under_pod_spec(kind, path).and_then(pod_spec_list) {
        return strategy;
    }
    OBJECT_META_LISTS
        .iter()
        .find(|(pattern, _)| is_path(path, pattern))
        .map(|(_, s)| *s)
        .or_else(|| {
            KIND_LISTS
                .iter()
                .find(|(k, pattern, _)| *k == kind && is_path(path, pattern))
                .map(|(_, _, s)| *s)
        })
        .unwrap_or(ListStrategy::Replace)
}

/// Whether the map at `path` (or each item of the list at `path`) uses the `retainKeys`
/// strategy, e.g. Deployment `spec.strategy` and pod spec `volumes`.
pub fn retains_keys(kind: &str, path: &[&str]) -> bool {
    RETAIN_KEYS
        .iter()
        .any(|(k, pattern)| match pattern.strip_prefix("{podSpec}.") {
            Some(relative) => under_pod_spec(kind, path).is_some_and(|r| is_path(r, relative)),
            None => *k == kind && is_path(path, pattern),
        })
}

/// Whether the map at `path` is replaced wholesale by a patch (`patchStrategy:"replace"`).
pub fn replaces_map(kind: &str, path: &[&str]) -> bool {
    REPLACED_MAPS
        .iter()
        .any(|(k, pattern)| *k == kind && is_path(path, pattern))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_spec_lists_wherever_the_kind_keeps_its_pod_spec() {
        let env = ["spec", "template", "spec", "containers", "env"];
        assert_eq!(list_strategy("Deployment", &env), MergeByKey("name"));
        assert_eq!(
            list_strategy("Pod", &["spec", "initContainers", "volumeMounts"]),
            MergeByKey("mountPath")
        );
        assert_eq!(
            list_strategy("Pod", &["spec", "ephemeralContainers", "ports"]),
            MergeByKey("containerPort")
        );
        assert_eq!(
            list_strategy(
                "CronJob",
                &["spec", "jobTemplate", "spec", "template", "spec", "volumes"]
            ),
            MergeByKey("name")
        );
        assert_eq!(
            list_strategy("PodTemplate", &["template", "spec", "hostAliases"]),
            MergeByKey("ip")
        );
        assert_eq!(
            list_strategy("Pod", &["spec", "topologySpreadConstraints"]),
            MergeByKey("topologyKey")
        );
        // Same field names outside the pod spec mean nothing.
        assert_eq!(
            list_strategy("Deployment", &["spec", "containers"]),
            ListStrategy::Replace
        );
        assert_eq!(
            list_strategy("Service", &["spec", "containers"]),
            ListStrategy::Replace
        );
    }

    #[test]
    fn atomic_lists_and_unknown_kinds_replace() {
        assert_eq!(
            list_strategy("Pod", &["spec", "containers", "args"]),
            ListStrategy::Replace
        );
        assert_eq!(
            list_strategy("Pod", &["spec", "containers", "envFrom"]),
            ListStrategy::Replace
        );
        assert_eq!(
            list_strategy("Pod", &["spec", "tolerations"]),
            ListStrategy::Replace
        );
        assert_eq!(
            list_strategy("Node", &["spec", "taints"]),
            ListStrategy::Replace
        );
        assert_eq!(
            list_strategy("Endpoints", &["subsets"]),
            ListStrategy::Replace
        );
        assert_eq!(
            list_strategy("Namespace", &["spec", "finalizers"]),
            ListStrategy::Replace
        );
        assert_eq!(
            list_strategy("Widget", &["spec", "items"]),
            ListStrategy::Replace
        );
        assert_eq!(
            list_strategy("Widget", &["status", "conditions"]),
            ListStrategy::Replace
        );
    }

    #[test]
    fn metadata_lists_in_every_kind() {
        assert_eq!(
            list_strategy("ConfigMap", &["metadata", "finalizers"]),
            MergePrimitives
        );
        assert_eq!(
            list_strategy("Widget", &["metadata", "ownerReferences"]),
            MergeByKey("uid")
        );
    }

    #[test]
    fn kind_lists() {
        assert_eq!(
            list_strategy("Service", &["spec", "ports"]),
            MergeByKey("port")
        );
        assert_eq!(
            list_strategy("Node", &["status", "addresses"]),
            MergeByKey("type")
        );
        assert_eq!(
            list_strategy("Node", &["spec", "podCIDRs"]),
            MergePrimitives
        );
        assert_eq!(
            list_strategy("Deployment", &["status", "conditions"]),
            MergeByKey("type")
        );
        assert_eq!(
            list_strategy("Pod", &["status", "podIPs"]),
            MergeByKey("ip")
        );
    }

    #[test]
    fn retain_keys_and_replaced_maps() {
        assert!(retains_keys("Deployment", &["spec", "strategy"]));
        assert!(retains_keys(
            "Deployment",
            &["spec", "template", "spec", "volumes"]
        ));
        assert!(retains_keys("Pod", &["spec", "volumes"]));
        assert!(!retains_keys("Pod", &["spec", "containers"]));
        assert!(!retains_keys("DaemonSet", &["spec", "updateStrategy"]));
        assert!(!retains_keys("Service", &["spec", "ports"]));
        assert!(replaces_map("PodDisruptionBudget", &["spec", "selector"]));
        assert!(!replaces_map("Deployment", &["spec", "selector"]));
    }
}
