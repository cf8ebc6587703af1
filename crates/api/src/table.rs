//! `meta.k8s.io/v1` Table rendering: the columns `kubectl get` prints, computed on the server as upstream's `pkg/printers/internalversion/printers.go` does.
//!
//! Rows are built as upstream's printers build them with `Wide: true` (the API server
//! always does; kubectl hides the columns with priority 1 unless `-o wide`). Column
//! descriptions are upstream's: the fixed texts of `printers.go`, or the field's
//! documentation, read here from the k8s-openapi schemas that carry the same text.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use schemars::generate::SchemaGenerator;
use serde_json::{Map, Value, json};

use crate::resource::ResourceInfo;

/// `?includeObject=`: what each row carries besides its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// Cells only.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (kubectl's `-A`, `--show-labels`).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

/// apimachinery's `duration.HumanDuration`, for a duration in whole seconds (Go truncates
/// toward zero, as `as_secs` does).
pub fn human_duration(seconds: i64) -> String {
    // Up to a second in the future counts as now: clocks of two machines drift.
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

pub(crate) fn timestamp(ts: Option<&str>) -> Option<jiff::Timestamp> {
    ts.and_then(|t| t.parse::<jiff::Timestamp>().ok())
}

/// Upstream's `translateTimestampSince`: `<unknown>` for a zero (here: absent) time.
pub(crate) fn since(ts: Option<jiff::Timestamp>, now: jiff::Timestamp) -> String {
    match ts {
        Some(t) => human_duration(now.duration_since(t).as_secs()),
        None => "<unknown>".into(),
    }
}

pub(crate) fn age_of(ts: Option<&str>, now: jiff::Timestamp) -> String {
    since(timestamp(ts), now)
}

pub(crate) fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn n(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

pub(crate) fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

/// Where a column's description comes from.
#[derive(Clone, Copy)]
pub enum Doc {
    /// A fixed text from `printers.go`.
    Text(&'static str),
    /// A field's documentation: (schema name, property).
    Field(&'static str, &'static str),
}

/// One Table column: its name, type (`string`, `integer`...), priority (0 always shown,
/// 1 only with `-o wide`) and where its description comes from.
pub struct Column {
    name: &'static str,
    kind: &'static str,
    priority: u8,
    doc: Doc,
}

impl Column {
    pub fn name(&self) -> &'static str {
        self.name
    }
}

pub const fn col(name: &'static str, kind: &'static str, priority: u8, doc: Doc) -> Column {
    Column {
        name,
        kind,
        priority,
        doc,
    }
}

pub(crate) const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
pub(crate) const NAME: Column = col("Name", "string", 0, Doc::Field(META, "name"));
pub(crate) const AGE: Column = col("Age", "string", 0, Doc::Field(META, "creationTimestamp"));
pub(crate) const CONTAINERS: Column = col(
    "Containers",
    "string",
    1,
    Doc::Text("Names of each container in the template."),
);
pub(crate) const IMAGES: Column = col(
    "Images",
    "string",
    1,
    Doc::Text("Images referenced by each container in the template."),
);

/// The columns of a kind with no printer of its own.
pub const GENERIC: &[Column] = &[NAME, AGE];

/// The schemas of every type a column description reads, generated once.
fn field_docs() -> &'static Map<String, Value> {
    static DOCS: OnceLock<Map<String, Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut generator = SchemaGenerator::default();
        for resource in crate::resource::all() {
            resource.behaviour.schema(&mut generator);
        }
        generator.take_definitions(false)
    })
}

fn description(doc: Doc) -> &'static str {
    match doc {
        Doc::Text(text) => text,
        Doc::Field(schema, property) => field_docs()
            .get(schema)
            .and_then(|s| s.pointer(&format!("/properties/{property}/description")))
            .and_then(Value::as_str)
            .unwrap_or(""),
    }
}

/// Column definitions as upstream serializes them.
fn column_definitions(columns: &[Column]) -> Value {
    columns
        .iter()
        .map(|c| {
            let format = if c.name == "Name" { "name" } else { "" };
            json!({"name": c.name, "type": c.kind, "format": format, "description": description(c.doc), "priority": c.priority})
        })
        .collect()
}

/// The columns upstream's default table convertor gives kinds without a printer (Roles,
/// LimitRanges...): `kubectl get` prints `NAME` and `CREATED AT`.
pub(crate) const NAME_AND_CREATED_AT: &[Column] = &[
    NAME,
    col(
        "Created At",
        "date",
        0,
        Doc::Field(META, "creationTimestamp"),
    ),
];

/// The cells of [`NAME_AND_CREATED_AT`]: the creation time in RFC 3339, UTC.
pub(crate) fn name_and_created_at(o: &Value) -> Vec<Value> {
    let created = timestamp(
        o.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str),
    )
    .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
    .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
    vec![json!(s(o, "/metadata/name")), json!(created)]
}

/// The `Name` and `Age` cells every printer starts and ends with.
pub(crate) fn name_and_age(o: &Value, now: jiff::Timestamp) -> [Value; 2] {
    [
        json!(s(o, "/metadata/name")),
        json!(age_of(
            o.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str),
            now
        )),
    ]
}

/// Upstream `listWithMoreString`: the first three, then how many more; `<unset>` if none.
pub(crate) fn list_with_more(items: Vec<String>) -> String {
    const SHOWN: usize = 3;
    let count = items.len();
    let text = items.into_iter().take(SHOWN).collect::<Vec<_>>().join(",");
    if count > SHOWN {
        format!("{text} + {} more...", count - SHOWN)
    } else if text.is_empty() {
        "<unset>".into()
    } else {
        text
    }
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
pub(crate) fn format_labels(map: Option<&Value>) -> String {
    let sorted: BTreeMap<&str, &str> = map
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
        .collect();
    or_none(
        sorted
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

pub(crate) fn condition_true(conditions: &[Value], kind: &str) -> bool {
    conditions
        .iter()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

/// The later of two optional times (Go's zero time loses every comparison).
pub(crate) fn later(
    a: Option<jiff::Timestamp>,
    b: Option<jiff::Timestamp>,
) -> Option<jiff::Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Upstream's `layoutContainerCells`: names and images, comma-joined, position by position.
pub(crate) fn containers_and_images(template_spec: Option<&Value>) -> (String, String) {
    let containers = template_spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let names: Vec<&str> = containers
        .iter()
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c["image"].as_str().unwrap_or(""))
        .collect();
    (names.join(","), images.join(","))
}

fn partial_metadata(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({}))})
}

/// Render objects as a Table. `list_metadata` is the Table's `metadata`
/// (`{resourceVersion, continue}`); `include_column_definitions` is false for every watch
/// event after the first, whose Tables upstream sends with `"columnDefinitions": null`.
pub fn render(
    resource: &ResourceInfo,
    items: &[Value],
    list_metadata: Value,
    include: IncludeObject,
    now: jiff::Timestamp,
    include_column_definitions: bool,
) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let (cells, conditions) = resource.behaviour.row(item, now);
            let mut r = Map::new();
            r.insert("cells".into(), Value::Array(cells));
            if let Some(conditions) = conditions {
                r.insert("conditions".into(), conditions);
            }
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    r.insert("object".into(), partial_metadata(item));
                }
                IncludeObject::Object => {
                    r.insert("object".into(), item.clone());
                }
            }
            Value::Object(r)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": if include_column_definitions { column_definitions(resource.behaviour.columns()) } else { Value::Null },
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::find_kind;

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn cells(kind: &str, group: &str, object: Value) -> Value {
        let t = render(
            find_kind(group, kind).unwrap(),
            &[object],
            json!({}),
            IncludeObject::None,
            now(),
            true,
        );
        assert_eq!(
            t["columnDefinitions"].as_array().unwrap().len(),
            t["rows"][0]["cells"].as_array().unwrap().len(),
            "{kind}"
        );
        t["rows"][0]["cells"].clone()
    }

    #[test]
    fn human_durations_like_upstream() {
        for (secs, want) in [
            (-5, "<invalid>"),
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 5, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 3599, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 24 * 3600 - 1, "7d23h"),
            (24 * 3600 * 30, "30d"),
            (24 * 3600 * 730, "2y"),
            (24 * 3600 * 800, "2y70d"),
            (24 * 3600 * 365 * 9, "9y"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn running_pod_with_restarts() {
        let pod = json!({"metadata": {"name": "web-1", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 2,
                "state": {"running": {"startedAt": "2026-01-01T00:09:31Z"}}, "lastState": {"terminated": {"exitCode": 137, "finishedAt": "2026-01-01T00:09:30Z"}}}]}});
        let t = render(
            find_kind("", "Pod").unwrap(),
            &[pod],
            json!({"resourceVersion": "9"}),
            IncludeObject::Metadata,
            now(),
            true,
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({"resourceVersion": "9"}));
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web-1",
                "1/1",
                "Running",
                "2 (30s ago)",
                "10m",
                "10.42.0.5",
                "n1",
                "<none>",
                "<none>"
            ])
        );
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"name": "web-1", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "web"}}})
        );
        assert!(t["rows"][0].get("conditions").is_none());
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        let priorities: Vec<i64> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["priority"].as_i64().unwrap())
            .collect();
        assert_eq!(priorities, [0, 0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        // Descriptions are upstream's field docs.
        assert!(
            t["columnDefinitions"][0]["description"]
                .as_str()
                .unwrap()
                .starts_with("Name must be unique within a namespace")
        );
        assert!(
            t["columnDefinitions"][5]["description"]
                .as_str()
                .unwrap()
                .contains("IP address allocated to the pod")
        );
    }

    #[test]
    fn pending_waiting_init_and_terminating_pods() {
        let pod = |spec: Value, status: Value, deleting: bool| {
            let mut p = json!({"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:09:55Z"}, "spec": spec, "status": status});
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:10:00Z");
            }
            cells("Pod", "", p)
        };
        let one = json!({"containers": [{"name": "c"}]});
        let pending = pod(one.clone(), json!({"phase": "Pending"}), false);
        assert_eq!(
            pending,
            json!([
                "p", "0/1", "Pending", "0", "5s", "<none>", "<none>", "<none>", "<none>"
            ])
        );
        let pulling = pod(
            one.clone(),
            json!({"phase": "Pending", "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}),
            false,
        );
        assert_eq!(pulling[2], "ImagePullBackOff");
        let crashing = pod(
            one.clone(),
            json!({"phase": "Running", "containerStatuses": [{"name": "c", "ready": false, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T00:07:00Z"}}}]}),
            false,
        );
        assert_eq!(
            (
                crashing[1].clone(),
                crashing[2].clone(),
                crashing[3].clone()
            ),
            (json!("0/1"), json!("CrashLoopBackOff"), json!("4 (3m ago)"))
        );
        assert_eq!(
            pod(one.clone(), json!({"phase": "Running"}), true)[2],
            "Terminating"
        );
        assert_eq!(
            pod(one.clone(), json!({"phase": "Succeeded"}), true)[2],
            "Succeeded"
        );
        assert_eq!(
            pod(
                one.clone(),
                json!({"phase": "Running", "reason": "NodeLost"}),
                true
            )[2],
            "Unknown"
        );
        assert_eq!(
            pod(
                one.clone(),
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
                false
            )[2],
            "SchedulingGated"
        );
        let killed = pod(
            one.clone(),
            json!({"phase": "Running", "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 0, "signal": 9}}}]}),
            false,
        );
        assert_eq!(killed[2], "Signal:9");
        let failed = pod(
            one.clone(),
            json!({"phase": "Running", "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 3}}}]}),
            false,
        );
        assert_eq!(failed[2], "ExitCode:3");

        let with_init = json!({"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "c"}]});
        let second_init_running = pod(
            with_init.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 0}}}, {"name": "i2", "state": {"running": {}}}]}),
            false,
        );
        assert_eq!(second_init_running[2], "Init:1/2");
        let init_failed = pod(
            with_init.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "i1", "restartCount": 1, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
            false,
        );
        assert_eq!(
            (init_failed[2].clone(), init_failed[3].clone()),
            (json!("Init:Error"), json!("1"))
        );
        let init_backoff = pod(
            with_init,
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "i1", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
            false,
        );
        assert_eq!(init_backoff[2], "Init:CrashLoopBackOff");

        // A started sidecar counts toward READY and the total.
        let sidecar = pod(
            json!({"initContainers": [{"name": "s", "restartPolicy": "Always"}], "containers": [{"name": "c"}]}),
            json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [{"name": "s", "started": true, "ready": true, "restartCount": 1, "state": {"running": {}}}],
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
            false,
        );
        assert_eq!(
            (sidecar[1].clone(), sidecar[2].clone(), sidecar[3].clone()),
            (json!("2/2"), json!("Running"), json!("1"))
        );
    }

    #[test]
    fn completed_pods_carry_row_conditions() {
        let pod = json!({"metadata": {"name": "job"}, "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [{"name": "c", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
        let t = render(
            find_kind("", "Pod").unwrap(),
            &[pod],
            json!({}),
            IncludeObject::Object,
            now(),
            false,
        );
        assert_eq!(t["rows"][0]["cells"][2], "Completed");
        assert_eq!(t["rows"][0]["cells"][4], "<unknown>");
        assert_eq!(t["rows"][0]["conditions"][0]["type"], "Completed");
        assert_eq!(t["rows"][0]["object"]["status"]["phase"], "Succeeded");
        assert!(t["columnDefinitions"].is_null());
    }

    #[test]
    fn deployments_and_replica_sets() {
        let d = json!({"metadata": {"name": "d", "creationTimestamp": "2026-01-01T00:09:00Z"}, "spec": {"replicas": 3,
            "selector": {"matchLabels": {"tier": "web", "app": "x"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
            "template": {"spec": {"containers": [{"name": "c", "image": "i:v1"}, {"name": "side", "image": "s:v2"}]}}},
            "status": {"readyReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3}});
        assert_eq!(
            cells("Deployment", "apps", d),
            json!([
                "d",
                "3/3",
                3,
                3,
                "60s",
                "c,side",
                "i:v1,s:v2",
                "app=x,env in (dev,prod),tier=web"
            ])
        );
        let rolling = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3, "selector": {}}, "status": {"readyReplicas": 1, "updatedReplicas": 2}});
        assert_eq!(
            cells("Deployment", "apps", rolling),
            json!(["d", "1/3", 2, 0, "<unknown>", "", "", ""])
        );
        let rs = json!({"metadata": {"name": "d-5d4f", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "i:v1"}]}}}, "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(
            cells("ReplicaSet", "apps", rs),
            json!(["d-5d4f", 2, 2, 1, "10m", "c", "i:v1", "app=x"])
        );
        let bad = json!({"metadata": {"name": "r"}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}});
        assert_eq!(cells("ReplicaSet", "apps", bad)[7], "<error>");
        let empty = json!({"metadata": {"name": "r"}, "spec": {"selector": {}}});
        assert_eq!(cells("ReplicaSet", "apps", empty)[7], "<none>");
        let defs = render(
            find_kind("apps", "Deployment").unwrap(),
            &[],
            json!({}),
            IncludeObject::None,
            now(),
            true,
        );
        let names: Vec<&str> = defs["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(defs["rows"], json!([]));
    }

    #[test]
    fn services() {
        let svc = json!({"metadata": {"name": "s", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"],
            "selector": {"app": "x", "a": "b"}, "ports": [{"port": 80, "nodePort": 31234, "protocol": "TCP"}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}});
        assert_eq!(
            cells("Service", "", svc.clone()),
            json!([
                "s",
                "LoadBalancer",
                "10.43.0.9",
                "127.0.0.1",
                "80:31234/TCP,53:30053/UDP",
                "10m",
                "a=b,app=x"
            ])
        );
        let mut pending = svc.clone();
        pending["status"] = json!({});
        assert_eq!(
            crate::kinds::core::service::service_external_ip(&pending),
            "<pending>"
        );
        let mut both = svc.clone();
        both["spec"]["externalIPs"] = json!(["192.0.2.1"]);
        both["status"]["loadBalancer"]["ingress"] =
            json!([{"ip": "127.0.0.2"}, {"hostname": "lb.example"}, {"ip": "127.0.0.2"}]);
        assert_eq!(
            crate::kinds::core::service::service_external_ip(&both),
            "127.0.0.2,lb.example,192.0.2.1"
        );
        let cluster = json!({"metadata": {"name": "k"}, "spec": {"type": "ClusterIP", "clusterIPs": ["10.43.0.1"], "ports": [{"port": 443, "protocol": "TCP"}]}});
        assert_eq!(
            cells("Service", "", cluster),
            json!([
                "k",
                "ClusterIP",
                "10.43.0.1",
                "<none>",
                "443/TCP",
                "<unknown>",
                "<none>"
            ])
        );
        let headless = json!({"metadata": {"name": "h"}, "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}});
        assert_eq!(
            cells("Service", "", headless).as_array().unwrap()[2..5],
            json!(["None", "<none>", "<none>"]).as_array().unwrap()[..]
        );
        let external = json!({"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "db.example"}});
        assert_eq!(cells("Service", "", external)[3], "db.example");
    }

    #[test]
    fn nodes() {
        let node = json!({"metadata": {"name": "n1", "creationTimestamp": "2025-12-30T00:00:00Z",
                "labels": {"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge", "node-role.kubernetes.io/": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0-podium", "osImage": "Debian GNU/Linux 13", "kernelVersion": "6.18.0", "containerRuntimeVersion": ""}}});
        assert_eq!(
            cells("Node", "", node),
            json!([
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane,edge,worker",
                "2d",
                "v1.33.0-podium",
                "10.0.0.5",
                "<none>",
                "Debian GNU/Linux 13",
                "6.18.0",
                "<unknown>"
            ])
        );
        let not_ready = json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(
            cells("Node", "", not_ready).as_array().unwrap()[1..3],
            json!(["NotReady", "<none>"]).as_array().unwrap()[..]
        );
        assert_eq!(
            cells("Node", "", json!({"metadata": {"name": "n3"}}))[1],
            "Unknown"
        );
    }

    #[test]
    fn endpoints() {
        let ep = |subsets: Value| {
            cells("Endpoints", "", json!({"metadata": {"name": "e", "creationTimestamp": "2026-01-01T00:09:00Z"}, "subsets": subsets}))[1].clone()
        };
        assert_eq!(ep(json!([])), "<none>");
        assert_eq!(
            ep(
                json!([{"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}], "ports": [{"port": 80}, {"port": 443}]}])
            ),
            "10.42.0.5:80,10.42.0.6:80,10.42.0.5:443 + 1 more..."
        );
        assert_eq!(
            ep(json!([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}])),
            "[fd00::1]:80"
        );
        assert_eq!(
            ep(json!([{"addresses": [{"ip": "10.42.0.7"}]}])),
            "10.42.0.7"
        );
        assert_eq!(
            ep(json!([{"notReadyAddresses": [{"ip": "10.42.0.8"}], "ports": [{"port": 80}]}])),
            ""
        );
    }

    #[test]
    fn events() {
        let event = json!({"metadata": {"name": "web-1.17f", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{c}"},
            "reason": "Pulled", "message": "Container image \"i:v1\" already present on machine\n", "type": "Normal",
            "source": {"component": "kubelet", "host": "n1"}, "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:09:00Z", "count": 3});
        assert_eq!(
            cells("Event", "", event),
            json!([
                "60s",
                "Normal",
                "Pulled",
                "pod/web-1",
                "spec.containers{c}",
                "kubelet, n1",
                "Container image \"i:v1\" already present on machine",
                "10m",
                3,
                "web-1.17f"
            ])
        );
        let new_api = json!({"metadata": {"name": "x"}, "involvedObject": {"kind": "Node"}, "reason": "R", "type": "Warning",
            "eventTime": "2026-01-01T00:05:00.000000Z", "reportingComponent": "scheduler",
            "series": {"count": 7, "lastObservedTime": "2026-01-01T00:09:50.000000Z"}});
        let c = cells("Event", "", new_api);
        assert_eq!(
            (
                c[0].clone(),
                c[3].clone(),
                c[5].clone(),
                c[7].clone(),
                c[8].clone()
            ),
            (
                json!("10s"),
                json!("node"),
                json!("scheduler"),
                json!("5m"),
                json!(7)
            )
        );
        let single =
            json!({"metadata": {"name": "y"}, "involvedObject": {"kind": "Pod", "name": "p"}});
        let c = cells("Event", "", single);
        assert_eq!((c[0].clone(), c[8].clone()), (json!("<unknown>"), json!(1)));
    }

    #[test]
    fn namespaces_config_maps_secrets_leases_and_unknown_kinds() {
        let created = "2026-01-01T00:00:00Z";
        assert_eq!(
            cells(
                "Namespace",
                "",
                json!({"metadata": {"name": "default", "creationTimestamp": created}, "status": {"phase": "Active"}})
            ),
            json!(["default", "Active", "10m"])
        );
        assert_eq!(
            cells(
                "ConfigMap",
                "",
                json!({"metadata": {"name": "cm", "creationTimestamp": created}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}})
            ),
            json!(["cm", 3, "10m"])
        );
        assert_eq!(
            cells("ConfigMap", "", json!({"metadata": {"name": "empty"}})),
            json!(["empty", 0, "<unknown>"])
        );
        assert_eq!(
            cells(
                "Secret",
                "",
                json!({"metadata": {"name": "s", "creationTimestamp": created}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}})
            ),
            json!(["s", "kubernetes.io/tls", 2, "10m"])
        );
        assert_eq!(
            cells(
                "Lease",
                "coordination.k8s.io",
                json!({"metadata": {"name": "n1", "creationTimestamp": created}, "spec": {"holderIdentity": "n1"}})
            ),
            json!(["n1", "n1", "10m"])
        );
        assert_eq!(
            cells(
                "Lease",
                "coordination.k8s.io",
                json!({"metadata": {"name": "free"}, "spec": {}})
            ),
            json!(["free", "", "<unknown>"])
        );
        assert_eq!(
            cells(
                "EndpointSlice",
                "discovery.k8s.io",
                json!({"metadata": {"name": "web-x1", "creationTimestamp": created}, "addressType": "IPv4",
                    "ports": [{"name": "", "port": 8080}, {"name": "metrics"}],
                    "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]})
            ),
            json!([
                "web-x1",
                "IPv4",
                "8080,metrics",
                "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
                "10m"
            ])
        );
        assert_eq!(
            cells(
                "EndpointSlice",
                "discovery.k8s.io",
                json!({"metadata": {"name": "empty"}, "addressType": "IPv4", "endpoints": []})
            ),
            json!(["empty", "IPv4", "<unset>", "<unset>", "<unknown>"])
        );

        let unknown = ResourceInfo {
            group: "example.com",
            version: "v1",
            kind: "Widget",
            plural: "widgets",
            singular: "widget",
            namespaced: true,
            short_names: &[],
            categories: &[],
            subresources: &[],
            behaviour: &crate::kinds::Untyped,
        };
        let t = render(
            &unknown,
            &[json!({"metadata": {"name": "w", "creationTimestamp": created}})],
            json!({"resourceVersion": "3", "continue": "abc"}),
            IncludeObject::Metadata,
            now(),
            true,
        );
        assert_eq!(t["rows"][0]["cells"], json!(["w", "10m"]));
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Age"]);
        assert_eq!(t["metadata"]["continue"], "abc");
    }

    #[test]
    fn every_column_has_a_description() {
        let generic: &[Column] = GENERIC;
        for (kind, columns) in crate::resource::all()
            .into_iter()
            .map(|r| (r.kind, r.behaviour.columns()))
            .chain([("Widget", generic)])
        {
            for c in column_definitions(columns).as_array().unwrap() {
                assert!(
                    !c["description"].as_str().unwrap().is_empty(),
                    "{kind} {}",
                    c["name"]
                );
            }
        }
    }
}
