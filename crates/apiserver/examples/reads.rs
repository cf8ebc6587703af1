//! Reads at scale through the HTTP API: LIST of 5,000 pods (whole, paged by 500, and
//! selected by `spec.nodeName`), and 1,000 watches × 100 events (delivery latency, misses).
//!
//! ```sh
//! cargo run --release -p podium-apiserver --example reads       # in-process server, temp store
//! ```
//! Each measured LIST is run 5 times after one warm-up; the median is printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use podium_apiserver::{ApiConfig, ApiServer};

const PODS: usize = 5_000;
const NODES: usize = 50;
const WATCHERS: usize = 1_000;
const EVENTS: usize = 100;

async fn connect(addr: &str) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    sender
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: String,
) -> (http::StatusCode, Bytes) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    sender.ready().await.expect("connection ready");
    let response = sender.send_request(request).await.expect("send");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body)
}

fn pod(i: usize) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"pod-{i}","labels":{{"app":"bench","shard":"s{}"}}}},"spec":{{"nodeName":"node-{}","containers":[{{"name":"app","image":"registry.example/app:v1","ports":[{{"containerPort":8080}}],"resources":{{"requests":{{"cpu":"100m","memory":"64Mi"}}}}}}]}}}}"#,
        i % 10,
        i % NODES
    )
}

async fn median_ms(
    sender: &mut SendRequest<Full<Bytes>>,
    mut run: impl AsyncFnMut(&mut SendRequest<Full<Bytes>>) -> Vec<Bytes>,
) -> (f64, Vec<Bytes>) {
    let mut bodies = run(sender).await;
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        bodies = run(sender).await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[2], bodies)
}

/// The items in the LIST answers.
fn count(bodies: &[Bytes]) -> usize {
    bodies
        .iter()
        .map(|body| {
            let list: serde_json::Value = serde_json::from_slice(body).expect("list json");
            list["items"].as_array().map_or(0, Vec::len)
        })
        .sum()
}

/// A page's continue token, read from the list metadata at the start of the answer
/// (as cheaply as a client that streams the list would find it).
fn continue_token(body: &Bytes) -> Option<String> {
    let head = &body[..body.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    let start = text.find("\"continue\":\"")? + "\"continue\":\"".len();
    let end = text[start..].find('"')?;
    Some(text[start..start + end].to_string()).filter(|t| !t.is_empty())
}

#[tokio::main]
async fn main() {
    let temp = tempfile::tempdir().expect("temp dir");
    let store = podium_store::RedbStore::open(temp.path().join("state.redb"))
        .expect("store")
        .shared();
    let server = ApiServer::new(
        Arc::new(store),
        ApiConfig {
            service_cidr: "10.43.0.0/16".into(),
            advertise_address: "127.0.0.1:6443".into(),
        },
    );
    server.bootstrap().await.expect("bootstrap");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let router = server.router();
    tokio::spawn(async move { axum::serve(listener, router).await });

    // 5,000 pods from 16 clients.
    let creators: Vec<_> = (0..16)
        .map(|c| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let mut sender = connect(&addr).await;
                for i in (c..PODS).step_by(16) {
                    let (status, body) = send(
                        &mut sender,
                        "POST",
                        "/api/v1/namespaces/default/pods",
                        pod(i),
                    )
                    .await;
                    assert_eq!(status, http::StatusCode::CREATED, "{body:?}");
                }
            })
        })
        .collect();
    for c in creators {
        c.await.expect("creator");
    }

    let mut sender = connect(&addr).await;
    println!("| read | objects | median (ms) |");
    println!("|---|---|---|");
    // Timed until the whole answer has arrived; the items are counted afterwards, so the
    // client's own JSON parsing is not in the number.
    let (ms, bodies) = median_ms(&mut sender, async |s| {
        vec![send(s, "GET", "/api/v1/pods", String::new()).await.1]
    })
    .await;
    println!("| LIST all pods | {} | {ms:.1} |", count(&bodies));
    let (ms, bodies) = median_ms(&mut sender, async |s| {
        let mut bodies = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let path = match &next {
                None => "/api/v1/pods?limit=500".to_string(),
                Some(token) => format!("/api/v1/pods?limit=500&continue={token}"),
            };
            let body = send(s, "GET", &path, String::new()).await.1;
            next = continue_token(&body);
            bodies.push(body);
            if next.is_none() {
                return bodies;
            }
        }
    })
    .await;
    println!(
        "| LIST all pods, pages of 500 | {} | {ms:.1} |",
        count(&bodies)
    );
    let (ms, bodies) = median_ms(&mut sender, async |s| {
        vec![
            send(
                s,
                "GET",
                "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-7",
                String::new(),
            )
            .await
            .1,
        ]
    })
    .await;
    println!(
        "| LIST pods with spec.nodeName=node-7 | {} | {ms:.1} |",
        count(&bodies)
    );

    // 1,000 watches of one ConfigMap's namespace, then 100 updates.
    let (_, body) = send(
        &mut sender,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"watched"},"data":{"n":"0"}}"#
            .to_string(),
    )
    .await;
    let created: serde_json::Value = serde_json::from_slice(&body).expect("created");
    let from = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let sent_at: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let addr = addr.clone();
        let from = from.clone();
        let sent_at = sent_at.clone();
        let mut sender = connect(&addr).await;
        watchers.push(tokio::spawn(async move {
            let request = http::Request::get(format!(
                "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={from}&timeoutSeconds=60"
            ))
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .expect("request");
            let response = sender.send_request(request).await.expect("watch");
            let mut body = response.into_body();
            let mut buffer = Vec::new();
            let mut latencies = Vec::new();
            while latencies.len() < EVENTS {
                let frame =
                    match tokio::time::timeout(Duration::from_secs(20), body.frame()).await {
                        Ok(Some(Ok(frame))) => frame,
                        _ => break,
                    };
                let Ok(data) = frame.into_data() else { continue };
                buffer.extend_from_slice(&data);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let event: serde_json::Value =
                        serde_json::from_slice(&line).expect("event");
                    let n: usize = event["object"]["data"]["n"]
                        .as_str()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    if n == 0 {
                        continue;
                    }
                    let sent = sent_at.lock().expect("times")[n - 1];
                    latencies.push(sent.elapsed());
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in 1..=EVENTS {
        sent_at.lock().expect("times").push(Instant::now());
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"watched"}},"data":{{"n":"{n}"}}}}"#
        );
        let (status, _) = send(
            &mut sender,
            "PUT",
            "/api/v1/namespaces/default/configmaps/watched",
            body,
        )
        .await;
        assert_eq!(status, http::StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::new();
    for w in watchers {
        latencies.extend(w.await.expect("watcher"));
    }
    let missed = WATCHERS * EVENTS - latencies.len();
    latencies.sort();
    let at = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "| {WATCHERS} watches × {EVENTS} events: delivered {} missed {missed}, p50 {:.1} ms, p99 {:.1} ms | | |",
        latencies.len(),
        at(0.5),
        at(0.99)
    );
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .unwrap_or_default();
    println!("| RSS of the benchmark process after it all (kB) | {rss} | |");
}
