//! The CRD controller: serves what CustomResourceDefinitions define, as upstream's
//! apiextensions-apiserver does (its naming, establishing and finalizing controllers).
//!
//! Level-triggered over the store: every change of a CRD reconciles that CRD. A served
//! version is a row of the resource table ([`podium_api::resource::register`]) whose
//! behaviour is a [`CustomResource`] built from the version; the CRD's status says its
//! names are accepted and it is established. A deleted CRD (held by its cleanup finalizer)
//! has its objects deleted, then the finalizer removed, then its rows unregistered.
//!
//! The resource table is process-wide: one API server per process, as `podium up` and
//! `podium server` run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podium_api::kinds::apiextensions::custom_resource::CustomResource;
use podium_api::kinds::apiextensions::custom_resource_definition::CLEANUP_FINALIZER;
use podium_api::resource::{self, ResourceInfo, Subresource};
use podium_api::status::ApiError;
use podium_store::{Event, Expect};
use serde_json::{Value, json};

use crate::ApiServer;
use crate::registry::{decode, now_rfc3339, prefix};

/// What this server has registered for one CRD: the versions, and the spec they came from
/// (a status-only change registers nothing new).
#[derive(Default)]
struct Served {
    spec: Value,
    versions: Vec<(String, &'static ResourceInfo)>,
}

#[derive(Default, Clone)]
pub struct CrdController {
    served: Arc<Mutex<HashMap<String, Served>>>,
}

fn crds() -> &'static ResourceInfo {
    resource::find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("CustomResourceDefinitions are in the built-in table")
}

fn leak(text: &str) -> &'static str {
    Box::leak(text.to_string().into_boxed_str())
}

fn leak_list(value: &Value) -> &'static [&'static str] {
    let items: Vec<&'static str> = value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(leak).collect())
        .unwrap_or_default();
    Box::leak(items.into_boxed_slice())
}

/// The resource-table row of one served version.
fn row(spec: &Value, version: &Value) -> ResourceInfo {
    let group = spec["group"].as_str().unwrap_or("");
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or("");
    let plural = names["plural"].as_str().unwrap_or("");
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let mut subresources = Vec::new();
    if version.pointer("/subresources/status").is_some() {
        subresources.push(Subresource::Status);
    }
    if version.pointer("/subresources/scale").is_some() {
        subresources.push(Subresource::Scale);
    }
    ResourceInfo {
        group: leak(group),
        version: leak(version["name"].as_str().unwrap_or("")),
        kind: leak(kind),
        plural: leak(plural),
        singular: leak(&singular),
        namespaced: spec["scope"].as_str() == Some("Namespaced"),
        short_names: leak_list(&names["shortNames"]),
        categories: leak_list(&names["categories"]),
        subresources: Box::leak(subresources.into_boxed_slice()),
        behaviour: Box::leak(Box::new(CustomResource::new(group, kind, version))),
    }
}

impl CrdController {
    /// Serve every CRD in the store now (before the server takes requests), then follow
    /// changes in the background.
    pub async fn start(&self, server: &ApiServer) -> Result<(), ApiError> {
        let revision = self.sync_all(server).await?;
        let controller = self.clone();
        let server = server.clone();
        tokio::spawn(async move { controller.run(server, revision).await });
        Ok(())
    }

    /// Reconcile every stored CRD; the revision they were read at.
    async fn sync_all(&self, server: &ApiServer) -> Result<u64, ApiError> {
        let store = &server.registry.store;
        let range = store
            .range(&prefix(crds(), None), None, 0)
            .await
            .map_err(|e| ApiError::internal(format!("listing CustomResourceDefinitions: {e}")))?;
        let mut present = Vec::new();
        for kv in &range.kvs {
            if let Ok(crd) = decode(crds(), kv) {
                let name = crd["metadata"]["name"].as_str().unwrap_or("").to_string();
                self.reconcile(server, &name, Some(crd)).await;
                present.push(name);
            }
        }
        let gone: Vec<String> = self
            .lock()
            .keys()
            .filter(|n| !present.contains(n))
            .cloned()
            .collect();
        for name in gone {
            self.reconcile(server, &name, None).await;
        }
        Ok(range.revision)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Served>> {
        self.served.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn run(self, server: ApiServer, mut revision: u64) {
        let watch_prefix = prefix(crds(), None);
        loop {
            match server.registry.store.watch(&watch_prefix, revision).await {
                Ok(mut watch) => {
                    while let Some(event) = watch.next().await {
                        revision = event.revision();
                        let name = event
                            .key()
                            .trim_start_matches(watch_prefix.as_str())
                            .to_string();
                        let crd = match &*event {
                            Event::Put { kv, .. } => decode(crds(), kv).ok(),
                            Event::Delete { .. } => None,
                        };
                        self.reconcile(&server, &name, crd).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "watching CustomResourceDefinitions"),
            }
            // The watch ended (compaction, or a slow reader dropped): read everything again.
            tokio::time::sleep(Duration::from_millis(200)).await;
            match self.sync_all(&server).await {
                Ok(r) => revision = r,
                Err(e) => {
                    tracing::warn!(error = %e.message, "re-listing CustomResourceDefinitions")
                }
            }
        }
    }

    /// Bring what is served for the CRD `name` in line with the stored object (None: gone).
    async fn reconcile(&self, server: &ApiServer, name: &str, crd: Option<Value>) {
        let Some(crd) = crd else {
            self.unserve(name);
            return;
        };
        if crd.pointer("/metadata/deletionTimestamp").is_some() {
            if let Err(e) = self.finalize(server, name, &crd).await {
                tracing::warn!(crd = name, error = %e.message, "deleting a CRD's objects");
            }
            return;
        }
        self.serve(name, &crd);
        if let Err(e) = self.update_status(server, name, &crd).await {
            tracing::warn!(crd = name, error = %e.message, "updating a CRD's status");
        }
    }

    fn serve(&self, name: &str, crd: &Value) {
        let spec = &crd["spec"];
        let mut served = self.lock();
        let entry = served.entry(name.to_string()).or_default();
        if entry.spec == *spec {
            return;
        }
        let mut versions = Vec::new();
        for version in spec["versions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if version["served"].as_bool() != Some(true) {
                continue;
            }
            let row = resource::register(row(spec, version));
            versions.push((row.version.to_string(), row));
        }
        for (version, old) in &entry.versions {
            if !versions.iter().any(|(v, _)| v == version) {
                resource::unregister(old.group, old.version, old.plural);
            }
        }
        tracing::info!(
            crd = name,
            versions = versions.len(),
            "serving custom resources"
        );
        *entry = Served {
            spec: spec.clone(),
            versions,
        };
    }

    fn unserve(&self, name: &str) {
        if let Some(served) = self.lock().remove(name) {
            for (_, row) in served.versions {
                resource::unregister(row.group, row.version, row.plural);
            }
            tracing::info!(crd = name, "no longer serving custom resources");
        }
    }

    /// upstream's naming and establishing controllers: names accepted, established, and
    /// the storage version recorded in `storedVersions`.
    async fn update_status(
        &self,
        server: &ApiServer,
        name: &str,
        crd: &Value,
    ) -> Result<(), ApiError> {
        let desired = desired_status(crd);
        if crd.get("status") == Some(&desired) {
            return Ok(());
        }
        server
            .registry
            .update_with(
                crds(),
                None,
                name,
                None,
                false,
                &crate::field_manager::Ownership::Keep,
                |mut current| {
                    current["status"] = desired_status(&current);
                    Ok(current)
                },
            )
            .await
            .map(|_| ())
    }

    /// upstream's finalizing controller: delete every object, then let the CRD go.
    async fn finalize(&self, server: &ApiServer, name: &str, crd: &Value) -> Result<(), ApiError> {
        let holds = crd["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.contains(&json!(CLEANUP_FINALIZER)));
        if !holds {
            return Ok(());
        }
        let row = self
            .lock()
            .get(name)
            .and_then(|s| s.versions.first().map(|(_, r)| *r))
            .unwrap_or_else(|| resource::register(row(&crd["spec"], &storage_version(crd))));
        let store = &server.registry.store;
        loop {
            let range = store
                .range(&prefix(row, None), None, 500)
                .await
                .map_err(|e| ApiError::internal(format!("listing custom resources: {e}")))?;
            if range.kvs.is_empty() {
                break;
            }
            for kv in &range.kvs {
                // Upstream deletes each object through its registry, so watchers see it go.
                match store.delete(&kv.key, Expect::Any).await {
                    Ok(_) | Err(podium_store::StoreError::NotFound(_)) => {}
                    Err(e) => return Err(ApiError::internal(format!("deleting {}: {e}", kv.key))),
                }
            }
        }
        self.unserve(name);
        server
            .registry
            .update_deletion(crds(), None, name, None, |mut current| {
                if let Some(list) = current["metadata"]["finalizers"].as_array_mut() {
                    list.retain(|f| f != CLEANUP_FINALIZER);
                }
                Ok(current)
            })
            .await
            .map(|_| ())
    }
}

fn storage_version(crd: &Value) -> Value {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|v| {
            v.iter()
                .find(|v| v["storage"].as_bool() == Some(true))
                .cloned()
        })
        .unwrap_or(Value::Null)
}

/// The status upstream's controllers give an accepted CRD. Transition times are kept
/// while a condition's status stays the same.
fn desired_status(crd: &Value) -> Value {
    let spec = &crd["spec"];
    let old = &crd["status"];
    let condition = |kind: &str, reason: &str, message: &str| {
        let previous = old["conditions"].as_array().and_then(|c| {
            c.iter()
                .find(|c| c["type"] == kind && c["status"] == "True")
        });
        let since = previous
            .and_then(|p| p["lastTransitionTime"].as_str().map(str::to_string))
            .unwrap_or_else(now_rfc3339);
        json!({"type": kind, "status": "True", "lastTransitionTime": since, "reason": reason, "message": message})
    };
    let mut stored: Vec<Value> = old["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(v) = storage_version(crd).get("name") {
        if !stored.contains(v) {
            stored.push(v.clone());
        }
    }
    let mut accepted = spec["names"].clone();
    if let Some(names) = accepted.as_object_mut() {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        names
            .entry("singular")
            .or_insert_with(|| json!(kind.to_lowercase()));
        names
            .entry("listKind")
            .or_insert_with(|| json!(format!("{kind}List")));
    }
    json!({
        "acceptedNames": accepted,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    })
}
