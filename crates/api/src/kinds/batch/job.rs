//! Jobs (`batch/v1`): upstream's `SetDefaults_Job`, the job strategy's generated selector,
//! `ValidateJob` (the parts Podium checks) and `printJob`. No controller runs them yet.

use serde_json::{Map, Value, json};

use crate::kinds::apps::daemon_set::selector_text;
use crate::kinds::core::pod::{default_pod_spec_at, pod_spec_quantity_maps, validate_template_at};
use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::{
    at_least, not_supported, set_default, supported, validate_selector_matches_template,
};
use crate::table::{
    AGE, CONTAINERS, Column, Doc, IMAGES, NAME, arr, col, containers_and_images, n, name_and_age, s,
};

pub struct Job;

impl Kind for Job {
    typed_as!(k8s_openapi::api::batch::v1::Job);

    fn quantity_maps<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        pod_spec_quantity_maps(object.pointer("/spec/template/spec"))
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert("status".into(), json!({}));
        generate_selector(object);
    }

    fn apply_defaults(&self, object: &mut Value) {
        default_job_spec(object, "/spec");
    }

    fn validate(&self, object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        validate_job_spec(object, "/spec", causes);
        if let Some(old) = old {
            for (pointer, what) in [
                ("/spec/selector", "selector"),
                ("/spec/completions", "completions"),
            ] {
                if old.pointer(pointer) != object.pointer(pointer) {
                    causes.push(cause(
                        "FieldValueInvalid",
                        &format!("spec.{what}"),
                        "Invalid value: field is immutable",
                    ));
                }
            }
            let template = |v: &Value| v.pointer("/spec/template").cloned();
            if template(old) != template(object) {
                causes.push(cause(
                    "FieldValueInvalid",
                    "spec.template",
                    "Invalid value: field is immutable",
                ));
            }
        }
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let succeeded = n(o, "/status/succeeded");
        let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
            Some(c) => format!("{succeeded}/{c}"),
            None => match n(o, "/spec/parallelism") {
                p if p > 1 => format!("{succeeded}/1 of {p}"),
                _ => format!("{succeeded}/1"),
            },
        };
        let time = |p: &str| {
            o.pointer(p)
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        };
        let duration = match (time("/status/startTime"), time("/status/completionTime")) {
            (None, _) => String::new(),
            (Some(start), None) => {
                crate::table::human_duration(now.duration_since(start).as_secs())
            }
            (Some(start), Some(end)) => {
                crate::table::human_duration(end.duration_since(start).as_secs())
            }
        };
        let conditions = arr(o, "/status/conditions");
        let has = |kind: &str| {
            conditions
                .iter()
                .find(|c| c["type"] == kind)
                .is_some_and(|c| c["status"] == "True")
        };
        let status = if has("Complete") {
            "Complete"
        } else if has("Failed") {
            "Failed"
        } else if o
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
        {
            "Terminating"
        } else if has("Suspended") {
            "Suspended"
        } else if has("FailureTarget") {
            "FailureTarget"
        } else {
            "Running"
        };
        let (containers, images) = containers_and_images(o.pointer("/spec/template/spec"));
        let cells = vec![
            name,
            json!(status),
            json!(completions),
            json!(duration),
            age,
            json!(containers),
            json!(images),
            json!(selector_text(o)),
        ];
        (cells, None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some("Podium does not run Jobs yet: the Job is stored but no pods are created")
    }
}

/// Upstream's job strategy: unless `manualSelector`, the Job selects its pods by its uid,
/// and the template carries the labels that select them.
fn generate_selector(object: &mut Map<String, Value>) {
    if object
        .get("spec")
        .and_then(|spec| spec.get("manualSelector"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        return;
    }
    let uid = object
        .get("metadata")
        .map(|m| s(m, "/uid").to_string())
        .unwrap_or_default();
    let name = object
        .get("metadata")
        .map(|m| s(m, "/name").to_string())
        .unwrap_or_default();
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let Some(template) = spec.get_mut("template").and_then(Value::as_object_mut) else {
        return;
    };
    let metadata = template.entry("metadata").or_insert_with(|| json!({}));
    if let Some(metadata) = metadata.as_object_mut() {
        let labels = metadata.entry("labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            for (key, value) in [
                ("batch.kubernetes.io/controller-uid", &uid),
                ("batch.kubernetes.io/job-name", &name),
                ("controller-uid", &uid),
                ("job-name", &name),
            ] {
                labels.insert(key.into(), json!(value));
            }
        }
    }
}

/// `SetDefaults_Job` on the job spec at `pointer` (a Job's `/spec`), and the template's
/// pod spec defaults.
pub(crate) fn default_job_spec(object: &mut Value, pointer: &str) {
    if let Some(spec) = object.pointer_mut(pointer).and_then(Value::as_object_mut) {
        if spec.get("completions").is_none_or(Value::is_null)
            && spec.get("parallelism").is_none_or(Value::is_null)
        {
            spec.insert("completions".into(), json!(1));
            spec.insert("parallelism".into(), json!(1));
        }
        set_default(spec, "parallelism", json!(1));
        set_default(spec, "backoffLimit", json!(6));
        set_default(spec, "completionMode", json!("NonIndexed"));
        set_default(spec, "suspend", json!(false));
        let replacement = if spec.get("podFailurePolicy").is_some_and(|p| !p.is_null()) {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        set_default(spec, "podReplacementPolicy", json!(replacement));
    }
    default_pod_spec_at(object, &format!("{pointer}/template/spec"));
}

/// `validateJobSpec` for the job spec at `pointer`, with field paths from the root.
pub(crate) fn validate_job_spec(object: &Value, pointer: &str, causes: &mut Vec<Cause>) {
    for field in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        at_least(object, &format!("{pointer}/{field}"), 0, causes);
    }
    supported(
        object,
        &format!("{pointer}/completionMode"),
        &["NonIndexed", "Indexed"],
        causes,
    );
    if object.pointer(&format!("{pointer}/completionMode")) == Some(&json!("Indexed"))
        && object
            .pointer(&format!("{pointer}/completions"))
            .is_none_or(Value::is_null)
    {
        causes.push(cause(
            "FieldValueRequired",
            &format!("{}.completions", crate::strategy::field_path(pointer)),
            "Required value: when completion mode is Indexed",
        ));
    }
    if pointer == "/spec" {
        // A Job's selector (generated or manual) must select its template.
        validate_selector_matches_template(object, causes);
    }
    validate_template_at(object, &format!("{pointer}/template"), causes);
    let restart = format!("{pointer}/template/spec/restartPolicy");
    let policy = object
        .pointer(&restart)
        .and_then(Value::as_str)
        .unwrap_or("Always");
    if !matches!(policy, "OnFailure" | "Never") {
        causes.push(not_supported(
            &crate::strategy::field_path(&restart),
            policy,
            &["OnFailure", "Never"],
        ));
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", 0, Doc::Text("Status of the job.")),
    col(
        "Completions",
        "string",
        0,
        Doc::Field("io.k8s.api.batch.v1.JobStatus", "succeeded"),
    ),
    col(
        "Duration",
        "string",
        0,
        Doc::Text("Time required to complete the job."),
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    col(
        "Selector",
        "string",
        1,
        Doc::Field("io.k8s.api.batch.v1.JobSpec", "selector"),
    ),
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    fn job() -> serde_json::Value {
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "uid": "u-1", "creationTimestamp": created()},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "perl:5.34"}]}}}})
    }

    #[test]
    fn defaults_selector_row_and_validation() {
        let stored = created_object("batch", "Job", job());
        assert_eq!(stored["spec"]["completions"], 1);
        assert_eq!(stored["spec"]["backoffLimit"], 6);
        assert_eq!(
            stored["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u-1"
        );
        assert_eq!(
            stored["spec"]["template"]["metadata"]["labels"]["job-name"],
            "pi"
        );
        assert_eq!(
            cells("batch", "Job", stored),
            json!([
                "pi",
                "Running",
                "0/1",
                "",
                "10m",
                "pi",
                "perl:5.34",
                "batch.kubernetes.io/controller-uid=u-1"
            ])
        );
        assert!(problems("batch", "Job", job()).is_empty());
        let mut bad = job();
        bad["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        bad["spec"]["backoffLimit"] = json!(-1);
        assert_eq!(
            problems("batch", "Job", bad),
            [
                (
                    "spec.backoffLimit".to_string(),
                    "Invalid value: -1: must be greater than or equal to 0".to_string()
                ),
                (
                    "spec.template.spec.restartPolicy".to_string(),
                    "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
                        .to_string()
                ),
            ]
        );
    }

    #[test]
    fn status_column_follows_conditions() {
        let mut done = created_object("batch", "Job", job());
        done["status"] = json!({"succeeded": 1, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:07Z",
            "conditions": [{"type": "Complete", "status": "True"}]});
        let row = cells("batch", "Job", done);
        assert_eq!(
            (row[1].as_str(), row[2].as_str(), row[3].as_str()),
            (Some("Complete"), Some("1/1"), Some("7s"))
        );
    }
}
