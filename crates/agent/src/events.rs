//! A small core/v1 Event recorder (the kind `kubectl describe` lists). Repeats of the same
//! event on the same object bump `count` and `lastTimestamp`, as upstream's recorder does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};

/// Normal or Warning, the two event types Kubernetes knows.
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

/// Aggregation table bound: past this many distinct events the table starts over, so a
/// long-running agent does not grow without limit (a repeat then creates a new object).
const MAX_REMEMBERED: usize = 4096;

/// (object uid, reason, message): what makes two events the same one, counted.
type Occurrence = (String, String, String);

/// Who reports: `source.component`/`reportingComponent`, and the node as `source.host`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reporter {
    pub component: String,
    pub host: Option<String>,
}

/// Records events for one component (the agent uses `kubelet`, as `kubectl describe` users expect).
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    /// (object uid, reason, message) → (event name, count).
    seen: Mutex<HashMap<Occurrence, (String, i32)>>,
    /// Disambiguates two events created in the same nanosecond.
    sequence: AtomicU64,
}

/// The event name: upstream's `<object>.<hex of UnixNano>`, plus a sequence so that two
/// events of one object in the same nanosecond still get distinct names.
pub fn event_name(object_name: &str, now: jiff::Timestamp, sequence: u64) -> String {
    let nanos = now.as_nanosecond().max(0) as u128;
    format!("{object_name}.{:x}", nanos + sequence as u128)
}

/// The Event object for a first occurrence.
pub fn build_event<K>(
    object: &K,
    kind: EventType,
    reason: &str,
    message: &str,
    reporter: &Reporter,
    name: String,
    now: jiff::Timestamp,
) -> Event
where
    K: Resource<DynamicType = ()>,
{
    let (component, host) = (reporter.component.as_str(), reporter.host.as_deref());
    let namespace = object.namespace().unwrap_or_else(|| "default".into());
    let now = Time(now);
    Event {
        metadata: ObjectMeta {
            name: Some(name),
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
        type_: Some(kind.as_str().into()),
        source: Some(EventSource {
            component: Some(component.to_string()),
            host: host.map(str::to_string),
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(host.unwrap_or(component).to_string()),
        ..Default::default()
    }
}

impl Recorder {
    pub fn new(client: Client, component: &str, host: Option<String>) -> Self {
        Recorder {
            client,
            reporter: Reporter {
                component: component.to_string(),
                host,
            },
            seen: Mutex::default(),
            sequence: AtomicU64::new(0),
        }
    }

    /// Record an event about `object`. Failures are logged, never returned: an event that
    /// cannot be written must not stop the work it describes.
    pub async fn record<K>(&self, object: &K, kind: EventType, reason: &str, message: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        let namespace = object.namespace().unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let key = (
            object.uid().unwrap_or_default(),
            reason.to_string(),
            message.to_string(),
        );
        let now = jiff::Timestamp::now();
        let existing = self
            .seen
            .lock()
            .ok()
            .and_then(|seen| seen.get(&key).cloned());
        if let Some((name, count)) = existing {
            let patch = serde_json::json!({"count": count + 1, "lastTimestamp": Time(now)});
            if api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                if let Ok(mut seen) = self.seen.lock() {
                    seen.insert(key, (name, count + 1));
                }
                return;
            }
        }
        let name = event_name(
            &object.name_any(),
            now,
            self.sequence.fetch_add(1, Ordering::Relaxed),
        );
        let event = build_event(
            object,
            kind,
            reason,
            message,
            &self.reporter,
            name.clone(),
            now,
        );
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                if let Ok(mut seen) = self.seen.lock() {
                    if seen.len() >= MAX_REMEMBERED {
                        seen.clear();
                    }
                    seen.insert(key, (name, 1));
                }
            }
            Err(e) => tracing::debug!(error = %e, reason, "could not record event"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn event_names_are_unique_and_hex() {
        let now = jiff::Timestamp::from_nanosecond(255).unwrap();
        assert_eq!(event_name("web-1", now, 0), "web-1.ff");
        assert_ne!(event_name("web-1", now, 0), event_name("web-1", now, 1));
    }

    #[test]
    fn event_references_the_pod_as_describe_expects() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": "7"}
        }))
        .unwrap();
        let event = build_event(
            &pod,
            EventType::Warning,
            "Failed",
            "boom",
            &Reporter {
                component: "kubelet".into(),
                host: Some("node-1".into()),
            },
            "p.1".into(),
            jiff::Timestamp::UNIX_EPOCH,
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["involvedObject"]["kind"], "Pod");
        assert_eq!(json["involvedObject"]["apiVersion"], "v1");
        assert_eq!(json["involvedObject"]["uid"], "u1");
        assert_eq!(json["involvedObject"]["resourceVersion"], "7");
        assert_eq!(json["metadata"]["namespace"], "ns");
        assert_eq!(json["type"], "Warning");
        assert_eq!(json["source"]["component"], "kubelet");
        assert_eq!(json["source"]["host"], "node-1");
        assert_eq!(json["count"], 1);
        assert!(json["firstTimestamp"].is_string() && json["lastTimestamp"].is_string());
    }
}
