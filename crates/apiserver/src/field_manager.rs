//! `metadata.managedFields`: which manager set which field, and server-side apply
//! (upstream's `k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager`).
//!
//! Every create, update and patch records an `Update` entry for its manager (the
//! `fieldManager` parameter, else the User-Agent's product), owning the fields it changed;
//! the fields it changed or removed leave the other managers. An apply records an `Apply`
//! entry owning exactly the applied configuration's fields: a field another manager owns
//! with another value is a conflict (409) unless `force=true` takes it; a field the
//! applier set before and omits now is removed unless another manager owns it.
//! Entries keep their time while their fields stay the same, so a no-op write stays one.

use podium_api::resource::{ResourceInfo, Subresource};
use podium_api::status::{ApiError, Reason, cause};
use podium_patch::ListStrategy;
use podium_patch::apply;
use podium_patch::fields::{self, FieldSet, ListType};
use serde_json::{Map, Value, json};

use crate::registry::now_rfc3339;

/// The CSA manager whose fields a first server-side apply of the same configuration
/// takes over without conflicts (upstream's last-applied migration).
const CLIENT_SIDE_APPLY: &str = "kubectl-client-side-apply";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Who writes, and through which endpoint.
#[derive(Debug, Clone)]
pub struct Manager {
    pub name: String,
    /// The apiVersion of the request (`apps/v1`).
    pub api_version: String,
    /// `status` for writes to `/status`.
    pub subresource: Option<&'static str>,
}

/// What a write does to managedFields.
#[derive(Debug, Clone)]
pub enum Ownership {
    /// The server's own writes: entries stay as they are.
    Keep,
    /// A client's create, update or patch.
    Update(Manager),
    /// The new object carries its entries already (a server-side apply made them).
    Given,
}

impl Manager {
    /// The manager of a request: `fieldManager`, else the User-Agent's product
    /// (`kubectl/v1.33.0 (linux/amd64)` → `kubectl`), as upstream defaults it.
    pub fn of_request(
        field_manager: Option<&str>,
        user_agent: Option<&str>,
        resource: &ResourceInfo,
        subresource: Option<&'static str>,
    ) -> Manager {
        let name = match field_manager {
            Some(m) => m.to_string(),
            None => user_agent
                .and_then(|ua| ua.split('/').next())
                .map(|p| p.chars().take(128).collect())
                .unwrap_or_else(|| "unknown".into()),
        };
        Manager {
            name,
            api_version: resource.api_version(),
            subresource,
        }
    }
}

/// `fieldManager` must be printable and at most 128 characters (upstream's check).
pub fn check_field_manager(name: Option<&str>) -> Result<(), ApiError> {
    if let Some(name) = name {
        if name.chars().count() > 128 || name.chars().any(|c| c.is_control()) {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![cause(
                    "FieldValueInvalid",
                    "fieldManager",
                    format!(
                        "Invalid value: {name:?}: must be less than 128 characters and printable"
                    ),
                )],
            ));
        }
    }
    Ok(())
}

/// How the lists of a kind merge: the schema's list types for custom resources, the Go
/// types' patch tags for built-in kinds (compound keys where upstream declares them).
fn list_type(resource: &ResourceInfo, path: &[&str]) -> ListType {
    if let Some(from_schema) = resource.behaviour.list_type(path) {
        return from_schema;
    }
    match podium_patch::list_strategy(resource.kind, path) {
        ListStrategy::Replace => ListType::Atomic,
        ListStrategy::MergePrimitives => ListType::Set,
        ListStrategy::MergeByKey(key) => {
            let compound =
                matches!(path.last(), Some(&"ports")) && (key == "containerPort" || key == "port");
            if compound {
                ListType::Map(vec![key, "protocol"])
            } else {
                ListType::Map(vec![key])
            }
        }
    }
}

/// The part of an object managers own: not the identity and system metadata, and only
/// status (for `/status`) or everything but status (for the main resource of a kind with
/// a status subresource).
fn owned_part(resource: &ResourceInfo, object: &Value, subresource: Option<&str>) -> Value {
    let mut out = object.clone();
    let Some(map) = out.as_object_mut() else {
        return out;
    };
    map.remove("apiVersion");
    map.remove("kind");
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for system in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ] {
            meta.remove(system);
        }
        if meta.is_empty() {
            map.remove("metadata");
        }
    }
    match subresource {
        Some("status") => {
            let status = map.remove("status");
            map.clear();
            if let Some(status) = status {
                map.insert("status".into(), status);
            }
        }
        _ => {
            if resource.has(Subresource::Status) {
                map.remove("status");
            }
        }
    }
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &Manager, operation: &str) -> bool {
        self.manager == manager.name
            && self.operation == operation
            && self.subresource.as_deref() == manager.subresource
            && (operation == "Apply" || self.api_version == manager.api_version)
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("manager".into(), json!(self.manager));
        out.insert("operation".into(), json!(self.operation));
        out.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = &self.time {
            out.insert("time".into(), json!(time));
        }
        out.insert("fieldsType".into(), json!("FieldsV1"));
        out.insert("fieldsV1".into(), self.fields.to_v1());
        if let Some(sub) = &self.subresource {
            out.insert("subresource".into(), json!(sub));
        }
        Value::Object(out)
    }

    /// How upstream names the manager in a conflict.
    fn shown(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }
}

fn entries(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    Some(Entry {
                        manager: e.get("manager")?.as_str()?.to_string(),
                        operation: e.get("operation")?.as_str()?.to_string(),
                        api_version: e["apiVersion"].as_str().unwrap_or("").to_string(),
                        time: e["time"].as_str().map(str::to_string),
                        subresource: e["subresource"]
                            .as_str()
                            .filter(|s| !s.is_empty())
                            .map(str::to_string),
                        fields: FieldSet::from_v1(&e["fieldsV1"]),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_entries(object: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Give `new` the entries of `old` (None: a create) after `manager`'s update.
pub fn record_update(
    resource: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    manager: &Manager,
) {
    let lists = |path: &[&str]| list_type(resource, path);
    let sub = manager.subresource;
    let empty = json!({});
    let old_part = old.map(|o| owned_part(resource, o, sub)).unwrap_or(empty);
    let new_part = owned_part(resource, new, sub);
    let changed = apply::changed(&old_part, &new_part, &lists);
    let removed = fields::of(&old_part, &lists).difference(&fields::of(&new_part, &lists));
    let mut list = old.map(entries).unwrap_or_default();
    for entry in list.iter_mut().filter(|e| !e.is(manager, "Update")) {
        entry.fields = entry.fields.difference(&changed).difference(&removed);
    }
    match list.iter_mut().find(|e| e.is(manager, "Update")) {
        Some(mine) => {
            let mut fields = mine.fields.clone();
            fields.union(&changed);
            let fields = fields.difference(&removed);
            if fields != mine.fields {
                mine.fields = fields;
                mine.time = Some(now_rfc3339());
            }
        }
        None if !changed.is_empty() => list.push(Entry {
            manager: manager.name.clone(),
            operation: "Update".into(),
            api_version: manager.api_version.clone(),
            time: Some(now_rfc3339()),
            subresource: sub.map(str::to_string),
            fields: changed,
        }),
        None => {}
    }
    write_entries(new, list);
}

/// Keep `old`'s entries on `new` (the server's own writes).
pub fn keep(old: Option<&Value>, new: &mut Value) {
    let list = old.map(entries).unwrap_or_default();
    write_entries(new, list);
}

/// Server-side apply of `applied` (already checked to be this resource's kind and name)
/// over `live` (None: the object does not exist yet). The merged object carries the new
/// managedFields; conflicts are a 409 unless `force`.
pub fn apply(
    resource: &ResourceInfo,
    live: Option<&Value>,
    applied: &Value,
    manager: &Manager,
    force: bool,
) -> Result<Value, ApiError> {
    let lists = |path: &[&str]| list_type(resource, path);
    let sub = manager.subresource;
    let empty = json!({});
    let live_object = live.unwrap_or(&empty);
    let live_part = owned_part(resource, live_object, sub);
    let applied_part = owned_part(resource, applied, sub);
    let applied_set = fields::of(&applied_part, &lists);
    let mut list = live.map(entries).unwrap_or_default();
    let mine = list.iter().position(|e| e.is(manager, "Apply"));

    let others: Vec<usize> = (0..list.len()).filter(|i| Some(*i) != mine).collect();
    let other_sets: Vec<&FieldSet> = others.iter().map(|i| &list[*i].fields).collect();
    let last_applied_config: Option<Value> = live_object
        .pointer(&format!(
            "/metadata/annotations/{}",
            LAST_APPLIED.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .map(|config| owned_part(resource, &config, sub));
    let found: Vec<apply::Conflict> =
        apply::conflicts(&live_part, &applied_part, &applied_set, &other_sets, &lists)
            .into_iter()
            .filter(|c| {
                let owner = &list[others[c.manager]];
                // A configuration first applied by `kubectl apply` and now by
                // `kubectl apply --server-side` takes over its own fields.
                let last = last_applied_config
                    .as_ref()
                    .and_then(|config| fields::value_at(config, &c.path, &lists));
                !(owner.manager == CLIENT_SIDE_APPLY
                    && last.is_some()
                    && last == fields::value_at(&applied_part, &c.path, &lists))
            })
            .collect();
    if !found.is_empty() && !force {
        return Err(conflict_error(&found, &others, &list));
    }
    for c in &found {
        list[others[c.manager]].fields.remove(&c.path);
    }

    let mut merged = match live {
        Some(live) => {
            let mut applied_body = applied.clone();
            if sub.is_none() && resource.has(Subresource::Status) {
                if let Some(map) = applied_body.as_object_mut() {
                    map.remove("status");
                }
            }
            apply::merge(live, &applied_body, &lists)
        }
        None => applied.clone(),
    };
    // What this manager applied before and not now goes, unless another manager owns it.
    if let Some(i) = mine {
        let mut owned_by_others = FieldSet::default();
        for (j, e) in list.iter().enumerate() {
            if j != i {
                owned_by_others.union(&e.fields);
            }
        }
        let released = list[i]
            .fields
            .difference(&applied_set)
            .difference(&owned_by_others);
        if !released.is_empty() {
            fields::remove(&mut merged, &released, &lists);
        }
    }
    match mine {
        Some(i) => {
            if list[i].fields != applied_set {
                list[i].fields = applied_set;
                list[i].time = Some(now_rfc3339());
            }
            list[i].api_version = manager.api_version.clone();
        }
        None => list.push(Entry {
            manager: manager.name.clone(),
            operation: "Apply".into(),
            api_version: manager.api_version.clone(),
            time: Some(now_rfc3339()),
            subresource: sub.map(str::to_string),
            fields: applied_set,
        }),
    }
    write_entries(&mut merged, list);
    Ok(merged)
}

/// Drop from every entry the fields the stored object no longer has (the typed decode
/// dropped an unknown field the applied configuration named).
pub fn forget_missing(resource: &ResourceInfo, object: &mut Value) {
    let lists = |path: &[&str]| list_type(resource, path);
    let mut list = entries(object);
    if list.is_empty() {
        return;
    }
    let mut changed = false;
    for entry in &mut list {
        let part = owned_part(resource, object, entry.subresource.as_deref());
        for path in entry.fields.members() {
            if fields::value_at(&part, &path, &lists).is_none() {
                entry.fields.remove(&path);
                changed = true;
            }
        }
    }
    if changed {
        write_entries(object, list);
    }
}

fn conflict_error(found: &[apply::Conflict], others: &[usize], list: &[Entry]) -> ApiError {
    let owner = |c: &apply::Conflict| &list[others[c.manager]];
    let message = if found.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            owner(&found[0]).shown(),
            fields::display(&found[0].path)
        )
    } else {
        let mut managers: Vec<String> = found.iter().map(|c| owner(c).shown()).collect();
        managers.sort();
        managers.dedup();
        let mut parts = Vec::new();
        for m in &managers {
            parts.push(format!("conflicts with {m}:"));
            for c in found.iter().filter(|c| owner(c).shown() == *m) {
                parts.push(format!("- {}", fields::display(&c.path)));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            found.len(),
            parts.join("\n")
        )
    };
    let mut error = ApiError::new(Reason::Conflict, message);
    error.causes = found
        .iter()
        .map(|c| {
            cause(
                "FieldManagerConflict",
                &fields::display(&c.path),
                format!("conflict with {}", owner(c).shown()),
            )
        })
        .collect();
    error
}
