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
//! Writes go through one writer thread that applies every queued write in one transaction
//! and commits it with one fsync (group commit): with many clients a commit carries many
//! writes, with one client it carries one, so latency stays one fsync. Each write is
//! acknowledged after the commit that holds it is durable; a write whose precondition fails
//! fails alone, the others of its batch commit.
//!
//! redb has no change notification, so watchers are fed in memory right after each commit,
//! under a lock that also orders watcher registration: a watcher registered under that lock
//! replays history from the log table up to the last revision fanned out and then gets live
//! events, with no gap and no duplicate.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::{Event, Expect, KeyValue, Range, Result, Revision, Store, StoreError, Watch};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// How many undelivered events a watcher may hold before it is dropped (it then re-lists).
const WATCH_BUFFER: usize = 4096;

#[derive(Default)]
struct Watchers {
    next_id: u64,
    list: Vec<Watcher>,
    compacted: Revision,
}

struct Watcher {
    prefix: String,
    /// Only events after this revision are the watcher's (earlier ones it replayed or listed).
    after: Revision,
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

/// Most writes one commit takes: enough to amortise an fsync over many clients, few
/// enough that the first writer of a batch does not wait long for the last.
const MAX_BATCH: usize = 1024;
/// Most value bytes one commit takes, so a batch of large objects stays a bounded transaction.
const MAX_BATCH_BYTES: usize = 16 << 20;
/// redb's page cache (its default is 1 GiB, which the process's RSS would grow into as
/// the file grows). The hot set of a small cluster's objects fits in this.
const CACHE_BYTES: usize = 24 << 20;

/// Work for the writer thread.
enum Job {
    Write {
        key: String,
        value: Option<Vec<u8>>,
        expect: Expect,
        reply: oneshot::Sender<Result<Event>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// What readers and the writer thread share.
struct Inner {
    db: Database,
    /// The last revision fanned out to watchers (every revision up to it is durable).
    revision: AtomicU64,
    /// Orders fan-out against watcher registration; holds the live watchers.
    watchers: Mutex<Watchers>,
}

/// The embedded store: readers run on tokio's blocking pool against redb snapshots; all
/// writes go through one writer thread that commits them in batches (group commit), so
/// concurrent writers share one fsync.
pub struct RedbStore {
    inner: Arc<Inner>,
    jobs: Option<std_mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and exit; joining it
        // releases the file, so the same path can be opened again at once.
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl RedbStore {
    /// Open (creating if absent) the store file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path.as_ref())
            .map_err(|e| {
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
        let inner = Arc::new(Inner {
            db,
            revision: AtomicU64::new(revision),
            watchers: Mutex::new(Watchers {
                compacted,
                ..Default::default()
            }),
        });
        let (jobs, queue) = std_mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn({
                let inner = inner.clone();
                move || inner.run_writer(queue)
            })
            .map_err(backend)?;
        Ok(RedbStore {
            inner,
            jobs: Some(jobs),
            writer: Some(writer),
        })
    }

    fn submit(&self, job: Job) -> Result<()> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| StoreError::Backend("the store is shut down".into()))
    }
}

impl Inner {
    fn lock_watchers(&self) -> Result<std::sync::MutexGuard<'_, Watchers>> {
        self.watchers
            .lock()
            .map_err(|_| StoreError::Backend("store watcher lock poisoned".into()))
    }

    /// The writer thread: take every queued write (up to a bound), apply them in one
    /// transaction, commit (one fsync), then fan the events out and acknowledge each.
    /// A write is acknowledged only after the commit that holds it is durable.
    fn run_writer(&self, queue: std_mpsc::Receiver<Job>) {
        let mut held: Option<Job> = None;
        loop {
            let first = match held.take() {
                Some(job) => job,
                None => match queue.recv() {
                    Ok(job) => job,
                    Err(_) => return, // every handle is gone
                },
            };
            let mut batch = match first {
                Job::Compact { revision, reply } => {
                    let _ = reply.send(self.compact_now(revision));
                    continue;
                }
                Job::Write {
                    key,
                    value,
                    expect,
                    reply,
                } => {
                    let mut bytes = value.as_ref().map_or(0, Vec::len);
                    let mut batch = vec![(key, value, expect, reply)];
                    while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                        match queue.try_recv() {
                            Ok(Job::Write {
                                key,
                                value,
                                expect,
                                reply,
                            }) => {
                                bytes += value.as_ref().map_or(0, Vec::len);
                                batch.push((key, value, expect, reply));
                            }
                            Ok(compact) => {
                                held = Some(compact);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    batch
                }
            };
            let writes: Vec<_> = batch
                .iter_mut()
                .map(|(key, value, expect, _)| (key.as_str(), value.take(), *expect))
                .collect();
            match self.commit_batch(writes) {
                Ok(results) => {
                    for ((_, _, _, reply), result) in batch.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "store commit failed");
                    for (_, _, _, reply) in batch {
                        let _ = reply.send(Err(StoreError::Backend(e.to_string())));
                    }
                }
            }
        }
    }

    /// Apply `writes` in one transaction and commit it. Each write's precondition is
    /// checked against the state the earlier writes of the batch left, and a failed one
    /// fails alone. `Err` means nothing was committed.
    fn commit_batch(
        &self,
        writes: Vec<(&str, Option<Vec<u8>>, Expect)>,
    ) -> Result<Vec<Result<Event>>> {
        let txn = self.db.begin_write().map_err(backend)?;
        let mut revision = self.revision.load(Ordering::SeqCst);
        let mut results = Vec::with_capacity(writes.len());
        {
            let mut kv = txn.open_table(KV).map_err(backend)?;
            let mut log = txn.open_table(LOG).map_err(backend)?;
            for (key, value, expect) in writes {
                let current = match kv.get(key).map_err(backend)? {
                    Some(raw) => Some(decode_kv(key, raw.value())?),
                    None => None,
                };
                if let Err(e) = check(key, expect, current.as_ref(), value.is_none()) {
                    results.push(Err(e));
                    continue;
                }
                revision += 1;
                let event = match (value, current) {
                    (Some(value), current) => {
                        let create = current
                            .as_ref()
                            .map(|c| c.create_revision)
                            .unwrap_or(revision);
                        kv.insert(key, encode_kv(create, revision, &value).as_slice())
                            .map_err(backend)?;
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
                    (None, Some(prev)) => {
                        kv.remove(key).map_err(backend)?;
                        Event::Delete { prev, revision }
                    }
                    (None, None) => {
                        return Err(StoreError::Backend(format!(
                            "delete of missing {key:?} passed its precondition"
                        )));
                    }
                };
                log.insert(revision, encode_event(&event).as_slice())
                    .map_err(backend)?;
                results.push(Ok(event));
            }
            let mut meta = txn.open_table(META).map_err(backend)?;
            meta.insert("revision", revision).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;

        let mut watchers = self.lock_watchers()?;
        self.revision.store(revision, Ordering::SeqCst);
        for event in results.iter().filter_map(|r| r.as_ref().ok()) {
            let event = Arc::new(event.clone());
            watchers.list.retain(|w| {
                if event.revision() <= w.after || !event.key().starts_with(&w.prefix) {
                    return !w.sender.is_closed();
                }
                // A watcher that cannot keep up is dropped rather than buffered without bound.
                w.sender.try_send(event.clone()).is_ok()
            });
        }
        Ok(results)
    }

    fn register_watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        let mut watchers = self.lock_watchers()?;
        // Every revision up to `published` has been fanned out already; later ones will be,
        // to the watchers registered now. Replaying history up to it leaves no gap.
        let published = self.revision.load(Ordering::SeqCst);
        if after < watchers.compacted && after < published {
            return Err(StoreError::Compacted {
                requested: after,
                compacted: watchers.compacted,
            });
        }
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        if after < published {
            let txn = self.db.begin_read().map_err(backend)?;
            let log = txn.open_table(LOG).map_err(backend)?;
            for entry in log.range(after + 1..=published).map_err(backend)? {
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
            // A range may have been read at a revision committed but not yet fanned out;
            // a watch from it must not see those events again.
            after: after.max(published),
            sender,
        });
        Ok(Watch { receiver })
    }

    /// Runs on the writer thread, between batches.
    fn compact_now(&self, revision: Revision) -> Result<()> {
        let compacted = self.lock_watchers()?.compacted;
        if revision <= compacted {
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
        self.lock_watchers()?.compacted = revision;
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let kv = txn.open_table(KV).map_err(backend)?;
        match kv.get(key).map_err(backend)? {
            Some(raw) => Ok(Some(decode_kv(key, raw.value())?)),
            None => Ok(None),
        }
    }

    fn range(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Range> {
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

/// Check a write's precondition against the key's current value.
fn check(key: &str, expect: Expect, current: Option<&KeyValue>, delete: bool) -> Result<()> {
    match (expect, current) {
        (Expect::Absent, Some(_)) => Err(StoreError::AlreadyExists(key.to_string())),
        (Expect::Present | Expect::Revision(_), None) => Err(StoreError::NotFound(key.to_string())),
        (Expect::Revision(expected), Some(cur)) if cur.mod_revision != expected => {
            Err(StoreError::Conflict {
                key: key.to_string(),
                expected,
                current: cur.mod_revision,
            })
        }
        (_, None) if delete => Err(StoreError::NotFound(key.to_string())),
        _ => Ok(()),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
}

/// The store behind an `Arc`, as a [`Store`].
#[derive(Clone)]
pub struct SharedRedbStore(Arc<RedbStore>);

impl RedbStore {
    /// Wrap for use as a [`Store`].
    pub fn shared(self) -> SharedRedbStore {
        SharedRedbStore(Arc::new(self))
    }
}

impl SharedRedbStore {
    async fn write(&self, key: &str, value: Option<Vec<u8>>, expect: Expect) -> Result<Event> {
        let (reply, answer) = oneshot::channel();
        self.0.submit(Job::Write {
            key: key.to_string(),
            value,
            expect,
            reply,
        })?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the store writer stopped".into()))?
    }
}

#[async_trait::async_trait]
impl Store for SharedRedbStore {
    fn revision(&self) -> Revision {
        self.0.inner.revision.load(Ordering::SeqCst)
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let (inner, key) = (self.0.inner.clone(), key.to_string());
        blocking(move || inner.get(&key)).await
    }

    async fn range(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Range> {
        let (inner, prefix, start_after) = (
            self.0.inner.clone(),
            prefix.to_string(),
            start_after.map(str::to_string),
        );
        blocking(move || inner.range(&prefix, start_after.as_deref(), limit)).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<KeyValue> {
        match self.write(key, Some(value), expect).await? {
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
        match self.write(key, None, expect).await? {
            Event::Delete { prev, revision } => Ok((prev, revision)),
            Event::Put { .. } => Err(StoreError::Backend("delete produced a put".into())),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        let (inner, prefix) = (self.0.inner.clone(), prefix.to_string());
        blocking(move || inner.register_watch(&prefix, after)).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.0.submit(Job::Compact { revision, reply })?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the store writer stopped".into()))?
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_share_commits_and_each_gets_its_own_answer() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        let mut w = s.watch("/c/", 0).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..16 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut revisions = Vec::new();
                for i in 0..50 {
                    let key = format!("/c/{t}/{i}");
                    let kv = s.put(&key, vec![t as u8], Expect::Absent).await.unwrap();
                    // A second create of the same key in flight fails alone.
                    assert!(matches!(
                        s.put(&key, vec![0], Expect::Absent).await,
                        Err(StoreError::AlreadyExists(_))
                    ));
                    revisions.push(kv.mod_revision);
                }
                revisions
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        all.dedup();
        assert_eq!(
            all,
            (1..=800).collect::<Vec<_>>(),
            "every write has its own revision"
        );
        assert_eq!(s.revision(), 800);
        let range = s.range("/c/", None, 0).await.unwrap();
        assert_eq!((range.kvs.len(), range.revision), (800, 800));
        // Watchers see every write once, in revision order.
        for expected in 1..=800 {
            assert_eq!(w.next().await.unwrap().revision(), expected);
        }
    }

    #[tokio::test]
    async fn acknowledged_writes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(&dir);
            let writes: Vec<_> = (0..64)
                .map(|i| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        s.put(&format!("/d/{i:02}"), vec![i], Expect::Absent).await
                    })
                })
                .collect();
            for w in writes {
                w.await.unwrap().unwrap();
            }
        }
        let s = open(&dir);
        assert_eq!(s.revision(), 64);
        let range = s.range("/d/", None, 0).await.unwrap();
        assert_eq!(range.kvs.len(), 64);
        assert!(
            range
                .kvs
                .iter()
                .all(|kv| kv.key == format!("/d/{:02}", kv.value[0]))
        );
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
