//! CustomResourceDefinitions served at run time, as kube-apiserver serves them: discovery,
//! structural validation, pruning and defaulting, printer columns, `/status` and `/scale`,
//! every version with the `None` conversion, OpenAPI, and a deleted CRD taking its
//! objects with it.
//!
//! The resource table is process-wide, so each test uses its own API group.

mod common;

use std::time::Duration;

use common::{Answer, send};
use http::StatusCode;
use podium_apiserver::ApiServer;
use serde_json::{Value, json};

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

async fn call(server: &ApiServer, method: &str, uri: &str, body: Value) -> Answer {
    send(
        server,
        method,
        uri,
        "application/json",
        "application/json",
        body,
    )
    .await
}

fn crontab_crd(group: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("crontabs.{group}")},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [
                {"name": "v1", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["cronSpec"], "properties": {
                        "cronSpec": {"type": "string"},
                        "image": {"type": "string"},
                        "replicas": {"type": "integer", "minimum": 0, "default": 1}}},
                    "status": {"type": "object", "properties": {"replicas": {"type": "integer"}, "selector": {"type": "string"}}}}}},
                 "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"}},
                 "additionalPrinterColumns": [
                    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]},
                {"name": "v1beta1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
            ]
        }
    })
}

/// Wait (bounded) until the CRD says it is established, as `kubectl wait` does.
async fn established(server: &ApiServer, name: &str) -> Value {
    for _ in 0..100 {
        let crd = call(server, "GET", &format!("{CRDS}/{name}"), Value::Null)
            .await
            .body;
        let ok = crd["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        });
        if ok {
            return crd;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{name} was not established in 2 s");
}

#[tokio::test]
async fn a_crd_serves_its_custom_resources_as_upstream() {
    let (server, _dir) = common::api_server().await;
    let group = "stable.example.com";
    let answer = call(&server, "POST", CRDS, crontab_crd(group)).await;
    assert_eq!(answer.code, StatusCode::CREATED, "{}", answer.body);
    let crd = established(&server, &format!("crontabs.{group}")).await;
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "CronTab");
    assert_eq!(crd["status"]["acceptedNames"]["listKind"], "CronTabList");
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));

    // Discovery lists it with its short name and subresources.
    let list = call(&server, "GET", &format!("/apis/{group}/v1"), Value::Null)
        .await
        .body;
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["crontabs", "crontabs/status", "crontabs/scale"]);
    assert_eq!(list["resources"][0]["shortNames"], json!(["ct"]));
    let groups = call(&server, "GET", "/apis", Value::Null).await.body;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == group),
        "{groups}"
    );

    // Created: defaulted, pruned (with a warning), status dropped, generation 1.
    let base = format!("/apis/{group}/v1/namespaces/default/crontabs");
    let answer = call(&server, "POST", &base, json!({"apiVersion": format!("{group}/v1"), "kind": "CronTab",
        "metadata": {"name": "a"}, "spec": {"cronSpec": "* * * * */5", "image": "x", "bogus": 1}, "status": {"replicas": 9}})).await;
    assert_eq!(answer.code, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(
        answer.body["spec"],
        json!({"cronSpec": "* * * * */5", "image": "x", "replicas": 1})
    );
    assert_eq!(answer.body.get("status"), None);
    assert_eq!(answer.body["metadata"]["generation"], 1);
    assert!(
        answer
            .warnings
            .iter()
            .any(|w| w.contains("unknown field") && w.contains("spec.bogus")),
        "{:?}",
        answer.warnings
    );

    // Strict field validation refuses the unknown field.
    let strict = call(
        &server,
        "POST",
        &format!("{base}?fieldValidation=Strict"),
        json!({"apiVersion": format!("{group}/v1"), "kind": "CronTab",
        "metadata": {"name": "s"}, "spec": {"cronSpec": "x", "bogus": 1}}),
    )
    .await;
    assert_eq!(strict.code, StatusCode::BAD_REQUEST, "{}", strict.body);
    assert!(
        strict.body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.bogus\""),
        "{}",
        strict.body
    );

    // The schema refuses a bad object with the field and upstream's wording.
    let bad = call(
        &server,
        "POST",
        &base,
        json!({"apiVersion": format!("{group}/v1"), "kind": "CronTab",
        "metadata": {"name": "b"}, "spec": {"replicas": "three"}}),
    )
    .await;
    assert_eq!(bad.code, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert_eq!(
        bad.body["message"],
        format!(
            "CronTab.{group} \"b\" is invalid: [spec.cronSpec: Required value, spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"]"
        )
    );
    let fields: Vec<&str> = bad.body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["spec.cronSpec", "spec.replicas"]);

    // Every served version reads the same object (the None conversion).
    let beta = call(
        &server,
        "GET",
        &format!("/apis/{group}/v1beta1/namespaces/default/crontabs/a"),
        Value::Null,
    )
    .await;
    assert_eq!(beta.code, StatusCode::OK, "{}", beta.body);
    assert_eq!(beta.body["apiVersion"], format!("{group}/v1beta1"));
    assert_eq!(beta.body["spec"]["cronSpec"], "* * * * */5");
    let beta_list = call(
        &server,
        "GET",
        &format!("/apis/{group}/v1beta1/crontabs"),
        Value::Null,
    )
    .await
    .body;
    assert_eq!(beta_list["kind"], "CronTabList");
    assert_eq!(
        beta_list["items"][0]["apiVersion"],
        format!("{group}/v1beta1")
    );

    // A Table with the printer columns, as `kubectl get` asks for it.
    let table = send(
        &server,
        "GET",
        &base,
        "application/json",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        Value::Null,
    )
    .await
    .body;
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Spec", "Replicas", "Age"]);
    assert_eq!(
        table["rows"][0]["cells"].as_array().unwrap()[0..3],
        [json!("a"), json!("* * * * */5"), json!(1)]
    );

    // The main resource keeps status; /status writes only status; spec changes count.
    let mut object = call(&server, "GET", &format!("{base}/a"), Value::Null)
        .await
        .body;
    object["spec"]["image"] = json!("y");
    object["status"] = json!({"replicas": 5});
    let updated = call(&server, "PUT", &format!("{base}/a"), object.clone()).await;
    assert_eq!(updated.code, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body.get("status"), None);
    assert_eq!(updated.body["metadata"]["generation"], 2);
    let mut with_status = updated.body.clone();
    with_status["status"] = json!({"replicas": 2, "selector": "app=cron"});
    with_status["spec"]["image"] = json!("ignored");
    let status = call(&server, "PUT", &format!("{base}/a/status"), with_status).await;
    assert_eq!(status.code, StatusCode::OK, "{}", status.body);
    assert_eq!(status.body["status"]["replicas"], 2);
    assert_eq!(status.body["spec"]["image"], "y");
    assert_eq!(status.body["metadata"]["generation"], 2);

    // /scale reads and writes the CRD's paths.
    let scale = call(&server, "GET", &format!("{base}/a/scale"), Value::Null)
        .await
        .body;
    assert_eq!(scale["spec"]["replicas"], 1);
    assert_eq!(
        scale["status"],
        json!({"replicas": 2, "selector": "app=cron"})
    );
    let patched = send(
        &server,
        "PATCH",
        &format!("{base}/a/scale"),
        "application/merge-patch+json",
        "application/json",
        json!({"spec": {"replicas": 4}}),
    )
    .await;
    assert_eq!(patched.code, StatusCode::OK, "{}", patched.body);
    let now = call(&server, "GET", &format!("{base}/a"), Value::Null)
        .await
        .body;
    assert_eq!(now["spec"]["replicas"], 4);

    // Merge patches apply; strategic merge patches are for built-in kinds only (415).
    let merged = send(
        &server,
        "PATCH",
        &format!("{base}/a"),
        "application/merge-patch+json",
        "application/json",
        json!({"spec": {"image": "z"}}),
    )
    .await;
    assert_eq!(merged.code, StatusCode::OK, "{}", merged.body);
    assert_eq!(merged.body["spec"]["image"], "z");
    let strategic = send(
        &server,
        "PATCH",
        &format!("{base}/a"),
        "application/strategic-merge-patch+json",
        "application/json",
        json!({"spec": {"image": "w"}}),
    )
    .await;
    assert_eq!(
        strategic.code,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        strategic.body
    );

    // OpenAPI v3 lists the group-version, with the schema tagged for `kubectl explain`.
    let root = call(&server, "GET", "/openapi/v3", Value::Null).await.body;
    let url = root["paths"][format!("apis/{group}/v1")]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let document = call(&server, "GET", &url, Value::Null).await.body;
    let schema = &document["components"]["schemas"]["com.example.stable.v1.CronTab"];
    assert_eq!(
        schema["x-kubernetes-group-version-kind"],
        json!([{"group": group, "version": "v1", "kind": "CronTab"}])
    );
    assert_eq!(
        schema["properties"]["spec"]["properties"]["replicas"]["type"],
        "integer"
    );
    let patch = &document["paths"]
        [format!("/apis/{group}/v1/namespaces/{{namespace}}/crontabs/{{name}}")]["patch"];
    // kubectl 1.29+ picks the strategic merge patch only where the document offers it.
    let formats: Vec<&String> = patch["requestBody"]["content"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        formats,
        [
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json"
        ]
    );

    // Protobuf is for built-in kinds: JSON is the answer.
    let proto = send(
        &server,
        "GET",
        &format!("{base}/a"),
        "application/json",
        "application/vnd.kubernetes.protobuf",
        Value::Null,
    )
    .await;
    assert_eq!(proto.code, StatusCode::NOT_ACCEPTABLE);

    // Deleting the CRD deletes its objects first, then it goes, then nothing is served.
    let deleted = call(
        &server,
        "DELETE",
        &format!("{CRDS}/crontabs.{group}"),
        Value::Null,
    )
    .await;
    assert!(deleted.code.is_success(), "{}", deleted.body);
    let mut gone = false;
    for _ in 0..100 {
        if call(
            &server,
            "GET",
            &format!("{CRDS}/crontabs.{group}"),
            Value::Null,
        )
        .await
        .code
            == StatusCode::NOT_FOUND
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the CRD was not removed");
    assert_eq!(
        call(&server, "GET", &base, Value::Null).await.code,
        StatusCode::NOT_FOUND
    );
    let left = server
        .registry
        .store
        .range(&format!("/registry/{group}/crontabs/"), None, 0)
        .await
        .unwrap();
    assert!(left.kvs.is_empty(), "custom resources left behind");

    // A new CRD of the same name starts empty.
    assert_eq!(
        call(&server, "POST", CRDS, crontab_crd(group)).await.code,
        StatusCode::CREATED
    );
    established(&server, &format!("crontabs.{group}")).await;
    let list = call(&server, "GET", &base, Value::Null).await.body;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn bad_crds_are_refused_with_the_field_to_fix() {
    let (server, _dir) = common::api_server().await;
    let mut crd = crontab_crd("bad.example.com");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["image"] =
        json!({"description": "no type"});
    let answer = call(&server, "POST", CRDS, crd).await;
    assert_eq!(
        answer.code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(
        answer.body["details"]["causes"][0]["field"],
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[image].type"
    );
    let mut crd = crontab_crd("bad.example.com");
    crd["spec"]["conversion"] = json!({"strategy": "Webhook"});
    let answer = call(&server, "POST", CRDS, crd).await;
    assert_eq!(
        answer.code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(
        answer.body["details"]["causes"][0]["field"],
        "spec.conversion.strategy"
    );
    // Nothing was served for the refused CRDs.
    let served = call(&server, "GET", "/apis/bad.example.com/v1", Value::Null).await;
    assert_eq!(served.code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn stored_crds_are_served_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn podium_store::Store> = std::sync::Arc::new(
        podium_store::RedbStore::open(dir.path().join("db"))
            .unwrap()
            .shared(),
    );
    let group = "restart.example.com";
    let open = |store: std::sync::Arc<dyn podium_store::Store>| async move {
        let server = ApiServer::new(
            store,
            podium_apiserver::ApiConfig {
                service_cidr: "10.43.0.0/16".into(),
                advertise_address: "127.0.0.1:6443".into(),
            },
        );
        server.bootstrap().await.unwrap();
        server
    };
    let first = open(store.clone()).await;
    assert_eq!(
        call(&first, "POST", CRDS, crontab_crd(group)).await.code,
        StatusCode::CREATED
    );
    established(&first, &format!("crontabs.{group}")).await;
    let created = call(&first, "POST", &format!("/apis/{group}/v1/namespaces/default/crontabs"),
        json!({"apiVersion": format!("{group}/v1"), "kind": "CronTab", "metadata": {"name": "kept"}, "spec": {"cronSpec": "x"}})).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    // Forget what the first server registered, as a new process would not know it.
    podium_api::resource::unregister(group, "v1", "crontabs");
    podium_api::resource::unregister(group, "v1beta1", "crontabs");
    assert_eq!(
        call(&first, "GET", &format!("/apis/{group}/v1"), Value::Null)
            .await
            .code,
        StatusCode::NOT_FOUND
    );
    let second = open(store).await;
    // Served as soon as bootstrap returns: no wait for the controller.
    let got = call(
        &second,
        "GET",
        &format!("/apis/{group}/v1/namespaces/default/crontabs/kept"),
        Value::Null,
    )
    .await;
    assert_eq!(got.code, StatusCode::OK, "{}", got.body);
}
