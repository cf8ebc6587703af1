//! Deployment helpers ported from upstream `pkg/controller/deployment/util/deployment_util.go`
//! and `controller_utils.go`: the pod-template hash, template equality, revisions,
//! annotations and the maxSurge/maxUnavailable fenceposts.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
pub const HASH_LABEL: &str = "pod-template-hash";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// Upstream's `maxRevHistoryLengthInChars`.
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Upstream's `rand.SafeEncodeString`: no vowels, no look-alike characters.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.chars()
        .map(|c| ALPHANUMS[c as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// FNV-1a, 32 bits. Written out because the `fnv` crate only offers the 64-bit
/// variant, and the hash must be 32 bits to give upstream-length names.
fn fnv32a(chunks: &[&[u8]]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in chunks.iter().flat_map(|c| c.iter()) {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The `pod-template-hash` (upstream `ComputeHash`): FNV-32a of the template, here its
/// canonical JSON (struct fields in declaration order, maps sorted), then the collision
/// count as 8 little-endian bytes as upstream writes it.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // Serializing a typed template cannot fail (no non-string map keys, no foreign
    // Serialize impls); an empty body would still give a stable, valid hash.
    let json = serde_json::to_vec(template).unwrap_or_default();
    let count = collision_count.map(|c| {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        bytes
    });
    let hash = match &count {
        Some(bytes) => fnv32a(&[&json, bytes]),
        None => fnv32a(&[&json]),
    };
    safe_encode(&hash.to_string())
}

fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
        if labels.is_empty()
            && let Some(meta) = t.metadata.as_mut()
        {
            meta.labels = None;
        }
    }
    t
}

/// Upstream `EqualIgnoreHash`: the templates are equal apart from the hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

pub fn template_of(rs: &ReplicaSet) -> Option<&PodTemplateSpec> {
    rs.spec.as_ref()?.template.as_ref()
}

pub fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub fn max_revision(replicasets: &[Arc<ReplicaSet>]) -> i64 {
    replicasets
        .iter()
        .map(|r| revision_of(r))
        .max()
        .unwrap_or(0)
}

/// `spec.replicas` (absent means 1 for a deployment, 0 left in a ReplicaSet we made).
pub fn replicas_of(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

pub fn actual_of(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

pub fn ready_of(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn available_of(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn desired_of(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        != Some("Recreate")
}

/// Upstream `GetScaledValueFromIntOrPercent`.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match value {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => {
            let percent: i64 = s.strip_suffix('%')?.parse().ok()?;
            let product = percent * i64::from(total);
            let scaled = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(scaled).ok()
        }
    }
}

/// Upstream `ResolveFenceposts`: (maxSurge, maxUnavailable), surge rounded up and
/// unavailable down; if both come out zero, unavailable is 1 so the rollout can move.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> (i32, i32) {
    let default = IntOrString::String("25%".into());
    let surge = scaled_value(max_surge.unwrap_or(&default), desired, true)
        .unwrap_or(0)
        .max(0);
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&default), desired, false)
        .unwrap_or(0)
        .max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        rolling.and_then(|r| r.max_surge.as_ref()),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        desired_of(d),
    )
}

/// Upstream `MaxSurge`.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

/// Upstream `MaxUnavailable`.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let desired = desired_of(d);
    if !is_rolling(d) || desired == 0 {
        return 0;
    }
    fenceposts(d).1.min(desired)
}

/// Upstream `skipCopyAnnotation`.
pub fn skip_copy_annotation(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO
    )
}

/// The deployment's annotations a ReplicaSet lacks or has with another value
/// (upstream `copyDeploymentAnnotationsToReplicaSet`; it never removes any).
pub fn annotations_to_copy(
    d: &Deployment,
    rs_annotations: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    d.annotations()
        .iter()
        .filter(|(k, v)| !skip_copy_annotation(k) && rs_annotations.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether the desired/max replica annotations differ from these values.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    rs.annotations().get(DESIRED_REPLICAS) != Some(&desired.to_string())
        || rs.annotations().get(MAX_REPLICAS) != Some(&max.to_string())
}

pub fn desired_annotation(rs: &ReplicaSet) -> Option<i32> {
    rs.annotations().get(DESIRED_REPLICAS)?.parse().ok()
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    rs.annotations().get(MAX_REPLICAS)?.parse().ok()
}

/// The oldest ReplicaSet whose template equals the deployment's (upstream
/// `FindNewReplicaSet`; sorted by creation so a duplicate never wins).
pub fn find_new(d: &Deployment, replicasets: &[Arc<ReplicaSet>]) -> Option<Arc<ReplicaSet>> {
    let template = &d.spec.as_ref()?.template;
    let mut sorted = replicasets.to_vec();
    sort_by_creation(&mut sorted);
    sorted
        .into_iter()
        .find(|r| template_of(r).is_some_and(|t| equal_ignore_hash(t, template)))
}

/// Oldest first, then by name (upstream `ReplicaSetsByCreationTimestamp`).
pub fn sort_by_creation(replicasets: &mut [Arc<ReplicaSet>]) {
    replicasets.sort_by(|a, b| {
        let created = |r: &ReplicaSet| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
}

/// ReplicaSets with `spec.replicas > 0`.
pub fn active(replicasets: &[Arc<ReplicaSet>]) -> Vec<Arc<ReplicaSet>> {
    replicasets
        .iter()
        .filter(|r| replicas_of(r) > 0)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": image}]}})).unwrap()
    }

    #[test]
    fn fenceposts_round_as_upstream() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(resolve_fenceposts(None, None, 3), (1, 0));
        assert_eq!(resolve_fenceposts(None, None, 10), (3, 2));
        assert_eq!(
            resolve_fenceposts(Some(&IntOrString::Int(3)), Some(&IntOrString::Int(0)), 3),
            (3, 0)
        );
        assert_eq!(
            resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 3),
            (0, 1)
        );
        assert_eq!(
            resolve_fenceposts(Some(&pct("0%")), Some(&pct("10%")), 3),
            (0, 1)
        );
        assert_eq!(
            resolve_fenceposts(Some(&pct("50%")), Some(&pct("50%")), 3),
            (2, 1)
        );
        assert_eq!(scaled_value(&pct("bogus"), 3, true), None);
    }

    #[test]
    fn hash_is_stable_safe_and_sensitive() {
        let t = template("i:1");
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&t.clone(), None));
        assert!(h.len() >= 6 && h.len() <= 10, "{h}");
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_ne!(h, template_hash(&template("i:2"), None));
        assert_ne!(h, template_hash(&t, Some(1)));
        assert_ne!(template_hash(&t, Some(1)), template_hash(&t, Some(2)));
        // Pinned: the name of a deployment's ReplicaSet must not change between releases.
        assert_eq!(fnv32a(&[b"a"]), 0xe40c292c);
        assert_eq!(safe_encode("0123"), "4567");
    }

    #[test]
    fn equality_ignores_only_the_hash_label() {
        let t = template("i:1");
        let mut hashed = t.clone();
        hashed
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), "abc".into());
        assert!(equal_ignore_hash(&t, &hashed));
        assert!(!equal_ignore_hash(&t, &template("i:2")));
    }

    #[test]
    fn annotations_copied_skip_kubectl_and_revision_ones() {
        let d: Deployment = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "d", "annotations": {
            CHANGE_CAUSE: "kubectl set image", LAST_APPLIED: "{}", REVISION: "4", "team": "a"}}}),
        )
        .unwrap();
        let copy = annotations_to_copy(&d, &[("team".to_string(), "a".to_string())].into());
        assert_eq!(
            copy,
            [(CHANGE_CAUSE.to_string(), "kubectl set image".to_string())].into()
        );
    }
}
