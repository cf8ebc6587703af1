//! The API server speaking Kubernetes protobuf, as client-go (kubectl 1.32+) does. The
//! client side is kube-rs' `k8s-pb` prost types, an implementation independent of the
//! server's transcoder.

mod common;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use podium_apiserver::ApiServer;
use prost::Message;
use serde_json::{Value, json};
use tower::ServiceExt;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// What kubectl 1.33's typed clients send as Accept.
const KUBECTL_ACCEPT: &str = "application/vnd.kubernetes.protobuf,application/json";

/// `k8s\0` + runtime.Unknown, as client-go's protobuf serializer writes it.
fn envelope(api_version: &str, kind: &str, message: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(message.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\x00".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn open(body: &[u8]) -> (String, Vec<u8>) {
    let unknown = Unknown::decode(body.strip_prefix(b"k8s\x00").expect("protobuf magic")).unwrap();
    (
        unknown.type_meta.unwrap().kind.unwrap(),
        unknown.raw.unwrap(),
    )
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn send(
    server: &ApiServer,
    method: &str,
    uri: &str,
    content_type: &str,
    accept: &str,
    body: Vec<u8>,
) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .header("accept", accept)
        .body(Body::from(body))
        .unwrap();
    let response = server.router().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        content_type,
        body,
    }
}

/// `kubectl create namespace demo` from kubectl 1.33: every non-pointer field written.
fn namespace(name: &str) -> core::Namespace {
    core::Namespace {
        metadata: Some(meta::ObjectMeta {
            name: Some(name.into()),
            generate_name: Some(String::new()),
            namespace: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        }),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus {
            phase: Some(String::new()),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn create_get_and_list_in_protobuf() {
    let (server, _dir) = common::api_server().await;
    let reply = send(
        &server,
        "POST",
        "/api/v1/namespaces",
        PROTOBUF,
        KUBECTL_ACCEPT,
        envelope("v1", "Namespace", &namespace("demo")),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.content_type, PROTOBUF);
    let (kind, raw) = open(&reply.body);
    assert_eq!(kind, "Namespace");
    let created = core::Namespace::decode(raw.as_slice()).unwrap();
    let meta = created.metadata.unwrap();
    assert_eq!(meta.name.as_deref(), Some("demo"));
    assert_eq!(meta.uid.as_ref().map(String::len), Some(36));
    assert!(meta.creation_timestamp.unwrap().seconds.unwrap() > 1_700_000_000);
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));

    // The same object for a JSON client: the Go zero values did not become fields.
    let reply = send(
        &server,
        "GET",
        "/api/v1/namespaces/demo",
        "application/json",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(reply.content_type, "application/json");
    let object = reply.json();
    assert!(object["metadata"].get("generateName").is_none(), "{object}");
    assert_eq!(object["status"]["phase"], "Active");

    let reply = send(
        &server,
        "GET",
        "/api/v1/namespaces",
        "",
        KUBECTL_ACCEPT,
        vec![],
    )
    .await;
    let (kind, raw) = open(&reply.body);
    assert_eq!(kind, "NamespaceList");
    let list = core::NamespaceList::decode(raw.as_slice()).unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .map(|n| n.metadata.as_ref().unwrap().name.clone().unwrap())
        .collect();
    assert!(
        names.contains(&"demo".to_string()) && names.contains(&"default".to_string()),
        "{names:?}"
    );
    assert!(
        list.metadata
            .unwrap()
            .resource_version
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
}

#[tokio::test]
async fn deployment_with_zero_replicas_keeps_zero() {
    let (server, _dir) = common::api_server().await;
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: [("app".to_string(), "web".to_string())].into(),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: [("app".to_string(), "web".to_string())].into(),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![core::Container {
                        name: Some("web".into()),
                        image: Some("nginx".into()),
                        image_pull_policy: Some(String::new()),
                        termination_message_path: Some(String::new()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            min_ready_seconds: Some(0),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus::default()),
    };
    let reply = send(
        &server,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        PROTOBUF,
        KUBECTL_ACCEPT,
        envelope("apps/v1", "Deployment", &deployment),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let reply = send(
        &server,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/web",
        "",
        "application/json",
        vec![],
    )
    .await;
    let object = reply.json();
    assert_eq!(object["spec"]["replicas"], 0, "{object}");
    let container = &object["spec"]["template"]["spec"]["containers"][0];
    // "" from the wire was unset, so the defaults apply
    assert_eq!(container["imagePullPolicy"], "Always", "{container}");
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
}

#[tokio::test]
async fn delete_options_in_protobuf_and_status_answers() {
    let (server, _dir) = common::api_server().await;
    let cm = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: Some("c".into()),
            ..Default::default()
        }),
        data: [("k".to_string(), "v".to_string())].into(),
        ..Default::default()
    };
    let reply = send(
        &server,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        PROTOBUF,
        KUBECTL_ACCEPT,
        envelope("v1", "ConfigMap", &cm),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let options = meta::DeleteOptions {
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    let reply = send(
        &server,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/c",
        PROTOBUF,
        KUBECTL_ACCEPT,
        envelope("meta.k8s.io/v1", "DeleteOptions", &options),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let (kind, raw) = open(&reply.body);
    assert_eq!(kind, "Status");
    assert_eq!(
        meta::Status::decode(raw.as_slice())
            .unwrap()
            .status
            .as_deref(),
        Some("Success")
    );
    let reply = send(
        &server,
        "GET",
        "/api/v1/namespaces/default/configmaps/c",
        "",
        KUBECTL_ACCEPT,
        vec![],
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn malformed_protobuf_is_400_and_protobuf_patch_is_415() {
    let (server, _dir) = common::api_server().await;
    let mut body = envelope("v1", "Namespace", &namespace("x"));
    body.truncate(body.len() - 3);
    let reply = send(
        &server,
        "POST",
        "/api/v1/namespaces",
        PROTOBUF,
        KUBECTL_ACCEPT,
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let status = reply.json();
    assert_eq!(status["kind"], "Status");
    assert!(
        status["message"].as_str().unwrap().contains("protobuf"),
        "{status}"
    );

    let reply = send(
        &server,
        "POST",
        "/api/v1/namespaces",
        PROTOBUF,
        KUBECTL_ACCEPT,
        br#"{"metadata":{"name":"x"}}"#.to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let reply = send(
        &server,
        "PATCH",
        "/api/v1/namespaces/default",
        PROTOBUF,
        KUBECTL_ACCEPT,
        envelope("v1", "Namespace", &namespace("default")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn watch_streams_length_prefixed_frames() {
    let (server, _dir) = common::api_server().await;
    let reply = send(
        &server,
        "GET",
        "/api/v1/namespaces?watch=true&timeoutSeconds=1",
        "",
        KUBECTL_ACCEPT,
        vec![],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.content_type,
        "application/vnd.kubernetes.protobuf;stream=watch"
    );
    let mut rest = reply.body.as_slice();
    let mut names = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let event = meta::WatchEvent::decode(&rest[4..4 + len]).unwrap();
        rest = &rest[4 + len..];
        assert_eq!(event.r#type.as_deref(), Some("ADDED"));
        let (kind, raw) = open(&event.object.unwrap().raw.unwrap());
        assert_eq!(kind, "Namespace");
        names.push(
            core::Namespace::decode(raw.as_slice())
                .unwrap()
                .metadata
                .unwrap()
                .name
                .unwrap(),
        );
    }
    names.sort();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let _ = json!({});
}
