//! Server-side apply's merge (structured-merge-diff's `merge.Updater`): an applied
//! configuration merged into the live object, the fields a manager let go of removed,
//! and the conflicts with other managers found.

use serde_json::Value;

use crate::fields::{self, FieldSet, ListType, ListTypes};

/// Merge `applied` into `live`: objects field by field, associative lists item by item
/// on their keys, sets as unions, everything else (atomic lists, scalars) replaced.
pub fn merge(live: &Value, applied: &Value, lists: ListTypes) -> Value {
    merge_at(live, applied, lists, &mut Vec::new())
}

fn merge_at<'v>(
    live: &'v Value,
    applied: &'v Value,
    lists: ListTypes,
    at: &mut Vec<&'v str>,
) -> Value {
    match (live, applied) {
        (Value::Object(old), Value::Object(new)) => {
            let mut out = old.clone();
            for (key, value) in new {
                at.push(key);
                let merged = match old.get(key) {
                    Some(current) => merge_at(current, value, lists, at),
                    None => value.clone(),
                };
                at.pop();
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(old), Value::Array(new)) => match lists(at) {
            ListType::Atomic => applied.clone(),
            ListType::Set => {
                let mut out = old.clone();
                for item in new {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Value::Array(out)
            }
            ListType::Map(keys) => {
                let same = |a: &Value, b: &Value| keys.iter().all(|k| a.get(*k) == b.get(*k));
                let mut out: Vec<Value> = old
                    .iter()
                    .map(|item| match new.iter().find(|n| same(item, n)) {
                        Some(n) => merge_at(item, n, lists, at),
                        None => item.clone(),
                    })
                    .collect();
                for item in new {
                    if !old.iter().any(|o| same(o, item)) {
                        out.push(item.clone());
                    }
                }
                Value::Array(out)
            }
        },
        _ => applied.clone(),
    }
}

/// A field another manager owns whose value the applied configuration changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Index into the `others` given to [`conflicts`].
    pub manager: usize,
    pub path: Vec<String>,
}

/// The conflicts of applying `applied` (whose fields are `applied_set`) over `live`:
/// every leaf of the applied set that one of `others` owns and whose value would change.
/// Two managers setting a field to the same value share it, as upstream.
pub fn conflicts(
    live: &Value,
    applied: &Value,
    applied_set: &FieldSet,
    others: &[&FieldSet],
    lists: ListTypes,
) -> Vec<Conflict> {
    let mut out = Vec::new();
    for path in applied_set.members() {
        // An associative-list item is compared field by field, not whole.
        let is_leaf = leaf(applied_set, &path);
        if !is_leaf {
            continue;
        }
        let before = fields::value_at(live, &path, lists);
        let after = fields::value_at(applied, &path, lists);
        if before.is_none() || before == after {
            continue;
        }
        for (i, other) in others.iter().enumerate() {
            if other.contains(&path) {
                out.push(Conflict {
                    manager: i,
                    path: path.clone(),
                });
            }
        }
    }
    out
}

fn leaf(set: &FieldSet, path: &[String]) -> bool {
    let mut node = set;
    for element in path {
        match node.child(element) {
            Some(child) => node = child,
            None => return false,
        }
    }
    node.children().next().is_none()
}

/// The fields an update changed: members of the new object's set whose value is new or
/// differs from the old object's.
pub fn changed(old: &Value, new: &Value, lists: ListTypes) -> FieldSet {
    let mut out = FieldSet::default();
    for path in fields::of(new, lists).members() {
        if fields::value_at(old, &path, lists) != fields::value_at(new, &path, lists) {
            out.insert(&path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lists(path: &[&str]) -> ListType {
        match path.last() {
            Some(&"containers") => ListType::Map(vec!["name"]),
            Some(&"finalizers") => ListType::Set,
            _ => ListType::Atomic,
        }
    }

    #[test]
    fn merges_by_list_type() {
        let live = json!({"spec": {"replicas": 1, "containers": [{"name": "a", "image": "x", "env": [1]}, {"name": "b", "image": "y"}]},
            "metadata": {"finalizers": ["f"]}});
        let applied = json!({"spec": {"containers": [{"name": "a", "image": "z", "env": [2]}, {"name": "c", "image": "w"}]},
            "metadata": {"finalizers": ["g"]}});
        assert_eq!(
            merge(&live, &applied, &lists),
            json!({"spec": {"replicas": 1, "containers": [{"name": "a", "image": "z", "env": [2]}, {"name": "b", "image": "y"}, {"name": "c", "image": "w"}]},
                "metadata": {"finalizers": ["f", "g"]}})
        );
    }

    #[test]
    fn conflicts_only_where_values_differ() {
        let live = json!({"spec": {"replicas": 3, "paused": false}});
        let other = fields::of(&live, &lists);
        let same = json!({"spec": {"replicas": 3}});
        assert!(conflicts(&live, &same, &fields::of(&same, &lists), &[&other], &lists).is_empty());
        let differs = json!({"spec": {"replicas": 5}});
        let found = conflicts(
            &live,
            &differs,
            &fields::of(&differs, &lists),
            &[&other],
            &lists,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(fields::display(&found[0].path), ".spec.replicas");
    }

    #[test]
    fn changed_fields_of_an_update() {
        let old = json!({"spec": {"replicas": 3, "paused": false}});
        let new = json!({"spec": {"replicas": 4, "paused": false, "x": 1}});
        let members: Vec<String> = changed(&old, &new, &lists)
            .members()
            .iter()
            .map(|p| fields::display(p))
            .collect();
        assert_eq!(members, [".spec.replicas", ".spec.x"]);
    }
}
