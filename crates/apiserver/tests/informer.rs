//! The consistency an informer relies on, at issue 9's scale: over 5,000 objects that
//! other clients keep creating, updating and deleting, a LIST by pages of 500 followed by
//! a WATCH from the list's resourceVersion ends with exactly the store's final state,
//! object by object (name, resourceVersion and data).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use common::call;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use podium_apiserver::ApiServer;
use serde_json::{Value, json};
use tower::ServiceExt;

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const OBJECTS: usize = 5_000;
const WRITERS: usize = 8;
const CHANGES_PER_WRITER: usize = 250;

fn configmap(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": value}})
}

/// What the informer keeps per object.
type State = BTreeMap<String, (String, Value)>;

fn entry(object: &Value) -> (String, (String, Value)) {
    (
        object["metadata"]["name"].as_str().unwrap().to_string(),
        (
            object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_string(),
            object["data"].clone(),
        ),
    )
}

/// A LIST by pages of 500, every page read at the first page's revision.
async fn paged_list(server: &ApiServer) -> (State, String) {
    let mut state = State::new();
    let mut token = String::new();
    let mut revision = String::new();
    loop {
        let uri = if token.is_empty() {
            format!("{CONFIGMAPS}?limit=500")
        } else {
            format!("{CONFIGMAPS}?limit=500&continue={token}")
        };
        let (code, page) = call(server, "GET", &uri, None).await;
        assert_eq!(code, StatusCode::OK, "{page}");
        for item in page["items"].as_array().unwrap() {
            let (name, value) = entry(item);
            assert!(
                state.insert(name.clone(), value).is_none(),
                "{name} listed twice"
            );
        }
        let page_revision = page["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        if revision.is_empty() {
            revision = page_revision;
        } else {
            assert_eq!(
                page_revision, revision,
                "every page at the first page's revision"
            );
        }
        match page["metadata"]["continue"].as_str() {
            Some(next) if !next.is_empty() => token = next.to_string(),
            _ => return (state, revision),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paged_list_and_a_watch_end_with_the_stores_state() {
    let (server, _dir) = common::api_server().await;
    let server = Arc::new(server);
    // 5,000 objects, written by 16 clients.
    let mut creators = Vec::new();
    for client in 0..16 {
        let server = server.clone();
        creators.push(tokio::spawn(async move {
            for i in (client..OBJECTS).step_by(16) {
                let (code, body) = call(
                    &server,
                    "POST",
                    CONFIGMAPS,
                    Some(configmap(&format!("cm-{i:05}"), "0")),
                )
                .await;
                assert_eq!(code, StatusCode::CREATED, "{body}");
            }
        }));
    }
    for creator in creators {
        creator.await.unwrap();
    }

    // Other clients keep changing them while the informer lists and watches.
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let server = server.clone();
        writers.push(tokio::spawn(async move {
            for step in 0..CHANGES_PER_WRITER {
                let i = (writer * 7919 + step * 104_729) % OBJECTS;
                let name = format!("cm-{i:05}");
                match step % 5 {
                    // Deleted, then made again a few steps later.
                    0 => {
                        call(&server, "DELETE", &format!("{CONFIGMAPS}/{name}"), None).await;
                    }
                    1 => {
                        call(&server, "POST", CONFIGMAPS, Some(configmap(&name, "again"))).await;
                    }
                    _ => {
                        let patch = json!({"data": {"k": format!("{writer}-{step}")}});
                        let request = Request::builder()
                            .method("PATCH")
                            .uri(format!("{CONFIGMAPS}/{name}"))
                            .header("content-type", "application/merge-patch+json")
                            .body(Body::from(patch.to_string()))
                            .unwrap();
                        server.router().oneshot(request).await.unwrap();
                    }
                }
                // New objects too, past the first 5,000.
                if step % 10 == 9 {
                    let name = format!("new-{writer}-{step}");
                    call(&server, "POST", CONFIGMAPS, Some(configmap(&name, "new"))).await;
                }
            }
        }));
    }

    let (mut state, revision) = paged_list(&server).await;
    let request = Request::builder()
        .uri(format!("{CONFIGMAPS}?watch=true&resourceVersion={revision}&allowWatchBookmarks=true&timeoutSeconds=120"))
        .body(Body::empty())
        .unwrap();
    let response = server.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    for writer in writers {
        writer.await.unwrap();
    }
    // A last write after every other: once the watch shows it, it has shown them all.
    let (code, sentinel) = call(
        &server,
        "POST",
        CONFIGMAPS,
        Some(configmap("zz-sentinel", "last")),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{sentinel}");

    let mut buffer = Vec::new();
    let mut events = 0usize;
    'read: loop {
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let event: Value = serde_json::from_slice(&line).unwrap();
            let object = &event["object"];
            match event["type"].as_str().unwrap() {
                "ADDED" | "MODIFIED" => {
                    let (name, value) = entry(object);
                    state.insert(name.clone(), value);
                    events += 1;
                    if name == "zz-sentinel" {
                        break 'read;
                    }
                }
                "DELETED" => {
                    state.remove(object["metadata"]["name"].as_str().unwrap());
                    events += 1;
                }
                "BOOKMARK" => {}
                other => panic!("unexpected watch event {other}: {event}"),
            }
        }
        let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .expect("the watch went quiet for 30 s before the sentinel arrived")
            .expect("the watch ended before the sentinel arrived")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
        }
    }
    assert!(
        events > 1_000,
        "only {events} events: the writers did not overlap the informer"
    );

    // The store's final state, read directly.
    let stored = server
        .registry
        .store
        .range("/registry/configmaps/default/", None, 0)
        .await
        .unwrap();
    let truth: State = stored
        .kvs
        .iter()
        .map(|kv| {
            let object = podium_apiserver::registry::decode(
                podium_api::resource::find("", "v1", "configmaps").unwrap(),
                kv,
            )
            .unwrap();
            entry(&object)
        })
        .collect();
    let missing: Vec<&String> = truth.keys().filter(|k| !state.contains_key(*k)).collect();
    let extra: Vec<&String> = state.keys().filter(|k| !truth.contains_key(*k)).collect();
    let differ: Vec<&String> = truth
        .iter()
        .filter(|(k, v)| state.get(*k).is_some_and(|s| s != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "informer state differs from the store: {} missing {:?}, {} extra {:?}, {} differ {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>(),
        differ.len(),
        differ.iter().take(5).collect::<Vec<_>>(),
    );
    assert!(
        truth.len() > OBJECTS - WRITERS * CHANGES_PER_WRITER,
        "{} objects",
        truth.len()
    );
}
