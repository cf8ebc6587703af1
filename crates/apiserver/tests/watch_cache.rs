//! The watch cache: consistent LISTs from memory, watches replayed from its window and
//! fed live, the node index, and slow watchers that never hold writers back.

mod common;

use std::time::Duration;

use common::call;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use podium_apiserver::ApiServer;
use serde_json::{Value, json};
use tower::ServiceExt;

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

fn configmap(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": value}})
}

fn revision(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A watch stream read line by line.
struct Stream {
    body: Body,
    buffer: Vec<u8>,
}

impl Stream {
    async fn open(server: &ApiServer, uri: &str) -> Stream {
        let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
        let response = server.router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Stream {
            body: response.into_body(),
            buffer: Vec::new(),
        }
    }

    /// The next event, None when the stream ends; panics after 10 s of silence.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("no watch event within 10 s");
            match frame {
                Some(frame) => {
                    if let Ok(data) = frame.unwrap().into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                None => return None,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_sees_every_write_acknowledged_before_it() {
    let (server, _dir) = common::api_server().await;
    for i in 0..100 {
        let (code, created) = call(
            &server,
            "POST",
            CONFIGMAPS,
            Some(configmap(&format!("cm-{i}"), "v")),
        )
        .await;
        assert_eq!(code, StatusCode::CREATED, "{created}");
        let (code, list) = call(&server, "GET", CONFIGMAPS, None).await;
        assert_eq!(code, StatusCode::OK);
        let names: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), i + 1, "{names:?}");
        assert!(
            names.contains(&format!("cm-{i}").as_str()),
            "cm-{i} missing from {names:?}"
        );
        let list_revision: u64 = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(list_revision >= revision(&created));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_resource_lists_at_the_stores_current_revision() {
    let (server, _dir) = common::api_server().await;
    // Start the secrets cache, then change only configmaps.
    let (code, _) = call(&server, "GET", "/api/v1/namespaces/default/secrets", None).await;
    assert_eq!(code, StatusCode::OK);
    let mut last = 0;
    for i in 0..5 {
        let (_, created) = call(
            &server,
            "POST",
            CONFIGMAPS,
            Some(configmap(&format!("q-{i}"), "v")),
        )
        .await;
        last = revision(&created);
    }
    let (code, secrets) = call(&server, "GET", "/api/v1/namespaces/default/secrets", None).await;
    assert_eq!(code, StatusCode::OK);
    let listed: u64 = secrets["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        listed >= last,
        "the secrets list is at {listed}, older than the last write {last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_list_gets_every_later_change_in_order() {
    let (server, _dir) = common::api_server().await;
    for i in 0..10 {
        call(
            &server,
            "POST",
            CONFIGMAPS,
            Some(configmap(&format!("w-{i}"), "0")),
        )
        .await;
    }
    let (_, list) = call(&server, "GET", CONFIGMAPS, None).await;
    let from = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Changes made before the watch starts are replayed from the window, later ones live.
    let mut expected = Vec::new();
    for i in 0..10 {
        let (_, updated) = call(
            &server,
            "PUT",
            &format!("{CONFIGMAPS}/w-{i}"),
            Some(configmap(&format!("w-{i}"), "1")),
        )
        .await;
        expected.push(("MODIFIED".to_string(), format!("w-{i}"), revision(&updated)));
    }
    let mut stream = Stream::open(
        &server,
        &format!("{CONFIGMAPS}?watch=true&resourceVersion={from}"),
    )
    .await;
    for i in 0..10 {
        // A ConfigMap's DELETE answers with a Status, as upstream: no revision to expect.
        let (code, _) = call(&server, "DELETE", &format!("{CONFIGMAPS}/w-{i}"), None).await;
        assert_eq!(code, StatusCode::OK);
        expected.push(("DELETED".to_string(), format!("w-{i}"), 0));
        let (_, created) = call(
            &server,
            "POST",
            CONFIGMAPS,
            Some(configmap(&format!("n-{i}"), "x")),
        )
        .await;
        expected.push(("ADDED".to_string(), format!("n-{i}"), revision(&created)));
    }
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let event = stream.next().await.expect("the watch ended early");
        let object = &event["object"];
        seen.push((
            event["type"].as_str().unwrap().to_string(),
            object["metadata"]["name"].as_str().unwrap().to_string(),
            revision(object),
        ));
    }
    let revisions: Vec<u64> = seen.iter().map(|(_, _, r)| *r).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "revisions out of order: {revisions:?}"
    );
    for (event, want) in seen.iter_mut().zip(&expected) {
        if want.2 == 0 {
            event.2 = 0;
        }
    }
    assert_eq!(seen, expected);

    // A label-selected watch sees an object that stops matching as DELETED.
    let mut labelled = configmap("labelled", "v");
    labelled["metadata"]["labels"] = json!({"app": "a"});
    let (_, created) = call(&server, "POST", CONFIGMAPS, Some(labelled.clone())).await;
    let mut stream = Stream::open(
        &server,
        &format!(
            "{CONFIGMAPS}?watch=true&labelSelector=app%3Da&resourceVersion={}",
            revision(&created)
        ),
    )
    .await;
    labelled["metadata"]["labels"] = json!({"app": "b"});
    call(
        &server,
        "PUT",
        &format!("{CONFIGMAPS}/labelled"),
        Some(labelled),
    )
    .await;
    let event = stream.next().await.unwrap();
    assert_eq!(event["type"], "DELETED");
    assert_eq!(event["object"]["metadata"]["labels"]["app"], "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_listed_by_node_from_the_index() {
    let (server, _dir) = common::api_server().await;
    for (name, node) in [
        ("a1", "node-a"),
        ("a2", "node-a"),
        ("b1", "node-b"),
        ("none", ""),
    ] {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        if !node.is_empty() {
            pod["spec"]["nodeName"] = json!(node);
        }
        let (code, body) = call(
            &server,
            "POST",
            "/api/v1/namespaces/default/pods",
            Some(pod),
        )
        .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, list) = call(
        &server,
        "GET",
        "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a",
        None,
    )
    .await;
    assert_eq!(names(&list), ["a1", "a2"]);
    let (_, list) = call(
        &server,
        "GET",
        "/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3Dnode-b",
        None,
    )
    .await;
    assert_eq!(names(&list), ["b1"]);
    let (_, list) = call(
        &server,
        "GET",
        "/api/v1/namespaces/other/pods?fieldSelector=spec.nodeName%3Dnode-b",
        None,
    )
    .await;
    assert!(names(&list).is_empty());
    let (_, list) = call(
        &server,
        "GET",
        "/api/v1/pods?fieldSelector=spec.nodeName%3D",
        None,
    )
    .await;
    assert_eq!(names(&list), ["none"]);
    call(
        &server,
        "DELETE",
        "/api/v1/namespaces/default/pods/a1?gracePeriodSeconds=0",
        None,
    )
    .await;
    let (_, list) = call(
        &server,
        "GET",
        "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a",
        None,
    )
    .await;
    assert!(
        !names(&list).contains(&"a1".to_string())
            || list["items"][0]["metadata"]["deletionTimestamp"].is_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_is_ended_and_never_holds_writers_back() {
    let (server, _dir) = common::api_server().await;
    let (_, list) = call(&server, "GET", CONFIGMAPS, None).await;
    let from = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Opened and never read while the writes go on.
    let mut stream = Stream::open(
        &server,
        &format!("{CONFIGMAPS}?watch=true&resourceVersion={from}"),
    )
    .await;
    let writes = podium_apiserver::cache::LIVE_BUFFER + 500;
    let started = std::time::Instant::now();
    let mut pending = Vec::new();
    for i in 0..writes {
        let server = server.clone();
        pending.push(tokio::spawn(async move {
            let (code, body) = call(
                &server,
                "POST",
                CONFIGMAPS,
                Some(configmap(&format!("s-{i}"), "v")),
            )
            .await;
            assert_eq!(code, StatusCode::CREATED, "{body}");
        }));
        if pending.len() == 32 {
            for write in pending.drain(..) {
                tokio::time::timeout(Duration::from_secs(10), write)
                    .await
                    .expect("a write was held back")
                    .unwrap();
            }
        }
    }
    for write in pending {
        write.await.unwrap();
    }
    eprintln!("{writes} writes in {:?}", started.elapsed());
    // The watcher gets what fitted its buffers, then an ERROR, then the end.
    let mut added = 0;
    let mut error = None;
    while let Some(event) = stream.next().await {
        match event["type"].as_str() {
            Some("ADDED") => added += 1,
            Some("ERROR") => error = Some(event),
            other => panic!("unexpected event {other:?}"),
        }
    }
    let error = error.expect("the slow watcher was not told it was ended");
    assert_eq!(error["object"]["code"], 410, "{error}");
    assert!(added < writes, "{added} of {writes}");
}
