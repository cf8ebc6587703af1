//! The embedded store on redb.
//!
//! Why redb rather than SQLite (k3s's kine): it is pure Rust (no C build, a smaller
//! binary), ACID with one writer and snapshot readers — exactly the shape of one global
//! revision — and commits are durable (fsync) before `commit` returns.
//!
//! Tables (multi-version, as etcd's MVCC store; each revision's value is stored once):
//! * `versions`: `(key, revision)` → `kind (1) | create_revision (8 LE) | value`, one row
//!   per write of the key; a delete is a row of kind tombstone with no value. The current
//!   value of a key is its last row; its value at revision R is its last row at or below R.
//! * `changes`: revision → key, the order watches replay history in.
//! * `meta`: `revision`, `compacted` and `keys` (live keys) counters.
//!
//! Compaction to revision C drops, for every key written at or below C, all its rows at or
//! below C except the last (and that one too if it is a tombstone), and the `changes` up to
//! C: reads at C or later still see every key, reads and watches before C get
//! [`StoreError::Compacted`]. The store compacts itself (see [`History`]) so the file stays
//! near the live data under a steady update load.
//!
//! Writes go through one writer thread that applies every queued write in one transaction
//! and commits it with one fsync (group commit): with many clients a commit carries many
//! writes, with one client it carries one, so latency stays one fsync. Each write is
//! acknowledged after the commit that holds it is durable; a write whose precondition fails
//! fails alone, the others of its batch commit. Compaction runs on the same thread in small
//! chunks between batches, so it never holds writers up for long.
//!
//! redb has no change notification, so watchers are fed in memory right after each commit,
//! under a lock that also orders watcher registration: a watcher registered under that lock
//! replays history up to the last revision fanned out and then gets live events, with no
//! gap and no duplicate.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use tokio::sync::{mpsc, oneshot};

use crate::{Event, Expect, KeyValue, Range, Result, Revision, Store, StoreError, Watch};

const VERSIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("versions");
const CHANGES: TableDefinition<u64, &str> = TableDefinition::new("changes");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The tables of the first layout (current values plus a log holding copies of them),
/// migrated on open.
const OLD_KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const OLD_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");

/// How many undelivered events a watcher may hold before it is dropped (it then re-lists).
const WATCH_BUFFER: usize = 4096;
/// Most writes one commit takes: enough to amortise an fsync over many clients, few
/// enough that the first writer of a batch does not wait long for the last.
const MAX_BATCH: usize = 1024;
/// Most value bytes one commit takes, so a batch of large objects stays a bounded transaction.
const MAX_BATCH_BYTES: usize = 16 << 20;
/// redb's page cache (its default is 1 GiB, which the process's RSS would grow into as
/// the file grows). The hot set of a small cluster's objects fits in this.
const CACHE_BYTES: usize = 24 << 20;
/// Most revisions one compaction transaction drops, between two write batches.
const COMPACT_CHUNK: u64 = 2000;

/// How much history the store keeps before compacting it away by itself.
///
/// Revisions younger than `min_age` are always kept (a paged list or a watch resuming
/// after a short disconnect can use them); older ones are kept while they number fewer
/// than the live keys (at least `min_revisions`), so history costs at most about as much
/// as the live data; nothing older than `max_age` is kept (kube-apiserver compacts etcd
/// every 5 minutes).
#[derive(Debug, Clone, Copy)]
pub struct History {
    pub min_age: Duration,
    pub max_age: Duration,
    pub min_revisions: u64,
}

impl Default for History {
    fn default() -> Self {
        History {
            min_age: Duration::from_secs(1),
            max_age: Duration::from_secs(300),
            min_revisions: 1000,
        }
    }
}

impl History {
    /// Keep everything until [`Store::compact`] is called.
    pub fn manual() -> Self {
        History {
            min_age: Duration::MAX,
            max_age: Duration::MAX,
            min_revisions: u64::MAX,
        }
    }
}

#[derive(Default)]
struct Watchers {
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

const ROW_PUT: u8 = 1;
const ROW_TOMBSTONE: u8 = 2;

fn encode_put(create: Revision, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + value.len());
    out.push(ROW_PUT);
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// A `versions` row: `Some` for a put, `None` for a tombstone.
fn decode_row(key: &str, revision: Revision, raw: &[u8]) -> Result<Option<KeyValue>> {
    match raw.first() {
        Some(&ROW_TOMBSTONE) => Ok(None),
        Some(&ROW_PUT) if raw.len() >= 9 => Ok(Some(KeyValue {
            key: key.to_string(),
            value: Arc::from(&raw[9..]),
            create_revision: u64::from_le_bytes(raw[1..9].try_into().map_err(backend)?),
            mod_revision: revision,
        })),
        _ => Err(StoreError::Backend(format!(
            "row of {key:?} at revision {revision} is corrupt"
        ))),
    }
}

fn is_tombstone(raw: &[u8]) -> bool {
    raw.first() == Some(&ROW_TOMBSTONE)
}

/// The last row of `key` at or below `at`, as (revision, value or tombstone).
fn version_at(
    versions: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    key: &str,
    at: Revision,
) -> Result<Option<KeyValue>> {
    let mut rows = versions.range((key, 0)..=(key, at)).map_err(backend)?;
    match rows.next_back() {
        Some(row) => {
            let (k, raw) = row.map_err(backend)?;
            decode_row(key, k.value().1, raw.value())
        }
        None => Ok(None),
    }
}

fn meta_value(meta: &impl ReadableTable<&'static str, u64>, name: &str) -> Result<u64> {
    Ok(meta
        .get(name)
        .map_err(backend)?
        .map(|v| v.value())
        .unwrap_or(0))
}

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
    /// Open (creating if absent) the store file at `path`, compacting history by itself
    /// with the default [`History`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, History::default())
    }

    pub fn open_with(path: impl AsRef<Path>, history: History) -> Result<Self> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path.as_ref())
            .map_err(|e| {
                StoreError::Backend(format!("opening {}: {e}", path.as_ref().display()))
            })?;
        let (revision, compacted) = migrate(&db)?;
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
                move || Writer::new(&inner, history).run(queue)
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

/// Create the tables, moving a store of the first layout (`kv` + `log`) to the versioned
/// one: current values become rows at their mod revisions and history before that is
/// compacted (watchers re-list). Returns the revision and the compaction point.
fn migrate(db: &Database) -> Result<(Revision, Revision)> {
    let txn = db.begin_write().map_err(backend)?;
    let result = {
        let mut versions = txn.open_table(VERSIONS).map_err(backend)?;
        txn.open_table(CHANGES).map_err(backend)?;
        let mut meta = txn.open_table(META).map_err(backend)?;
        let revision = meta_value(&meta, "revision")?;
        let mut compacted = meta_value(&meta, "compacted")?;
        let old = txn
            .list_tables()
            .map_err(backend)?
            .any(|t| t.name() == OLD_KV.name());
        if old {
            let kv = txn.open_table(OLD_KV).map_err(backend)?;
            let mut keys = 0;
            for entry in kv.iter().map_err(backend)? {
                let (key, raw) = entry.map_err(backend)?;
                let raw = raw.value();
                if raw.len() < 16 {
                    return Err(StoreError::Backend(format!(
                        "record of {:?} is truncated",
                        key.value()
                    )));
                }
                let create = u64::from_le_bytes(raw[0..8].try_into().map_err(backend)?);
                let modified = u64::from_le_bytes(raw[8..16].try_into().map_err(backend)?);
                versions
                    .insert(
                        (key.value(), modified),
                        encode_put(create, &raw[16..]).as_slice(),
                    )
                    .map_err(backend)?;
                keys += 1;
            }
            drop(kv);
            txn.delete_table(OLD_KV).map_err(backend)?;
            txn.delete_table(OLD_LOG).map_err(backend)?;
            compacted = revision;
            meta.insert("compacted", compacted).map_err(backend)?;
            meta.insert("keys", keys).map_err(backend)?;
            tracing::info!(keys, revision, "store migrated to versioned rows");
        }
        (revision, compacted)
    };
    txn.commit().map_err(backend)?;
    Ok(result)
}

/// The writer thread's state.
struct Writer<'a> {
    inner: &'a Inner,
    history: History,
    /// (when, revision) about once a second, to find the revision of a given age.
    samples: VecDeque<(Instant, Revision)>,
    /// Where automatic compaction is heading (it proceeds by chunks).
    compact_target: Revision,
    last_tick: Instant,
}

impl<'a> Writer<'a> {
    fn new(inner: &'a Inner, history: History) -> Self {
        Writer {
            inner,
            history,
            samples: VecDeque::new(),
            compact_target: 0,
            last_tick: Instant::now(),
        }
    }

    /// Take every queued write (up to a bound), apply them in one transaction, commit (one
    /// fsync), then fan the events out and acknowledge each. A write is acknowledged only
    /// after the commit that holds it is durable.
    fn run(mut self, queue: std_mpsc::Receiver<Job>) {
        let mut held: Option<Job> = None;
        loop {
            let first = match held.take() {
                Some(job) => job,
                None => match queue.recv_timeout(Duration::from_secs(1)) {
                    Ok(job) => job,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {
                        self.tick();
                        continue;
                    }
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                },
            };
            let mut batch = match first {
                Job::Compact { revision, reply } => {
                    let _ = reply.send(self.compact_fully(revision));
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
            match self.inner.commit_batch(writes) {
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
            if self.last_tick.elapsed() >= Duration::from_secs(1) {
                self.tick();
            } else {
                self.compact_step();
            }
        }
    }

    /// About once a second: sample the revision, pick the automatic compaction target,
    /// and take a step towards it.
    fn tick(&mut self) {
        let now = Instant::now();
        self.last_tick = now;
        let revision = self.inner.revision.load(Ordering::SeqCst);
        self.samples.push_back((now, revision));
        // The newest revision at least `age` old (0 if none is that old yet).
        let revision_aged = |samples: &VecDeque<(Instant, Revision)>, age: Duration| {
            samples
                .iter()
                .rev()
                .find(|(t, _)| now.saturating_duration_since(*t) >= age)
                .map_or(0, |(_, r)| *r)
        };
        let by_age = revision_aged(&self.samples, self.history.max_age);
        let young = revision_aged(&self.samples, self.history.min_age);
        let keys = self.inner.live_keys().unwrap_or(0);
        let by_count = revision
            .saturating_sub(keys.max(self.history.min_revisions))
            .min(young);
        self.compact_target = self.compact_target.max(by_age).max(by_count);
        // Samples older than both ages are no longer needed (keep the newest such one).
        let horizon = self.history.max_age.max(self.history.min_age);
        while self.samples.len() > 1 && now.saturating_duration_since(self.samples[1].0) >= horizon
        {
            self.samples.pop_front();
        }
        self.compact_step();
    }

    fn compact_step(&mut self) {
        if let Err(e) = self.inner.compact_chunk(self.compact_target) {
            tracing::warn!(error = %e, "store compaction failed");
        }
    }

    fn compact_fully(&mut self, revision: Revision) -> Result<()> {
        let revision = revision.min(self.inner.revision.load(Ordering::SeqCst));
        loop {
            if self.inner.compact_chunk(revision)? >= revision {
                return Ok(());
            }
        }
    }
}

impl Inner {
    fn lock_watchers(&self) -> Result<std::sync::MutexGuard<'_, Watchers>> {
        self.watchers
            .lock()
            .map_err(|_| StoreError::Backend("store watcher lock poisoned".into()))
    }

    fn live_keys(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(backend)?;
        meta_value(&txn.open_table(META).map_err(backend)?, "keys")
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
            let mut versions = txn.open_table(VERSIONS).map_err(backend)?;
            let mut changes = txn.open_table(CHANGES).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            let mut keys = meta_value(&meta, "keys")?;
            for (key, value, expect) in writes {
                let current = version_at(&versions, key, u64::MAX)?;
                if let Err(e) = check(key, expect, current.as_ref(), value.is_none()) {
                    results.push(Err(e));
                    continue;
                }
                revision += 1;
                let event = match (value, current) {
                    (Some(value), current) => {
                        let create = match &current {
                            Some(c) => c.create_revision,
                            None => {
                                keys += 1;
                                revision
                            }
                        };
                        versions
                            .insert((key, revision), encode_put(create, &value).as_slice())
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
                        versions
                            .insert((key, revision), [ROW_TOMBSTONE].as_slice())
                            .map_err(backend)?;
                        keys = keys.saturating_sub(1);
                        Event::Delete { prev, revision }
                    }
                    (None, None) => {
                        return Err(StoreError::Backend(format!(
                            "delete of missing {key:?} passed its precondition"
                        )));
                    }
                };
                changes.insert(revision, key).map_err(backend)?;
                results.push(Ok(event));
            }
            meta.insert("revision", revision).map_err(backend)?;
            meta.insert("keys", keys).map_err(backend)?;
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

    fn register_watch(&self, prefix: &str, after: Revision) -> Result<mpsc::Receiver<Arc<Event>>> {
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
            let changes = txn.open_table(CHANGES).map_err(backend)?;
            let versions = txn.open_table(VERSIONS).map_err(backend)?;
            for entry in changes.range(after + 1..=published).map_err(backend)? {
                let (revision, key) = entry.map_err(backend)?;
                let (revision, key) = (revision.value(), key.value());
                if !key.starts_with(prefix) {
                    continue;
                }
                let event = change_event(&versions, key, revision)?;
                if sender.try_send(Arc::new(event)).is_err() {
                    // Too much history to replay: the client must re-list.
                    return Err(StoreError::Compacted {
                        requested: after,
                        compacted: revision,
                    });
                }
            }
        }
        watchers.list.push(Watcher {
            prefix: prefix.to_string(),
            // A range may have been read at a revision committed but not yet fanned out;
            // a watch from it must not see those events again.
            after: after.max(published),
            sender,
        });
        Ok(receiver)
    }

    /// Compact towards `target` by at most [`COMPACT_CHUNK`] revisions in one transaction;
    /// returns the compaction point reached.
    fn compact_chunk(&self, target: Revision) -> Result<Revision> {
        let from = self.lock_watchers()?.compacted;
        let target = target.min(self.revision.load(Ordering::SeqCst));
        if target <= from {
            return Ok(from);
        }
        let to = target.min(from + COMPACT_CHUNK);
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut versions = txn.open_table(VERSIONS).map_err(backend)?;
            let mut changes = txn.open_table(CHANGES).map_err(backend)?;
            let mut touched = BTreeSet::new();
            for entry in changes.range(from + 1..=to).map_err(backend)? {
                let (_, key) = entry.map_err(backend)?;
                touched.insert(key.value().to_string());
            }
            for key in &touched {
                // Every row of the key at or below `to` but the last; the last too if it
                // is a tombstone (the key does not exist at `to`).
                let mut drop = Vec::new();
                {
                    let mut rows = versions
                        .range((key.as_str(), 0)..=(key.as_str(), to))
                        .map_err(backend)?
                        .peekable();
                    while let Some(row) = rows.next() {
                        let (k, raw) = row.map_err(backend)?;
                        if rows.peek().is_some() || is_tombstone(raw.value()) {
                            drop.push(k.value().1);
                        }
                    }
                }
                for revision in drop {
                    versions.remove((key.as_str(), revision)).map_err(backend)?;
                }
            }
            changes.retain_in(..=to, |_, _| false).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            meta.insert("compacted", to).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        self.lock_watchers()?.compacted = to;
        Ok(to)
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let versions = txn.open_table(VERSIONS).map_err(backend)?;
        version_at(&versions, key, u64::MAX)
    }

    /// Keys under `prefix` from `start` (inclusive) as they were at revision `at` (0: now).
    fn range_at(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
        at: Revision,
    ) -> Result<Range> {
        let txn = self.db.begin_read().map_err(backend)?;
        // Revision and compaction point are read inside the snapshot, so a list and a watch
        // from its revision neither miss nor repeat a change.
        let meta = txn.open_table(META).map_err(backend)?;
        let current = meta_value(&meta, "revision")?;
        let compacted = meta_value(&meta, "compacted")?;
        let at = match at {
            0 => current,
            at if at > current => {
                return Err(StoreError::FutureRevision {
                    requested: at,
                    current,
                });
            }
            at if at < compacted => {
                return Err(StoreError::Compacted {
                    requested: at,
                    compacted,
                });
            }
            at => at,
        };
        let versions = txn.open_table(VERSIONS).map_err(backend)?;
        let start = match start {
            Some(s) if s > prefix => s,
            _ => prefix,
        };
        let mut kvs = Vec::new();
        let mut more = false;
        // The row of the key being scanned that is visible at `at`, if any.
        let mut visible: Option<(String, Revision, redb::AccessGuard<'_, &[u8]>)> = None;
        let flush = |visible: &mut Option<(String, Revision, redb::AccessGuard<'_, &[u8]>)>,
                     kvs: &mut Vec<KeyValue>|
         -> Result<bool> {
            if let Some((key, revision, raw)) = visible.take()
                && let Some(kv) = decode_row(&key, revision, raw.value())?
            {
                if limit > 0 && kvs.len() == limit {
                    return Ok(true);
                }
                kvs.push(kv);
            }
            Ok(false)
        };
        for row in versions.range((start, 0)..).map_err(backend)? {
            let (k, raw) = row.map_err(backend)?;
            let (key, revision) = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            if revision > at {
                continue;
            }
            if visible.as_ref().is_some_and(|(v, _, _)| v != key) && flush(&mut visible, &mut kvs)?
            {
                more = true;
                break;
            }
            visible = Some((key.to_string(), revision, raw));
        }
        if !more && flush(&mut visible, &mut kvs)? {
            more = true;
        }
        Ok(Range {
            kvs,
            revision: at,
            more,
        })
    }
}

/// The event of the write at `revision` to `key`, with the value before it.
fn change_event(
    versions: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    key: &str,
    revision: Revision,
) -> Result<Event> {
    let prev = match revision {
        0 => None,
        r => version_at(versions, key, r - 1)?,
    };
    match version_at(versions, key, revision)? {
        Some(kv) if kv.mod_revision == revision => Ok(Event::Put { kv, prev }),
        None => match prev {
            Some(prev) => Ok(Event::Delete { prev, revision }),
            None => Err(StoreError::Backend(format!(
                "delete of {key:?} at {revision} has no previous value"
            ))),
        },
        Some(_) => Err(StoreError::Backend(format!(
            "change {revision} of {key:?} has no row"
        ))),
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

    /// Page accounting of the file, for benchmarks: (allocated, leaf, branch) pages, stored,
    /// metadata and fragmented bytes, page size.
    pub fn file_stats(&self) -> Result<String> {
        let txn = self.0.inner.db.begin_write().map_err(backend)?;
        let s = txn.stats().map_err(backend)?;
        let out = format!(
            "allocated pages {} (leaf {}, branch {}), stored {:.1} MB, metadata {:.1} MB, fragmented {:.1} MB, page {} B",
            s.allocated_pages(),
            s.leaf_pages(),
            s.branch_pages(),
            s.stored_bytes() as f64 / 1e6,
            s.metadata_bytes() as f64 / 1e6,
            s.fragmented_bytes() as f64 / 1e6,
            s.page_size()
        );
        txn.abort().map_err(backend)?;
        Ok(out)
    }

    /// The compaction point: reads below it fail with [`StoreError::Compacted`].
    /// The current revision, read without waiting (the trait's answer, synchronously).
    pub fn revision(&self) -> Revision {
        self.0.inner.revision.load(Ordering::SeqCst)
    }

    pub fn compacted(&self) -> Revision {
        self.0
            .inner
            .watchers
            .lock()
            .map(|w| w.compacted)
            .unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl Store for SharedRedbStore {
    async fn revision(&self) -> Result<Revision> {
        Ok(SharedRedbStore::revision(self))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let (inner, key) = (self.0.inner.clone(), key.to_string());
        blocking(move || inner.get(&key)).await
    }

    async fn range_at(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
        revision: Revision,
    ) -> Result<Range> {
        let (inner, prefix, start) = (
            self.0.inner.clone(),
            prefix.to_string(),
            start.map(str::to_string),
        );
        blocking(move || inner.range_at(&prefix, start.as_deref(), limit, revision)).await
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
        let receiver = blocking(move || inner.register_watch(&prefix, after)).await?;
        // Fan-out happens under the watchers lock right after the revision is published:
        // once the lock is taken, every revision up to the published one is in the channel.
        let inner = self.0.inner.clone();
        let progress = Box::new(move || match inner.watchers.lock() {
            Ok(_fanned_out) => inner.revision.load(Ordering::SeqCst),
            Err(poisoned) => {
                drop(poisoned);
                inner.revision.load(Ordering::SeqCst)
            }
        });
        Ok(Watch::new(receiver, progress))
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
impl SharedRedbStore {
    /// How many version rows the file holds.
    fn rows(&self) -> usize {
        use redb::ReadableTableMetadata;
        let txn = self.0.inner.db.begin_read().unwrap();
        txn.open_table(VERSIONS).unwrap().len().unwrap() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(range: &Range) -> Vec<(&str, &[u8])> {
        range
            .kvs
            .iter()
            .map(|kv| (kv.key.as_str(), &*kv.value))
            .collect()
    }

    /// a, b, c created (1–3), b updated (4), a deleted (5), d created (6).
    async fn history(s: &SharedRedbStore) {
        for k in ["/p/a", "/p/b", "/p/c"] {
            s.put(k, b"1".to_vec(), Expect::Absent).await.unwrap();
        }
        s.put("/p/b", b"2".to_vec(), Expect::Revision(2))
            .await
            .unwrap();
        s.delete("/p/a", Expect::Present).await.unwrap();
        s.put("/p/d", b"1".to_vec(), Expect::Absent).await.unwrap();
    }

    #[tokio::test]
    async fn range_at_reads_pages_as_they_were_at_a_past_revision() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open_with(dir.path().join("db"), History::manual())
            .unwrap()
            .shared();
        history(&s).await;
        let at3 = s.range_at("/p/", None, 0, 3).await.unwrap();
        assert_eq!(
            (keys(&at3), at3.revision),
            (vec![("/p/a", &b"1"[..]), ("/p/b", b"1"), ("/p/c", b"1")], 3)
        );
        let at4 = s.range_at("/p/", None, 0, 4).await.unwrap();
        assert_eq!(keys(&at4)[1], ("/p/b", &b"2"[..]));
        assert_eq!(at4.kvs[1].create_revision, 2);
        assert_eq!(at4.kvs[1].mod_revision, 4);
        let now = s.range_at("/p/", None, 0, 0).await.unwrap();
        assert_eq!(
            (keys(&now), now.revision),
            (vec![("/p/b", &b"2"[..]), ("/p/c", b"1"), ("/p/d", b"1")], 6)
        );
        // Paging at revision 3 while later writes exist: the pages join up to the snapshot.
        let first = s.range_at("/p/", None, 2, 3).await.unwrap();
        assert_eq!(keys(&first), vec![("/p/a", &b"1"[..]), ("/p/b", b"1")]);
        assert!(first.more);
        let second = s.range_at("/p/", Some("/p/b\0"), 2, 3).await.unwrap();
        assert_eq!(keys(&second), vec![("/p/c", &b"1"[..])]);
        assert!(!second.more);
        // A deleted key is not `more`.
        let at5 = s.range_at("/p/", None, 2, 5).await.unwrap();
        assert_eq!(keys(&at5), vec![("/p/b", &b"2"[..]), ("/p/c", b"1")]);
        assert!(!at5.more);
        assert!(matches!(
            s.range_at("/p/", None, 0, 7).await,
            Err(StoreError::FutureRevision {
                requested: 7,
                current: 6
            })
        ));
        assert_eq!(s.get("/p/a").await.unwrap(), None);
        assert_eq!(&*s.get("/p/b").await.unwrap().unwrap().value, b"2");
    }

    #[tokio::test]
    async fn compaction_keeps_what_reads_at_the_compaction_point_need() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open_with(dir.path().join("db"), History::manual())
            .unwrap()
            .shared();
        history(&s).await;
        assert_eq!(s.rows(), 6);
        s.compact(4).await.unwrap();
        assert_eq!(s.compacted(), 4);
        // b's first row is gone; a's is kept (a exists at 4), and so is its tombstone.
        assert_eq!(s.rows(), 5);
        assert!(matches!(
            s.range_at("/p/", None, 0, 3).await,
            Err(StoreError::Compacted {
                requested: 3,
                compacted: 4
            })
        ));
        let at4 = s.range_at("/p/", None, 0, 4).await.unwrap();
        assert_eq!(
            keys(&at4),
            vec![("/p/a", &b"1"[..]), ("/p/b", b"2"), ("/p/c", b"1")]
        );
        // A watch from the compaction point replays the later changes with their prevs.
        let mut w = s.watch("/p/", 4).await.unwrap();
        assert!(
            matches!(&*w.next().await.unwrap(), Event::Delete { revision: 5, prev } if prev.key == "/p/a" && prev.mod_revision == 1)
        );
        assert!(
            matches!(&*w.next().await.unwrap(), Event::Put { kv, prev: None } if kv.key == "/p/d")
        );
        s.compact(6).await.unwrap();
        // a is gone entirely: its row and its tombstone.
        assert_eq!(s.rows(), 3);
        let now = s.range("/p/", None, 0).await.unwrap();
        assert_eq!(
            keys(&now),
            vec![("/p/b", &b"2"[..]), ("/p/c", b"1"), ("/p/d", b"1")]
        );
        // Recreating a deleted, compacted key starts a new life.
        let a = s.put("/p/a", b"3".to_vec(), Expect::Absent).await.unwrap();
        assert_eq!((a.create_revision, a.mod_revision), (7, 7));
    }

    #[tokio::test]
    async fn compacts_by_itself_to_a_bounded_history() {
        let dir = tempfile::tempdir().unwrap();
        let history = History {
            min_age: Duration::ZERO,
            max_age: Duration::from_secs(3600),
            min_revisions: 10,
        };
        let s = RedbStore::open_with(dir.path().join("db"), history)
            .unwrap()
            .shared();
        for i in 0..100u8 {
            s.put("/k", vec![i], Expect::Any).await.unwrap();
        }
        // The writer samples once a second and compacts after that.
        for _ in 0..40 {
            if s.compacted() >= 90 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(s.compacted(), 90);
        assert_eq!(s.rows(), 11);
        assert_eq!(&*s.get("/k").await.unwrap().unwrap().value, &[99u8]);
        assert!(s.watch("/k", 90).await.is_ok());
        assert!(matches!(
            s.watch("/k", 89).await,
            Err(StoreError::Compacted { .. })
        ));
    }

    #[tokio::test]
    async fn a_store_of_the_first_layout_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut kv = txn.open_table(OLD_KV).unwrap();
                let mut raw = Vec::new();
                raw.extend_from_slice(&2u64.to_le_bytes());
                raw.extend_from_slice(&5u64.to_le_bytes());
                raw.extend_from_slice(b"{}");
                kv.insert("/registry/pods/default/a", raw.as_slice())
                    .unwrap();
                let mut log = txn.open_table(OLD_LOG).unwrap();
                log.insert(5u64, b"old".as_slice()).unwrap();
                let mut meta = txn.open_table(META).unwrap();
                meta.insert("revision", 5).unwrap();
            }
            txn.commit().unwrap();
        }
        let s = RedbStore::open(&path).unwrap().shared();
        assert_eq!((s.revision(), s.compacted()), (5, 5));
        let a = s.get("/registry/pods/default/a").await.unwrap().unwrap();
        assert_eq!(
            (a.create_revision, a.mod_revision, &*a.value),
            (2, 5, &b"{}"[..])
        );
        let b = s
            .put("/registry/pods/default/b", b"{}".to_vec(), Expect::Absent)
            .await
            .unwrap();
        assert_eq!(b.mod_revision, 6);
        drop(s);
        let s = RedbStore::open(&path).unwrap().shared();
        assert_eq!(s.range("/registry/", None, 0).await.unwrap().kvs.len(), 2);
    }

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
