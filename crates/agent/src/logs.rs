//! The agent's HTTP endpoint (kubelet's :10250 role): `GET /containerLogs/{namespace}/{pod}/{container}`
//! streams a container's log file, which the API server proxies `pods/<name>/log` to; and
//! `GET /healthz`. Workers tell the [`LogRegistry`] where each attempt's log is.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde::Deserialize;

/// How often a follower looks for appended bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
const CHUNK: usize = 32 * 1024;

/// Where one container's logs are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerLogs {
    /// The log file of each attempt the agent knows of.
    pub files: BTreeMap<u32, PathBuf>,
    /// The attempt now running, if one is.
    pub running: Option<u32>,
}

#[derive(Debug, Clone, Default)]
struct PodLogs {
    uid: String,
    containers: BTreeMap<String, ContainerLogs>,
}

/// Which pod: its namespace and name (what a request names) and its UID (which
/// incarnation: a pod recreated under the same name has another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PodKey {
    pub fn new(namespace: &str, name: &str, uid: &str) -> Self {
        PodKey {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn names(&self) -> (String, String) {
        (self.namespace.clone(), self.name.clone())
    }
}

/// The pods on this node and their containers' log files, keyed by namespace and name.
#[derive(Debug, Default)]
pub struct LogRegistry {
    pods: Mutex<HashMap<(String, String), PodLogs>>,
}

/// What a log request finds.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    NoPod,
    NoContainer,
    Found(ContainerLogs),
}

impl LogRegistry {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<(String, String), PodLogs>) -> R) -> Option<R> {
        self.pods.lock().ok().map(|mut pods| f(&mut pods))
    }

    /// A pod arrives on the node with these containers (a newer pod of the same name replaces it).
    pub fn register(&self, pod: &PodKey, containers: &[String]) {
        self.with(|pods| {
            let entry = pods.entry(pod.names()).or_default();
            if entry.uid != pod.uid {
                *entry = PodLogs {
                    uid: pod.uid.clone(),
                    containers: BTreeMap::new(),
                };
            }
            for container in containers {
                entry.containers.entry(container.clone()).or_default();
            }
        });
    }

    /// An attempt's log file is known; `running` says whether the attempt still runs.
    pub fn attempt(
        &self,
        pod: &PodKey,
        container: &str,
        attempt: u32,
        path: PathBuf,
        running: bool,
    ) {
        self.with(|pods| {
            if let Some(entry) = pods.get_mut(&pod.names()).filter(|p| p.uid == pod.uid) {
                let logs = entry.containers.entry(container.into()).or_default();
                logs.files.insert(attempt, path);
                if running {
                    logs.running = Some(attempt);
                } else if logs.running == Some(attempt) {
                    logs.running = None;
                }
            }
        });
    }

    /// The attempt ended: followers stop once they have sent everything it wrote.
    pub fn ended(&self, pod: &PodKey, container: &str, attempt: u32) {
        self.with(|pods| {
            let logs = pods
                .get_mut(&pod.names())
                .filter(|p| p.uid == pod.uid)
                .and_then(|p| p.containers.get_mut(container));
            if let Some(logs) = logs.filter(|l| l.running == Some(attempt)) {
                logs.running = None;
            }
        });
    }

    /// The pod left the node.
    pub fn remove(&self, pod: &PodKey) {
        self.with(|pods| {
            if pods.get(&pod.names()).is_some_and(|p| p.uid == pod.uid) {
                pods.remove(&pod.names());
            }
        });
    }

    pub fn lookup(&self, namespace: &str, name: &str, container: &str) -> Lookup {
        self.with(|pods| match pods.get(&(namespace.into(), name.into())) {
            None => Lookup::NoPod,
            Some(pod) => pod
                .containers
                .get(container)
                .cloned()
                .map_or(Lookup::NoContainer, Lookup::Found),
        })
        .unwrap_or(Lookup::NoPod)
    }

    fn still_running(&self, namespace: &str, name: &str, container: &str, attempt: u32) -> bool {
        matches!(self.lookup(namespace, name, container), Lookup::Found(logs) if logs.running == Some(attempt))
    }
}

/// The byte offset where the last `lines` lines of a file start, read backwards in chunks
/// so a large log is not read whole. A final line without a newline counts as a line.
pub fn tail_offset<R: Read + Seek>(reader: &mut R, lines: u64) -> std::io::Result<u64> {
    let len = reader.seek(SeekFrom::End(0))?;
    if lines == 0 {
        return Ok(len);
    }
    let mut end = len;
    let mut seen = 0u64;
    let mut buf = vec![0u8; CHUNK];
    let mut skip_final_newline = true;
    while end > 0 {
        let start = end.saturating_sub(CHUNK as u64);
        let size = (end - start) as usize;
        reader.seek(SeekFrom::Start(start))?;
        reader.read_exact(&mut buf[..size])?;
        for i in (0..size).rev() {
            if buf[i] != b'\n' {
                skip_final_newline = false;
                continue;
            }
            if skip_final_newline && start + i as u64 == len - 1 {
                skip_final_newline = false;
                continue;
            }
            seen += 1;
            if seen == lines {
                return Ok(start + i as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

/// The query kubectl sends (through the API server).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    #[serde(default)]
    follow: Option<String>,
    #[serde(default)]
    previous: Option<String>,
    #[serde(default)]
    tail_lines: Option<i64>,
    #[serde(default)]
    limit_bytes: Option<i64>,
    #[serde(default)]
    since_seconds: Option<i64>,
    #[serde(default)]
    since_time: Option<String>,
    /// Accepted but not applied: the runtime's log files carry no per-line times.
    #[serde(default)]
    #[allow(dead_code)]
    timestamps: Option<String>,
}

fn flag(value: &Option<String>) -> bool {
    matches!(value.as_deref(), Some("true" | "1" | "True"))
}

/// Which attempt a request reads: the latest, or the one before it for `previous`.
pub fn pick_attempt(logs: &ContainerLogs, previous: bool) -> Option<u32> {
    let latest = *logs.files.keys().next_back()?;
    if previous {
        logs.files.range(..latest).next_back().map(|(a, _)| *a)
    } else {
        Some(latest)
    }
}

fn text(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

struct Reader {
    registry: Arc<LogRegistry>,
    namespace: String,
    pod: String,
    container: String,
    attempt: u32,
    path: PathBuf,
    follow: bool,
    tail: Option<u64>,
    limit: Option<u64>,
}

impl Reader {
    /// Stream the file into `sender` until it is read (or, following, until the attempt ends
    /// and its last bytes were sent, or the client goes away).
    async fn stream(self, sender: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>) {
        let opened = std::fs::File::open(&self.path).and_then(|mut file| {
            let start = match self.tail {
                Some(lines) => tail_offset(&mut file, lines)?,
                None => 0,
            };
            file.seek(SeekFrom::Start(start))?;
            Ok(file)
        });
        let mut file = match opened {
            Ok(file) => tokio::fs::File::from_std(file),
            Err(e) => {
                let _ = sender.send(Err(e)).await;
                return;
            }
        };
        let mut left = self.limit;
        let mut buf = vec![0u8; CHUNK];
        loop {
            use tokio::io::AsyncReadExt;
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = sender.send(Err(e)).await;
                    return;
                }
            };
            if n > 0 {
                let take = left.map_or(n, |l| l.min(n as u64) as usize);
                if let Some(l) = left.as_mut() {
                    *l -= take as u64;
                }
                if sender
                    .send(Ok(Bytes::copy_from_slice(&buf[..take])))
                    .await
                    .is_err()
                    || left == Some(0)
                {
                    return;
                }
                continue;
            }
            if !self.follow || sender.is_closed() {
                return;
            }
            // Checked before the wait, so bytes written just before the exit are read once more.
            let running = self.registry.still_running(
                &self.namespace,
                &self.pod,
                &self.container,
                self.attempt,
            );
            tokio::time::sleep(FOLLOW_POLL).await;
            if !running {
                let Ok(n) = file.read(&mut buf).await else {
                    return;
                };
                if n > 0 {
                    let take = left.map_or(n, |l| l.min(n as u64) as usize);
                    let _ = sender.send(Ok(Bytes::copy_from_slice(&buf[..take]))).await;
                    continue;
                }
                return;
            }
        }
    }
}

async fn container_logs(
    State(registry): State<Arc<LogRegistry>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    let logs = match registry.lookup(&namespace, &pod, &container) {
        Lookup::NoPod => {
            return text(
                StatusCode::NOT_FOUND,
                format!("pod \"{pod}\" in namespace \"{namespace}\" is not on this node"),
            );
        }
        Lookup::NoContainer => {
            return text(
                StatusCode::NOT_FOUND,
                format!("container \"{container}\" not found in pod \"{pod}\""),
            );
        }
        Lookup::Found(logs) => logs,
    };
    let previous = flag(&query.previous);
    let Some(attempt) = pick_attempt(&logs, previous) else {
        return if previous {
            text(
                StatusCode::NOT_FOUND,
                format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
            )
        } else {
            text(
                StatusCode::BAD_REQUEST,
                format!(
                    "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
                ),
            )
        };
    };
    let Some(path) = logs.files.get(&attempt).cloned() else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no log file for container \"{container}\" in pod \"{pod}\""),
        );
    };
    // Without per-line times, `sinceSeconds`/`sinceTime` can only drop a file that was
    // last written before the cut-off.
    let since = query
        .since_seconds
        .map(|s| SystemTime::now() - Duration::from_secs(s.max(0) as u64))
        .or_else(|| {
            query
                .since_time
                .as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(SystemTime::from)
        });
    let stale = since.is_some_and(|cut| {
        std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified < cut)
    });
    let reader = Reader {
        registry: registry.clone(),
        follow: flag(&query.follow) && !previous,
        tail: if stale {
            Some(0)
        } else {
            query.tail_lines.filter(|t| *t >= 0).map(|t| t as u64)
        },
        limit: query.limit_bytes.filter(|l| *l > 0).map(|l| l as u64),
        namespace,
        pod,
        container,
        attempt,
        path,
    };
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(reader.stream(sender));
    let mut response = Response::new(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(receiver),
    ));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// The endpoint's routes.
pub fn router(registry: Arc<LogRegistry>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .with_state(registry)
}

/// Serve the endpoint until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, registry: Arc<LogRegistry>) {
    if let Err(e) = axum::serve(listener, router(registry)).await {
        tracing::error!(error = %e, "the agent's log endpoint stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn offset(data: &[u8], lines: u64) -> usize {
        tail_offset(&mut Cursor::new(data), lines).unwrap() as usize
    }

    #[test]
    fn tails() {
        let data = b"a\nb\nc\n";
        assert_eq!(&data[offset(data, 2)..], b"b\nc\n");
        assert_eq!(&data[offset(data, 10)..], data);
        assert_eq!(&data[offset(data, 0)..], b"");
        assert_eq!(&b"a\nb"[offset(b"a\nb", 1)..], b"b");
        assert_eq!(offset(b"", 3), 0);
        // Longer than one chunk: the line boundary is found across chunks.
        let mut big = vec![b'x'; CHUNK * 2 + 10];
        big.extend_from_slice(b"\nlast\n");
        assert_eq!(&big[offset(&big, 1)..], b"last\n");
        assert_eq!(offset(&big, 2), 0);
    }

    #[test]
    fn previous_picks_the_attempt_before_the_latest() {
        let mut logs = ContainerLogs::default();
        assert_eq!(pick_attempt(&logs, false), None);
        logs.files.insert(0, "/0.log".into());
        assert_eq!(pick_attempt(&logs, false), Some(0));
        assert_eq!(pick_attempt(&logs, true), None);
        logs.files.insert(3, "/3.log".into());
        assert_eq!(pick_attempt(&logs, true), Some(0));
    }

    #[test]
    fn registry_tracks_pods_by_uid() {
        let registry = LogRegistry::default();
        let key = PodKey::new("ns", "p", "u1");
        registry.register(&key, &["c".into()]);
        assert_eq!(
            registry.lookup("ns", "p", "c"),
            Lookup::Found(ContainerLogs::default())
        );
        assert_eq!(registry.lookup("ns", "p", "d"), Lookup::NoContainer);
        registry.attempt(&key, "c", 0, "/a".into(), true);
        assert!(registry.still_running("ns", "p", "c", 0));
        registry.attempt(
            &PodKey::new("ns", "p", "stale-uid"),
            "c",
            1,
            "/b".into(),
            true,
        );
        registry.ended(&key, "c", 0);
        assert!(!registry.still_running("ns", "p", "c", 0));
        registry.remove(&PodKey::new("ns", "p", "other"));
        assert!(matches!(registry.lookup("ns", "p", "c"), Lookup::Found(l) if l.files.len() == 1));
        registry.remove(&key);
        assert_eq!(registry.lookup("ns", "p", "c"), Lookup::NoPod);
    }

    async fn get(port: u16, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
            .await
            .unwrap()
            .unwrap();
        let raw = String::from_utf8_lossy(&raw).to_string();
        let code = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        (
            code,
            if chunked {
                dechunk(body)
            } else {
                body.to_string()
            },
        )
    }

    /// Undo chunked transfer encoding (bodies here are small and well formed).
    fn dechunk(body: &str) -> String {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                return body.to_string();
            };
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    }

    #[tokio::test]
    async fn serves_logs_with_tail_limit_previous_and_follow() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("0.log");
        let second = dir.path().join("1.log");
        std::fs::write(&first, "old 1\nold 2\n").unwrap();
        std::fs::write(&second, "one\ntwo\nthree\n").unwrap();
        let registry = Arc::new(LogRegistry::default());
        let key = PodKey::new("ns", "p", "u1");
        registry.register(&key, &["c".into(), "idle".into()]);
        registry.attempt(&key, "c", 0, first.clone(), false);
        registry.attempt(&key, "c", 1, second.clone(), true);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(serve(listener, registry.clone()));

        assert_eq!(get(port, "/healthz").await, (200, "ok".into()));
        assert_eq!(
            get(port, "/containerLogs/ns/p/c").await,
            (200, "one\ntwo\nthree\n".into())
        );
        assert_eq!(
            get(port, "/containerLogs/ns/p/c?tailLines=2").await,
            (200, "two\nthree\n".into())
        );
        assert_eq!(
            get(port, "/containerLogs/ns/p/c?limitBytes=5").await,
            (200, "one\nt".into())
        );
        assert_eq!(
            get(port, "/containerLogs/ns/p/c?previous=true").await,
            (200, "old 1\nold 2\n".into())
        );
        assert_eq!(
            get(port, "/containerLogs/ns/p/c?sinceSeconds=3600").await,
            (200, "one\ntwo\nthree\n".into())
        );
        assert_eq!(get(port, "/containerLogs/ns/p/nope").await.0, 404);
        assert_eq!(get(port, "/containerLogs/ns/ghost/c").await.0, 404);
        assert_eq!(get(port, "/containerLogs/ns/p/idle").await.0, 400);
        assert_eq!(
            get(port, "/containerLogs/ns/p/idle?previous=true").await.0,
            404
        );

        // Follow: appended bytes arrive, and the stream ends once the attempt has ended.
        let follower = tokio::spawn(async move {
            get(port, "/containerLogs/ns/p/c?follow=true&tailLines=1").await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&second)
            .unwrap()
            .write_all(b"four\n")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !follower.is_finished(),
            "follow ended while the attempt still runs"
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(&second)
            .unwrap()
            .write_all(b"five\n")
            .unwrap();
        registry.ended(&key, "c", 1);
        let (code, body) = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((code, body.as_str()), (200, "three\nfour\nfive\n"));
    }
}
