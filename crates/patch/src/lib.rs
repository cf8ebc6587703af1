//! Patches as the API server applies them: RFC 6902 JSON patch and RFC 7396 merge patch
//! (through the `json-patch` crate), and Kubernetes' strategic merge patch, which no Rust
//! crate implements: it is ported here from apimachinery's `strategicpatch` semantics.
//!
//! A strategic merge patch merges maps like a merge patch, but merges lists of objects by
//! a key (containers by `name`, ports by `containerPort`...) and honours directives:
//! `$patch: replace|delete|merge`, `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`
//! and `$retainKeys`. Which lists merge by which key comes from the Go struct tags of the
//! Kubernetes types, kept in [`strategy`].

pub mod strategy;

use serde_json::{Map, Value};

pub use strategy::{ListStrategy, list_strategy, retains_keys};

/// More JSON-patch operations than this are refused (CVE-2019-1002100).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    /// The patch document is not of the shape its type requires.
    #[error("invalid patch: {0}")]
    Invalid(String),
    /// A JSON-patch operation failed (missing path, failed `test`...).
    #[error("the JSON patch could not be applied: {0}")]
    Failed(String),
    /// A strategic merge patch list item lacks its merge key.
    #[error("map: {item} does not contain declared merge key: {key} (in {path})")]
    MissingMergeKey { item: String, key: String, path: String },
    /// Too many operations.
    #[error("the JSON patch has {0} operations; the limit is {MAX_JSON_PATCH_OPERATIONS}")]
    TooLarge(usize),
}

/// RFC 6902.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch.as_array().ok_or_else(|| PatchError::Invalid("a JSON patch must be a list of operations".into()))?;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooLarge(ops.len()));
    }
    let parsed: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| PatchError::Invalid(e.to_string()))?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &parsed).map_err(|e| PatchError::Failed(e.to_string()))?;
    Ok(doc)
}

/// RFC 7396.
pub fn merge_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::Invalid("a merge patch must be a JSON object".into()));
    }
    let mut doc = original.clone();
    json_patch::merge(&mut doc, patch);
    Ok(doc)
}

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVES: &str = "$deleteFromPrimitiveList/";

/// Apply a strategic merge patch to an object of `kind`.
pub fn strategic_merge_patch(kind: &str, original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let patch = patch.as_object().ok_or_else(|| PatchError::Invalid("a strategic merge patch must be a JSON object".into()))?;
    let original = original.as_object().cloned().unwrap_or_default();
    let mut path = Vec::new();
    match merge_map(kind, original, patch, &mut path)? {
        Some(map) => Ok(Value::Object(map)),
        None => Ok(Value::Object(Map::new())),
    }
}

/// Merge `patch` into `original`; `None` means the map was deleted (`$patch: delete`).
fn merge_map(kind: &str, mut original: Map<String, Value>, patch: &Map<String, Value>, path: &mut Vec<String>) -> Result<Option<Map<String, Value>>, PatchError> {
    match patch.get(DIRECTIVE).and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => {
            let mut replaced = patch.clone();
            replaced.remove(DIRECTIVE);
            return Ok(Some(strip_directives(replaced)));
        }
        Some("merge") | None => {}
        Some(other) => return Err(PatchError::Invalid(format!("unknown patch directive {other:?} at {}", path.join(".")))),
    }
    // Primitive-list deletions apply to the original before the merge.
    for (key, values) in patch.iter().filter_map(|(k, v)| k.strip_prefix(DELETE_PRIMITIVES).map(|f| (f, v))) {
        let remove = values.as_array().ok_or_else(|| PatchError::Invalid(format!("{DELETE_PRIMITIVES}{key} must be a list")))?;
        if let Some(list) = original.get_mut(key).and_then(Value::as_array_mut) {
            list.retain(|v| !remove.contains(v));
        }
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        path.push(key.clone());
        match value {
            Value::Null => {
                original.remove(key);
            }
            Value::Object(p) => {
                let base = match original.remove(key) {
                    Some(Value::Object(o)) => o,
                    _ => Map::new(),
                };
                if let Some(merged) = merge_map(kind, base, p, path)? {
                    original.insert(key.clone(), Value::Object(merged));
                }
            }
            Value::Array(items) => {
                let base = match original.remove(key) {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                let fields: Vec<&str> = path.iter().map(String::as_str).collect();
                let strategy = list_strategy(kind, &fields);
                let mut merged = merge_list(kind, base, items, strategy, path)?;
                if let Some(order) = patch.get(&format!("{SET_ORDER}{key}")).and_then(Value::as_array) {
                    merged = apply_order(merged, order, strategy);
                }
                original.insert(key.clone(), Value::Array(merged));
            }
            other => {
                original.insert(key.clone(), other.clone());
            }
        }
        path.pop();
    }
    // `$setElementOrder` for lists the patch did not otherwise touch still reorders them.
    for (key, order) in patch.iter().filter_map(|(k, v)| k.strip_prefix(SET_ORDER).map(|f| (f, v))) {
        if patch.contains_key(key) {
            continue;
        }
        if let (Some(Value::Array(list)), Some(order)) = (original.remove(key), order.as_array()) {
            path.push(key.to_string());
            let fields: Vec<&str> = path.iter().map(String::as_str).collect();
            let strategy = list_strategy(kind, &fields);
            path.pop();
            original.insert(key.to_string(), Value::Array(apply_order(list, order, strategy)));
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| PatchError::Invalid(format!("{RETAIN_KEYS} must be a list")))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        original.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(Some(original))
}

fn strip_directives(mut map: Map<String, Value>) -> Map<String, Value> {
    map.retain(|k, _| !k.starts_with('$'));
    for value in map.values_mut() {
        strip_value(value);
    }
    map
}

fn strip_value(value: &mut Value) {
    match value {
        Value::Object(m) => *m = strip_directives(std::mem::take(m)),
        Value::Array(items) => {
            items.retain(|i| i.get(DIRECTIVE).is_none_or(|d| d != "delete"));
            items.iter_mut().for_each(strip_value);
        }
        _ => {}
    }
}

fn merge_list(kind: &str, original: Vec<Value>, patch: &[Value], strategy: ListStrategy, path: &mut Vec<String>) -> Result<Vec<Value>, PatchError> {
    // `{"$patch": "replace"}` as a list item replaces the whole list with the other items.
    if patch.iter().any(|i| i.get(DIRECTIVE).and_then(Value::as_str) == Some("replace")) {
        let mut items: Vec<Value> = patch.iter().filter(|i| i.get(DIRECTIVE).is_none()).cloned().collect();
        items.iter_mut().for_each(strip_value);
        return Ok(items);
    }
    match strategy {
        ListStrategy::Replace => {
            let mut items = patch.to_vec();
            items.iter_mut().for_each(strip_value);
            Ok(items)
        }
        ListStrategy::MergePrimitives => {
            let mut merged = original;
            for item in patch {
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
            Ok(merged)
        }
        ListStrategy::MergeByKey(key) => {
            let mut merged = original;
            for item in patch {
                let Some(map) = item.as_object() else {
                    // A list declared mergeable that holds primitives merges as a set.
                    if !merged.contains(item) {
                        merged.push(item.clone());
                    }
                    continue;
                };
                let Some(id) = map.get(key) else {
                    return Err(PatchError::MissingMergeKey { item: item.to_string(), key: key.to_string(), path: path.join(".") });
                };
                let position = merged.iter().position(|o| o.get(key) == Some(id));
                let delete = map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete");
                match (position, delete) {
                    (Some(i), true) => {
                        merged.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => {
                        let base = merged[i].as_object().cloned().unwrap_or_default();
                        match merge_map(kind, base, map, path)? {
                            Some(m) => merged[i] = Value::Object(m),
                            None => {
                                merged.remove(i);
                            }
                        }
                    }
                    (None, false) => {
                        if let Some(m) = merge_map(kind, Map::new(), map, path)? {
                            merged.push(Value::Object(m));
                        }
                    }
                }
            }
            Ok(merged)
        }
    }
}

/// Order `list` as `$setElementOrder` says; items it does not name keep their relative
/// order after the named ones.
fn apply_order(list: Vec<Value>, order: &[Value], strategy: ListStrategy) -> Vec<Value> {
    let identity = |v: &Value| -> Value {
        match strategy {
            ListStrategy::MergeByKey(key) => v.get(key).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(identity).collect();
    let mut named: Vec<(usize, Value)> = Vec::new();
    let mut rest = Vec::new();
    for item in list {
        match wanted.iter().position(|w| *w == identity(&item)) {
            Some(i) => named.push((i, item)),
            None => rest.push(item),
        }
    }
    named.sort_by_key(|(i, _)| *i);
    named.into_iter().map(|(_, v)| v).chain(rest).collect()
}

#[cfg(test)]
mod tests;
