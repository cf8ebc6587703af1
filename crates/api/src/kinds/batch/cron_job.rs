//! CronJobs (`batch/v1`): upstream's `SetDefaults_CronJob`, `ValidateCronJob` (the parts
//! Podium checks) and `printCronJob`. No controller runs them yet.

use serde_json::{Map, Value, json};

use crate::kinds::core::pod::{default_pod_spec_at, pod_spec_quantity_maps, validate_template_at};
use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::{at_least, not_supported, required_str, set_default, supported};
use crate::table::{
    AGE, CONTAINERS, Column, Doc, IMAGES, NAME, age_of, arr, col, containers_and_images,
    name_and_age, or_none, s,
};

pub struct CronJob;

const TEMPLATE: &str = "/spec/jobTemplate/spec/template";

impl Kind for CronJob {
    typed_as!(k8s_openapi::api::batch::v1::CronJob);

    fn quantity_maps<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        pod_spec_quantity_maps(object.pointer(&format!("{TEMPLATE}/spec")))
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert("status".into(), json!({}));
    }

    fn apply_defaults(&self, object: &mut Value) {
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            set_default(spec, "concurrencyPolicy", json!("Allow"));
            set_default(spec, "suspend", json!(false));
            set_default(spec, "successfulJobsHistoryLimit", json!(3));
            set_default(spec, "failedJobsHistoryLimit", json!(1));
        }
        default_pod_spec_at(object, &format!("{TEMPLATE}/spec"));
    }

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        if let Some(schedule) = required_str(object, "/spec/schedule", causes) {
            if let Some(problem) = schedule_problem(schedule) {
                causes.push(cause(
                    "FieldValueInvalid",
                    "spec.schedule",
                    format!("Invalid value: {schedule:?}: {problem}"),
                ));
            }
        }
        supported(
            object,
            "/spec/concurrencyPolicy",
            &["Allow", "Forbid", "Replace"],
            causes,
        );
        for field in [
            "startingDeadlineSeconds",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ] {
            at_least(object, &format!("/spec/{field}"), 0, causes);
        }
        validate_template_at(object, TEMPLATE, causes);
        let restart = format!("{TEMPLATE}/spec/restartPolicy");
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

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let last = match o
            .pointer("/status/lastScheduleTime")
            .and_then(Value::as_str)
        {
            Some(t) => age_of(Some(t), now),
            None => "<none>".into(),
        };
        let (containers, images) = containers_and_images(o.pointer(&format!("{TEMPLATE}/spec")));
        let selector =
            crate::selector::label_selector_string(o.pointer("/spec/jobTemplate/spec/selector"))
                .map(or_none)
                .unwrap_or_else(|| "<error>".into());
        // `printBoolPtr`: `False` when unset.
        let suspend = match o.pointer("/spec/suspend").and_then(Value::as_bool) {
            Some(true) => "True",
            _ => "False",
        };
        let cells = vec![
            name,
            json!(s(o, "/spec/schedule")),
            json!(or_none(s(o, "/spec/timeZone").to_string())),
            json!(suspend),
            json!(arr(o, "/status/active").len()),
            json!(last),
            age,
            json!(containers),
            json!(images),
            json!(selector),
        ];
        (cells, None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium does not run CronJobs yet: the CronJob is stored but no Jobs are created on its schedule",
        )
    }
}

/// What the cron parser upstream uses (robfig/cron, standard 5 fields or a `@` descriptor)
/// says of a schedule it cannot read; None when it reads it.
fn schedule_problem(schedule: &str) -> Option<String> {
    let text = schedule.trim();
    let text = text
        .strip_prefix("TZ=")
        .or_else(|| text.strip_prefix("CRON_TZ="))
        .map_or(text, |rest| {
            rest.split_once(' ').map_or("", |(_, s)| s.trim())
        });
    if let Some(descriptor) = text.strip_prefix('@') {
        let known = [
            "yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly",
        ];
        return if known.contains(&descriptor) || descriptor.starts_with("every ") {
            None
        } else {
            Some(format!("unrecognized descriptor: {text}"))
        };
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 5 {
        return Some(format!(
            "expected exactly 5 fields, found {}: {text}",
            fields.len()
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "*/,-?".contains(c);
    fields
        .iter()
        .find(|f| !f.chars().all(allowed))
        .map(|f| format!("failed to parse int from {f}"))
}

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Schedule",
        "string",
        0,
        Doc::Field("io.k8s.api.batch.v1.CronJobSpec", "schedule"),
    ),
    col(
        "Timezone",
        "string",
        0,
        Doc::Field("io.k8s.api.batch.v1.CronJobSpec", "timeZone"),
    ),
    col(
        "Suspend",
        "boolean",
        0,
        Doc::Field("io.k8s.api.batch.v1.CronJobSpec", "suspend"),
    ),
    col(
        "Active",
        "integer",
        0,
        Doc::Field("io.k8s.api.batch.v1.CronJobStatus", "active"),
    ),
    col(
        "Last Schedule",
        "string",
        0,
        Doc::Field("io.k8s.api.batch.v1.CronJobStatus", "lastScheduleTime"),
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
    use super::schedule_problem;
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    fn cron() -> serde_json::Value {
        json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "hello", "creationTimestamp": created()},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "hello", "image": "busybox:1.36"}]}}}}}})
    }

    #[test]
    fn defaults_row_and_validation() {
        let stored = created_object("batch", "CronJob", cron());
        assert_eq!(stored["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(stored["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(
            cells("batch", "CronJob", stored),
            json!([
                "hello",
                "*/5 * * * *",
                "<none>",
                "False",
                0,
                "<none>",
                "10m",
                "hello",
                "busybox:1.36",
                "<none>"
            ])
        );
        assert!(problems("batch", "CronJob", cron()).is_empty());
        let mut bad = cron();
        bad["spec"]["schedule"] = json!("every minute");
        bad["spec"]["concurrencyPolicy"] = json!("Sometimes");
        assert_eq!(
            problems("batch", "CronJob", bad),
            [
                ("spec.schedule".to_string(), "Invalid value: \"every minute\": expected exactly 5 fields, found 2: every minute".to_string()),
                ("spec.concurrencyPolicy".to_string(), "Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"".to_string()),
            ]
        );
        assert_eq!(schedule_problem("@hourly"), None);
        assert_eq!(schedule_problem("TZ=UTC 0 * * * *"), None);
    }
}
