//! Revisions and rollbacks. `kubectl rollout undo` patches an old ReplicaSet's template
//! (and its annotations) back into the deployment; this controller then finds that old
//! ReplicaSet as the new one again, gives it the next revision and records the revision
//! it had in `deployment.kubernetes.io/revision-history` (upstream
//! `SetNewReplicaSetAnnotations`), then scales it up like any new ReplicaSet.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::ResourceExt;

use super::util::{
    DESIRED_REPLICAS, MAX_REPLICAS, MAX_REVISION_HISTORY_CHARS, REVISION, REVISION_HISTORY,
    annotations_to_copy, desired_of, max_surge,
};

/// The annotations the deployment's new ReplicaSet should carry at `new_revision`, or
/// `None` if it has them already. `exists` is false for a ReplicaSet about to be created,
/// which also gets the desired/max replica annotations.
pub fn new_replicaset_annotations(
    d: &Deployment,
    rs: &ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> Option<BTreeMap<String, String>> {
    let mut annotations = rs.annotations().clone();
    let copied = annotations_to_copy(d, &annotations);
    let mut changed = !copied.is_empty();
    annotations.extend(copied);

    let old_revision = annotations.get(REVISION).cloned();
    let old_number = match old_revision.as_deref() {
        None => 0,
        Some(text) => match text.parse::<i64>() {
            Ok(n) => n,
            // Upstream leaves a ReplicaSet with an unparsable revision alone.
            Err(_) => return changed.then_some(annotations),
        },
    };
    if old_number < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        // It had a revision before: this is a rollback to it. Keep the old number.
        let history = annotations
            .get(REVISION_HISTORY)
            .map(String::as_str)
            .unwrap_or("");
        if let Some(history) = old_revision.and_then(|old| append_history(history, &old)) {
            annotations.insert(REVISION_HISTORY.into(), history);
        }
    }
    if !exists {
        let desired = desired_of(d);
        annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
        annotations.insert(MAX_REPLICAS.into(), (desired + max_surge(d)).to_string());
        changed = true;
    }
    changed.then_some(annotations)
}

/// Append `old` to a comma-separated history, dropping the oldest entries to stay within
/// upstream's 2000-character limit; `None` if even that cannot fit it.
fn append_history(history: &str, old: &str) -> Option<String> {
    if history.is_empty() {
        return Some(old.to_string());
    }
    let mut entries: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old.len() + 1;
    let mut start = 0;
    while total > MAX_REVISION_HISTORY_CHARS && start < entries.len() {
        total -= entries[start].len() + 1;
        start += 1;
    }
    if total > MAX_REVISION_HISTORY_CHARS {
        return None;
    }
    entries.drain(..start);
    entries.push(old);
    Some(entries.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::util::CHANGE_CAUSE;

    fn deployment(annotations: serde_json::Value) -> Deployment {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "d", "annotations": annotations},
            "spec": {"replicas": 3, "selector": {}, "template": {}}}),
        )
        .unwrap()
    }

    fn rs(annotations: serde_json::Value) -> ReplicaSet {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "d-x", "annotations": annotations}}),
        )
        .unwrap()
    }

    #[test]
    fn a_new_replicaset_gets_revision_replicas_and_change_cause() {
        let d = deployment(serde_json::json!({CHANGE_CAUSE: "v2"}));
        let a = new_replicaset_annotations(&d, &rs(serde_json::json!({})), 3, false).unwrap();
        assert_eq!(a.get(REVISION).map(String::as_str), Some("3"));
        assert_eq!(a.get(DESIRED_REPLICAS).map(String::as_str), Some("3"));
        assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("4"));
        assert_eq!(a.get(CHANGE_CAUSE).map(String::as_str), Some("v2"));
        assert!(!a.contains_key(REVISION_HISTORY));
    }

    #[test]
    fn rolling_back_bumps_the_revision_and_keeps_history() {
        let d = deployment(serde_json::json!({}));
        let a = new_replicaset_annotations(&d, &rs(serde_json::json!({REVISION: "1"})), 3, true)
            .unwrap();
        assert_eq!(a.get(REVISION).map(String::as_str), Some("3"));
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("1"));
        let again = new_replicaset_annotations(
            &d,
            &rs(serde_json::json!({REVISION: "3", REVISION_HISTORY: "1"})),
            5,
            true,
        )
        .unwrap();
        assert_eq!(again.get(REVISION_HISTORY).map(String::as_str), Some("1,3"));
        // Already current: nothing to write.
        assert_eq!(
            new_replicaset_annotations(&d, &rs(serde_json::json!({REVISION: "5"})), 5, true),
            None
        );
        assert_eq!(
            new_replicaset_annotations(&d, &rs(serde_json::json!({REVISION: "7"})), 5, true),
            None
        );
    }

    #[test]
    fn history_is_trimmed_from_the_oldest() {
        let long: Vec<String> = (0..600).map(|n| n.to_string()).collect();
        let history = append_history(&long.join(","), "999").unwrap();
        assert!(history.len() <= MAX_REVISION_HISTORY_CHARS);
        assert!(history.ends_with(",599,999"));
        assert!(!history.starts_with("0,"));
    }
}
