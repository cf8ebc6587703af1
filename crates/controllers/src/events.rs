//! core/v1 Events, the kind `kubectl describe` lists, written by one background task
//! per recorder so recording never slows the work it describes. Repeats of the same
//! event on the same object bump `count` and `lastTimestamp` instead of creating another
//! object, as upstream's recorder does.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use tokio::sync::mpsc;

/// How many distinct (object, reason, message) triples are remembered for aggregation.
const AGGREGATION_LIMIT: usize = 4096;

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Records events for one component.
#[derive(Clone)]
pub struct Recorder {
    component: String,
    sender: mpsc::UnboundedSender<Event>,
}

/// The Event upstream's recorder would write about `object`.
pub fn build_event<K>(
    object: &K,
    component: &str,
    type_: EventType,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> Event
where
    K: Resource<DynamicType = ()>,
{
    let meta = object.meta();
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let name = meta.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:016x}", rand::random::<u64>())),
            namespace: Some(namespace),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            name: Some(name),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(type_.as_str().to_string()),
        source: Some(EventSource {
            component: Some(component.to_string()),
            host: None,
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(component.to_string()),
        ..Default::default()
    }
}

/// What identifies a repeat of an event.
fn aggregation_key(
    event: &Event,
) -> (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    (
        event
            .involved_object
            .uid
            .clone()
            .or(event.involved_object.name.clone()),
        event.reason.clone(),
        event.message.clone(),
        event.type_.clone(),
    )
}

impl Recorder {
    /// Start the writer task for `component` (needs a Tokio runtime).
    pub fn new(client: Client, component: &str) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_events(client, receiver));
        Recorder {
            component: component.to_string(),
            sender,
        }
    }

    /// Record an event about `object`. Never fails: an event that cannot be written must
    /// not stop the work it describes (the writer logs failures).
    pub fn record<K>(&self, object: &K, type_: EventType, reason: &str, message: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = build_event(
            object,
            &self.component,
            type_,
            reason,
            message,
            jiff::Timestamp::now(),
        );
        let _ = self.sender.send(event);
    }
}

async fn write_events(client: Client, mut receiver: mpsc::UnboundedReceiver<Event>) {
    // aggregation key → (namespace, event name, count)
    let mut seen: HashMap<_, (String, String, i32)> = HashMap::new();
    while let Some(event) = receiver.recv().await {
        let key = aggregation_key(&event);
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        if let Some((ns, name, count)) = seen.get(&key).cloned() {
            let patch =
                serde_json::json!({"count": count + 1, "lastTimestamp": event.last_timestamp});
            let api: Api<Event> = Api::namespaced(client.clone(), &ns);
            if api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                seen.insert(key, (ns, name, count + 1));
                continue;
            }
        }
        match api.create(&PostParams::default(), &event).await {
            Ok(created) => {
                if seen.len() >= AGGREGATION_LIMIT {
                    seen.clear();
                }
                seen.insert(
                    key,
                    (namespace, created.metadata.name.unwrap_or_default(), 1),
                );
            }
            Err(e) => tracing::debug!(error = %e, reason = ?event.reason, "could not record event"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;

    #[test]
    fn events_describe_their_object_as_kubectl_expects() {
        let rs: ReplicaSet = serde_json::from_value(serde_json::json!({"metadata": {"name": "web-abc", "namespace": "ns", "uid": "u1", "resourceVersion": "7"}})).unwrap();
        let now = jiff::Timestamp::from_second(1000).unwrap();
        let e = build_event(
            &rs,
            "replicaset-controller",
            EventType::Normal,
            "SuccessfulCreate",
            "Created pod: web-abc-x",
            now,
        );
        assert!(e.metadata.name.as_deref().unwrap().starts_with("web-abc."));
        assert_eq!(e.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(e.involved_object.kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(e.involved_object.api_version.as_deref(), Some("apps/v1"));
        assert_eq!(e.involved_object.uid.as_deref(), Some("u1"));
        assert_eq!(e.involved_object.resource_version.as_deref(), Some("7"));
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(
            e.source.as_ref().unwrap().component.as_deref(),
            Some("replicaset-controller")
        );
        assert_eq!(e.count, Some(1));
        assert_eq!(e.first_timestamp, Some(Time(now)));
        let again = build_event(
            &rs,
            "replicaset-controller",
            EventType::Normal,
            "SuccessfulCreate",
            "Created pod: web-abc-x",
            now,
        );
        assert_eq!(aggregation_key(&e), aggregation_key(&again));
        assert_ne!(e.metadata.name, again.metadata.name);
    }
}
