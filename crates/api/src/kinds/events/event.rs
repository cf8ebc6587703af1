//! Events of `events.k8s.io/v1`: the same objects as core Events (one storage), in the
//! newer shape, as upstream's `pkg/apis/events/v1` conversion and its create validation
//! for events of this API.

use serde_json::{Map, Value, json};

use crate::kinds::core::event::{EVENT, event_row};
use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::{required_str, supported};
use crate::table::Column;

pub struct Event;

/// (events.k8s.io field, core field): upstream's `Convert_v1_Event_To_core_Event`.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(object: Value, from_events: bool, api_version: &str) -> Value {
    let Value::Object(mut map) = object else {
        return object;
    };
    for (events, core) in RENAMED {
        let (from, to) = if from_events {
            (events, core)
        } else {
            (core, events)
        };
        if let Some(value) = map.remove(*from) {
            map.insert(to.to_string(), value);
        }
    }
    map.insert("apiVersion".into(), json!(api_version));
    map.insert("kind".into(), json!("Event"));
    Value::Object(map)
}

/// `2026-01-01T00:00:00Z` as a MicroTime (`2026-01-01T00:00:00.000000Z`).
fn micro_time(time: &str) -> Option<String> {
    let t: jiff::Timestamp = time.parse().ok()?;
    Some(t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string())
}

impl Kind for Event {
    typed_as!(k8s_openapi::api::events::v1::Event);

    fn to_storage(&self, object: Value) -> Value {
        rename(object, true, "v1")
    }

    fn from_storage(&self, stored: Value) -> Value {
        let mut object = rename(stored, false, "events.k8s.io/v1");
        // Events written through the core API may have no eventTime, which this API's
        // typed clients require (the Python client's model refuses a null): the first
        // time the event was seen, or its creation, stands in.
        if object.get("eventTime").is_none_or(Value::is_null) {
            let seen = ["deprecatedFirstTimestamp", "deprecatedLastTimestamp"]
                .iter()
                .find_map(|f| object.get(*f).and_then(Value::as_str))
                .or_else(|| {
                    object
                        .pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                })
                .and_then(micro_time);
            if let (Some(seen), Some(map)) = (seen, object.as_object_mut()) {
                map.insert("eventTime".into(), json!(seen));
            }
        }
        object
    }

    fn prepare_for_create(&self, _object: &mut Map<String, Value>) {}

    /// Upstream's `ValidateEventCreate` for events of this API.
    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        // On create only: an Event first written through the core API keeps its shape.
        if old.is_some() {
            return;
        }
        if object.get("eventTime").is_none_or(Value::is_null) {
            causes.push(cause("FieldValueRequired", "eventTime", "Required value"));
        }
        required_str(object, "/reportingController", causes);
        required_str(object, "/reportingInstance", causes);
        required_str(object, "/action", causes);
        required_str(object, "/reason", causes);
        supported(object, "/type", &["Normal", "Warning"], causes);
        if object.get("type").is_none() {
            causes.push(cause(
                "FieldValueNotSupported",
                "type",
                "Unsupported value: \"\": supported values: \"Normal\", \"Warning\"",
            ));
        }
        if object["note"].as_str().is_some_and(|n| n.len() > 1024) {
            causes.push(cause(
                "FieldValueTooLong",
                "note",
                "Too long: may not be more than 1024 bytes",
            ));
        }
    }

    fn columns(&self) -> &[Column] {
        EVENT
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        (event_row(&self.to_storage(o.clone()), now), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways() {
        let events = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "regarding": {"kind": "Pod", "name": "p"}, "note": "hello",
            "reportingController": "me", "reportingInstance": "me-1", "action": "Start", "reason": "Started", "type": "Normal"});
        let core = Event.to_storage(events.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "me");
        assert_eq!(Event.from_storage(core), events);
    }

    #[test]
    fn a_core_event_gets_an_event_time() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "firstTimestamp": "2026-01-01T00:00:05Z", "message": "m", "count": 3});
        let events = Event.from_storage(core);
        assert_eq!(events["eventTime"], "2026-01-01T00:00:05.000000Z");
        assert_eq!(events["deprecatedCount"], 3);
        assert_eq!(events["note"], "m");
    }
}
