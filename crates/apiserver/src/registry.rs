//! Objects in the store: where each lives, and the metadata rules every write obeys
//! (uid, creationTimestamp, generation, resourceVersion = the store's mod revision).
//!
//! Keys are `/registry/<plural>/<namespace>/<name>` (`/registry/<plural>/<name>` for
//! cluster-scoped kinds), values the object's JSON without `resourceVersion`, which is
//! filled in from the key's mod revision on every read.

use std::sync::Arc;

use podium_api::resource::{self, ResourceInfo};
use podium_api::selector::{FieldSelector, LabelSelector};
use podium_api::status::ApiError;
use podium_api::strategy;
use podium_store::{Expect, KeyValue, Revision, Store, StoreError};
use serde_json::{Value, json};

use crate::ApiConfig;
use crate::allocate::ServiceAllocator;
use crate::error::store_failure;
use crate::field_manager::{self, Ownership};

/// How many times a read-modify-write without a client precondition is retried on conflict.
const UPDATE_RETRIES: usize = 16;

/// The objects of every kind, over one store.
pub struct Registry {
    pub store: Arc<dyn Store>,
    /// Decoded objects and recent events per resource: LISTs and watches read here.
    pub caches: crate::cache::Caches,
    pub(crate) services: ServiceAllocator,
}

/// A list read: the matching objects and the revision they were read at.
pub struct Listed {
    pub items: Vec<Value>,
    pub revision: Revision,
    /// The key to continue after, when `limit` cut the list short.
    pub continue_after: Option<String>,
}

/// RFC 3339 with second precision, as `metav1.Time` serializes.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `/registry/pods` for built-in kinds; `/registry/<group>/<plural>` for custom resources,
/// as upstream keys them (every version of a CRD shares one).
fn root(resource: &ResourceInfo) -> String {
    match resource.behaviour.storage_group() {
        Some(group) => format!("/registry/{group}/{}", resource.plural),
        None => format!("/registry/{}", resource.plural),
    }
}

pub fn key(resource: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    match namespace.filter(|_| resource.namespaced) {
        Some(ns) => format!("{}/{ns}/{name}", root(resource)),
        None => format!("{}/{name}", root(resource)),
    }
}

pub fn prefix(resource: &ResourceInfo, namespace: Option<&str>) -> String {
    match namespace.filter(|_| resource.namespaced) {
        Some(ns) => format!("{}/{ns}/", root(resource)),
        None => format!("{}/", root(resource)),
    }
}

/// Decode a stored object as `resource` serves it and stamp its resourceVersion. Every
/// version of a custom resource shares one storage key, so an object written at another
/// version is read with this one's `apiVersion` (the `None` conversion).
pub fn decode(resource: &ResourceInfo, kv: &KeyValue) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    set_resource_version(&mut object, kv.mod_revision);
    let mut object = resource.behaviour.from_storage(object);
    if resource.behaviour.storage_group().is_some() {
        let api_version = resource.api_version();
        if object.get("apiVersion").and_then(Value::as_str) != Some(api_version.as_str()) {
            object["apiVersion"] = json!(api_version);
        }
    }
    Ok(object)
}

pub fn set_resource_version(object: &mut Value, revision: Revision) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(revision.to_string()));
    }
}

/// The largest object the store takes: etcd's default request limit (1.5 MiB), so objects
/// that fit here fit an etcd backend too.
pub const MAX_OBJECT_BYTES: usize = 3 * 512 * 1024;

fn encode(resource: &ResourceInfo, object: &Value) -> Result<Vec<u8>, ApiError> {
    let mut object = resource.behaviour.to_storage(object.clone());
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    let bytes = serde_json::to_vec(&object)
        .map_err(|e| ApiError::internal(format!("encoding object: {e}")))?;
    if bytes.len() > MAX_OBJECT_BYTES {
        // Upstream passes etcd's "etcdserver: request is too large" on as a 413.
        return Err(ApiError::new(
            podium_api::status::Reason::RequestEntityTooLarge,
            format!(
                "Request entity too large: etcdserver: request is too large: the object is {} bytes when stored, the limit is {MAX_OBJECT_BYTES} bytes (1.5 MiB)",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

/// Parse a client-given resourceVersion.
pub fn parse_revision(rv: &str) -> Result<Revision, ApiError> {
    rv.parse::<Revision>().map_err(|_| {
        ApiError::bad_request(format!(
            "resourceVersion: Invalid value: {rv:?}: must be a non-negative decimal integer"
        ))
    })
}

/// The resourceVersion a write names in its body's metadata, if any: the revision the
/// stored object must still have (optimistic concurrency; an empty string names none).
pub fn revision_precondition(object: &Value) -> Result<Option<Revision>, ApiError> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty())
        .map(parse_revision)
        .transpose()
}

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Registry {
    pub fn new(store: Arc<dyn Store>, config: &ApiConfig) -> Self {
        Registry {
            caches: crate::cache::Caches::new(store.clone()),
            store,
            services: ServiceAllocator::new(&config.service_cidr),
        }
    }

    pub async fn get(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = key(resource, namespace, name);
        match self.store.get(&key).await.map_err(store_failure)? {
            Some(kv) => decode(resource, &kv),
            None => Err(ApiError::not_found(resource.group, resource.plural, name)),
        }
    }

    pub async fn get_raw(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<KeyValue>, ApiError> {
        self.store
            .get(&key(resource, namespace, name))
            .await
            .map_err(store_failure)
    }

    /// List objects matching the selectors as they are now, paging by `limit` after
    /// `continue_after` (every store page read at one revision).
    pub async fn list(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: usize,
        continue_after: Option<&str>,
    ) -> Result<Listed, ApiError> {
        let prefix = prefix(resource, namespace);
        let start = continue_after.map(|after| format!("{after}\0"));
        crate::list::scan(
            &*self.store,
            resource,
            &prefix,
            labels,
            fields,
            limit,
            start.as_deref(),
            0,
        )
        .await
        .map_err(|e| match e {
            crate::list::ScanError::Store(e) => store_failure(e),
            crate::list::ScanError::Api(e) => e,
        })
    }

    /// Create: stamp metadata, default, validate, allocate, store. `object` is already
    /// normalized against its type.
    pub async fn create(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        mut object: Value,
        dry_run: bool,
        ownership: &Ownership,
    ) -> Result<Value, ApiError> {
        if let Some(ns) = namespace.filter(|_| resource.namespaced) {
            let ns_info = resource::find("", "v1", "namespaces")
                .ok_or_else(|| ApiError::internal("namespaces not registered"))?;
            let namespace_object = self.get(ns_info, None, ns).await?;
            if namespace_object
                .pointer("/metadata/deletionTimestamp")
                .is_some()
            {
                return Err(ApiError::new(
                    podium_api::status::Reason::Conflict,
                    format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        resource.plural,
                        meta_str(&object, "name").unwrap_or("")
                    ),
                ));
            }
        }
        // Entries a server-side apply made survive the reset of system metadata below.
        let given_entries = match ownership {
            Ownership::Given => object.pointer("/metadata/managedFields").cloned(),
            _ => None,
        };
        let meta = object
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::bad_request("metadata is required"))?;
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        for system in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(system);
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if strategy::tracks_generation(resource) {
            meta.insert("generation".into(), json!(1));
        }
        match namespace.filter(|_| resource.namespaced) {
            Some(ns) => {
                meta.insert("namespace".into(), json!(ns));
            }
            None => {
                meta.remove("namespace");
            }
        }
        let generate_name = meta
            .get("generateName")
            .and_then(Value::as_str)
            .map(str::to_string);
        let fixed_name = meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        strategy::prepare_for_create(resource, &mut object);
        strategy::apply_defaults(resource, &mut object);
        match ownership {
            Ownership::Keep => {}
            Ownership::Update(manager) => {
                field_manager::record_update(resource, None, &mut object, manager)
            }
            Ownership::Given => {
                if let Some(entries) = given_entries {
                    object["metadata"]["managedFields"] = entries;
                    field_manager::forget_missing(resource, &mut object);
                }
            }
        }

        let attempts = if fixed_name.is_none() && generate_name.is_some() {
            8
        } else {
            1
        };
        for _ in 0..attempts {
            let name = match (&fixed_name, &generate_name) {
                (Some(name), _) => name.clone(),
                (None, Some(base)) => {
                    let base: String = base.chars().take(58).collect();
                    format!("{base}{}", random_suffix())
                }
                (None, None) => {
                    return Err(ApiError::invalid(
                        resource.group,
                        resource.kind,
                        "",
                        vec![podium_api::status::cause(
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )],
                    ));
                }
            };
            object["metadata"]["name"] = json!(name);
            strategy::validate(resource, &object, None)?;
            if resource.kind == "Service" {
                self.services.allocate(self, &mut object, None).await?;
            }
            if dry_run {
                return Ok(object);
            }
            let key = key(resource, namespace, &name);
            match self
                .store
                .put(&key, encode(resource, &object)?, Expect::Absent)
                .await
            {
                Ok(kv) => {
                    set_resource_version(&mut object, kv.mod_revision);
                    return Ok(object);
                }
                Err(StoreError::AlreadyExists(_)) if fixed_name.is_none() => {
                    if resource.kind == "Service" {
                        self.services.release(&object).await;
                    }
                    continue;
                }
                Err(StoreError::AlreadyExists(_)) => {
                    if resource.kind == "Service" {
                        self.services.release(&object).await;
                    }
                    return Err(ApiError::already_exists(
                        resource.group,
                        resource.plural,
                        &name,
                    ));
                }
                Err(e) => return Err(store_failure(e)),
            }
        }
        Err(ApiError::new(
            podium_api::status::Reason::AlreadyExists,
            format!(
                "{} could not find a free name from generateName after 8 tries",
                resource.plural
            ),
        ))
    }

    /// Read-modify-write one object. `mutate` gets the current object and returns the
    /// desired one; `precondition` is the client's resourceVersion, if it gave one (then a
    /// conflict is the client's to resolve; otherwise we retry on the fresh object).
    #[allow(clippy::too_many_arguments)]
    pub async fn update_with<F>(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        precondition: Option<Revision>,
        dry_run: bool,
        ownership: &Ownership,
        mutate: F,
    ) -> Result<Value, ApiError>
    where
        F: FnMut(Value) -> Result<Value, ApiError>,
    {
        self.update_inner(
            resource,
            namespace,
            name,
            precondition,
            dry_run,
            false,
            ownership,
            mutate,
        )
        .await
    }

    /// [`Self::update_with`] for the server's own deletion steps, which may set
    /// `deletionTimestamp` and `deletionGracePeriodSeconds` (clients may not).
    pub async fn update_deletion<F>(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        precondition: Option<Revision>,
        mutate: F,
    ) -> Result<Value, ApiError>
    where
        F: FnMut(Value) -> Result<Value, ApiError>,
    {
        self.update_inner(
            resource,
            namespace,
            name,
            precondition,
            false,
            true,
            &Ownership::Keep,
            mutate,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn update_inner<F>(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        precondition: Option<Revision>,
        dry_run: bool,
        deleting: bool,
        ownership: &Ownership,
        mut mutate: F,
    ) -> Result<Value, ApiError>
    where
        F: FnMut(Value) -> Result<Value, ApiError>,
    {
        let key = key(resource, namespace, name);
        for _ in 0..UPDATE_RETRIES {
            let Some(kv) = self.store.get(&key).await.map_err(store_failure)? else {
                return Err(ApiError::not_found(resource.group, resource.plural, name));
            };
            if precondition.is_some_and(|rv| rv != kv.mod_revision) {
                return Err(ApiError::stale(resource.group, resource.plural, name));
            }
            let old = decode(resource, &kv)?;
            let mut new = mutate(old.clone())?;
            let given_entries = match ownership {
                Ownership::Given => new.pointer("/metadata/managedFields").cloned(),
                _ => None,
            };
            self.finish_update(resource, &old, &mut new, deleting)
                .await?;
            match ownership {
                Ownership::Keep => field_manager::keep(Some(&old), &mut new),
                Ownership::Update(manager) => {
                    field_manager::record_update(resource, Some(&old), &mut new, manager)
                }
                Ownership::Given => {
                    if let Some(entries) = given_entries {
                        new["metadata"]["managedFields"] = entries;
                    }
                    field_manager::forget_missing(resource, &mut new);
                }
            }
            if strip_rv(&new) == strip_rv(&old) {
                return Ok(old);
            }
            if dry_run {
                return Ok(new);
            }
            // A deleting object whose last finalizer was just removed is gone for good.
            let finalizers_done = new.pointer("/metadata/deletionTimestamp").is_some()
                && new
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_none_or(|f| f.is_empty());
            if finalizers_done
                && old
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty())
            {
                return match self
                    .store
                    .delete(&key, Expect::Revision(kv.mod_revision))
                    .await
                {
                    Ok((_, revision)) => {
                        set_resource_version(&mut new, revision);
                        Ok(new)
                    }
                    Err(StoreError::Conflict { .. }) if precondition.is_none() => continue,
                    Err(StoreError::Conflict { .. }) => {
                        Err(ApiError::stale(resource.group, resource.plural, name))
                    }
                    Err(e) => Err(store_failure(e)),
                };
            }
            match self
                .store
                .put(
                    &key,
                    encode(resource, &new)?,
                    Expect::Revision(kv.mod_revision),
                )
                .await
            {
                Ok(stored) => {
                    set_resource_version(&mut new, stored.mod_revision);
                    return Ok(new);
                }
                Err(StoreError::Conflict { .. }) if precondition.is_none() => continue,
                Err(StoreError::Conflict { .. }) => {
                    return Err(ApiError::stale(resource.group, resource.plural, name));
                }
                Err(StoreError::NotFound(_)) => {
                    return Err(ApiError::not_found(resource.group, resource.plural, name));
                }
                Err(e) => return Err(store_failure(e)),
            }
        }
        Err(ApiError::stale(resource.group, resource.plural, name))
    }

    /// The rules of every update: identity and system metadata are the server's,
    /// generation counts spec changes, defaults and validation apply.
    async fn finish_update(
        &self,
        resource: &ResourceInfo,
        old: &Value,
        new: &mut Value,
        deleting: bool,
    ) -> Result<(), ApiError> {
        let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        {
            let meta = new
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| ApiError::bad_request("metadata is required"))?;
            let preserved: &[&str] = if deleting {
                &[
                    "uid",
                    "creationTimestamp",
                    "namespace",
                    "name",
                    "generation",
                ]
            } else {
                &[
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "namespace",
                    "name",
                    "generation",
                ]
            };
            for system in preserved {
                match old_meta.get(*system) {
                    Some(v) => meta.insert(system.to_string(), v.clone()),
                    None => meta.remove(*system),
                };
            }
            meta.remove("managedFields");
            meta.remove("selfLink");
        }
        strategy::apply_defaults(resource, new);
        if strategy::tracks_generation(resource) && new.get("spec") != old.get("spec") {
            let generation = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        strategy::validate(resource, new, Some(old))?;
        if resource.kind == "Service" {
            self.services.allocate(self, new, Some(old)).await?;
        }
        Ok(())
    }

    /// Remove an object now. `expect` carries the preconditions.
    pub async fn remove(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        expect: Expect,
    ) -> Result<Value, ApiError> {
        let key = key(resource, namespace, name);
        match self.store.delete(&key, expect).await {
            Ok((prev, revision)) => {
                let mut object = decode(resource, &prev)?;
                set_resource_version(&mut object, revision);
                if resource.kind == "Service" {
                    self.services.release(&object).await;
                }
                Ok(object)
            }
            Err(StoreError::NotFound(_)) => {
                Err(ApiError::not_found(resource.group, resource.plural, name))
            }
            Err(StoreError::Conflict { .. }) => {
                Err(ApiError::stale(resource.group, resource.plural, name))
            }
            Err(e) => Err(store_failure(e)),
        }
    }

    /// Create a namespace if it does not exist.
    pub async fn ensure_namespace(&self, name: &str) -> Result<(), ApiError> {
        let ns = resource::find("", "v1", "namespaces")
            .ok_or_else(|| ApiError::internal("namespaces not registered"))?;
        if self.get_raw(ns, None, name).await?.is_some() {
            return Ok(());
        }
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match self.create(ns, None, object, false, &Ownership::Keep).await {
            Ok(_) => Ok(()),
            Err(e) if e.reason == podium_api::status::Reason::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn strip_rv(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_over_one_and_a_half_mib_are_413() {
        let fits =
            json!({"metadata": {"name": "a"}, "data": {"k": "x".repeat(MAX_OBJECT_BYTES - 100)}});
        let configmaps = resource::find("", "v1", "configmaps").unwrap();
        assert!(encode(configmaps, &fits).is_ok());
        let big = json!({"metadata": {"name": "a"}, "data": {"k": "x".repeat(2 << 20)}});
        let e = encode(configmaps, &big).unwrap_err();
        assert_eq!(
            (e.code(), e.reason.as_str()),
            (413, "RequestEntityTooLarge")
        );
        assert!(e.message.contains("etcdserver: request is too large"));
    }
}
