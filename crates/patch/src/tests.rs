//! Cases ported from apimachinery's `strategicpatch/patch_test.go`, plus the patches
//! kubectl sends for the sample app.

use serde_json::{Value, json};

use super::*;

fn smp(kind: &str, original: Value, patch: Value) -> Value {
    strategic_merge_patch(kind, &original, &patch).unwrap()
}

fn deployment() -> Value {
    json!({"metadata": {"name": "d", "annotations": {"a": "1"}}, "spec": {"replicas": 3,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        "template": {"spec": {"containers": [
            {"name": "sample-app", "image": "sample-app:v1", "ports": [{"containerPort": 8080, "protocol": "TCP"}],
             "env": [{"name": "NODE_ENV", "value": "production"}]},
            {"name": "sidecar", "image": "s:1"}]}}}})
}

#[test]
fn kubectl_reapply_with_new_image_and_strategy() {
    let patch = json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}},
        "spec": {"strategy": {"rollingUpdate": {"maxSurge": 3, "maxUnavailable": 0}, "type": "RollingUpdate"},
            "template": {"spec": {"$setElementOrder/containers": [{"name": "sample-app"}, {"name": "sidecar"}],
                "containers": [{"image": "sample-app:v2", "name": "sample-app"}]}}}});
    let out = smp("Deployment", deployment(), patch);
    let c = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(c[0]["image"], "sample-app:v2");
    assert_eq!(c[0]["env"][0]["value"], "production", "other fields of the container survive");
    assert_eq!(c[1]["name"], "sidecar");
    assert_eq!(out["spec"]["strategy"]["rollingUpdate"], json!({"maxSurge": 3, "maxUnavailable": 0}));
    assert_eq!(out["metadata"]["annotations"]["a"], "1");
}

#[test]
fn null_deletes_a_key() {
    let out = smp("Deployment", deployment(), json!({"metadata": {"annotations": {"a": null}}, "spec": {"replicas": null}}));
    assert_eq!(out["metadata"]["annotations"], json!({}));
    assert!(out["spec"].get("replicas").is_none());
}

#[test]
fn patch_delete_directive_removes_a_container() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(out["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 1);
}

#[test]
fn patch_replace_directive_on_a_list() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o:1"}]}}}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(out["spec"]["template"]["spec"]["containers"], json!([{"name": "only", "image": "o:1"}]));
}

#[test]
fn patch_replace_directive_on_a_map() {
    let patch = json!({"metadata": {"annotations": {"$patch": "replace", "b": "2"}}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(out["metadata"]["annotations"], json!({"b": "2"}));
}

#[test]
fn patch_delete_directive_on_a_map() {
    let patch = json!({"spec": {"strategy": {"$patch": "delete"}}});
    let out = smp("Deployment", deployment(), patch);
    assert!(out["spec"].get("strategy").is_none());
}

#[test]
fn env_merges_by_name_and_new_items_append() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sample-app", "env": [{"name": "NEW", "value": "x"}, {"name": "NODE_ENV", "value": "dev"}]}]}}}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["env"], json!([{"name": "NODE_ENV", "value": "dev"}, {"name": "NEW", "value": "x"}]));
}

#[test]
fn ports_merge_by_container_port() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sample-app", "ports": [{"containerPort": 8080, "name": "http"}]}]}}}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["ports"], json!([{"containerPort": 8080, "protocol": "TCP", "name": "http"}]));
}

#[test]
fn set_element_order_reorders() {
    let patch = json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "sample-app"}]}}}});
    let out = smp("Deployment", deployment(), patch);
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["sidecar", "sample-app"]);
}

#[test]
fn retain_keys_switches_strategy_type() {
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn finalizers_merge_as_a_set_and_delete_from_primitive_list() {
    let original = json!({"metadata": {"finalizers": ["a", "b"]}});
    assert_eq!(smp("Pod", original.clone(), json!({"metadata": {"finalizers": ["b", "c"]}}))["metadata"]["finalizers"], json!(["a", "b", "c"]));
    assert_eq!(smp("Pod", original, json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}))["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn lists_without_strategy_are_replaced() {
    let original = json!({"spec": {"containers": [{"name": "c", "args": ["a", "b"]}], "tolerations": [{"key": "x"}]}});
    let out = smp("Pod", original, json!({"spec": {"containers": [{"name": "c", "args": ["z"]}], "tolerations": [{"key": "y"}]}}));
    assert_eq!(out["spec"]["containers"][0]["args"], json!(["z"]));
    assert_eq!(out["spec"]["tolerations"], json!([{"key": "y"}]));
}

#[test]
fn service_ports_merge_by_port() {
    let original = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080, "nodePort": 31000}, {"port": 443}]}});
    let out = smp("Service", original, json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}));
    assert_eq!(out["spec"]["ports"], json!([{"port": 80, "targetPort": 9090, "nodePort": 31000}, {"port": 443}]));
}

#[test]
fn conditions_merge_by_type() {
    let original = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}});
    let out = smp("Pod", original, json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}));
    assert_eq!(out["status"]["conditions"][0], json!({"type": "Ready", "status": "True"}));
    assert_eq!(out["status"]["conditions"].as_array().unwrap().len(), 2);
}

#[test]
fn missing_merge_key_is_an_error() {
    let err = strategic_merge_patch("Pod", &json!({"spec": {"containers": []}}), &json!({"spec": {"containers": [{"image": "x"}]}})).unwrap_err();
    assert!(matches!(err, PatchError::MissingMergeKey { ref key, .. } if key == "name"), "{err}");
}

#[test]
fn unknown_directive_and_non_object_patch_are_errors() {
    assert!(strategic_merge_patch("Pod", &json!({}), &json!({"$patch": "explode"})).is_err());
    assert!(strategic_merge_patch("Pod", &json!({}), &json!([1])).is_err());
}

#[test]
fn new_nested_maps_are_created_and_directives_stripped() {
    let out = smp("Pod", json!({}), json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "env": [{"name": "E", "value": "1"}]}]}}));
    assert_eq!(out["metadata"]["labels"]["a"], "b");
    assert_eq!(out["spec"]["containers"][0]["env"][0]["name"], "E");
}

#[test]
fn owner_references_merge_by_uid() {
    let original = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}});
    let out = smp("ReplicaSet", original, json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}));
    assert_eq!(out["metadata"]["ownerReferences"].as_array().unwrap().len(), 2);
}

#[test]
fn json_patch_as_rollout_undo_sends_it() {
    let undo = json!([{"op": "replace", "path": "/spec/template", "value": {"spec": {"containers": [{"name": "c", "image": "v1"}]}}},
        {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "1"}}]);
    let out = json_patch(&deployment(), &undo).unwrap();
    assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["image"], "v1");
    assert_eq!(out["metadata"]["annotations"], json!({"deployment.kubernetes.io/revision": "1"}));
}

#[test]
fn json_patch_errors() {
    assert!(matches!(json_patch(&json!({}), &json!([{"op": "remove", "path": "/nope"}])), Err(PatchError::Failed(_))));
    assert!(matches!(json_patch(&json!({"a": 1}), &json!([{"op": "test", "path": "/a", "value": 2}])), Err(PatchError::Failed(_))));
    assert!(matches!(json_patch(&json!({}), &json!({"op": "add"})), Err(PatchError::Invalid(_))));
    let huge: Vec<Value> = (0..MAX_JSON_PATCH_OPERATIONS + 1).map(|_| json!({"op": "test", "path": "", "value": {}})).collect();
    assert!(matches!(json_patch(&json!({}), &Value::Array(huge)), Err(PatchError::TooLarge(_))));
}

#[test]
fn merge_patch_basics() {
    let out = merge_patch(&json!({"spec": {"replicas": 3, "x": 1}}), &json!({"spec": {"replicas": 5, "x": null}})).unwrap();
    assert_eq!(out, json!({"spec": {"replicas": 5}}));
    assert!(merge_patch(&json!({}), &json!("x")).is_err());
}

#[test]
fn strategies_from_the_table() {
    assert_eq!(list_strategy("Deployment", &["spec", "template", "spec", "containers", "env"]), ListStrategy::MergeByKey("name"));
    assert_eq!(list_strategy("Pod", &["spec", "initContainers", "volumeMounts"]), ListStrategy::MergeByKey("mountPath"));
    assert_eq!(list_strategy("Pod", &["spec", "containers", "args"]), ListStrategy::Replace);
    assert_eq!(list_strategy("Widget", &["spec", "items"]), ListStrategy::Replace);
    assert!(retains_keys("Deployment", &["spec", "strategy"]));
}
