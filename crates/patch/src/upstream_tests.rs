//! apimachinery's own strategic merge patch cases (`patch_test.go`, extracted into
//! `testdata/upstream-cases.json`), run against the port with the test's `MergeItem` schema:
//! each two-way patch applied to `original` must give `modified` (or `twoWayResult`), each
//! three-way patch applied to `current` must give `result`.

use serde_json::{Value, json};

use crate::smp::{self, PatchSchema};
use crate::strategy::ListStrategy;

/// The struct tags of upstream's `MergeItem` / `RetainKeysMergeItem` test types. Every
/// tagged field name means the same wherever it appears, so the last path segment decides.
struct MergeItemSchema;

impl PatchSchema for MergeItemSchema {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy {
        match path.last() {
            // `mergeItemPtr` is tagged merge/name, and the cases patch it as a list.
            Some(&"mergingList") | Some(&"retainKeysMergingList") | Some(&"mergeItemPtr") => {
                ListStrategy::MergeByKey("name")
            }
            Some(&"mergingIntList") => ListStrategy::MergePrimitives,
            _ => ListStrategy::Replace,
        }
    }
    fn replaces_map(&self, path: &[&str]) -> bool {
        path.last() == Some(&"replacingItem")
    }
}

const CASES: &str = include_str!("../testdata/upstream-cases.json");

/// One check: apply `patch` to `base` and expect `expected` or an error containing `error`.
fn check(
    description: &str,
    base: &Value,
    patch: &Value,
    expected: Option<&Value>,
    error: Option<&str>,
) -> Option<String> {
    let base = if base.is_null() {
        json!({})
    } else {
        base.clone()
    };
    let patch = if patch.is_null() {
        json!({})
    } else {
        patch.clone()
    };
    let outcome = smp::apply(&MergeItemSchema, &base, &patch);
    match (outcome, error) {
        (Err(e), Some(wanted)) if e.to_string().contains(wanted) => None,
        (outcome, Some(wanted)) => Some(format!(
            "{description}: wanted an error containing {wanted:?}, got {outcome:?}"
        )),
        (Ok(got), None) => {
            let expected = expected.cloned().unwrap_or(Value::Null);
            let expected = if expected.is_null() {
                json!({})
            } else {
                expected
            };
            (got != expected).then(|| format!("{description}:\n  base     {base}\n  patch    {patch}\n  expected {expected}\n  got      {got}"))
        }
        (Err(e), None) => Some(format!("{description}: unexpected error {e}")),
    }
}

#[test]
fn upstream_strategic_merge_patch_cases() {
    let document: Value = serde_json::from_str(CASES).unwrap();
    let cases = document["cases"].as_array().unwrap();
    let mut checks = 0;
    let mut failures = Vec::new();
    for case in cases {
        let description = format!(
            "{} / {}",
            case["source"].as_str().unwrap(),
            case["description"].as_str().unwrap()
        );
        let error = case.get("expectedError").and_then(Value::as_str);
        if let Some(two_way) = case.get("twoWay") {
            let expected = case.get("twoWayResult").or_else(|| case.get("modified"));
            checks += 1;
            failures.extend(check(
                &format!("{description} (two-way)"),
                &case["original"],
                two_way,
                expected,
                error,
            ));
        }
        if let (Some(three_way), Some(result)) = (case.get("threeWay"), case.get("result")) {
            checks += 1;
            failures.extend(check(
                &format!("{description} (three-way)"),
                &case["current"],
                three_way,
                Some(result),
                error,
            ));
        }
    }
    assert!(
        checks > 250,
        "only {checks} upstream checks ran: is testdata/upstream-cases.json complete?"
    );
    assert!(
        failures.is_empty(),
        "{} of {checks} upstream cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
