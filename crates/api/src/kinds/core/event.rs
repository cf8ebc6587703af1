//! Events (`v1`): upstream's `pkg/registry/core/event` field selectors and `printEvent`.

use serde_json::{Value, json};

use crate::kinds::{Kind, typed_as};
use crate::table::{Column, Doc, META, age_of, col, n, s, since, timestamp};

pub struct Event;

impl Kind for Event {
    typed_as!(k8s_openapi::api::core::v1::Event);

    fn selectable_fields(&self) -> &'static [&'static str] {
        &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]
    }

    fn columns(&self) -> &[Column] {
        EVENT
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        (event_row(o, now), None)
    }
}

pub(crate) const EVENT: &[Column] = &[
    col(
        "Last Seen",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.Event", "lastTimestamp"),
    ),
    col(
        "Type",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.Event", "type"),
    ),
    col(
        "Reason",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.Event", "reason"),
    ),
    col(
        "Object",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.Event", "involvedObject"),
    ),
    col(
        "Subobject",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.ObjectReference", "fieldPath"),
    ),
    col(
        "Source",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.Event", "source"),
    ),
    col(
        "Message",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.Event", "message"),
    ),
    col(
        "First Seen",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.Event", "firstTimestamp"),
    ),
    col(
        "Count",
        "string",
        1,
        Doc::Field("io.k8s.api.core.v1.Event", "count"),
    ),
    col("Name", "string", 1, Doc::Field(META, "name")),
];

/// Upstream's `printEvent` (wide): times fall back from lastTimestamp to firstTimestamp to
/// eventTime, and a series overrides both the last time and the count.
pub(crate) fn event_row(e: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let first = timestamp(e.get("firstTimestamp").and_then(Value::as_str))
        .or_else(|| timestamp(e.get("eventTime").and_then(Value::as_str)));
    let first_seen = since(first, now);
    let mut last_seen = match timestamp(e.get("lastTimestamp").and_then(Value::as_str)) {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = n(e, "/count");
    if e.get("series").is_some_and(Value::is_object) {
        last_seen = age_of(
            e.pointer("/series/lastObservedTime")
                .and_then(Value::as_str),
            now,
        );
        count = n(e, "/series/count");
    } else if count == 0 {
        // Events of the events.k8s.io API leave the count unset for a single occurrence.
        count = 1;
    }
    let kind = s(e, "/involvedObject/kind").to_lowercase();
    let name = s(e, "/involvedObject/name");
    let object = if name.is_empty() {
        kind
    } else {
        format!("{kind}/{name}")
    };
    let component = [s(e, "/source/component"), s(e, "/reportingComponent")]
        .into_iter()
        .find(|x| !x.is_empty())
        .unwrap_or("");
    let instance = [s(e, "/source/host"), s(e, "/reportingInstance")]
        .into_iter()
        .find(|x| !x.is_empty())
        .unwrap_or("");
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last_seen),
        json!(s(e, "/type")),
        json!(s(e, "/reason")),
        json!(object),
        json!(s(e, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(e, "/message").trim()),
        json!(first_seen),
        json!(count),
        json!(s(e, "/metadata/name")),
    ]
}
