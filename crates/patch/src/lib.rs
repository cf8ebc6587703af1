//! Patches as the API server applies them: RFC 6902 JSON patch and RFC 7396 merge patch
//! (through the `json-patch` crate), and Kubernetes' strategic merge patch.
//!
//! - [`json_patch()`] applies `application/json-patch+json` (kubectl `rollout undo`,
//!   `patch --type json`).
//! - [`merge_patch`] applies `application/merge-patch+json`.
//! - [`strategic_merge_patch`] applies `application/strategic-merge-patch+json` (kubectl
//!   `apply`, `edit`, `scale`, the Python client), ported in `smp` from apimachinery.
//! - [`strategy`] says which lists merge by which key, from the Kubernetes types' struct tags.

pub mod apply;
pub mod fields;
mod smp;
pub mod strategy;

use serde_json::Value;

pub use strategy::{ListStrategy, list_strategy, replaces_map, retains_keys};

/// More JSON-patch operations than this are refused (CVE-2019-1002100), as the
/// Kubernetes API server does.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Why a patch could not be applied. Messages say what is wrong and where, for a
/// Kubernetes `Status` message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The patch (or the object patched) is not a JSON object where one is required.
    #[error("{document} must be a JSON object, not a {found}")]
    NotAnObject {
        document: &'static str,
        found: &'static str,
    },
    /// A JSON patch is not a list of well-formed operations.
    #[error("invalid JSON patch: {0}")]
    InvalidJsonPatch(String),
    /// A JSON patch operation failed: a path that does not exist, a `test` that failed...
    #[error("the JSON patch could not be applied: {0}")]
    JsonPatchFailed(String),
    /// A JSON patch has more than [`MAX_JSON_PATCH_OPERATIONS`] operations.
    #[error(
        "the JSON patch has {0} operations, more than the limit of {MAX_JSON_PATCH_OPERATIONS}"
    )]
    TooManyOperations(usize),
    /// A strategic merge patch list item (or a live item it is merged with) lacks the
    /// list's merge key.
    #[error("map: {item} does not contain declared merge key: {key} (in {path})")]
    MissingMergeKey {
        item: String,
        key: String,
        path: String,
    },
    /// A `$patch` directive other than `replace`, `delete` or `merge`.
    #[error("unknown patch type: {directive} (in {path})")]
    UnknownDirective { directive: String, path: String },
    /// A `$retainKeys`, `$setElementOrder/…` or `$deleteFromPrimitiveList/…` directive of the
    /// wrong shape.
    #[error("invalid patch format of {directive} (in {path}): {reason}")]
    BadDirective {
        directive: String,
        path: String,
        reason: String,
    },
    /// The patch list's items are not in the order its `$setElementOrder` list gives.
    #[error(
        "the order in patch list {list} doesn't match $setElementOrder list {order} (in {path})"
    )]
    OrderMismatch {
        list: String,
        order: String,
        path: String,
    },
    /// A list the strategic merge patch cannot merge (mixed item types, lists of lists,
    /// objects in a list of scalars...).
    #[error("cannot merge the list {path}: {reason}")]
    UnmergeableList { path: String, reason: String },
}

/// Apply a strategic merge patch to an object of `kind` (e.g. `"Deployment"`); lists merge
/// as [`list_strategy`] says for that kind.
pub fn strategic_merge_patch(
    kind: &str,
    original: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    smp::apply(&smp::KindSchema(kind), original, patch)
}

/// Apply an RFC 6902 JSON patch.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(operations) = patch else {
        return Err(PatchError::InvalidJsonPatch(format!(
            "a JSON patch must be a list of operations, not a {}",
            smp::type_name(patch)
        )));
    };
    if operations.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations(operations.len()));
    }
    let parsed: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::InvalidJsonPatch(e.to_string()))?;
    let mut document = original.clone();
    json_patch::patch(&mut document, &parsed)
        .map_err(|e| PatchError::JsonPatchFailed(e.to_string()))?;
    Ok(document)
}

/// Apply an RFC 7396 merge patch. Like the Kubernetes API server, only an object is
/// accepted as the patch.
pub fn merge_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::NotAnObject {
            document: "a merge patch",
            found: smp::type_name(patch),
        });
    }
    let mut document = original.clone();
    json_patch::merge(&mut document, patch);
    Ok(document)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod upstream_tests;
