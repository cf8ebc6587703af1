//! core/v1 Events about Services, the kind `kubectl describe service` lists. A repeat of
//! the same event on the same object bumps `count` and `lastTimestamp` instead of making
//! another object, as upstream's recorder does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};

/// Aggregation entries kept; past this the oldest knowledge is dropped (a repeat then
/// creates a new Event object, which is still correct, only less compact).
const MAX_REMEMBERED: usize = 1024;

/// Normal or Warning, the two types `kubectl describe` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// (object uid, reason, message) → (event name, count so far).
type Seen = HashMap<(String, String, String), (String, i32)>;

/// Writes events for one component.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    seen: Arc<Mutex<Seen>>,
}

/// The Event object for a first occurrence.
fn new_event<K: Resource<DynamicType = ()>>(
    object: &K,
    component: &str,
    kind: EventType,
    reason: &str,
    message: &str,
    now: Time,
) -> Event {
    let namespace = object.namespace().unwrap_or_else(|| "default".into());
    Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:016x}",
                object.name_any(),
                rand::random::<u64>()
            )),
            namespace: Some(namespace),
            ..Default::default()
        },
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
        type_: Some(kind.as_str().to_string()),
        source: Some(EventSource {
            component: Some(component.to_string()),
            host: None,
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(component.to_string()),
        ..Default::default()
    }
}

impl Recorder {
    pub fn new(client: Client, component: &str) -> Self {
        Recorder {
            client,
            component: component.to_string(),
            seen: Arc::default(),
        }
    }

    /// Record an event about `object`. Failures are logged, not returned: an event that
    /// cannot be written must not stop the work it describes.
    pub async fn record<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        kind: EventType,
        reason: &str,
        message: &str,
    ) {
        let api: Api<Event> = Api::namespaced(
            self.client.clone(),
            &object.namespace().unwrap_or_else(|| "default".into()),
        );
        let now = Time(jiff::Timestamp::now());
        let key = (
            object.uid().unwrap_or_default(),
            reason.to_string(),
            message.to_string(),
        );
        let known = self
            .seen
            .lock()
            .ok()
            .and_then(|seen| seen.get(&key).cloned());
        if let Some((name, count)) = known {
            let patch = serde_json::json!({"count": count + 1, "lastTimestamp": now});
            if api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                self.remember(key, name, count + 1);
                return;
            }
            // Gone (deleted or expired): fall through and create a new one.
        }
        let event = new_event(object, &self.component, kind, reason, message, now);
        let name = event.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => self.remember(key, name, 1),
            Err(error) => tracing::debug!(%error, reason, "could not record event"),
        }
    }

    fn remember(&self, key: (String, String, String), name: String, count: i32) {
        if let Ok(mut seen) = self.seen.lock() {
            if seen.len() >= MAX_REMEMBERED && !seen.contains_key(&key) {
                seen.clear();
            }
            seen.insert(key, (name, count));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;

    #[test]
    fn an_event_names_its_object_as_kubectl_describe_looks_it_up() {
        let service = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u-1".into()),
                resource_version: Some("42".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let now = Time(jiff::Timestamp::UNIX_EPOCH);
        let event = new_event(
            &service,
            "podium-proxy",
            EventType::Warning,
            "SyncLoadBalancerFailed",
            "port 80 busy",
            now.clone(),
        );
        let name = event.metadata.name.as_deref().unwrap();
        assert!(
            name.starts_with("web.") && name.len() == "web.".len() + 16,
            "{name}"
        );
        assert_eq!(event.metadata.namespace.as_deref(), Some("shop"));
        let involved = &event.involved_object;
        assert_eq!(
            (
                involved.kind.as_deref(),
                involved.api_version.as_deref(),
                involved.name.as_deref(),
                involved.namespace.as_deref(),
                involved.uid.as_deref()
            ),
            (
                Some("Service"),
                Some("v1"),
                Some("web"),
                Some("shop"),
                Some("u-1")
            )
        );
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.count, Some(1));
        assert_eq!(event.first_timestamp, Some(now));
        assert_eq!(
            event.source.and_then(|s| s.component).as_deref(),
            Some("podium-proxy")
        );
        let other = new_event(
            &service,
            "podium-proxy",
            EventType::Normal,
            "r",
            "m",
            Time(jiff::Timestamp::UNIX_EPOCH),
        );
        assert_ne!(other.metadata.name, event.metadata.name);
    }
}
