//! Kubernetes strategic merge patch, applied server-side: a port of apimachinery
//! `pkg/util/strategicpatch/patch.go` (`StrategicMergeMapPatch` → `mergeMap`,
//! `mergePatchIntoOriginal`, `mergeSlice`, `normalizeElementOrder`), because no Rust crate
//! implements it. Function names follow upstream so the two can be read side by side.
//!
//! Where upstream relies on decoding into Go structs afterwards (which drops unknown keys
//! and zeroes `null`s), this port cleans new values itself: `$`-directives are stripped and
//! `null` map entries dropped from anything copied from the patch into the result.

use serde_json::{Map, Value};

use crate::PatchError;
use crate::strategy::{self, ListStrategy};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// The patch metadata of the object being patched: which lists merge how.
pub(crate) trait PatchSchema {
    /// Strategy of the list at `path` (field names from the root, no indices).
    fn list_strategy(&self, path: &[&str]) -> ListStrategy;
    /// Whether the map at `path` is replaced rather than merged.
    fn replaces_map(&self, path: &[&str]) -> bool;
}

/// The built-in table for objects of one kind.
pub(crate) struct KindSchema<'a>(pub &'a str);

impl PatchSchema for KindSchema<'_> {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy {
        strategy::list_strategy(self.0, path)
    }
    fn replaces_map(&self, path: &[&str]) -> bool {
        strategy::replaces_map(self.0, path)
    }
}

/// Apply `patch` to `original` under `schema`.
pub(crate) fn apply(
    schema: &dyn PatchSchema,
    original: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject {
            document: "a strategic merge patch",
            found: type_name(patch),
        });
    };
    let original = match original {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        other => {
            return Err(PatchError::NotAnObject {
                document: "the object to patch",
                found: type_name(other),
            });
        }
    };
    let mut merger = Merger {
        schema,
        path: Vec::new(),
    };
    merger.merge_map(original, patch.clone()).map(Value::Object)
}

/// JSON type names for messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

struct Merger<'s> {
    schema: &'s dyn PatchSchema,
    /// Field names from the root to the value being merged (no list indices).
    path: Vec<String>,
}

impl Merger<'_> {
    fn location(&self) -> String {
        if self.path.is_empty() {
            "<root>".to_string()
        } else {
            self.path.join(".")
        }
    }

    fn fields(&self) -> Vec<&str> {
        self.path.iter().map(String::as_str).collect()
    }

    fn bad_directive(&self, directive: &str, reason: impl Into<String>) -> PatchError {
        PatchError::BadDirective {
            directive: directive.to_string(),
            path: self.location(),
            reason: reason.into(),
        }
    }

    fn missing_merge_key(&self, item: &Value, key: &str) -> PatchError {
        PatchError::MissingMergeKey {
            item: item.to_string(),
            key: key.to_string(),
            path: self.location(),
        }
    }

    /// The strategy of the list at the current path.
    fn list_strategy(&self) -> ListStrategy {
        self.schema.list_strategy(&self.fields())
    }

    /// `mergeMap`: merge `patch` into `original`.
    fn merge_map(
        &mut self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(directive) = patch.remove(DIRECTIVE) {
            match directive.as_str() {
                Some("replace") => return Ok(clean_map(patch)),
                // Upstream leaves an empty map in place of a deleted one.
                Some("delete") => return Ok(Map::new()),
                // Upstream rejects `merge` in maps; it is the default, so it is accepted here.
                Some("merge") => {}
                _ => {
                    return Err(PatchError::UnknownDirective {
                        directive: directive.to_string(),
                        path: self.location(),
                    });
                }
            }
        }
        self.apply_retain_keys_directive(&mut original, &mut patch)?;
        self.merge_patch_into_original(&mut original, &mut patch)?;

        for (key, patch_value) in patch {
            let (field, is_delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                Some(rest) => match rest.strip_prefix('/') {
                    Some(field) if !field.is_empty() => (field.to_string(), true),
                    _ => {
                        return Err(
                            self.bad_directive(&key, "expected $deleteFromPrimitiveList/<field>")
                        );
                    }
                },
                None => (key, false),
            };
            if patch_value.is_null() {
                original.remove(&field);
                continue;
            }
            let Some(original_value) = original.remove(&field) else {
                if !is_delete_list && let Some(value) = clean_value(patch_value) {
                    original.insert(field, value);
                }
                continue;
            };
            self.path.push(field.clone());
            let merged = match (original_value, patch_value) {
                (Value::Object(o), Value::Object(p)) => {
                    if self.schema.replaces_map(&self.fields()) {
                        Some(Value::Object(clean_map(p)))
                    } else {
                        Some(Value::Object(self.merge_map(o, p)?))
                    }
                }
                (Value::Array(o), Value::Array(p)) => {
                    let strategy = self.list_strategy();
                    Some(Value::Array(self.merge_slice_handler(
                        o,
                        p,
                        strategy,
                        is_delete_list,
                    )?))
                }
                // Different types, or scalars: the patch value wins, except that a deletion
                // list never writes anything.
                (original_value, _) if is_delete_list => Some(original_value),
                (_, patch_value) => clean_value(patch_value),
            };
            self.path.pop();
            if let Some(value) = merged {
                original.insert(field, value);
            }
        }
        Ok(original)
    }

    /// `applyRetainKeysDirective`: drop the keys of `original` not listed in `$retainKeys`,
    /// after checking that the patch itself only sets listed keys.
    fn apply_retain_keys_directive(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
    ) -> Result<(), PatchError> {
        let Some(retain) = patch.remove(RETAIN_KEYS) else {
            return Ok(());
        };
        let Value::Array(retain) = retain else {
            return Err(self.bad_directive(RETAIN_KEYS, "must be a list of field names"));
        };
        for (key, value) in patch.iter() {
            if value.is_null()
                || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
                || key.starts_with(SET_ELEMENT_ORDER)
            {
                continue;
            }
            if !retain.iter().any(|r| r.as_str() == Some(key)) {
                return Err(self.bad_directive(
                    RETAIN_KEYS,
                    format!("the patch sets {key:?}, which the list does not retain"),
                ));
            }
        }
        original.retain(|key, _| retain.iter().any(|r| r.as_str() == Some(key)));
        Ok(())
    }

    /// `mergePatchIntoOriginal`: merge each list that has a `$setElementOrder/<field>`
    /// (together with its patch list, if any) and put it in the requested order. The
    /// precedence is `$setElementOrder` > order in the patch list > order in the live list.
    fn merge_patch_into_original(
        &mut self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
    ) -> Result<(), PatchError> {
        let directives: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        for directive in directives {
            let Some(order) = patch.remove(&directive) else {
                continue;
            };
            let field = match directive[SET_ELEMENT_ORDER.len()..].strip_prefix('/') {
                Some(field) if !field.is_empty() => field.to_string(),
                _ => {
                    return Err(self.bad_directive(&directive, "expected $setElementOrder/<field>"));
                }
            };
            let Value::Array(order) = order else {
                return Err(self.bad_directive(&directive, "must be a list"));
            };
            let original_list = match original.get(&field) {
                None | Some(Value::Null) => None,
                Some(Value::Array(list)) => Some(list.clone()),
                Some(other) => {
                    return Err(self.bad_directive(
                        &directive,
                        format!("{field} is a {}, not a list", type_name(other)),
                    ));
                }
            };
            let patch_list = match patch.get(&field) {
                None => None,
                // The list is being deleted: there is nothing to order.
                Some(Value::Null) => continue,
                Some(Value::Array(list)) => Some(list.clone()),
                Some(other) => {
                    return Err(self.bad_directive(
                        &directive,
                        format!(
                            "the patch sets {field} to a {}, not a list",
                            type_name(other)
                        ),
                    ));
                }
            };
            self.path.push(field.clone());
            let strategy = self.list_strategy();
            let merge_key = merge_key_of(strategy);
            self.validate_patch_with_set_order_list(
                patch_list.as_deref().unwrap_or_default(),
                &order,
                merge_key,
            )?;
            let live_order = match (merge_key, &original_list, &patch_list) {
                (Some(key), Some(original_list), Some(patch_list)) => {
                    live_order_seen_upstream(original_list, patch_list, key)
                }
                _ => original_list.clone().unwrap_or_default(),
            };
            let merged = match (original_list, patch_list) {
                (Some(o), None) => o,
                (None, Some(p)) => clean_list(p),
                (Some(o), Some(p)) => self.merge_slice_handler(o, p, strategy, false)?,
                (None, None) => {
                    self.path.pop();
                    continue;
                }
            };
            let (patch_items, server_only) =
                self.partition_by_presence(merged, &order, merge_key)?;
            let ordered = self.normalize_element_order(
                patch_items,
                server_only,
                &order,
                &live_order,
                merge_key,
            )?;
            self.path.pop();
            original.insert(field.clone(), Value::Array(ordered));
            patch.remove(&field);
        }
        Ok(())
    }

    /// `validatePatchWithSetOrderList`: the patch list's items must appear in the
    /// `$setElementOrder` list, in the same relative order (deletions aside).
    fn validate_patch_with_set_order_list(
        &self,
        patch_list: &[Value],
        order: &[Value],
        merge_key: Option<&str>,
    ) -> Result<(), PatchError> {
        if order.is_empty() || patch_list.is_empty() {
            return Ok(());
        }
        let kept: Vec<&Value> = match merge_key {
            Some(_) => patch_list
                .iter()
                .filter(|item| directive_of(item) != Some("delete"))
                .collect(),
            None => patch_list.iter().collect(),
        };
        let (mut patch_index, mut order_index) = (0, 0);
        while patch_index < kept.len() && order_index < order.len() {
            if directive_of(kept[patch_index]).is_some() {
                patch_index += 1;
                continue;
            }
            if self.merge_key_value_equal(kept[patch_index], &order[order_index], merge_key)? {
                patch_index += 1;
            }
            order_index += 1;
        }
        if patch_index < kept.len() {
            return Err(PatchError::OrderMismatch {
                list: Value::Array(patch_list.to_vec()).to_string(),
                order: Value::Array(order.to_vec()).to_string(),
                path: self.location(),
            });
        }
        Ok(())
    }

    fn merge_key_value_equal(
        &self,
        left: &Value,
        right: &Value,
        merge_key: Option<&str>,
    ) -> Result<bool, PatchError> {
        let Some(key) = merge_key else {
            return Ok(left == right);
        };
        let left_id = left
            .get(key)
            .ok_or_else(|| self.missing_merge_key(left, key))?;
        let right_id = right
            .get(key)
            .ok_or_else(|| self.missing_merge_key(right, key))?;
        Ok(left_id == right_id)
    }

    /// `mergeSliceHandler`.
    fn merge_slice_handler(
        &mut self,
        original: Vec<Value>,
        patch: Vec<Value>,
        strategy: ListStrategy,
        is_delete_list: bool,
    ) -> Result<Vec<Value>, PatchError> {
        match strategy {
            // Deletion lists apply whatever the field's strategy.
            _ if is_delete_list => self.merge_slice(original, patch, merge_key_of(strategy), true),
            ListStrategy::Replace => Ok(clean_list(patch)),
            ListStrategy::MergePrimitives => self.merge_slice(original, patch, None, false),
            ListStrategy::MergeByKey(key) => self.merge_slice(original, patch, Some(key), false),
        }
    }

    /// `mergeSlice`: merge two lists of scalars as a set, or two lists of objects by key,
    /// then order the result (patch order first, live order for the rest).
    fn merge_slice(
        &mut self,
        original: Vec<Value>,
        patch: Vec<Value>,
        merge_key: Option<&str>,
        is_delete_list: bool,
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let holds_objects = self.element_kind(&original, &patch)? == "object";
        let (original, patch, merged) = if !holds_objects {
            if is_delete_list {
                return Ok(original
                    .into_iter()
                    .filter(|item| !patch.contains(item))
                    .collect());
            }
            if let Some(key) = merge_key {
                return Err(PatchError::UnmergeableList {
                    path: self.location(),
                    reason: format!(
                        "its items should be objects merged by {key:?}, but they are scalars"
                    ),
                });
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for item in original.iter().chain(&patch) {
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
            (original, patch, merged)
        } else {
            let Some(key) = merge_key else {
                return Err(PatchError::UnmergeableList {
                    path: self.location(),
                    reason: "it holds objects but declares no merge key".to_string(),
                });
            };
            let (original, patch) = self.merge_slice_with_special_elements(original, patch, key)?;
            let merged =
                self.merge_slice_without_special_elements(original.clone(), patch.clone(), key)?;
            (original, patch, merged)
        };
        let (patch_items, server_only) = self.partition_by_presence(merged, &patch, merge_key)?;
        self.normalize_element_order(patch_items, server_only, &patch, &original, merge_key)
    }

    /// `sliceElementType`: all items must be of one JSON type, and not lists.
    fn element_kind(
        &self,
        original: &[Value],
        patch: &[Value],
    ) -> Result<&'static str, PatchError> {
        let mut kinds = original.iter().chain(patch).map(type_name);
        let first = kinds.next().unwrap_or("null");
        if first == "list" {
            return Err(PatchError::UnmergeableList {
                path: self.location(),
                reason: "lists of lists are not supported".to_string(),
            });
        }
        if let Some(other) = kinds.find(|k| *k != first) {
            return Err(PatchError::UnmergeableList {
                path: self.location(),
                reason: format!("list element types are not identical ({first} and {other})"),
            });
        }
        Ok(first)
    }

    /// `mergeSliceWithSpecialElements`: apply `$patch: delete` items to the original and
    /// honour `$patch: replace`; returns the new original and the remaining patch items.
    fn merge_slice_with_special_elements(
        &self,
        mut original: Vec<Value>,
        patch: Vec<Value>,
        key: &str,
    ) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
        let mut plain = Vec::with_capacity(patch.len());
        let mut replace = false;
        for item in patch {
            match directive_of(&item) {
                None => plain.push(item),
                Some("delete") => {
                    let id = item
                        .get(key)
                        .ok_or_else(|| self.missing_merge_key(&item, key))?;
                    original.retain(|o| o.get(key) != Some(id));
                }
                Some("replace") => replace = true,
                // Upstream rejects this; it is the default, so an item carrying it merges as
                // usual and a bare marker is dropped.
                Some("merge") => {
                    if item.as_object().is_some_and(|m| m.len() > 1) {
                        plain.push(item);
                    }
                }
                Some(_) => {
                    let directive = item.get(DIRECTIVE).cloned().unwrap_or(Value::Null);
                    return Err(PatchError::UnknownDirective {
                        directive: directive.to_string(),
                        path: self.location(),
                    });
                }
            }
        }
        if replace {
            return Ok((clean_list(plain), Vec::new()));
        }
        Ok((original, plain))
    }

    /// `mergeSliceWithoutSpecialElements`: merge each patch item into the original item
    /// with the same key, or append it.
    fn merge_slice_without_special_elements(
        &mut self,
        mut original: Vec<Value>,
        patch: Vec<Value>,
        key: &str,
    ) -> Result<Vec<Value>, PatchError> {
        for item in patch {
            let id = item
                .get(key)
                .ok_or_else(|| self.missing_merge_key(&item, key))?;
            let found = original.iter().position(|o| o.get(key) == Some(id));
            match (found, item) {
                (Some(index), Value::Object(item)) => {
                    let base = match std::mem::take(&mut original[index]) {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    };
                    original[index] = Value::Object(self.merge_map(base, item)?);
                }
                (_, item) => original.extend(clean_value(item)),
            }
        }
        Ok(original)
    }

    /// `partitionPrimitivesByPresentInList` / `partitionMapsByPresentInList`: split
    /// `merged` into the items present in `reference` and the others.
    fn partition_by_presence(
        &self,
        merged: Vec<Value>,
        reference: &[Value],
        merge_key: Option<&str>,
    ) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
        let mut present = Vec::new();
        let mut absent = Vec::new();
        for item in merged {
            let found = match merge_key {
                None => reference.contains(&item),
                Some(key) => {
                    let id = item
                        .get(key)
                        .ok_or_else(|| self.missing_merge_key(&item, key))?;
                    reference.iter().any(|r| r.get(key) == Some(id))
                }
            };
            if found {
                present.push(item)
            } else {
                absent.push(item)
            }
        }
        Ok((present, absent))
    }

    /// `normalizeElementOrder`: sort the patch items by `patch_order` and the server-only
    /// items by `server_order`, then interleave them keeping both relative orders.
    fn normalize_element_order(
        &self,
        patch_items: Vec<Value>,
        server_only: Vec<Value>,
        patch_order: &[Value],
        server_order: &[Value],
        merge_key: Option<&str>,
    ) -> Result<Vec<Value>, PatchError> {
        let patch_items = self.normalize_slice_order(patch_items, patch_order, merge_key)?;
        let server_only = self.normalize_slice_order(server_only, server_order, merge_key)?;
        Ok(merge_sorted_slice(
            server_only,
            patch_items,
            server_order,
            merge_key,
        ))
    }

    /// `normalizeSliceOrder`: sort `items` by their position in `order` (items it lacks
    /// keep their relative order at the end, after them any `$patch: delete` items).
    fn normalize_slice_order(
        &self,
        items: Vec<Value>,
        order: &[Value],
        merge_key: Option<&str>,
    ) -> Result<Vec<Value>, PatchError> {
        let (mut items, deletions): (Vec<Value>, Vec<Value>) = match merge_key {
            Some(key) => {
                if let Some(item) = items
                    .iter()
                    .chain(order)
                    .find(|item| item.get(key).is_none())
                {
                    return Err(self.missing_merge_key(item, key));
                }
                items
                    .into_iter()
                    .partition(|item| directive_of(item) != Some("delete"))
            }
            None => (items, Vec::new()),
        };
        items.sort_by_key(|item| index(order, item, merge_key).unwrap_or(usize::MAX));
        items.extend(deletions);
        Ok(items)
    }
}

/// The live list as upstream's `mergePatchIntoOriginal` reads it when ordering by
/// `$setElementOrder`: a Go slice whose backing array `mergeSlice` has meanwhile shifted
/// (each deleted item moves the tail left, leaving the last slot stale) and appended into
/// (new items fill the freed slots). That view decides where server-only items land after
/// a delete-and-add `kubectl apply`, and upstream's tests pin it, so it is reproduced.
fn live_order_seen_upstream(original: &[Value], patch: &[Value], key: &str) -> Vec<Value> {
    if patch
        .iter()
        .any(|item| directive_of(item) == Some("replace"))
    {
        return original.to_vec();
    }
    let mut slots = original.to_vec();
    let mut len = slots.len();
    for item in patch
        .iter()
        .filter(|item| directive_of(item) == Some("delete"))
    {
        let Some(id) = item.get(key) else { continue };
        while let Some(at) = slots[..len]
            .iter()
            .position(|slot| slot.get(key) == Some(id))
        {
            for i in at..len - 1 {
                slots[i] = slots[i + 1].clone();
            }
            len -= 1;
        }
    }
    let mut present: Vec<Value> = slots[..len]
        .iter()
        .filter_map(|slot| slot.get(key).cloned())
        .collect();
    for item in patch
        .iter()
        .filter(|item| matches!(directive_of(item), None | Some("merge")))
    {
        let Some(id) = item.get(key) else { continue };
        if present.contains(id) {
            continue;
        }
        present.push(id.clone());
        if len < slots.len() {
            slots[len] = item.clone();
        }
        len += 1;
    }
    slots
}

/// `mergeSortedSlice`: insert the `left` items among the `right` ones; a left item goes
/// first only when both are in the live list and it comes first there.
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index(server_order, l, merge_key), index(server_order, r, merge_key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        merged.extend(next);
    }
    merged
}

/// `index`: position of `item` in `list`, comparing merge key values for objects.
fn index(list: &[Value], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    match merge_key {
        Some(key) => {
            let id = item.get(key);
            list.iter().position(|candidate| candidate.get(key) == id)
        }
        None => list.iter().position(|candidate| candidate == item),
    }
}

fn merge_key_of(strategy: ListStrategy) -> Option<&'static str> {
    match strategy {
        ListStrategy::MergeByKey(key) => Some(key),
        _ => None,
    }
}

/// The `$patch` directive of a list item, if it is an object that has one.
fn directive_of(item: &Value) -> Option<&str> {
    item.get(DIRECTIVE)
        .map(|d| d.as_str().unwrap_or("<not a string>"))
}

/// A value copied from the patch into the result: `removeDirectives` plus
/// `discardNullValuesFromPatch`, and every `$` key stripped. `None` when the value is a
/// directive that leaves nothing (`$patch: delete`).
fn clean_value(value: Value) -> Option<Value> {
    match value {
        Value::Object(mut map) => match map.remove(DIRECTIVE) {
            None => Some(Value::Object(clean_map(map))),
            Some(d) if d == "replace" || d == "merge" => Some(Value::Object(clean_map(map))),
            Some(_) => None,
        },
        Value::Array(items) => Some(Value::Array(clean_list(items))),
        scalar => Some(scalar),
    }
}

fn clean_map(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .filter(|(key, value)| !key.starts_with('$') && !value.is_null())
        .filter_map(|(key, value)| clean_value(value).map(|v| (key, v)))
        .collect()
}

/// List items copied from the patch: any item carrying `$patch` is a marker, not data.
fn clean_list(items: Vec<Value>) -> Vec<Value> {
    items
        .into_iter()
        .filter(|item| directive_of(item).is_none())
        .filter_map(clean_value)
        .collect()
}
