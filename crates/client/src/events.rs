//! core/v1 Events, the kind `kubectl describe` lists. One background task per recorder
//! writes them, so recording never slows or fails the work it describes; repeats of the
//! same event on the same object bump `count` and `lastTimestamp` instead of creating
//! another object, as upstream's `record.EventRecorder` does.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::{mpsc, oneshot};

/// Past this many distinct events the aggregation table starts over, so a long-running
/// component does not grow without bound (a repeat then creates a new object: still
/// correct, only less compact).
const MAX_REMEMBERED: usize = 4096;

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

/// Who reports: `source.component`/`reportingComponent`, and for node components the
/// node as `source.host` (`kubectl describe` prints `kubelet, node-1` from the pair).
#[derive(Debug, Clone, PartialEq)]
pub struct Reporter {
    pub component: String,
    pub host: Option<String>,
}

impl Reporter {
    /// A control-plane component, which reports no host.
    pub fn component(component: &str) -> Self {
        Reporter {
            component: component.to_string(),
            host: None,
        }
    }
}

/// The event name upstream gives: `<object>.<hex of UnixNano>`. `sequence` is added so
/// that two events about one object in the same nanosecond still get distinct names.
pub fn event_name(object_name: &str, now: jiff::Timestamp, sequence: u64) -> String {
    let nanos = now.as_nanosecond().max(0) as u128;
    format!("{object_name}.{:x}", nanos + sequence as u128)
}

/// The Event object for a first occurrence of an event about `object`.
pub fn build_event<K>(
    object: &K,
    type_: EventType,
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
    let now = Time(now);
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            // Events about cluster-scoped objects (nodes) live in `default`, as upstream's.
            namespace: Some(object.namespace().unwrap_or_else(|| "default".into())),
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
        type_: Some(type_.as_str().to_string()),
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

/// What makes two events the same one, to be counted rather than written again:
/// (namespace, object uid or name, type, reason, message).
type AggregationKey = (String, String, String, String, String);

fn aggregation_key(event: &Event) -> AggregationKey {
    let object = &event.involved_object;
    (
        event.metadata.namespace.clone().unwrap_or_default(),
        object
            .uid
            .clone()
            .or(object.name.clone())
            .unwrap_or_default(),
        event.type_.clone().unwrap_or_default(),
        event.reason.clone().unwrap_or_default(),
        event.message.clone().unwrap_or_default(),
    )
}

enum Message {
    Record(Box<Event>),
    /// Answered once everything queued before it has been written.
    Flush(oneshot::Sender<()>),
}

/// Records events for one component. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct Recorder {
    reporter: Arc<Reporter>,
    sender: mpsc::UnboundedSender<Message>,
    sequence: Arc<AtomicU64>,
}

impl Recorder {
    /// Start the writer task (needs a Tokio runtime). It ends when the last clone is dropped.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_events(client, receiver));
        Recorder {
            reporter: Arc::new(reporter),
            sender,
            sequence: Arc::default(),
        }
    }

    /// Queue an event about `object`. Never blocks and never fails: an event that cannot
    /// be written must not stop the work it describes (the writer logs failures).
    pub fn record<K>(&self, object: &K, type_: EventType, reason: &str, message: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        let now = jiff::Timestamp::now();
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let name = event_name(&object.name_any(), now, sequence);
        let event = build_event(object, type_, reason, message, &self.reporter, name, now);
        let _ = self.sender.send(Message::Record(Box::new(event)));
    }

    /// Wait until every event queued so far has been written (or has failed to be).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }
}

async fn write_events(client: Client, mut receiver: mpsc::UnboundedReceiver<Message>) {
    // aggregation key → (event name, count written so far)
    let mut seen: HashMap<AggregationKey, (String, i32)> = HashMap::new();
    while let Some(message) = receiver.recv().await {
        let event = match message {
            Message::Record(event) => event,
            Message::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let key = aggregation_key(&event);
        let api: Api<Event> = Api::namespaced(client.clone(), &key.0);
        if let Some((name, count)) = seen.get(&key).cloned() {
            let patch =
                serde_json::json!({"count": count + 1, "lastTimestamp": event.last_timestamp});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    seen.insert(key, (name, count + 1));
                    continue;
                }
                // Gone (deleted, or expired by its TTL): write it afresh below.
                Err(error) => tracing::debug!(%error, name, "could not count event again"),
            }
        }
        match api.create(&PostParams::default(), &event).await {
            Ok(created) => {
                if seen.len() >= MAX_REMEMBERED {
                    seen.clear();
                }
                let name = created.metadata.name.or(event.metadata.name.clone());
                seen.insert(key, (name.unwrap_or_default(), 1));
            }
            Err(error) => {
                tracing::debug!(%error, reason = ?event.reason, "could not record event")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{Value, json};
    use std::sync::Mutex;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u1", "resourceVersion": "7"}
        }))
        .unwrap()
    }

    #[test]
    fn event_names_are_upstreams_hex_nanoseconds_and_unique() {
        let now = jiff::Timestamp::from_nanosecond(255).unwrap();
        assert_eq!(event_name("web-1", now, 0), "web-1.ff");
        assert_ne!(event_name("web-1", now, 0), event_name("web-1", now, 1));
    }

    #[test]
    fn an_event_names_its_object_as_kubectl_describe_looks_it_up() {
        let reporter = Reporter {
            component: "kubelet".into(),
            host: Some("node-1".into()),
        };
        let now = jiff::Timestamp::UNIX_EPOCH;
        let event = build_event(
            &pod(),
            EventType::Warning,
            "Failed",
            "boom",
            &reporter,
            "web.1".into(),
            now,
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["metadata"]["namespace"], "prod");
        assert_eq!(json["involvedObject"]["kind"], "Pod");
        assert_eq!(json["involvedObject"]["apiVersion"], "v1");
        assert_eq!(json["involvedObject"]["name"], "web");
        assert_eq!(json["involvedObject"]["uid"], "u1");
        assert_eq!(json["involvedObject"]["resourceVersion"], "7");
        assert_eq!(json["type"], "Warning");
        assert_eq!(json["source"]["component"], "kubelet");
        assert_eq!(json["source"]["host"], "node-1");
        assert_eq!(json["reportingInstance"], "node-1");
        assert_eq!(json["count"], 1);
        assert_eq!(event.first_timestamp, Some(Time(now)));

        let control_plane = build_event(
            &pod(),
            EventType::Normal,
            "Scheduled",
            "m",
            &Reporter::component("default-scheduler"),
            "web.2".into(),
            now,
        );
        assert_eq!(control_plane.source.unwrap().host, None);
        assert_eq!(
            control_plane.reporting_instance.as_deref(),
            Some("default-scheduler")
        );
    }

    /// A client whose every request is logged as (method, path, body) and answered by
    /// `respond`: the writer's conversation with the server, without a server.
    fn logging_client(
        respond: impl Fn(&str) -> u16 + Send + Sync + 'static,
    ) -> (Client, Arc<Mutex<Vec<(String, String, Value)>>>) {
        use http_body_util::BodyExt;
        let log: Arc<Mutex<Vec<(String, String, Value)>>> = Arc::default();
        let (seen, respond) = (log.clone(), Arc::new(respond));
        let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
            let (seen, respond) = (seen.clone(), respond.clone());
            async move {
                let (parts, body) = request.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let method = parts.method.to_string();
                let path = parts.uri.path().to_string();
                let code = respond(&method);
                // A created event comes back as sent; a patched one by the name in its path.
                let reply = if method == "POST" {
                    body.clone()
                } else if code < 300 {
                    json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": path.rsplit('/').next()}, "involvedObject": {}})
                } else {
                    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": "NotFound", "message": "gone"})
                };
                seen.lock().unwrap().push((method, path, body));
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .status(code)
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(http_body_util::Full::new(bytes::Bytes::from(
                            reply.to_string(),
                        )))
                        .unwrap(),
                )
            }
        });
        (Client::new(service, "default"), log)
    }

    #[tokio::test]
    async fn a_repeat_is_counted_on_the_first_event_not_written_again() {
        let (client, log) = logging_client(|_| 201);
        let recorder = Recorder::new(client, Reporter::component("replicaset-controller"));
        recorder.record(&pod(), EventType::Normal, "Started", "Started container a");
        recorder.record(&pod(), EventType::Normal, "Started", "Started container a");
        recorder.record(&pod(), EventType::Warning, "Failed", "other");
        recorder.flush().await;

        let log = log.lock().unwrap().clone();
        let calls: Vec<(&str, &str)> = log
            .iter()
            .map(|(m, p, _)| (m.as_str(), p.as_str()))
            .collect();
        let first_name = log[0].2["metadata"]["name"].as_str().unwrap().to_string();
        assert!(first_name.starts_with("web."), "{first_name}");
        assert_eq!(
            calls,
            [
                ("POST", "/api/v1/namespaces/prod/events"),
                (
                    "PATCH",
                    format!("/api/v1/namespaces/prod/events/{first_name}").as_str()
                ),
                ("POST", "/api/v1/namespaces/prod/events"),
            ]
        );
        assert_eq!(log[1].2["count"], 2);
        assert!(log[1].2["lastTimestamp"].is_string());
    }

    #[tokio::test]
    async fn a_repeat_of_a_vanished_event_creates_it_again() {
        let (client, log) = logging_client(|method| if method == "PATCH" { 404 } else { 201 });
        let recorder = Recorder::new(client, Reporter::component("c"));
        for _ in 0..2 {
            recorder.record(&pod(), EventType::Normal, "R", "m");
        }
        recorder.flush().await;
        let methods: Vec<String> = log.lock().unwrap().iter().map(|c| c.0.clone()).collect();
        assert_eq!(methods, ["POST", "PATCH", "POST"]);
    }
}
