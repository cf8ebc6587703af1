//! The embedded store on redb.
//!
//! Why redb rather than SQLite (k3s's kine): it is pure Rust (no C build, a smaller
//! binary), ACID with one writer and snapshot readers — exactly the shape of one global
//! revision — and commits are durable (fsync) before `commit` returns.
//!
//! Tables:
//! * `kv`: key → `create_revision (8 bytes LE) | mod_revision (8) | value`
//! * `log`: revision → one change (`kind (1) | key_len (4) | key | create_rev (8) | mod_rev (8) | value`),
//!   the history watches replay from, trimmed by `compact`
//! * `meta`: `revision` and `compacted` counters
//!
//! redb has no change notification, so watchers are fed in memory right after each commit,
//! under the same lock that orders commits: a watcher registered under that lock sees
//! history from the log table and then live events, with no gap and no duplicate.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::mpsc;

use crate::{Event, Expect, KeyValue, Range, Result, Revision, Store, StoreError, Watch};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// How many undelivered events a watcher may hold before it is dropped (it then re-lists).
const WATCH_BUFFER: usize = 4096;

/// The embedded store. Cheap to share: clone the `Arc`.
pub struct RedbStore {
    db: Arc<Database>,
    revision: AtomicU64,
    /// Serializes writers and watcher registration; holds the live watchers.
    writer: Arc<Mutex<Watchers>>,
}

#[derive(Default)]
struct Watchers {
    next_id: u64,
    list: Vec<Watcher>,
    compacted: Revision,
}

struct Watcher {
    prefix: String,
    sender: mpsc::Sender<Arc<Event>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn encode_kv(create: Revision, modified: Revision, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(&modified.to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn decode_kv(key: &str, raw: &[u8]) -> Result<KeyValue> {
    if raw.len() < 16 {
        return Err(StoreError::Backend(format!(
            "record of {key:?} is truncated ({} bytes)",
            raw.len()
        )));
    }
    let create = u64::from_le_bytes(raw[0..8].try_into().map_err(backend)?);
    let modified = u64::from_le_bytes(raw[8..16].try_into().map_err(backend)?);
    Ok(KeyValue {
        key: key.to_string(),
        value: Arc::from(&raw[16..]),
        create_revision: create,
        mod_revision: modified,
    })
}

const LOG_PUT: u8 = 1;
const LOG_DELETE: u8 = 2;

const LOG_PUT_WITH_PREV: u8 = 3;

/// `kind (1) | key_len (4) | key | record_len (4) | record | [prev record]`
fn encode_event(event: &Event) -> Vec<u8> {
    let (kind, kv, prev) = match event {
        Event::Put { kv, prev: None } => (LOG_PUT, kv, None),
        Event::Put {
            kv,
            prev: Some(prev),
        } => (LOG_PUT_WITH_PREV, kv, Some(prev)),
        Event::Delete { prev, .. } => (LOG_DELETE, prev, None),
    };
    let record = encode_kv(kv.create_revision, kv.mod_revision, &kv.value);
    let mut out = Vec::with_capacity(9 + kv.key.len() + record.len());
    out.push(kind);
    out.extend_from_slice(&(kv.key.len() as u32).to_le_bytes());
    out.extend_from_slice(kv.key.as_bytes());
    out.extend_from_slice(&(record.len() as u32).to_le_bytes());
    out.extend_from_slice(&record);
    if let Some(prev) = prev {
        out.extend_from_slice(&encode_kv(
            prev.create_revision,
            prev.mod_revision,
            &prev.value,
        ));
    }
    out
}

fn decode_event(revision: Revision, raw: &[u8]) -> Result<Event> {
    let bad = || StoreError::Backend(format!("log entry {revision} is corrupt"));
    let kind = *raw.first().ok_or_else(bad)?;
    let key_len =
        u32::from_le_bytes(raw.get(1..5).ok_or_else(bad)?.try_into().map_err(backend)?) as usize;
    let key = std::str::from_utf8(raw.get(5..5 + key_len).ok_or_else(bad)?).map_err(backend)?;
    let rest = raw.get(5 + key_len..).ok_or_else(bad)?;
    let record_len = u32::from_le_bytes(
        rest.get(0..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(backend)?,
    ) as usize;
    let kv = decode_kv(key, rest.get(4..4 + record_len).ok_or_else(bad)?)?;
    let tail = rest.get(4 + record_len..).ok_or_else(bad)?;
    match kind {
        LOG_PUT => Ok(Event::Put { kv, prev: None }),
        LOG_PUT_WITH_PREV => Ok(Event::Put {
            kv,
            prev: Some(decode_kv(key, tail)?),
        }),
        LOG_DELETE => Ok(Event::Delete { prev: kv, revision }),
        _ => Err(bad()),
    }
}

impl RedbStore {
    /// Open (creating if absent) the store file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let db = Database::create(path.as_ref()).map_err(|e| {
            StoreError::Backend(format!("opening {}: {e}", path.as_ref().display()))
        })?;
        let txn = db.begin_write().map_err(backend)?;
        let (revision, compacted) = {
            txn.open_table(KV).map_err(backend)?;
            txn.open_table(LOG).map_err(backend)?;
            let meta = txn.open_table(META).map_err(backend)?;
            let revision = meta
                .get("revision")
                .map_err(backend)?
                .map(|v| v.value())
                .unwrap_or(0);
            let compacted = meta
                .get("compacted")
                .map_err(backend)?
                .map(|v| v.value())
                .unwrap_or(0);
            (revision, compacted)
        };
        txn.commit().map_err(backend)?;
        Ok(RedbStore {
            db: Arc::new(db),
            revision: AtomicU64::new(revision),
            writer: Arc::new(Mutex::new(Watchers {
                compacted,
                ..Default::default()
            })),
        })
    }

    /// One write transaction: check `expect`, apply, append to the log, bump the revision,
    /// commit durably, then fan the event out. Runs on a blocking thread.
    fn write(&self, key: &str, value: Option<Vec<u8>>, expect: Expect) -> Result<Event> {
        let mut watchers = self
            .writer
            .lock()
            .map_err(|_| StoreError::Backend("store writer lock poisoned".into()))?;
        let txn = self.db.begin_write().map_err(backend)?;
        let event = {
            let mut kv = txn.open_table(KV).map_err(backend)?;
            let current = match kv.get(key).map_err(backend)? {
                Some(raw) => Some(decode_kv(key, raw.value())?),
                None => None,
            };
            match (expect, &current) {
                (Expect::Absent, Some(_)) => {
                    return Err(StoreError::AlreadyExists(key.to_string()));
                }
                (Expect::Present | Expect::Revision(_), None) => {
                    return Err(StoreError::NotFound(key.to_string()));
                }
                (Expect::Revision(expected), Some(cur)) if cur.mod_revision != expected => {
                    return Err(StoreError::Conflict {
                        key: key.to_string(),
                        expected,
                        current: cur.mod_revision,
                    });
                }
                _ => {}
            }
            let revision = self.revision.load(Ordering::SeqCst) + 1;
            let event = match value {
                Some(value) => {
                    let create = current
                        .as_ref()
                        .map(|c| c.create_revision)
                        .unwrap_or(revision);
                    let raw = encode_kv(create, revision, &value);
                    kv.insert(key, raw.as_slice()).map_err(backend)?;
                    Event::Put {
                        kv: KeyValue {
                            key: key.to_string(),
                            value: Arc::from(value),
                            create_revision: create,
                            mod_revision: revision,
                        },
                        prev: current,
                    }
                }
                None => {
                    let Some(prev) = current else {
                        return Err(StoreError::NotFound(key.to_string()));
                    };
                    kv.remove(key).map_err(backend)?;
                    Event::Delete { prev, revision }
                }
            };
            let mut log = txn.open_table(LOG).map_err(backend)?;
            log.insert(revision, encode_event(&event).as_slice())
                .map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            meta.insert("revision", revision).map_err(backend)?;
            event
        };
        txn.commit().map_err(backend)?;
        self.revision.store(event.revision(), Ordering::SeqCst);

        let event = Arc::new(event);
        watchers.list.retain(|w| {
            if !event.key().starts_with(&w.prefix) {
                return !w.sender.is_closed();
            }
            // A watcher that cannot keep up is dropped rather than buffered without bound.
            w.sender.try_send(event.clone()).is_ok()
        });
        Ok(Arc::try_unwrap(event).unwrap_or_else(|e| (*e).clone()))
    }

    fn register_watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        let mut watchers = self
            .writer
            .lock()
            .map_err(|_| StoreError::Backend("store writer lock poisoned".into()))?;
        let current = self.revision.load(Ordering::SeqCst);
        if after < watchers.compacted && after < current {
            return Err(StoreError::Compacted {
                requested: after,
                compacted: watchers.compacted,
            });
        }
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        if after < current {
            let txn = self.db.begin_read().map_err(backend)?;
            let log = txn.open_table(LOG).map_err(backend)?;
            for entry in log.range(after + 1..).map_err(backend)? {
                let (revision, raw) = entry.map_err(backend)?;
                let event = decode_event(revision.value(), raw.value())?;
                if event.key().starts_with(prefix) && sender.try_send(Arc::new(event)).is_err() {
                    // Too much history to replay: the client must re-list.
                    return Err(StoreError::Compacted {
                        requested: after,
                        compacted: revision.value(),
                    });
                }
            }
        }
        watchers.next_id += 1;
        watchers.list.push(Watcher {
            prefix: prefix.to_string(),
            sender,
        });
        Ok(Watch { receiver })
    }

    fn do_compact(&self, revision: Revision) -> Result<()> {
        let mut watchers = self
            .writer
            .lock()
            .map_err(|_| StoreError::Backend("store writer lock poisoned".into()))?;
        if revision <= watchers.compacted {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut log = txn.open_table(LOG).map_err(backend)?;
            log.retain_in(..=revision, |_, _| false).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            meta.insert("compacted", revision).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        watchers.compacted = revision;
        Ok(())
    }

    fn do_get(&self, key: &str) -> Result<Option<KeyValue>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let kv = txn.open_table(KV).map_err(backend)?;
        match kv.get(key).map_err(backend)? {
            Some(raw) => Ok(Some(decode_kv(key, raw.value())?)),
            None => Ok(None),
        }
    }

    fn do_range(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Range> {
        let txn = self.db.begin_read().map_err(backend)?;
        // Read the revision inside the snapshot, so a list and a watch from its revision
        // neither miss nor repeat a change.
        let meta = txn.open_table(META).map_err(backend)?;
        let revision = meta
            .get("revision")
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0);
        let kv = txn.open_table(KV).map_err(backend)?;
        let mut kvs = Vec::new();
        let mut more = false;
        let start = start_after.unwrap_or(prefix);
        for entry in kv.range(start..).map_err(backend)? {
            let (key, raw) = entry.map_err(backend)?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            if Some(key) == start_after {
                continue;
            }
            if limit > 0 && kvs.len() == limit {
                more = true;
                break;
            }
            kvs.push(decode_kv(key, raw.value())?);
        }
        Ok(Range {
            kvs,
            revision,
            more,
        })
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
}

/// The store behind an `Arc`, so its blocking work can run on tokio's blocking pool.
#[derive(Clone)]
pub struct SharedRedbStore(Arc<RedbStore>);

impl RedbStore {
    /// Wrap for use as a [`Store`].
    pub fn shared(self) -> SharedRedbStore {
        SharedRedbStore(Arc::new(self))
    }
}

#[async_trait::async_trait]
impl Store for SharedRedbStore {
    fn revision(&self) -> Revision {
        self.0.revision.load(Ordering::SeqCst)
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let (store, key) = (self.0.clone(), key.to_string());
        blocking(move || store.do_get(&key)).await
    }

    async fn range(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Range> {
        let (store, prefix, start_after) = (
            self.0.clone(),
            prefix.to_string(),
            start_after.map(str::to_string),
        );
        blocking(move || store.do_range(&prefix, start_after.as_deref(), limit)).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<KeyValue> {
        let (store, key) = (self.0.clone(), key.to_string());
        match blocking(move || store.write(&key, Some(value), expect)).await? {
            Event::Put { kv, .. } => Ok(kv),
            Event::Delete { .. } => Err(StoreError::Backend("put produced a delete".into())),
        }
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<(KeyValue, Revision)> {
        if expect == Expect::Absent {
            return Err(StoreError::Backend(
                "delete with Expect::Absent makes no sense".into(),
            ));
        }
        let (store, key) = (self.0.clone(), key.to_string());
        match blocking(move || store.write(&key, None, expect)).await? {
            Event::Delete { prev, revision } => Ok((prev, revision)),
            Event::Put { .. } => Err(StoreError::Backend("delete produced a put".into())),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        let (store, prefix) = (self.0.clone(), prefix.to_string());
        blocking(move || store.register_watch(&prefix, after)).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let store = self.0.clone();
        blocking(move || store.do_compact(revision)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &tempfile::TempDir) -> SharedRedbStore {
        RedbStore::open(dir.path().join("db")).unwrap().shared()
    }

    #[tokio::test]
    async fn create_update_delete_with_preconditions() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        let a = s.put("/a", b"1".to_vec(), Expect::Absent).await.unwrap();
        assert_eq!((a.create_revision, a.mod_revision), (1, 1));
        assert!(matches!(
            s.put("/a", b"x".to_vec(), Expect::Absent).await,
            Err(StoreError::AlreadyExists(_))
        ));
        assert!(matches!(
            s.put("/a", b"2".to_vec(), Expect::Revision(7)).await,
            Err(StoreError::Conflict {
                expected: 7,
                current: 1,
                ..
            })
        ));
        let a2 = s
            .put("/a", b"2".to_vec(), Expect::Revision(1))
            .await
            .unwrap();
        assert_eq!((a2.create_revision, a2.mod_revision), (1, 2));
        assert!(matches!(
            s.delete("/b", Expect::Present).await,
            Err(StoreError::NotFound(_))
        ));
        let (prev, rev) = s.delete("/a", Expect::Revision(2)).await.unwrap();
        assert_eq!((&*prev.value, rev), (&b"2"[..], 3));
        assert_eq!(s.get("/a").await.unwrap(), None);
        assert_eq!(s.revision(), 3);
    }

    #[tokio::test]
    async fn range_pages_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        for k in ["/p/c", "/p/a", "/q/z", "/p/b"] {
            s.put(k, k.as_bytes().to_vec(), Expect::Absent)
                .await
                .unwrap();
        }
        let page = s.range("/p/", None, 2).await.unwrap();
        let keys: Vec<_> = page.kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            (keys, page.more, page.revision),
            (vec!["/p/a", "/p/b"], true, 4)
        );
        let rest = s.range("/p/", Some("/p/b"), 2).await.unwrap();
        assert_eq!(rest.kvs.len(), 1);
        assert!(!rest.more);
    }

    #[tokio::test]
    async fn watch_replays_history_then_follows_live_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        s.put("/p/a", b"1".to_vec(), Expect::Absent).await.unwrap();
        s.put("/other", b"x".to_vec(), Expect::Absent)
            .await
            .unwrap();
        s.put("/p/a", b"2".to_vec(), Expect::Present).await.unwrap();
        let mut w = s.watch("/p/", 1).await.unwrap();
        s.delete("/p/a", Expect::Present).await.unwrap();
        let first = w.next().await.unwrap();
        assert!(
            matches!(&*first, Event::Put { kv, prev: Some(p) } if kv.mod_revision == 3 && &*kv.value == b"2" && &*p.value == b"1")
        );
        let second = w.next().await.unwrap();
        assert!(matches!(&*second, Event::Delete { revision: 4, prev } if &*prev.value == b"2"));
    }

    #[tokio::test]
    async fn survives_reopen_and_watch_from_old_revision_after_compaction_fails() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(&dir);
            for i in 0..5u8 {
                s.put("/k", vec![i], Expect::Any).await.unwrap();
            }
        }
        let s = open(&dir);
        assert_eq!(s.revision(), 5);
        assert_eq!(&*s.get("/k").await.unwrap().unwrap().value, &[4u8]);
        let mut w = s.watch("/k", 3).await.unwrap();
        assert_eq!(w.next().await.unwrap().revision(), 4);
        s.compact(4).await.unwrap();
        assert!(matches!(
            s.watch("/k", 2).await,
            Err(StoreError::Compacted { .. })
        ));
        assert!(s.watch("/k", 5).await.is_ok());
    }
}
