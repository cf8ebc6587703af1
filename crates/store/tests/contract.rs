//! The store contract, run against both backends: the embedded redb store and a real etcd
//! (Debian's `etcd-server`, one started per test on free loopback ports). Revisions are
//! compared relative to where each test starts: etcd's first write is revision 2.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use podium_store::{EtcdStore, Event, Expect, RedbStore, Store, StoreError};

/// An etcd server for one test; killed and its data removed on drop.
struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
    endpoint: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn etcd() -> (Etcd, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args(["--name", "contract", "--data-dir"])
        .arg(dir.path())
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("contract={peer_url}")])
        .args(["--heartbeat-interval", "10", "--election-timeout", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd is not installed: `apt-get install etcd-server` (ci/test installs it)");
    let server = Etcd {
        child,
        _dir: dir,
        endpoint: client_url,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match EtcdStore::connect(&server.endpoint).await {
            Ok(store) => return (server, Arc::new(store)),
            Err(e) if Instant::now() > deadline => panic!("etcd did not start in 20 s: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn next(watch: &mut podium_store::Watch) -> Arc<Event> {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("an event in 5 s")
        .expect("the watch went on")
}

fn redb() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("db")).unwrap().shared();
    (dir, Arc::new(store))
}

async fn preconditions(store: Arc<dyn Store>) {
    let created = store
        .put("/t/a", b"1".to_vec(), Expect::Absent)
        .await
        .unwrap();
    assert_eq!(created.create_revision, created.mod_revision);
    assert!(matches!(
        store.put("/t/a", b"2".to_vec(), Expect::Absent).await,
        Err(StoreError::AlreadyExists(_))
    ));
    match store
        .put(
            "/t/a",
            b"2".to_vec(),
            Expect::Revision(created.mod_revision + 100),
        )
        .await
    {
        Err(StoreError::Conflict {
            expected, current, ..
        }) => {
            assert_eq!(
                (expected, current),
                (created.mod_revision + 100, created.mod_revision)
            )
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let updated = store
        .put(
            "/t/a",
            b"2".to_vec(),
            Expect::Revision(created.mod_revision),
        )
        .await
        .unwrap();
    assert_eq!(updated.create_revision, created.create_revision);
    assert!(updated.mod_revision > created.mod_revision);
    assert!(matches!(
        store
            .put("/t/missing", b"x".to_vec(), Expect::Present)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .put("/t/missing", b"x".to_vec(), Expect::Revision(1))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .delete("/t/a", Expect::Revision(created.mod_revision))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store.delete("/t/missing", Expect::Any).await,
        Err(StoreError::NotFound(_))
    ));
    let (prev, revision) = store.delete("/t/a", Expect::Present).await.unwrap();
    assert_eq!(&*prev.value, b"2");
    assert!(revision > updated.mod_revision);
    assert_eq!(store.get("/t/a").await.unwrap(), None);
    assert_eq!(store.revision().await.unwrap(), revision);
}

async fn ranges(store: Arc<dyn Store>) {
    for key in ["a", "b", "c", "d", "e"] {
        store
            .put(
                &format!("/r/{key}"),
                key.as_bytes().to_vec(),
                Expect::Absent,
            )
            .await
            .unwrap();
    }
    store
        .put("/rx", b"outside".to_vec(), Expect::Absent)
        .await
        .unwrap();
    let all = store.range("/r/", None, 0).await.unwrap();
    let keys: Vec<&str> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/a", "/r/b", "/r/c", "/r/d", "/r/e"]);
    assert!(!all.more);
    let page = store.range("/r/", None, 2).await.unwrap();
    assert_eq!(page.kvs.len(), 2);
    assert!(page.more);
    let next = store.range("/r/", Some("/r/b"), 2).await.unwrap();
    let keys: Vec<&str> = next.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/c", "/r/d"]);

    let before = store.revision().await.unwrap();
    store
        .put("/r/a", b"changed".to_vec(), Expect::Any)
        .await
        .unwrap();
    store.delete("/r/b", Expect::Any).await.unwrap();
    let then = store.range_at("/r/", None, 0, before).await.unwrap();
    assert_eq!(then.revision, before);
    assert_eq!(&*then.kvs[0].value, b"a");
    assert_eq!(then.kvs.len(), 5);
    let now = store.range_at("/r/", None, 0, 0).await.unwrap();
    assert_eq!(&*now.kvs[0].value, b"changed");
    assert_eq!(now.kvs.len(), 4);
    assert!(matches!(
        store.range_at("/r/", None, 0, now.revision + 10).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

async fn watches(store: Arc<dyn Store>) {
    let start = store.revision().await.unwrap();
    let a = store
        .put("/w/a", b"1".to_vec(), Expect::Absent)
        .await
        .unwrap();
    store
        .put("/other/x", b"x".to_vec(), Expect::Absent)
        .await
        .unwrap();
    let a2 = store
        .put("/w/a", b"2".to_vec(), Expect::Revision(a.mod_revision))
        .await
        .unwrap();
    // Replayed from the start, in order, with previous values.
    let mut watch = store.watch("/w/", start).await.unwrap();
    match &*next(&mut watch).await {
        Event::Put { kv, prev } => {
            assert_eq!((kv.mod_revision, prev.is_none()), (a.mod_revision, true))
        }
        other => panic!("{other:?}"),
    }
    match &*next(&mut watch).await {
        Event::Put { kv, prev } => {
            assert_eq!(kv.mod_revision, a2.mod_revision);
            assert_eq!(&*prev.as_ref().unwrap().value, b"1");
        }
        other => panic!("{other:?}"),
    }
    // Then live.
    let (prev, deleted_at) = store.delete("/w/a", Expect::Any).await.unwrap();
    match &*next(&mut watch).await {
        Event::Delete { prev: p, revision } => {
            assert_eq!((*revision, &*p.value), (deleted_at, &*prev.value));
        }
        other => panic!("{other:?}"),
    }
    // Progress: a change elsewhere is reported as reached without an event here.
    let elsewhere = store
        .put("/other/y", b"y".to_vec(), Expect::Absent)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while watch.progress() < elsewhere.mod_revision {
        assert!(
            Instant::now() < deadline,
            "progress stuck at {}",
            watch.progress()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(watch.try_next().is_err());
}

async fn compaction(store: Arc<dyn Store>) {
    let first = store
        .put("/c/a", b"1".to_vec(), Expect::Absent)
        .await
        .unwrap();
    store.put("/c/a", b"2".to_vec(), Expect::Any).await.unwrap();
    let last = store.put("/c/a", b"3".to_vec(), Expect::Any).await.unwrap();
    store.compact(last.mod_revision).await.unwrap();
    // Compacting again, or past the current revision, is fine.
    store.compact(last.mod_revision).await.unwrap();
    store.compact(last.mod_revision + 100).await.unwrap();
    assert!(matches!(
        store.range_at("/c/", None, 0, first.mod_revision).await,
        Err(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        store.watch("/c/", first.mod_revision).await,
        Err(StoreError::Compacted { .. })
    ));
    let at = store
        .range_at("/c/", None, 0, last.mod_revision)
        .await
        .unwrap();
    assert_eq!(&*at.kvs[0].value, b"3");
    let mut watch = store.watch("/c/", last.mod_revision).await.unwrap();
    let next = store.put("/c/a", b"4".to_vec(), Expect::Any).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.revision(), next.mod_revision);
}

macro_rules! on_both_backends {
    ($($name:ident),*) => {
        mod on_redb {
            $(#[tokio::test]
            async fn $name() {
                let (_dir, store) = super::redb();
                super::$name(store).await;
            })*
        }
        mod on_etcd {
            $(#[tokio::test]
            async fn $name() {
                let (_etcd, store) = super::etcd().await;
                super::$name(store).await;
            })*
        }
    };
}

on_both_backends!(preconditions, ranges, watches, compaction);
