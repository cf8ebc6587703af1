//! `rbac.authorization.k8s.io/v1`: stored and served; Podium does not authorize by them
//! yet (every authenticated identity is an administrator), and every write says so.

pub mod cluster_role;
pub mod cluster_role_binding;
pub mod role;
pub mod role_binding;

use serde_json::{Value, json};

use crate::status::{Cause, cause};
use crate::strategy::{not_supported, required_str};
use crate::table::{AGE, Column, Doc, NAME, arr, col, name_and_age, s};

pub(crate) const NOT_AUTHORIZED: &str = "Podium does not authorize requests by RBAC yet: the object is stored, but every authenticated user is still an administrator";

/// Upstream's `ValidatePolicyRule`: verbs always; resource rules need API groups and
/// resources; namespaced Roles have no non-resource URLs.
pub(crate) fn validate_rules(object: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    for (i, rule) in arr(object, "/rules").iter().enumerate() {
        let field = |f: &str| format!("rules[{i}].{f}");
        if arr(rule, "/verbs").is_empty() {
            causes.push(cause(
                "FieldValueRequired",
                &field("verbs"),
                "Required value: verbs must contain at least one value",
            ));
        }
        let urls = arr(rule, "/nonResourceURLs");
        if !urls.is_empty() {
            if namespaced {
                causes.push(cause(
                    "FieldValueInvalid",
                    &field("nonResourceURLs"),
                    format!(
                        "Invalid value: {}: namespaced rules cannot apply to non-resource URLs",
                        json!(urls)
                    ),
                ));
            }
            if !arr(rule, "/apiGroups").is_empty() || !arr(rule, "/resources").is_empty() {
                causes.push(cause(
                    "FieldValueInvalid",
                    &field("nonResourceURLs"),
                    format!(
                        "Invalid value: {}: rules cannot apply to both regular resources and non-resource URLs",
                        json!(urls)
                    ),
                ));
            }
            continue;
        }
        if arr(rule, "/apiGroups").is_empty() {
            causes.push(cause(
                "FieldValueRequired",
                &field("apiGroups"),
                "Required value: resource rules must supply at least one api group",
            ));
        }
        if arr(rule, "/resources").is_empty() {
            causes.push(cause(
                "FieldValueRequired",
                &field("resources"),
                "Required value: resource rules must supply at least one resource",
            ));
        }
    }
}

/// Upstream's `ValidateRoleBinding`/`ValidateClusterRoleBinding`: the role reference and
/// each subject. `role_kinds` are the kinds the reference may name.
pub(crate) fn validate_binding(
    object: &Value,
    old: Option<&Value>,
    role_kinds: &[&str],
    subject_namespace_required: bool,
    causes: &mut Vec<Cause>,
) {
    let group = s(object, "/roleRef/apiGroup");
    if group != "rbac.authorization.k8s.io" {
        causes.push(not_supported(
            "roleRef.apiGroup",
            group,
            &["rbac.authorization.k8s.io"],
        ));
    }
    let kind = s(object, "/roleRef/kind");
    if !role_kinds.contains(&kind) {
        causes.push(not_supported("roleRef.kind", kind, role_kinds));
    }
    required_str(object, "/roleRef/name", causes);
    if let Some(old) = old {
        if old.get("roleRef") != object.get("roleRef") {
            causes.push(cause(
                "FieldValueInvalid",
                "roleRef",
                format!(
                    "Invalid value: {}: cannot change roleRef",
                    object["roleRef"]
                ),
            ));
        }
    }
    for (i, subject) in arr(object, "/subjects").iter().enumerate() {
        let field = |f: &str| format!("subjects[{i}].{f}");
        if s(subject, "/name").is_empty() {
            causes.push(cause(
                "FieldValueRequired",
                &field("name"),
                "Required value",
            ));
        }
        match s(subject, "/kind") {
            "ServiceAccount" => {
                if subject_namespace_required && s(subject, "/namespace").is_empty() {
                    causes.push(cause(
                        "FieldValueRequired",
                        &field("namespace"),
                        "Required value",
                    ));
                }
            }
            "User" | "Group" => {}
            other => causes.push(not_supported(
                &field("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

/// The Table row of a binding: `Role` is `Kind/name`; users, groups and service accounts
/// (`namespace/name`) for `-o wide`.
pub(crate) fn binding_row(o: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let [name, age] = name_and_age(o, now);
    let role = format!("{}/{}", s(o, "/roleRef/kind"), s(o, "/roleRef/name"));
    let of = |kind: &str| -> String {
        arr(o, "/subjects")
            .iter()
            .filter(|sub| sub["kind"] == kind)
            .map(|sub| {
                if kind == "ServiceAccount" {
                    format!("{}/{}", s(sub, "/namespace"), s(sub, "/name"))
                } else {
                    s(sub, "/name").to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        name,
        json!(role),
        age,
        json!(of("User")),
        json!(of("Group")),
        json!(of("ServiceAccount")),
    ]
}

pub(crate) const ROLE_BINDING_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Role",
        "string",
        0,
        Doc::Field("io.k8s.api.rbac.v1.RoleBinding", "roleRef"),
    ),
    AGE,
    col("Users", "string", 1, Doc::Text("Users in the roleBinding")),
    col(
        "Groups",
        "string",
        1,
        Doc::Text("Groups in the roleBinding"),
    ),
    col(
        "ServiceAccounts",
        "string",
        1,
        Doc::Text("ServiceAccounts in the roleBinding"),
    ),
];

pub(crate) const CLUSTER_ROLE_BINDING_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Role",
        "string",
        0,
        Doc::Field("io.k8s.api.rbac.v1.ClusterRoleBinding", "roleRef"),
    ),
    AGE,
    col(
        "Users",
        "string",
        1,
        Doc::Text("Users in the clusterRoleBinding"),
    ),
    col(
        "Groups",
        "string",
        1,
        Doc::Text("Groups in the clusterRoleBinding"),
    ),
    col(
        "ServiceAccounts",
        "string",
        1,
        Doc::Text("ServiceAccounts in the clusterRoleBinding"),
    ),
];
