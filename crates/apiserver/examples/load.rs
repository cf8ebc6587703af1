//! ConfigMap creates through the HTTP API: creates/s and latency from 1 and 16 clients.
//!
//! ```sh
//! cargo run --release -p podium-apiserver --example load            # in-process server, temp store
//! cargo run --release -p podium-apiserver --example load -- http://127.0.0.1:6443
//! ```
//! Each client holds one HTTP/1.1 keep-alive connection and sends one create at a time,
//! as a controller or `kubectl create` loop does. 1,000 creates from 1 client, then
//! 10,000 from 16; the last 1,000 are compared with the first 1,000.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use podium_apiserver::{ApiConfig, ApiServer};

async fn client(
    addr: String,
    host: String,
    prefix: String,
    count: usize,
) -> Vec<(Instant, Duration)> {
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{prefix}-{i}"}},"data":{{"key":"{}"}}}}"#,
            "v".repeat(512)
        );
        let request = http::Request::post("/api/v1/namespaces/default/configmaps")
            .header("host", &host)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let started = Instant::now();
        let response = sender.send_request(request).await.expect("send");
        let status = response.status();
        let _ = response.into_body().collect().await.expect("body");
        assert_eq!(status, http::StatusCode::CREATED, "create {prefix}-{i}");
        samples.push((started, started.elapsed()));
    }
    samples
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn round(addr: &str, host: &str, clients: usize, total: usize, tag: &str) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(client(
                addr.to_string(),
                host.to_string(),
                format!("{tag}-c{c}"),
                total / clients,
            ))
        })
        .collect();
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.expect("client"));
    }
    let elapsed = started.elapsed();
    samples.sort_by_key(|(at, _)| *at);
    let window = 1000.min(samples.len());
    let mean = |s: &[(Instant, Duration)]| {
        s.iter().map(|(_, d)| d.as_secs_f64()).sum::<f64>() / s.len() as f64 * 1000.0
    };
    let first = mean(&samples[..window]);
    let last = mean(&samples[samples.len() - window..]);
    let mut latencies: Vec<_> = samples.iter().map(|(_, d)| *d).collect();
    latencies.sort();
    println!(
        "| {clients} | {} | {:.0} | {:.2} | {:.2} | {first:.2} | {last:.2} |",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
    );
}

#[tokio::main]
async fn main() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (addr, host) = match std::env::args().nth(1) {
        Some(url) => {
            let rest = url.trim_start_matches("http://").trim_end_matches('/');
            (rest.to_string(), rest.to_string())
        }
        None => {
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
            (addr.clone(), addr)
        }
    };
    let tag = format!("load{}", std::process::id());
    println!(
        "| clients | creates | creates/s | p50 (ms) | p99 (ms) | first 1,000 mean (ms) | last 1,000 mean (ms) |"
    );
    println!("|---|---|---|---|---|---|---|");
    round(&addr, &host, 1, 1000, &format!("{tag}-1")).await;
    round(&addr, &host, 16, 10_000, &format!("{tag}-16")).await;
}
