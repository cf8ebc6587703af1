//! The transcoder against k8s-pb's prost types, an independent implementation of the
//! same messages: what one encodes the other must decode to the same object.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::json;

use super::*;

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn open(body: &[u8]) -> (TypeMeta, Vec<u8>) {
    let unknown = Unknown::decode(body.strip_prefix(MAGIC).expect("magic")).unwrap();
    (unknown.type_meta.unwrap(), unknown.raw.unwrap())
}

/// A Go client writes every non-pointer field, zero or not; prost writes what is Some.
/// This pod is shaped like kubectl 1.33's `kubectl run` body.
fn go_like_pod() -> core::Pod {
    core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: Some("web".into()),
            generate_name: Some(String::new()),
            namespace: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            labels: [("run".to_string(), "web".to_string())].into(),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: Some("web".into()),
                image: Some("nginx:1.27".into()),
                image_pull_policy: Some(String::new()),
                ports: vec![core::ContainerPort {
                    container_port: Some(80),
                    protocol: Some("TCP".into()),
                    host_port: Some(0),
                    ..Default::default()
                }],
                resources: Some(core::ResourceRequirements {
                    limits: [(
                        "memory".to_string(),
                        Quantity {
                            string: Some("64Mi".into()),
                        },
                    )]
                    .into(),
                    ..Default::default()
                }),
                readiness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            path: Some("/".into()),
                            port: Some(IntOrString {
                                r#type: Some(1),
                                int_val: Some(0),
                                str_val: Some("http".into()),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(5),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            volumes: vec![core::Volume {
                name: Some("config".into()),
                volume_source: Some(core::VolumeSource {
                    config_map: Some(core::ConfigMapVolumeSource {
                        local_object_reference: Some(core::LocalObjectReference {
                            name: Some("app".into()),
                        }),
                        default_mode: Some(0o644),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            restart_policy: Some("Always".into()),
            automount_service_account_token: Some(false),
            host_network: Some(false),
            ..Default::default()
        }),
        status: Some(core::PodStatus::default()),
    }
}

#[test]
fn decodes_what_a_go_client_sends() {
    let body = envelope("v1", "Pod", go_like_pod().encode_to_vec());
    let pod = decode(&body).unwrap();
    assert_eq!(
        pod,
        json!({
            "kind": "Pod",
            "apiVersion": "v1",
            // zero strings and the zero time are dropped: Go treats them as unset
            "metadata": {"name": "web", "labels": {"run": "web"}},
            "spec": {
                "containers": [{
                    "name": "web",
                    "image": "nginx:1.27",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {"limits": {"memory": "64Mi"}},
                    "readinessProbe": {
                        // ProbeHandler is inline in Go's JSON
                        "httpGet": {"path": "/", "port": "http"},
                        "periodSeconds": 5
                    }
                }],
                // VolumeSource is inline, and so is LocalObjectReference
                "volumes": [{"name": "config", "configMap": {"name": "app", "defaultMode": 420}}],
                "restartPolicy": "Always",
                // a pointer: false is meaningful and kept
                "automountServiceAccountToken": false
            },
            "status": {}
        })
    );
}

#[test]
fn pointer_zero_is_kept_value_zero_is_dropped() {
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: Some("d".into()),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: None,
    };
    let object = decode(&envelope(
        "apps/v1",
        "Deployment",
        deployment.encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(object["spec"], json!({"replicas": 0}));
}

#[test]
fn encodes_what_a_go_client_reads() {
    let object = json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": "web", "namespace": "default", "uid": "1234", "resourceVersion": "42",
            "creationTimestamp": "2024-05-06T07:08:09Z",
            "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}],
            "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}, "time": "2024-05-06T07:08:09Z"}]
        },
        "spec": {
            "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
                            "livenessProbe": {"tcpSocket": {"port": 80}}}],
            "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
            "terminationGracePeriodSeconds": 30
        },
        "status": {"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}],
                   "startTime": "2024-05-06T07:08:10Z"}
    });
    let body = encode(&object).unwrap();
    let (type_meta, raw) = open(&body);
    assert_eq!(type_meta.kind.as_deref(), Some("Pod"));
    assert_eq!(type_meta.api_version.as_deref(), Some("v1"));
    let pod = core::Pod::decode(raw.as_slice()).unwrap();
    let meta = pod.metadata.as_ref().unwrap();
    assert_eq!(meta.resource_version.as_deref(), Some("42"));
    assert_eq!(
        meta.creation_timestamp.as_ref().unwrap().seconds,
        Some(1_714_979_289)
    );
    assert_eq!(meta.owner_references[0].controller, Some(true));
    let fields = meta.managed_fields[0].fields_v1.as_ref().unwrap();
    assert_eq!(fields.raw.as_deref(), Some(&br#"{"f:metadata":{}}"#[..]));
    let spec = pod.spec.as_ref().unwrap();
    let probe = spec.containers[0].liveness_probe.as_ref().unwrap();
    let port = probe
        .handler
        .as_ref()
        .unwrap()
        .tcp_socket
        .as_ref()
        .unwrap()
        .port
        .as_ref()
        .unwrap();
    assert_eq!((port.r#type, port.int_val), (Some(0), Some(80)));
    let empty_dir = spec.volumes[0]
        .volume_source
        .as_ref()
        .unwrap()
        .empty_dir
        .as_ref()
        .unwrap();
    assert_eq!(
        empty_dir.size_limit.as_ref().unwrap().string.as_deref(),
        Some("1Gi")
    );
    assert_eq!(
        pod.status.as_ref().unwrap().pod_ip.as_deref(),
        Some("10.42.0.5")
    );
    // and back again
    assert_eq!(decode(&body).unwrap(), object);
}

#[test]
fn secrets_lists_and_statuses_round_trip() {
    for object in [
        json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}, "type": "Opaque",
               "data": {"password": "aHVudGVyMg==", "empty": ""}}),
        json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "7", "continue": "abc"},
               "items": [{"metadata": {"name": "a"}, "data": {"k": "v"}}, {"metadata": {"name": "b"}}]}),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "pods \"x\" not found", "reason": "NotFound",
               "details": {"name": "x", "kind": "pods"}, "code": 404}),
        json!({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1", "metadata": {"name": "n"},
               "spec": {"holderIdentity": "n", "leaseDurationSeconds": 40, "renewTime": "2024-05-06T07:08:09.123456Z"}}),
        json!({"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2", "metadata": {"name": "h"},
               "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 3,
                        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}}),
        json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "propagationPolicy": "Foreground", "gracePeriodSeconds": 0}),
        json!({"kind": "ControllerRevision", "apiVersion": "apps/v1", "metadata": {"name": "r"},
               "data": {"spec": {"template": {"x": [1, 2]}}}, "revision": 2}),
    ] {
        let body = encode(&object).unwrap();
        assert_eq!(decode(&body).unwrap(), object, "{object}");
    }
}

#[test]
fn watch_events_wrap_a_full_body() {
    let object = json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "n"}, "status": {"phase": "Active"}});
    let frame = encode_watch_event("ADDED", &object).unwrap();
    let event = meta::WatchEvent::decode(frame.as_slice()).unwrap();
    assert_eq!(event.r#type.as_deref(), Some("ADDED"));
    let raw = event.object.unwrap().raw.unwrap();
    assert!(raw.starts_with(MAGIC));
    assert_eq!(decode(&raw).unwrap(), object);
    assert_eq!(
        decode_watch_event(&frame).unwrap(),
        ("ADDED".into(), object)
    );
}

#[test]
fn bad_bodies_are_errors_not_panics() {
    assert!(
        decode(b"{\"kind\":\"Pod\"}")
            .unwrap_err()
            .to_string()
            .contains("magic")
    );
    assert!(
        decode(&envelope("example.com/v1", "Widget", vec![]))
            .unwrap_err()
            .to_string()
            .contains("Widget")
    );
    let good = envelope("v1", "Pod", go_like_pod().encode_to_vec());
    for cut in 4..good.len() {
        let _ = decode(&good[..cut]); // must not panic
    }
    // every byte flipped in turn: errors or objects, never a panic
    for i in 4..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0xff;
        let _ = decode(&bad);
    }
    // envelopes nested 10,000 deep through ControllerRevision.data (a RawExtension)
    let mut body = envelope("apps/v1", "ControllerRevision", vec![]);
    for _ in 0..10_000 {
        let mut data = Vec::new();
        wire::put_bytes(&mut data, 1, &body);
        let mut revision = Vec::new();
        wire::put_bytes(&mut revision, 2, &data);
        body = envelope("apps/v1", "ControllerRevision", revision);
    }
    let err = decode(&body).unwrap_err();
    assert!(err.to_string().contains("nested"), "{err}");
    // a type mismatch names the field
    let err =
        encode(&json!({"kind": "Pod", "apiVersion": "v1", "spec": {"containers": [{"name": 5}]}}))
            .unwrap_err();
    assert!(err.to_string().contains("Container.name"), "{err}");
}

#[test]
fn every_kind_maps_to_a_message() {
    for kind in [
        "Pod",
        "Service",
        "Namespace",
        "ConfigMap",
        "Secret",
        "Node",
        "Event",
        "Endpoints",
        "ServiceAccount",
        "PersistentVolumeClaim",
    ] {
        assert!(supports("v1", kind), "{kind}");
    }
    for (v, kind) in [
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSetList"),
        ("batch/v1", "Job"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("networking.k8s.io/v1", "Ingress"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("policy/v1", "Eviction"),
        ("autoscaling/v1", "Scale"),
        ("v1", "Status"),
        ("v1", "Binding"),
    ] {
        assert!(supports(v, kind), "{v} {kind}");
    }
    assert!(!supports("v1", "Table"));
    assert!(!supports("example.com/v1", "Widget"));
}
