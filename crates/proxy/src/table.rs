//! The proxy table: one TCP listener per frontend, each forwarding accepted connections
//! round robin to its current backends, retrying the next backend when one refuses.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::error::{ProxyError, Result};

/// Which kind of address a listener serves for its service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Frontend {
    /// `spec.clusterIP:port`.
    ClusterIp,
    /// `node_ip:nodePort` (NodePort and LoadBalancer services).
    NodePort,
    /// `node_ip:port` (LoadBalancer services, as k3s's servicelb does).
    LoadBalancer,
}

/// Identifies one listener: a service port seen through one frontend.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleKey {
    pub namespace: String,
    pub service: String,
    /// The service port's name, or its number when it has none.
    pub port: String,
    pub frontend: Frontend,
}

/// One desired listener and the endpoints its connections go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub key: RuleKey,
    /// Where to listen. Port 0 asks for an ephemeral port (tests); the bound address is
    /// reported by [`ProxyTable::reconcile`].
    pub listen: SocketAddr,
    /// Ready endpoints in round-robin order.
    pub backends: Vec<SocketAddr>,
}

/// Tunables of the table.
#[derive(Clone, Debug)]
pub struct TableConfig {
    /// How long to wait for a backend to accept before trying the next one.
    pub connect_timeout: Duration,
    /// Connections forwarded at once, over all listeners. Each one holds two copy buffers,
    /// so this bounds the proxy's memory; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// The listen backlog of each frontend socket.
    pub backlog: u32,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            connect_timeout: Duration::from_secs(1),
            // Two 8 KiB copy buffers each: at most 8 MiB of buffers in all.
            max_connections: 512,
            backlog: 1024,
        }
    }
}

/// The current endpoints of one listener, swapped in place so that endpoint changes
/// apply to the next connection without touching the listening socket.
struct Backends {
    addresses: RwLock<Arc<[SocketAddr]>>,
    next: AtomicUsize,
}

impl Backends {
    fn new(addresses: &[SocketAddr]) -> Self {
        Backends {
            addresses: RwLock::new(addresses.into()),
            next: AtomicUsize::new(0),
        }
    }

    fn replace(&self, addresses: &[SocketAddr]) {
        let unchanged = self
            .addresses
            .read()
            .map(|current| current.as_ref() == addresses)
            .unwrap_or(false);
        if unchanged {
            return;
        }
        // A poisoned lock only means a reader panicked; the slice inside is still whole.
        let mut current = self
            .addresses
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = addresses.into();
    }

    /// The endpoints and the index the next connection starts from.
    fn pick(&self) -> (Arc<[SocketAddr]>, usize) {
        let addresses = self
            .addresses
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (addresses, start)
    }
}

/// A bound frontend. Dropping it stops accepting and closes the listening socket;
/// connections already forwarded run on until either side closes.
struct Listener {
    requested: SocketAddr,
    bound: SocketAddr,
    backends: Arc<Backends>,
    accept_task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// The set of live listeners, reconciled to a desired set of [`Rule`]s.
pub struct ProxyTable {
    config: TableConfig,
    listeners: HashMap<RuleKey, Listener>,
    connections: Arc<Semaphore>,
}

impl ProxyTable {
    pub fn new(config: TableConfig) -> Self {
        let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
        ProxyTable {
            config,
            listeners: HashMap::new(),
            connections,
        }
    }

    /// Make the live listeners match `rules`: close those not wanted any more (or wanted on
    /// another address), swap the backends of the others, and bind the new ones. Returns,
    /// per rule, the bound address or why it could not listen; a rule that failed is tried
    /// again by the next call. Must be called inside a tokio runtime.
    pub fn reconcile(&mut self, rules: &[Rule]) -> Vec<(RuleKey, Result<SocketAddr>)> {
        let wanted: HashMap<&RuleKey, SocketAddr> =
            rules.iter().map(|r| (&r.key, r.listen)).collect();
        // Close first, so an address moving from one rule to another is free to bind.
        self.listeners
            .retain(|key, listener| wanted.get(key) == Some(&listener.requested));

        let mut seen = HashSet::new();
        let mut outcomes = Vec::with_capacity(rules.len());
        for rule in rules {
            if !seen.insert(&rule.key) {
                continue; // A duplicate key; the first rule with it is the one served.
            }
            let outcome = match self.listeners.get(&rule.key) {
                Some(listener) => {
                    listener.backends.replace(&rule.backends);
                    Ok(listener.bound)
                }
                None => self.bind(rule),
            };
            outcomes.push((rule.key.clone(), outcome));
        }
        outcomes
    }

    /// The address a rule's listener is bound to, if it is listening.
    pub fn bound_address(&self, key: &RuleKey) -> Option<SocketAddr> {
        self.listeners.get(key).map(|l| l.bound)
    }

    /// How many listeners are live.
    pub fn len(&self) -> usize {
        self.listeners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    fn bind(&mut self, rule: &Rule) -> Result<SocketAddr> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ProxyError::NoRuntime)?;
        // Registering the socket with the reactor needs the runtime's context.
        let _context = runtime.enter();
        let listen_error = |source| ProxyError::Listen {
            address: rule.listen,
            source,
        };
        let socket = if rule.listen.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(listen_error)?;
        // Rebinding right after a listener closed must not wait for TIME_WAIT sockets.
        socket.set_reuseaddr(true).map_err(listen_error)?;
        socket.bind(rule.listen).map_err(listen_error)?;
        let listener = socket.listen(self.config.backlog).map_err(listen_error)?;
        let bound = listener.local_addr().map_err(listen_error)?;
        let backends = Arc::new(Backends::new(&rule.backends));
        let accept_task = runtime.spawn(accept_loop(
            listener,
            backends.clone(),
            self.connections.clone(),
            self.config.connect_timeout,
            rule.key.clone(),
        ));
        tracing::info!(
            namespace = %rule.key.namespace,
            service = %rule.key.service,
            port = %rule.key.port,
            frontend = ?rule.key.frontend,
            %bound,
            "listening"
        );
        self.listeners.insert(
            rule.key.clone(),
            Listener {
                requested: rule.listen,
                bound,
                backends,
                accept_task,
            },
        );
        Ok(bound)
    }
}

async fn accept_loop(
    listener: TcpListener,
    backends: Arc<Backends>,
    connections: Arc<Semaphore>,
    connect_timeout: Duration,
    key: RuleKey,
) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, service = %key.service, port = %key.port, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().acquire_owned().await else {
            return; // The semaphore is never closed; nothing left to do if it were.
        };
        let (endpoints, start) = backends.pick();
        tokio::spawn(forward(
            client,
            peer,
            endpoints,
            start,
            connect_timeout,
            permit,
        ));
    }
}

/// Connect to the first endpoint that accepts, starting at `start` and trying each once,
/// then copy both ways until both sides have closed.
async fn forward(
    mut client: TcpStream,
    peer: SocketAddr,
    endpoints: Arc<[SocketAddr]>,
    start: usize,
    connect_timeout: Duration,
    _permit: OwnedSemaphorePermit,
) {
    let Some(mut backend) = connect_any(&endpoints, start, connect_timeout).await else {
        // Reset rather than close cleanly, so the client sees a failure (as a refused
        // connection would be) instead of an empty reply.
        let _ = client.set_zero_linger();
        tracing::debug!(%peer, endpoints = endpoints.len(), "no endpoint accepted the connection");
        return;
    };
    // Small request/response exchanges must not wait on Nagle's algorithm (Go, which
    // upstream's proxy is written in, sets this on every connection too).
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(%peer, %error, "proxied connection ended with an error");
    }
}

async fn connect_any(
    endpoints: &[SocketAddr],
    start: usize,
    connect_timeout: Duration,
) -> Option<TcpStream> {
    for offset in 0..endpoints.len() {
        let endpoint = endpoints[start.wrapping_add(offset) % endpoints.len()];
        match tokio::time::timeout(connect_timeout, TcpStream::connect(endpoint)).await {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(error)) => {
                tracing::debug!(%endpoint, %error, "endpoint refused; trying the next")
            }
            Err(_) => {
                tracing::debug!(%endpoint, "endpoint did not answer in time; trying the next")
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn key(service: &str, frontend: Frontend) -> RuleKey {
        RuleKey {
            namespace: "default".into(),
            service: service.into(),
            port: "http".into(),
            frontend,
        }
    }

    fn rule(service: &str, listen: SocketAddr, backends: &[SocketAddr]) -> Rule {
        Rule {
            key: key(service, Frontend::ClusterIp),
            listen,
            backends: backends.to_vec(),
        }
    }

    fn ephemeral() -> SocketAddr {
        SocketAddr::new(LOOPBACK, 0)
    }

    /// A backend that answers each connection with its name and then echoes what it reads.
    async fn backend(name: &'static str) -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind(ephemeral()).await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    stream.write_all(name.as_bytes()).await.unwrap();
                    stream.write_all(b"\n").await.unwrap();
                    let mut buffer = [0u8; 1024];
                    loop {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => stream.write_all(&buffer[..n]).await.unwrap(),
                        }
                    }
                    // Echo done: close our side too, so the client sees EOF.
                });
            }
        });
        (address, task)
    }

    /// An address nothing listens on: bound once to reserve a free port, then released.
    fn closed_address() -> SocketAddr {
        let listener = std::net::TcpListener::bind(ephemeral()).unwrap();
        listener.local_addr().unwrap()
    }

    /// Connect through the proxy and read the backend's name line.
    async fn greeting(frontend: SocketAddr) -> String {
        let mut stream = TcpStream::connect(frontend).await.unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let n = stream.read(&mut byte).await.unwrap();
                if n == 0 || byte[0] == b'\n' {
                    break;
                }
                line.push(byte[0]);
            }
        })
        .await
        .unwrap();
        String::from_utf8(line).unwrap()
    }

    fn only_bound(outcomes: &[(RuleKey, Result<SocketAddr>)]) -> SocketAddr {
        assert_eq!(outcomes.len(), 1);
        match &outcomes[0].1 {
            Ok(address) => *address,
            Err(error) => panic!("rule did not bind: {error}"),
        }
    }

    #[tokio::test]
    async fn connections_go_round_robin_over_backends() {
        let (a, _ta) = backend("a").await;
        let (b, _tb) = backend("b").await;
        let (c, _tc) = backend("c").await;
        let mut table = ProxyTable::new(TableConfig::default());
        let frontend = only_bound(&table.reconcile(&[rule("web", ephemeral(), &[a, b, c])]));
        let mut names = Vec::new();
        for _ in 0..6 {
            names.push(greeting(frontend).await);
        }
        assert_eq!(names, ["a", "b", "c", "a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_refused_backend_is_skipped_for_the_next() {
        let (a, _ta) = backend("a").await;
        let dead = closed_address();
        let (c, _tc) = backend("c").await;
        let mut table = ProxyTable::new(TableConfig::default());
        let frontend = only_bound(&table.reconcile(&[rule("web", ephemeral(), &[a, dead, c])]));
        let mut names = Vec::new();
        for _ in 0..6 {
            names.push(greeting(frontend).await);
        }
        // The turn of the dead endpoint falls to the one after it.
        assert_eq!(names, ["a", "c", "c", "a", "c", "c"]);
    }

    #[tokio::test]
    async fn no_reachable_endpoint_resets_the_client() {
        let mut table = ProxyTable::new(TableConfig::default());
        let frontend =
            only_bound(&table.reconcile(&[rule("web", ephemeral(), &[closed_address()])]));
        let mut stream = TcpStream::connect(frontend).await.unwrap();
        let mut buffer = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .unwrap();
        assert!(
            matches!(read, Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{read:?}"
        );

        let frontend_without_endpoints =
            only_bound(&table.reconcile(&[rule("web", ephemeral(), &[])]));
        assert_eq!(
            frontend_without_endpoints, frontend,
            "same rule, same listener"
        );
        let mut stream = TcpStream::connect(frontend).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .unwrap();
        assert!(read.is_err(), "{read:?}");
    }

    /// A listener that completes no more handshakes: its accept queue is full, so the
    /// kernel drops further SYNs and a connect to it hangs until the client gives up.
    async fn silent_backend() -> (SocketAddr, TcpListener, Vec<TcpStream>) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(ephemeral()).unwrap();
        let listener = socket.listen(0).unwrap();
        let address = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        for _ in 0..8 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(address))
                .await
            {
                Ok(stream) => queued.push(stream.unwrap()),
                Err(_) => return (address, listener, queued),
            }
        }
        panic!("the accept queue never filled");
    }

    #[tokio::test]
    async fn a_backend_that_does_not_answer_times_out_and_the_next_is_tried() {
        let (silent, _listener, _queued) = silent_backend().await;
        let (a, _ta) = backend("a").await;
        let config = TableConfig {
            connect_timeout: Duration::from_millis(300),
            ..TableConfig::default()
        };
        let mut table = ProxyTable::new(config);
        let frontend = only_bound(&table.reconcile(&[rule("web", ephemeral(), &[silent, a])]));
        let started = std::time::Instant::now();
        assert_eq!(greeting(frontend).await, "a");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "the silent endpoint was not tried first"
        );
    }

    #[tokio::test]
    async fn endpoint_changes_apply_to_new_connections_on_the_same_listener() {
        let (a, _ta) = backend("a").await;
        let (b, _tb) = backend("b").await;
        let mut table = ProxyTable::new(TableConfig::default());
        let frontend = only_bound(&table.reconcile(&[rule("web", ephemeral(), &[a])]));

        // A connection open across the change keeps its backend.
        let mut long_lived = TcpStream::connect(frontend).await.unwrap();
        let mut hello = [0u8; 2];
        long_lived.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, b"a\n");

        let again = only_bound(&table.reconcile(&[rule("web", ephemeral(), &[b])]));
        assert_eq!(again, frontend, "the listener was kept");
        for _ in 0..3 {
            assert_eq!(greeting(frontend).await, "b");
        }
        long_lived.write_all(b"still here").await.unwrap();
        let mut echo = [0u8; 10];
        long_lived.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"still here");
    }

    #[tokio::test]
    async fn half_close_is_passed_on_and_the_reply_still_arrives() {
        let (a, _ta) = backend("a").await;
        let mut table = ProxyTable::new(TableConfig::default());
        let frontend = only_bound(&table.reconcile(&[rule("web", ephemeral(), &[a])]));
        let mut stream = TcpStream::connect(frontend).await.unwrap();
        stream.write_all(b"ping").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply, b"a\nping");
    }

    #[tokio::test]
    async fn removing_a_rule_closes_its_listener() {
        let (a, _ta) = backend("a").await;
        let mut table = ProxyTable::new(TableConfig::default());
        let outcomes = table.reconcile(&[
            rule("web", ephemeral(), &[a]),
            rule("api", ephemeral(), &[a]),
        ]);
        let web = *outcomes[0].1.as_ref().unwrap();
        let api = *outcomes[1].1.as_ref().unwrap();
        assert_eq!(greeting(web).await, "a");

        let outcomes = table.reconcile(&[rule("api", ephemeral(), &[a])]);
        assert_eq!(outcomes.len(), 1);
        assert_eq!(table.len(), 1);
        assert!(
            table
                .bound_address(&key("web", Frontend::ClusterIp))
                .is_none()
        );
        // The accept task is aborted asynchronously; give it a bounded moment.
        let mut refused = false;
        for _ in 0..50 {
            if TcpStream::connect(web).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused, "the removed listener still accepts");
        assert_eq!(greeting(api).await, "a");

        table.reconcile(&[]);
        assert!(table.is_empty());
    }

    #[tokio::test]
    async fn a_busy_port_is_reported_and_retried() {
        let squatter = std::net::TcpListener::bind(ephemeral()).unwrap();
        let busy = squatter.local_addr().unwrap();
        let (a, _ta) = backend("a").await;
        let mut table = ProxyTable::new(TableConfig::default());
        let mut lb = rule("web", busy, &[a]);
        lb.key.frontend = Frontend::LoadBalancer;

        let outcomes = table.reconcile(std::slice::from_ref(&lb));
        let error = outcomes[0].1.as_ref().unwrap_err();
        assert!(error.is_address_in_use(), "{error}");
        assert!(error.to_string().contains(&busy.to_string()), "{error}");
        assert!(table.is_empty());

        drop(squatter);
        let bound = only_bound(&table.reconcile(std::slice::from_ref(&lb)));
        assert_eq!(bound, busy);
        assert_eq!(greeting(bound).await, "a");
    }

    #[tokio::test]
    async fn moving_a_rule_to_another_address_rebinds_it() {
        let (a, _ta) = backend("a").await;
        let mut table = ProxyTable::new(TableConfig::default());
        let first = only_bound(&table.reconcile(&[rule("web", ephemeral(), &[a])]));
        let target = closed_address();
        let moved = only_bound(&table.reconcile(&[rule("web", target, &[a])]));
        assert_eq!(moved, target);
        assert_ne!(moved, first);
        assert_eq!(greeting(moved).await, "a");
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_slot() {
        let (a, _ta) = backend("a").await;
        let config = TableConfig {
            max_connections: 1,
            ..TableConfig::default()
        };
        let mut table = ProxyTable::new(config);
        let frontend = only_bound(&table.reconcile(&[rule("web", ephemeral(), &[a])]));
        let mut first = TcpStream::connect(frontend).await.unwrap();
        let mut hello = [0u8; 2];
        first.read_exact(&mut hello).await.unwrap();

        // The second connection is accepted by the kernel but not forwarded yet.
        let mut second = TcpStream::connect(frontend).await.unwrap();
        let waiting =
            tokio::time::timeout(Duration::from_millis(300), second.read_exact(&mut hello)).await;
        assert!(
            waiting.is_err(),
            "a second connection was forwarded beyond the limit"
        );

        drop(first);
        tokio::time::timeout(Duration::from_secs(5), second.read_exact(&mut hello))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&hello, b"a\n");
    }

    #[test]
    fn reconcile_outside_a_runtime_is_an_error() {
        let mut table = ProxyTable::new(TableConfig::default());
        let outcomes = table.reconcile(&[rule("web", ephemeral(), &[])]);
        assert!(matches!(outcomes[0].1, Err(ProxyError::NoRuntime)));
    }
}
