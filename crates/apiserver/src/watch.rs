//! `?watch=true`: a chunked stream of newline-delimited watch events.
//!
//! ```text
//!  resourceVersion ""/"0" ──► list now ──► ADDED × n ──┐
//!  resourceVersion N ───────────────────────────────────┼──► store watch after R ──► filter ──► ADDED/MODIFIED/DELETED
//!  sendInitialEvents=true ─► ADDED × n ─► BOOKMARK(initial-events-end)┘                  (selectors decide membership)
//! ```
//! An object that stops matching a selector is sent as DELETED, one that starts as ADDED.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use podium_api::resource::ResourceInfo;
use podium_api::status::ApiError;
use podium_api::table;
use podium_store::{Event, StoreError};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::cache::{CachedEvent, Subscription, WatchCache};
use crate::error::ApiResult;
use crate::handlers::{Call, selectors};
use crate::negotiate;
use crate::registry::{decode, parse_revision, prefix, set_resource_version};

/// Without `timeoutSeconds`, a watch ends after this long, as upstream's 30–60 min.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
const BOOKMARK_EVERY: Duration = Duration::from_secs(15);

struct Encoder {
    resource: &'static ResourceInfo,
    /// Length-prefixed protobuf frames instead of JSON lines.
    protobuf: bool,
    table: bool,
    include: table::IncludeObject,
    sent_columns: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, object: &Value) -> Bytes {
        let object = if self.table {
            let meta = json!({"resourceVersion": object.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))});
            let t = table::render(
                self.resource,
                std::slice::from_ref(object),
                meta,
                self.include,
                jiff::Timestamp::now(),
                !self.sent_columns,
            );
            self.sent_columns = true;
            t
        } else {
            object.clone()
        };
        self.encode(kind, object)
    }

    /// One event in the stream's encoding.
    fn encode(&self, kind: &str, object: Value) -> Bytes {
        if self.protobuf {
            match negotiate::watch_frame(kind, &object) {
                Ok(frame) => return Bytes::from(frame),
                Err(e) => {
                    // Our own object failed to encode: a bug. Tell the client in-band.
                    tracing::warn!(error = %e, "protobuf watch encoding failed");
                    let status = ApiError::internal(format!(
                        "cannot encode a {} as protobuf: {e}",
                        self.resource.kind
                    ))
                    .to_status();
                    return Bytes::from(
                        negotiate::watch_frame("ERROR", &status).unwrap_or_default(),
                    );
                }
            }
        }
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self, revision: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": metadata});
        self.encode("BOOKMARK", object)
    }

    fn error(&self, e: &ApiError) -> Bytes {
        self.encode("ERROR", e.to_status())
    }
}

pub async fn serve(
    call: Call,
    resource: &'static ResourceInfo,
    namespace: Option<String>,
) -> ApiResult<Response> {
    let (labels, fields) = selectors(&call, resource)?;
    let timeout =
        match call.param("timeoutSeconds") {
            Some(t) => Duration::from_secs(t.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("timeoutSeconds: Invalid value: {t:?}"))
            })?),
            None => DEFAULT_TIMEOUT,
        };
    let bookmarks = call.param("allowWatchBookmarks") == Some("true");
    let send_initial = call.param("sendInitialEvents") == Some("true");
    let raw_revision = call.param("resourceVersion").unwrap_or("");
    let requested = match raw_revision {
        "" | "0" => None,
        rv => Some(parse_revision(rv)?),
    };
    let registry = call.server.registry.clone();
    let prefix = prefix(resource, namespace.as_deref());
    let table = call.wants_table();
    let protobuf = !table
        && negotiate::response_format(&call.headers, &resource.api_version(), Some(resource.kind))?
            == negotiate::Format::Protobuf;
    let mut encoder = Encoder {
        resource,
        protobuf,
        table,
        include: call.include_object(),
        sent_columns: false,
    };

    // From the watch cache unless the revision is older than its window.
    let cache = registry.caches.of(resource);
    let (from, consistent_with) = match (requested, send_initial) {
        (Some(rv), false) => (Some(rv), 0),
        (Some(rv), true) => (None, rv),
        // No resourceVersion: the initial state is a consistent read, as upstream's quorum
        // read; "0" is any state the cache holds.
        (None, _) if raw_revision.is_empty() => (
            None,
            registry
                .store
                .revision()
                .await
                .map_err(crate::error::store_failure)?,
        ),
        (None, _) => (None, 0),
    };
    if let Some(subscription) = cache
        .subscribe(
            namespace.as_deref(),
            &labels,
            &fields,
            from,
            consistent_with,
        )
        .await?
    {
        let watched = CachedWatch {
            cache,
            namespace,
            labels,
            fields,
            encoder,
            send_initial,
            bookmarks,
            timeout,
        };
        return Ok(stream_response(protobuf, watched.run(subscription)));
    }

    // Initial state: synthetic ADDED events when no (or a zero) resourceVersion was given.
    let mut initial = Vec::new();
    let start = match requested {
        Some(rv) if !send_initial => rv,
        _ => {
            let listed = registry
                .list(resource, namespace.as_deref(), &labels, &fields, 0, None)
                .await?;
            initial = listed.items;
            listed.revision
        }
    };
    let watch = registry.store.watch(&prefix, start).await;

    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let mut watch = match watch {
            Ok(w) => w,
            Err(StoreError::Compacted {
                requested,
                compacted,
            }) => {
                let e = ApiError::gone(format!(
                    "too old resource version: {requested} ({compacted})"
                ));
                let _ = sender.send(Ok(encoder.error(&e))).await;
                return;
            }
            Err(e) => {
                let _ = sender
                    .send(Ok(encoder.error(&ApiError::internal(e.to_string()))))
                    .await;
                return;
            }
        };
        for object in &initial {
            if sender
                .send(Ok(encoder.event("ADDED", object)))
                .await
                .is_err()
            {
                return;
            }
        }
        let mut last_revision = start;
        if send_initial
            && sender
                .send(Ok(encoder.bookmark(start, true)))
                .await
                .is_err()
        {
            return;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = sender.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if sender.send(Ok(encoder.bookmark(last_revision, false))).await.is_err() {
                        return;
                    }
                }
                event = watch.next() => {
                    // The store dropped us (too slow) or shut down: end; clients re-watch.
                    let Some(event) = event else { return };
                    last_revision = event.revision();
                    let line = match &*event {
                        Event::Put { kv, prev } => {
                            let Ok(object) = decode(resource, kv) else { continue };
                            let now = labels.matches_object(&object) && fields.matches(&object);
                            let before = prev.as_ref().and_then(|p| decode(resource, p).ok()).map(|o| labels.matches_object(&o) && fields.matches(&o));
                            match (before, now) {
                                (None | Some(false), true) => encoder.event("ADDED", &object),
                                (Some(true), true) => encoder.event("MODIFIED", &object),
                                (Some(true), false) => encoder.event("DELETED", &object),
                                (_, false) => continue,
                            }
                        }
                        Event::Delete { prev, revision } => {
                            let Ok(mut object) = decode(resource, prev) else { continue };
                            if !(labels.matches_object(&object) && fields.matches(&object)) {
                                continue;
                            }
                            set_resource_version(&mut object, *revision);
                            encoder.event("DELETED", &object)
                        }
                    };
                    if sender.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });

    Ok(stream_response(protobuf, receiver))
}

fn stream_response(
    protobuf: bool,
    receiver: mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> Response {
    let mut response = Response::new(Body::from_stream(ReceiverStream::new(receiver)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if protobuf {
            "application/vnd.kubernetes.protobuf;stream=watch"
        } else {
            "application/json"
        }),
    );
    response
}

/// A watch served from the watch cache.
struct CachedWatch {
    cache: std::sync::Arc<WatchCache>,
    namespace: Option<String>,
    labels: podium_api::selector::LabelSelector,
    fields: podium_api::selector::FieldSelector,
    encoder: Encoder,
    send_initial: bool,
    bookmarks: bool,
    timeout: Duration,
}

impl CachedWatch {
    /// The event as this watcher sees it (selectors decide membership), or None. Shares
    /// the cache's one encoding when the watcher sees the event as it happened.
    fn line(&mut self, event: &CachedEvent) -> Option<Bytes> {
        if !self
            .cache
            .in_scope(self.namespace.as_deref(), &event.object)
        {
            return None;
        }
        let kind = match event.membership(&self.labels, &self.fields) {
            (false, true) => "ADDED",
            (true, true) => "MODIFIED",
            (true, false) => "DELETED",
            (false, false) => return None,
        };
        if kind == event.natural_type() && !self.encoder.table {
            let shared = if self.encoder.protobuf {
                event.protobuf_frame()
            } else {
                Some(event.json_line())
            };
            if let Some(bytes) = shared {
                return Some(bytes);
            }
        }
        Some(self.encoder.event(kind, &event.object))
    }

    fn run(
        mut self,
        mut subscription: Subscription,
    ) -> mpsc::Receiver<Result<Bytes, std::io::Error>> {
        let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        tokio::spawn(async move {
            for object in std::mem::take(&mut subscription.initial) {
                if sender
                    .send(Ok(self.encoder.event("ADDED", &object)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            for event in std::mem::take(&mut subscription.replay) {
                if let Some(line) = self.line(&event) {
                    if sender.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
            if self.send_initial
                && sender
                    .send(Ok(self.encoder.bookmark(subscription.revision, true)))
                    .await
                    .is_err()
            {
                return;
            }
            let deadline = tokio::time::Instant::now() + self.timeout;
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + BOOKMARK_EVERY,
                BOOKMARK_EVERY,
            );
            let mut last_sent = subscription.revision;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => return,
                    _ = sender.closed() => return,
                    _ = ticker.tick(), if self.bookmarks => {
                        // The cache's progress: a quiet resource's watcher still learns
                        // a current revision to resume from.
                        let revision = (*subscription.progress.borrow()).max(last_sent);
                        if sender.send(Ok(self.encoder.bookmark(revision, false))).await.is_err() {
                            return;
                        }
                    }
                    event = subscription.live.recv() => match event {
                        Ok(event) => {
                            last_sent = event.revision;
                            if let Some(line) = self.line(&event) {
                                if sender.send(Ok(line)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                            let e = ApiError::gone(format!(
                                "too old resource version: {last_sent}: the watch fell {missed} events behind and was ended; watch again from the last resourceVersion received"
                            ));
                            let _ = sender.send(Ok(self.encoder.error(&e))).await;
                            return;
                        }
                        // The cache re-listed: end, the client resumes from its last revision.
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
        receiver
    }
}
