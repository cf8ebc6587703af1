//! Consistent pagination: every page of a LIST is read at its first page's revision, as
//! kube-apiserver over etcd does, and resourceVersion/resourceVersionMatch as upstream.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use podium_apiserver::{ApiConfig, ApiServer};
use podium_store::{History, RedbStore};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Harness {
    server: ApiServer,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    // History is compacted only when the test says so.
    let store = RedbStore::open_with(dir.path().join("db"), History::manual())
        .unwrap()
        .shared();
    let server = ApiServer::new(
        Arc::new(store),
        ApiConfig {
            service_cidr: "10.43.0.0/16".into(),
            advertise_address: "127.0.0.1:6443".into(),
        },
    );
    server.bootstrap().await.unwrap();
    Harness { server, _dir: dir }
}

impl Harness {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .unwrap();
        let response = self.server.router().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, None).await
    }

    async fn create(&self, name: &str, value: &str) {
        let (code, body) = self
            .call("POST", CONFIGMAPS, Some(configmap(name, value)))
            .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }

    async fn update(&self, name: &str, value: &str) {
        let (code, body) = self
            .call(
                "PUT",
                &format!("{CONFIGMAPS}/{name}"),
                Some(configmap(name, value)),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }

    async fn delete(&self, name: &str) {
        let (code, body) = self
            .call("DELETE", &format!("{CONFIGMAPS}/{name}"), None)
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }

    /// Every page of `uri` (whose `limit` is `limit`), following continue tokens as
    /// client-go's pager does (without resourceVersion, which upstream refuses with them).
    async fn pages(&self, uri: &str, limit: usize) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page_uri = match &token {
                Some(t) => format!("{CONFIGMAPS}?limit={limit}&continue={t}"),
                None => uri.to_string(),
            };
            let (code, page) = self.get(&page_uri).await;
            assert_eq!(code, StatusCode::OK, "{page}");
            token = page["metadata"]["continue"].as_str().map(str::to_string);
            pages.push(page);
            if token.is_none() {
                return pages;
            }
        }
    }
}

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

fn configmap(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}})
}

/// (name, data.v, resourceVersion) of a list's items.
fn summary(items: &[Value]) -> Vec<(String, String, String)> {
    items
        .iter()
        .map(|item| {
            (
                item["metadata"]["name"].as_str().unwrap().to_string(),
                item["data"]["v"].as_str().unwrap().to_string(),
                item["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn pages_read_at_the_first_pages_revision_while_objects_change() {
    let h = harness().await;
    for i in 0..25 {
        h.create(&format!("cm-{i:02}"), "original").await;
    }
    let (_, snapshot) = h.get(CONFIGMAPS).await;
    let snapshot_rv = snapshot["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    // First page, then changes before and after the page boundary, then the rest.
    let (code, first) = h.get(&format!("{CONFIGMAPS}?limit=10")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(first["metadata"]["resourceVersion"], snapshot_rv.as_str());
    let mut token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let mut paged = items(&first);
    h.update("cm-03", "changed").await; // already returned
    h.update("cm-15", "changed").await; // not yet returned
    h.delete("cm-20").await;
    h.create("cm-12a", "new").await; // sorts into a later page
    loop {
        let (code, page) = h
            .get(&format!("{CONFIGMAPS}?limit=10&continue={token}"))
            .await;
        assert_eq!(code, StatusCode::OK, "{page}");
        assert_eq!(page["metadata"]["resourceVersion"], snapshot_rv.as_str());
        paged.extend(items(&page));
        match page["metadata"]["continue"].as_str() {
            Some(next) => token = next.to_string(),
            None => break,
        }
    }
    assert_eq!(summary(&paged), summary(&items(&snapshot)));

    // The same snapshot, exactly, by resourceVersionMatch=Exact, and by pages of it.
    let (code, exact) = h
        .get(&format!(
            "{CONFIGMAPS}?resourceVersion={snapshot_rv}&resourceVersionMatch=Exact"
        ))
        .await;
    assert_eq!(code, StatusCode::OK, "{exact}");
    assert_eq!(summary(&items(&exact)), summary(&items(&snapshot)));
    let legacy_exact: Vec<Value> = h
        .pages(
            &format!("{CONFIGMAPS}?resourceVersion={snapshot_rv}&limit=7"),
            7,
        )
        .await
        .iter()
        .flat_map(items)
        .collect();
    assert_eq!(summary(&legacy_exact), summary(&items(&snapshot)));

    // Now: the changes are there.
    let now: Vec<Value> = h
        .pages(&format!("{CONFIGMAPS}?limit=4"), 4)
        .await
        .iter()
        .flat_map(items)
        .collect();
    let names: Vec<_> = summary(&now).into_iter().map(|(n, v, _)| (n, v)).collect();
    assert_eq!(names.len(), 25);
    assert!(names.contains(&("cm-03".into(), "changed".into())));
    assert!(names.contains(&("cm-12a".into(), "new".into())));
    assert!(!names.iter().any(|(n, _)| n == "cm-20"));
}

#[tokio::test]
async fn a_token_older_than_compaction_is_410_with_a_token_for_the_rest() {
    let h = harness().await;
    for i in 0..6 {
        h.create(&format!("cm-{i}"), "original").await;
    }
    let (_, first) = h.get(&format!("{CONFIGMAPS}?limit=2")).await;
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let first_rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    h.update("cm-4", "changed").await;
    let store = h.server.registry.store.clone();
    store
        .compact(store.revision().await.unwrap())
        .await
        .unwrap();

    let (code, status) = h
        .get(&format!("{CONFIGMAPS}?limit=2&continue={token}"))
        .await;
    assert_eq!(code, StatusCode::GONE);
    assert_eq!(status["reason"], "Expired");
    assert_eq!(status["code"], 410);
    assert_eq!(
        status["message"],
        podium_apiserver::list::INCONSISTENT_CONTINUE
    );
    // The offered token finishes the list at the latest revision.
    let rest = status["metadata"]["continue"].as_str().unwrap();
    let (code, page) = h
        .get(&format!("{CONFIGMAPS}?limit=10&continue={rest}"))
        .await;
    assert_eq!(code, StatusCode::OK, "{page}");
    let names: Vec<_> = summary(&items(&page))
        .into_iter()
        .map(|(n, v, _)| (n, v))
        .collect();
    assert_eq!(names[0].0, "cm-2");
    assert!(names.contains(&("cm-4".into(), "changed".into())));

    // An exact list at the compacted revision is 410 too.
    let (code, status) = h
        .get(&format!(
            "{CONFIGMAPS}?resourceVersion={first_rv}&resourceVersionMatch=Exact"
        ))
        .await;
    assert_eq!(
        (code, &status["reason"]),
        (StatusCode::GONE, &json!("Expired"))
    );
}

#[tokio::test]
async fn bad_list_options_are_4xx_statuses() {
    let h = harness().await;
    h.create("a", "1").await;
    for (uri, code, reason) in [
        ("?continue=bogus", 400, "BadRequest"),
        ("?resourceVersion=abc", 400, "BadRequest"),
        ("?resourceVersionMatch=Exact", 422, "Invalid"),
        (
            "?resourceVersion=0&resourceVersionMatch=Exact",
            422,
            "Invalid",
        ),
        (
            "?resourceVersion=1&resourceVersionMatch=Latest",
            422,
            "Invalid",
        ),
        ("?limit=x", 400, "BadRequest"),
    ] {
        let (status, body) = h.get(&format!("{CONFIGMAPS}{uri}")).await;
        assert_eq!(status.as_u16(), code, "{uri}: {body}");
        assert_eq!(body["reason"], reason, "{uri}: {body}");
        assert_eq!(body["kind"], "Status");
    }
    // A token for another resource's keys cannot be used to read them.
    let (_, first) = h.get("/api/v1/namespaces?limit=1").await;
    let token = first["metadata"]["continue"].as_str().unwrap();
    let (status, page) = h
        .get(&format!("{CONFIGMAPS}?limit=1&continue={token}"))
        .await;
    assert!(status.is_success(), "{page}");
    assert!(
        items(&page)
            .iter()
            .all(|i| i["kind"].is_null() || i["kind"] == "ConfigMap")
    );
}

#[tokio::test]
async fn not_older_than_a_future_revision_waits_for_it() {
    let h = Arc::new(harness().await);
    h.create("a", "1").await;
    let next = h.server.registry.store.revision().await.unwrap() + 1;
    let writer = {
        let h = h.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            h.create("b", "1").await;
        })
    };
    let (code, list) = h
        .get(&format!(
            "{CONFIGMAPS}?resourceVersion={next}&resourceVersionMatch=NotOlderThan"
        ))
        .await;
    writer.await.unwrap();
    assert_eq!(code, StatusCode::OK, "{list}");
    assert_eq!(items(&list).len(), 2);
    // One that never comes is 504 Timeout, as upstream's "Too large resource version".
    let far = next + 1000;
    let (code, status) = h.get(&format!("{CONFIGMAPS}?resourceVersion={far}")).await;
    assert_eq!(code, StatusCode::GATEWAY_TIMEOUT, "{status}");
    assert_eq!(status["reason"], "Timeout");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("Timeout: Too large resource version")
    );
}

#[tokio::test]
async fn a_watch_from_a_compacted_revision_gets_410_expired() {
    let h = harness().await;
    h.create("a", "1").await;
    // A GET reads the store; no LIST, so the watch cache starts only after the
    // compaction and its window does not reach back to `old` (a watch it can replay
    // from its window succeeds even when the store has compacted, as upstream's cacher).
    let (_, object) = h.get(&format!("{CONFIGMAPS}/a")).await;
    let old = object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    h.update("a", "2").await;
    h.update("a", "3").await;
    let store = h.server.registry.store.clone();
    store
        .compact(store.revision().await.unwrap())
        .await
        .unwrap();
    let request = Request::builder()
        .uri(format!(
            "{CONFIGMAPS}?watch=true&resourceVersion={old}&timeoutSeconds=2"
        ))
        .body(Body::empty())
        .unwrap();
    let response = h.server.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let first: Value =
        serde_json::from_slice(bytes.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["type"], "ERROR", "{first}");
    assert_eq!(first["object"]["code"], 410);
    assert_eq!(first["object"]["reason"], "Expired");
    // From the compaction point itself the watch works.
    let now = store.revision().await.unwrap();
    let request = Request::builder()
        .uri(format!(
            "{CONFIGMAPS}?watch=true&resourceVersion={now}&timeoutSeconds=1"
        ))
        .body(Body::empty())
        .unwrap();
    let response = h.server.router().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert!(!String::from_utf8_lossy(&bytes).contains("ERROR"));
}
