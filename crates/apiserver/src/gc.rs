//! Garbage collection: deleting an owner deletes its dependents (Background: after,
//! Foreground: before), Orphan strips the owner reference instead, a deleted namespace
//! empties itself, and a periodic sweep removes objects whose owners are all gone —
//! which also finishes a cascade that a crash interrupted. Upstream runs this in the
//! controller manager; here it lives beside the registry it walks.

use std::collections::HashSet;
use std::time::Duration;

use podium_api::resource::{self, ResourceInfo};
use podium_api::selector::{FieldSelector, LabelSelector};
use podium_api::status::{ApiError, Reason};
use serde_json::Value;

use crate::ApiServer;
use crate::handlers::delete_object;
use crate::registry::meta_str;

/// What a delete asks for.
#[derive(Debug, Clone, Default)]
pub struct DeleteRequest {
    pub grace: Option<i64>,
    pub propagation: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<u64>,
}

fn owner_uids(object: &Value) -> Vec<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
        .collect()
}

/// One resource per storage: versions that share their objects (core and
/// `events.k8s.io` Events, HPAs of `autoscaling/v1` and `v2`, a CRD's versions) are
/// scanned and deleted once, through the first of them.
fn stored_resources() -> Vec<&'static ResourceInfo> {
    let mut seen = std::collections::HashSet::new();
    resource::all()
        .into_iter()
        .filter(|r| seen.insert(crate::registry::prefix(r, None)))
        .collect()
}

/// Every object (with its resource) owned by `uid`, in `namespace` or everywhere.
async fn dependents(
    server: &ApiServer,
    namespace: Option<&str>,
    uid: &str,
) -> Result<Vec<(&'static ResourceInfo, Value)>, ApiError> {
    let mut out = Vec::new();
    for resource in stored_resources()
        .into_iter()
        .filter(|r| r.namespaced || namespace.is_none())
    {
        // The graph: each kind's watch cache indexes its objects by owner uid, so finding
        // the dependents reads their entries, not every object of every kind.
        let owned = server
            .registry
            .caches
            .of(resource)
            .owned_by(&*server.registry.store, uid, namespace)
            .await?;
        out.extend(owned.into_iter().map(|o| (resource, (*o).clone())));
    }
    Ok(out)
}

async fn delete_all(
    server: &ApiServer,
    items: &[(&'static ResourceInfo, Value)],
    propagation: &str,
) {
    for (resource, object) in items {
        let name = meta_str(object, "name").unwrap_or("");
        let ns = meta_str(object, "namespace");
        let request = DeleteRequest {
            propagation: Some(propagation.to_string()),
            uid: meta_str(object, "uid").map(str::to_string),
            ..Default::default()
        };
        match delete_object(server, resource, ns, name, &request, false).await {
            Ok(_) => {}
            Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
            Err(e) => {
                tracing::warn!(kind = resource.kind, name, error = %e, "garbage collection could not delete a dependent")
            }
        }
    }
}

/// Background propagation: delete what `uid` owned, after it is gone.
pub fn spawn_collect(server: ApiServer, namespace: Option<String>, uid: String) {
    tokio::spawn(async move {
        match dependents(&server, namespace.as_deref(), &uid).await {
            Ok(items) => delete_all(&server, &items, "Background").await,
            Err(e) => tracing::warn!(error = %e, "garbage collection could not list dependents"),
        }
    });
}

/// Foreground propagation: delete the dependents, wait until they are gone, then let the
/// owner go by removing its `foregroundDeletion` finalizer.
pub fn spawn_foreground(
    server: ApiServer,
    resource: &'static ResourceInfo,
    namespace: Option<String>,
    name: String,
    uid: String,
) {
    tokio::spawn(async move {
        let ns = namespace.as_deref();
        // Bounded: pods may take their grace period; give up after 10 minutes and let the sweep retry.
        for _ in 0..3000 {
            match dependents(&server, ns, &uid).await {
                Ok(items) if items.is_empty() => break,
                Ok(items) => delete_all(&server, &items, "Foreground").await,
                Err(e) => {
                    tracing::warn!(error = %e, "foreground deletion could not list dependents")
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let result = server
            .registry
            .update_with(
                resource,
                ns,
                &name,
                None,
                false,
                &crate::field_manager::Ownership::Keep,
                |mut owner| {
                    if meta_str(&owner, "uid") != Some(uid.as_str()) {
                        return Err(ApiError::new(Reason::Conflict, "owner was replaced"));
                    }
                    if let Some(f) = owner
                        .pointer_mut("/metadata/finalizers")
                        .and_then(Value::as_array_mut)
                    {
                        f.retain(|x| x != "foregroundDeletion");
                    }
                    Ok(owner)
                },
            )
            .await;
        if let Err(reason) = result.map_err(|e| e.reason) {
            if reason != Reason::NotFound && reason != Reason::Conflict {
                tracing::warn!(
                    kind = resource.kind,
                    name,
                    "foreground deletion could not finish"
                );
            }
        }
    });
}

/// Orphan propagation: strip the owner's reference from its dependents.
pub async fn orphan_dependents(
    server: &ApiServer,
    namespace: Option<&str>,
    uid: &str,
) -> Result<(), ApiError> {
    for (resource, object) in dependents(server, namespace, uid).await? {
        let name = meta_str(&object, "name").unwrap_or("").to_string();
        let ns = meta_str(&object, "namespace").map(str::to_string);
        server
            .registry
            .update_with(
                resource,
                ns.as_deref(),
                &name,
                None,
                false,
                &crate::field_manager::Ownership::Keep,
                |mut o| {
                    if let Some(refs) = o
                        .pointer_mut("/metadata/ownerReferences")
                        .and_then(Value::as_array_mut)
                    {
                        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
                    }
                    Ok(o)
                },
            )
            .await?;
    }
    Ok(())
}

/// A terminating namespace: delete everything in it, then the namespace itself.
pub fn spawn_namespace_cleanup(server: ApiServer, namespace: String) {
    tokio::spawn(async move {
        for _ in 0..3000 {
            let mut remaining = 0;
            for resource in stored_resources().into_iter().filter(|r| r.namespaced) {
                let listed = match server
                    .registry
                    .list(
                        resource,
                        Some(&namespace),
                        &LabelSelector::default(),
                        &FieldSelector::default(),
                        0,
                        None,
                    )
                    .await
                {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "namespace cleanup could not list");
                        continue;
                    }
                };
                remaining += listed.items.len();
                let items: Vec<_> = listed
                    .items
                    .into_iter()
                    .filter(|o| o.pointer("/metadata/deletionTimestamp").is_none())
                    .map(|o| (resource, o))
                    .collect();
                delete_all(&server, &items, "Background").await;
            }
            if remaining == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Some(ns) = podium_api::resource::find("", "v1", "namespaces") {
            if let Err(e) = server
                .registry
                .remove(ns, None, &namespace, podium_store::Expect::Present)
                .await
            {
                if e.reason != Reason::NotFound {
                    tracing::warn!(namespace, error = %e, "could not remove the emptied namespace");
                }
            }
        }
    });
}

/// One pass: delete every object all of whose owners are gone; with `resume`, also restart
/// the namespace cleanups and foreground deletions a crash interrupted.
pub async fn sweep(server: &ApiServer, resume: bool) -> Result<usize, ApiError> {
    let mut all = Vec::new();
    for resource in stored_resources() {
        let listed = server
            .registry
            .list(
                resource,
                None,
                &LabelSelector::default(),
                &FieldSelector::default(),
                0,
                None,
            )
            .await?;
        all.extend(listed.items.into_iter().map(|o| (resource, o)));
    }
    let uids: HashSet<String> = all
        .iter()
        .filter_map(|(_, o)| meta_str(o, "uid").map(str::to_string))
        .collect();
    let orphans: Vec<(&'static ResourceInfo, Value)> = all
        .iter()
        .filter(|(_, o)| {
            let owners = owner_uids(o);
            !owners.is_empty() && owners.iter().all(|u| !uids.contains(*u))
        })
        .cloned()
        .collect();
    let count = orphans.len();
    delete_all(server, &orphans, "Background").await;
    for (resource, object) in all.iter().filter(|_| resume) {
        if object.pointer("/metadata/deletionTimestamp").is_none() {
            continue;
        }
        let name = meta_str(object, "name").unwrap_or("").to_string();
        if resource.kind == "Namespace" {
            spawn_namespace_cleanup(server.clone(), name);
        } else if object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.contains(&Value::from("foregroundDeletion")))
        {
            let uid = meta_str(object, "uid").unwrap_or("").to_string();
            spawn_foreground(
                server.clone(),
                resource,
                meta_str(object, "namespace").map(str::to_string),
                name,
                uid,
            );
        }
    }
    Ok(count)
}

/// Run [`sweep`] now and then every `period`.
pub async fn run(server: ApiServer, period: Duration) {
    let mut resume = true;
    loop {
        let result = sweep(&server, resume).await;
        resume = false;
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "garbage collector deleted orphaned objects"),
            Err(e) => tracing::warn!(error = %e, "garbage collection sweep failed"),
        }
        tokio::time::sleep(period).await;
    }
}
