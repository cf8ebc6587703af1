//! The store on an etcd cluster (etcd v3 API, as kube-apiserver uses it).
//!
//! Each [`Store`] operation is one etcd request: preconditions are transactions comparing
//! `create_revision` (absent), `mod_revision` (a given revision) or `version` (present);
//! reads at a revision are etcd's; watches are etcd watches from `after + 1` with previous
//! values, and progress is etcd's progress request. etcd's revision is the store's
//! revision, so resourceVersions are etcd's, exactly as upstream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};
use tokio::sync::{mpsc, watch};

use crate::{Event, Expect, KeyValue, Range, Result, Revision, Store, StoreError, Watch};

/// Events buffered per watch before the etcd stream is read no further (back-pressure:
/// etcd holds the rest).
const WATCH_BUFFER: usize = 4096;

/// A store on etcd. Cloning shares the connection.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
}

fn backend(e: etcd_client::Error) -> StoreError {
    StoreError::Backend(format!("etcd: {e}"))
}

fn is_compacted(e: &etcd_client::Error) -> bool {
    e.to_string()
        .contains("required revision has been compacted")
}

fn is_future(e: &etcd_client::Error) -> bool {
    e.to_string()
        .contains("required revision is a future revision")
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map(|h| h.revision().max(0) as Revision).unwrap_or(0)
}

fn key_value(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = kv
        .key_str()
        .map_err(|_| StoreError::Backend("etcd returned a key that is not UTF-8".into()))?;
    Ok(KeyValue {
        key: key.to_string(),
        value: Arc::from(kv.value()),
        create_revision: kv.create_revision().max(0) as Revision,
        mod_revision: kv.mod_revision().max(0) as Revision,
    })
}

/// The first key after every key that starts with `prefix` (etcd's `GetPrefixRangeEnd`).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl EtcdStore {
    /// Connect to the etcd cluster at `endpoints` (`http://127.0.0.1:2379`, comma-separated
    /// for several members), and check that it answers.
    pub async fn connect(endpoints: &str) -> Result<EtcdStore> {
        let list: Vec<&str> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if list.is_empty() {
            return Err(StoreError::Backend("no etcd endpoint given".into()));
        }
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(std::time::Duration::from_secs(5))
            .with_timeout(std::time::Duration::from_secs(30));
        let client = Client::connect(&list, Some(options))
            .await
            .map_err(|e| StoreError::Backend(format!("connecting to etcd at {endpoints}: {e}")))?;
        let store = EtcdStore { client };
        store.revision().await.map_err(|e| {
            StoreError::Backend(format!("etcd at {endpoints} does not answer: {e}"))
        })?;
        Ok(store)
    }

    /// Compact forever, every `interval`, to the revision seen one interval before (so a
    /// watcher or paged LIST has at least an interval of history), as kube-apiserver's
    /// compactor does.
    pub async fn compact_periodically(self, interval: std::time::Duration) {
        let mut previous: Option<Revision> = None;
        loop {
            tokio::time::sleep(interval).await;
            if let Some(revision) = previous {
                if let Err(e) = self.compact(revision).await {
                    tracing::warn!(error = %e, "compacting etcd");
                }
            }
            previous = self.revision().await.ok();
        }
    }

    fn client(&self) -> Client {
        self.client.clone()
    }

    /// Why a compare failed: read the key and say it as the other backend says it.
    async fn failed(&self, key: &str, expect: Expect) -> StoreError {
        let current = match self.get(key).await {
            Ok(current) => current,
            Err(e) => return e,
        };
        match (expect, current) {
            (Expect::Absent, _) => StoreError::AlreadyExists(key.to_string()),
            (Expect::Revision(expected), Some(kv)) => StoreError::Conflict {
                key: key.to_string(),
                expected,
                current: kv.mod_revision,
            },
            (_, _) => StoreError::NotFound(key.to_string()),
        }
    }

    fn compare(key: &str, expect: Expect) -> Option<Compare> {
        match expect {
            Expect::Absent => Some(Compare::create_revision(key, CompareOp::Equal, 0)),
            Expect::Revision(r) => Some(Compare::mod_revision(key, CompareOp::Equal, r as i64)),
            Expect::Present => Some(Compare::version(key, CompareOp::Greater, 0)),
            Expect::Any => None,
        }
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn revision(&self) -> Result<Revision> {
        // A linearizable read of nothing: its header carries the cluster's revision.
        let response = self
            .client()
            .get("\0", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(backend)?;
        Ok(revision_of(response.header()))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let response = self.client().get(key, None).await.map_err(backend)?;
        response.kvs().first().map(key_value).transpose()
    }

    async fn range_at(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
        revision: Revision,
    ) -> Result<Range> {
        let mut options = GetOptions::new().with_range(prefix_end(prefix));
        if limit > 0 {
            options = options.with_limit(limit as i64);
        }
        if revision > 0 {
            options = options.with_revision(revision as i64);
        }
        let from = match start {
            Some(s) if s > prefix => s,
            _ => prefix,
        };
        match self.client().get(from, Some(options)).await {
            Ok(response) => Ok(Range {
                kvs: response
                    .kvs()
                    .iter()
                    .map(key_value)
                    .collect::<Result<_>>()?,
                revision: if revision > 0 {
                    revision
                } else {
                    revision_of(response.header())
                },
                more: response.more(),
            }),
            Err(e) if is_compacted(&e) => Err(StoreError::Compacted {
                requested: revision,
                compacted: 0,
            }),
            Err(e) if is_future(&e) => Err(StoreError::FutureRevision {
                requested: revision,
                current: self.revision().await?,
            }),
            Err(e) => Err(backend(e)),
        }
    }

    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<KeyValue> {
        let put = TxnOp::put(key, value.clone(), Some(PutOptions::new().with_prev_key()));
        let txn = match Self::compare(key, expect) {
            Some(compare) => Txn::new().when([compare]).and_then([put]),
            None => Txn::new().and_then([put]),
        };
        let response = self.client().txn(txn).await.map_err(backend)?;
        if !response.succeeded() {
            return Err(self.failed(key, expect).await);
        }
        let revision = revision_of(response.header());
        let created = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Put(put) => Some(put.prev_key().map(|p| p.create_revision())),
                _ => None,
            })
            .flatten()
            .map(|r| r.max(0) as Revision)
            .unwrap_or(revision);
        Ok(KeyValue {
            key: key.to_string(),
            value: Arc::from(value),
            create_revision: created,
            mod_revision: revision,
        })
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<(KeyValue, Revision)> {
        if expect == Expect::Absent {
            return Err(StoreError::Backend(
                "delete with Expect::Absent makes no sense".into(),
            ));
        }
        // A delete of a missing key is NotFound for every precondition, as the other backend.
        let compare = Self::compare(key, expect)
            .unwrap_or_else(|| Compare::version(key, CompareOp::Greater, 0));
        let delete = TxnOp::delete(key, Some(etcd_client::DeleteOptions::new().with_prev_key()));
        let txn = Txn::new().when([compare]).and_then([delete]);
        let response = self.client().txn(txn).await.map_err(backend)?;
        if !response.succeeded() {
            return Err(self.failed(key, expect).await);
        }
        let revision = revision_of(response.header());
        let prev = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().map(key_value),
                _ => None,
            })
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        Ok((prev, revision))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        // etcd cancels a watch from a compacted revision; say so before watching, as the
        // other backend does.
        if after > 0 {
            self.range_at(prefix, None, 1, after).await?;
        }
        let options = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_start_revision(after as i64 + 1)
            .with_prev_key()
            .with_progress_notify();
        let stream = self
            .client()
            .watch(prefix, Some(options))
            .await
            .map_err(backend)?;
        let (mut requests, mut responses) = stream.split();
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        let (wanted, mut wanted_rx) = mpsc::channel::<()>(1);
        let progress = Arc::new(AtomicU64::new(after));
        let (notices, notices_rx) = watch::channel(after);
        let seen = progress.clone();
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    asked = wanted_rx.recv() => {
                        if asked.is_none() || requests.request_progress().await.is_err() {
                            return;
                        }
                    }
                    message = futures_next(&mut responses) => {
                        let response = match message {
                            Some(Ok(response)) => response,
                            Some(Err(e)) => {
                                tracing::warn!(prefix, error = %e, "etcd watch failed; ending it");
                                return;
                            }
                            None => return,
                        };
                        if response.canceled() {
                            // Compacted past us, or the server dropped the watch: end it,
                            // and the reader lists again.
                            return;
                        }
                        let events = response.events();
                        for event in events {
                            let Some(kv) = event.kv() else { continue };
                            let Ok(kv) = key_value(kv) else { continue };
                            let prev = event.prev_kv().and_then(|p| key_value(p).ok());
                            let revision = kv.mod_revision;
                            let converted = match event.event_type() {
                                EventType::Put => Event::Put { kv, prev },
                                EventType::Delete => Event::Delete {
                                    prev: prev.unwrap_or(KeyValue { value: Arc::from(&b""[..]), ..kv }),
                                    revision,
                                },
                            };
                            if sender.send(Arc::new(converted)).await.is_err() {
                                return;
                            }
                            seen.fetch_max(revision, Ordering::SeqCst);
                        }
                        // A response without events is a progress notification: every change
                        // up to its revision has been sent.
                        if events.is_empty() && !response.created() {
                            seen.fetch_max(revision_of(response.header()), Ordering::SeqCst);
                        }
                        notices.send_replace(seen.load(Ordering::SeqCst));
                    }
                }
            }
        });
        let progress_fn = Box::new(move || {
            // Ask for a fresher answer; it comes as a notice on the watch stream.
            let _ = wanted.try_send(());
            progress.load(Ordering::SeqCst)
        });
        Ok(Watch::new(receiver, progress_fn).with_progress_notices(notices_rx))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let current = self.revision().await?;
        let target = revision.min(current);
        if target == 0 {
            return Ok(());
        }
        match self.client().compact(target as i64, None).await {
            Ok(_) => Ok(()),
            Err(e) if is_compacted(&e) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}

/// The next item of the watch response stream.
async fn futures_next(
    responses: &mut etcd_client::WatchResponseStream,
) -> Option<std::result::Result<etcd_client::WatchResponse, etcd_client::Error>> {
    use tokio_stream::StreamExt;
    responses.next().await
}
