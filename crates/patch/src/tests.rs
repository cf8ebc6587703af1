//! The patches kubectl and the Python client send for real objects, applied with the
//! built-in strategy table; JSON and merge patch basics. apimachinery's generic cases run in
//! `upstream_tests`.

use serde_json::{Value, json};

use super::*;

fn smp(kind: &str, original: Value, patch: Value) -> Value {
    strategic_merge_patch(kind, &original, &patch).unwrap()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect()
}

fn deployment() -> Value {
    json!({"metadata": {"name": "d", "annotations": {"a": "1"}, "finalizers": ["x/a", "x/b"]},
        "spec": {"replicas": 3,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        "template": {"spec": {"containers": [
            {"name": "sample-app", "image": "sample-app:v1", "ports": [{"containerPort": 8080, "protocol": "TCP"}],
             "env": [{"name": "NODE_ENV", "value": "production"}], "args": ["--a", "--b"]},
            {"name": "sidecar", "image": "s:1"}],
            "volumes": [{"name": "data", "emptyDir": {}}]}}}})
}

#[test]
fn kubectl_apply_of_a_new_image_and_strategy() {
    let original = json!({"metadata": {"name": "sample-app"}, "spec": {"replicas": 2,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        "template": {"spec": {"containers": [{"name": "sample-app", "image": "sample-app:v1", "imagePullPolicy": "Never"}]}}}});
    // Byte for byte what kubectl 1.33 sends on a re-apply with a new image and strategy.
    let patch = json!({"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"kind\":\"Deployment\"}\n"}},"spec":{"strategy":{"rollingUpdate":{"maxSurge":3,"maxUnavailable":0},"type":"RollingUpdate"},"template":{"spec":{"$setElementOrder/containers":[{"name":"sample-app"}],"containers":[{"image":"sample-app:v2","name":"sample-app"}]}}}});
    let out = smp("Deployment", original, patch);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "sample-app", "image": "sample-app:v2", "imagePullPolicy": "Never"}]),
        "the container is merged, not replaced, and no directive is left"
    );
    assert_eq!(
        out["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 0}})
    );
    assert_eq!(out["spec"]["replicas"], 2);
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"kind\":\"Deployment\"}\n"
    );
}

#[test]
fn kubectl_apply_that_removes_one_container_and_adds_another() {
    let original = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "a"}, {"name": "b", "image": "b"}, {"name": "server-only", "image": "c"}]}}}});
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "new"}],
        "containers": [{"name": "new", "image": "n"}, {"$patch": "delete", "name": "a"}]}}}});
    let out = smp("Deployment", original, patch);
    // Upstream keeps the container kubectl never applied and puts it where the live list had it.
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["b", "server-only", "new"]
    );
}

#[test]
fn set_element_order_alone_reorders() {
    let patch = json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "sample-app"}]}}}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["sidecar", "sample-app"]
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][1]["image"],
        "sample-app:v1"
    );
}

#[test]
fn set_element_order_that_contradicts_the_patch_list_is_an_error() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sample-app"}, {"name": "sidecar"}],
        "containers": [{"name": "sidecar", "image": "s:2"}, {"name": "sample-app", "image": "v3"}]}}}});
    let err = strategic_merge_patch("Deployment", &deployment(), &patch).unwrap_err();
    assert!(
        matches!(err, PatchError::OrderMismatch { ref path, .. } if path == "spec.template.spec.containers"),
        "{err}"
    );
}

#[test]
fn patch_delete_directive_removes_a_container() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["sample-app"]
    );
}

#[test]
fn patch_delete_directive_without_the_merge_key_is_an_error() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}});
    let err = strategic_merge_patch("Deployment", &deployment(), &patch).unwrap_err();
    assert!(
        matches!(err, PatchError::MissingMergeKey { ref key, .. } if key == "name"),
        "{err}"
    );
}

#[test]
fn patch_replace_directive_on_a_list() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o:1"}]}}}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "o:1"}])
    );
}

#[test]
fn patch_replace_directive_on_a_map() {
    let patch = json!({"metadata": {"annotations": {"$patch": "replace", "b": "2"}}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(out["metadata"]["annotations"], json!({"b": "2"}));
}

#[test]
fn patch_delete_directive_on_a_map_leaves_it_empty_as_upstream() {
    let out = smp(
        "Deployment",
        deployment(),
        json!({"spec": {"strategy": {"$patch": "delete"}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({}));
    let out = smp(
        "Deployment",
        deployment(),
        json!({"spec": {"selector": {"$patch": "delete"}}}),
    );
    assert!(
        out["spec"].get("selector").is_none(),
        "nothing to delete, nothing added"
    );
}

#[test]
fn patch_merge_directive_is_the_default() {
    let out = smp(
        "Deployment",
        deployment(),
        json!({"metadata": {"annotations": {"$patch": "merge", "b": "2"}}}),
    );
    assert_eq!(out["metadata"]["annotations"], json!({"a": "1", "b": "2"}));
}

#[test]
fn unknown_directive_is_an_error_that_says_where() {
    let err = strategic_merge_patch(
        "Pod",
        &json!({"spec": {}}),
        &json!({"spec": {"$patch": "explode"}}),
    )
    .unwrap_err();
    assert_eq!(
        err,
        PatchError::UnknownDirective {
            directive: "\"explode\"".into(),
            path: "spec".into()
        }
    );
    let patch = json!({"spec": {"containers": [{"name": "c", "$patch": "explode"}]}});
    let err = strategic_merge_patch(
        "Pod",
        &json!({"spec": {"containers": [{"name": "c"}]}}),
        &patch,
    )
    .unwrap_err();
    assert!(
        matches!(err, PatchError::UnknownDirective { ref path, .. } if path == "spec.containers"),
        "{err}"
    );
}

#[test]
fn null_deletes_keys_at_any_depth() {
    let patch = json!({"metadata": {"annotations": {"a": null, "missing": null}}, "spec": {"replicas": null}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(out["metadata"]["annotations"], json!({}));
    assert!(out["spec"].get("replicas").is_none());
}

#[test]
fn nulls_and_directives_do_not_leak_into_new_values() {
    let patch = json!({"metadata": {"labels": {"app": "x", "gone": null}},
        "spec": {"containers": [{"name": "c", "env": [{"name": "E", "value": "1", "valueFrom": null}]}]}});
    let out = smp("Pod", json!({}), patch);
    assert_eq!(
        out,
        json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "env": [{"name": "E", "value": "1"}]}]}})
    );
}

#[test]
fn env_merges_by_name_in_patch_order() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sample-app",
        "env": [{"name": "NEW", "value": "x"}, {"name": "NODE_ENV", "value": "dev"}]}]}}}});
    let out = smp("Deployment", deployment(), patch);
    let container = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["env"],
        json!([{"name": "NEW", "value": "x"}, {"name": "NODE_ENV", "value": "dev"}])
    );
    assert_eq!(container["image"], "sample-app:v1");
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["sample-app", "sidecar"]
    );
}

#[test]
fn container_ports_merge_by_container_port() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sample-app", "ports": [{"containerPort": 8080, "name": "http"}]}]}}}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 8080, "protocol": "TCP", "name": "http"}])
    );
}

#[test]
fn retain_keys_switches_deployment_strategy_to_recreate() {
    // What kubectl apply sends when the manifest changes the strategy type.
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    // Without the explicit null, $retainKeys still drops rollingUpdate.
    let out = smp(
        "Deployment",
        deployment(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn retain_keys_must_list_every_field_the_patch_sets() {
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let err = strategic_merge_patch("Deployment", &deployment(), &patch).unwrap_err();
    assert!(
        matches!(err, PatchError::BadDirective { ref directive, ref path, .. } if directive == "$retainKeys" && path == "spec.strategy"),
        "{err}"
    );
    let err = strategic_merge_patch(
        "Deployment",
        &deployment(),
        &json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::BadDirective { .. }), "{err}");
}

#[test]
fn retain_keys_switches_a_volume_source() {
    let patch = json!({"spec": {"template": {"spec": {"$setElementOrder/volumes": [{"name": "data"}],
        "volumes": [{"$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/srv"}, "name": "data"}]}}}});
    let out = smp("Deployment", deployment(), patch);
    assert_eq!(
        out["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "hostPath": {"path": "/srv"}}])
    );
}

#[test]
fn finalizers_merge_as_a_set_and_delete_from_primitive_list() {
    let original = json!({"metadata": {"finalizers": ["a", "b"]}});
    let added = smp(
        "Pod",
        original.clone(),
        json!({"metadata": {"finalizers": ["b", "c"]}}),
    );
    assert_eq!(added["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zz"]}});
    assert_eq!(
        smp("Pod", original.clone(), patch)["metadata"]["finalizers"],
        json!(["b"])
    );
    // kubectl apply removing one finalizer and keeping the other in order.
    let patch = json!({"metadata": {"$setElementOrder/finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a"]}});
    assert_eq!(
        smp("Pod", original, patch)["metadata"]["finalizers"],
        json!(["b"])
    );
    // Deleting from a list the object does not have adds nothing.
    let out = smp(
        "Pod",
        json!({"metadata": {}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(out, json!({"metadata": {}}));
}

#[test]
fn malformed_directive_keys_are_errors() {
    let original = json!({"metadata": {"finalizers": ["a"]}});
    let err = strategic_merge_patch(
        "Pod",
        &original,
        &json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
    )
    .unwrap_err();
    assert!(
        matches!(err, PatchError::BadDirective { ref path, .. } if path == "metadata"),
        "{err}"
    );
    let err = strategic_merge_patch(
        "Pod",
        &original,
        &json!({"metadata": {"$setElementOrder/finalizers": "a"}}),
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::BadDirective { .. }), "{err}");
    // As upstream, a value the object does not have yet is copied without interpreting its
    // directives; they are stripped rather than stored.
    let out = smp(
        "Pod",
        json!({}),
        json!({"metadata": {"$deleteFromPrimitiveList": ["a"], "name": "p"}}),
    );
    assert_eq!(out, json!({"metadata": {"name": "p"}}));
}

#[test]
fn lists_without_strategy_are_replaced() {
    let original = json!({"spec": {"containers": [{"name": "c", "args": ["a", "b"], "envFrom": [{"configMapRef": {"name": "x"}}]}],
        "tolerations": [{"key": "x"}]}});
    let patch = json!({"spec": {"containers": [{"name": "c", "args": ["z"], "envFrom": [{"secretRef": {"name": "y"}}]}], "tolerations": [{"key": "y"}]}});
    let out = smp("Pod", original, patch);
    assert_eq!(out["spec"]["containers"][0]["args"], json!(["z"]));
    assert_eq!(
        out["spec"]["containers"][0]["envFrom"],
        json!([{"secretRef": {"name": "y"}}])
    );
    assert_eq!(out["spec"]["tolerations"], json!([{"key": "y"}]));
    let out = smp(
        "Widget",
        json!({"spec": {"items": [{"name": "a"}]}}),
        json!({"spec": {"items": [{"name": "b"}]}}),
    );
    assert_eq!(out["spec"]["items"], json!([{"name": "b"}]));
}

#[test]
fn service_ports_merge_by_port() {
    let original = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080, "nodePort": 31000}, {"port": 443}]}});
    let out = smp(
        "Service",
        original,
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090, "nodePort": 31000}, {"port": 443}])
    );
}

#[test]
fn missing_merge_key_is_an_error_that_says_where() {
    let err = strategic_merge_patch(
        "Service",
        &json!({"spec": {"ports": [{"port": 80}]}}),
        &json!({"spec": {"ports": [{"targetPort": 1}]}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "map: {\"targetPort\":1} does not contain declared merge key: port (in spec.ports)"
    );
}

#[test]
fn node_status_heartbeat_merges_conditions_by_type() {
    let original = json!({"status": {"conditions": [
        {"type": "Ready", "status": "False", "lastHeartbeatTime": "t0"},
        {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "t0"}],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}});
    let patch = json!({"status": {"$setElementOrder/conditions": [{"type": "Ready"}, {"type": "MemoryPressure"}],
        "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"}]}});
    let out = smp("Node", original, patch);
    assert_eq!(
        out["status"]["conditions"][0],
        json!({"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"})
    );
    assert_eq!(out["status"]["conditions"][1]["type"], "MemoryPressure");
    assert_eq!(out["status"]["addresses"][0]["address"], "10.0.0.1");
}

#[test]
fn owner_references_merge_by_uid() {
    let original = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}});
    let out = smp(
        "ReplicaSet",
        original,
        json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}),
    );
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"uid": "2", "name": "b"}, {"uid": "1", "name": "a"}])
    );
}

#[test]
fn mixed_item_types_cannot_merge() {
    let err = strategic_merge_patch(
        "Pod",
        &json!({"metadata": {"finalizers": ["a"]}}),
        &json!({"metadata": {"finalizers": [1]}}),
    )
    .unwrap_err();
    assert!(
        matches!(err, PatchError::UnmergeableList { ref path, .. } if path == "metadata.finalizers"),
        "{err}"
    );
}

#[test]
fn non_object_documents_are_errors() {
    assert!(matches!(
        strategic_merge_patch("Pod", &json!({}), &json!([1])),
        Err(PatchError::NotAnObject { .. })
    ));
    assert!(matches!(
        strategic_merge_patch("Pod", &json!("x"), &json!({})),
        Err(PatchError::NotAnObject { .. })
    ));
}

#[test]
fn scale_patch_from_kubectl() {
    let out = smp("Deployment", deployment(), json!({"spec": {"replicas": 5}}));
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(out["spec"]["template"], deployment()["spec"]["template"]);
}

#[test]
fn json_patch_as_rollout_undo_sends_it() {
    let undo = json!([{"op": "replace", "path": "/spec/template", "value": {"spec": {"containers": [{"name": "c", "image": "v1"}]}}},
        {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "1"}}]);
    let out = json_patch(&deployment(), &undo).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "v1"
    );
    assert_eq!(
        out["metadata"]["annotations"],
        json!({"deployment.kubernetes.io/revision": "1"})
    );
}

#[test]
fn json_patch_operations() {
    let patch = json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}},
        {"op": "copy", "from": "/metadata/labels", "path": "/spec/selector"},
        {"op": "move", "from": "/spec/replicas", "path": "/spec/count"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
        {"op": "test", "path": "/metadata/finalizers", "value": ["x/b"]}]);
    let out = json_patch(&deployment(), &patch).unwrap();
    assert_eq!(out["spec"]["selector"], json!({"a": "b"}));
    assert_eq!(out["spec"]["count"], 3);
    assert!(out["spec"].get("replicas").is_none());
}

#[test]
fn json_patch_errors() {
    let bad_pointer =
        json_patch(&json!({}), &json!([{"op": "remove", "path": "/nope"}])).unwrap_err();
    assert!(
        matches!(bad_pointer, PatchError::JsonPatchFailed(_)),
        "{bad_pointer}"
    );
    assert!(
        bad_pointer.to_string().contains("/nope"),
        "the message names the path: {bad_pointer}"
    );
    let failed_test = json_patch(
        &json!({"a": 1}),
        &json!([{"op": "test", "path": "/a", "value": 2}]),
    );
    assert!(matches!(failed_test, Err(PatchError::JsonPatchFailed(_))));
    assert!(matches!(
        json_patch(
            &json!({}),
            &json!([{"op": "add", "path": "no-slash", "value": 1}])
        ),
        Err(PatchError::InvalidJsonPatch(_) | PatchError::JsonPatchFailed(_))
    ));
    assert!(matches!(
        json_patch(&json!({}), &json!({"op": "add"})),
        Err(PatchError::InvalidJsonPatch(_))
    ));
    assert!(matches!(
        json_patch(&json!({}), &json!([{"op": "explode", "path": "/a"}])),
        Err(PatchError::InvalidJsonPatch(_))
    ));
    let huge: Vec<Value> = (0..MAX_JSON_PATCH_OPERATIONS + 1)
        .map(|_| json!({"op": "test", "path": "", "value": {}}))
        .collect();
    assert_eq!(
        json_patch(&json!({}), &Value::Array(huge)),
        Err(PatchError::TooManyOperations(MAX_JSON_PATCH_OPERATIONS + 1))
    );
    let at_limit: Vec<Value> = (0..MAX_JSON_PATCH_OPERATIONS)
        .map(|_| json!({"op": "test", "path": "", "value": {}}))
        .collect();
    assert_eq!(
        json_patch(&json!({}), &Value::Array(at_limit)),
        Ok(json!({}))
    );
}

#[test]
fn merge_patch_basics() {
    let out = merge_patch(
        &json!({"spec": {"replicas": 3, "x": 1, "list": [1, 2]}}),
        &json!({"spec": {"replicas": 5, "x": null, "list": [3], "new": {"a": null, "b": 1}}}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"spec": {"replicas": 5, "list": [3], "new": {"b": 1}}})
    );
    assert!(matches!(
        merge_patch(&json!({}), &json!("x")),
        Err(PatchError::NotAnObject { .. })
    ));
    assert!(matches!(
        merge_patch(&json!({}), &json!([{"op": "add"}])),
        Err(PatchError::NotAnObject { .. })
    ));
}
