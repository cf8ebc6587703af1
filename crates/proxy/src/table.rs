//! Listeners reconciled to a desired set of rules. Each accepted connection goes to the
//! next backend (round robin); a backend that refuses or times out is skipped for the
//! next one, so a pod that is starting or stopping costs no failed request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::rules::Rule;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

struct Listener {
    backends: Arc<RwLock<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

/// The running listeners, by address.
#[derive(Default)]
pub struct ProxyTable {
    listeners: tokio::sync::Mutex<HashMap<SocketAddr, Listener>>,
}

async fn connect_any(backends: &RwLock<Vec<SocketAddr>>, next: &AtomicUsize) -> Option<TcpStream> {
    let list = backends.read().map(|b| b.clone()).unwrap_or_default();
    if list.is_empty() {
        return None;
    }
    let start = next.fetch_add(1, Ordering::Relaxed);
    for i in 0..list.len() {
        let backend = list[(start + i) % list.len()];
        if let Ok(Ok(stream)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend)).await {
            return Some(stream);
        }
    }
    None
}

async fn serve(listener: TcpListener, backends: Arc<RwLock<Vec<SocketAddr>>>) {
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (backends, next) = (backends.clone(), next.clone());
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            if let Some(mut upstream) = connect_any(&backends, &next).await {
                let _ = upstream.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
    }
}

impl ProxyTable {
    /// Make the listeners match `rules`. Returns the addresses that could not be bound,
    /// with the reason; they are retried on the next call.
    pub async fn apply(&self, rules: Vec<Rule>) -> HashMap<SocketAddr, String> {
        let mut listeners = self.listeners.lock().await;
        let wanted: HashMap<SocketAddr, Vec<SocketAddr>> = rules.into_iter().map(|r| (r.listen, r.backends)).collect();
        listeners.retain(|addr, l| {
            let keep = wanted.contains_key(addr);
            if !keep {
                l.task.abort();
            }
            keep
        });
        let mut failures = HashMap::new();
        for (addr, backends) in wanted {
            if let Some(existing) = listeners.get(&addr) {
                if let Ok(mut b) = existing.backends.write() {
                    *b = backends;
                }
                continue;
            }
            match bind(addr) {
                Ok(listener) => {
                    let shared = Arc::new(RwLock::new(backends));
                    let task = tokio::spawn(serve(listener, shared.clone()));
                    listeners.insert(addr, Listener { backends: shared, task });
                }
                Err(e) => {
                    failures.insert(addr, e.to_string());
                }
            }
        }
        failures
    }

    /// The addresses being listened on.
    pub async fn listening(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = self.listeners.lock().await.keys().copied().collect();
        out.sort();
        out
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn backend(name: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else { return };
                let _ = s.write_all(name.as_bytes()).await;
            }
        });
        (addr, task)
    }

    async fn free_port() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap()
    }

    async fn ask(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut out = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out)).await;
        out
    }

    fn rule(listen: SocketAddr, backends: Vec<SocketAddr>) -> Rule {
        Rule { listen, service: "default/s".into(), backends, cluster_ip: false, load_balancer: false }
    }

    #[tokio::test]
    async fn round_robin_retry_update_and_removal() {
        let (a, _ta) = backend("a").await;
        let (b, tb) = backend("b").await;
        let (c, _tc) = backend("c").await;
        let front = free_port().await;
        let table = ProxyTable::default();
        assert!(table.apply(vec![rule(front, vec![a, b, c])]).await.is_empty());
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..6 {
            seen.insert(ask(front).await);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec!["a", "b", "c"]);
        // A dead backend is skipped: every request still answers.
        tb.abort();
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..6 {
            assert_ne!(ask(front).await, "");
        }
        // Endpoints change without touching the listener.
        assert!(table.apply(vec![rule(front, vec![c])]).await.is_empty());
        for _ in 0..3 {
            assert_eq!(ask(front).await, "c");
        }
        table.apply(vec![]).await;
        assert!(table.listening().await.is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(front).await.is_err(), "listener closed");
    }

    #[tokio::test]
    async fn a_port_in_use_is_reported() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let table = ProxyTable::default();
        let failures = table.apply(vec![rule(taken.local_addr().unwrap(), vec![])]).await;
        assert_eq!(failures.len(), 1);
    }
}
