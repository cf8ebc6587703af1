//! Raw store throughput: creates/s and latency with 1 and 16 concurrent writers.
//!
//! ```sh
//! cargo run --release -p podium-store --example bench [-- DIR]
//! ```
//! DIR (default: a temporary directory) should be on the disk the store lives on, since
//! every commit is an fsync there. Each create is a 1 KiB value, about a ConfigMap.

use std::time::{Duration, Instant};

use podium_store::{Expect, RedbStore, SharedRedbStore, Store};

async fn run(
    store: &SharedRedbStore,
    writers: usize,
    creates: usize,
    round: usize,
) -> (f64, Vec<Duration>) {
    let per_writer = creates / writers;
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let key = format!("/registry/configmaps/bench/r{round}-w{w}-{i}");
                    let t = Instant::now();
                    store
                        .put(&key, vec![b'x'; 1024], Expect::Absent)
                        .await
                        .expect("create");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("writer"));
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    (rate, latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let path = dir.join(format!("bench-{}.redb", std::process::id()));
    let store = RedbStore::open(&path).expect("open store").shared();
    println!("store file: {}", path.display());
    println!("| writers | creates | creates/s | p50 (ms) | p99 (ms) |");
    println!("|---|---|---|---|---|");
    for (round, (writers, creates)) in [(1, 2_000), (16, 10_000)].into_iter().enumerate() {
        let (rate, latencies) = run(&store, writers, creates, round).await;
        println!(
            "| {writers} | {} | {rate:.0} | {:.2} | {:.2} |",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "file size after 12,000 × 1 KiB: {:.1} MB",
        size as f64 / 1e6
    );
    drop(store);
    let _ = std::fs::remove_file(&path);

    // Steady updates of 1,000 live keys from 16 writers; the store compacts by itself.
    let path = dir.join(format!("bench-steady-{}.redb", std::process::id()));
    let store = RedbStore::open(&path).expect("open store").shared();
    let keys: usize = std::env::var("STEADY_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    for i in 0..keys {
        store
            .put(
                &format!("/registry/configmaps/steady/{i}"),
                vec![b'x'; 1024],
                Expect::Any,
            )
            .await
            .expect("create");
    }
    let seconds: u64 = std::env::var("STEADY_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut updates = 0u64;
                while Instant::now() < deadline {
                    let key = format!(
                        "/registry/configmaps/steady/{}",
                        (updates as usize * 16 + w) % keys
                    );
                    store
                        .put(&key, vec![b'y'; 1024], Expect::Any)
                        .await
                        .expect("update");
                    updates += 1;
                }
                updates
            })
        })
        .collect();
    let mut updates = 0;
    for w in writers {
        updates += w.await.expect("writer");
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "steady updates of {keys} × 1 KiB for {seconds} s: {updates} updates ({:.0}/s), file {:.1} MB for {:.1} MB live, compacted to {} of {}",
        updates as f64 / seconds as f64,
        size as f64 / 1e6,
        (keys * 1024) as f64 / 1e6,
        store.compacted(),
        store.revision()
    );
    println!("{}", store.file_stats().expect("stats"));
    drop(store);
    let _ = std::fs::remove_file(&path);
}
