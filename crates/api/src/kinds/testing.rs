//! Helpers for the kind modules' tests: a fixed clock, a Table row, defaults, validation.

use serde_json::{Value, json};

use crate::resource::{ResourceInfo, find_kind};
use crate::table::{IncludeObject, render};

/// The tests' "now": ten minutes after [`created`].
pub fn now() -> jiff::Timestamp {
    "2026-01-01T00:10:00Z".parse().unwrap()
}

pub fn created() -> &'static str {
    "2026-01-01T00:00:00Z"
}

pub fn resource(group: &str, kind: &str) -> &'static ResourceInfo {
    find_kind(group, kind).unwrap_or_else(|| panic!("{group}/{kind} is not served"))
}

/// The cells of the object's Table row (checked to match the column count).
pub fn cells(group: &str, kind: &str, object: Value) -> Value {
    let table = render(
        resource(group, kind),
        &[object],
        json!({}),
        IncludeObject::None,
        now(),
        true,
    );
    assert_eq!(
        table["columnDefinitions"].as_array().unwrap().len(),
        table["rows"][0]["cells"].as_array().unwrap().len(),
        "{kind}: one cell per column"
    );
    table["rows"][0]["cells"].clone()
}

/// The object as a create stores it: status reset, then defaults.
pub fn created_object(group: &str, kind: &str, mut object: Value) -> Value {
    let r = resource(group, kind);
    crate::strategy::prepare_for_create(r, &mut object);
    crate::strategy::apply_defaults(r, &mut object);
    object
}

/// The (field, message) of every validation problem, after defaults; empty when valid.
pub fn problems(group: &str, kind: &str, object: Value) -> Vec<(String, String)> {
    let r = resource(group, kind);
    let object = created_object(group, kind, object);
    crate::strategy::normalize(r, &object, crate::strategy::FieldValidation::Strict)
        .unwrap_or_else(|e| panic!("{kind} does not decode: {}", e.message));
    match crate::strategy::validate(r, &object, None) {
        Ok(()) => Vec::new(),
        Err(e) => e.causes.into_iter().map(|c| (c.field, c.message)).collect(),
    }
}
