//! core/v1 Events, the kind `kubectl describe` lists. Repeats of the same event on the
//! same object bump `count` instead of creating another object, as upstream's recorder does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};

/// Records events for one component.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    /// (object uid, reason, message) → (event name, count): aggregation of repeats.
    seen: Arc<Mutex<HashMap<(String, String, String), (String, i32)>>>,
}

/// Normal or Warning.
#[derive(Debug, Clone, Copy)]
pub enum EventType {
    Normal,
    Warning,
}

impl Recorder {
    pub fn new(client: Client, component: &str) -> Self {
        Recorder { client, component: component.to_string(), seen: Arc::default() }
    }

    /// The same client under another component name (its own aggregation).
    pub fn with_component(&self, component: &str) -> Self {
        Recorder::new(self.client.clone(), component)
    }

    /// Record an event about `object`. Failures are logged, never returned: an event that
    /// cannot be written must not stop the work it describes.
    pub async fn record<K>(&self, object: &K, kind: EventType, reason: &str, message: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        let namespace = object.namespace().unwrap_or_else(|| "default".into());
        let uid = object.uid().unwrap_or_default();
        let now = Time(jiff::Timestamp::now());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let key = (uid.clone(), reason.to_string(), message.to_string());
        let existing = self.seen.lock().ok().and_then(|s| s.get(&key).cloned());
        if let Some((name, count)) = existing {
            let patch = serde_json::json!({"count": count + 1, "lastTimestamp": now});
            if api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.is_ok() {
                if let Ok(mut seen) = self.seen.lock() {
                    seen.insert(key, (name, count + 1));
                }
                return;
            }
        }
        let name = format!("{}.{:016x}", object.name_any(), rand::random::<u64>());
        let event = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace.clone()), ..Default::default() },
            involved_object: ObjectReference {
                api_version: Some(K::api_version(&()).into_owned()),
                kind: Some(K::kind(&()).into_owned()),
                name: Some(object.name_any()),
                namespace: object.namespace(),
                uid: object.uid(),
                resource_version: object.resource_version(),
                ..Default::default()
            },
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(match kind {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            source: Some(EventSource { component: Some(self.component.clone()), host: None }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.component.clone()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                if let Ok(mut seen) = self.seen.lock() {
                    if seen.len() > 4096 {
                        seen.clear();
                    }
                    seen.insert(key, (name, 1));
                }
            }
            Err(e) => tracing::debug!(error = %e, reason, "could not record event"),
        }
    }
}
